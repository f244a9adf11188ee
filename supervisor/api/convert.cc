#include "supervisor/api/convert.h"

#include <chrono>
#include <string>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/time_util.h>

#include "supervisor/autoscale/autoscaler.h"

namespace phoenix::supervisor::api {

namespace {

using google::protobuf::util::TimeUtil;

constexpr size_t kMaxNameLength = 40;

void SetTime(TimePoint t, google::protobuf::Timestamp* out) {
  if (t == TimePoint{}) return;
  *out = TimeUtil::MicrosecondsToTimestamp(
      std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count());
}

Result<void> ValidateName(const std::string& name) {
  if (name.empty()) return InvalidArgument("spec.name", "is required");
  if (name.size() > kMaxNameLength) {
    return InvalidArgument("spec.name", "must be at most " + std::to_string(kMaxNameLength) +
                                            " characters (got " + std::to_string(name.size()) +
                                            ")");
  }
  auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!lower_or_digit(name.front())) {
    return InvalidArgument("spec.name",
                           "must start with a lowercase letter or digit (got \"" + name + "\")");
  }
  for (char c : name) {
    if (!lower_or_digit(c) && c != '-') {
      return InvalidArgument("spec.name",
                             "may contain only a-z, 0-9 and '-' (got \"" + name + "\")");
    }
  }
  return {};
}

Result<PlacementStrategy> StrategyFromProto(v1::PlacementStrategy strategy) {
  switch (strategy) {
    case v1::PLACEMENT_STRATEGY_UNSPECIFIED:
    case v1::PLACEMENT_STRATEGY_SPREAD:
      return PlacementStrategy::kSpread;
    case v1::PLACEMENT_STRATEGY_BINPACK:
      return PlacementStrategy::kBinpack;
    default:
      return InvalidArgument("spec.strategy",
                             "unknown strategy " + std::to_string(static_cast<int>(strategy)));
  }
}

v1::PlacementStrategy StrategyToProto(PlacementStrategy strategy) {
  switch (strategy) {
    case PlacementStrategy::kSpread:
      return v1::PLACEMENT_STRATEGY_SPREAD;
    case PlacementStrategy::kBinpack:
      return v1::PLACEMENT_STRATEGY_BINPACK;
  }
  return v1::PLACEMENT_STRATEGY_UNSPECIFIED;
}

void ResourcesToProto(const Resources& in, v1::Resources* out) {
  out->set_vcpus(in.vcpus);
  out->set_memory_mib(in.memory_mib);
}

}  // namespace

v1::NodeState NodeStateToProto(NodeState state) {
  switch (state) {
    case NodeState::kReady:
      return v1::NODE_STATE_READY;
    case NodeState::kSuspect:
      return v1::NODE_STATE_SUSPECT;
    case NodeState::kDown:
      return v1::NODE_STATE_DOWN;
  }
  return v1::NODE_STATE_UNSPECIFIED;
}

v1::ReplicaState ReplicaStateToProto(ReplicaState state) {
  switch (state) {
    case ReplicaState::kPending:
      return v1::REPLICA_STATE_PENDING;
    case ReplicaState::kAssigned:
      return v1::REPLICA_STATE_ASSIGNED;
    case ReplicaState::kRunning:
      return v1::REPLICA_STATE_RUNNING;
    case ReplicaState::kLost:
      return v1::REPLICA_STATE_LOST;
  }
  return v1::REPLICA_STATE_UNSPECIFIED;
}

v1::GuestState GuestStateToProto(GuestState state) {
  switch (state) {
    case GuestState::kUnknown:
      return v1::GUEST_STATE_UNSPECIFIED;
    case GuestState::kPending:
      return v1::GUEST_STATE_PENDING;
    case GuestState::kStarting:
      return v1::GUEST_STATE_STARTING;
    case GuestState::kRunning:
      return v1::GUEST_STATE_RUNNING;
    case GuestState::kStopping:
      return v1::GUEST_STATE_STOPPING;
    case GuestState::kStopped:
      return v1::GUEST_STATE_STOPPED;
    case GuestState::kCrashed:
      return v1::GUEST_STATE_CRASHED;
    case GuestState::kRestarting:
      return v1::GUEST_STATE_RESTARTING;
    case GuestState::kFailed:
      return v1::GUEST_STATE_FAILED;
  }
  return v1::GUEST_STATE_UNSPECIFIED;
}

