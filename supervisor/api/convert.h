// Conversions between phoenix.v1 (supervisor.proto) and the supervisor's plain values
// (supervisor/state/cluster.h, supervisor/reconcile/controller.h). With supervisor_service.cc the
// only place the admin API touches protobuf.
//
// ServiceSpecFromProto validates the user's spec (InvalidArgument naming the field, "spec.name",
// "spec.template.image", ...): the replica template by the agents' own rules
// (proto/support/guest_spec.h), so the supervisor refuses at create what every agent would refuse.
// It applies the API defaults (max skew 1; the template's from guest_spec.h) and keeps the
// template as a serialized phoenix.v1.GuestSpec with every default explicit (name cleared, host
// ports zeroed: the supervisor names guests and the agents pick host ports). The *ToProto functions
// are for display and never fail.
//
// Thread-safety: pure functions over values.
#pragma once

#include <string_view>

#include "phoenix/v1/supervisor.pb.h"
#include "proto/support/error.h"
#include "proto/support/guest_spec.h"
#include "supervisor/reconcile/controller.h"
#include "supervisor/state/cluster.h"

namespace phoenix::supervisor::api {

inline constexpr uint32_t kMaxReplicas = 1000;
inline constexpr uint32_t kDefaultMaxSkew = 1;

[[nodiscard]] Result<ServiceSpec> ServiceSpecFromProto(const v1::ServiceSpec& in);
// The policy with the proto's defaults applied (0 = default), validated; errors name
// `prefix` + "." + the field ("spec.autoscale.max_replicas", "policy.metric").
[[nodiscard]] Result<AutoscalePolicy> AutoscalePolicyFromProto(const v1::AutoscalePolicy& in,
                                                               std::string_view prefix);
void AutoscalePolicyToProto(const AutoscalePolicy& in, v1::AutoscalePolicy* out);
void GuestMetricsToProto(const GuestMetrics& in, v1::GuestMetrics* out);
// The spec as the user sees it: the stored template with the value's fields on top.
void ServiceSpecToProto(const ServiceSpec& in, v1::ServiceSpec* out);
void ServiceToProto(const ServiceStatus& in, v1::Service* out);
void ReplicaToProto(const ReplicaStatus& in, v1::Replica* out);
void NodeToProto(const NodeStatus& in, v1::Node* out);
void ClusterEventToProto(const ClusterEvent& in, v1::ClusterEvent* out);

using spec::RuntimeToProto;
v1::NodeState NodeStateToProto(NodeState state);
v1::ReplicaState ReplicaStateToProto(ReplicaState state);
v1::GuestState GuestStateToProto(GuestState state);
v1::ClusterEventType ClusterEventTypeToProto(ClusterEventType type);

// "127.0.0.1:49153->80" (or "[::1]:49153->80") as the agent reports it. False if malformed.
bool ParseEndpoint(std::string_view text, v1::Endpoint* out);

}  // namespace phoenix::supervisor::api
