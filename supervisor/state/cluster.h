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

namespace phoenix::supervisor {

using Clock = std::chrono::system_clock;
using TimePoint = Clock::time_point;

enum class RuntimeKind { kVm, kMicroVm, kContainer };
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

std::string_view RuntimeKindName(RuntimeKind kind);     // "vm", "microvm", "container"
std::string_view NodeStateName(NodeState state);        // "READY", "SUSPECT", "DOWN"
std::string_view ReplicaStateName(ReplicaState state);  // "PENDING", ...
std::string_view GuestStateName(GuestState state);      // "RUNNING", ...

struct Resources {
  uint32_t vcpus = 0;
  uint64_t memory_mib = 0;
  bool operator==(const Resources&) const = default;
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
  bool operator==(const ServiceSpec&) const = default;
};

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

// What the replica's node last reported about its guest. Not durable.
struct ReplicaObservation {
  GuestState guest_state = GuestState::kUnknown;
  bool healthy = false;
  uint32_t restart_count = 0;
  std::string last_exit_reason;
  std::vector<std::string> endpoints;  // "127.0.0.1:49153->80"
  TimePoint reported_at{};
};

struct Service {
  ServiceSpec spec;
  uint64_t version = 0;  // 0 = not stored yet; the store increments it on every commit
  TimePoint created_at{};
  std::vector<ReplicaPlacement> replicas;  // durable placement, by index; may exceed spec.replicas
                                           // only between a scale-in decision and its commit
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
};

std::string_view ClusterEventTypeName(ClusterEventType type);  // "replica-placed", ...

struct ClusterEvent {
  uint64_t sequence = 0;  // assigned by the store
  TimePoint time{};
  ClusterEventType type = ClusterEventType::kServiceCreated;
  std::string service;
  std::string node;
  std::string message;
  bool operator==(const ClusterEvent&) const = default;
};

}  // namespace phoenix::supervisor
