#include "agent/guest/validation.h"

#include <set>
#include <string>

namespace phoenix::agent {

bool IsValidGuestName(std::string_view name) {
  if (name.empty() || name.size() > 63 || name.back() == '-') return false;
  auto lower_alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!lower_alnum(name.front())) return false;
  for (char c : name) {
    if (!lower_alnum(c) && c != '-') return false;
  }
  return true;
}

namespace {

bool IsVisibleAscii(char c) { return c > 0x20 && c < 0x7f; }

// The process environment is NUL-terminated KEY=VALUE strings: a key with '=' would move the split,
// a NUL would cut the entry, and an empty key is no variable at all.
Result<void> ValidateCommandAndEnv(const GuestSpec& spec) {
  if (spec.command.size() > kMaxCommandArgs) {
    return InvalidArgument("spec.command",
                           "must have at most " + std::to_string(kMaxCommandArgs) + " arguments");
  }
  for (size_t i = 0; i < spec.command.size(); ++i) {
    const std::string& arg = spec.command[i];
    const std::string field = "spec.command[" + std::to_string(i) + "]";
    if (arg.find('\0') != std::string::npos) return InvalidArgument(field, "contains a NUL byte");
    if (arg.size() > kMaxArgOrValueBytes) {
      return InvalidArgument(field,
                             "must be at most " + std::to_string(kMaxArgOrValueBytes) + " bytes");
    }
  }
  if (spec.env.size() > kMaxEnvVars) {
    return InvalidArgument("spec.env",
                           "must have at most " + std::to_string(kMaxEnvVars) + " variables");
  }
  for (const auto& [key, value] : spec.env) {
    const std::string field = "spec.env[\"" + key.substr(0, 64) + "\"]";
    if (key.empty()) return InvalidArgument("spec.env", "a variable name is empty");
    if (key.size() > kMaxEnvKeyBytes) {
      return InvalidArgument(field,
                             "name must be at most " + std::to_string(kMaxEnvKeyBytes) + " bytes");
    }
    for (char c : key) {
      if (c == '=' || !IsVisibleAscii(c)) {
        return InvalidArgument(field,
                               "name must be visible ASCII without '=', spaces or control "
                               "characters");
      }
    }
    if (value.find('\0') != std::string::npos) {
      return InvalidArgument(field, "value contains a NUL byte");
    }
    if (value.size() > kMaxArgOrValueBytes) {
      return InvalidArgument(
          field, "value must be at most " + std::to_string(kMaxArgOrValueBytes) + " bytes");
    }
  }
  return {};
}

Result<void> ValidateHealth(const HealthCheck& h) {
  if (h.kind == HealthCheck::Kind::kNone) return {};
  if (h.port == 0) return InvalidArgument("spec.health.port", "must be a guest port 1-65535");
  if (h.kind == HealthCheck::Kind::kHttp) {
    if (h.path.empty() || h.path.front() != '/') {
      return InvalidArgument("spec.health.http.path", "must start with '/'");
    }
    if (h.path.size() > kMaxHealthPathBytes) {
      return InvalidArgument("spec.health.http.path",
                             "must be at most " + std::to_string(kMaxHealthPathBytes) + " bytes");
    }
    // The path goes verbatim into the probe's request line: a space, CR or LF would let it add
    // headers or a second request.
    for (char c : h.path) {
      if (!IsVisibleAscii(c)) {
        return InvalidArgument("spec.health.http.path",
                               "must be visible ASCII without spaces or control characters "
                               "(percent-encode them)");
      }
    }
  }
  if (h.interval_ms < 100)
    return InvalidArgument("spec.health.interval_ms", "must be at least 100");
  if (h.timeout_ms == 0) return InvalidArgument("spec.health.timeout_ms", "must be positive");
  if (h.timeout_ms > h.interval_ms) {
    return InvalidArgument("spec.health.timeout_ms", "must not exceed interval_ms");
  }
  if (h.unhealthy_threshold == 0 || h.unhealthy_threshold > 100) {
    return InvalidArgument("spec.health.unhealthy_threshold", "must be 1-100");
  }
  if (h.restart_after_unhealthy_ms > kMaxRestartAfterUnhealthyMs) {
    return InvalidArgument(
        "spec.health.restart_after_unhealthy_ms",
        "must be at most " + std::to_string(kMaxRestartAfterUnhealthyMs) + " (1 hour)");
  }
  return {};
}

}  // namespace

