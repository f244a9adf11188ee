#include "supervisor/reconcile/controller.h"

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <charconv>
#include <future>
#include <mutex>
#include <regex>

#include "supervisor/autoscale/autoscaler.h"
#include "supervisor/reconcile/front_door_plan.h"
#include "supervisor/reconcile/planner.h"

namespace phoenix::supervisor {
namespace asio = boost::asio;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr uint32_t kMaxReplicas = 1000;
// Pending replicas are retried this often even when nothing visible changed (a node's reported
// allocation may have shrunk).
constexpr auto kPendingRetry = std::chrono::seconds(2);

std::string Seconds(SteadyClock::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", std::chrono::duration<double>(d).count());
  return buf;
}

// Now at the precision the store keeps, so what memory holds equals what a restart loads.
TimePoint StoredNow() { return std::chrono::floor<std::chrono::microseconds>(Clock::now()); }

Result<void> ValidateSpec(const ServiceSpec& spec) {
  static const std::regex kName("[a-z0-9][a-z0-9-]{0,39}");
  if (!std::regex_match(spec.name, kName)) {
    return InvalidArgument("spec.name",
                           "must match [a-z0-9][a-z0-9-]{0,39} (lowercase letters, digits, '-')");
  }
  if (spec.replicas > kMaxReplicas) {
    return InvalidArgument("spec.replicas", "at most " + std::to_string(kMaxReplicas));
  }
  if (spec.image.empty()) return InvalidArgument("spec.template.image", "is required");
  if (spec.vcpus == 0 || spec.vcpus > spec::kMaxVcpus) {
    return InvalidArgument("spec.template.vcpus", "must be 1-" + std::to_string(spec::kMaxVcpus));
  }
  if (spec.memory_mib < spec::kMinMemoryMib) {
    return InvalidArgument("spec.template.memory_mib",
                           "must be at least " + std::to_string(spec::kMinMemoryMib) + " MiB");
  }
  if (!spec.spread_attribute.empty() && spec.spread_attribute != "zone") {
    return InvalidArgument("spec.spread.attribute", "only \"zone\" (or empty for no spread)");
  }
  if (spec.max_skew == 0) return InvalidArgument("spec.spread.max_skew", "must be at least 1");
  if (spec.autoscale) PHX_TRY(autoscale::ValidatePolicy(*spec.autoscale, "spec.autoscale"));
  return {};
}

std::string PolicyText(const AutoscalePolicy& p) {
  return "min " + std::to_string(p.min_replicas) + ", max " + std::to_string(p.max_replicas) +
         ", target " + std::string(AutoscaleMetricName(p.metric)) + "=" +
         autoscale::FormatValue(p.metric, p.target, 0) + ", scale-down window " +
         std::to_string(p.scale_down_stabilization_s) + " s";
}

// "<service>-<index>-<generation>" back into its parts; nullopt for other names.
struct GuestKey {
  std::string service;
  uint32_t index = 0;
  uint64_t generation = 0;
};
std::optional<GuestKey> ParseGuestName(std::string_view name) {
  size_t g = name.rfind('-');
  if (g == std::string_view::npos || g == 0) return std::nullopt;
  size_t i = name.rfind('-', g - 1);
  if (i == std::string_view::npos || i == 0) return std::nullopt;
  GuestKey key{.service = std::string(name.substr(0, i))};
  auto parse = [](std::string_view s, auto& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size() && !s.empty();
  };
  if (!parse(name.substr(i + 1, g - i - 1), key.index) ||
      !parse(name.substr(g + 1), key.generation)) {
    return std::nullopt;
  }
  return key;
}

}  // namespace

