// StopReason: how the OCI runtime words and classifies the end of a container instance from what
// it can know. The container init is not our child (crun/runc --detach hand it to the host's
// reaper), so its exit status is only known when we read it before that reaper does (see
// ZombieWaitStatus); what we always know is whether Phoenix itself stopped or killed it and whether
// the kernel OOM-killed something in its memory cgroup.
//
// Conservative rule: anything not known to be a clean exit (status 0) or our own stop is a crash,
// so the guest is restarted rather than silently left down.
//
// Thread-safety: pure function.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace phoenix::agent::oci {

struct StopFacts {
  bool stopped_by_us = false;         // Stop or Destroy asked for it
  bool killed_by_us = false;          // Kill (chaos drill)
  std::optional<uint64_t> oom_kills;  // the memory cgroup's oom_kill counter, when readable
  std::optional<int> wait_status;     // the init's wait status, when read before it was reaped
  uint32_t memory_mib = 0;
};

struct StopReason {
  bool crashed = true;
  std::string reason;
};

StopReason ClassifyStop(const StopFacts& facts);

}  // namespace phoenix::agent::oci