Result<std::chrono::milliseconds> StopGrace(uint64_t timeout_ms) {
  if (timeout_ms == 0) return kDefaultStopGrace;
  if (timeout_ms > static_cast<uint64_t>(kMaxStopGrace.count())) {
    return InvalidArgument("timeout_ms", "must be at most " +
                                             std::to_string(kMaxStopGrace.count()) +
                                             " (1 hour); 0 means the default 10000");
  }
  return std::chrono::milliseconds(timeout_ms);
}

Result<void> ValidateGuestSpec(const GuestSpec& spec) {
  if (!IsValidGuestName(spec.name)) {
    return InvalidArgument("spec.name",
                           "must be 1-63 characters of a-z, 0-9 and '-', starting with a letter "
                           "or digit and not ending with '-' (got \"" +
                               spec.name + "\")");
  }
  if (spec.image.empty()) return InvalidArgument("spec.image", "is required (e.g. \"demo\")");
  if (spec.vcpus == 0 || spec.vcpus > kMaxVcpus) {
    return InvalidArgument("spec.vcpus", "must be 1-" + std::to_string(kMaxVcpus));
  }
  if (spec.memory_mib < kMinMemoryMib) {
    return InvalidArgument("spec.memory_mib",
                           "must be at least " + std::to_string(kMinMemoryMib) + " MiB");
  }
  if (spec.runtime != RuntimeKind::kContainer && (!spec.command.empty() || !spec.env.empty())) {
    return InvalidArgument(spec.command.empty() ? "spec.env" : "spec.command",
                           "is only supported for containers; a VM runs its image's init");
  }
  PHX_TRY(ValidateCommandAndEnv(spec));
  std::set<uint16_t> guest_ports;
  std::set<std::pair<std::string, uint16_t>> host_ports;
  for (size_t i = 0; i < spec.ports.size(); ++i) {
    const PortMapping& p = spec.ports[i];
    const std::string field = "spec.ports[" + std::to_string(i) + "]";
    if (p.guest_port == 0) return InvalidArgument(field + ".guest_port", "must be 1-65535");
    if (!guest_ports.insert(p.guest_port).second) {
      return InvalidArgument(field + ".guest_port",
                             "guest port " + std::to_string(p.guest_port) + " is published twice");
    }
    if (p.host_ip != "127.0.0.1" && p.host_ip != "::1" && p.host_ip != "0.0.0.0" &&
        p.host_ip != "::") {
      // Publishing on arbitrary interfaces needs the supervisor's network model; loopback and
      // wildcard cover single-host use.
      return InvalidArgument(field + ".host_ip",
                             "must be 127.0.0.1, ::1, 0.0.0.0 or :: (got \"" + p.host_ip + "\")");
    }
    if (p.host_port != 0 && !host_ports.insert({p.host_ip, p.host_port}).second) {
      return InvalidArgument(field + ".host_port",
                             "host port " + std::to_string(p.host_port) + " is used twice");
    }
  }
  PHX_TRY(ValidateHealth(spec.health));
  if (spec.health.kind != HealthCheck::Kind::kNone && !guest_ports.contains(spec.health.port)) {
    return InvalidArgument("spec.health.port", "guest port " + std::to_string(spec.health.port) +
                                                   " is not published; add it to spec.ports");
  }
  if (spec.restart.initial_backoff_ms == 0) {
    return InvalidArgument("spec.restart.initial_backoff_ms", "must be positive");
  }
  if (spec.restart.max_backoff_ms < spec.restart.initial_backoff_ms) {
    return InvalidArgument("spec.restart.max_backoff_ms", "must be at least initial_backoff_ms");
  }
  return {};
}

}  // namespace phoenix::agent
