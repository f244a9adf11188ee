#include "agent/guest/guest.h"

namespace phoenix::agent {

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

}  // namespace phoenix::agent
