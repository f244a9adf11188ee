// Scorer: fewer replicas of the same service on the node is better: -n / (n + 1) for n replicas
// already there (0, -0.5, -0.67, ...), so a node's failure takes as few of them as possible.
#pragma once

#include "supervisor/placement/scorers/scorer.h"

namespace phoenix::supervisor::placement {

class AntiAffinityScorer final : public Scorer {
 public:
  using Scorer::Scorer;
  std::string_view Name() const override { return "anti-affinity"; }
  bool Applies(const RequestContext& /*context*/) const override { return true; }
  double Score(const NodeView& node, size_t index, const RequestContext& context) const override;
};

}  // namespace phoenix::supervisor::placement
