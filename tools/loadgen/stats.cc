#include "tools/loadgen/stats.h"

#include <algorithm>
#include <cmath>

namespace phoenix::loadgen {

std::optional<double> LatencyRecorder::Percentile(double p) const {
  if (samples_.empty()) return std::nullopt;
  if (!sorted_) {
    std::sort(samples_.begin(), samples_.end());
    sorted_ = true;
  }
  p = std::clamp(p, 0.0, 100.0);
  // Nearest rank: the smallest sample with at least p % of all at or below it.
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(samples_.size())));
  rank = std::clamp<size_t>(rank, 1, samples_.size());
  return samples_[rank - 1];
}

std::optional<double> LatencyRecorder::Max() const {
  if (samples_.empty()) return std::nullopt;
  return *std::max_element(samples_.begin(), samples_.end());
}

}  // namespace phoenix::loadgen
