// `phoenixctl bench restart`: chaos-kill a guest N times and measure, on the client's steady clock,
// how long the agent takes from the kill to the guest running again and to it being healthy again,
// per boot mode (cold boot vs golden snapshot). The statistics are pure functions, tested alone.
//
// Threading: the command runs on the caller's thread; events arrive through an EventFeed (its own
// reader thread, see events_command.h).
#pragma once

#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "tools/phoenixctl/cli.h"

namespace phoenix::ctl {

int RunBenchGroup(Context& ctx, std::span<const std::string> args);

// Nearest-rank percentile: the smallest sample that at least `percent` % of the samples are less
// than or equal to. percent in [0, 100]; 0 gives the minimum. nullopt for no samples.
std::optional<double> Percentile(std::span<const double> samples, double percent);

struct LatencySummary {
  size_t count = 0;
  double p50_ms = 0;
  double p90_ms = 0;
  double max_ms = 0;
};
std::optional<LatencySummary> Summarize(std::span<const double> samples_ms);

// One measured guest: its boot mode's samples.
struct ModeResult {
  std::string mode;  // "cold", "snapshot" (or "auto" for an existing guest)
  std::string guest;
  bool has_health_check = true;
  std::vector<double> running_ms;  // kill -> RUNNING event, per kill
  std::vector<double> healthy_ms;  // kill -> HEALTHY event, per kill (empty without health check)
};

struct BenchReport {
  std::string image;    // empty for an existing guest
  std::string runtime;  // "vm", ...
  std::vector<ModeResult> results;
};

// MODE GUEST KILLS RUNNING_P50_MS RUNNING_P90_MS RUNNING_MAX_MS HEALTHY_P50_MS ...
void RenderBenchTable(const BenchReport& report, std::ostream& out);
// One JSON document with the summaries and the raw samples.
[[nodiscard]] Result<std::string> BenchJson(const BenchReport& report);

}  // namespace phoenix::ctl
