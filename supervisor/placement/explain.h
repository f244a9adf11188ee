// Explain: what one request's pass over the nodes records (nodes evaluated and feasible, every
// rejection counted per reason, a few named examples per reason, the chosen node's scores), turned
// into the Explanation users read.
//
// Formatting a rejection's detail costs more than the check that made it, so details are built only
// for the first few rejections of each reason (Reject takes a callable, called only then).
//
// Ownership: a plain value, one per request. Not thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "supervisor/placement/placement.h"

namespace phoenix::supervisor::placement {

class Explain {
 public:
  // Examples kept per reason, and in Explanation::examples over all reasons.
  static constexpr size_t kExamplesPerReason = 2;
  static constexpr size_t kExamples = 5;

  // `reason` must outlive the Explain (filters pass string literals).
  template <typename DetailFn>
  void Reject(std::string_view reason, const NodeView& node, DetailFn&& detail) {
    Tally& tally = TallyFor(reason);
    ++tally.count;
    if (tally.examples.size() < kExamplesPerReason) {
      tally.examples.push_back(node.name + ": " + std::forward<DetailFn>(detail)());
    }
  }

  void Evaluated() { ++evaluated_; }
  void Feasible() { ++feasible_; }

  size_t RejectedFor(std::string_view reason) const;  // for tests and callers that branch on it

  Explanation Finish(size_t nodes_total) &&;

 private:
  struct Tally {
    std::string_view reason;
    size_t count = 0;
    std::vector<std::string> examples;
  };
  Tally& TallyFor(std::string_view reason);

  size_t evaluated_ = 0;
  size_t feasible_ = 0;
  std::vector<Tally> tallies_;  // a handful of reasons: a vector beats a map
};

// "512 MiB", "2 GiB": memory the way users read it.
std::string FormatMiB(uint64_t mib);

}  // namespace phoenix::supervisor::placement
