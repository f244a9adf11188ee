#include "tools/fleetsim/options.h"

#include <charconv>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace phoenix::fleetsim {

std::string Usage() {
  return "usage: phoenix-fleetsim --supervisor HOST:PORT (--ca-file FILE --join-token TOKEN | "
         "--insecure)\n"
         "                        --agents N [--zones 3] [--duration 60s] [--ramp 10s]\n"
         "                        [--report-interval 10s] [--supervisor-pid PID]\n"
         "Opens N simulated agent links (loopback supervisors only) for --duration, heartbeating\n"
         "at the supervisor's Welcome interval, and prints streams up, heartbeats per second,\n"
         "assignments received and, with --supervisor-pid, the supervisor's CPU and memory.\n"
         "The join token must be good for N enrollments: phoenix-supervisor join-token --uses N.\n";
}

namespace {

Result<uint64_t> ParseUnsigned(std::string_view flag, std::string_view text, uint64_t max) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
    return InvalidArgument(std::string(flag), "not a number: \"" + std::string(text) + "\"");
  }
  if (value > max) {
    return InvalidArgument(std::string(flag), "at most " + std::to_string(max));
  }
  return value;
}

}  // namespace

Result<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return InvalidArgument("", "not a duration: \"" + std::string(text) + "\"");
  auto number = ParseUnsigned("", text.substr(0, digits), 1'000'000'000);
  if (!number) return InvalidArgument("", "not a duration: \"" + std::string(text) + "\"");
  const std::string_view unit = text.substr(digits);
  uint64_t ms_per_unit = 0;
  if (unit.empty() || unit == "s") {
    ms_per_unit = 1000;
  } else if (unit == "ms") {
    ms_per_unit = 1;
  } else if (unit == "m") {
    ms_per_unit = 60'000;
  } else if (unit == "h") {
    ms_per_unit = 3'600'000;
  } else {
    return InvalidArgument("", "unknown unit \"" + std::string(unit) + "\" in \"" +
                                   std::string(text) + "\" (use ms, s, m or h)");
  }
  return std::chrono::milliseconds(*number * ms_per_unit);
}

Result<Options> ParseArgs(std::span<const std::string> args) {
  Options options;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& flag = args[i];
    if (flag == "--insecure") {
      options.insecure = true;
      continue;
    }
    if (flag.size() < 3 || !flag.starts_with("--")) {
      return InvalidArgument(flag, "unexpected argument");
    }
    if (i + 1 >= args.size()) return InvalidArgument(flag, "needs a value");
    const std::string& value = args[++i];
    if (flag == "--supervisor") {
      options.supervisor = value;
    } else if (flag == "--ca-file") {
      options.ca_file = value;
    } else if (flag == "--join-token") {
      options.join_token = value;
    } else if (flag == "--agents") {
      auto n = ParseUnsigned(flag, value, kMaxAgents);
      if (!n) return std::unexpected(n.error());
      options.agents = static_cast<uint32_t>(*n);
    } else if (flag == "--zones") {
      auto n = ParseUnsigned(flag, value, kMaxZones);
      if (!n) return std::unexpected(n.error());
      options.zones = static_cast<uint32_t>(*n);
    } else if (flag == "--duration" || flag == "--ramp" || flag == "--report-interval") {
      auto duration = ParseDuration(value);
      if (!duration) return InvalidArgument(flag, duration.error().message);
      if (flag == "--duration") options.duration = *duration;
      if (flag == "--ramp") options.ramp = *duration;
      if (flag == "--report-interval") options.report_interval = *duration;
    } else if (flag == "--supervisor-pid") {
      auto pid = ParseUnsigned(flag, value, 1u << 22);
      if (!pid) return std::unexpected(pid.error());
      if (*pid == 0) return InvalidArgument(flag, "must be a process id");
      options.supervisor_pid = static_cast<pid_t>(*pid);
    } else {
      return InvalidArgument(flag, "unknown flag");
    }
  }
  if (options.supervisor.empty()) return InvalidArgument("--supervisor", "is required");
  if (options.agents == 0) return InvalidArgument("--agents", "must be at least 1");
  if (options.zones == 0) return InvalidArgument("--zones", "must be at least 1");
  if (!options.insecure) {
    if (options.ca_file.empty()) {
      return InvalidArgument("--ca-file", "is required (or --insecure for a plaintext supervisor)");
    }
    if (options.join_token.empty()) {
      return InvalidArgument("--join-token",
                             "is required (or --insecure for a plaintext supervisor)");
    }
  }
  if (options.duration.count() == 0) return InvalidArgument("--duration", "must be positive");
  if (options.ramp > options.duration) {
    return InvalidArgument("--ramp", "must not exceed --duration");
  }
  if (options.report_interval.count() == 0) {
    return InvalidArgument("--report-interval", "must be positive");
  }
  return options;
}

