// Planner: decides *what* must change for the cluster to match its services, as a pure function
// (state in, plan out; no clock, no I/O). The Controller applies the plan; placement/ decides
// *where*.
//
// Per service, in name order:
//   - too many replicas (scale-in): remove pending ones first, then ones whose node is gone, then
//     from the zone holding the most, highest index first;
//   - too few (scale-out): add replicas at the lowest free indexes;
//   - a replica needs a node when it has none, or its node is DOWN, drained or unknown. All of
//     the service's replicas needing a node go to placement in one request list, so each decision
//     sees the ones before it; decisions of earlier services count against later ones.
// Liveness (NextNodeState) is here too: how heartbeats age into SUSPECT and DOWN.
//
// Threading: pure functions over values.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "supervisor/placement/placement.h"
#include "supervisor/state/cluster.h"

namespace phoenix::supervisor {

// What the planner needs to know of a node.
struct PlannerNode {
  NodeRecord record;
  NodeState state = NodeState::kSuspect;
  Resources reported_allocated;           // as the agent last reported it (all its guests)
  std::set<std::string> reported_guests;  // guest names the agent last reported
  std::set<std::string> images;
  std::set<uint16_t> taken_front_door_ports;  // as its last report said
};

struct PlannerInput {
  const std::map<std::string, Service>* services = nullptr;
  const std::map<std::string, PlannerNode>* nodes = nullptr;
};

struct ReplicaChange {
  enum class Kind {
    kPlace,    // a replica without a node gets one (new or formerly pending)
    kReplace,  // a replica leaves from_node (down, drained, gone) for to_node
    kPending,  // no node fits; leaves from_node if it had one
    kRemove,   // scale-in
  };
  Kind kind = Kind::kPlace;
  std::string service;
  uint32_t index = 0;
  std::string from_node;    // empty if none
  std::string to_node;      // kPlace/kReplace
  uint64_t generation = 0;  // kPlace/kReplace: the new generation
  std::string reason;       // kPending: placement's explanation; kReplace/kRemove: why
};

struct ReconcilePlan {
  std::vector<ReplicaChange> changes;
};

[[nodiscard]] ReconcilePlan PlanReconcile(const PlannerInput& input,
                                          const placement::Options& options);

// Whether a replica may stay on `node` (it exists, is not DOWN and not drained).
bool NodeKeepsReplicas(const std::map<std::string, PlannerNode>& nodes, const std::string& node);

struct LivenessTimeouts {
  std::chrono::milliseconds suspect_after{2500};
  std::chrono::milliseconds down_after{4000};
};

// The state a node should be in `silence` after its last heartbeat. A disconnected node is at
// least SUSPECT; DOWN stays DOWN here: only the node itself (a hello, or heartbeats resuming on
// a link that stayed open) brings it back, and the controller handles that.
[[nodiscard]] NodeState NextNodeState(NodeState current, bool connected,
                                      std::chrono::milliseconds silence,
                                      const LivenessTimeouts& timeouts);

}  // namespace phoenix::supervisor
