#include "proto/support/guest_spec.h"

#include <algorithm>
#include <set>

#include "phoenix/v1/agent.pb.h"

namespace phoenix::spec {

std::string_view RuntimeKindName(RuntimeKind kind) {
  switch (kind) {
    case RuntimeKind::kVm:
      return "vm";
    case RuntimeKind::kMicroVm:
      return "microvm";
    case RuntimeKind::kContainer:
      return "container";
  }
  return "unknown";
}

std::string_view BootModeName(BootMode mode) {
  switch (mode) {
    case BootMode::kAuto:
      return "auto";
    case BootMode::kCold:
      return "cold";
    case BootMode::kSnapshot:
      return "snapshot";
  }
  return "unknown";
}

bool IsValidGuestName(std::string_view name) {
  if (name.empty() || name.size() > 63 || name.back() == '-') return false;
  auto lower_alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!lower_alnum(name.front())) return false;
  for (char c : name) {
    if (!lower_alnum(c) && c != '-') return false;
  }
  return true;
}

Result<std::chrono::milliseconds> StopGrace(uint64_t timeout_ms) {
  if (timeout_ms == 0) return kDefaultStopGrace;
  if (timeout_ms > static_cast<uint64_t>(kMaxStopGrace.count())) {
    return InvalidArgument("timeout_ms", "must be at most " +
                                             std::to_string(kMaxStopGrace.count()) +
                                             " (1 hour); 0 means the default 10000");
  }
  return std::chrono::milliseconds(timeout_ms);
}

namespace {

// "spec" + "memory_mib" -> "spec.memory_mib"
class Field {
 public:
  explicit Field(std::string_view prefix) : prefix_(prefix) {}
  std::string operator()(std::string_view name) const {
    return std::string(prefix_) + "." + std::string(name);
  }

