// The one rule book for guest specs (phoenix.v1.GuestSpec). The agent's API and link, the
// supervisor's service templates and phoenixctl all convert and validate a spec here, so they
// cannot disagree:
//  - what a guest should be, as plain C++ values (GuestSpec);
//  - the API defaults: unset runtime = VM, 1 vCPU, 256 MiB, restart always, boot auto, health
//    check timings (GuestSpecFromProto);
//  - every limit and field rule (ValidateGuestSpec);
//  - the way back to the wire (GuestSpecToProto).
// Errors are kInvalidArgument naming the field as the API user spelled it, under a prefix the
// caller gives: "spec.memory_mib" for a guest, "spec.template.memory_mib" for a service's replica
// template.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/support/error.h"

namespace phoenix::v1 {
class GuestSpec;
enum Runtime : int;
enum BootMode : int;
}  // namespace phoenix::v1

namespace phoenix::spec {

enum class RuntimeKind { kVm, kMicroVm, kContainer };
enum class RestartPolicy { kAlways, kOnFailure, kNever };
enum class BootMode { kAuto, kCold, kSnapshot };

std::string_view RuntimeKindName(RuntimeKind kind);  // "vm", "microvm", "container"
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
  // is restarted; 0 restarts at once. Unset in the API, it is kDefaultRestartAfterUnhealthyMs.
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

inline constexpr uint32_t kDefaultVcpus = 1;
inline constexpr uint32_t kDefaultMemoryMib = 256;
inline constexpr uint32_t kDefaultStartPeriodMs = 120000;  // a cold boot under TCG takes tens of s
// Long enough for an overloaded replica, out of its service's endpoints, to drain its backlog and
// pass again; short enough that a hung guest is replaced within seconds of being declared dead.
inline constexpr uint32_t kDefaultRestartAfterUnhealthyMs = 10000;

inline constexpr uint32_t kMinMemoryMib = 64;  // below this the demo kernels do not boot
inline constexpr uint32_t kMaxMemoryMib = 1024 * 1024;
inline constexpr uint32_t kMaxVcpus = 64;
inline constexpr uint32_t kMaxRestartAfterUnhealthyMs = 3'600'000;
inline constexpr size_t kMaxImageRefBytes = 256;
inline constexpr size_t kMaxPorts = 64;
inline constexpr size_t kMaxHealthPathBytes = 1024;
inline constexpr size_t kMaxCommandArgs = 256;
inline constexpr size_t kMaxEnvVars = 256;
inline constexpr size_t kMaxEnvKeyBytes = 256;
inline constexpr size_t kMaxArgOrValueBytes = 32 * 1024;

inline constexpr std::chrono::milliseconds kDefaultStopGrace{10'000};
inline constexpr std::chrono::milliseconds kMaxStopGrace{3'600'000};

// What a spec is for: a guest of its own, or a service's replica template (no name: the supervisor
// names each replica; no host ports: each agent picks its own).
enum class SpecUse { kGuest, kTemplate };

// True for names usable as guest names: [a-z0-9][a-z0-9-]{0,62}, not ending in '-'.
bool IsValidGuestName(std::string_view name);

// The graceful-stop time a caller asked for (StopGuestRequest.timeout_ms): 0 means the default;
// more than kMaxStopGrace is kInvalidArgument naming "timeout_ms" (a stop that can wait for ever
// holds a worker thread and the agent's shutdown for ever).
[[nodiscard]] Result<std::chrono::milliseconds> StopGrace(uint64_t timeout_ms);

// Checks everything that does not depend on a node's state (image existence, capacity and port
// availability are checked by the agent when it accepts the guest).
[[nodiscard]] Result<void> ValidateGuestSpec(const GuestSpec& spec,
                                             std::string_view prefix = "spec",
                                             SpecUse use = SpecUse::kGuest);

// The wire spec with the API defaults applied; refuses only what the values cannot hold (unknown
// enum values, ports above 65535). Use ParseGuestSpec to validate too.
[[nodiscard]] Result<GuestSpec> GuestSpecFromProto(const v1::GuestSpec& in,
                                                   std::string_view prefix = "spec");
// Publishes `guest_port` (host port picked by the agent) unless the spec already does: a service's
// front door reaches every replica there, so a template is checked with it published.
void EnsurePublished(v1::GuestSpec& spec, uint32_t guest_port);

// GuestSpecFromProto then ValidateGuestSpec. For kTemplate the name is ignored and host ports are
// cleared.
[[nodiscard]] Result<GuestSpec> ParseGuestSpec(const v1::GuestSpec& in,
                                               std::string_view prefix = "spec",
                                               SpecUse use = SpecUse::kGuest);
// Every field explicit (defaults filled in).
void GuestSpecToProto(const GuestSpec& in, v1::GuestSpec* out);

v1::Runtime RuntimeToProto(RuntimeKind kind);
// nullopt for RUNTIME_UNSPECIFIED and values this build does not know.
std::optional<RuntimeKind> RuntimeFromProto(v1::Runtime runtime);
v1::BootMode BootModeToProto(BootMode mode);

}  // namespace phoenix::spec
