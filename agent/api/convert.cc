#include "agent/api/convert.h"

#include <google/protobuf/util/time_util.h>

namespace phoenix::agent::api {

namespace {

using google::protobuf::util::TimeUtil;

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

}  // namespace

void GuestToProto(const GuestRecord& in, const std::string& node, v1::Guest* out) {
  out->set_id(in.id);
  spec::GuestSpecToProto(in.spec, out->mutable_spec());
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
  out->set_last_boot(spec::BootModeToProto(in.last_boot));
  out->set_last_boot_ms(in.last_boot_ms);
  out->set_instance(in.instance);
  out->set_accelerator(in.accelerator);
  out->set_node_address(in.node_address);
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