v1::ClusterEventType ClusterEventTypeToProto(ClusterEventType type) {
  switch (type) {
    case ClusterEventType::kServiceCreated:
      return v1::CLUSTER_EVENT_TYPE_SERVICE_CREATED;
    case ClusterEventType::kServiceScaled:
      return v1::CLUSTER_EVENT_TYPE_SERVICE_SCALED;
    case ClusterEventType::kServiceDeleted:
      return v1::CLUSTER_EVENT_TYPE_SERVICE_DELETED;
    case ClusterEventType::kReplicaPlaced:
      return v1::CLUSTER_EVENT_TYPE_REPLICA_PLACED;
    case ClusterEventType::kReplicaPending:
      return v1::CLUSTER_EVENT_TYPE_REPLICA_PENDING;
    case ClusterEventType::kReplicaRunning:
      return v1::CLUSTER_EVENT_TYPE_REPLICA_RUNNING;
    case ClusterEventType::kReplicaReplaced:
      return v1::CLUSTER_EVENT_TYPE_REPLICA_REPLACED;
    case ClusterEventType::kReplicaRemoved:
      return v1::CLUSTER_EVENT_TYPE_REPLICA_REMOVED;
    case ClusterEventType::kNodeJoined:
      return v1::CLUSTER_EVENT_TYPE_NODE_JOINED;
    case ClusterEventType::kNodeReady:
      return v1::CLUSTER_EVENT_TYPE_NODE_READY;
    case ClusterEventType::kNodeSuspect:
      return v1::CLUSTER_EVENT_TYPE_NODE_SUSPECT;
    case ClusterEventType::kNodeDown:
      return v1::CLUSTER_EVENT_TYPE_NODE_DOWN;
    case ClusterEventType::kNodeDrained:
      return v1::CLUSTER_EVENT_TYPE_NODE_DRAINED;
    case ClusterEventType::kNodeUndrained:
      return v1::CLUSTER_EVENT_TYPE_NODE_UNDRAINED;
    case ClusterEventType::kStaleGuestStopped:
      return v1::CLUSTER_EVENT_TYPE_STALE_GUEST_STOPPED;
    case ClusterEventType::kNodeRemoved:
      return v1::CLUSTER_EVENT_TYPE_NODE_REMOVED;
    case ClusterEventType::kTokenCreated:
      return v1::CLUSTER_EVENT_TYPE_TOKEN_CREATED;
    case ClusterEventType::kTokenRevoked:
      return v1::CLUSTER_EVENT_TYPE_TOKEN_REVOKED;
    case ClusterEventType::kJoinTokenCreated:
      return v1::CLUSTER_EVENT_TYPE_JOIN_TOKEN_CREATED;
  }
  return v1::CLUSTER_EVENT_TYPE_UNSPECIFIED;
}

Result<AutoscalePolicy> AutoscalePolicyFromProto(const v1::AutoscalePolicy& in,
                                                 std::string_view prefix) {
  AutoscalePolicy out;
  auto metric = autoscale::ParseMetric(in.metric());
  if (!metric) {
    return InvalidArgument(std::string(prefix) + ".metric",
                           "must be \"cpu\" or \"rps\" (got \"" + in.metric() + "\")");
  }
  out.metric = *metric;
  out.min_replicas = in.min_replicas();
  out.max_replicas = in.max_replicas();
  out.target = in.target();
  const AutoscalePolicy defaults;
  // Unset is the default; 0 is a choice (both fields have presence).
  out.tolerance = in.has_tolerance() ? in.tolerance() : defaults.tolerance;
  out.scale_up_stabilization_s = in.scale_up_stabilization_s();
  out.scale_down_stabilization_s = in.has_scale_down_stabilization_s()
                                       ? in.scale_down_stabilization_s()
                                       : defaults.scale_down_stabilization_s;
  out.scale_up_max_step =
      in.scale_up_max_step() == 0 ? defaults.scale_up_max_step : in.scale_up_max_step();
  out.scale_up_period_s =
      in.scale_up_period_s() == 0 ? defaults.scale_up_period_s : in.scale_up_period_s();
  if (out.max_replicas > kMaxReplicas) {
    return InvalidArgument(std::string(prefix) + ".max_replicas",
                           "must be at most " + std::to_string(kMaxReplicas));
  }
  PHX_TRY(autoscale::ValidatePolicy(out, prefix));
  return out;
}

