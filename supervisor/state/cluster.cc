#include "supervisor/state/cluster.h"

#include <string>

namespace phoenix::supervisor {

std::string_view NodeStateName(NodeState state) {
  switch (state) {
    case NodeState::kReady:
      return "READY";
    case NodeState::kSuspect:
      return "SUSPECT";
    case NodeState::kDown:
      return "DOWN";
  }
  return "UNKNOWN";
}

std::string_view ReplicaStateName(ReplicaState state) {
  switch (state) {
    case ReplicaState::kPending:
      return "PENDING";
    case ReplicaState::kAssigned:
      return "ASSIGNED";
    case ReplicaState::kRunning:
      return "RUNNING";
    case ReplicaState::kLost:
      return "LOST";
  }
  return "UNKNOWN";
}

std::string_view GuestStateName(GuestState state) {
  switch (state) {
    case GuestState::kUnknown:
      return "UNKNOWN";
    case GuestState::kPending:
      return "PENDING";
    case GuestState::kStarting:
      return "STARTING";
    case GuestState::kRunning:
      return "RUNNING";
    case GuestState::kStopping:
      return "STOPPING";
    case GuestState::kStopped:
      return "STOPPED";
    case GuestState::kCrashed:
      return "CRASHED";
    case GuestState::kRestarting:
      return "RESTARTING";
    case GuestState::kFailed:
      return "FAILED";
  }
  return "UNKNOWN";
}

std::string_view ClusterEventTypeName(ClusterEventType type) {
  switch (type) {
    case ClusterEventType::kServiceCreated:
      return "service-created";
    case ClusterEventType::kServiceScaled:
      return "service-scaled";
    case ClusterEventType::kServiceDeleted:
      return "service-deleted";
    case ClusterEventType::kReplicaPlaced:
      return "replica-placed";
    case ClusterEventType::kReplicaPending:
      return "replica-pending";
    case ClusterEventType::kReplicaRunning:
      return "replica-running";
    case ClusterEventType::kReplicaReplaced:
      return "replica-replaced";
    case ClusterEventType::kReplicaRemoved:
      return "replica-removed";
    case ClusterEventType::kNodeJoined:
      return "node-joined";
    case ClusterEventType::kNodeReady:
      return "node-ready";
    case ClusterEventType::kNodeSuspect:
      return "node-suspect";
    case ClusterEventType::kNodeDown:
      return "node-down";
    case ClusterEventType::kNodeDrained:
      return "node-drained";
    case ClusterEventType::kNodeUndrained:
      return "node-undrained";
    case ClusterEventType::kStaleGuestStopped:
      return "stale-guest-stopped";
    case ClusterEventType::kNodeRemoved:
      return "node-removed";
    case ClusterEventType::kTokenCreated:
      return "token-created";
    case ClusterEventType::kTokenRevoked:
      return "token-revoked";
    case ClusterEventType::kJoinTokenCreated:
      return "join-token-created";
  }
  return "unknown";
}

std::string_view AutoscaleMetricName(AutoscaleMetric metric) {
  switch (metric) {
    case AutoscaleMetric::kCpu:
      return "cpu";
    case AutoscaleMetric::kRps:
      return "rps";
  }
  return "unknown";
}

std::string_view FrontDoorProtocolName(FrontDoorProtocol protocol) {
  return protocol == FrontDoorProtocol::kTcp ? "tcp" : "http";
}

std::string ReplicaGuestName(std::string_view service, uint32_t index, uint64_t generation) {
  return std::string(service) + "-" + std::to_string(index) + "-" + std::to_string(generation);
}

}  // namespace phoenix::supervisor
