// Scorer for PlacementStrategy::kBinpack: favor the fullest node (1 - 2 * free fraction), so whole
// nodes stay empty for large replicas or can be powered down.
#pragma once

#include "supervisor/placement/scorers/scorer.h"

namespace phoenix::supervisor::placement {

class BinpackScorer final : public Scorer {
 public:
  using Scorer::Scorer;
  std::string_view Name() const override { return "binpack"; }
  bool Applies(const RequestContext& context) const override {
    return context.request().strategy == PlacementStrategy::kBinpack;
  }
  double Score(const NodeView& node, size_t index, const RequestContext& context) const override;
};

}  // namespace phoenix::supervisor::placement
