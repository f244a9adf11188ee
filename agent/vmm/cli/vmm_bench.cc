// phoenix-vmm-bench: the monitor-level benchmark. Runs phoenix-vmm as child processes, exactly as
// the agent does, and reports:
//   cold boot  spawn -> ready marker on the console (wall, and the monitor's own marker_ms),
//              setup_us (Boot() to first KVM_RUN) and the monitor's overhead at ready
//   golden     one boot with --snapshot-to --exit-after-snapshot
//   restore    setup_us (Restore() to first KVM_RUN), spawn -> ready line, spawn -> control `stats`
//              answered, with --net spawn -> the guest's HTTP answer, and the overhead
// min / median / p90 per figure. It needs a /dev/kvm that can boot Linux (real or nested
// hardware virtualization; kvm-pvm cannot), so it says what it found before measuring.
//
// --net: the bench moves itself into a network namespace of its own (unshare; needs root), creates
// tap0 = 172.16.0.1/30 there, hands it to every monitor and adds phoenix.ip/phoenix.gw to the
// command line, so all guest traffic stays inside a namespace it created.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent/vmm/cli/control.h"

extern char** environ;

namespace phoenix::vmm {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct BenchOptions {
  std::string vmm;
  std::string kernel;
  std::string initrd;
  std::string cmdline = "console=ttyS0 quiet";
  std::string marker;
  uint64_t memory_mib = 128;
  int runs = 5;
  std::string work_dir;
  bool net = false;
  int http_port = 8080;
  int timeout_s = 120;
};

constexpr char kUsage[] =
    R"(phoenix-vmm-bench: cold boot vs snapshot restore of phoenix-vmm, and its memory overhead

Usage:
  phoenix-vmm-bench --kernel PATH [--initrd PATH] --ready-marker STR [--cmdline STR]
      [--memory-mib 128] [--runs 5] [--vmm PATH] [--work-dir DIR] [--net [--http-port 8080]]
      [--timeout-s 120]

  --vmm PATH      phoenix-vmm to run (default: the one next to this executable)
  --work-dir DIR  where the golden snapshot, console logs and sockets go (default: a new temp dir,
                  removed afterwards)
  --net           (root) run in a network namespace of the bench's own with tap0 = 172.16.0.1/30,
                  add "phoenix.ip=172.16.0.2/30 phoenix.gw=172.16.0.1" to the command line, and
                  time each restore until http://172.16.0.2:PORT/ answers

Needs a /dev/kvm that boots Linux (hardware virtualization, e.g. inside tools/kvm-test-host).

Example (demo image built by images/demo/build.sh OUT):
  phoenix-vmm-bench --kernel OUT/vmlinux --initrd OUT/initrd.img \
      --ready-marker "phoenix-demo ready" --runs 10 --net
)";

Result<BenchOptions> ParseArgs(int argc, char** argv) {
  BenchOptions o;
  auto number = [](std::string_view flag, std::string_view v, int64_t min,
                   int64_t max) -> Result<int64_t> {
    int64_t out = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    if (ec != std::errc() || end != v.data() + v.size() || out < min || out > max)
      return Fail(std::string(flag) + ": \"" + std::string(v) + "\" is not a number in " +
                  std::to_string(min) + ".." + std::to_string(max));
    return out;
  };
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (a == "--net") {
      o.net = true;
      continue;
    }
    if (i + 1 >= argc) return Fail(std::string(a) + " needs a value (see --help)");
    std::string_view v = argv[++i];
    if (a == "--vmm")
      o.vmm = v;
    else if (a == "--kernel")
      o.kernel = v;
    else if (a == "--initrd")
      o.initrd = v;
    else if (a == "--cmdline")
      o.cmdline = v;
    else if (a == "--ready-marker")
      o.marker = v;
    else if (a == "--work-dir")
      o.work_dir = v;
    else if (a == "--memory-mib" || a == "--runs" || a == "--http-port" || a == "--timeout-s") {
      const int64_t max = a == "--memory-mib" ? 3072 : a == "--http-port" ? 65535 : 10000;
      auto n = number(a, v, 1, max);
      if (!n) return std::unexpected(n.error());
      if (a == "--memory-mib")
        o.memory_mib = static_cast<uint64_t>(*n);
      else if (a == "--runs")
        o.runs = static_cast<int>(*n);
      else if (a == "--http-port")
        o.http_port = static_cast<int>(*n);
      else
        o.timeout_s = static_cast<int>(*n);
    } else {
      return Fail("unknown flag " + std::string(a) + " (see --help)");
    }
  }
  if (o.kernel.empty() || o.marker.empty()) return Fail("--kernel and --ready-marker are required");
  if (o.vmm.empty()) {
    std::error_code ec;
    auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) return Fail("cannot find myself (/proc/self/exe): " + ec.message() + "; pass --vmm");
    o.vmm = (self.parent_path() / "phoenix-vmm").string();
  }
  if (::access(o.vmm.c_str(), X_OK) != 0) return Errno("phoenix-vmm at " + o.vmm + " (pass --vmm)");
  if (o.net) o.cmdline += " phoenix.ip=172.16.0.2/30 phoenix.gw=172.16.0.1";
  return o;
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// --- network namespace of our own -------------------------------------------------------------

