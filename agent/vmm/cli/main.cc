// phoenix-vmm: one micro-VM per process. Parses the command line (options.h), builds the Machine
// (boot or restore), then runs the control loop on the main thread: signals (signalfd), the
// machine's stop and ready-marker events (an eventfd the vCPU threads poke) and the control socket
// (control.h). Before the machine is built it jails itself when asked (jail/jail.h): the guest's
// first instruction runs in an unprivileged, seccomp-confined process. Everything that may pause,
// snapshot or destroy the machine happens on this thread; the vCPU threads only write the console,
// scan it for the marker and report the stop.
#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/vmm/cli/control.h"
#include "agent/vmm/cli/marker_scanner.h"
#include "agent/vmm/cli/monitor_memory.h"
#include "agent/vmm/cli/options.h"
#include "agent/vmm/jail/jail.h"
#include "agent/vmm/machine.h"
#include "agent/vmm/snapshot/snapshot_file.h"

namespace phoenix::vmm {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kLoopTick = std::chrono::milliseconds(200);
constexpr auto kStopGrace = std::chrono::seconds(5);
constexpr auto kSetupWait = std::chrono::seconds(2);

int64_t MicrosSince(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t).count();
}

// The --ready-fd line: written at most once, then the fd is closed. An unsent fd closes with an
// error line, so the reader never waits on a monitor that gave up.
class ReadyLine {
 public:
  explicit ReadyLine(int fd) : fd_(fd) {}
  ~ReadyLine() { Send("error phoenix-vmm exited before it was ready"); }
  void Send(const std::string& line) {
    if (fd_ < 0) return;
    std::string out = line + "\n";
    size_t done = 0;
    while (done < out.size()) {
      ssize_t n = ::write(fd_, out.data() + done, out.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // the reader went away; nothing else to tell it
      done += static_cast<size_t>(n);
    }
    ::close(fd_);
    fd_ = -1;
  }
  bool pending() const { return fd_ >= 0; }

 private:
  int fd_;
};

int Die(ReadyLine& ready, const std::string& message) {
  ready.Send("error " + message);
  std::fprintf(stderr, "phoenix-vmm: %s\n", message.c_str());
  return 1;
}

std::string OneLine(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

// What the vCPU threads share with the control thread.
struct Events {
  int wake_fd = -1;
  int console_fd = 1;
  std::mutex console_mu;
  std::optional<MarkerScanner> scanner;  // guarded by console_mu
  std::atomic<bool> marker_seen{false};
  std::atomic<int64_t> marker_us{0};  // since boot start
  Clock::time_point boot_start;
  std::atomic<bool> stopped{false};
  std::atomic<int> stop_reason{static_cast<int>(StopReason::kRunning)};

  void Wake() {
    const uint64_t one = 1;
    (void)!::write(wake_fd, &one, sizeof one);
  }
  void Console(std::span<const uint8_t> bytes) {
    std::lock_guard lock(console_mu);
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::write(console_fd, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // a full or closed console must never stall or kill the guest
      done += static_cast<size_t>(n);
    }
    if (scanner && scanner->Feed(bytes)) {
      marker_us = MicrosSince(boot_start);
      marker_seen = true;
      Wake();
    }
  }
  void Stopped(StopReason reason) {
    stop_reason = static_cast<int>(reason);
    stopped = true;
    Wake();
  }
};

Status CheckFd(int fd, const char* flag) {
  if (fd < 0) return {};
  const int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0) return Errno(std::string(flag) + " " + std::to_string(fd));
  // Keep it out of anything this process might exec.
  if (::fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
    return Errno(std::string(flag) + " " + std::to_string(fd) + " FD_CLOEXEC");
  return {};
}

std::string StatsReply(const Machine& machine, Clock::time_point started, int smaps_fd) {
  const MachineStats s = machine.Stats();
  std::map<std::string, std::string> kv;
  kv["state"] = s.paused ? "paused" : "running";
  kv["vcpus"] = std::to_string(s.vcpus);
  kv["memory_mib"] = std::to_string(s.memory_bytes >> 20);
  kv["guest_resident_kib"] = std::to_string(s.guest_resident_bytes >> 10);
  auto mem = ReadMonitorMemory(s.memory_bytes, smaps_fd);
  if (!mem) return ErrorReply("stats: " + mem.error().message);
  kv["monitor_rss_kib"] = std::to_string(mem->rss_kib);
  kv["monitor_overhead_kib"] = std::to_string(mem->overhead_kib());
  kv["exits"] = std::to_string(s.exits);
  kv["setup_us"] = std::to_string(s.setup_to_first_run.count());
  kv["restored"] = s.restored ? "1" : "0";
  kv["uptime_ms"] = std::to_string(MicrosSince(started) / 1000);
  return OkReply(kv);
}

// Everything the monitor still needs is open or listed; from here on it is an unprivileged process
// in an empty root, and every thread it starts confines itself by kind.
// Paths are made absolute first: in the jail the working directory is its root.
Status Jail(CliOptions& o) {
  for (std::string* path : {&o.kernel, &o.initrd, &o.snapshot, &o.snapshot_to, &o.jail_root}) {
    std::error_code ec;
    if (!path->empty()) *path = std::filesystem::absolute(*path, ec).lexically_normal().string();
    if (ec) return Fail("cannot make " + *path + " absolute: " + ec.message());
    while (path->size() > 1 && path->back() == '/') path->pop_back();
  }
  JailSpec spec;
  spec.uid = o.jail_uid;
  spec.gid = o.jail_gid;
  spec.root = o.jail_root;
  spec.cgroups = o.cgroups;
  spec.devices = {"/dev/kvm"};
  if (o.command == CliCommand::kBoot) {
    spec.read_only.push_back(o.kernel);
    if (!o.initrd.empty()) spec.read_only.push_back(o.initrd);
    if (!o.snapshot_to.empty()) {
      if (::mkdir(o.snapshot_to.c_str(), 0700) != 0 && errno != EEXIST)
        return Errno("mkdir --snapshot-to " + o.snapshot_to);
      spec.writable.push_back(o.snapshot_to);
    }
  } else {
    spec.read_only.push_back(o.snapshot);
  }
  if (auto s = InstallSigsysReporter(); !s) return s;
  if (auto s = EnterJail(spec); !s) return s;
  if (auto s = ConfineThread(ThreadKind::kControl); !s) return s;
  SetThreadStartHook(ConfineNewThread);
  return {};
}

int RunMachine(CliOptions o) {
  ReadyLine ready(o.ready_fd);
  if (auto s = CheckFd(o.ready_fd, "--ready-fd"); !s) {
    std::fprintf(stderr, "phoenix-vmm: %s\n", s.error().message.c_str());
    return 1;
  }
  if (auto s = CheckFd(o.tap_fd, "--tap-fd"); !s) return Die(ready, s.error().message);

  // Block the stop signals before any vCPU thread exists, so every thread inherits the mask and
  // they arrive only through the signalfd, on this thread.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  if (int err = pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr); err != 0)
    return Die(ready, ErrnoValue("pthread_sigmask", err).error().message);
  const int signal_fd = ::signalfd(-1, &stop_signals, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd < 0) return Die(ready, Errno("signalfd").error().message);
  ::signal(SIGPIPE, SIG_IGN);

  Events events;
  events.wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (events.wake_fd < 0) return Die(ready, Errno("eventfd").error().message);
  if (!o.console_log.empty()) {
    events.console_fd =
        ::open(o.console_log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (events.console_fd < 0)
      return Die(ready, Errno("open --console-log " + o.console_log).error().message);
  }
  const bool boot = o.command == CliCommand::kBoot;
  const bool watch_marker = boot && !o.ready_marker.empty();
  if (watch_marker) events.scanner.emplace(o.ready_marker);

  std::unique_ptr<ControlServer> control;
  if (!o.control_socket.empty()) {
    auto server = ControlServer::Listen(o.control_socket);
    if (!server) return Die(ready, server.error().message);
    control = std::move(*server);
  }

  // /proc is not in the jail: `stats` reads this fd.
  const int smaps_fd = ::open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
  if (smaps_fd < 0) return Die(ready, Errno("open /proc/self/smaps").error().message);
  if (o.jailed()) {
    if (auto s = Jail(o); !s) return Die(ready, OneLine(s.error().message));
  }

  auto console = [&events](std::span<const uint8_t> bytes) { events.Console(bytes); };
  NetConfig net;
  net.tap_fd = o.tap_fd;
  net.mac = o.mac;
  events.boot_start = Clock::now();
  Result<std::unique_ptr<Machine>> built;
  if (boot) {
    BootConfig config;
    config.vcpus = o.vcpus;
    config.memory_bytes = o.memory_mib << 20;
    config.kernel_path = o.kernel;
    config.initrd_path = o.initrd;
    config.cmdline = o.cmdline;
    config.with_net = o.tap_fd >= 0;
    config.net = net;
    config.console = console;
    built = Machine::Boot(config);
  } else {
    RestoreConfig config;
    config.snapshot_dir = o.snapshot;
    config.net = net;
    config.console = console;
    built = Machine::Restore(config);
  }
  if (!built) return Die(ready, OneLine(built.error().message));
  std::unique_ptr<Machine> machine = std::move(*built);
  if (auto s = machine->Start([&events](StopReason r) { events.Stopped(r); }); !s)
    return Die(ready, OneLine(s.error().message));
  const Clock::time_point started = Clock::now();

  // setup_us is stamped by the vCPU thread at its first KVM_RUN, just after Start() returns.
  int64_t setup_us = 0;
  for (auto until = Clock::now() + kSetupWait; Clock::now() < until && !events.stopped;) {
    setup_us = machine->Stats().setup_to_first_run.count();
    if (setup_us > 0) break;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  if (!watch_marker && !events.stopped) ready.Send("ready setup_us=" + std::to_string(setup_us));

  bool marker_handled = false;
  std::optional<Clock::time_point> stop_deadline;
  auto request_stop = [&] {
    machine->RequestStop();
    if (!stop_deadline) stop_deadline = Clock::now() + kStopGrace;
  };

  ControlServer::Handler handler = [&](std::string_view request) -> std::string {
    const size_t space = request.find(' ');
    const std::string_view verb = request.substr(0, space);
    const std::string_view arg =
        space == std::string_view::npos ? std::string_view() : request.substr(space + 1);
    if (verb == "ping" && arg.empty()) return OkReply();
    if (verb == "stats" && arg.empty()) return StatsReply(*machine, started, smaps_fd);
    if (verb == "pause" && arg.empty()) {
      if (auto s = machine->Pause(); !s) return ErrorReply("pause: " + s.error().message);
      return OkReply({{"state", "paused"}});
    }
    if (verb == "resume" && arg.empty()) {
      if (auto s = machine->Resume(); !s) return ErrorReply("resume: " + s.error().message);
      return OkReply({{"state", "running"}});
    }
    if (verb == "snapshot") {
      if (arg.empty()) return ErrorReply("snapshot needs a directory: snapshot DIR");
      if (o.jailed() && arg != o.snapshot_to)
        return ErrorReply("snapshot: a jailed monitor writes only into its --snapshot-to");
      if (auto s = machine->Pause(); !s) return ErrorReply("pause: " + s.error().message);
      if (auto s = machine->Snapshot(std::string(arg)); !s)
        return ErrorReply("snapshot: " + s.error().message);
      return OkReply({{"state", "paused"}});
    }
    if (verb == "stop" && arg.empty()) {
      request_stop();
      return OkReply();
    }
    return ErrorReply("unknown request \"" + std::string(request.substr(0, 100)) +
                      "\" (ping, pause, resume, snapshot DIR, stop, stats)");
  };

  const int wake_fds[] = {signal_fd, events.wake_fd};
  for (;;) {
    Result<std::vector<int>> ready_fds;
    if (control) {
      ready_fds = control->Poll(kLoopTick, wake_fds, handler);
    } else {
      pollfd p[2] = {{signal_fd, POLLIN, 0}, {events.wake_fd, POLLIN, 0}};
      if (::poll(p, 2, static_cast<int>(kLoopTick.count())) < 0 && errno != EINTR)
        ready_fds = Errno("poll");
      else
        ready_fds = std::vector<int>{};
    }
    if (!ready_fds) {
      request_stop();
      return Die(ready, ready_fds.error().message);
    }
    signalfd_siginfo info;
    while (::read(signal_fd, &info, sizeof info) == sizeof info) request_stop();
    uint64_t count;
    while (::read(events.wake_fd, &count, sizeof count) == sizeof count) {
    }

    if (events.marker_seen && !marker_handled && !events.stopped) {
      marker_handled = true;
      std::string line = "ready setup_us=" + std::to_string(setup_us) +
                         " marker_ms=" + std::to_string(events.marker_us / 1000);
      if (!o.snapshot_to.empty()) {
        if (auto s = machine->Pause(); !s) {
          request_stop();
          return Die(ready, "pause for snapshot: " + OneLine(s.error().message));
        }
        if (auto s = machine->Snapshot(o.snapshot_to); !s) {
          request_stop();
          return Die(ready, "snapshot: " + OneLine(s.error().message));
        }
        line += " snapshot=" + o.snapshot_to;
        ready.Send(line);
        if (o.exit_after_snapshot) {
          machine->RequestStop();
          machine.reset();  // joins the vCPU threads
          return 0;
        }
        if (auto s = machine->Resume(); !s) {
          request_stop();
          return Die(ready, "resume after snapshot: " + OneLine(s.error().message));
        }
      } else {
        ready.Send(line);
      }
    }
    if (events.stopped) break;
    if (stop_deadline && Clock::now() >= *stop_deadline) {
      // RequestStop did not end the machine in time (e.g. paused); the destructor stops it.
      machine.reset();
      return 0;
    }
  }

  const auto reason = static_cast<StopReason>(events.stop_reason.load());
  std::string failure;
  if (reason == StopReason::kFailed) failure = OneLine(machine->failure().message);
  machine.reset();
  switch (reason) {
    case StopReason::kFailed:
      return Die(ready, failure.empty() ? "machine failed" : failure);
    case StopReason::kReset:
      ready.Send("error the guest asked for a reset before it was ready");
      return 2;
    case StopReason::kShutdown:
      ready.Send(watch_marker ? "error the guest shut down before the ready marker appeared"
                              : "error the guest shut down before it was ready");
      return 0;
    case StopReason::kRequested:
    case StopReason::kRunning:
      ready.Send("error stopped before the guest was ready");
      return 0;
  }
  return 0;
}

int Inspect(const CliOptions& o) {
  auto state = ReadSnapshotState(o.snapshot);
  if (!state) {
    std::fprintf(stderr, "phoenix-vmm: %s\n", OneLine(state.error().message).c_str());
    return 1;
  }
  const MachineState& s = *state;
  struct stat st {};
  const std::string memory_path = o.snapshot + "/" + kMemoryFileName;
  const uint64_t on_disk = ::stat(memory_path.c_str(), &st) == 0 ? uint64_t(st.st_blocks) * 512 : 0;
  std::printf("snapshot %s: valid\n", o.snapshot.c_str());
  std::printf("format_version %u\n", kSnapshotFormatVersion);
  std::printf("vcpus %u\n", s.shape.vcpus);
  std::printf("memory_mib %" PRIu64 " (%" PRIu64 " bytes, %" PRIu64 " KiB on disk)\n",
              s.shape.memory_bytes >> 20, s.shape.memory_bytes, on_disk >> 10);
  if (s.shape.has_net) {
    std::printf("net virtio-net mac %02x:%02x:%02x:%02x:%02x:%02x\n", s.shape.mac[0],
                s.shape.mac[1], s.shape.mac[2], s.shape.mac[3], s.shape.mac[4], s.shape.mac[5]);
  } else {
    std::printf("net none\n");
  }
  for (size_t i = 0; i < s.vcpus.size(); ++i) {
    const VcpuState& v = s.vcpus[i];
    std::printf("vcpu%zu rip 0x%llx mp_state %u msrs %zu cpuid_entries %zu tsc_khz %" PRIu64 "\n",
                i, static_cast<unsigned long long>(v.regs.rip), v.mp_state.mp_state, v.msrs.size(),
                v.cpuid.size(), v.tsc_khz);
  }
  std::printf("devices %zu\n", s.devices.size());
  for (const DeviceStateBlob& d : s.devices)
    std::printf("device %s %zu bytes\n", d.name.c_str(), d.state.size());
  return 0;
}

}  // namespace
}  // namespace phoenix::vmm

int main(int argc, char** argv) {
  using namespace phoenix::vmm;
  std::vector<std::string_view> args(argv + 1, argv + argc);
  auto options = ParseCommandLine(args);
  if (!options) {
    std::fprintf(stderr, "phoenix-vmm: %s\n", options.error().message.c_str());
    return 1;
  }
  switch (options->command) {
    case CliCommand::kHelp:
      std::fputs(UsageText().c_str(), stdout);
      return 0;
    case CliCommand::kInspect:
      return Inspect(*options);
    case CliCommand::kBoot:
    case CliCommand::kRestore:
      return RunMachine(*options);
  }
  return 1;
}
