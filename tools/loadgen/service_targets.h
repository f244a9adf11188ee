// Service mode of phoenix-loadgen: the HTTP targets of a supervisor service, read with GetService:
// every replica that is RUNNING and healthy (a draining replica has left the published endpoints
// or is no longer RUNNING), at its published endpoint for the chosen guest port. When no replica
// is healthy, every RUNNING one with an endpoint: like a load balancer's panic mode, an overloaded
// replica that fails its health checks still answers some requests, and no target answers none.
//
// Thread-safety: ReadServiceTargets blocks on gRPC; call it off the load loop. PickTargets is pure.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "phoenix/v1/supervisor.grpc.pb.h"
#include "proto/support/error.h"
#include "tools/loadgen/url.h"
#include "tools/phoenixctl/cli.h"

namespace phoenix::loadgen {

struct ServiceTargets {
  std::vector<Target> targets;
  std::vector<std::string> refused;  // endpoints not on loopback ("10.0.0.5:8080")
  bool all_unhealthy = false;        // no healthy replica: the targets are the running ones
};

// `guest_port` nullopt = each replica's first endpoint.
ServiceTargets PickTargets(const v1::Service& service, std::optional<uint64_t> guest_port,
                           const std::string& path);

[[nodiscard]] Result<ServiceTargets> ReadServiceTargets(ctl::Context& ctx,
                                                        v1::Supervisor::StubInterface& stub,
                                                        const std::string& service,
                                                        std::optional<uint64_t> guest_port,
                                                        const std::string& path);

}  // namespace phoenix::loadgen