Status IfaceIoctl(int sock, unsigned long request, ifreq& ifr, const char* what) {
  if (::ioctl(sock, request, &ifr) != 0) return Errno(std::string(what) + " " + ifr.ifr_name);
  return {};
}

Status SetUp(int sock, const char* name) {
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  if (auto s = IfaceIoctl(sock, SIOCGIFFLAGS, ifr, "SIOCGIFFLAGS"); !s) return s;
  ifr.ifr_flags |= IFF_UP;
  return IfaceIoctl(sock, SIOCSIFFLAGS, ifr, "SIOCSIFFLAGS");
}

Status SetAddress(int sock, const char* name, const char* addr, const char* mask) {
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  auto* sin = reinterpret_cast<sockaddr_in*>(&ifr.ifr_addr);
  sin->sin_family = AF_INET;
  ::inet_pton(AF_INET, addr, &sin->sin_addr);
  if (auto s = IfaceIoctl(sock, SIOCSIFADDR, ifr, "SIOCSIFADDR"); !s) return s;
  ::inet_pton(AF_INET, mask, &sin->sin_addr);
  return IfaceIoctl(sock, SIOCSIFNETMASK, ifr, "SIOCSIFNETMASK");
}

// Returns the tap fd (not close-on-exec: every monitor inherits it as --tap-fd).
Result<int> EnterOwnNetnsWithTap() {
  if (::unshare(CLONE_NEWNET) != 0) return Errno("unshare(CLONE_NEWNET) (--net needs root)");
  int tap = ::open("/dev/net/tun", O_RDWR);
  if (tap < 0) return Errno("open /dev/net/tun");
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "tap0", IFNAMSIZ - 1);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (::ioctl(tap, TUNSETIFF, &ifr) != 0) return Errno("TUNSETIFF tap0");
  int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return Errno("socket");
  Status s = SetUp(sock, "lo");
  if (s) s = SetAddress(sock, "tap0", "172.16.0.1", "255.255.255.252");
  if (s) s = SetUp(sock, "tap0");
  ::close(sock);
  if (!s) return std::unexpected(s.error());
  return tap;
}

// One HTTP/1.0 GET to the guest; true once a status line arrives.
bool HttpAnswered(int port, Clock::time_point deadline) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, "172.16.0.2", &addr.sin_addr);
  auto left = [&] {
    return static_cast<int>(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count()));
  };
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 || errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;
    if (::poll(&p, 1, std::min(left(), 1000)) == 1 &&
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
      const char req[] = "GET / HTTP/1.0\r\nHost: 172.16.0.2\r\n\r\n";
      if (::send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof req - 1)) {
        std::string in;
        while (in.find("\r\n") == std::string::npos && left() > 0) {
          pollfd r{fd, POLLIN, 0};
          if (::poll(&r, 1, std::min(left(), 1000)) != 1) continue;
          char buf[256];
          ssize_t n = ::recv(fd, buf, sizeof buf, 0);
          if (n <= 0) break;
          in.append(buf, static_cast<size_t>(n));
        }
        ok = in.starts_with("HTTP/1.");
      }
    }
  }
  ::close(fd);
  return ok;
}

// --- running phoenix-vmm -------------------------------------------------------------------------

struct Child {
  pid_t pid = -1;
  int ready_read = -1;
  Clock::time_point spawned;
  std::string stderr_path;
  std::string console_path;
};

