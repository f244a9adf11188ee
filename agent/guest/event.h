// Agent events: the append-only, sequenced record users watch (`phoenixctl events --follow`).
// Plain values; agent/state persists them, agent/api converts them to phoenix.v1.Event.
#pragma once

#include <cstdint>
#include <string>

#include "agent/guest/guest.h"

namespace phoenix::agent {

enum class EventType {
  kGuestCreated = 1,
  kGuestStarting = 2,
  kGuestRunning = 3,
  kGuestHealthy = 4,
  kGuestUnhealthy = 5,
  kGuestCrashed = 6,
  kGuestRestarting = 7,
  kGuestStopped = 8,
  kGuestFailed = 9,
  kGuestDeleted = 10,
  kGuestAdopted = 11,
  kImageAdded = 12,
  kSnapshotCreated = 13,
  kRuntimeDisconnected = 14,
  kRuntimeConnected = 15,
  kSnapshotDiscarded = 16,
};
// The highest EventType: the store refuses rows it does not know.
inline constexpr EventType kLastEventType = EventType::kSnapshotDiscarded;

struct EventRecord {
  uint64_t sequence = 0;  // assigned by the store, strictly increasing, never reused
  TimePoint time{};
  EventType type = EventType::kGuestCreated;
  std::string guest;  // guest name; empty for node-level events
  std::string message;
  bool operator==(const EventRecord&) const = default;
};

}  // namespace phoenix::agent
