// Scorer: 1 when the request's image is already on the node (no pull, faster start), else 0.
// Applies only to requests naming an image.
#pragma once

#include "supervisor/placement/scorers/scorer.h"

namespace phoenix::supervisor::placement {

class ImageLocalityScorer final : public Scorer {
 public:
  using Scorer::Scorer;
  std::string_view Name() const override { return "image-locality"; }
  bool Applies(const RequestContext& context) const override {
    return !context.request().image.empty();
  }
  double Score(const NodeView& node, size_t index, const RequestContext& context) const override;
};

}  // namespace phoenix::supervisor::placement
