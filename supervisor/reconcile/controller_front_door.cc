// Controller::Impl, the front door: node routes, the table of every front-door service's servers
// (pure planning in front_door_plan.h), each replica's load over every front door, and sending
// the table to every agent when it changes.
#include "supervisor/reconcile/controller_impl.h"

namespace phoenix::supervisor {

NodeRoutePlan Controller::Impl::PlannedNodeRoutes() const {
  std::vector<NodeRoute> candidates;
  for (const auto& [name, e] : nodes) {
    if (e.live.instance_subnet.empty()) continue;
    candidates.push_back(
        NodeRoute{.node = name, .subnet = e.live.instance_subnet, .via = e.live.advertise_address});
  }
  return PlanNodeRoutes(candidates);
}

std::vector<FrontDoorService> Controller::Impl::PlannedFrontDoor(
    const std::vector<NodeRoute>& routes) const {
  std::vector<FrontDoorServiceView> views;
  auto view_of = [&](const std::string& service, const ReplicaPlacement& r, bool draining) {
    FrontDoorReplicaView v{.guest = ReplicaGuestName(service, r.index, r.generation),
                           .draining = draining};
    if (auto node = nodes.find(r.node); node != nodes.end()) {
      v.zone = node->second.plan.record.zone;
      v.node_address = node->second.live.advertise_address;
      v.node_down = node->second.plan.state == NodeState::kDown;
    } else {
      v.node_down = true;
    }
    const bool routed = std::ranges::find(routes, r.node, &NodeRoute::node) != routes.end();
    auto it = extras.find({service, r.index});
    if (it != extras.end() && it->second.observed_set && it->second.generation == r.generation) {
      v.guest_state = it->second.observed.guest_state;
      v.healthy = it->second.observed.healthy;
      v.endpoints = it->second.observed.endpoints;
      if (routed) v.instance_address = it->second.observed.node_address;
    }
    return v;
  };
  for (const auto& [name, service] : services) {
    if (!service.spec.front_door) continue;
    FrontDoorServiceView view{.name = name, .door = *service.spec.front_door};
    for (const ReplicaPlacement& r : service.replicas) {
      if (!r.node.empty()) view.replicas.push_back(view_of(name, r, false));
    }
    views.push_back(std::move(view));
  }
  for (const Draining& dr : draining) {
    auto view = std::ranges::find(views, dr.service, &FrontDoorServiceView::name);
    if (view == views.end()) continue;
    FrontDoorReplicaView v = view_of(dr.service, dr.placement, true);
    // A draining replica's observation was dropped with its index; it is in if it was reachable.
    v.guest_state = GuestState::kRunning;
    v.healthy = true;
    v.endpoints = dr.endpoints;
    if (std::ranges::find(routes, dr.placement.node, &NodeRoute::node) != routes.end()) {
      v.instance_address = dr.node_address;
    }
    view->replicas.push_back(std::move(v));
  }
  return PlanFrontDoor(views);
}

bool Controller::Impl::FrontDoorKnown() const {
  for (const auto& [name, service] : services) {
    if (!service.spec.front_door) continue;
    for (const ReplicaPlacement& r : service.replicas) {
      auto node = nodes.find(r.node);
      if (node != nodes.end() && !node->second.reported &&
          node->second.plan.state != NodeState::kDown) {
        return false;
      }
    }
  }
  return true;
}

void Controller::Impl::PublishFrontDoor() {
  if (!FrontDoorKnown()) return;
  NodeRoutePlan routes = PlannedNodeRoutes();
  std::vector<FrontDoorService> planned = PlannedFrontDoor(routes.routes);
  if (planned == front_door.services && routes.routes == front_door.routes &&
      (front_door.version > 0 || (planned.empty() && routes.routes.empty()))) {
    return;
  }
  if (routes.overlapping != overlapping_subnets) {
    overlapping_subnets = routes.overlapping;
    if (!overlapping_subnets.empty()) {
      spdlog::warn(
          "nodes {} have overlapping instance subnets: their replicas are reached at their "
          "published ports; give each node its own --instance-subnet",
          fmt::join(overlapping_subnets, ", "));
    }
  }
  front_door.services = std::move(planned);
  front_door.routes = std::move(routes.routes);
  front_door.version = NextFrontDoorVersion(front_door.version, Clock::now());
  for (auto& [name, e] : nodes) {
    if (e.session != nullptr) e.session->SendFrontDoor(front_door);
  }
}

auto Controller::Impl::DoorLoadOf(const std::string& service, const std::string& guest,
                                  TimePoint now) const -> DoorLoad {
  DoorLoad out;
  for (const auto& [_, e] : nodes) {
    if (now - e.door_load_at > options.max_metric_age) continue;
    for (const FrontDoorServerLoad& s : e.door_load) {
      if (s.service != service || s.server != guest) continue;
      out.requests_per_second += s.requests_per_second;
      out.in_flight += s.in_flight;
      if (!out.seen || e.door_load_at < out.oldest) out.oldest = e.door_load_at;
      out.seen = true;
    }
  }
  return out;
}

}  // namespace phoenix::supervisor
