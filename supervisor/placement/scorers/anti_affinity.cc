#include "supervisor/placement/scorers/anti_affinity.h"

namespace phoenix::supervisor::placement {

double AntiAffinityScorer::Score(const NodeView& /*node*/, size_t index,
                                 const RequestContext& context) const {
  uint32_t replicas = context.ReplicasOn(index);
  if (replicas == 0) return 0;  // not -0.0, which would print as "-0.00"
  return -static_cast<double>(replicas) / (replicas + 1);
}

}  // namespace phoenix::supervisor::placement
