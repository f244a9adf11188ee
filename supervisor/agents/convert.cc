#include "supervisor/agents/convert.h"

#include <cmath>

#include <string>
#include <utility>

#include "proto/support/ip_address.h"

namespace phoenix::supervisor::agents {

GuestState GuestStateFromProto(v1::GuestState state) {
  switch (state) {
    case v1::GUEST_STATE_PENDING:
      return GuestState::kPending;
    case v1::GUEST_STATE_STARTING:
      return GuestState::kStarting;
    case v1::GUEST_STATE_RUNNING:
      return GuestState::kRunning;
    case v1::GUEST_STATE_STOPPING:
      return GuestState::kStopping;
    case v1::GUEST_STATE_STOPPED:
      return GuestState::kStopped;
    case v1::GUEST_STATE_CRASHED:
      return GuestState::kCrashed;
    case v1::GUEST_STATE_RESTARTING:
      return GuestState::kRestarting;
    case v1::GUEST_STATE_FAILED:
      return GuestState::kFailed;
    default:
      return GuestState::kUnknown;
  }
}

namespace {

Resources ResourcesFromProto(const v1::Resources& in) {
  return Resources{.vcpus = in.vcpus(), .memory_mib = in.memory_mib()};
}

}  // namespace

AgentHello HelloFromProto(const v1::Hello& in, const std::string& node_name) {
  AgentHello out;
  const v1::NodeInfo& node = in.node();
  out.node.name = node_name;
  out.node.zone = node.zone();
  out.node.labels.insert(node.labels().begin(), node.labels().end());
  out.node.capacity = ResourcesFromProto(node.capacity());
  for (const v1::Accelerator& accelerator : node.runtimes()) {
    if (!accelerator.available()) continue;
    if (auto kind = RuntimeFromProto(accelerator.runtime())) out.node.runtimes.insert(*kind);
  }
  out.allocated = ResourcesFromProto(node.allocated());
  out.applied_version = in.applied_version();
  out.images.insert(in.images().begin(), in.images().end());
  out.agent_version = node.version();
  if (IsIpLiteral(node.advertise_address())) out.advertise_address = node.advertise_address();
  if (auto subnet = ParseIpv4Subnet(node.instance_subnet())) {
    out.instance_subnet = FormatSubnet(*subnet);
  }
  return out;
}

std::string EndpointString(const v1::Endpoint& endpoint) {
  const std::string& host = endpoint.host_ip();
  std::string out = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  out += ":" + std::to_string(endpoint.host_port()) + "->" + std::to_string(endpoint.guest_port());
  return out;
}

ReportedGuest GuestFromProto(const v1::Guest& in, TimePoint now) {
  ReportedGuest out;
  out.name = in.spec().name();
  out.observed.guest_state = GuestStateFromProto(in.state());
  out.observed.healthy = in.healthy();
  out.observed.restart_count = in.restart_count();
  out.observed.last_exit_reason = in.last_exit_reason();
  out.observed.endpoints.reserve(in.endpoints_size());
  for (const v1::Endpoint& endpoint : in.endpoints()) {
    out.observed.endpoints.push_back(EndpointString(endpoint));
  }
  if (IsIpv4Literal(in.node_address())) out.observed.node_address = in.node_address();
  out.observed.reported_at = now;
  if (in.has_metrics()) {
    const v1::GuestMetrics& m = in.metrics();
    GuestMetrics& g = out.observed.metrics.emplace();
    g.sampled_at = TimePoint(std::chrono::duration_cast<Clock::duration>(
        std::chrono::seconds(m.sampled_at().seconds()) +
        std::chrono::nanoseconds(m.sampled_at().nanos())));
    g.window_ms = m.window_ms();
    g.cpu_valid = m.cpu_valid();
    g.cpu_percent = m.cpu_percent();
    g.memory_bytes = m.memory_bytes();
    g.requests_valid = m.requests_valid();
    g.requests_per_second = m.requests_per_second();
    g.latency_p50_ms = m.latency_p50_ms();
    g.latency_p99_ms = m.latency_p99_ms();
    g.requests_total = m.requests_total();
    g.connection_errors_total = m.connection_errors_total();
  }
  return out;
}

AgentReport ReportFromProto(const v1::Status& in, TimePoint now) {
  AgentReport out;
  out.applied_version = in.applied_version();
  out.allocated = ResourcesFromProto(in.allocated());
  out.guests.reserve(in.guests_size());
  for (const v1::Guest& guest : in.guests()) out.guests.push_back(GuestFromProto(guest, now));
  out.images.insert(in.images().begin(), in.images().end());
  for (const v1::BlockedFrontDoor& b : in.front_door_blocked()) {
    if (b.port() == 0 || b.port() > 65535) continue;
    out.front_door_blocked.push_back(BlockedFrontDoor{.service = b.service(),
                                                      .port = static_cast<uint16_t>(b.port()),
                                                      .reason = b.reason().substr(0, 256)});
  }
  if (in.front_door_window_ms() > 0) {
    for (const v1::FrontDoorServerLoad& s : in.front_door()) {
      if (!std::isfinite(s.requests_per_second()) || s.requests_per_second() < 0) continue;
      out.front_door.push_back(
          FrontDoorServerLoad{.service = s.service(),
                              .server = s.server(),
                              .requests_per_second = s.requests_per_second(),
                              .requests_total = s.requests_total(),
                              .responses_5xx_total = s.responses_5xx_total(),
                              .connection_errors_total = s.connection_errors_total(),
                              .in_flight = s.in_flight()});
    }
  }
  return out;
}

Result<v1::AssignedGuest> AssignedGuestToProto(const AssignedReplica& in) {
  v1::AssignedGuest out;
  out.set_service(in.service);
  out.set_index(in.index);
  out.set_generation(in.generation);
  v1::GuestSpec* spec = out.mutable_spec();
  if (!spec->ParseFromString(in.guest_template)) {
    return InvalidArgument("guest_template", "replica " + in.guest + " of service " + in.service +
                                                 ": the guest template is not a valid GuestSpec");
  }
  spec->set_name(in.guest);
  for (v1::PortMapping& port : *spec->mutable_ports()) port.set_host_port(0);
  return out;
}

AssignmentProto AssignmentToProto(const NodeAssignment& in) {
  AssignmentProto out;
  out.assignment.set_version(in.version);
  for (const AssignedReplica& replica : in.replicas) {
    auto guest = AssignedGuestToProto(replica);
    if (!guest) {
      out.skipped.push_back(std::move(guest).error());
      continue;
    }
    *out.assignment.add_guests() = std::move(*guest);
  }
  return out;
}

v1::FrontDoorTable FrontDoorTableToProto(const FrontDoorTable& in) {
  v1::FrontDoorTable out;
  out.set_version(in.version);
  for (const FrontDoorService& service : in.services) {
    v1::FrontDoorService* s = out.add_services();
    s->set_name(service.name);
    s->set_port(service.port);
    s->set_protocol(service.protocol == FrontDoorProtocol::kTcp ? v1::FRONT_DOOR_PROTOCOL_TCP
                                                                : v1::FRONT_DOOR_PROTOCOL_HTTP);
    for (const FrontDoorServer& server : service.servers) {
      v1::FrontDoorServer* r = s->add_servers();
      r->set_name(server.name);
      r->set_address(server.address);
      r->set_port(server.port);
      r->set_zone(server.zone);
      r->set_draining(server.draining);
    }
  }
  for (const NodeRoute& route : in.routes) {
    v1::NodeRoute* r = out.add_routes();
    r->set_node(route.node);
    r->set_subnet(route.subnet);
    r->set_via(route.via);
  }
  return out;
}

}  // namespace phoenix::supervisor::agents