void AutoscalePolicyToProto(const AutoscalePolicy& in, v1::AutoscalePolicy* out) {
  out->set_min_replicas(in.min_replicas);
  out->set_max_replicas(in.max_replicas);
  out->set_metric(std::string(AutoscaleMetricName(in.metric)));
  out->set_target(in.target);
  out->set_tolerance(in.tolerance);
  out->set_scale_up_stabilization_s(in.scale_up_stabilization_s);
  out->set_scale_down_stabilization_s(in.scale_down_stabilization_s);
  out->set_scale_up_max_step(in.scale_up_max_step);
  out->set_scale_up_period_s(in.scale_up_period_s);
}

void GuestMetricsToProto(const GuestMetrics& in, v1::GuestMetrics* out) {
  SetTime(in.sampled_at, out->mutable_sampled_at());
  out->set_window_ms(in.window_ms);
  out->set_cpu_valid(in.cpu_valid);
  out->set_cpu_percent(in.cpu_percent);
  out->set_memory_bytes(in.memory_bytes);
  out->set_requests_valid(in.requests_valid);
  out->set_requests_per_second(in.requests_per_second);
  out->set_latency_p50_ms(in.latency_p50_ms);
  out->set_latency_p99_ms(in.latency_p99_ms);
  out->set_requests_total(in.requests_total);
  out->set_connection_errors_total(in.connection_errors_total);
}

