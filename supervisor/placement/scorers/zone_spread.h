// Scorer: favor the zone furthest below its share of the service. desired = (replicas in eligible
// zones + this one) / eligible zones; score = (desired - replicas in the node's zone) / desired,
// clamped to [-1, 1]: 1 for an empty zone, 0 at the even share, negative above it.
#pragma once

#include "supervisor/placement/scorers/scorer.h"

namespace phoenix::supervisor::placement {

class ZoneSpreadScorer final : public Scorer {
 public:
  using Scorer::Scorer;
  std::string_view Name() const override { return "zone-spread"; }
  bool Applies(const RequestContext& context) const override { return context.SpreadsByZone(); }
  double Score(const NodeView& node, size_t index, const RequestContext& context) const override;
};

}  // namespace phoenix::supervisor::placement