Result<Child> Spawn(const std::string& vmm, std::vector<std::string> args, int tap_fd,
                    const std::string& tag, const std::string& work_dir) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return Errno("pipe2");
  Child c;
  c.stderr_path = work_dir + "/" + tag + ".stderr";
  c.console_path = work_dir + "/" + tag + ".console";
  args.insert(args.begin(), vmm);
  args.insert(args.end(), {"--ready-fd", "3", "--console-log", c.console_path});
  if (tap_fd >= 0) args.insert(args.end(), {"--tap-fd", "4"});
  // The child's fds 3 and 4 are dup2 targets, applied in order: a source that is itself 3 or 4
  // (the tap is usually the bench's fd 3) would be overwritten before it is copied, and the
  // monitor would get the ready pipe as its tap. Copies above both targets cannot collide.
  const int ready_src = ::fcntl(pipefd[1], F_DUPFD_CLOEXEC, 10);
  const int tap_src = tap_fd >= 0 ? ::fcntl(tap_fd, F_DUPFD_CLOEXEC, 10) : -1;
  if (ready_src < 0 || (tap_fd >= 0 && tap_src < 0)) {
    auto e = Errno("fcntl(F_DUPFD_CLOEXEC)");
    for (int fd : {pipefd[0], pipefd[1], ready_src, tap_src})
      if (fd >= 0) ::close(fd);
    return e;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, ready_src, 3);
  if (tap_fd >= 0) posix_spawn_file_actions_adddup2(&fa, tap_src, 4);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, c.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  c.spawned = Clock::now();
  const int err = ::posix_spawn(&c.pid, vmm.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(pipefd[1]);
  ::close(ready_src);
  if (tap_src >= 0) ::close(tap_src);
  if (err != 0) {
    ::close(pipefd[0]);
    return ErrnoValue("spawn " + vmm, err);
  }
  c.ready_read = pipefd[0];
  return c;
}

std::string Tail(const std::string& path, size_t max = 1500) {
  std::ifstream in(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), {});
  return s.size() > max ? "..." + s.substr(s.size() - max) : s;
}

// Reads the one ready line; returns its key=value pairs and when it arrived.
Result<std::pair<std::map<std::string, std::string>, Clock::time_point>> ReadReady(
    Child& c, Clock::time_point deadline) {
  std::string line;
  while (line.find('\n') == std::string::npos) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left <= 0ms) return Fail("no ready line before the timeout");
    pollfd p{c.ready_read, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[512];
    ssize_t n = ::read(c.ready_read, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Fail("the monitor closed --ready-fd without a line");
    line.append(buf, static_cast<size_t>(n));
  }
  const auto at = Clock::now();
  line.resize(line.find('\n'));
  if (line.starts_with("error ")) return Fail("monitor: " + line.substr(6));
  if (!line.starts_with("ready")) return Fail("unexpected ready line \"" + line + "\"");
  auto kv = ParseReply("ok" + line.substr(5));
  if (!kv) return std::unexpected(kv.error());
  return std::pair{*kv, at};
}

// Ends a child: `stop` over the control socket if given, then SIGTERM, then SIGKILL.
int Reap(Child& c, const std::string& control) {
  if (c.ready_read >= 0) ::close(c.ready_read);
  c.ready_read = -1;
  if (c.pid < 0) return -1;
  if (!control.empty()) (void)ControlCall(control, "stop", 2s);
  int status = 0;
  for (int phase = 0; phase < 3; ++phase) {
    const auto until = Clock::now() + (phase == 2 ? 5s : 3s);
    while (Clock::now() < until) {
      pid_t r = ::waitpid(c.pid, &status, WNOHANG);
      if (r == c.pid) {
        c.pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(2ms);
    }
    ::kill(c.pid, phase == 0 ? SIGTERM : SIGKILL);
  }
  return -1;
}

uint64_t Num(const std::map<std::string, std::string>& kv, const std::string& key) {
  auto it = kv.find(key);
  if (it == kv.end()) return 0;
  uint64_t v = 0;
  std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
  return v;
}

struct Series {
  std::string name;
  std::string unit;
  std::vector<double> values;
};

void PrintSeries(const Series& s) {
  if (s.values.empty()) {
    std::printf("  %-44s  (not measured)\n", s.name.c_str());
    return;
  }
  std::vector<double> v = s.values;
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) {
    const size_t i = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size()))) - 1;
    return v[std::min(i, v.size() - 1)];
  };
  std::printf("  %-44s  n=%-3zu min %9.3f  median %9.3f  p90 %9.3f  %s\n", s.name.c_str(), v.size(),
              v.front(), pct(0.5), pct(0.9), s.unit.c_str());
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[(v.size() - 1) / 2];
}