Result<ServiceSpec> ServiceSpecFromProto(const v1::ServiceSpec& in) {
  ServiceSpec out;
  PHX_TRY(ValidateName(in.name()));
  out.name = in.name();

  if (in.replicas() > kMaxReplicas) {
    return InvalidArgument("spec.replicas", "must be 0-" + std::to_string(kMaxReplicas) + " (got " +
                                                std::to_string(in.replicas()) + ")");
  }
  out.replicas = in.replicas();

  // A front door publishes its guest port on every replica: added to the template before it is
  // checked, so a health check on that port is valid too.
  v1::GuestSpec guest_template = in.template_();
  if (in.has_front_door()) {
    const v1::FrontDoor& door = in.front_door();
    if (door.port() == 0 || door.port() > 65535) {
      return InvalidArgument("spec.front_door.port",
                             "must be 1-65535 (got " + std::to_string(door.port()) + ")");
    }
    if (door.guest_port() == 0 || door.guest_port() > 65535) {
      return InvalidArgument("spec.front_door.guest_port",
                             "must be 1-65535 (got " + std::to_string(door.guest_port()) + ")");
    }
    FrontDoorProtocol protocol = FrontDoorProtocol::kHttp;
    switch (door.protocol()) {
      case v1::FRONT_DOOR_PROTOCOL_UNSPECIFIED:
      case v1::FRONT_DOOR_PROTOCOL_HTTP:
        break;
      case v1::FRONT_DOOR_PROTOCOL_TCP:
        protocol = FrontDoorProtocol::kTcp;
        break;
      default:
        return InvalidArgument("spec.front_door.protocol",
                               "unknown value " + std::to_string(door.protocol()));
    }
    out.front_door = FrontDoorPort{.port = static_cast<uint16_t>(door.port()),
                                   .guest_port = static_cast<uint16_t>(door.guest_port()),
                                   .protocol = protocol};
    spec::EnsurePublished(guest_template, door.guest_port());
  }

  // The template obeys the same rules as a guest of its own (proto/support/guest_spec.h): what
  // every agent would refuse is refused here, at create, naming spec.template.<field>.
  auto guest = spec::ParseGuestSpec(guest_template, "spec.template", spec::SpecUse::kTemplate);
  if (!guest) return std::unexpected(guest.error());
  out.runtime = guest->runtime;
  out.image = guest->image;
  out.memory_mib = guest->memory_mib;
  out.vcpus = guest->vcpus;

  const std::string& attribute = in.spread().attribute();
  if (!attribute.empty() && attribute != "zone") {
    return InvalidArgument("spec.spread.attribute",
                           "must be \"zone\" or empty (got \"" + attribute + "\")");
  }
  out.spread_attribute = attribute;
  out.max_skew = in.spread().max_skew() == 0 ? kDefaultMaxSkew : in.spread().max_skew();

  auto strategy = StrategyFromProto(in.strategy());
  if (!strategy) return std::unexpected(strategy.error());
  out.strategy = *strategy;
  for (const auto& [key, value] : in.node_selector()) out.node_selector[key] = value;
  out.distinct_hosts = in.distinct_hosts();
  if (in.has_autoscale()) {
    auto policy = AutoscalePolicyFromProto(in.autoscale(), "spec.autoscale");
    if (!policy) return std::unexpected(policy.error());
    out.autoscale = *policy;
  }

  // Stored with every default explicit (runtime included), so agents run exactly what was
  // accepted. The supervisor names each replica's guest and every agent picks its own host ports
  // (ParseGuestSpec cleared both). Deterministic, so an unchanged spec always stores the same bytes
  // (ServiceSpec::operator==).
  v1::GuestSpec normalized;
  spec::GuestSpecToProto(*guest, &normalized);
  {
    google::protobuf::io::StringOutputStream stream(&out.guest_template);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    if (!normalized.SerializeToCodedStream(&coded)) {
      return Internal("serializing the replica template failed");
    }
  }
  return out;
}

void ServiceSpecToProto(const ServiceSpec& in, v1::ServiceSpec* out) {
  out->set_name(in.name);
  v1::GuestSpec* guest = out->mutable_template_();
  // A template that does not parse (never written by this module) still shows the value's fields.
  if (!guest->ParseFromString(in.guest_template)) guest->Clear();
  guest->clear_name();
  guest->set_runtime(RuntimeToProto(in.runtime));
  guest->set_image(in.image);
  guest->set_vcpus(in.vcpus);
  guest->set_memory_mib(in.memory_mib);
  out->set_replicas(in.replicas);
  if (!in.spread_attribute.empty()) {
    out->mutable_spread()->set_attribute(in.spread_attribute);
    out->mutable_spread()->set_max_skew(in.max_skew);
  }
  out->set_strategy(StrategyToProto(in.strategy));
  for (const auto& [key, value] : in.node_selector) (*out->mutable_node_selector())[key] = value;
  out->set_distinct_hosts(in.distinct_hosts);
  if (in.autoscale) AutoscalePolicyToProto(*in.autoscale, out->mutable_autoscale());
  if (in.front_door) {
    v1::FrontDoor* door = out->mutable_front_door();
    door->set_port(in.front_door->port);
    door->set_guest_port(in.front_door->guest_port);
    door->set_protocol(in.front_door->protocol == FrontDoorProtocol::kTcp
                           ? v1::FRONT_DOOR_PROTOCOL_TCP
                           : v1::FRONT_DOOR_PROTOCOL_HTTP);
  }
}

bool ParseEndpoint(std::string_view text, v1::Endpoint* out) {
  std::optional<EndpointParts> parts = ParseEndpointText(text);
  if (!parts) return false;
  out->set_host_ip(parts->host_ip);
  out->set_host_port(parts->host_port);
  out->set_guest_port(parts->guest_port);
  return true;
}

