// phoenix-fleetsim's command line, the figures it prints, and the supervisor process sampling
// behind them (/proc/PID/stat and /proc/PID/status). Plain values and pure functions, so the
// parsing and formatting are unit-tested without a supervisor.
//
// Thread-safety: free functions over values.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "proto/support/error.h"

namespace phoenix::fleetsim {

struct Options {
  std::string supervisor;  // HOST:PORT, loopback only
  std::string ca_file;     // the supervisor's CA (mutual TLS)
  std::string join_token;  // enrolls the simulated nodes
  bool insecure = false;   // plaintext link to an --insecure supervisor: no enrollment
  uint32_t agents = 0;
  uint32_t zones = 3;                                            // sim-a, sim-b, ...
  std::chrono::milliseconds duration{std::chrono::seconds(60)};  // the whole run, ramp included
  std::chrono::milliseconds ramp{std::chrono::seconds(10)};      // streams open evenly over it
  std::chrono::milliseconds report_interval{std::chrono::seconds(10)};
  std::optional<pid_t> supervisor_pid;  // sample its CPU and memory
};

inline constexpr uint32_t kMaxAgents = 100000;
inline constexpr uint32_t kMaxZones = 26;

std::string Usage();
// args excludes the program name. Every error names the flag.
[[nodiscard]] Result<Options> ParseArgs(std::span<const std::string> args);
// "60s", "500ms", "2m", "1h"; a bare number is seconds.
[[nodiscard]] Result<std::chrono::milliseconds> ParseDuration(std::string_view text);

// index is 0-based: NodeName(0) = "sim-00001"; ZoneName(0..) = "sim-a", "sim-b", ... round robin.
std::string NodeName(uint32_t index);
std::string ZoneName(uint32_t index, uint32_t zones);

// What a supervisor process has used so far.
struct ProcessUsage {
  uint64_t cpu_ticks = 0;     // utime + stime, in clock ticks
  uint64_t rss_kib = 0;       // VmRSS
  uint64_t peak_rss_kib = 0;  // VmHWM
};
[[nodiscard]] Result<ProcessUsage> ReadProcessUsage(pid_t pid);
// utime + stime (fields 14 and 15) of a /proc/PID/stat line; the command name may hold spaces
// and parentheses, so fields are counted from its last ')'.
[[nodiscard]] Result<uint64_t> ParseStatCpuTicks(std::string_view stat);
// A "Key:   N kB" line of /proc/PID/status.
[[nodiscard]] Result<uint64_t> ParseStatusKib(std::string_view status, std::string_view key);
// CPU use over a wall-clock span, in percent of one core (200 = two cores busy).
double CpuPercent(uint64_t ticks, std::chrono::duration<double> wall, long ticks_per_second);

struct Figures {
  std::chrono::duration<double> elapsed{};
  uint32_t agents = 0;      // asked for
  uint32_t streams_up = 0;  // welcomed and not ended
  uint32_t streams_ended = 0;
  double heartbeats_per_second = 0;
  uint64_t heartbeats = 0;  // Status messages written, in total
  uint64_t assignments = 0;
  std::optional<double> supervisor_cpu_percent;
  std::optional<ProcessUsage> supervisor_usage;
};
// One line; `label` says what span the rates cover ("10.0s", "final (steady 50.0s)").
std::string FormatFigures(std::string_view label, const Figures& figures);

}  // namespace phoenix::fleetsim
