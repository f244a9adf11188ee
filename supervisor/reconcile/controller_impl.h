// Controller::Impl: the controller's state and its loop-thread logic, shared by the files that
// define it, each one concern: controller.cc (the public API, posting onto the loop),
// controller_commit.cc (drafts, commits, status), controller_agents.cc (liveness and agent links),
// controller_autoscale.cc and controller_front_door.cc. Private to supervisor/reconcile.
//
// Threading: everything here runs on the controller's io_context thread, except the mailbox
// (mailbox_mu) that link threads fill.
#pragma once

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

inline constexpr uint32_t kMaxReplicas = 1000;
// Pending replicas are retried this often even when nothing visible changed (a node's reported
// allocation may have shrunk).
inline constexpr auto kPendingRetry = std::chrono::seconds(2);

inline std::string Seconds(SteadyClock::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", std::chrono::duration<double>(d).count());
  return buf;
}

// Now at the precision the store keeps, so what memory holds equals what a restart loads.
inline TimePoint StoredNow() { return std::chrono::floor<std::chrono::microseconds>(Clock::now()); }

inline Result<void> ValidateSpec(const ServiceSpec& spec) {
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

inline std::string PolicyText(const AutoscalePolicy& p) {
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
inline std::optional<GuestKey> ParseGuestName(std::string_view name) {
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

  Service& DraftService(Draft& d, const std::string& name);
  NodeRecord& DraftNode(Draft& d, const std::string& name);
  void AddEvent(Draft& d, ClusterEventType type, std::string service, std::string node,
                std::string message, std::string actor = {});
  // The services as they will be once `d` commits.
  std::map<std::string, Service> MergedServices(const Draft& d) const;
  const NodeRecord* MergedNode(const Draft& d, const std::string& name) const;
  bool Keeps(const Draft& d, const std::string& node) const;
  bool NeedsPlanning(const Draft& d, const std::map<std::string, Service>& merged) const;
  // Runs the planner over the draft and folds its changes (and their events) into it.
  void PlanInto(Draft& d);
  void Apply(Draft& d, const ReplicaChange& c);
  // Guest names assigned to `node` in the given services, and the draining replicas still there.
  static std::vector<AssignedReplica> AssignmentOf(const std::map<std::string, Service>& all,
                                                   const std::vector<Draining>& drains,
                                                   const std::string& node);
  std::vector<Draining> DrainingAfter(const Draft& d) const;
  NodeAssignment CurrentAssignment(const std::string& node) const;
  // Plans, bumps the assignment version of every node whose assignment changes, commits, and only
  // then updates memory and tells the agents.
  Result<void> Commit(Draft& d);
  void SendAssignment(const std::string& node);
  void Reconcile();

  // ---- Status for the API ----

  ReplicaState StateOf(const ReplicaPlacement& r, const ReplicaExtra* extra) const;
  ServiceStatus StatusOf(const Service& s) const;
  NodeStatus NodeStatusOf(const std::string& name) const;

  // ---- Autoscaling ----

  void ScheduleAutoscale();
  std::vector<autoscale::ReplicaSample> SamplesOf(const Service& s, TimePoint now) const;
  void OnAutoscaleTick();

  // ---- Front door ----

  // Every node's instance subnet other nodes route to (overlapping ones left out).
  NodeRoutePlan PlannedNodeRoutes() const;
  // Every front-door service's servers, as the agents should serve them now; replicas on a node in
  // `routes` are reached at their own addresses.
  std::vector<FrontDoorService> PlannedFrontDoor(const std::vector<NodeRoute>& routes) const;
  // Whether every node holding a front-door replica has reported since this supervisor started (or
  // is DOWN). Until then a table would list only what this process has seen, and a restarted
  // supervisor would empty every front door for a heartbeat: the agents keep their last table.
  bool FrontDoorKnown() const;
  // Sends the table to every connected agent when it changed.
  void PublishFrontDoor();
  // A replica's load summed over every node's front door (fresh reports only).
  DoorLoad DoorLoadOf(const std::string& service, const std::string& guest, TimePoint now) const;

  // ---- Liveness ----

  void ScheduleTick();
  void OnTick();

  // ---- Agent link ----

  void OnConnected(AgentSession* session, AgentHello hello);
  void OnReported(AgentSession* session, AgentReport report);
  void OnGone(AgentSession* session);
};

}  // namespace phoenix::supervisor
