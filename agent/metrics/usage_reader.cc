#include "agent/metrics/usage_reader.h"

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <fstream>
#include <sstream>
#include <vector>

namespace phoenix::agent::metrics {

namespace fs = std::filesystem;

namespace {

std::optional<uint64_t> ToU64(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end == s.data()) return std::nullopt;
  return v;
}

// Reads a whole (small) file. kNotFound when it does not exist: the process or cgroup is gone.
Result<std::string> Slurp(const fs::path& path) {
  std::ifstream in(path);
  if (!in) {
    const int err = errno;
    if (err == ENOENT || err == ESRCH) return NotFound(path.string() + " is gone");
    return ErrnoError("reading " + path.string());
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    out.push_back(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return out;
}

bool HasController(std::string_view list, std::string_view name) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    if (list.substr(0, comma) == name) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

std::optional<uint64_t> ParseProcStatCpuTicks(std::string_view text) {
  size_t paren = text.rfind(')');
  if (paren == std::string_view::npos) return std::nullopt;
  std::istringstream in{std::string(text.substr(paren + 1))};
  // After ")": field 3 (state) onward; utime is field 14, stime field 15.
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15; ++i) {
    if (!(in >> field)) return std::nullopt;
    if (i == 14 || i == 15) {
      auto v = ToU64(field);
      if (!v) return std::nullopt;
      (i == 14 ? utime : stime) = *v;
    }
  }
  return utime + stime;
}

std::optional<uint64_t> ParseStatusRssBytes(std::string_view text) {
  for (std::string_view line : Lines(text)) {
    if (!line.starts_with("VmRSS:")) continue;
    line.remove_prefix(6);
    auto kb = ToU64(line);
    if (!kb) return std::nullopt;
    return *kb * 1024;
  }
  return std::nullopt;
}

std::optional<uint64_t> ParseCpuStatUsageUsec(std::string_view text) {
  for (std::string_view line : Lines(text)) {
    if (line.starts_with("usage_usec ")) return ToU64(line.substr(11));
  }
  return std::nullopt;
}

CgroupPaths ParseProcCgroup(std::string_view text) {
  CgroupPaths out;
  for (std::string_view line : Lines(text)) {
    // "hierarchy-id:controller-list:path"
    size_t first = line.find(':');
    if (first == std::string_view::npos) continue;
    size_t second = line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    std::string_view id = line.substr(0, first);
    std::string_view controllers = line.substr(first + 1, second - first - 1);
    std::string path(line.substr(second + 1));
    if (id == "0" && controllers.empty()) {
      out.unified = path;
    } else if (HasController(controllers, "cpuacct")) {
      out.cpuacct_v1.emplace(std::string(controllers), path);
    } else if (HasController(controllers, "memory")) {
      out.memory_v1.emplace(std::string(controllers), path);
    }
  }
  return out;
}

ProcUsageReader::ProcUsageReader(fs::path proc_root, fs::path cgroup_root)
    : proc_root_(std::move(proc_root)),
      cgroup_root_(std::move(cgroup_root)),
      ticks_per_second_(::sysconf(_SC_CLK_TCK)) {
  if (ticks_per_second_ <= 0) ticks_per_second_ = 100;  // the Linux ABI value (USER_HZ)
}

Result<Usage> ProcUsageReader::Read(const UsageSource& source) {
  if (source.pid <= 0) return NotFound("the instance has no process");
  return source.kind == UsageSource::Kind::kCgroup ? ReadCgroup(source.pid)
                                                   : ReadProcess(source.pid);
}

Result<Usage> ProcUsageReader::ReadProcess(int pid) {
  const fs::path dir = proc_root_ / std::to_string(pid);
  auto stat = Slurp(dir / "stat");
  if (!stat) return std::unexpected(stat.error());
  auto ticks = ParseProcStatCpuTicks(*stat);
  if (!ticks) return Internal("malformed " + (dir / "stat").string());
  Usage usage;
  usage.cpu_ns = *ticks * (1'000'000'000ull / static_cast<uint64_t>(ticks_per_second_));
  if (auto status = Slurp(dir / "status")) usage.memory_bytes = ParseStatusRssBytes(*status);
  return usage;
}

Result<Usage> ProcUsageReader::ReadCgroup(int pid) {
  const fs::path file = proc_root_ / std::to_string(pid) / "cgroup";
  auto text = Slurp(file);
  if (!text) return std::unexpected(text.error());
  const CgroupPaths paths = ParseProcCgroup(*text);
  auto rel = [](const std::string& p) { return fs::path(p).relative_path(); };
  // A v1 hierarchy is mounted under its controller list ("cpu,cpuacct") or, where the controllers
  // are mounted apart, under the controller's own name.
  auto v1_dir = [&](const std::pair<std::string, std::string>& h, std::string_view name) {
    fs::path dir = cgroup_root_ / h.first / rel(h.second);
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) dir = cgroup_root_ / std::string(name) / rel(h.second);
    return dir;
  };
  Usage usage;
  if (paths.cpuacct_v1) {
    const fs::path f = v1_dir(*paths.cpuacct_v1, "cpuacct") / "cpuacct.usage";
    auto s = Slurp(f);
    if (!s) return std::unexpected(s.error());
    auto ns = ToU64(*s);
    if (!ns) return Internal("malformed " + f.string());
    usage.cpu_ns = *ns;
  } else if (paths.unified) {
    const fs::path f = cgroup_root_ / rel(*paths.unified) / "cpu.stat";
    auto s = Slurp(f);
    if (!s) return std::unexpected(s.error());
    auto us = ParseCpuStatUsageUsec(*s);
    if (!us) return Internal("no usage_usec in " + f.string());
    usage.cpu_ns = *us * 1000;
  } else {
    return Internal(file.string() + " names no cpuacct or unified cgroup");
  }
  if (paths.memory_v1) {
    if (auto s = Slurp(v1_dir(*paths.memory_v1, "memory") / "memory.usage_in_bytes")) {
      usage.memory_bytes = ToU64(*s);
    }
  } else if (paths.unified) {
    if (auto s = Slurp(cgroup_root_ / rel(*paths.unified) / "memory.current")) {
      usage.memory_bytes = ToU64(*s);
    }
  }
  return usage;
}

}  // namespace phoenix::agent::metrics
