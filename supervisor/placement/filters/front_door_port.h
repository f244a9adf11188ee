// Filter: the node's front door can serve the service's front-door port (its agent reported that
// port taken there by another process): a node that cannot answer on the service's one address
// does not get its replicas either.
#pragma once

#include "supervisor/placement/filters/filter.h"

namespace phoenix::supervisor::placement {

class FrontDoorPortFilter final : public Filter {
 public:
  static constexpr std::string_view kReason = "front-door-port";
  std::string_view Name() const override { return kReason; }
  bool Feasible(const NodeView& node, size_t index, const RequestContext& context,
                Explain& explain) const override;
};

}  // namespace phoenix::supervisor::placement
