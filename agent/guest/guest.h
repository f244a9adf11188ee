// The agent's guest vocabulary as plain C++ values: what a guest should be (GuestSpec) and what the
// agent knows of it (GuestRecord). Mirrors phoenix.v1 without depending on protobuf: only
// agent/api converts between the two.
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

namespace phoenix::agent {

using Clock = std::chrono::system_clock;
using TimePoint = Clock::time_point;

enum class RuntimeKind { kVm, kMicroVm, kContainer };
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
enum class RestartPolicy { kAlways, kOnFailure, kNever };
enum class BootMode { kAuto, kCold, kSnapshot };

std::string_view RuntimeKindName(RuntimeKind kind);  // "vm", "microvm", "container"
std::string_view GuestStateName(GuestState state);   // "RUNNING", ...
std::string_view BootModeName(BootMode mode);        // "auto", "cold", "snapshot"

struct PortMapping {
  uint16_t guest_port = 0;
  uint16_t host_port = 0;  // 0 until the agent allocates one
  std::string host_ip = "127.0.0.1";
  bool operator==(const PortMapping&) const = default;
};

struct HealthCheck {
  enum class Kind { kNone, kHttp, kTcp };
  Kind kind = Kind::kNone;
  uint16_t port = 0;  // guest port
  std::string path = "/health";
  uint32_t interval_ms = 1000;
  uint32_t timeout_ms = 1000;
  uint32_t unhealthy_threshold = 3;
  uint32_t start_period_ms = 60000;
  // Liveness: an unhealthy guest keeps running (out of its service's endpoints) this long before it
  // is restarted; 0 restarts at once. Unset in the API, it is 10 s (agent/api/convert.cc).
  uint32_t restart_after_unhealthy_ms = 10000;
  bool operator==(const HealthCheck&) const = default;
};

struct RestartSpec {
  RestartPolicy policy = RestartPolicy::kAlways;
  uint32_t initial_backoff_ms = 500;
  uint32_t max_backoff_ms = 30000;
  bool operator==(const RestartSpec&) const = default;
};

struct GuestSpec {
  std::string name;
  RuntimeKind runtime = RuntimeKind::kVm;
  std::string image;
  uint32_t vcpus = 1;
  uint32_t memory_mib = 256;
  std::vector<std::string> command;
  std::map<std::string, std::string> env;
  std::vector<PortMapping> ports;
  HealthCheck health;
  RestartSpec restart;
  BootMode boot_mode = BootMode::kAuto;
  bool operator==(const GuestSpec&) const = default;
};

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
  bool operator==(const GuestRecord&) const = default;
};

}  // namespace phoenix::agent
