#include "agent/net/latency_histogram.h"

#include <algorithm>
#include <cmath>

namespace phoenix::agent::net {

double LatencyHistogram::BucketLowerUs(int i) {
  return i <= 0 ? 0.0 : kFirstBoundUs * std::pow(kGrowth, i - 1);
}

double LatencyHistogram::BucketUpperUs(int i) { return kFirstBoundUs * std::pow(kGrowth, i); }

int LatencyHistogram::BucketFor(std::chrono::nanoseconds latency) {
  const double us = static_cast<double>(latency.count()) / 1000.0;
  if (us < kFirstBoundUs) return 0;
  // us in [first·r^(i-1), first·r^i)  <=>  i = floor(log_r(us / first)) + 1
  int i = static_cast<int>(std::floor(std::log(us / kFirstBoundUs) / std::log(kGrowth))) + 1;
  // Floating point may put an exact boundary one bucket off; fix it up against the bounds.
  while (i > 1 && us < BucketLowerUs(i)) --i;
  while (i < kBuckets - 1 && us >= BucketUpperUs(i)) ++i;
  return std::clamp(i, 0, kBuckets - 1);
}

void LatencyHistogram::Record(std::chrono::nanoseconds latency) {
  if (latency.count() < 0) latency = std::chrono::nanoseconds(0);
  ++buckets_[BucketFor(latency)];
  ++count_;
  max_ = std::max(max_, latency);
}

void LatencyHistogram::Add(const LatencyHistogram& other) {
  for (int i = 0; i < kBuckets; ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
}

std::optional<LatencyHistogram> LatencyHistogram::Since(const LatencyHistogram& earlier) const {
  LatencyHistogram out;
  for (int i = 0; i < kBuckets; ++i) {
    if (buckets_[i] < earlier.buckets_[i]) return std::nullopt;
    out.buckets_[i] = buckets_[i] - earlier.buckets_[i];
    out.count_ += out.buckets_[i];
  }
  out.max_ = max_;
  return out;
}

std::optional<double> LatencyHistogram::QuantileMs(double q) const {
  if (count_ == 0) return std::nullopt;
  q = std::clamp(q, 0.0, 1.0);
  // The rank of the wanted request, 1-based: the smallest one with at least q of all at or below.
  const double rank = std::max(1.0, std::ceil(q * static_cast<double>(count_)));
  uint64_t below = 0;
  for (int i = 0; i < kBuckets; ++i) {
    if (buckets_[i] == 0) continue;
    if (static_cast<double>(below + buckets_[i]) >= rank) {
      const double fraction =
          (rank - static_cast<double>(below)) / static_cast<double>(buckets_[i]);
      const double lo = BucketLowerUs(i), hi = BucketUpperUs(i);
      return (lo + fraction * (hi - lo)) / 1000.0;
    }
    below += buckets_[i];
  }
  return BucketUpperUs(kBuckets - 1) / 1000.0;
}

}  // namespace phoenix::agent::net
