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

uint64_t NextFrontDoorVersion(uint64_t last, TimePoint now) {
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch());
  return std::max(last + 1, static_cast<uint64_t>(std::max<int64_t>(micros.count(), 0)));
}

}  // namespace phoenix::supervisor
