// Controller::Impl, the agents: liveness (READY, SUSPECT, DOWN, draining replicas' end) on the
// tick, and what every agent link says (hello, reports, goodbye).
#include "supervisor/reconcile/controller_impl.h"

namespace phoenix::supervisor {

void Controller::Impl::ScheduleTick() {
  tick.expires_after(options.tick);
  tick.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    OnTick();
    PublishFrontDoor();
    ScheduleTick();
  });
}

void Controller::Impl::OnTick() {
  const auto now = SteadyClock::now();
  const LivenessTimeouts timeouts{options.suspect_after, options.down_after};
  Draft d;
  for (auto& [name, e] : nodes) {
    const auto silence = std::chrono::duration_cast<std::chrono::milliseconds>(now - e.last_seen);
    const NodeState next = NextNodeState(e.plan.state, e.session != nullptr, silence, timeouts);
    if (next == e.plan.state) continue;
    e.plan.state = next;
    e.live.state = next;
    if (next == NodeState::kSuspect) {
      e.live.state_reason = e.session == nullptr ? "link closed " + Seconds(now - e.last_seen) +
                                                       " after the last heartbeat"
                                                 : "no heartbeat for " + Seconds(now - e.last_seen);
      AddEvent(d, ClusterEventType::kNodeSuspect, "", name,
               "node " + name + " is SUSPECT: " + e.live.state_reason);
    } else if (next == NodeState::kDown) {
      e.live.state_reason = "no heartbeat for " + Seconds(now - e.last_seen);
      AddEvent(d, ClusterEventType::kNodeDown, "", name,
               "node " + name + " is DOWN: " + e.live.state_reason +
                   "; its replicas are placed elsewhere");
    }
  }
  for (const Draining& dr : draining) {
    if (dr.until > now) continue;
    std::string how = "drained";
    if (dr.front_door) {
      const DoorLoad load = DoorLoadOf(dr.service, dr.guest(), StoredNow());
      if (load.in_flight > 0 && now < dr.deadline) continue;
      if (load.in_flight > 0) {
        how = "drain deadline reached with " + std::to_string(load.in_flight) +
              " requests still in flight";
      } else if (load.seen) {
        how = "drained, no request in flight";
      }
    }
    d.drain_remove.insert(dr.guest());
    AddEvent(d, ClusterEventType::kReplicaRemoved, dr.service, dr.placement.node,
             "replica " + std::to_string(dr.placement.index) + " of " + dr.service + " (" +
                 dr.guest() + ") stops on " + dr.placement.node + ": " + how);
  }
  const bool retry_pending = now - last_pending_retry >= kPendingRetry;
  if (retry_pending) last_pending_retry = now;
  if (!d.events.empty() || retry_pending) (void)Commit(d);
}

void Controller::Impl::OnConnected(AgentSession* session, AgentHello hello) {
  const std::string name = hello.node.name;
  const auto now = SteadyClock::now();
  Draft d;
  const bool is_new = !nodes.contains(name);
  NodeEntry& e = nodes[name];
  if (is_new) {
    e.plan.record.name = name;
    e.plan.record.joined_at = StoredNow();
  }
  NodeRecord& record =
      is_new ? d.nodes.emplace(name, e.plan.record).first->second : DraftNode(d, name);
  record.zone = hello.node.zone;
  record.labels = hello.node.labels;
  record.capacity = hello.node.capacity;
  record.runtimes = hello.node.runtimes;
  // A node that applied more than this supervisor remembers (its state was restored from an
  // older backup, say) must still accept what comes next.
  if (hello.applied_version > record.assignment_version) {
    record.assignment_version = hello.applied_version + 1;
  }
  if (record == e.plan.record && !is_new) d.nodes.erase(name);

  if (e.session != nullptr && e.session != session) {
    e.session->Close(Error{ErrorCode::kAborted, "replaced by a newer link from node " + name});
    session_nodes.erase(e.session);
  }
  e.session = session;
  session_nodes[session] = name;
  e.last_seen = now;
  e.live.connected = true;
  e.live.last_heartbeat = Clock::now();
  e.live.allocated = hello.allocated;
  e.live.applied_version = hello.applied_version;
  e.live.images = hello.images;
  e.live.agent_version = hello.agent_version;
  e.live.state_reason.clear();
  e.plan.reported_allocated = hello.allocated;
  e.plan.images = hello.images;
  const NodeState before = e.plan.state;
  e.plan.state = NodeState::kReady;
  e.live.state = NodeState::kReady;
  if (is_new) {
    AddEvent(d, ClusterEventType::kNodeJoined, "", name,
             "node " + name + " joined (zone " + hello.node.zone + ", " +
                 std::to_string(hello.node.capacity.vcpus) + " vCPU, " +
                 std::to_string(hello.node.capacity.memory_mib) + " MiB)");
  } else if (before != NodeState::kReady) {
    AddEvent(d, ClusterEventType::kNodeReady, "", name,
             "node " + name + " is READY again (was " + std::string(NodeStateName(before)) +
                 "; it applied assignment " + std::to_string(hello.applied_version) + ")");
  }
  if (auto r = Commit(d); !r) {
    if (is_new) nodes.erase(name);
    session_nodes.erase(session);
    if (!is_new) e.session = nullptr;
    session->Close(r.error().Wrap("recording node " + name));
    return;
  }
  // Version 0 is "nothing assigned yet", which every agent already holds.
  if (e.plan.record.assignment_version > 0) SendAssignment(name);
  e.live.advertise_address = hello.advertise_address;
  e.live.instance_subnet = hello.instance_subnet;
  if (front_door.version > 0) session->SendFrontDoor(front_door);
}

