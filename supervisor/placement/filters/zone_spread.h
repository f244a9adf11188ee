// Filter: the zone spread's max skew is a hard limit. Placing on the node must not make its zone's
// replica count exceed (the fewest replicas in any eligible zone) + max_skew, where the eligible
// zones are those with a node passing the node-level checks for this request (READY, not drained,
// runtime, labels). A zone whose nodes are all DOWN therefore stops holding the others back, while
// a zone that is merely full still does: the spread is a failure-domain promise, and a full zone is
// a capacity problem the user should see as pending replicas, not as a silent pile-up in the rest.
// A max_skew of 0 is taken as 1 (0 could never place anything after the first replica).
// A node without a zone cannot be counted in any zone, so spread requests skip it.
#pragma once

#include "supervisor/placement/filters/filter.h"

namespace phoenix::supervisor::placement {

class ZoneSpreadFilter final : public Filter {
 public:
  static constexpr std::string_view kReason = "zone-skew";
  std::string_view Name() const override { return kReason; }
  bool Feasible(const NodeView& node, size_t index, const RequestContext& context,
                Explain& explain) const override;
};

}  // namespace phoenix::supervisor::placement