struct Controller::Impl {
  // A scaled-in replica still on its node until `until`.
  struct Draining {
    std::string service;
    ReplicaPlacement placement;
    std::string guest_template;
    SteadyClock::time_point until{};
    // Front-door replicas drain past `until` while requests to them are in flight, up to this.
    SteadyClock::time_point deadline{};
    bool front_door = false;
    // Where the front door reaches it while it drains; empty when it was not serving.
    std::vector<std::string> endpoints;
    std::string node_address;  // its own address on its node's instance network, if any
    std::string guest() const {
      return ReplicaGuestName(service, placement.index, placement.generation);
    }
  };

  // A change in progress: copies of the records it touches, and the events it will record.
  struct Draft {
    std::map<std::string, Service> services;  // new full values
    std::set<std::string> deleted_services;
    std::map<std::string, NodeRecord> nodes;
    std::vector<ClusterEvent> events;
    std::map<std::string, AutoscaleWindow> windows;  // window-only writes (no version bump)
    std::vector<Draining> drain_add;
    std::set<std::string> drain_remove;  // guest names whose grace ended
  };

  struct NodeEntry {
    PlannerNode plan;  // record + state + what the agent reported; record is the committed one
    NodeLive live;
    AgentSession* session = nullptr;
    SteadyClock::time_point last_seen{};
    std::set<std::string> stale_guests;  // reported guests the node should no longer run
    bool reported = false;               // a Status arrived since this supervisor started
    // What its front door sent every replica over its last window, and when that came.
    std::vector<FrontDoorServerLoad> door_load;
    TimePoint door_load_at{};
  };

  // A replica's load summed over every node's front door (fresh reports only).
  struct DoorLoad {
    double requests_per_second = 0;
    uint32_t in_flight = 0;
    bool seen = false;   // some node's front door has it
    TimePoint oldest{};  // the oldest report that counted
  };

  struct ReplicaExtra {
    uint64_t generation = 0;
    ReplicaObservation observed;
    bool observed_set = false;
    bool running_announced = false;
    std::string pending_reason;
    // Whether this instance ever reported a valid value: until then it counts as starting for the
    // autoscaler (0 load), after that a missing value means its reporter went quiet (at target).
    bool cpu_seen = false;
    bool rps_seen = false;
  };

  Impl(asio::io_context& loop, StateStore& store, EventHub& hub, const Options& options)
      : loop(loop), store(store), hub(hub), options(options), tick(loop) {}

  asio::io_context& loop;
  StateStore& store;
  EventHub& hub;
  const Options& options;
  asio::steady_timer tick;
  std::map<std::string, Service> services;
  std::map<std::string, NodeEntry> nodes;
  std::map<AgentSession*, std::string> session_nodes;
  // Reports not yet handled by the loop: at most one per session. A report is the node's whole
  // state, so a newer one replaces a queued one; an agent (or a slow loop) cannot grow the queue.
  std::mutex mailbox_mu;
  std::map<AgentSession*, AgentReport> mailbox;  // under mailbox_mu
  std::atomic<uint64_t> reports_replaced{0};
  std::map<std::pair<std::string, uint32_t>, ReplicaExtra> extras;
  SteadyClock::time_point last_pending_retry{};
  asio::steady_timer autoscale_timer{loop};
  std::map<std::string, AutoscaleStatus> autoscale_status;  // by service; not durable
  std::vector<Draining> draining;
  FrontDoorTable front_door;  // as last sent to every agent; version 0 = none sent yet
  std::vector<std::string> overlapping_subnets;  // nodes left out of the routes, as last warned

  // ---- Drafts and commits ----

  Service& DraftService(Draft& d, const std::string& name) {
    auto it = d.services.find(name);
    if (it != d.services.end()) return it->second;
    return d.services.emplace(name, services.at(name)).first->second;
  }

  NodeRecord& DraftNode(Draft& d, const std::string& name) {
    auto it = d.nodes.find(name);
    if (it != d.nodes.end()) return it->second;
    return d.nodes.emplace(name, nodes.at(name).plan.record).first->second;
  }