void Controller::Impl::OnReported(AgentSession* session, AgentReport report) {
  auto sn = session_nodes.find(session);
  if (sn == session_nodes.end()) return;  // replaced or not yet accepted
  const std::string& name = sn->second;
  NodeEntry& e = nodes.at(name);
  e.reported = true;
  e.last_seen = SteadyClock::now();
  e.live.last_heartbeat = Clock::now();
  e.live.allocated = report.allocated;
  e.live.applied_version = report.applied_version;
  e.live.images = report.images;
  e.door_load = std::move(report.front_door);
  e.door_load_at = StoredNow();
  e.plan.reported_allocated = report.allocated;
  e.plan.images = report.images;
  std::map<uint16_t, std::string> taken;
  for (const BlockedFrontDoor& b : report.front_door_blocked) taken[b.port] = b.reason;
  if (taken != e.live.taken_front_door_ports) {
    for (const auto& [port, reason] : taken) {
      if (!e.live.taken_front_door_ports.contains(port)) {
        spdlog::warn("node {} cannot serve front-door port {}: {}", name, port, reason);
      }
    }
    e.live.taken_front_door_ports = taken;
    e.plan.taken_front_door_ports.clear();
    for (const auto& [port, _] : taken) e.plan.taken_front_door_ports.insert(port);
  }
  Draft d;
  if (e.plan.state != NodeState::kReady) {
    // Late heartbeats resumed on a link that stayed open. A node that went DOWN meanwhile was
    // already sent its fencing assignment on this same link, so it may simply count again.
    AddEvent(d, ClusterEventType::kNodeReady, "", name,
             "node " + name + " is READY again (heartbeats resumed after " +
                 std::string(NodeStateName(e.plan.state)) + ")");
    e.plan.state = NodeState::kReady;
    e.live.state = NodeState::kReady;
    e.live.state_reason.clear();
  }

  std::set<std::string> reported;
  std::set<std::string> stale_now;
  for (const ReportedGuest& g : report.guests) {
    reported.insert(g.name);
    std::optional<GuestKey> key = ParseGuestName(g.name);
    auto service = key ? services.find(key->service) : services.end();
    const ReplicaPlacement* replica = nullptr;
    if (service != services.end()) {
      auto it = std::ranges::find(service->second.replicas, key->index, &ReplicaPlacement::index);
      if (it != service->second.replicas.end() && it->generation == key->generation &&
          it->node == name) {
        replica = &*it;
      }
    }
    if (replica == nullptr) {
      const bool drains =
          std::ranges::any_of(draining, [&](const Draining& dr) { return dr.guest() == g.name; });
      if (!drains) stale_now.insert(g.name);
      continue;
    }
    ReplicaExtra& extra = extras[{key->service, key->index}];
    if (extra.generation != replica->generation)
      extra = ReplicaExtra{.generation = replica->generation};
    // A metric is fresh from when the supervisor first saw its sample, not by the agent's clock.
    TimePoint received = g.observed.reported_at;
    if (g.observed.metrics && extra.observed.metrics &&
        extra.observed.metrics->sampled_at == g.observed.metrics->sampled_at) {
      received = extra.observed.metrics_received_at;
    }
    extra.observed = g.observed;
    extra.observed.metrics_received_at = received;
    if (g.observed.metrics) {
      extra.cpu_seen = extra.cpu_seen || g.observed.metrics->cpu_valid;
      extra.rps_seen = extra.rps_seen || g.observed.metrics->requests_valid;
    }
    extra.observed_set = true;
    if (g.observed.guest_state == GuestState::kRunning && !extra.running_announced) {
      extra.running_announced = true;
      AddEvent(d, ClusterEventType::kReplicaRunning, key->service, name,
               "replica " + std::to_string(key->index) + " of " + key->service + " runs on " +
                   name + " as " + g.name);
    }
  }
  for (const std::string& gone : e.stale_guests) {
    if (!reported.contains(gone)) {
      AddEvent(d, ClusterEventType::kStaleGuestStopped, "", name,
               "stale guest " + gone + " is gone from node " + name + " (fenced by assignment " +
                   std::to_string(report.applied_version) + ")");
    }
  }
  e.stale_guests = std::move(stale_now);
  e.plan.reported_guests = std::move(reported);
  if (!d.events.empty()) (void)Commit(d);
  PublishFrontDoor();
}

void Controller::Impl::OnGone(AgentSession* session) {
  auto sn = session_nodes.find(session);
  if (sn == session_nodes.end()) return;
  const std::string name = sn->second;
  session_nodes.erase(sn);
  NodeEntry& e = nodes.at(name);
  if (e.session != session) return;
  e.session = nullptr;
  e.live.connected = false;
  if (e.plan.state == NodeState::kReady) {
    e.plan.state = NodeState::kSuspect;
    e.live.state = NodeState::kSuspect;
    e.live.state_reason = "link closed";
    Draft d;
    AddEvent(d, ClusterEventType::kNodeSuspect, "", name,
             "node " + name + " is SUSPECT: link closed");
    (void)Commit(d);
  }
}

}  // namespace phoenix::supervisor
