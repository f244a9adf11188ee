// Controller: the supervisor's brain. It holds the cluster's desired state (services, durable in
// the StateStore) and what the agents report (nodes' liveness, guests' states), decides *what*
// must change (place, replace, remove replicas; node SUSPECT/DOWN) and pushes each node's full,
// versioned assignment to its agent session. It is the only writer of the StateStore.
//
// Order of every change: decide -> commit to the store (version-checked) -> update memory ->
// send assignments. A change that fails to commit is not applied, so a supervisor killed at any
// moment restarts from exactly what it acknowledged.
//
// Autoscaling: every Options::autoscale_interval each service with a policy is evaluated by the
// pure autoscale::Evaluate from its replicas' latest metrics; a decision commits the new count,
// its placement and the autoscaler's window in one batch (so a restart neither double-scales nor
// forgets the window), otherwise the window alone is written (without a version bump).
// Scale-in drains: a removed replica leaves the published endpoints at once and stays in its
// node's assignment for Options::drain_grace, and a front-door replica longer while any node's
// front door still has requests in flight to it, up to Options::drain_deadline (memory only: a
// restart stops it at once).
//
// Fencing: a node's assignment version only grows. When a node goes DOWN its replicas are placed
// elsewhere and its assignment loses them (new version); when it returns it receives that version
// and stops the stale guests. Replacement guests get a new generation and so a new guest name,
// never colliding with a stale copy.
//
// Threading: all state lives on `loop` (one thread). The admin methods are a blocking bridge for
// gRPC threads (post to the loop, wait for the answer): never call them from the loop. The
// Agent* methods never block and may be called from any thread; AgentSession callbacks run on the
// loop and must not block. Backpressure from agents: a session has at most one report waiting for
// the loop (a newer one replaces it: each report is the node's whole state), so however fast
// agents send, the queue into the loop is bounded by the number of links. Recover() runs before the
// loop serves anything else. Destroy the controller only after the loop has stopped.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "proto/support/error.h"
#include "proto/support/event_hub.h"
#include "supervisor/placement/placement.h"
#include "supervisor/reconcile/agent_link.h"
#include "supervisor/state/cluster.h"
#include "supervisor/state/state_store.h"

namespace phoenix::supervisor {

// One replica as the admin API shows it.
struct ReplicaStatus {
  ReplicaPlacement placement;
  std::string guest;  // ReplicaGuestName(...)
  std::string zone;
  ReplicaState state = ReplicaState::kPending;
  ReplicaObservation observed;
  std::string pending_reason;
};

// What the autoscaler last concluded about a service (mirrors phoenix.v1.AutoscaleStatus).
struct AutoscaleStatus {
  double observed = 0;  // per-replica average of the policy's metric over the reporting replicas
  uint32_t reporting_replicas = 0;
  uint32_t desired_replicas = 0;        // before stabilization and rate limit
  std::string state;                    // "steady", "waiting: scale-down window (41 s left)", ...
  std::vector<ScalingDecision> recent;  // newest first
};

struct ServiceStatus {
  Service service;
  std::vector<ReplicaStatus> replicas;  // by index; scaled-in replicas that are draining are
                                        // not listed (they left the published endpoints)
  uint32_t running = 0;
  std::optional<AutoscaleStatus> autoscale;  // when spec.autoscale is set
  // With a front door: "address:port" on every READY node that advertised an address.
  std::vector<std::string> front_door_addresses;
  // READY nodes whose front door cannot serve it, and why ("node-b: port 8080 ... is taken").
  std::vector<std::string> front_door_problems;
};

struct NodeStatus {
  NodeRecord record;
  NodeLive live;
  uint32_t replicas = 0;
};

class Controller : public AgentLinkHandler {
 public:
  struct Options {
    std::chrono::milliseconds heartbeat_interval{1000};  // told to agents in Welcome
    // No heartbeat for this long (or the link closed): SUSPECT. Replicas stay where they are.
    std::chrono::milliseconds suspect_after{2500};
    // No heartbeat for this long: DOWN. Its replicas are placed elsewhere and fenced.
    std::chrono::milliseconds down_after{4000};
    std::chrono::milliseconds tick{250};  // how often liveness is checked
    placement::Options placement;
    std::chrono::milliseconds call_timeout{std::chrono::seconds(30)};
    // How often each autoscaled service is evaluated.
    std::chrono::milliseconds autoscale_interval{1000};
    // A replica metric older than this (supervisor clock, since it was received) is missing.
    std::chrono::milliseconds max_metric_age{5000};
    // A scaled-in replica leaves the service's published endpoints at once and stays in its
    // node's assignment this long, so clients re-reading the endpoints stop sending it requests
    // before it stops. 0 = stop at once.
    std::chrono::milliseconds drain_grace{3000};
    // A front-door replica still serving requests after drain_grace (HAProxy's in-flight count on
    // any node's front door) keeps draining until none is left, at most this long after it left.
    std::chrono::milliseconds drain_deadline{30000};
  };

