// The agent's guest vocabulary as plain C++ values: what a guest should be (GuestSpec, shared with
// the supervisor and phoenixctl through proto/support/guest_spec.h) and what the agent knows of it
// (GuestRecord). No protobuf here: only agent/api and proto/support convert.
//
// Thread-safety: plain values.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/support/guest_spec.h"

namespace phoenix::agent {

using Clock = std::chrono::system_clock;
using TimePoint = Clock::time_point;

enum class GuestState {
  kPending,
  kStarting,
  kRunning,
  kStopping,
  kStopped,
  kCrashed,
  kRestarting,
  kFailed
};
std::string_view GuestStateName(GuestState state);  // "RUNNING", ...

// The spec vocabulary is the wire contract's (proto/support/guest_spec.h): one rule book for the
// agent, the supervisor and phoenixctl.
using spec::BootMode;
using spec::BootModeName;
using spec::GuestSpec;
using spec::HealthCheck;
using spec::PortMapping;
using spec::RestartPolicy;
using spec::RestartSpec;
using spec::RuntimeKind;
using spec::RuntimeKindName;

// Load of a guest's current instance as the agent last sampled it (agent/metrics). A value whose
// *_valid flag is false was not measured and must never be read as zero. Never persisted.
struct GuestMetrics {
  TimePoint sampled_at{};
  uint32_t window_ms = 0;  // the rates are averages over this window
  bool cpu_valid = false;
  double cpu_percent = 0;       // of the allowance: 100 = spec.vcpus cores busy
  uint64_t memory_bytes = 0;    // 0 = unknown
  bool requests_valid = false;  // the guest has published ports the agent proxies
  double requests_per_second = 0;
  double latency_p50_ms = 0;  // over the window's requests; 0 when there were none
  double latency_p99_ms = 0;
  uint64_t requests_total = 0;           // since the instance started
  uint64_t connection_errors_total = 0;  // since the instance started
  bool operator==(const GuestMetrics&) const = default;
};

// What the agent persists about a guest. `desired_running` is the user's intent (run/start vs
// stop); `state` is the agent's latest observation/decision.
struct GuestRecord {
  std::string id;
  GuestSpec spec;
  std::string image_id;
  bool desired_running = true;
  GuestState state = GuestState::kPending;
  bool healthy = false;
  uint32_t restart_count = 0;
  uint32_t consecutive_failures = 0;  // drives backoff; reset once an instance stays healthy
  std::string last_exit_reason;
  std::string instance;  // runtime instance name of the current (or last) instance; empty if none
  uint64_t instance_seq = 0;  // increments per start; instance names derive from it
  BootMode last_boot = BootMode::kAuto;
  uint32_t last_boot_ms = 0;
  std::string accelerator;
  // Per spec.ports entry (same order): the 127.0.0.1 port where the runtime exposes that guest
  // port for the current instance; the agent's proxy forwards the published port there. Persisted
  // so a restarted agent re-adopts a running instance without restarting it.
  std::vector<uint16_t> backend_ports;
  TimePoint created_at{};
  TimePoint started_at{};
  TimePoint updated_at{};
  // Latest sample of the current instance; nullopt until the first sample. Not persisted: the
  // store ignores it, and a reloaded record starts without.
  std::optional<GuestMetrics> metrics;
  // The current instance's address on the node network (InstanceInfo::node_address); empty when
  // none. Not persisted: a restarted agent learns it again from the runtime when it adopts.
  std::string node_address;
  bool operator==(const GuestRecord&) const = default;
};

}  // namespace phoenix::agent
