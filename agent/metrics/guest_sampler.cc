#include "agent/metrics/guest_sampler.h"

#include <algorithm>

namespace phoenix::agent::metrics {

GuestMetrics GuestSampler::Sample(const SampleInput& in, SteadyTime now, TimePoint wall_now) {
  GuestMetrics m;
  m.sampled_at = wall_now;

  const bool same_identity = prev_ && prev_->instance == in.instance && prev_->pid == in.source.pid;
  if (!same_identity) {
    prev_.emplace();
    prev_->instance = in.instance;
    prev_->pid = in.source.pid;
    if (in.requests) prev_->base = *in.requests;
  }
  Previous& prev = *prev_;
  // Rates need a window: not on an instance's first sample, nor if the clock did not advance.
  const bool same_instance = same_identity && now > prev.time;
  const auto window = now - prev.time;
  const double window_s = std::chrono::duration<double>(window).count();
  if (same_instance) {
    m.window_ms = static_cast<uint32_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(window).count());
  }

  // CPU and memory.
  std::optional<uint64_t> cpu_ns;
  if (auto usage = reader_.Read(in.source)) {
    cpu_ns = usage->cpu_ns;
    m.memory_bytes = usage->memory_bytes.value_or(0);
  }
  if (same_instance && cpu_ns && prev.cpu_ns && *cpu_ns >= *prev.cpu_ns && in.vcpus > 0) {
    const double used_s = static_cast<double>(*cpu_ns - *prev.cpu_ns) / 1e9;
    m.cpu_valid = true;
    m.cpu_percent = 100.0 * used_s / window_s / static_cast<double>(in.vcpus);
  }
  prev.cpu_ns = cpu_ns;

  // Requests through the proxy.
  if (in.requests) {
    const RequestCounters& now_c = *in.requests;
    const bool went_back = now_c.requests < prev.base.requests ||
                           now_c.connection_errors < prev.base.connection_errors;
    if (went_back) prev.base = now_c;  // proxies recreated: totals count from here
    m.requests_total = now_c.requests - prev.base.requests;
    m.connection_errors_total = now_c.connection_errors - prev.base.connection_errors;
    if (same_instance && !went_back && prev.requests && now_c.requests >= prev.requests->requests) {
      if (auto delta = now_c.latency.Since(prev.requests->latency)) {
        m.requests_valid = true;
        m.requests_per_second =
            static_cast<double>(now_c.requests - prev.requests->requests) / window_s;
        m.latency_p50_ms = delta->QuantileMs(0.50).value_or(0);
        m.latency_p99_ms = delta->QuantileMs(0.99).value_or(0);
      }
    }
  }
  prev.requests = in.requests;
  prev.time = now;
  return m;
}

}  // namespace phoenix::agent::metrics
