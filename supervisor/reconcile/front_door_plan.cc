#include "supervisor/reconcile/front_door_plan.h"

#include <algorithm>

#include "proto/support/ip_address.h"

namespace phoenix::supervisor {
namespace {

bool Serves(const FrontDoorReplicaView& r) {
  return !r.node_down && r.guest_state == GuestState::kRunning && r.healthy;
}

}  // namespace

std::vector<FrontDoorService> PlanFrontDoor(const std::vector<FrontDoorServiceView>& services) {
  std::vector<FrontDoorService> out;
  for (const FrontDoorServiceView& view : services) {
    FrontDoorService service{
        .name = view.name, .port = view.door.port, .protocol = view.door.protocol};
    for (const FrontDoorReplicaView& r : view.replicas) {
      if (!Serves(r)) continue;
      if (IsIpLiteral(r.instance_address)) {
        service.servers.push_back(FrontDoorServer{.name = r.guest,
                                                  .address = r.instance_address,
                                                  .port = view.door.guest_port,
                                                  .zone = r.zone,
                                                  .draining = r.draining});
        continue;
      }
      for (const std::string& text : r.endpoints) {
        std::optional<EndpointParts> e = ParseEndpointText(text);
        if (!e || e->guest_port != view.door.guest_port || e->host_port == 0 ||
            !IsIpLiteral(e->host_ip)) {
          continue;
        }
        std::string address = e->host_ip;
        if (IsUnspecifiedAddress(address)) {
          if (!IsIpLiteral(r.node_address)) break;  // nowhere to reach it
          address = r.node_address;
        }
        service.servers.push_back(FrontDoorServer{.name = r.guest,
                                                  .address = std::move(address),
                                                  .port = e->host_port,
                                                  .zone = r.zone,
                                                  .draining = r.draining});
        break;
      }
    }
    std::ranges::sort(service.servers, {}, &FrontDoorServer::name);
    out.push_back(std::move(service));
  }
  std::ranges::sort(out, {}, &FrontDoorService::name);
  return out;
}

NodeRoutePlan PlanNodeRoutes(const std::vector<NodeRoute>& candidates) {
  struct Parsed {
    const NodeRoute* route;
    Ipv4Subnet subnet;
  };
  std::vector<Parsed> usable;
  for (const NodeRoute& c : candidates) {
    auto subnet = ParseIpv4Subnet(c.subnet);
    if (subnet && IsIpLiteral(c.via)) usable.push_back({&c, *subnet});
  }
  NodeRoutePlan plan;
  for (const Parsed& p : usable) {
    const bool overlaps = std::ranges::any_of(usable, [&](const Parsed& other) {
      return other.route != p.route && other.subnet.Overlaps(p.subnet);
    });
    if (overlaps) {
      plan.overlapping.push_back(p.route->node);
    } else {
      plan.routes.push_back(*p.route);
    }
  }
  std::ranges::sort(plan.routes, {}, &NodeRoute::node);
  std::ranges::sort(plan.overlapping);
  return plan;
}

uint64_t NextFrontDoorVersion(uint64_t last, TimePoint now) {
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch());
  return std::max(last + 1, static_cast<uint64_t>(std::max<int64_t>(micros.count(), 0)));
}

}  // namespace phoenix::supervisor
