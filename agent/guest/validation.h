// Validation of user-supplied guest specs: pure, no I/O. Errors are kInvalidArgument naming the
// offending field as the API user spelled it ("spec.memory_mib"), so gRPC clients see exactly
// what to fix.
#pragma once

#include <chrono>

#include "agent/guest/guest.h"
#include "proto/support/error.h"

namespace phoenix::agent {

inline constexpr uint32_t kMinMemoryMib = 64;
inline constexpr uint32_t kMaxVcpus = 64;
inline constexpr uint32_t kMaxRestartAfterUnhealthyMs = 3'600'000;
inline constexpr size_t kMaxHealthPathBytes = 1024;
inline constexpr size_t kMaxCommandArgs = 256;
inline constexpr size_t kMaxEnvVars = 256;
inline constexpr size_t kMaxEnvKeyBytes = 256;
inline constexpr size_t kMaxArgOrValueBytes = 32 * 1024;

inline constexpr std::chrono::milliseconds kDefaultStopGrace{10'000};
inline constexpr std::chrono::milliseconds kMaxStopGrace{3'600'000};

// The graceful-stop time a caller asked for (StopGuestRequest.timeout_ms): 0 means the default;
// more than kMaxStopGrace is kInvalidArgument naming "timeout_ms" (a stop that can wait for ever
// holds a worker thread and the agent's shutdown for ever).
Result<std::chrono::milliseconds> StopGrace(uint64_t timeout_ms);

// Checks everything that does not depend on the node's state (image existence, capacity and port
// availability are checked by the agent when it accepts the guest).
Result<void> ValidateGuestSpec(const GuestSpec& spec);

// True for names usable as guest names: [a-z0-9][a-z0-9-]{0,62}, not ending in '-'.
bool IsValidGuestName(std::string_view name);

}  // namespace phoenix::agent
