#include "supervisor/state/cluster.h"

#include <charconv>
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

std::optional<EndpointParts> ParseEndpointText(std::string_view text) {
  const size_t arrow = text.find("->");
  if (arrow == std::string_view::npos) return std::nullopt;
  const std::string_view host = text.substr(0, arrow);
  const size_t colon = host.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  std::string_view ip = host.substr(0, colon);
  if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
  if (ip.empty()) return std::nullopt;
  auto port = [](std::string_view s, uint16_t& out) {
    uint32_t value = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (s.empty() || ec != std::errc{} || end != s.data() + s.size() || value > 65535) {
      return false;
    }
    out = static_cast<uint16_t>(value);
    return true;
  };
  EndpointParts out{.host_ip = std::string(ip)};
  if (!port(host.substr(colon + 1), out.host_port) ||
      !port(text.substr(arrow + 2), out.guest_port)) {
    return std::nullopt;
  }
  return out;
}

std::string_view FrontDoorProtocolName(FrontDoorProtocol protocol) {
  return protocol == FrontDoorProtocol::kTcp ? "tcp" : "http";
}

std::string ReplicaGuestName(std::string_view service, uint32_t index, uint64_t generation) {
  return std::string(service) + "-" + std::to_string(index) + "-" + std::to_string(generation);
}

}  // namespace phoenix::supervisor