void ReplicaToProto(const ReplicaStatus& in, v1::Replica* out) {
  out->set_index(in.placement.index);
  out->set_generation(in.placement.generation);
  out->set_guest(in.guest);
  out->set_node(in.placement.node);
  out->set_zone(in.zone);
  out->set_state(ReplicaStateToProto(in.state));
  out->set_guest_state(GuestStateToProto(in.observed.guest_state));
  out->set_healthy(in.observed.healthy);
  out->set_restart_count(in.observed.restart_count);
  out->set_last_exit_reason(in.observed.last_exit_reason);
  out->set_pending_reason(in.pending_reason);
  for (const std::string& text : in.observed.endpoints) {
    v1::Endpoint endpoint;
    // An endpoint the agent reported in another shape is left out rather than shown wrong.
    if (ParseEndpoint(text, &endpoint)) *out->add_endpoints() = std::move(endpoint);
  }
  if (in.observed.metrics) GuestMetricsToProto(*in.observed.metrics, out->mutable_metrics());
}

void ServiceToProto(const ServiceStatus& in, v1::Service* out) {
  ServiceSpecToProto(in.service.spec, out->mutable_spec());
  out->set_version(in.service.version);
  SetTime(in.service.created_at, out->mutable_created_at());
  for (const ReplicaStatus& replica : in.replicas) ReplicaToProto(replica, out->add_replicas());
  out->set_running(in.running);
  for (const std::string& address : in.front_door_addresses) out->add_front_door_addresses(address);
  for (const std::string& problem : in.front_door_problems) out->add_front_door_problems(problem);
  if (in.autoscale) {
    v1::AutoscaleStatus* a = out->mutable_autoscale();
    a->set_observed(in.autoscale->observed);
    a->set_reporting_replicas(in.autoscale->reporting_replicas);
    a->set_desired_replicas(in.autoscale->desired_replicas);
    a->set_state(in.autoscale->state);
    for (const ScalingDecision& d : in.autoscale->recent) {
      v1::ScalingDecision* p = a->add_recent();
      SetTime(d.time, p->mutable_time());
      p->set_from_replicas(d.from_replicas);
      p->set_to_replicas(d.to_replicas);
      p->set_metric(std::string(AutoscaleMetricName(d.metric)));
      p->set_observed(d.observed);
      p->set_target(d.target);
      p->set_reporting_replicas(d.reporting_replicas);
      p->set_reason(d.reason);
    }
  }
}

void NodeToProto(const NodeStatus& in, v1::Node* out) {
  out->set_name(in.record.name);
  out->set_zone(in.record.zone);
  for (const auto& [key, value] : in.record.labels) (*out->mutable_labels())[key] = value;
  out->set_state(NodeStateToProto(in.live.state));
  out->set_drained(in.record.drained);
  ResourcesToProto(in.record.capacity, out->mutable_capacity());
  ResourcesToProto(in.live.allocated, out->mutable_allocated());
  for (RuntimeKind kind : in.record.runtimes) {
    v1::Accelerator* runtime = out->add_runtimes();
    runtime->set_runtime(RuntimeToProto(kind));
    runtime->set_available(true);
  }
  SetTime(in.live.last_heartbeat, out->mutable_last_heartbeat());
  out->set_assignment_version(in.record.assignment_version);
  out->set_applied_version(in.live.applied_version);
  out->set_replicas(in.replicas);
  out->set_agent_version(in.live.agent_version);
  out->set_state_reason(in.live.state_reason);
  out->set_advertise_address(in.live.advertise_address);
}

void ClusterEventToProto(const ClusterEvent& in, v1::ClusterEvent* out) {
  out->set_sequence(in.sequence);
  SetTime(in.time, out->mutable_time());
  out->set_type(ClusterEventTypeToProto(in.type));
  out->set_service(in.service);
  out->set_node(in.node);
  out->set_message(in.message);
  out->set_actor(in.actor);
}

}  // namespace phoenix::supervisor::api
