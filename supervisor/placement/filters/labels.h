// Filter: the node carries every label of the request's node_selector with the same value.
#pragma once

#include "supervisor/placement/filters/filter.h"

namespace phoenix::supervisor::placement {

class LabelsFilter final : public Filter {
 public:
  static constexpr std::string_view kReason = "labels";
  static bool Passes(const NodeView& node, const PlacementRequest& request);
  std::string_view Name() const override { return kReason; }
  bool Feasible(const NodeView& node, size_t index, const RequestContext& context,
                Explain& explain) const override;
};

}  // namespace phoenix::supervisor::placement
