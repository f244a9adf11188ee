#include "supervisor/placement/filters/distinct_hosts.h"

#include <string>

namespace phoenix::supervisor::placement {

bool DistinctHostsFilter::Feasible(const NodeView& node, size_t index,
                                   const RequestContext& context, Explain& explain) const {
  if (!context.request().distinct_hosts) return true;
  uint32_t replicas = context.ReplicasOn(index);
  if (replicas == 0) return true;
  explain.Reject(kReason, node, [&] {
    return "already runs " + std::to_string(replicas) + " replica" + (replicas == 1 ? "" : "s") +
           " of " + context.request().service;
  });
  return false;
}

}  // namespace phoenix::supervisor::placement
