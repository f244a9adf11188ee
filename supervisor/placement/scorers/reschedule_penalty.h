// Scorer: -1 on the node a replacement is leaving (PlacementRequest::leaving_node), 0 elsewhere.
// A replacement usually leaves a node because its replica failed or the node is being emptied, so
// going back is the last resort. Applies only to requests with a leaving node.
#pragma once

#include "supervisor/placement/scorers/scorer.h"

namespace phoenix::supervisor::placement {

class ReschedulePenaltyScorer final : public Scorer {
 public:
  using Scorer::Scorer;
  std::string_view Name() const override { return "reschedule-penalty"; }
  bool Applies(const RequestContext& context) const override {
    return context.request().leaving_node.has_value();
  }
  double Score(const NodeView& node, size_t index, const RequestContext& context) const override;
};

}  // namespace phoenix::supervisor::placement