  Controller(boost::asio::io_context& loop, StateStore& store, EventHub& hub, Options options);
  ~Controller();
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // Loads the durable state and starts the liveness timer. Every node starts SUSPECT (with its
  // last heartbeat = now) until its agent says hello, so a supervisor restart does not declare the
  // whole fleet DOWN at once but does replace nodes that never come back.
  [[nodiscard]] Result<void> Recover();

  // --- Admin API: blocking bridge for gRPC threads (never call from the loop) ---
  // Every change names its `actor` ("token <id> (<role>)", ClusterEvent::actor), stored with the
  // event its commit records.
  // Validates (InvalidArgument with the field), commits, places. AlreadyExists on a taken name.
  [[nodiscard]] Result<ServiceStatus> CreateService(ServiceSpec spec, std::string actor = {});
  [[nodiscard]] Result<ServiceStatus> GetService(const std::string& name);
  std::vector<ServiceStatus> ListServices();
  // expected_version 0 = unconditional; otherwise kAborted unless the service is at that version.
  // FailedPrecondition for an autoscaled service (its policy decides the count).
  [[nodiscard]] Result<ServiceStatus> ScaleService(const std::string& name, uint32_t replicas,
                                                   uint64_t expected_version,
                                                   std::string actor = {});
  // Sets (or with nullopt, removes) the service's autoscale policy. The count moves into
  // [min, max] at once; removing the policy keeps the current count.
  [[nodiscard]] Result<ServiceStatus> SetAutoscale(const std::string& name,
                                                   std::optional<AutoscalePolicy> policy,
                                                   uint64_t expected_version,
                                                   std::string actor = {});
  [[nodiscard]] Result<void> DeleteService(const std::string& name, std::string actor = {});
  std::vector<NodeStatus> ListNodes();
  [[nodiscard]] Result<NodeStatus> GetNode(const std::string& name);
  [[nodiscard]] Result<NodeStatus> DrainNode(const std::string& name, std::string actor = {});
  [[nodiscard]] Result<NodeStatus> UndrainNode(const std::string& name, std::string actor = {});
  // Commits one event for a change made outside the stored state (a node removed, a token minted
  // or revoked), so that it too is in the log with its actor.
  [[nodiscard]] Result<void> RecordEvent(ClusterEvent event);
  // Closes the node's agent link, if it has one, with `why` (kUnauthenticated): its certificate
  // was revoked. Liveness then takes the node to DOWN. Returns whether a link was open.
  [[nodiscard]] Result<bool> DisconnectNode(const std::string& name, const std::string& why);

  // --- AgentLinkHandler: non-blocking, any thread ---
  void AgentConnected(AgentSession* session, AgentHello hello) override;
  void AgentReported(AgentSession* session, AgentReport report) override;
  void AgentGone(AgentSession* session) override;
  // Reports replaced by a newer one of the same session before the loop took them (the queue into
  // the loop holds at most one report per session).
  uint64_t ReportsReplaced() const;
  std::chrono::milliseconds HeartbeatInterval() const override {
    return options_.heartbeat_interval;
  }

  const Options& options() const { return options_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  const Options options_;
};

}  // namespace phoenix::supervisor
