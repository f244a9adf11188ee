// Filter: the node is READY and not drained. SUSPECT nodes are skipped too: a node that missed a
// heartbeat may be on its way DOWN, and a replica placed there would be replaced again at once.
#pragma once

#include "supervisor/placement/filters/filter.h"

namespace phoenix::supervisor::placement {

class NodeStateFilter final : public Filter {
 public:
  static constexpr std::string_view kReason = "node-state";
  static bool Passes(const NodeView& node) {
    return node.state == NodeState::kReady && !node.drained;
  }
  std::string_view Name() const override { return kReason; }
  bool Feasible(const NodeView& node, size_t index, const RequestContext& context,
                Explain& explain) const override;
};

}  // namespace phoenix::supervisor::placement
