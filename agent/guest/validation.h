// Validation of user-supplied guest specs: pure, no I/O. Errors are kInvalidArgument naming the
// offending field as the API user spelled it ("spec.memory_mib"), so gRPC clients see exactly
// what to fix.
#pragma once

#include "agent/guest/guest.h"
#include "proto/support/error.h"

namespace phoenix::agent {

inline constexpr uint32_t kMinMemoryMib = 64;
inline constexpr uint32_t kMaxVcpus = 64;
inline constexpr uint32_t kMaxRestartAfterUnhealthyMs = 3'600'000;

// Checks everything that does not depend on the node's state (image existence, capacity and port
// availability are checked by the agent when it accepts the guest).
Result<void> ValidateGuestSpec(const GuestSpec& spec);

// True for names usable as guest names: [a-z0-9][a-z0-9-]{0,62}, not ending in '-'.
bool IsValidGuestName(std::string_view name);

}  // namespace phoenix::agent
