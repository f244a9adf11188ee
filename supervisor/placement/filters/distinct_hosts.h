// Filter: with distinct_hosts, no other replica of the service (live, or placed earlier in this
// plan) is on the node. Needs the service's replicas per node, hence RequestContext.
#pragma once

#include "supervisor/placement/filters/filter.h"

namespace phoenix::supervisor::placement {

class DistinctHostsFilter final : public Filter {
 public:
  static constexpr std::string_view kReason = "distinct-hosts";
  std::string_view Name() const override { return kReason; }
  bool Feasible(const NodeView& node, size_t index, const RequestContext& context,
                Explain& explain) const override;
};

}  // namespace phoenix::supervisor::placement
