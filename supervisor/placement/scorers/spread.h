// Scorer for PlacementStrategy::kSpread: favor the emptiest node (2 * free fraction - 1), so load
// evens out and one node's failure takes down less.
#pragma once

#include "supervisor/placement/scorers/scorer.h"

namespace phoenix::supervisor::placement {

class SpreadScorer final : public Scorer {
 public:
  using Scorer::Scorer;
  std::string_view Name() const override { return "spread"; }
  bool Applies(const RequestContext& context) const override {
    return context.request().strategy == PlacementStrategy::kSpread;
  }
  double Score(const NodeView& node, size_t index, const RequestContext& context) const override;
};

}  // namespace phoenix::supervisor::placement