  void AddEvent(Draft& d, ClusterEventType type, std::string service, std::string node,
                std::string message, std::string actor = {}) {
    d.events.push_back(ClusterEvent{.time = Clock::now(),
                                    .type = type,
                                    .service = std::move(service),
                                    .node = std::move(node),
                                    .message = std::move(message),
                                    .actor = std::move(actor)});
  }

  // The services as they will be once `d` commits.
  std::map<std::string, Service> MergedServices(const Draft& d) const {
    std::map<std::string, Service> merged = services;
    for (const std::string& name : d.deleted_services) merged.erase(name);
    for (const auto& [name, s] : d.services) merged[name] = s;
    return merged;
  }

  const NodeRecord* MergedNode(const Draft& d, const std::string& name) const {
    if (auto it = d.nodes.find(name); it != d.nodes.end()) return &it->second;
    if (auto it = nodes.find(name); it != nodes.end()) return &it->second.plan.record;
    return nullptr;
  }

  bool Keeps(const Draft& d, const std::string& node) const {
    const NodeRecord* record = MergedNode(d, node);
    auto entry = nodes.find(node);
    return record != nullptr && entry != nodes.end() && !record->drained &&
           entry->second.plan.state != NodeState::kDown;
  }

  bool NeedsPlanning(const Draft& d, const std::map<std::string, Service>& merged) const {
    for (const auto& [name, s] : merged) {
      if (s.replicas.size() != s.spec.replicas) return true;
      for (const ReplicaPlacement& r : s.replicas) {
        if (r.node.empty() || !Keeps(d, r.node)) return true;
      }
    }
    return false;
  }