std::string NodeName(uint32_t index) {
  char name[32];
  std::snprintf(name, sizeof(name), "sim-%05u", index + 1);
  return name;
}

std::string ZoneName(uint32_t index, uint32_t zones) {
  return std::string("sim-") + static_cast<char>('a' + index % (zones == 0 ? 1 : zones));
}

Result<uint64_t> ParseStatCpuTicks(std::string_view stat) {
  const size_t close = stat.rfind(')');
  if (close == std::string_view::npos) return InvalidArgument("stat", "no command name");
  // After ")": state(3) ppid(4) ... utime(14) stime(15).
  std::istringstream fields{std::string(stat.substr(close + 1))};
  std::string field;
  uint64_t utime = 0;
  uint64_t stime = 0;
  for (int number = 3; number <= 15; ++number) {
    if (!(fields >> field)) return InvalidArgument("stat", "too few fields");
    if (number == 14 || number == 15) {
      auto value = ParseUnsigned("stat", field, UINT64_MAX);
      if (!value) return std::unexpected(value.error());
      (number == 14 ? utime : stime) = *value;
    }
  }
  return utime + stime;
}

Result<uint64_t> ParseStatusKib(std::string_view status, std::string_view key) {
  size_t line_start = 0;
  while (line_start < status.size()) {
    size_t line_end = status.find('\n', line_start);
    if (line_end == std::string_view::npos) line_end = status.size();
    std::string_view line = status.substr(line_start, line_end - line_start);
    if (line.starts_with(key) && line.size() > key.size() && line[key.size()] == ':') {
      std::istringstream fields{std::string(line.substr(key.size() + 1))};
      std::string number;
      std::string unit;
      fields >> number >> unit;
      if (unit != "kB") return InvalidArgument("status", std::string(key) + " is not in kB");
      return ParseUnsigned("status", number, UINT64_MAX);
    }
    line_start = line_end + 1;
  }
  return NotFound("no " + std::string(key) + " line");
}

namespace {

Result<std::string> ReadProcFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return ErrnoError("reading " + path);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

}  // namespace

Result<ProcessUsage> ReadProcessUsage(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid);
  auto stat = ReadProcFile(dir + "/stat");
  if (!stat) return std::unexpected(stat.error());
  auto status = ReadProcFile(dir + "/status");
  if (!status) return std::unexpected(status.error());
  ProcessUsage usage;
  auto ticks = ParseStatCpuTicks(*stat);
  if (!ticks) return std::unexpected(ticks.error().Wrap(dir + "/stat"));
  usage.cpu_ticks = *ticks;
  auto rss = ParseStatusKib(*status, "VmRSS");
  if (!rss) return std::unexpected(rss.error().Wrap(dir + "/status"));
  usage.rss_kib = *rss;
  auto peak = ParseStatusKib(*status, "VmHWM");
  if (!peak) return std::unexpected(peak.error().Wrap(dir + "/status"));
  usage.peak_rss_kib = *peak;
  return usage;
}

double CpuPercent(uint64_t ticks, std::chrono::duration<double> wall, long ticks_per_second) {
  if (wall.count() <= 0 || ticks_per_second <= 0) return 0;
  return 100.0 * (static_cast<double>(ticks) / static_cast<double>(ticks_per_second)) /
         wall.count();
}

std::string FormatFigures(std::string_view label, const Figures& figures) {
  char line[512];
  int n = std::snprintf(line, sizeof(line),
                        "[%s] streams up %u/%u (ended %u), heartbeats %.1f/s (%llu total), "
                        "assignments received %llu",
                        std::string(label).c_str(), figures.streams_up, figures.agents,
                        figures.streams_ended, figures.heartbeats_per_second,
                        static_cast<unsigned long long>(figures.heartbeats),
                        static_cast<unsigned long long>(figures.assignments));
  std::string out(line, static_cast<size_t>(n < 0 ? 0 : std::min<int>(n, sizeof(line) - 1)));
  if (figures.supervisor_cpu_percent || figures.supervisor_usage) {
    out += ", supervisor";
    if (figures.supervisor_cpu_percent) {
      std::snprintf(line, sizeof(line), " cpu %.1f%%", *figures.supervisor_cpu_percent);
      out += line;
    }
    if (figures.supervisor_usage) {
      std::snprintf(line, sizeof(line), " rss %.1f MiB (peak %.1f MiB)",
                    static_cast<double>(figures.supervisor_usage->rss_kib) / 1024.0,
                    static_cast<double>(figures.supervisor_usage->peak_rss_kib) / 1024.0);
      out += line;
    }
  }
  return out;
}

}  // namespace phoenix::fleetsim
