#include "agent/guest/guest.h"

namespace phoenix::agent {

std::string_view RuntimeKindName(RuntimeKind kind) {
  switch (kind) {
    case RuntimeKind::kVm:
      return "vm";
    case RuntimeKind::kMicroVm:
      return "microvm";
    case RuntimeKind::kContainer:
      return "container";
  }
  return "unknown";
}

std::string_view GuestStateName(GuestState state) {
  switch (state) {
    case GuestState::kPending:
      return "PENDING";
    case GuestState::kStarting:
      return "STARTING";
    case GuestState::kRunning:
      return "RUNNING";
    case GuestState::kStopping:
      return "STOPPING";
    case GuestState::kStopped:
      return "STOPPED";
    case GuestState::kCrashed:
      return "CRASHED";
    case GuestState::kRestarting:
      return "RESTARTING";
    case GuestState::kFailed:
      return "FAILED";
  }
  return "UNKNOWN";
}

std::string_view BootModeName(BootMode mode) {
  switch (mode) {
    case BootMode::kAuto:
      return "auto";
    case BootMode::kCold:
      return "cold";
    case BootMode::kSnapshot:
      return "snapshot";
  }
  return "unknown";
}

}  // namespace phoenix::agent
