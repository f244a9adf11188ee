#include "tools/loadgen/service_targets.h"

#include "proto/support/grpc_status.h"

namespace phoenix::loadgen {

ServiceTargets PickTargets(const v1::Service& service, std::optional<uint64_t> guest_port,
                           const std::string& path) {
  ServiceTargets out;
  bool any_healthy = false;
  for (const v1::Replica& replica : service.replicas()) {
    any_healthy |= replica.state() == v1::REPLICA_STATE_RUNNING && replica.healthy() &&
                   replica.endpoints_size() > 0;
  }
  out.all_unhealthy = !any_healthy;
  for (const v1::Replica& replica : service.replicas()) {
    if (replica.state() != v1::REPLICA_STATE_RUNNING || (any_healthy && !replica.healthy())) {
      continue;
    }
    for (const v1::Endpoint& endpoint : replica.endpoints()) {
      if (guest_port && endpoint.guest_port() != *guest_port) continue;
      if (endpoint.host_port() == 0 || endpoint.host_port() > 65535) continue;
      const std::string ip = endpoint.host_ip().empty() ? "127.0.0.1" : endpoint.host_ip();
      if (!IsLoopbackAddress(ip)) {
        out.refused.push_back(ip + ":" + std::to_string(endpoint.host_port()));
      } else {
        out.targets.push_back(Target{ip, static_cast<uint16_t>(endpoint.host_port()), path});
      }
      break;  // one endpoint per replica
    }
  }
  return out;
}

Result<ServiceTargets> ReadServiceTargets(ctl::Context& ctx, v1::Supervisor::StubInterface& stub,
                                          const std::string& service,
                                          std::optional<uint64_t> guest_port,
                                          const std::string& path) {
  v1::GetServiceRequest request;
  request.set_name(service);
  v1::Service response;
  auto context = ctx.SupervisorContext();
  grpc::Status status = stub.GetService(context.get(), request, &response);
  if (!status.ok()) return std::unexpected(FromGrpcStatus(status));
  return PickTargets(response, guest_port, path);
}

}  // namespace phoenix::loadgen
