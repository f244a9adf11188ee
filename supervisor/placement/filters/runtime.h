// Filter: the node can run the request's runtime (vm, microvm, container).
#pragma once

#include "supervisor/placement/filters/filter.h"

namespace phoenix::supervisor::placement {

class RuntimeFilter final : public Filter {
 public:
  static constexpr std::string_view kReason = "runtime";
  std::string_view Name() const override { return kReason; }
  bool Feasible(const NodeView& node, size_t index, const RequestContext& context,
                Explain& explain) const override;
};

}  // namespace phoenix::supervisor::placement
