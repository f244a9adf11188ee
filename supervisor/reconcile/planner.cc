#include "supervisor/reconcile/planner.h"

#include <algorithm>

namespace phoenix::supervisor {
namespace {

using ReplicaList = std::vector<const ReplicaPlacement*>;

Resources NeedOf(const ServiceSpec& spec) { return Resources{spec.vcpus, spec.memory_mib}; }

std::string LeaveReason(const std::map<std::string, PlannerNode>& nodes, const std::string& node) {
  auto it = nodes.find(node);
  if (it == nodes.end()) return "node " + node + " is no longer known";
  if (it->second.state == NodeState::kDown) return "node " + node + " is DOWN";
  return "node " + node + " is drained";
}

bool ServiceNeedsWork(const Service& s, const std::map<std::string, PlannerNode>& nodes) {
  if (s.replicas.size() != s.spec.replicas) return true;
  return std::ranges::any_of(s.replicas, [&](const ReplicaPlacement& r) {
    return r.node.empty() || !NodeKeepsReplicas(nodes, r.node);
  });
}

// Chooses `excess` replicas to remove: pending first, then those whose node is gone, then one at a
// time from the zone holding the most (highest index first), so scale-in keeps the spread.
std::vector<const ReplicaPlacement*> ScaleInVictims(
    const ReplicaList& replicas, size_t excess, const std::map<std::string, PlannerNode>& nodes) {
  std::vector<const ReplicaPlacement*> victims;
  auto take = [&](auto predicate) {
    for (auto it = replicas.rbegin(); it != replicas.rend() && victims.size() < excess; ++it) {
      if (std::ranges::find(victims, *it) == victims.end() && predicate(**it)) {
        victims.push_back(*it);
      }
    }
  };
  take([](const ReplicaPlacement& r) { return r.node.empty(); });
  take([&](const ReplicaPlacement& r) { return !NodeKeepsReplicas(nodes, r.node); });
  while (victims.size() < excess) {
    std::map<std::string, std::vector<const ReplicaPlacement*>> by_zone;
    for (const ReplicaPlacement* r : replicas) {
      if (std::ranges::find(victims, r) == victims.end()) {
        by_zone[nodes.at(r->node).record.zone].push_back(r);
      }
    }
    if (by_zone.empty()) break;
    auto crowded = std::ranges::max_element(
        by_zone, [](const auto& a, const auto& b) { return a.second.size() < b.second.size(); });
    victims.push_back(std::ranges::max(crowded->second, {}, &ReplicaPlacement::index));
  }
  return victims;
}

}  // namespace

bool NodeKeepsReplicas(const std::map<std::string, PlannerNode>& nodes, const std::string& node) {
  auto it = nodes.find(node);
  return it != nodes.end() && it->second.state != NodeState::kDown && !it->second.record.drained;
}

ReconcilePlan PlanReconcile(const PlannerInput& input, const placement::Options& options) {
  const auto& services = *input.services;
  const auto& nodes = *input.nodes;
  ReconcilePlan plan;
  if (std::ranges::none_of(services,
                           [&](const auto& s) { return ServiceNeedsWork(s.second, nodes); })) {
    return plan;  // the common case (heartbeats, hellos of known nodes): no view to build
  }

  placement::ClusterView view;
  std::map<std::string, size_t> index_of;
  view.nodes.reserve(nodes.size());
  for (const auto& [name, n] : nodes) {
    index_of[name] = view.nodes.size();
    view.nodes.push_back(placement::NodeView{
        .name = name,
        .zone = n.record.zone,
        .labels = n.record.labels,
        .capacity = n.record.capacity,
        .allocated = n.reported_allocated,
        .runtimes = n.record.runtimes,
        .state = n.state,
        .drained = n.record.drained,
        .images = n.images,
        .taken_front_door_ports = n.taken_front_door_ports,
    });
  }
  // Replicas already assigned but not yet reported by their node still claim their resources.
  for (const auto& [name, s] : services) {
    for (const ReplicaPlacement& r : s.replicas) {
      auto node = nodes.find(r.node);
      if (node == nodes.end()) continue;
      if (node->second.reported_guests.contains(ReplicaGuestName(name, r.index, r.generation))) {
        continue;
      }
      placement::NodeView& v = view.nodes[index_of.at(r.node)];
      v.allocated.vcpus += s.spec.vcpus;
      v.allocated.memory_mib += s.spec.memory_mib;
    }
  }

  for (const auto& [name, s] : services) {
    if (!ServiceNeedsWork(s, nodes)) continue;
    ReplicaList replicas;
    for (const ReplicaPlacement& r : s.replicas) replicas.push_back(&r);

    std::vector<ReplicaPlacement> added;  // scale-out: new replicas at the lowest free indexes
    if (replicas.size() > s.spec.replicas) {
      for (const ReplicaPlacement* victim :
           ScaleInVictims(replicas, replicas.size() - s.spec.replicas, nodes)) {
        plan.changes.push_back({.kind = ReplicaChange::Kind::kRemove,
                                .service = name,
                                .index = victim->index,
                                .from_node = victim->node,
                                .reason = "scale-in"});
        std::erase(replicas, victim);
      }
    } else {
      std::set<uint32_t> used;
      for (const ReplicaPlacement* r : replicas) used.insert(r->index);
      for (uint32_t index = 0; replicas.size() + added.size() < s.spec.replicas; ++index) {
        if (!used.contains(index)) added.push_back(ReplicaPlacement{.index = index});
      }
      for (const ReplicaPlacement& r : added) replicas.push_back(&r);
    }

    std::vector<const ReplicaPlacement*> homeless;
    std::vector<size_t> staying_nodes;
    for (const ReplicaPlacement* r : replicas) {
      if (!r->node.empty() && NodeKeepsReplicas(nodes, r->node)) {
        staying_nodes.push_back(index_of.at(r->node));
      } else {
        homeless.push_back(r);
      }
    }
    if (homeless.empty()) continue;

    std::vector<placement::PlacementRequest> requests;
    for (const ReplicaPlacement* r : homeless) {
      placement::PlacementRequest req{
          .service = name,
          .index = r->index,
          .runtime = s.spec.runtime,
          .image = s.spec.image,
          .need = NeedOf(s.spec),
          .spread_attribute = s.spec.spread_attribute,
          .max_skew = s.spec.max_skew,
          .strategy = s.spec.strategy,
          .node_selector = s.spec.node_selector,
          .distinct_hosts = s.spec.distinct_hosts,
          .service_replica_nodes = staying_nodes,
          .front_door_port = s.spec.front_door ? s.spec.front_door->port : uint16_t{0},
      };
      if (auto it = index_of.find(r->node); it != index_of.end()) req.leaving_node = it->second;
      requests.push_back(std::move(req));
    }
    placement::Plan placed = placement::Place(view, requests, options);

    for (size_t i = 0; i < homeless.size(); ++i) {
      const ReplicaPlacement& r = *homeless[i];
      const placement::Decision& d = placed.decisions[i];
      ReplicaChange change{.service = name, .index = r.index, .from_node = r.node};
      if (d.node) {
        placement::NodeView& target = view.nodes[*d.node];
        target.allocated.vcpus += s.spec.vcpus;
        target.allocated.memory_mib += s.spec.memory_mib;
        change.kind = r.node.empty() ? ReplicaChange::Kind::kPlace : ReplicaChange::Kind::kReplace;
        change.to_node = target.name;
        change.generation = r.generation + 1;
        if (!r.node.empty()) change.reason = LeaveReason(nodes, r.node);
      } else {
        change.kind = ReplicaChange::Kind::kPending;
        change.reason = d.explanation.Summary();
        if (!r.node.empty()) change.reason = LeaveReason(nodes, r.node) + "; " + change.reason;
      }
      plan.changes.push_back(std::move(change));
    }
  }
  return plan;
}

NodeState NextNodeState(NodeState current, bool connected, std::chrono::milliseconds silence,
                        const LivenessTimeouts& timeouts) {
  if (current == NodeState::kDown || silence >= timeouts.down_after) return NodeState::kDown;
  if (!connected || silence >= timeouts.suspect_after) return NodeState::kSuspect;
  return NodeState::kReady;
}

}  // namespace phoenix::supervisor
