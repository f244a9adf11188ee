// Pure decisions of the reconciler: whether and when a guest restarts after its instance ended, and
// how a restarted agent maps its persisted guests onto the instances it finds running. No I/O, no
// clocks: state in, decision out, so every rule is tested table-driven.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "agent/guest/guest.h"
#include "agent/runtime/runtime.h"

namespace phoenix::agent {

enum class ExitCause {
  kCrashed,      // the instance died (hypervisor killed, guest crashed)
  kExited,       // the guest shut itself down cleanly
  kUnhealthy,    // the health check failed unhealthy_threshold times
  kStartFailed,  // the runtime could not start it (transient error)
};

struct RestartDecision {
  bool restart = false;
  std::chrono::milliseconds delay{0};
  GuestState state_if_not =
      GuestState::kFailed;  // kFailed after a failure, kStopped after a clean exit
};

// Backoff for the n-th consecutive failure (n >= 1): a guest that had been healthy restarts at once
// (n == 1: a single crash should cost no extra downtime), a crash loop waits initial, 2*initial,
// ... capped at max_backoff_ms.
std::chrono::milliseconds RestartBackoff(const RestartSpec& spec, uint32_t consecutive_failures);

RestartDecision DecideRestart(const RestartSpec& spec, ExitCause cause,
                              uint32_t consecutive_failures);

struct AdoptionPlan {
  std::vector<std::string> adopt;    // guest ids whose recorded instance still runs: keep it
  std::vector<std::string> restart;  // guest ids that should run but whose instance is gone
  std::vector<std::string> destroy;  // instances of our guests to remove (leftovers, duplicates)
};

// Records are the agent's persisted guests; instances what the runtimes report. An instance of one
// of our guests is kept only when it is the one the guest's record names and the guest should run:
// anything else would be a duplicate. Instances of unknown guests belong to other agents sharing
// the host's libvirtd and are left alone.
AdoptionPlan PlanAdoption(const std::vector<GuestRecord>& records,
                          const std::vector<InstanceStatus>& instances);

}  // namespace phoenix::agent