  // Runs the planner over the draft and folds its changes (and their events) into it.
  void PlanInto(Draft& d) {
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

  void Apply(Draft& d, const ReplicaChange& c) {
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
            drain_note =
                s.spec.front_door
                    ? "; it drains (no new requests) and stops once its requests in flight "
                      "finish, after " +
                          Seconds(options.drain_grace) + " at the earliest and " +
                          Seconds(std::max(options.drain_grace, options.drain_deadline)) +
                          " at the latest"
                    : "; it left the endpoints and stops after " + Seconds(options.drain_grace) +
                          " of draining";
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
          AddEvent(d, ClusterEventType::kReplicaPending, c.service, c.from_node,
                   "replica " + std::to_string(c.index) + " of " + c.service +
                       " is pending: " + c.reason);
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

  // Guest names assigned to `node` in the given services, and the draining replicas still there.
  static std::vector<AssignedReplica> AssignmentOf(const std::map<std::string, Service>& all,
                                                   const std::vector<Draining>& drains,
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

  std::vector<Draining> DrainingAfter(const Draft& d) const {
    std::vector<Draining> out;
    for (const Draining& dr : draining) {
      if (!d.drain_remove.contains(dr.guest())) out.push_back(dr);
    }
    out.insert(out.end(), d.drain_add.begin(), d.drain_add.end());
    return out;
  }

  NodeAssignment CurrentAssignment(const std::string& node) const {
    return NodeAssignment{.version = nodes.at(node).plan.record.assignment_version,
                          .replicas = AssignmentOf(services, draining, node)};
  }

  // Plans, bumps the assignment version of every node whose assignment changes, commits, and only
  // then updates memory and tells the agents.
  Result<void> Commit(Draft& d) {
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
      batch.delete_services.push_back(
          {.name = name, .expected_version = services.at(name).version});
    }
    for (const auto& [name, n] : d.nodes) {
      batch.put_nodes.push_back(
          {.node = n, .expected_version = nodes.at(name).plan.record.version});
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

  void SendAssignment(const std::string& node) {
    NodeEntry& e = nodes.at(node);
    if (e.session != nullptr) e.session->SendAssignment(CurrentAssignment(node));
  }

  void Reconcile() {
    Draft d;
    (void)Commit(d);  // errors are logged; the next trigger or tick retries
  }

  // ---- Status for the API ----

  ReplicaState StateOf(const ReplicaPlacement& r, const ReplicaExtra* extra) const {
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

  ServiceStatus StatusOf(const Service& s) const {
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

  // ---- Autoscaling ----

  void ScheduleAutoscale() {
    autoscale_timer.expires_after(options.autoscale_interval);
    autoscale_timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      OnAutoscaleTick();
      ScheduleAutoscale();
    });
  }

  DoorLoad DoorLoadOf(const std::string& service, const std::string& guest, TimePoint now) const {
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

  std::vector<autoscale::ReplicaSample> SamplesOf(const Service& s, TimePoint now) const {
    std::vector<autoscale::ReplicaSample> out;
    for (const ReplicaPlacement& r : s.replicas) {
      auto it = extras.find({s.spec.name, r.index});
      const ReplicaExtra* extra = it == extras.end() ? nullptr : &it->second;
      const bool cpu = s.spec.autoscale->metric == AutoscaleMetric::kCpu;
      if (!cpu && s.spec.front_door) {
        // Requests go through the front doors, not the agents' port proxies: HAProxy counts them.
        const DoorLoad load =
            DoorLoadOf(s.spec.name, ReplicaGuestName(s.spec.name, r.index, r.generation), now);
        autoscale::ReplicaSample sample{.running = StateOf(r, extra) == ReplicaState::kRunning &&
                                                   load.seen};
        if (sample.running) {
          sample.value = load.requests_per_second;
          sample.age = std::chrono::duration_cast<std::chrono::milliseconds>(now - load.oldest);
        }
        out.push_back(sample);
        continue;
      }
      autoscale::ReplicaSample sample{.running = StateOf(r, extra) == ReplicaState::kRunning &&
                                                 (cpu ? extra->cpu_seen : extra->rps_seen)};
      if (sample.running && extra->observed.metrics) {
        const GuestMetrics& m = *extra->observed.metrics;
        if (cpu ? m.cpu_valid : m.requests_valid) {
          sample.value = cpu ? m.cpu_percent : m.requests_per_second;
          sample.age = std::chrono::duration_cast<std::chrono::milliseconds>(
              now - extra->observed.metrics_received_at);
        }
      }
      out.push_back(sample);
    }
    return out;
  }

  void OnAutoscaleTick() {
    const TimePoint now = StoredNow();
    Draft d;
    std::vector<std::string> decided;
    for (const auto& [name, s] : services) {
      if (!s.spec.autoscale) {
        autoscale_status.erase(name);
        continue;
      }
      autoscale::Output out = autoscale::Evaluate(autoscale::Input{
          .policy = *s.spec.autoscale,
          .current = s.spec.replicas,
          .replicas = SamplesOf(s, now),
          .window = s.autoscale,
          .now = now,
          .max_metric_age = options.max_metric_age,
      });
      autoscale_status[name] = AutoscaleStatus{.observed = out.observed,
                                               .reporting_replicas = out.reporting,
                                               .desired_replicas = out.desired,
                                               .state = out.state};
      if (out.decision) {
        DraftService(d, name).spec.replicas = out.decision->to_replicas;
        AddEvent(d, ClusterEventType::kServiceScaled, name, "",
                 "autoscale " + name + " " + std::to_string(out.decision->from_replicas) + " -> " +
                     std::to_string(out.decision->to_replicas) + ": " + out.decision->reason);
      }
      if (out.window != s.autoscale) d.windows[name] = std::move(out.window);
    }
    (void)Commit(d);  // refused: nothing changed, the next tick evaluates again
  }

  NodeStatus NodeStatusOf(const std::string& name) const {
    const NodeEntry& e = nodes.at(name);
    NodeStatus out{.record = e.plan.record, .live = e.live};
    out.live.state = e.plan.state;
    for (const auto& [_, s] : services) {
      out.replicas += std::ranges::count(s.replicas, name, &ReplicaPlacement::node);
    }
    return out;
  }

  // ---- Front door ----

  // Every node's instance subnet other nodes route to (overlapping ones left out).
  NodeRoutePlan PlannedNodeRoutes() const {
    std::vector<NodeRoute> candidates;
    for (const auto& [name, e] : nodes) {
      if (e.live.instance_subnet.empty()) continue;
      candidates.push_back(NodeRoute{
          .node = name, .subnet = e.live.instance_subnet, .via = e.live.advertise_address});
    }
    return PlanNodeRoutes(candidates);
  }

  // Every front-door service's servers, as the agents should serve them now; replicas on a node in
  // `routes` are reached at their own addresses.
  std::vector<FrontDoorService> PlannedFrontDoor(const std::vector<NodeRoute>& routes) const {
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

  // Whether every node holding a front-door replica has reported since this supervisor started (or
  // is DOWN). Until then a table would list only what this process has seen, and a restarted
  // supervisor would empty every front door for a heartbeat: the agents keep their last table.
  bool FrontDoorKnown() const {
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

  // Sends the table to every connected agent when it changed.
  void PublishFrontDoor() {
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

  // ---- Liveness ----

  void ScheduleTick() {
    tick.expires_after(options.tick);
    tick.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      OnTick();
      PublishFrontDoor();
      ScheduleTick();
    });
  }

  void OnTick() {
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
        e.live.state_reason =
            e.session == nullptr
                ? "link closed " + Seconds(now - e.last_seen) + " after the last heartbeat"
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

  // ---- Agent link ----

  void OnConnected(AgentSession* session, AgentHello hello) {
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

  void OnReported(AgentSession* session, AgentReport report) {
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

  void OnGone(AgentSession* session) {
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
};

// ---- Controller ----

Controller::Controller(asio::io_context& loop, StateStore& store, EventHub& hub, Options options)
    : options_(std::move(options)) {
  impl_ = std::make_unique<Impl>(loop, store, hub, options_);
}

Controller::~Controller() = default;

Result<void> Controller::Recover() {
  Result<ClusterSnapshotRecord> loaded = impl_->store.Load();
  if (!loaded) return std::unexpected(loaded.error().Wrap("loading the supervisor's state"));
  ClusterSnapshotRecord& snapshot = *loaded;
  const auto now = SteadyClock::now();
  for (Service& s : snapshot.services) impl_->services[s.spec.name] = std::move(s);
  for (NodeRecord& n : snapshot.nodes) {
    Impl::NodeEntry& e = impl_->nodes[n.name];
    e.plan.record = std::move(n);
    e.plan.state = NodeState::kSuspect;
    e.live.state = NodeState::kSuspect;
    e.live.state_reason = "supervisor restarted; waiting for the agent";
    e.last_seen = now;
  }
  spdlog::info("recovered {} services and {} nodes (last event {})", impl_->services.size(),
               impl_->nodes.size(), snapshot.last_event_sequence);
  impl_->ScheduleTick();
  impl_->ScheduleAutoscale();
  return {};
}

namespace {
template <typename T>
Result<T> CallOn(asio::io_context& loop, std::chrono::milliseconds timeout,
                 std::function<Result<T>()> body) {
  auto promise = std::make_shared<std::promise<Result<T>>>();
  auto future = promise->get_future();
  asio::post(loop, [body = std::move(body), promise]() mutable {
    try {
      promise->set_value(body());
    } catch (const std::exception& e) {
      promise->set_value(Internal(std::string("controller: ") + e.what()));
    }
  });
  if (future.wait_for(timeout) != std::future_status::ready) {
    return MakeError(ErrorCode::kDeadlineExceeded, "the supervisor's loop did not answer in time");
  }
  return future.get();
}
}  // namespace

Result<ServiceStatus> Controller::CreateService(ServiceSpec spec, std::string actor) {
  PHX_TRY(ValidateSpec(spec));
  return CallOn<ServiceStatus>(
      impl_->loop, options_.call_timeout, [=, this]() -> Result<ServiceStatus> {
        if (impl_->services.contains(spec.name)) {
          return AlreadyExists("service " + spec.name + " already exists");
        }
        if (spec.front_door) {
          for (const auto& [name, other] : impl_->services) {
            if (other.spec.front_door && other.spec.front_door->port == spec.front_door->port) {
              return MakeError(ErrorCode::kAlreadyExists,
                               "port " + std::to_string(spec.front_door->port) +
                                   " is already the front door of service " + name,
                               "spec.front_door.port");
            }
          }
        }
        Impl::Draft d;
        ServiceSpec stored = spec;
        if (stored.autoscale) {
          stored.replicas = std::clamp(stored.replicas, stored.autoscale->min_replicas,
                                       stored.autoscale->max_replicas);
        }
        d.services[spec.name] = Service{.spec = stored, .created_at = StoredNow()};
        impl_->AddEvent(
            d, ClusterEventType::kServiceCreated, spec.name, "",
            "service " + spec.name + " created: " + std::to_string(stored.replicas) + " " +
                std::string(RuntimeKindName(spec.runtime)) + " replicas of " + spec.image +
                (stored.autoscale ? "; autoscaled (" + PolicyText(*stored.autoscale) + ")" : ""),
            actor);
        PHX_TRY(impl_->Commit(d));
        return impl_->StatusOf(impl_->services.at(spec.name));
      });
}

Result<ServiceStatus> Controller::GetService(const std::string& name) {
  return CallOn<ServiceStatus>(impl_->loop, options_.call_timeout,
                               [=, this]() -> Result<ServiceStatus> {
                                 auto it = impl_->services.find(name);
                                 if (it == impl_->services.end())
                                   return NotFound("no service " + name);
                                 return impl_->StatusOf(it->second);
                               });
}

std::vector<ServiceStatus> Controller::ListServices() {
  auto r = CallOn<std::vector<ServiceStatus>>(impl_->loop, options_.call_timeout,
                                              [this]() -> Result<std::vector<ServiceStatus>> {
                                                std::vector<ServiceStatus> out;
                                                for (const auto& [_, s] : impl_->services)
                                                  out.push_back(impl_->StatusOf(s));
                                                return out;
                                              });
  return r ? std::move(*r) : std::vector<ServiceStatus>{};
}

Result<ServiceStatus> Controller::ScaleService(const std::string& name, uint32_t replicas,
                                               uint64_t expected_version, std::string actor) {
  if (replicas > kMaxReplicas) {
    return InvalidArgument("replicas", "at most " + std::to_string(kMaxReplicas));
  }
  return CallOn<ServiceStatus>(
      impl_->loop, options_.call_timeout, [=, this]() -> Result<ServiceStatus> {
        auto it = impl_->services.find(name);
        if (it == impl_->services.end()) return NotFound("no service " + name);
        if (expected_version != 0 && it->second.version != expected_version) {
          return MakeError(ErrorCode::kAborted, "service " + name + " is at version " +
                                                    std::to_string(it->second.version) + ", not " +
                                                    std::to_string(expected_version) +
                                                    "; read it again");
        }
        if (const auto& p = it->second.spec.autoscale) {
          return FailedPrecondition("service " + name + " is autoscaled (" + PolicyText(*p) +
                                    "): change its policy (phoenixctl service autoscale) or turn "
                                    "autoscaling off first");
        }
        Impl::Draft d;
        Service& s = impl_->DraftService(d, name);
        const uint32_t before = s.spec.replicas;
        s.spec.replicas = replicas;
        impl_->AddEvent(d, ClusterEventType::kServiceScaled, name, "",
                        "service " + name + " scaled from " + std::to_string(before) + " to " +
                            std::to_string(replicas) + " replicas",
                        actor);
        PHX_TRY(impl_->Commit(d));
        return impl_->StatusOf(impl_->services.at(name));
      });
}

Result<ServiceStatus> Controller::SetAutoscale(const std::string& name,
                                               std::optional<AutoscalePolicy> policy,
                                               uint64_t expected_version, std::string actor) {
  if (policy) PHX_TRY(autoscale::ValidatePolicy(*policy, "policy"));
  return CallOn<ServiceStatus>(
      impl_->loop, options_.call_timeout, [=, this]() -> Result<ServiceStatus> {
        auto it = impl_->services.find(name);
        if (it == impl_->services.end()) return NotFound("no service " + name);
        if (expected_version != 0 && it->second.version != expected_version) {
          return MakeError(ErrorCode::kAborted, "service " + name + " is at version " +
                                                    std::to_string(it->second.version) + ", not " +
                                                    std::to_string(expected_version) +
                                                    "; read it again");
        }
        if (it->second.spec.autoscale == policy) return impl_->StatusOf(it->second);
        Impl::Draft d;
        Service& s = impl_->DraftService(d, name);
        s.spec.autoscale = policy;
        std::string message;
        if (!policy) {
          s.autoscale = {};
          message = "autoscaling of " + name + " turned off; it keeps " +
                    std::to_string(s.spec.replicas) + " replicas";
        } else {
          const uint32_t before = s.spec.replicas;
          s.spec.replicas = std::clamp(before, policy->min_replicas, policy->max_replicas);
          message = "autoscale " + name + ": " + PolicyText(*policy);
          if (before != s.spec.replicas) {
            message += "; " + std::to_string(before) + " -> " + std::to_string(s.spec.replicas) +
                       " replicas to be within [min, max]";
          }
        }
        impl_->AddEvent(d, ClusterEventType::kServiceScaled, name, "", message, actor);
        PHX_TRY(impl_->Commit(d));
        return impl_->StatusOf(impl_->services.at(name));
      });
}

Result<void> Controller::DeleteService(const std::string& name, std::string actor) {
  auto r = CallOn<bool>(impl_->loop, options_.call_timeout, [=, this]() -> Result<bool> {
    if (!impl_->services.contains(name)) return NotFound("no service " + name);
    Impl::Draft d;
    d.deleted_services.insert(name);
    impl_->AddEvent(d, ClusterEventType::kServiceDeleted, name, "",
                    "service " + name + " deleted; its replicas are stopped", actor);
    PHX_TRY(impl_->Commit(d));
    for (auto it = impl_->extras.begin(); it != impl_->extras.end();) {
      it = it->first.first == name ? impl_->extras.erase(it) : std::next(it);
    }
    impl_->autoscale_status.erase(name);
    return true;
  });
  if (!r) return std::unexpected(r.error());
  return {};
}

std::vector<NodeStatus> Controller::ListNodes() {
  auto r = CallOn<std::vector<NodeStatus>>(impl_->loop, options_.call_timeout,
                                           [this]() -> Result<std::vector<NodeStatus>> {
                                             std::vector<NodeStatus> out;
                                             for (const auto& [name, _] : impl_->nodes) {
                                               out.push_back(impl_->NodeStatusOf(name));
                                             }
                                             return out;
                                           });
  return r ? std::move(*r) : std::vector<NodeStatus>{};
}

Result<NodeStatus> Controller::GetNode(const std::string& name) {
  return CallOn<NodeStatus>(impl_->loop, options_.call_timeout, [=, this]() -> Result<NodeStatus> {
    if (!impl_->nodes.contains(name)) return NotFound("no node " + name);
    return impl_->NodeStatusOf(name);
  });
}

Result<NodeStatus> Controller::DrainNode(const std::string& name, std::string actor) {
  return CallOn<NodeStatus>(impl_->loop, options_.call_timeout, [=, this]() -> Result<NodeStatus> {
    if (!impl_->nodes.contains(name)) return NotFound("no node " + name);
    if (!impl_->nodes.at(name).plan.record.drained) {
      Impl::Draft d;
      impl_->DraftNode(d, name).drained = true;
      impl_->AddEvent(d, ClusterEventType::kNodeDrained, "", name,
                      "node " + name + " drained: no new replicas; its replicas move elsewhere",
                      actor);
      PHX_TRY(impl_->Commit(d));
    }
    return impl_->NodeStatusOf(name);
  });
}

Result<bool> Controller::DisconnectNode(const std::string& name, const std::string& why) {
  return CallOn<bool>(impl_->loop, options_.call_timeout, [=, this]() -> Result<bool> {
    auto it = impl_->nodes.find(name);
    if (it == impl_->nodes.end() || it->second.session == nullptr) return false;
    AgentSession* session = it->second.session;
    session->Close(Error{ErrorCode::kUnauthenticated, why});
    impl_->OnGone(session);  // at once: the AgentGone that follows finds nothing left
    return true;
  });
}

Result<NodeStatus> Controller::UndrainNode(const std::string& name, std::string actor) {
  return CallOn<NodeStatus>(impl_->loop, options_.call_timeout, [=, this]() -> Result<NodeStatus> {
    if (!impl_->nodes.contains(name)) return NotFound("no node " + name);
    if (impl_->nodes.at(name).plan.record.drained) {
      Impl::Draft d;
      impl_->DraftNode(d, name).drained = false;
      impl_->AddEvent(d, ClusterEventType::kNodeUndrained, "", name,
                      "node " + name + " accepts replicas again", actor);
      PHX_TRY(impl_->Commit(d));
    }
    return impl_->NodeStatusOf(name);
  });
}

Result<void> Controller::RecordEvent(ClusterEvent event) {
  auto r = CallOn<bool>(impl_->loop, options_.call_timeout, [=, this]() -> Result<bool> {
    Impl::Draft d;
    d.events.push_back(event);
    if (d.events.back().time == TimePoint{}) d.events.back().time = Clock::now();
    PHX_TRY(impl_->Commit(d));
    return true;
  });
  if (!r) return std::unexpected(r.error());
  return {};
}

void Controller::AgentConnected(AgentSession* session, AgentHello hello) {
  asio::post(impl_->loop, [this, session, hello = std::move(hello)]() mutable {
    impl_->OnConnected(session, std::move(hello));
  });
}

void Controller::AgentReported(AgentSession* session, AgentReport report) {
  {
    std::lock_guard lock(impl_->mailbox_mu);
    auto [it, queued] = impl_->mailbox.try_emplace(session);
    it->second = std::move(report);
    if (!queued) {
      impl_->reports_replaced.fetch_add(1, std::memory_order_relaxed);
      return;  // the loop has not taken the older one yet; it will take this one
    }
  }
  asio::post(impl_->loop, [this, session] {
    AgentReport latest;
    {
      std::lock_guard lock(impl_->mailbox_mu);
      auto it = impl_->mailbox.find(session);
      if (it == impl_->mailbox.end()) return;
      latest = std::move(it->second);
      impl_->mailbox.erase(it);
    }
    impl_->OnReported(session, std::move(latest));
  });
}

uint64_t Controller::ReportsReplaced() const {
  return impl_->reports_replaced.load(std::memory_order_relaxed);
}

void Controller::AgentGone(AgentSession* session) {
  {
    std::lock_guard lock(impl_->mailbox_mu);
    impl_->mailbox.erase(session);  // its last report speaks for a link that is gone
  }
  // Waits for the loop: after this returns the session may be destroyed, so no queued work may
  // still hold it.
  if (impl_->loop.get_executor().running_in_this_thread()) {
    impl_->OnGone(session);
    return;
  }
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> finished = done->get_future();
  asio::post(impl_->loop, [this, session, done] {
    impl_->OnGone(session);
    done->set_value();
  });
  // A stopped loop runs nothing more, so nothing queued can touch the session either.
  while (finished.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready &&
         !impl_->loop.stopped()) {
  }
}

}  // namespace phoenix::supervisor
