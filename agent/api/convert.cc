#include "agent/api/convert.h"

#include <google/protobuf/util/time_util.h>

namespace phoenix::agent::api {

namespace {

using google::protobuf::util::TimeUtil;

constexpr uint32_t kDefaultMemoryMib = 256;
constexpr uint32_t kDefaultStartPeriodMs = 120000;  // a cold boot under TCG takes tens of seconds
// Long enough for an overloaded replica, out of its service's endpoints, to drain its backlog and
// pass again; short enough that a hung guest is replaced within seconds of being declared dead.
constexpr uint32_t kDefaultRestartAfterUnhealthyMs = 10000;

void SetTime(TimePoint t, google::protobuf::Timestamp* out) {
  if (t == TimePoint{}) return;
  *out = TimeUtil::MicrosecondsToTimestamp(
      std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count());
}

v1::GuestState StateToProto(GuestState s) {
  switch (s) {
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

v1::BootMode BootToProto(BootMode m) {
  switch (m) {
    case BootMode::kAuto:
      return v1::BOOT_MODE_AUTO;
    case BootMode::kCold:
      return v1::BOOT_MODE_COLD;
    case BootMode::kSnapshot:
      return v1::BOOT_MODE_SNAPSHOT;
  }
  return v1::BOOT_MODE_UNSPECIFIED;
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

Result<uint16_t> Port(uint32_t value, const std::string& field, bool zero_ok) {
  if (value > 65535 || (!zero_ok && value == 0)) {
    return InvalidArgument(field,
                           "must be a port number 1-65535 (got " + std::to_string(value) + ")");
  }
  return static_cast<uint16_t>(value);
}

}  // namespace

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

Result<GuestSpec> SpecFromProto(const v1::GuestSpec& in) {
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
      return InvalidArgument("spec.runtime", "unknown runtime " + std::to_string(in.runtime()));
  }
  s.image = in.image();
  s.vcpus = in.vcpus() == 0 ? 1 : in.vcpus();
  s.memory_mib = in.memory_mib() == 0 ? kDefaultMemoryMib : in.memory_mib();
  s.command.assign(in.command().begin(), in.command().end());
  for (const auto& [k, v] : in.env()) s.env[k] = v;
  for (int i = 0; i < in.ports_size(); ++i) {
    const auto& p = in.ports(i);
    const std::string field = "spec.ports[" + std::to_string(i) + "]";
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
      auto port = Port(h.http().port(), "spec.health.http.port", false);
      if (!port) return std::unexpected(port.error());
      hc.port = *port;
      hc.path = h.http().path().empty() ? "/health" : h.http().path();
    } else if (h.has_tcp()) {
      hc.kind = HealthCheck::Kind::kTcp;
      auto port = Port(h.tcp().port(), "spec.health.tcp.port", false);
      if (!port) return std::unexpected(port.error());
      hc.port = *port;
    } else {
      return InvalidArgument("spec.health", "set http or tcp (or leave health out)");
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
      return InvalidArgument("spec.restart.policy", "unknown restart policy");
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
      return InvalidArgument("spec.boot_mode", "unknown boot mode");
  }
  return s;
}

void SpecToProto(const GuestSpec& in, v1::GuestSpec* out) {
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
  out->set_boot_mode(BootToProto(in.boot_mode));
}

void GuestToProto(const GuestRecord& in, const std::string& node, v1::Guest* out) {
  out->set_id(in.id);
  SpecToProto(in.spec, out->mutable_spec());
  out->set_node(node);
  out->set_state(StateToProto(in.state));
  out->set_healthy(in.healthy);
  out->set_restart_count(in.restart_count);
  out->set_last_exit_reason(in.last_exit_reason);
  SetTime(in.created_at, out->mutable_created_at());
  SetTime(in.started_at, out->mutable_started_at());
  SetTime(in.updated_at, out->mutable_updated_at());
  for (const auto& p : in.spec.ports) {
    auto* ep = out->add_endpoints();
    ep->set_guest_port(p.guest_port);
    ep->set_host_ip(p.host_ip);
    ep->set_host_port(p.host_port);
  }
  out->set_image_id(in.image_id);
  out->set_last_boot(BootToProto(in.last_boot));
  out->set_last_boot_ms(in.last_boot_ms);
  out->set_instance(in.instance);
  out->set_accelerator(in.accelerator);
  if (in.metrics) {
    const GuestMetrics& m = *in.metrics;
    v1::GuestMetrics* pm = out->mutable_metrics();
    SetTime(m.sampled_at, pm->mutable_sampled_at());
    pm->set_window_ms(m.window_ms);
    pm->set_cpu_valid(m.cpu_valid);
    pm->set_cpu_percent(m.cpu_percent);
    pm->set_memory_bytes(m.memory_bytes);
    pm->set_requests_valid(m.requests_valid);
    pm->set_requests_per_second(m.requests_per_second);
    pm->set_latency_p50_ms(m.latency_p50_ms);
    pm->set_latency_p99_ms(m.latency_p99_ms);
    pm->set_requests_total(m.requests_total);
    pm->set_connection_errors_total(m.connection_errors_total);
  }
}

void EventToProto(const EventRecord& in, v1::Event* out) {
  out->set_sequence(in.sequence);
  SetTime(in.time, out->mutable_time());
  out->set_type(static_cast<v1::EventType>(static_cast<int>(in.type)));
  out->set_guest(in.guest);
  out->set_message(in.message);
}

void ImageToProto(const ImageRecord& in, v1::Image* out) {
  out->set_id(in.id);
  out->set_name(in.name);
  out->set_tag(in.tag);
  for (const auto& f : in.files) {
    auto* a = out->add_artifacts();
    a->set_kind(f.kind);
    a->set_path(f.path);
    a->set_size_bytes(f.size);
    a->set_sha256(f.sha256);
  }
  SetTime(in.created_at, out->mutable_created_at());
  for (RuntimeKind k : in.runtimes) out->add_runtimes(RuntimeToProto(k));
  out->set_cmdline(in.artifacts.cmdline);
  out->set_ready_marker(in.artifacts.ready_marker);
}

}  // namespace phoenix::agent::api
