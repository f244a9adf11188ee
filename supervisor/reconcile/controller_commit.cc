// Controller::Impl, drafts and commits: every change is a Draft of copies and events, planned
// (placement) and committed to the store in one batch before memory changes; and the status the
// admin API shows. See controller_impl.h.
#include "supervisor/reconcile/controller_impl.h"

namespace phoenix::supervisor {

Service& Controller::Impl::DraftService(Draft& d, const std::string& name) {
  auto it = d.services.find(name);
  if (it != d.services.end()) return it->second;
  return d.services.emplace(name, services.at(name)).first->second;
}

NodeRecord& Controller::Impl::DraftNode(Draft& d, const std::string& name) {
  auto it = d.nodes.find(name);
  if (it != d.nodes.end()) return it->second;
  return d.nodes.emplace(name, nodes.at(name).plan.record).first->second;
}

void Controller::Impl::AddEvent(Draft& d, ClusterEventType type, std::string service,
                                std::string node, std::string message, std::string actor) {
  d.events.push_back(ClusterEvent{.time = Clock::now(),
                                  .type = type,
                                  .service = std::move(service),
                                  .node = std::move(node),
                                  .message = std::move(message),
                                  .actor = std::move(actor)});
}

std::map<std::string, Service> Controller::Impl::MergedServices(const Draft& d) const {
  std::map<std::string, Service> merged = services;
  for (const std::string& name : d.deleted_services) merged.erase(name);
  for (const auto& [name, s] : d.services) merged[name] = s;
  return merged;
}

const NodeRecord* Controller::Impl::MergedNode(const Draft& d, const std::string& name) const {
  if (auto it = d.nodes.find(name); it != d.nodes.end()) return &it->second;
  if (auto it = nodes.find(name); it != nodes.end()) return &it->second.plan.record;
  return nullptr;
}

bool Controller::Impl::Keeps(const Draft& d, const std::string& node) const {
  const NodeRecord* record = MergedNode(d, node);
  auto entry = nodes.find(node);
  return record != nullptr && entry != nodes.end() && !record->drained &&
         entry->second.plan.state != NodeState::kDown;
}

bool Controller::Impl::NeedsPlanning(const Draft& d,
                                     const std::map<std::string, Service>& merged) const {
  for (const auto& [name, s] : merged) {
    if (s.replicas.size() != s.spec.replicas) return true;
    for (const ReplicaPlacement& r : s.replicas) {
      if (r.node.empty() || !Keeps(d, r.node)) return true;
    }
  }
  return false;
}

void Controller::Impl::PlanInto(Draft& d) {
  // Most drafts (the liveness tick, a heartbeat's events) change no service: plan over the
  // committed map itself instead of a copy of it.
  std::map<std::string, Service> copy;
  const bool services_change = !d.services.empty() || !d.deleted_services.empty();
  if (services_change) copy = MergedServices(d);
  const std::map<std::string, Service>& merged = services_change ? copy : services;
  if (!NeedsPlanning(d, merged)) return;
  std::map<std::string, PlannerNode> planner_nodes;
  for (const auto& [name, e] : nodes) {
    PlannerNode& n = planner_nodes[name] = e.plan;
    if (const NodeRecord* r = MergedNode(d, name)) n.record = *r;
  }
  ReconcilePlan plan =
      PlanReconcile({.services = &merged, .nodes = &planner_nodes}, options.placement);
  for (const ReplicaChange& c : plan.changes) Apply(d, c);
}

void Controller::Impl::Apply(Draft& d, const ReplicaChange& c) {
  Service& s = DraftService(d, c.service);
  auto it = std::ranges::find(s.replicas, c.index, &ReplicaPlacement::index);
  ReplicaExtra& extra = extras[{c.service, c.index}];
  auto zone_of = [&](const std::string& node) {
    const NodeRecord* r = MergedNode(d, node);
    return r == nullptr ? std::string("?") : r->zone;
  };
  switch (c.kind) {
    case ReplicaChange::Kind::kRemove: {
      std::string drain_note;
      if (it != s.replicas.end()) {
        if (options.drain_grace.count() > 0 && !it->node.empty() && Keeps(d, it->node)) {
          const bool serving = extra.observed_set && extra.generation == it->generation &&
                               extra.observed.guest_state == GuestState::kRunning &&
                               extra.observed.healthy;
          d.drain_add.push_back(Draining{
              .service = c.service,
              .placement = *it,
              .guest_template = s.spec.guest_template,
              .until = SteadyClock::now() + options.drain_grace,
              .deadline =
                  SteadyClock::now() + std::max(options.drain_grace, options.drain_deadline),
              .front_door = s.spec.front_door.has_value(),
              .endpoints = serving ? extra.observed.endpoints : std::vector<std::string>{},
              .node_address = serving ? extra.observed.node_address : std::string()});
          drain_note = s.spec.front_door
                           ? "; it drains (no new requests) and stops once its requests in flight "
                             "finish, after " +
                                 Seconds(options.drain_grace) + " at the earliest and " +
                                 Seconds(std::max(options.drain_grace, options.drain_deadline)) +
                                 " at the latest"
                           : "; it left the endpoints and stops after " +
                                 Seconds(options.drain_grace) + " of draining";
        }
        s.replicas.erase(it);
      }
      extras.erase({c.service, c.index});
      AddEvent(d, ClusterEventType::kReplicaRemoved, c.service, c.from_node,
               "replica " + std::to_string(c.index) + " of " + c.service + " removed" +
                   (c.from_node.empty() ? "" : " from " + c.from_node) + " (" + c.reason + ")" +
                   drain_note);
      return;
    }
    case ReplicaChange::Kind::kPending: {
      if (it == s.replicas.end()) {
        s.replicas.push_back(ReplicaPlacement{.index = c.index});
        std::ranges::sort(s.replicas, {}, &ReplicaPlacement::index);
      } else {
        it->node.clear();
      }
      if (extra.pending_reason != c.reason || !c.from_node.empty()) {
        AddEvent(
            d, ClusterEventType::kReplicaPending, c.service, c.from_node,
            "replica " + std::to_string(c.index) + " of " + c.service + " is pending: " + c.reason);
      }
      extra.pending_reason = c.reason;
      return;
    }
    case ReplicaChange::Kind::kPlace:
    case ReplicaChange::Kind::kReplace: {
      if (it == s.replicas.end()) {
        s.replicas.push_back(ReplicaPlacement{.index = c.index});
        std::ranges::sort(s.replicas, {}, &ReplicaPlacement::index);
        it = std::ranges::find(s.replicas, c.index, &ReplicaPlacement::index);
      }
      const uint64_t old_generation = it->generation;
      it->node = c.to_node;
      it->generation = c.generation;
      extra = ReplicaExtra{.generation = c.generation};
      const std::string guest = ReplicaGuestName(c.service, c.index, c.generation);
      if (c.kind == ReplicaChange::Kind::kPlace) {
        AddEvent(d, ClusterEventType::kReplicaPlaced, c.service, c.to_node,
                 "replica " + std::to_string(c.index) + " of " + c.service + " placed on " +
                     c.to_node + " (zone " + zone_of(c.to_node) + ") as " + guest);
      } else {
        AddEvent(d, ClusterEventType::kReplicaReplaced, c.service, c.to_node,
                 "replica " + std::to_string(c.index) + " of " + c.service + " moved from " +
                     c.from_node + " to " + c.to_node + " (zone " + zone_of(c.to_node) + ") as " +
                     guest + ": " + c.reason + "; " +
                     ReplicaGuestName(c.service, c.index, old_generation) + " is fenced");
      }
      return;
    }
  }
}

std::vector<AssignedReplica> Controller::Impl::AssignmentOf(
    const std::map<std::string, Service>& all, const std::vector<Draining>& drains,
    const std::string& node) {
  std::vector<AssignedReplica> out;
  for (const Draining& dr : drains) {
    if (dr.placement.node != node || !all.contains(dr.service)) continue;
    out.push_back(AssignedReplica{.service = dr.service,
                                  .index = dr.placement.index,
                                  .generation = dr.placement.generation,
                                  .guest = dr.guest(),
                                  .guest_template = dr.guest_template});
  }
  for (const auto& [name, s] : all) {
    for (const ReplicaPlacement& r : s.replicas) {
      if (r.node != node) continue;
      out.push_back(AssignedReplica{.service = name,
                                    .index = r.index,
                                    .generation = r.generation,
                                    .guest = ReplicaGuestName(name, r.index, r.generation),
                                    .guest_template = s.spec.guest_template});
    }
  }
  // A replica placed again while its old copy drains (same guest name): listed once.
  std::set<std::string> seen;
  std::erase_if(out, [&](const AssignedReplica& r) { return !seen.insert(r.guest).second; });
  return out;
}

auto Controller::Impl::DrainingAfter(const Draft& d) const -> std::vector<Draining> {
  std::vector<Draining> out;
  for (const Draining& dr : draining) {
    if (!d.drain_remove.contains(dr.guest())) out.push_back(dr);
  }
  out.insert(out.end(), d.drain_add.begin(), d.drain_add.end());
  return out;
}

NodeAssignment Controller::Impl::CurrentAssignment(const std::string& node) const {
  return NodeAssignment{.version = nodes.at(node).plan.record.assignment_version,
                        .replicas = AssignmentOf(services, draining, node)};
}

Result<void> Controller::Impl::Commit(Draft& d) {
  PlanInto(d);
  std::set<std::string> touched;
  auto touch = [&](const Service& s) {
    for (const ReplicaPlacement& r : s.replicas) {
      if (!r.node.empty()) touched.insert(r.node);
    }
  };
  for (const auto& [name, s] : d.services) {
    touch(s);
    if (auto old = services.find(name); old != services.end()) touch(old->second);
  }
  for (const std::string& name : d.deleted_services) touch(services.at(name));
  for (const Draining& dr : draining) {
    if (d.drain_remove.contains(dr.guest())) touched.insert(dr.placement.node);
  }
  for (const Draining& dr : d.drain_add) touched.insert(dr.placement.node);
  std::set<std::string> bumped;
  const std::map<std::string, Service> merged =
      touched.empty() ? std::map<std::string, Service>{} : MergedServices(d);
  const std::vector<Draining> drains_after = DrainingAfter(d);
  for (const std::string& node : touched) {
    if (!nodes.contains(node)) continue;
    if (AssignmentOf(services, draining, node) != AssignmentOf(merged, drains_after, node)) {
      DraftNode(d, node).assignment_version++;
      bumped.insert(node);
    }
  }
  if (d.services.empty() && d.deleted_services.empty() && d.nodes.empty() && d.events.empty() &&
      d.windows.empty()) {
    draining = drains_after;
    PublishFrontDoor();
    return {};
  }

  CommitBatch batch;
  for (const auto& [name, s] : d.services) {
    auto old = services.find(name);
    batch.put_services.push_back(
        {.service = s, .expected_version = old == services.end() ? 0 : old->second.version});
  }
  for (const std::string& name : d.deleted_services) {
    batch.delete_services.push_back({.name = name, .expected_version = services.at(name).version});
  }
  for (const auto& [name, n] : d.nodes) {
    batch.put_nodes.push_back({.node = n, .expected_version = nodes.at(name).plan.record.version});
  }
  for (const auto& [name, w] : d.windows) {
    if (auto it = d.services.find(name); it != d.services.end()) {
      it->second.autoscale = w;  // the service is written anyway: its value carries the window
    } else if (!d.deleted_services.contains(name)) {
      batch.put_windows.push_back({.service = name, .window = w});
    }
  }
  for (auto& p : batch.put_services) {
    if (auto it = d.windows.find(p.service.spec.name); it != d.windows.end()) {
      p.service.autoscale = it->second;
    }
  }
  batch.events = d.events;
  Result<CommitResult> committed = store.Commit(batch);
  if (!committed) {
    spdlog::error("commit refused, change not applied: {}", committed.error().ToString());
    return std::unexpected(committed.error());
  }

  size_t i = 0;
  for (auto& [name, s] : d.services) {
    s.version = committed->service_versions[i++];
    services[name] = s;
  }
  for (const std::string& name : d.deleted_services) services.erase(name);
  for (const auto& w : batch.put_windows) services.at(w.service).autoscale = w.window;
  draining = drains_after;
  i = 0;
  for (auto& [name, n] : d.nodes) {
    n.version = committed->node_versions[i++];
    nodes.at(name).plan.record = n;
  }
  for (const ClusterEvent& e : committed->events) {
    spdlog::info("{}: {}", ClusterEventTypeName(e.type), e.message);
  }
  if (!committed->events.empty()) hub.Published(committed->events.back().sequence);
  // Front doors first: a replica leaving its node's assignment has already left (or is
  // draining in) every HAProxy by the time its agent stops it.
  PublishFrontDoor();
  for (const std::string& node : bumped) SendAssignment(node);
  return {};
}

void Controller::Impl::SendAssignment(const std::string& node) {
  NodeEntry& e = nodes.at(node);
  if (e.session != nullptr) e.session->SendAssignment(CurrentAssignment(node));
}

void Controller::Impl::Reconcile() {
  Draft d;
  (void)Commit(d);  // errors are logged; the next trigger or tick retries
}

ReplicaState Controller::Impl::StateOf(const ReplicaPlacement& r, const ReplicaExtra* extra) const {
  if (r.node.empty()) return ReplicaState::kPending;
  auto node = nodes.find(r.node);
  if (node == nodes.end() || node->second.plan.state != NodeState::kReady) {
    return ReplicaState::kLost;
  }
  if (extra != nullptr && extra->observed_set && extra->generation == r.generation &&
      extra->observed.guest_state == GuestState::kRunning) {
    return ReplicaState::kRunning;
  }
  return ReplicaState::kAssigned;
}

ServiceStatus Controller::Impl::StatusOf(const Service& s) const {
  ServiceStatus out{.service = s};
  for (const ReplicaPlacement& r : s.replicas) {
    auto it = extras.find({s.spec.name, r.index});
    const ReplicaExtra* extra = it == extras.end() ? nullptr : &it->second;
    ReplicaStatus rs{.placement = r,
                     .guest = ReplicaGuestName(s.spec.name, r.index, r.generation),
                     .state = StateOf(r, extra)};
    if (auto node = nodes.find(r.node); node != nodes.end()) {
      rs.zone = node->second.plan.record.zone;
    }
    if (extra != nullptr) {
      if (extra->observed_set && extra->generation == r.generation) rs.observed = extra->observed;
      if (r.node.empty()) rs.pending_reason = extra->pending_reason;
    }
    if (s.spec.front_door) {
      // Its request rate is what every front door sent it, not what its agent's proxy saw.
      const DoorLoad load = DoorLoadOf(s.spec.name, rs.guest, StoredNow());
      if (load.seen) {
        GuestMetrics& m =
            rs.observed.metrics ? *rs.observed.metrics : rs.observed.metrics.emplace();
        m.requests_valid = true;
        m.requests_per_second = load.requests_per_second;
      }
    }
    if (rs.state == ReplicaState::kRunning) out.running++;
    out.replicas.push_back(std::move(rs));
  }
  if (s.spec.front_door) {
    for (const auto& [name, e] : nodes) {
      const std::string& address = e.live.advertise_address;
      if (e.plan.state != NodeState::kReady) continue;
      if (auto taken = e.live.taken_front_door_ports.find(s.spec.front_door->port);
          taken != e.live.taken_front_door_ports.end()) {
        out.front_door_problems.push_back(name + ": " + taken->second);
        continue;
      }
      if (address.empty()) continue;
      out.front_door_addresses.push_back(
          (address.find(':') != std::string::npos ? "[" + address + "]" : address) + ":" +
          std::to_string(s.spec.front_door->port));
    }
  }
  if (s.spec.autoscale) {
    auto it = autoscale_status.find(s.spec.name);
    AutoscaleStatus a =
        it == autoscale_status.end()
            ? AutoscaleStatus{.desired_replicas = s.spec.replicas, .state = "not evaluated yet"}
            : it->second;
    a.recent = s.autoscale.recent;
    out.autoscale = std::move(a);
  }
  return out;
}

NodeStatus Controller::Impl::NodeStatusOf(const std::string& name) const {
  const NodeEntry& e = nodes.at(name);
  NodeStatus out{.record = e.plan.record, .live = e.live};
  out.live.state = e.plan.state;
  for (const auto& [_, s] : services) {
    out.replicas += std::ranges::count(s.replicas, name, &ReplicaPlacement::node);
  }
  return out;
}

}  // namespace phoenix::supervisor