 private:
  std::string_view prefix_;
};

bool IsVisibleAscii(char c) { return c > 0x20 && c < 0x7f; }

// The process environment is NUL-terminated KEY=VALUE strings: a key with '=' would move the split,
// a NUL would cut the entry, and an empty key is no variable at all.
Result<void> ValidateCommandAndEnv(const GuestSpec& spec, const Field& f) {
  if (spec.command.size() > kMaxCommandArgs) {
    return InvalidArgument(f("command"),
                           "must have at most " + std::to_string(kMaxCommandArgs) + " arguments");
  }
  for (size_t i = 0; i < spec.command.size(); ++i) {
    const std::string& arg = spec.command[i];
    const std::string field = f("command[" + std::to_string(i) + "]");
    if (arg.find('\0') != std::string::npos) return InvalidArgument(field, "contains a NUL byte");
    if (arg.size() > kMaxArgOrValueBytes) {
      return InvalidArgument(field,
                             "must be at most " + std::to_string(kMaxArgOrValueBytes) + " bytes");
    }
  }
  if (spec.env.size() > kMaxEnvVars) {
    return InvalidArgument(f("env"),
                           "must have at most " + std::to_string(kMaxEnvVars) + " variables");
  }
  for (const auto& [key, value] : spec.env) {
    const std::string field = f("env[\"" + key.substr(0, 64) + "\"]");
    if (key.empty()) return InvalidArgument(f("env"), "a variable name is empty");
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

Result<void> ValidateHealth(const HealthCheck& h, const Field& f) {
  if (h.kind == HealthCheck::Kind::kNone) return {};
  if (h.port == 0) return InvalidArgument(f("health.port"), "must be a guest port 1-65535");
  if (h.kind == HealthCheck::Kind::kHttp) {
    if (h.path.empty() || h.path.front() != '/') {
      return InvalidArgument(f("health.http.path"), "must start with '/'");
    }
    if (h.path.size() > kMaxHealthPathBytes) {
      return InvalidArgument(f("health.http.path"),
                             "must be at most " + std::to_string(kMaxHealthPathBytes) + " bytes");
    }
    // The path goes verbatim into the probe's request line: a space, CR or LF would let it add
    // headers or a second request.
    for (char c : h.path) {
      if (!IsVisibleAscii(c)) {
        return InvalidArgument(f("health.http.path"),
                               "must be visible ASCII without spaces or control characters "
                               "(percent-encode them)");
      }
    }
  }
  if (h.interval_ms < 100) return InvalidArgument(f("health.interval_ms"), "must be at least 100");
  if (h.timeout_ms == 0) return InvalidArgument(f("health.timeout_ms"), "must be positive");
  if (h.timeout_ms > h.interval_ms) {
    return InvalidArgument(f("health.timeout_ms"), "must not exceed interval_ms");
  }
  if (h.unhealthy_threshold == 0 || h.unhealthy_threshold > 100) {
    return InvalidArgument(f("health.unhealthy_threshold"), "must be 1-100");
  }
  if (h.restart_after_unhealthy_ms > kMaxRestartAfterUnhealthyMs) {
    return InvalidArgument(
        f("health.restart_after_unhealthy_ms"),
        "must be at most " + std::to_string(kMaxRestartAfterUnhealthyMs) + " (1 hour)");
  }
  return {};
}

Result<uint16_t> Port(uint32_t value, const std::string& field, bool zero_ok) {
  if (value > 65535 || (!zero_ok && value == 0)) {
    return InvalidArgument(field,
                           "must be a port number 1-65535 (got " + std::to_string(value) + ")");
  }
  return static_cast<uint16_t>(value);
}

v1::RestartPolicy PolicyToProto(RestartPolicy p) {
  switch (p) {
    case RestartPolicy::kAlways:
      return v1::RESTART_POLICY_ALWAYS;
    case RestartPolicy::kOnFailure:
      return v1::RESTART_POLICY_ON_FAILURE;
    case RestartPolicy::kNever:
      return v1::RESTART_POLICY_NEVER;
  }
  return v1::RESTART_POLICY_UNSPECIFIED;
}

}  // namespace

Result<void> ValidateGuestSpec(const GuestSpec& spec, std::string_view prefix, SpecUse use) {
  const Field f(prefix);
  if (use == SpecUse::kGuest && !IsValidGuestName(spec.name)) {
    return InvalidArgument(f("name"),
                           "must be 1-63 characters of a-z, 0-9 and '-', starting with a letter "
                           "or digit and not ending with '-' (got \"" +
                               spec.name.substr(0, 80) + "\")");
  }
  if (spec.image.empty()) return InvalidArgument(f("image"), "is required (e.g. \"demo\")");
  if (spec.image.size() > kMaxImageRefBytes ||
      !std::ranges::all_of(spec.image, [](char c) { return IsVisibleAscii(c); })) {
    return InvalidArgument(f("image"),
                           "must be name[:tag] or sha256:<hex>, visible ASCII, at most " +
                               std::to_string(kMaxImageRefBytes) + " bytes");
  }
  if (spec.vcpus == 0 || spec.vcpus > kMaxVcpus) {
    return InvalidArgument(f("vcpus"), "must be 1-" + std::to_string(kMaxVcpus) + " (got " +
                                           std::to_string(spec.vcpus) + ")");
  }
  if (spec.memory_mib < kMinMemoryMib || spec.memory_mib > kMaxMemoryMib) {
    return InvalidArgument(f("memory_mib"), "must be " + std::to_string(kMinMemoryMib) + "-" +
                                                std::to_string(kMaxMemoryMib) + " MiB (got " +
                                                std::to_string(spec.memory_mib) + ")");
  }
  if (spec.runtime != RuntimeKind::kContainer && (!spec.command.empty() || !spec.env.empty())) {
    return InvalidArgument(spec.command.empty() ? f("env") : f("command"),
                           "is only supported for containers; a VM runs its image's init");
  }
  PHX_TRY(ValidateCommandAndEnv(spec, f));
  if (spec.ports.size() > kMaxPorts) {
    return InvalidArgument(f("ports"),
                           "must have at most " + std::to_string(kMaxPorts) + " entries");
  }
  std::set<uint16_t> guest_ports;
  std::set<std::pair<std::string, uint16_t>> host_ports;
  for (size_t i = 0; i < spec.ports.size(); ++i) {
    const PortMapping& p = spec.ports[i];
    const std::string field = f("ports[" + std::to_string(i) + "]");
    if (p.guest_port == 0) return InvalidArgument(field + ".guest_port", "must be 1-65535");
    if (!guest_ports.insert(p.guest_port).second) {
      return InvalidArgument(field + ".guest_port",
                             "guest port " + std::to_string(p.guest_port) + " is published twice");
    }
    if (p.host_ip != "127.0.0.1" && p.host_ip != "::1" && p.host_ip != "0.0.0.0" &&
        p.host_ip != "::") {
      // Publishing on arbitrary interfaces needs the supervisor's network model; loopback and
      // wildcard cover single-host use.
      return InvalidArgument(field + ".host_ip", "must be 127.0.0.1, ::1, 0.0.0.0 or :: (got \"" +
                                                     p.host_ip.substr(0, 80) + "\")");
    }
    if (use == SpecUse::kGuest && p.host_port != 0 &&
        !host_ports.insert({p.host_ip, p.host_port}).second) {
      return InvalidArgument(field + ".host_port",
                             "host port " + std::to_string(p.host_port) + " is used twice");
    }
  }
  PHX_TRY(ValidateHealth(spec.health, f));
  if (spec.health.kind != HealthCheck::Kind::kNone && !guest_ports.contains(spec.health.port)) {
    return InvalidArgument(f("health.port"), "guest port " + std::to_string(spec.health.port) +
                                                 " is not published; add it to " + f("ports"));
  }
  if (spec.restart.initial_backoff_ms == 0) {
    return InvalidArgument(f("restart.initial_backoff_ms"), "must be positive");
  }
  if (spec.restart.max_backoff_ms < spec.restart.initial_backoff_ms) {
    return InvalidArgument(f("restart.max_backoff_ms"), "must be at least initial_backoff_ms");
  }
  return {};
}

Result<GuestSpec> GuestSpecFromProto(const v1::GuestSpec& in, std::string_view prefix) {
  const Field f(prefix);
  GuestSpec s;
  s.name = in.name();
  switch (in.runtime()) {
    case v1::RUNTIME_UNSPECIFIED:
    case v1::RUNTIME_VM:
      s.runtime = RuntimeKind::kVm;
      break;
    case v1::RUNTIME_MICROVM:
      s.runtime = RuntimeKind::kMicroVm;
      break;
    case v1::RUNTIME_CONTAINER:
      s.runtime = RuntimeKind::kContainer;
      break;
    default:
      return InvalidArgument(f("runtime"), "unknown runtime " + std::to_string(in.runtime()));
  }
  s.image = in.image();
  s.vcpus = in.vcpus() == 0 ? kDefaultVcpus : in.vcpus();
  s.memory_mib = in.memory_mib() == 0 ? kDefaultMemoryMib : in.memory_mib();
  s.command.assign(in.command().begin(), in.command().end());
  for (const auto& [k, v] : in.env()) s.env[k] = v;
  for (int i = 0; i < in.ports_size(); ++i) {
    const auto& p = in.ports(i);
    const std::string field = f("ports[" + std::to_string(i) + "]");
    PortMapping m;
    auto guest = Port(p.guest_port(), field + ".guest_port", false);
    if (!guest) return std::unexpected(guest.error());
    auto host = Port(p.host_port(), field + ".host_port", true);
    if (!host) return std::unexpected(host.error());
    m.guest_port = *guest;
    m.host_port = *host;
    m.host_ip = p.host_ip().empty() ? "127.0.0.1" : p.host_ip();
    s.ports.push_back(m);
  }
  if (in.has_health()) {
    const auto& h = in.health();
    HealthCheck& hc = s.health;
    if (h.has_http()) {
      hc.kind = HealthCheck::Kind::kHttp;
      auto port = Port(h.http().port(), f("health.http.port"), false);
      if (!port) return std::unexpected(port.error());
      hc.port = *port;
      hc.path = h.http().path().empty() ? "/health" : h.http().path();
    } else if (h.has_tcp()) {
      hc.kind = HealthCheck::Kind::kTcp;
      auto port = Port(h.tcp().port(), f("health.tcp.port"), false);
      if (!port) return std::unexpected(port.error());
      hc.port = *port;
    } else {
      return InvalidArgument(f("health"), "set http or tcp (or leave health out)");
    }
    if (h.interval_ms() != 0) hc.interval_ms = h.interval_ms();
    hc.timeout_ms = h.timeout_ms() != 0 ? h.timeout_ms() : std::min(hc.timeout_ms, hc.interval_ms);
    if (h.unhealthy_threshold() != 0) hc.unhealthy_threshold = h.unhealthy_threshold();
    hc.start_period_ms = h.start_period_ms() != 0 ? h.start_period_ms() : kDefaultStartPeriodMs;
    hc.restart_after_unhealthy_ms = h.has_restart_after_unhealthy_ms()
                                        ? h.restart_after_unhealthy_ms()
                                        : kDefaultRestartAfterUnhealthyMs;
  }
  switch (in.restart().policy()) {
    case v1::RESTART_POLICY_UNSPECIFIED:
    case v1::RESTART_POLICY_ALWAYS:
      s.restart.policy = RestartPolicy::kAlways;
      break;
    case v1::RESTART_POLICY_ON_FAILURE:
      s.restart.policy = RestartPolicy::kOnFailure;
      break;
    case v1::RESTART_POLICY_NEVER:
      s.restart.policy = RestartPolicy::kNever;
      break;
    default:
      return InvalidArgument(f("restart.policy"), "unknown restart policy");
  }
  if (in.restart().initial_backoff_ms() != 0) {
    s.restart.initial_backoff_ms = in.restart().initial_backoff_ms();
  }
  if (in.restart().max_backoff_ms() != 0) s.restart.max_backoff_ms = in.restart().max_backoff_ms();
  switch (in.boot_mode()) {
    case v1::BOOT_MODE_UNSPECIFIED:
    case v1::BOOT_MODE_AUTO:
      s.boot_mode = BootMode::kAuto;
      break;
    case v1::BOOT_MODE_COLD:
      s.boot_mode = BootMode::kCold;
      break;
    case v1::BOOT_MODE_SNAPSHOT:
      s.boot_mode = BootMode::kSnapshot;
      break;
    default:
      return InvalidArgument(f("boot_mode"), "unknown boot mode");
  }
  return s;
}

void EnsurePublished(v1::GuestSpec& spec, uint32_t guest_port) {
  for (const v1::PortMapping& port : spec.ports()) {
    if (port.guest_port() == guest_port) return;
  }
  spec.add_ports()->set_guest_port(guest_port);
}

Result<GuestSpec> ParseGuestSpec(const v1::GuestSpec& in, std::string_view prefix, SpecUse use) {
  auto s = GuestSpecFromProto(in, prefix);
  if (!s) return s;
  if (use == SpecUse::kTemplate) {
    s->name.clear();
    for (PortMapping& p : s->ports) p.host_port = 0;
  }
  PHX_TRY(ValidateGuestSpec(*s, prefix, use));
  return s;
}

void GuestSpecToProto(const GuestSpec& in, v1::GuestSpec* out) {
  out->set_name(in.name);
  out->set_runtime(RuntimeToProto(in.runtime));
  out->set_image(in.image);
  out->set_vcpus(in.vcpus);
  out->set_memory_mib(in.memory_mib);
  for (const auto& c : in.command) out->add_command(c);
  for (const auto& [k, v] : in.env) (*out->mutable_env())[k] = v;
  for (const auto& p : in.ports) {
    auto* m = out->add_ports();
    m->set_guest_port(p.guest_port);
    m->set_host_port(p.host_port);
    m->set_host_ip(p.host_ip);
  }
  if (in.health.kind != HealthCheck::Kind::kNone) {
    auto* h = out->mutable_health();
    if (in.health.kind == HealthCheck::Kind::kHttp) {
      h->mutable_http()->set_port(in.health.port);
      h->mutable_http()->set_path(in.health.path);
    } else {
      h->mutable_tcp()->set_port(in.health.port);
    }
    h->set_interval_ms(in.health.interval_ms);
    h->set_timeout_ms(in.health.timeout_ms);
    h->set_unhealthy_threshold(in.health.unhealthy_threshold);
    h->set_start_period_ms(in.health.start_period_ms);
    h->set_restart_after_unhealthy_ms(in.health.restart_after_unhealthy_ms);
  }
  out->mutable_restart()->set_policy(PolicyToProto(in.restart.policy));
  out->mutable_restart()->set_initial_backoff_ms(in.restart.initial_backoff_ms);
  out->mutable_restart()->set_max_backoff_ms(in.restart.max_backoff_ms);
  out->set_boot_mode(BootModeToProto(in.boot_mode));
}

v1::Runtime RuntimeToProto(RuntimeKind kind) {
  switch (kind) {
    case RuntimeKind::kVm:
      return v1::RUNTIME_VM;
    case RuntimeKind::kMicroVm:
      return v1::RUNTIME_MICROVM;
    case RuntimeKind::kContainer:
      return v1::RUNTIME_CONTAINER;
  }
  return v1::RUNTIME_UNSPECIFIED;
}

std::optional<RuntimeKind> RuntimeFromProto(v1::Runtime runtime) {
  switch (runtime) {
    case v1::RUNTIME_VM:
      return RuntimeKind::kVm;
    case v1::RUNTIME_MICROVM:
      return RuntimeKind::kMicroVm;
    case v1::RUNTIME_CONTAINER:
      return RuntimeKind::kContainer;
    default:
      return std::nullopt;
  }
}

v1::BootMode BootModeToProto(BootMode mode) {
  switch (mode) {
    case BootMode::kAuto:
      return v1::BOOT_MODE_AUTO;
    case BootMode::kCold:
      return v1::BOOT_MODE_COLD;
    case BootMode::kSnapshot:
      return v1::BOOT_MODE_SNAPSHOT;
  }
  return v1::BOOT_MODE_UNSPECIFIED;
}

}  // namespace phoenix::spec
