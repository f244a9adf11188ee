#include "supervisor/placement/scorers/image_locality.h"

namespace phoenix::supervisor::placement {

double ImageLocalityScorer::Score(const NodeView& node, size_t /*index*/,
                                  const RequestContext& context) const {
  return node.images.contains(context.request().image) ? 1.0 : 0.0;
}

}  // namespace phoenix::supervisor::placement
