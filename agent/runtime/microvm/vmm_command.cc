#include "agent/runtime/microvm/vmm_command.h"

#include <charconv>

#include <fmt/format.h>

#include "agent/runtime/microvm/guest_netns.h"

namespace phoenix::agent::microvm {

Result<std::string> GoldenKey(const ImageArtifacts& image, uint32_t vcpus, uint32_t memory_mib) {
  std::string_view id = image.image_id;
  if (id.starts_with("sha256:")) id.remove_prefix(7);
  if (id.empty() || id.size() > 128) {
    return InvalidArgument("image.image_id", "want sha256:<hex>, got \"" + image.image_id + "\"");
  }
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return InvalidArgument("image.image_id", "want sha256:<hex>, got \"" + image.image_id + "\"");
    }
  }
  if (vcpus == 0) return InvalidArgument("vcpus", "must be at least 1");
  if (memory_mib == 0) return InvalidArgument("memory_mib", "must be at least 1");
  return fmt::format("{}-{}m-{}c-{}", id, memory_mib, vcpus, kGoldenGeneration);
}

std::string GuestCmdline(std::string_view image_cmdline) {
  std::string out(image_cmdline);
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (!out.empty()) out += ' ';
  out += fmt::format("phoenix.ip={}/{} phoenix.gw={}", kGuestAddress, kPrefixLength, kHostAddress);
  return out;
}

uint32_t MonitorUid(uint32_t base, std::string_view name) {
  uint64_t hash = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : name) hash = (hash ^ c) * 1099511628211ull;
  return base + 1 + static_cast<uint32_t>(hash % 65535);
}

namespace {

void AppendJail(std::vector<std::string>& argv, const std::optional<JailFlags>& jail) {
  if (!jail) return;
  argv.insert(argv.end(), {"--jail-uid", std::to_string(jail->uid), "--jail-gid",
                           std::to_string(jail->gid), "--jail-root", jail->root.string()});
  for (const auto& dir : jail->cgroups) argv.insert(argv.end(), {"--cgroup", dir.string()});
}

}  // namespace

std::vector<std::string> BootArgv(const BootCommand& c) {
  std::vector<std::string> argv = {c.vmm.string(), "boot", "--kernel", c.kernel.string()};
  if (!c.initrd.empty()) argv.insert(argv.end(), {"--initrd", c.initrd.string()});
  if (!c.cmdline.empty()) argv.insert(argv.end(), {"--cmdline", c.cmdline});
  argv.insert(argv.end(), {"--memory-mib", std::to_string(c.memory_mib), "--vcpus",
                           std::to_string(c.vcpus), "--tap-fd", std::to_string(kTapFd)});
  if (!c.console_log.empty()) argv.insert(argv.end(), {"--console-log", c.console_log.string()});
  if (!c.control.empty()) argv.insert(argv.end(), {"--control", c.control.string()});
  if (!c.ready_marker.empty()) {
    argv.insert(argv.end(), {"--ready-marker", c.ready_marker});
    if (!c.snapshot_to.empty()) {
      argv.insert(argv.end(), {"--snapshot-to", c.snapshot_to.string(), "--exit-after-snapshot"});
    }
  }
  argv.insert(argv.end(), {"--ready-fd", std::to_string(kReadyFd)});
  AppendJail(argv, c.jail);
  return argv;
}

std::vector<std::string> RestoreArgv(const RestoreCommand& c) {
  std::vector<std::string> argv = {c.vmm.string(),      "restore",  "--snapshot",
                                   c.snapshot.string(), "--tap-fd", std::to_string(kTapFd)};
  if (!c.console_log.empty()) argv.insert(argv.end(), {"--console-log", c.console_log.string()});
  if (!c.control.empty()) argv.insert(argv.end(), {"--control", c.control.string()});
  argv.insert(argv.end(), {"--ready-fd", std::to_string(kReadyFd)});
  AppendJail(argv, c.jail);
  return argv;
}

namespace {

bool ParseU64(std::string_view text, uint64_t& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

}  // namespace

Result<ReadyLine> ParseReadyLine(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.starts_with("error")) {
    std::string_view msg = line.substr(5);
    while (!msg.empty() && msg.front() == ' ') msg.remove_prefix(1);
    return Internal("phoenix-vmm: " + std::string(msg.empty() ? "error without a message" : msg));
  }
  if (line != "ready" && !line.starts_with("ready ")) {
    return Internal("phoenix-vmm wrote an unexpected ready line: \"" + std::string(line) + "\"");
  }
  ReadyLine ready;
  std::string_view rest = line.substr(5);
  while (!rest.empty()) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    if (rest.empty()) break;
    size_t end = rest.find(' ');
    std::string_view field = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
    size_t eq = field.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view key = field.substr(0, eq), value = field.substr(eq + 1);
    uint64_t n = 0;
    if (key == "setup_us" || key == "marker_ms") {
      if (!ParseU64(value, n)) {
        return Internal("phoenix-vmm ready line: bad " + std::string(key) + " in \"" +
                        std::string(line) + "\"");
      }
      if (key == "setup_us")
        ready.setup_us = n;
      else
        ready.marker_ms = n;
    } else if (key == "snapshot") {
      ready.snapshot = std::string(value);
    }
  }
  return ready;
}

std::vector<std::string> SplitProcCmdline(std::string_view raw) {
  std::vector<std::string> out;
  while (!raw.empty()) {
    size_t nul = raw.find('\0');
    out.emplace_back(raw.substr(0, nul));
    if (nul == std::string_view::npos) break;
    raw.remove_prefix(nul + 1);
  }
  return out;
}

bool IsMonitorOf(const std::vector<std::string>& argv, const std::filesystem::path& control) {
  if (control.empty()) return false;
  const std::string want = control.string();
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == "--control" && argv[i + 1] == want) return true;
  }
  return false;
}

}  // namespace phoenix::agent::microvm

#include <sys/wait.h>

#include "agent/process/process.h"

namespace phoenix::agent::microvm {

ExitVerdict ClassifyMonitorExit(std::optional<int> wait_status, bool stopped_by_us,
                                bool killed_by_us, std::string_view log_tail) {
  const std::string status = wait_status ? DescribeWaitStatus(*wait_status) : "exit status unknown";
  if (stopped_by_us) return {false, fmt::format("stopped by Phoenix (phoenix-vmm {})", status)};
  if (killed_by_us) return {true, "phoenix-vmm killed by Phoenix (SIGKILL)"};
  if (!wait_status) {
    return {true,
            "phoenix-vmm exited; exit status unknown (reaped by its parent before Phoenix could "
            "read it), treated as a crash"};
  }
  const int ws = *wait_status;
  if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0) return {false, "guest shut down"};
  if (WIFEXITED(ws) && WEXITSTATUS(ws) == 2) {
    return {true, "guest requested a reset (reboot or kernel panic)"};
  }
  std::string reason = "phoenix-vmm " + status;
  if (WIFEXITED(ws) && !log_tail.empty()) reason += ": " + std::string(log_tail);
  return {true, reason};
}

}  // namespace phoenix::agent::microvm
