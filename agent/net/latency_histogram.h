// LatencyHistogram: a fixed, cumulative histogram of request latencies with log-spaced buckets, so
// the proxy can count every request in O(1) on its loop thread without allocating, and a reader can
// take two snapshots and get the quantiles of just the requests in between (Since()).
//
// Buckets: bucket 0 holds [0, kFirstBoundUs) µs, bucket i holds [kFirstBoundUs·r^(i-1),
// kFirstBoundUs·r^i) with r = kGrowth, and the last bucket everything above. Quantiles interpolate
// linearly inside a bucket, so an estimate is within one bucket's width (≤ 20 %) of the truth.
//
// Thread-safety: a plain value; the owner synchronises.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>

namespace phoenix::agent::net {

class LatencyHistogram {
 public:
  static constexpr double kFirstBoundUs = 50.0;
  static constexpr double kGrowth = 1.2;
  static constexpr int kBuckets = 96;  // the last starts at kFirstBoundUs·1.2^94 ≈ 23 min

  void Record(std::chrono::nanoseconds latency);
  // Adds another histogram's requests (a guest's ports summed).
  void Add(const LatencyHistogram& other);

  uint64_t count() const { return count_; }
  std::chrono::nanoseconds max() const { return max_; }

  // The requests recorded in this histogram but not in `earlier` (an older snapshot of the same
  // one). nullopt when `earlier` is not older (some bucket shrank: the histogram was replaced).
  std::optional<LatencyHistogram> Since(const LatencyHistogram& earlier) const;

  // The q-quantile (0 < q <= 1) in milliseconds; nullopt when empty.
  std::optional<double> QuantileMs(double q) const;

  // [lower, upper) bound of bucket i in microseconds; the last bucket's upper bound is its lower
  // bound times kGrowth (a quantile there is reported at most at that value).
  static double BucketLowerUs(int i);
  static double BucketUpperUs(int i);
  static int BucketFor(std::chrono::nanoseconds latency);

 private:
  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
  std::chrono::nanoseconds max_{0};  // over all time (Since() keeps the newer one's)
};

}  // namespace phoenix::agent::net
