#include "supervisor/placement/filters/node_state.h"

#include <string>

namespace phoenix::supervisor::placement {

bool NodeStateFilter::Feasible(const NodeView& node, size_t index, const RequestContext& context,
                               Explain& explain) const {
  // The packed facts hold Passes(node), computed once per plan.
  if (context.plan().Facts(index).ready) return true;
  explain.Reject(kReason, node, [&] {
    if (node.state != NodeState::kReady) return std::string(NodeStateName(node.state));
    return std::string("drained");
  });
  return false;
}

}  // namespace phoenix::supervisor::placement
