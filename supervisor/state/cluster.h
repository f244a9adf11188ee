// The supervisor's vocabulary as plain C++ values: services and their replicas, nodes, and the
// cluster event log. Mirrors phoenix.v1 (supervisor.proto) without depending on protobuf: only
// supervisor/api and supervisor/agents convert between the two.
//
// What is durable (StateStore) and what is observed: ServiceSpec, the replicas' placement
// (index, generation, node) and NodeRecord are durable; ReplicaObservation and NodeLive come from
// the agents' heartbeats and are rebuilt after a supervisor restart.
//
// Thread-safety: plain values.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "proto/support/guest_spec.h"

namespace phoenix::supervisor {

using Clock = std::chrono::system_clock;
using TimePoint = Clock::time_point;

// One runtime vocabulary with the agents and phoenixctl (proto/support/guest_spec.h).
using spec::RuntimeKind;
using spec::RuntimeKindName;
enum class NodeState { kReady, kSuspect, kDown };
enum class PlacementStrategy { kSpread, kBinpack };
enum class ReplicaState { kPending, kAssigned, kRunning, kLost };
// The agent's view of a guest, as reported (mirrors phoenix.v1.GuestState).
enum class GuestState {
  kUnknown,
  kPending,
  kStarting,
  kRunning,
  kStopping,
  kStopped,
  kCrashed,
  kRestarting,
  kFailed
};

std::string_view NodeStateName(NodeState state);        // "READY", "SUSPECT", "DOWN"
std::string_view ReplicaStateName(ReplicaState state);  // "PENDING", ...
std::string_view GuestStateName(GuestState state);      // "RUNNING", ...

struct Resources {
  uint32_t vcpus = 0;
  uint64_t memory_mib = 0;
  bool operator==(const Resources&) const = default;
};

// Horizontal autoscaling (mirrors phoenix.v1.AutoscalePolicy, with the API's defaults applied).
enum class AutoscaleMetric { kCpu, kRps };
std::string_view AutoscaleMetricName(AutoscaleMetric metric);  // "cpu", "rps"

struct AutoscalePolicy {
  uint32_t min_replicas = 1;
  uint32_t max_replicas = 1;
  AutoscaleMetric metric = AutoscaleMetric::kCpu;
  double target = 0;  // cpu: percent of each replica's allowance; rps: requests/s per replica
  double tolerance = 0.1;
  uint32_t scale_up_stabilization_s = 0;
  uint32_t scale_down_stabilization_s = 60;
  uint32_t scale_up_max_step = 4;
  uint32_t scale_up_period_s = 10;
  bool operator==(const AutoscalePolicy&) const = default;
};

// A service's one stable address (mirrors phoenix.v1.FrontDoor): `port` on every node, balanced
// over the ready replicas' `guest_port`.
enum class FrontDoorProtocol { kHttp, kTcp };
std::string_view FrontDoorProtocolName(FrontDoorProtocol protocol);  // "http", "tcp"

struct FrontDoorPort {
  uint16_t port = 0;
  uint16_t guest_port = 0;
  FrontDoorProtocol protocol = FrontDoorProtocol::kHttp;
  bool operator==(const FrontDoorPort&) const = default;
};

struct ServiceSpec {
  std::string name;  // [a-z0-9][a-z0-9-]{0,39}
  RuntimeKind runtime = RuntimeKind::kContainer;
  std::string image;  // as the user wrote it: name:tag, name, or sha256:<hex>
  uint32_t vcpus = 1;
  uint32_t memory_mib = 256;
  uint32_t replicas = 1;
  std::string spread_attribute;  // "zone" or empty (no spread)
  uint32_t max_skew = 1;
  PlacementStrategy strategy = PlacementStrategy::kSpread;
  std::map<std::string, std::string> node_selector;
  bool distinct_hosts = false;
  // The replica template: a serialized phoenix.v1.GuestSpec. Opaque to everything but
  // supervisor/api (which builds it) and supervisor/agents (which sends it), so the domain modules
  // stay free of protobuf while every field the user set reaches the agent unchanged.
  std::string guest_template;
  std::optional<AutoscalePolicy> autoscale;  // absent = fixed replica count
  std::optional<FrontDoorPort> front_door;   // absent = no front door
  bool operator==(const ServiceSpec&) const = default;
};

// One change the autoscaler made (mirrors phoenix.v1.ScalingDecision).
struct ScalingDecision {
  TimePoint time{};
  uint32_t from_replicas = 0;
  uint32_t to_replicas = 0;
  AutoscaleMetric metric = AutoscaleMetric::kCpu;
  double observed = 0;  // per-replica average over the reporting replicas
  double target = 0;
  uint32_t reporting_replicas = 0;
  std::string reason;
  bool operator==(const ScalingDecision&) const = default;
};

// Consecutive evaluations that wanted the same replica count.
struct DesireRun {
  TimePoint first{};
  TimePoint last{};
  uint32_t replicas = 0;
  bool operator==(const DesireRun&) const = default;
};

struct ScaleUpRecord {
  TimePoint time{};
  uint32_t added = 0;
  bool operator==(const ScaleUpRecord&) const = default;
};

// The autoscaler's memory of one service. Durable, so a restarted supervisor keeps its
// stabilization window and rate limit instead of starting from nothing.
struct AutoscaleWindow {
  std::vector<DesireRun> desires;        // oldest first, only as far back as a window reaches
  std::vector<ScaleUpRecord> scale_ups;  // oldest first, within the scale-up period
  std::vector<ScalingDecision> recent;   // newest first, at most kMaxRecentDecisions
  bool operator==(const AutoscaleWindow&) const = default;
};
inline constexpr size_t kMaxRecentDecisions = 10;

// Where one replica lives. Durable.
struct ReplicaPlacement {
  uint32_t index = 0;
  uint64_t generation = 0;  // 0 = never placed; increments on every (re)placement
  std::string node;         // empty = pending
  bool operator==(const ReplicaPlacement&) const = default;
};

// "<service>-<index>-<generation>": the guest's name on its node. Unique across the cluster and
// over time, so a replacement never collides with a stale copy on a returning node.
std::string ReplicaGuestName(std::string_view service, uint32_t index, uint64_t generation);

// Load of a replica's current instance as its agent sampled it (mirrors phoenix.v1.GuestMetrics).
// A value whose *_valid flag is false was not measured: missing, never zero. Not durable.
struct GuestMetrics {
  TimePoint sampled_at{};  // the agent's clock
  uint32_t window_ms = 0;
  bool cpu_valid = false;
  double cpu_percent = 0;
  uint64_t memory_bytes = 0;
  bool requests_valid = false;
  double requests_per_second = 0;
  double latency_p50_ms = 0;
  double latency_p99_ms = 0;
  uint64_t requests_total = 0;
  uint64_t connection_errors_total = 0;
  bool operator==(const GuestMetrics&) const = default;
};

// One of ReplicaObservation::endpoints taken apart: "10.0.0.2:31000->80", "[fd00::2]:31000->80".
// The host part is not checked to be an address; ports are 0-65535.
struct EndpointParts {
  std::string host_ip;
  uint16_t host_port = 0;
  uint16_t guest_port = 0;
};
std::optional<EndpointParts> ParseEndpointText(std::string_view text);

// What the replica's node last reported about its guest. Not durable.
struct ReplicaObservation {
  GuestState guest_state = GuestState::kUnknown;
  bool healthy = false;
  uint32_t restart_count = 0;
  std::string last_exit_reason;
  std::vector<std::string> endpoints;  // "127.0.0.1:49153->80"
  // The instance's own address on its node's instance network; empty when it has none.
  std::string node_address;
  TimePoint reported_at{};
  std::optional<GuestMetrics> metrics;  // absent until the agent sampled the instance
  // When the supervisor received a new sample (sampled_at changed): the supervisor's clock, so
  // freshness does not depend on the agents' clocks.
  TimePoint metrics_received_at{};
};

struct Service {
  ServiceSpec spec;
  uint64_t version = 0;  // 0 = not stored yet; the store increments it on every commit
  TimePoint created_at{};
  std::vector<ReplicaPlacement> replicas;  // durable placement, by index; may exceed spec.replicas
                                           // only between a scale-in decision and its commit
  AutoscaleWindow autoscale;               // the autoscaler's state; empty without a policy
  bool operator==(const Service&) const = default;
};

// What the supervisor keeps about a node across restarts. Durable.
struct NodeRecord {
  std::string name;
  std::string zone;
  std::map<std::string, std::string> labels;
  Resources capacity;
  std::set<RuntimeKind> runtimes;  // runtimes the node can run
  bool drained = false;
  uint64_t assignment_version = 0;  // latest assignment made for the node (fencing)
  uint64_t version = 0;             // store version, as for services
  TimePoint joined_at{};
  bool operator==(const NodeRecord&) const = default;
};

// What the supervisor knows of a node from its link. Not durable.
struct NodeLive {
  NodeState state = NodeState::kSuspect;  // a node is SUSPECT until it says hello
  bool connected = false;
  TimePoint last_heartbeat{};
  Resources allocated;  // everything the node runs, as it reports
  uint64_t applied_version = 0;
  std::set<std::string> images;  // "name:tag" and ids present on the node
  std::string agent_version;
  std::string state_reason;
  std::string advertise_address;  // where its front door listens, as its hello said
  // Its instance network as its hello said ("10.88.1.0/24"); empty when it has none or when it
  // overlaps another node's (then its replicas are reached at their published ports instead).
  std::string instance_subnet;
  // Front-door ports its HAProxy cannot serve (taken by another process), and why; placement
  // keeps the services using them off this node.
  std::map<uint16_t, std::string> taken_front_door_ports;
};

enum class ClusterEventType {
  kServiceCreated,
  kServiceScaled,
  kServiceDeleted,
  kReplicaPlaced,
  kReplicaPending,
  kReplicaRunning,
  kReplicaReplaced,
  kReplicaRemoved,
  kNodeJoined,
  kNodeReady,
  kNodeSuspect,
  kNodeDown,
  kNodeDrained,
  kNodeUndrained,
  kStaleGuestStopped,
  // Changes an admin makes outside the stored state, recorded so every change has its actor.
  kNodeRemoved,
  kTokenCreated,
  kTokenRevoked,
  kJoinTokenCreated,
};
inline constexpr ClusterEventType kLastClusterEventType = ClusterEventType::kJoinTokenCreated;

std::string_view ClusterEventTypeName(ClusterEventType type);  // "replica-placed", ...

struct ClusterEvent {
  uint64_t sequence = 0;  // assigned by the store
  TimePoint time{};
  ClusterEventType type = ClusterEventType::kServiceCreated;
  std::string service;
  std::string node;
  std::string message;
  // Who asked for it: "token <id> (<role>)" for an admin's change through the API, empty for the
  // supervisor's own decisions (placement, failover, autoscaling).
  std::string actor;
  bool operator==(const ClusterEvent&) const = default;
};

}  // namespace phoenix::supervisor
