// Autoscaler: decides a service's replica count from its replicas' load, as a pure function (the
// policy, the current count, per-replica samples, the persisted window and `now` in; a decision
// and the new window out; no clock read, no I/O). The controller evaluates it about once a second
// per autoscaled service and commits a decision together with the window it returns.
//
// The rules (Kubernetes HPA semantics, reacting faster upward because new replicas start in about
// 100 ms from snapshots or containers):
//   - desired = ceil(current * observed / target), where the ratio is taken over the replicas:
//     a replica reporting a fresh value counts with its value; a running replica without a fresh
//     value ("quiet") counts as exactly at target; a replica not yet running counts as 0 (it has no
//     load yet and is about to take its share: counting it at target would double-count the load
//     and overshoot while it starts, as Kubernetes' unready pods);
//   - no change while |ratio - 1| <= tolerance;
//   - any replica without a fresh value blocks scale-in entirely (never shrink because a reporter
//     went quiet), and with no reporting replica at all nothing changes ("no data");
//   - the desire is clamped to [min, max]; a service outside [min, max] goes to the bound
//     regardless of data;
//   - stabilization: the count moves up to the lowest desire of the scale-up window (default 0 s:
//     the newest) and down to the highest desire of the scale-down window (default 60 s);
//   - scale-up rate limit: within any scale_up_period_s at most max(scale_up_max_step, the count at
//     the period's start) replicas are added (so doubling is always allowed).
//
// Threading: pure functions over values.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/support/error.h"
#include "supervisor/state/cluster.h"

namespace phoenix::supervisor::autoscale {

// A metric older than this counts as missing.
inline constexpr std::chrono::milliseconds kDefaultMaxMetricAge{5000};

// One replica of the service (index < current count) as the controller sees it.
struct ReplicaSample {
  // Its guest runs on its node and has reported the metric at least once (else placed, starting,
  // pending, or running without a first sample yet: it has no load of its own to count).
  bool running = false;
  std::optional<double> value;       // the policy's metric, when the agent measured it
  std::chrono::milliseconds age{0};  // since the supervisor received that value
};

struct Input {
  AutoscalePolicy policy;
  uint32_t current = 0;  // the service's replica count (spec.replicas)
  std::vector<ReplicaSample> replicas;
  AutoscaleWindow window;  // as persisted with the service
  TimePoint now{};
  std::chrono::milliseconds max_metric_age = kDefaultMaxMetricAge;
};

struct Output {
  std::optional<ScalingDecision> decision;  // set when the count should change
  double observed = 0;                      // average of the fresh values (0 when none)
  uint32_t reporting = 0;                   // replicas with a fresh value
  uint32_t desired = 0;    // what the metric asks for now, before stabilization and rate limit
  std::string state;       // "steady", "scaling up", "waiting: scale-down window (41 s left)", ...
  AutoscaleWindow window;  // the window to persist (with the decision, if any)
};

[[nodiscard]] Output Evaluate(const Input& input);

// min >= 1, max >= min, target > 0, tolerance in [0, 1), step >= 1, period >= 1. The error is
// InvalidArgument naming `prefix` + "." + the proto field ("spec.autoscale.max_replicas").
[[nodiscard]] Result<void> ValidatePolicy(const AutoscalePolicy& policy, std::string_view prefix);

// "cpu" / "rps"; nullopt otherwise.
std::optional<AutoscaleMetric> ParseMetric(std::string_view name);

// "91.0%" for cpu, "412.3" for rps (per replica), "60%" / "200" for targets.
std::string FormatValue(AutoscaleMetric metric, double value, int decimals);

}  // namespace phoenix::supervisor::autoscale
