// Load generator bookkeeping: exact latency percentiles (every latency is kept: the run is bounded
// by --max-requests, so memory is too) and errors counted by kind.
//
// Plain values; not thread-safe (the load loop owns them).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace phoenix::loadgen {

class LatencyRecorder {
 public:
  void Add(double ms) {
    samples_.push_back(ms);
    sorted_ = false;
  }
  size_t count() const { return samples_.size(); }
  // Nearest-rank percentile (0 < p <= 100) of everything added; nullopt when empty.
  std::optional<double> Percentile(double p) const;
  std::optional<double> Max() const;
  void Clear() {
    samples_.clear();
    sorted_ = false;
  }

 private:
  mutable std::vector<double> samples_;
  mutable bool sorted_ = false;
};

struct RunTotals {
  uint64_t sent = 0;                       // requests started
  uint64_t ok = 0;                         // answered with a 2xx/3xx status
  std::map<std::string, uint64_t> errors;  // kind -> count: "http 503", "connect refused", ...
  // Requests resent on a fresh connection because a reused keep-alive connection had been closed
  // by the server (not errors; many mean replies were wrongly taken as reusable).
  uint64_t stale_retries = 0;
  uint64_t error_count() const {
    uint64_t n = 0;
    for (const auto& [kind, count] : errors) n += count;
    return n;
  }
};

}  // namespace phoenix::loadgen
