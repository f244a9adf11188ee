#include "supervisor/placement/filters/runtime.h"

#include <string>

namespace phoenix::supervisor::placement {

bool RuntimeFilter::Feasible(const NodeView& node, size_t index, const RequestContext& context,
                             Explain& explain) const {
  // The packed facts hold the node's runtimes as bits, computed once per plan.
  if (context.plan().Facts(index).runtimes & RuntimeBit(context.request().runtime)) return true;
  explain.Reject(kReason, node, [&] {
    return "no " + std::string(RuntimeKindName(context.request().runtime)) + " runtime";
  });
  return false;
}

}  // namespace phoenix::supervisor::placement
