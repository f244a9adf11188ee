#include "agent/frontdoor/frontdoor_table.h"

#include <set>

#include <fmt/format.h>

#include "agent/frontdoor/haproxy_runtime.h"
#include "proto/support/ip_address.h"

namespace phoenix::agent::frontdoor {
namespace {

Result<void> CheckName(const std::string& field, const std::string& name) {
  if (!HaproxyRuntime::IsValidName(name)) {
    return InvalidArgument(field,
                           "must be 1-64 of [A-Za-z0-9._-], got \"" + name.substr(0, 80) + "\"");
  }
  return {};
}

std::string_view ModeName(FrontDoorMode mode) {
  return mode == FrontDoorMode::kTcp ? "tcp" : "http";
}

}  // namespace

Result<void> ValidateTable(const FrontDoorTable& table) {
  if (table.services.size() > kMaxServices) {
    return InvalidArgument("services", fmt::format("at most {} services", kMaxServices));
  }
  std::set<std::string> names;
  std::set<uint16_t> ports;
  for (size_t i = 0; i < table.services.size(); ++i) {
    const FrontDoorService& s = table.services[i];
    const std::string at = fmt::format("services[{}]", i);
    PHX_TRY(CheckName(at + ".name", s.name));
    if (!names.insert(s.name).second) {
      return InvalidArgument(at + ".name", "\"" + s.name + "\" appears twice");
    }
    if (s.port == 0) return InvalidArgument(at + ".port", "must be 1-65535");
    if (!ports.insert(s.port).second) {
      return InvalidArgument(at + ".port", fmt::format("{} is taken by another service", s.port));
    }
    if (s.servers.size() > kMaxServersPerService) {
      return InvalidArgument(at + ".servers",
                             fmt::format("at most {} servers", kMaxServersPerService));
    }
    std::set<std::string> servers;
    for (size_t j = 0; j < s.servers.size(); ++j) {
      const FrontDoorServer& r = s.servers[j];
      const std::string rat = fmt::format("{}.servers[{}]", at, j);
      PHX_TRY(CheckName(rat + ".name", r.name));
      if (!servers.insert(r.name).second) {
        return InvalidArgument(rat + ".name", "\"" + r.name + "\" appears twice");
      }
      if (!IsIpLiteral(r.address)) {
        return InvalidArgument(rat + ".address",
                               "not an IPv4 or IPv6 address: \"" + r.address.substr(0, 80) + "\"");
      }
      if (r.port == 0) return InvalidArgument(rat + ".port", "must be 1-65535");
    }
  }
  return {};
}

uint32_t ServerWeight(const FrontDoorServer& server, const FrontDoorSettings& settings) {
  if (server.draining) return 0;
  return !server.zone.empty() && server.zone == settings.zone ? kLocalZoneWeight
                                                              : kRemoteZoneWeight;
}

std::string ServerOptions(FrontDoorMode mode) {
  return fmt::format(
      "check inter 2s fastinter 500ms fall 2 rise 1 observe {} error-limit 3 on-error mark-down",
      mode == FrontDoorMode::kTcp ? "layer4" : "layer7");
}

std::string RenderConfig(const FrontDoorTable& table, const HaproxyFiles& files,
                         const FrontDoorSettings& settings) {
  std::string c;
  c += "# Written by phoenix-agent (its front door); changes here are overwritten.\n";
  c += fmt::format("# table version {}\n", table.version);
  // Read back when an agent adopts a running HAProxy: what its frontends are.
  c += fmt::format("# frontends: {}\n", FrontendSignature(table, settings));
  c += "global\n";
  c += "  master-worker\n";
  // expose-fd listeners: a reload hands the listening sockets to the new worker, so no
  // connection is refused while it starts.
  c += fmt::format("  stats socket {} mode 600 level admin expose-fd listeners\n",
                   files.api_socket().string());
  c += fmt::format("  hard-stop-after {}s\n", settings.drain_timeout.count());
  c += "defaults\n";
  c += "  timeout connect 1s\n";
  c += fmt::format("  timeout queue {}ms\n", settings.queue_timeout.count());
  c += "  timeout client 60s\n";
  c += "  timeout server 60s\n";
  c += "  timeout http-request 10s\n";
  c += "  timeout http-keep-alive 10s\n";
  c += "  retries 2\n";
  c += "  option redispatch 1\n";
  for (const FrontDoorService& s : table.services) {
    const std::string_view mode = ModeName(s.mode);
    c += fmt::format("frontend {}\n", s.name);
    c += fmt::format("  mode {}\n", mode);
    c += fmt::format("  bind {}\n", HaproxyAddress(settings.bind_address, s.port));
    c += fmt::format("  default_backend {}\n", s.name);
    c += fmt::format("backend {}\n", s.name);
    c += fmt::format("  mode {}\n", mode);
    c += "  balance leastconn\n";
    // Idempotent GETs may be retried on another replica when one fails to answer at all.
    if (s.mode == FrontDoorMode::kHttp) c += "  retry-on conn-failure empty-response\n";
    for (const FrontDoorServer& r : s.servers) {
      c += fmt::format("  server {} {} weight {} {}\n", r.name, HaproxyAddress(r.address, r.port),
                       ServerWeight(r, settings), ServerOptions(s.mode));
    }
  }
  return c;
}

std::string FrontendSignature(const FrontDoorTable& table, const FrontDoorSettings& settings) {
  std::string sig = settings.bind_address;
  for (const FrontDoorService& s : table.services) {
    sig += fmt::format(" {}:{}:{}", s.name, s.port, ModeName(s.mode));
  }
  return sig;
}

}  // namespace phoenix::agent::frontdoor
