// Conversions between the agents' link messages (phoenix.v1 AgentLink protobufs) and the plain
// values of the link contract (supervisor/reconcile/agent_link.h). With link_service.cc the only
// place in the supervisor's agent side that touches protobuf.
//
// Thread-safety: free functions over values.
#pragma once

#include <string>
#include <vector>

#include "phoenix/v1/supervisor.pb.h"
#include "proto/support/error.h"
#include "supervisor/reconcile/agent_link.h"
#include "supervisor/state/cluster.h"

namespace phoenix::supervisor::agents {

// `node_name` is the authenticated name (certificate CN, or Hello's in insecure mode); it wins over
// hello.node.name. Runtimes are the accelerators the agent reports available.
AgentHello HelloFromProto(const v1::Hello& in, const std::string& node_name);

// `now` stamps every guest's observation.
AgentReport ReportFromProto(const v1::Status& in, TimePoint now);
ReportedGuest GuestFromProto(const v1::Guest& in, TimePoint now);

GuestState GuestStateFromProto(v1::GuestState state);
using spec::RuntimeFromProto;

// "host_ip:host_port->guest_port"; an IPv6 host is bracketed ("[::1]:8080->80").
std::string EndpointString(const v1::Endpoint& endpoint);

// The replica's GuestSpec: its guest_template parsed, named `guest`, every host port 0 (the agent
// picks them). InvalidArgument when the template does not parse.
[[nodiscard]] Result<v1::AssignedGuest> AssignedGuestToProto(const AssignedReplica& in);

struct AssignmentProto {
  v1::Assignment assignment;
  std::vector<Error> skipped;  // one per replica whose template did not parse
};
// Replicas whose template is unreadable are left out (and reported) rather than failing the whole
// assignment: the node keeps running the rest.
AssignmentProto AssignmentToProto(const NodeAssignment& in);

v1::FrontDoorTable FrontDoorTableToProto(const FrontDoorTable& in);

}  // namespace phoenix::supervisor::agents
