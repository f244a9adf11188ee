// Filter: the node has the vCPUs and memory the replica needs free, where free = capacity -
// allocated - what earlier decisions of this plan put there. A node short of both is counted
// under "cpu" (one reason per rejected node keeps the counts summing to the nodes rejected).
#pragma once

#include "supervisor/placement/filters/filter.h"

namespace phoenix::supervisor::placement {

class FitFilter final : public Filter {
 public:
  static constexpr std::string_view kCpuReason = "cpu";
  static constexpr std::string_view kMemoryReason = "memory";
  std::string_view Name() const override { return "fit"; }
  bool Feasible(const NodeView& node, size_t index, const RequestContext& context,
                Explain& explain) const override;
};

}  // namespace phoenix::supervisor::placement
