// GuestSampler: turns cumulative counters of one guest (CPU time and memory from a UsageReader,
// request counters from its port proxies) into the rates of GuestMetrics, sample by sample. One
// per guest, kept across its instances.
//
// Rules (missing is never zero):
//  - The first sample of an instance has no window: CPU and request rates are invalid.
//  - A counter that goes backwards (the cgroup or process was replaced, a proxy was recreated) is
//    a reset, not a negative rate: that sample's rate is invalid and the counter is rebased.
//  - A different instance name or pid starts afresh (totals count from the instance's start).
//  - A failed read makes CPU invalid for this sample; the next good read has no window again.
//
// Time comes in as arguments (steady time for windows, wall time for sampled_at), so tests drive
// it with a fake clock. Threading: not thread-safe; the agent uses it on its loop thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "agent/guest/guest.h"
#include "agent/metrics/usage_reader.h"
#include "agent/net/latency_histogram.h"

namespace phoenix::agent::metrics {

// The request counters of all of a guest's published ports, summed (cumulative).
struct RequestCounters {
  uint64_t requests = 0;
  uint64_t connection_errors = 0;
  net::LatencyHistogram latency;
};

struct SampleInput {
  std::string instance;  // the running instance; identifies it with source.pid
  UsageSource source;
  uint32_t vcpus = 1;  // the allowance cpu_percent is relative to
  // nullopt: the guest has no published port, so the agent sees none of its requests.
  std::optional<RequestCounters> requests;
};

class GuestSampler {
 public:
  using SteadyTime = std::chrono::steady_clock::time_point;

  explicit GuestSampler(UsageReader& reader) : reader_(reader) {}

  GuestMetrics Sample(const SampleInput& in, SteadyTime now, TimePoint wall_now);

  // The guest has no running instance: the next sample starts afresh.
  void Reset() { prev_.reset(); }

 private:
  struct Previous {
    std::string instance;
    int pid = 0;
    SteadyTime time{};
    std::optional<uint64_t> cpu_ns;
    std::optional<RequestCounters> requests;
    RequestCounters base;  // request counters when the instance was first sampled
  };

  UsageReader& reader_;
  std::optional<Previous> prev_;
};

}  // namespace phoenix::agent::metrics
