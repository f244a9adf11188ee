#include "supervisor/placement/filters/front_door_port.h"

#include <string>

namespace phoenix::supervisor::placement {

bool FrontDoorPortFilter::Feasible(const NodeView& node, size_t /*index*/,
                                   const RequestContext& context, Explain& explain) const {
  const uint16_t port = context.request().front_door_port;
  if (port == 0 || !node.taken_front_door_ports.contains(port)) return true;
  explain.Reject(kReason, node, [&] {
    return "front-door port " + std::to_string(port) + " is taken on the node";
  });
  return false;
}

}  // namespace phoenix::supervisor::placement