void DescribeHost() {
  utsname u{};
  ::uname(&u);
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, model;
  bool hw_virt = false;
  while (std::getline(cpuinfo, line)) {
    if (model.empty() && line.starts_with("model name")) model = line.substr(line.find(':') + 2);
    if (line.starts_with("flags") &&
        (line.find(" svm") != std::string::npos || line.find(" vmx") != std::string::npos))
      hw_virt = true;
  }
  bool nested_guest = false;
  if (std::ifstream flags("/proc/cpuinfo"); flags) {
    std::string all((std::istreambuf_iterator<char>(flags)), {});
    nested_guest = all.find(" hypervisor") != std::string::npos;
  }
  std::printf("host: %s %s, cpu \"%s\"%s, hardware virtualization: %s, /dev/kvm: %s\n", u.nodename,
              u.release, model.c_str(), nested_guest ? " (itself a VM: figures are nested)" : "",
              hw_virt ? "yes" : "NO (Linux will not boot)",
              ::access("/dev/kvm", R_OK | W_OK) == 0 ? "yes" : "NO");
}

int Run(const BenchOptions& o) {
  DescribeHost();
  std::string work = o.work_dir;
  bool remove_work = false;
  if (work.empty()) {
    std::string templ =
        (std::filesystem::temp_directory_path() / "phoenix-vmm-bench-XXXXXX").string();
    if (!::mkdtemp(templ.data())) {
      std::fprintf(stderr, "phoenix-vmm-bench: mkdtemp: %s\n", std::strerror(errno));
      return 1;
    }
    work = templ;
    remove_work = true;
  } else {
    std::filesystem::create_directories(work);
  }
  int tap = -1;
  if (o.net) {
    auto t = EnterOwnNetnsWithTap();
    if (!t) {
      std::fprintf(stderr, "phoenix-vmm-bench: --net: %s\n", t.error().message.c_str());
      return 1;
    }
    tap = *t;
  }
  const auto timeout = std::chrono::seconds(o.timeout_s);
  std::vector<std::string> boot_args = {"boot",
                                        "--kernel",
                                        o.kernel,
                                        "--cmdline",
                                        o.cmdline,
                                        "--memory-mib",
                                        std::to_string(o.memory_mib),
                                        "--ready-marker",
                                        o.marker};
  if (!o.initrd.empty()) boot_args.insert(boot_args.end(), {"--initrd", o.initrd});
  auto fail = [&](Child& c, const std::string& what, const std::string& control) {
    std::fprintf(stderr, "phoenix-vmm-bench: %s\n", what.c_str());
    const int status = Reap(c, control);
    std::fprintf(stderr, "  monitor exit status %d; stderr:\n%s\n  console tail:\n%s\n", status,
                 Tail(c.stderr_path).c_str(), Tail(c.console_path).c_str());
    return 1;
  };

  Series cold_wall{"cold boot: spawn -> ready marker (wall)", "ms", {}};
  Series cold_marker{"cold boot: Boot() -> marker (monitor)", "ms", {}};
  Series cold_setup{"cold boot: Boot() -> first KVM_RUN", "us", {}};
  Series cold_overhead{"cold boot: monitor overhead at ready", "KiB", {}};
  for (int i = 0; i < o.runs; ++i) {
    const std::string sock = work + "/cold.sock";
    auto args = boot_args;
    args.insert(args.end(), {"--control", sock});
    auto c = Spawn(o.vmm, args, tap, "cold-" + std::to_string(i), work);
    if (!c) return std::fprintf(stderr, "phoenix-vmm-bench: %s\n", c.error().message.c_str()), 1;
    auto ready = ReadReady(*c, Clock::now() + timeout);
    if (!ready)
      return fail(*c, "cold boot " + std::to_string(i) + ": " + ready.error().message, sock);
    cold_wall.values.push_back(Ms(ready->second - c->spawned));
    cold_marker.values.push_back(static_cast<double>(Num(ready->first, "marker_ms")));
    cold_setup.values.push_back(static_cast<double>(Num(ready->first, "setup_us")));
    auto stats = ControlCall(sock, "stats", 5s);
    if (!stats) return fail(*c, "cold boot stats: " + stats.error().message, sock);
    cold_overhead.values.push_back(static_cast<double>(Num(*stats, "monitor_overhead_kib")));
    Reap(*c, sock);
    std::printf("cold boot %d: marker after %.1f ms\n", i, cold_wall.values.back());
  }

  const std::string golden = work + "/golden";
  {
    auto args = boot_args;
    args.insert(args.end(), {"--snapshot-to", golden, "--exit-after-snapshot"});
    auto c = Spawn(o.vmm, args, tap, "golden", work);
    if (!c) return std::fprintf(stderr, "phoenix-vmm-bench: %s\n", c.error().message.c_str()), 1;
    auto ready = ReadReady(*c, Clock::now() + timeout);
    if (!ready) return fail(*c, "golden snapshot: " + ready.error().message, "");
    const int status = Reap(*c, "");
    if (status != 0) return fail(*c, "golden boot exited " + std::to_string(status), "");
    std::printf("golden snapshot written to %s (%.1f ms after spawn)\n", golden.c_str(),
                Ms(ready->second - c->spawned));
  }

  Series restore_setup{"restore: Restore() -> first KVM_RUN", "us", {}};
  Series restore_ready{"restore: spawn -> ready line (wall)", "ms", {}};
  Series restore_stats{"restore: spawn -> control stats answered", "ms", {}};
  Series restore_http{"restore: spawn -> guest HTTP answered", "ms", {}};
  Series restore_overhead{"restore: monitor overhead", "KiB", {}};
  Series restore_resident{"restore: guest pages touched", "KiB", {}};
  for (int i = 0; i < o.runs; ++i) {
    const std::string sock = work + "/restore.sock";
    auto c = Spawn(o.vmm, {"restore", "--snapshot", golden, "--control", sock}, tap,
                   "restore-" + std::to_string(i), work);
    if (!c) return std::fprintf(stderr, "phoenix-vmm-bench: %s\n", c.error().message.c_str()), 1;
    auto ready = ReadReady(*c, Clock::now() + timeout);
    if (!ready)
      return fail(*c, "restore " + std::to_string(i) + ": " + ready.error().message, sock);
    restore_setup.values.push_back(static_cast<double>(Num(ready->first, "setup_us")));
    restore_ready.values.push_back(Ms(ready->second - c->spawned));
    auto stats = ControlCall(sock, "stats", 5s);
    if (!stats) return fail(*c, "restore stats: " + stats.error().message, sock);
    restore_stats.values.push_back(Ms(Clock::now() - c->spawned));
    if (o.net) {
      const auto deadline = Clock::now() + timeout;
      bool answered = false;
      while (!answered && Clock::now() < deadline) {
        answered = HttpAnswered(o.http_port, deadline);
        if (!answered) std::this_thread::sleep_for(2ms);
      }
      if (!answered) return fail(*c, "restore " + std::to_string(i) + ": no HTTP answer", sock);
      restore_http.values.push_back(Ms(Clock::now() - c->spawned));
      stats = ControlCall(sock, "stats", 5s);
      if (!stats) return fail(*c, "restore stats: " + stats.error().message, sock);
    }
    restore_overhead.values.push_back(static_cast<double>(Num(*stats, "monitor_overhead_kib")));
    restore_resident.values.push_back(static_cast<double>(Num(*stats, "guest_resident_kib")));
    Reap(*c, sock);
  }

  std::printf("\nphoenix-vmm-bench: %d runs each, %" PRIu64 " MiB guest, kernel %s\n", o.runs,
              o.memory_mib, o.kernel.c_str());
  for (const Series* s :
       {&cold_wall, &cold_marker, &cold_setup, &cold_overhead, &restore_setup, &restore_ready,
        &restore_stats, &restore_http, &restore_overhead, &restore_resident})
    PrintSeries(*s);
  const double cold = Median(cold_wall.values);
  const double to_run = Median(restore_setup.values) / 1000.0;
  const double to_ready = o.net ? Median(restore_http.values) : Median(restore_stats.values);
  if (to_run > 0)
    std::printf("\nmedian cold boot to marker / restore to first KVM_RUN: %.0fx\n", cold / to_run);
  if (to_ready > 0)
    std::printf("median cold boot to marker / restore to %s: %.1fx\n",
                o.net ? "HTTP answered" : "stats answered (no --net: guest not probed)",
                cold / to_ready);
  if (remove_work) {
    std::error_code ec;
    std::filesystem::remove_all(work, ec);
  }
  if (tap >= 0) ::close(tap);
  return 0;
}

}  // namespace
}  // namespace phoenix::vmm

int main(int argc, char** argv) {
  auto o = phoenix::vmm::ParseArgs(argc, argv);
  if (!o) {
    std::fprintf(stderr, "phoenix-vmm-bench: %s\n", o.error().message.c_str());
    return 1;
  }
  ::signal(SIGPIPE, SIG_IGN);
  return phoenix::vmm::Run(*o);
}
