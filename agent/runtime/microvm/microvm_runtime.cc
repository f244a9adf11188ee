#include "agent/runtime/microvm/microvm_runtime.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "agent/process/process.h"
#include "agent/runtime/console_log.h"
#include "agent/runtime/microvm/guest_netns.h"
#include "agent/runtime/microvm/monitor_cgroup.h"
#include "agent/runtime/microvm/vmm_command.h"
#include "agent/runtime/oci/netns.h"
#include "agent/runtime/oci/run_record.h"
#include "agent/vmm/cli/control.h"

extern char** environ;

namespace phoenix::agent::microvm {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr milliseconds kKillWait{10000};
constexpr milliseconds kGoldenExitWait{60000};  // ready line (snapshot written) to clean exit
constexpr size_t kMaxReadyLine = 4096;

Result<void> MakeDir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Internal("creating " + dir.string() + ": " + ec.message());
  return {};
}

// One request on a monitor's control socket. The runtime only logs failures, so every vmm::Error
// (no answer, or an "error ..." reply) becomes kUnavailable with the monitor's words.
Result<std::map<std::string, std::string>> Control(const fs::path& socket, std::string_view request,
                                                   milliseconds timeout) {
  auto reply = phoenix::vmm::ControlCall(socket.string(), request, timeout);
  if (!reply) return Unavailable(reply.error().message);
  return std::move(*reply);
}

// Waits until the pidfd's process exited; false on timeout.
bool WaitExited(int pidfd, milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now());
    pollfd pfd{pidfd, POLLIN, 0};
    int n = ::poll(&pfd, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
    if (n > 0) return true;
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

// A spawned monitor before it is tracked: our child, with its pidfd and the read end of its ready
// pipe.
struct Spawned {
  pid_t pid = 0;
  UniqueFd pidfd;
  UniqueFd ready;
};

// posix_spawn with stdin /dev/null, stdout+stderr appended to `log`, the tap on kTapFd and the
// ready pipe's write end on kReadyFd; everything else we hold is O_CLOEXEC. Own session, so a
// Ctrl-C of the agent's terminal never reaches the monitors (they outlive the agent).
Result<Spawned> SpawnMonitor(const std::vector<std::string>& argv, int tap_fd,
                             const fs::path& log) {
  UniqueFd log_fd(::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640));
  if (!log_fd) return ErrnoError("opening " + log.string());
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return ErrnoError("ready pipe for phoenix-vmm");
  UniqueFd ready_r(p[0]), ready_w(p[1]);
  // Sources above the target numbers, so no dup2 of the file actions clobbers a later source.
  UniqueFd src_log(::fcntl(log_fd.get(), F_DUPFD_CLOEXEC, 10));
  UniqueFd src_tap(::fcntl(tap_fd, F_DUPFD_CLOEXEC, 10));
  UniqueFd src_ready(::fcntl(ready_w.get(), F_DUPFD_CLOEXEC, 10));
  if (!src_log || !src_tap || !src_ready) return ErrnoError("dup for phoenix-vmm");
  ready_w.Reset();

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, src_log.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, src_log.get(), 2);
  posix_spawn_file_actions_adddup2(&actions, src_tap.get(), kTapFd);
  posix_spawn_file_actions_adddup2(&actions, src_ready.get(), kReadyFd);
  // Nothing else of the agent's (see agent/process/process.h).
  posix_spawn_file_actions_addclosefrom_np(&actions, std::max(kTapFd, kReadyFd) + 1);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, argv[0].c_str(), &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return ErrnoError("starting " + argv[0], rc);
  Spawned s;
  s.pid = pid;
  s.ready = std::move(ready_r);
  s.pidfd.Reset(PidfdOpen(pid));
  if (!s.pidfd) {
    int err = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return ErrnoError("pidfd_open for phoenix-vmm", err);
  }
  return s;
}

// Kills and reaps a monitor that never became an instance.
void Abandon(Spawned& s) {
  if (s.pid <= 0) return;
  PidfdSendSignal(s.pidfd.get(), SIGKILL);
  while (::waitpid(s.pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  s.pid = 0;
}

// Reads the monitor's one ready line; bounded by `timeout`. Errors when the monitor exits first
// or says "error ...", naming the end of `log`.
Result<ReadyLine> AwaitReady(Spawned& s, milliseconds timeout, const fs::path& log) {
  const auto deadline = SteadyClock::now() + timeout;
  std::string line;
  bool exited = false;  // then only the pipe is polled: its EOF follows at once
  for (;;) {
    if (auto nl = line.find('\n'); nl != std::string::npos) {
      return ParseReadyLine(std::string_view(line).substr(0, nl));
    }
    auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) {
      return MakeError(ErrorCode::kDeadlineExceeded,
                       fmt::format("phoenix-vmm not ready within {} ms; its log: {}",
                                   timeout.count(), ReadTail(log, 1500)));
    }
    pollfd fds[2] = {{s.ready.get(), POLLIN, 0}, {s.pidfd.get(), POLLIN, 0}};
    int n = ::poll(fds, exited ? 1 : 2, static_cast<int>(left.count()));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("poll on phoenix-vmm's ready pipe");
    }
    if (n == 0) continue;
    if (fds[0].revents == 0) {
      exited = exited || fds[1].revents != 0;
      continue;
    }
    char buf[512];
    ssize_t got = ::read(s.ready.get(), buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got > 0) {
      line.append(buf, static_cast<size_t>(got));
      if (line.size() > kMaxReadyLine) return Internal("phoenix-vmm: ready line too long");
      continue;
    }
    if (got < 0) return ErrnoError("reading phoenix-vmm's ready pipe");
    break;  // EOF: the monitor closed it (exiting) without a complete line
  }
  if (!line.empty()) return ParseReadyLine(line);
  std::string how = "exited";
  int status = 0;
  if (WaitExited(s.pidfd.get(), milliseconds(2000)) && ::waitpid(s.pid, &status, 0) == s.pid) {
    how = DescribeWaitStatus(status);
    s.pid = 0;
  }
  return Internal(fmt::format("phoenix-vmm {} before it was ready: {}", how, ReadTail(log, 1500)));
}

}  // namespace

// ---- watching ----

struct MicroVmRuntime::Tracked {
  int pid = 0;
  int pidfd = -1;         // owned; for signals and waits from worker threads
  bool child = false;     // spawned by this agent process: reaped here with waitpid
  bool stopping = false;  // under mu_
  bool killed = false;    // under mu_
  ~Tracked() {
    if (pidfd >= 0) ::close(pidfd);
  }
};

MicroVmRuntime::MicroVmRuntime(boost::asio::io_context& io, MicroVmRuntimeOptions options)
    : options_(std::move(options)), layout_{options_.state_dir}, exits_(io) {
  auto vmm = DetectMonitor(options_);
  if (!vmm) {
    description_ = "micro-VMs unavailable: " + vmm.error().message;
    spdlog::warn("microvm runtime: {}", description_);
    return;
  }
  vmm_ = *vmm;
  description_ = fmt::format("phoenix-vmm on {} ({})", options_.kvm_device.string(), vmm_.string());
  if (auto layout = oci::DetectCgroupLayout(options_.cgroup_root); layout) {
    cgroup_layout_ = *layout;
  } else {
    description_ += "; monitors run without cgroup limits: " + layout.error().message;
  }
  available_ = true;
  spdlog::info("microvm runtime: {}", description_);
}

MicroVmRuntime::~MicroVmRuntime() { exits_.Stop(); }

void MicroVmRuntime::Watch(std::function<void(const RuntimeEvent&)> on_event) {
  events_.Set(std::move(on_event));
}

void MicroVmRuntime::WatchExit(const std::string& instance, const std::shared_ptr<Tracked>& tracked,
                               int fd) {
  exits_.Watch(instance, fd, [this, instance, tracked] { OnExited(instance, tracked); });
}

void MicroVmRuntime::OnExited(const std::string& instance,
                              const std::shared_ptr<Tracked>& tracked) {
  std::optional<int> status;
  if (tracked->child) {
    int ws = 0;
    pid_t r;
    while ((r = ::waitpid(tracked->pid, &ws, WNOHANG)) < 0 && errno == EINTR) {
    }
    if (r == tracked->pid) status = ws;
  } else {
    status = ZombieWaitStatus(tracked->pid, tracked->pidfd);
  }
  bool stopping = false, killed = false;
  {
    std::lock_guard lock(mu_);
    stopping = tracked->stopping;
    killed = tracked->killed;
    auto it = tracked_.find(instance);
    if (it != tracked_.end() && it->second == tracked) tracked_.erase(it);
  }
  ExitVerdict v =
      ClassifyMonitorExit(status, stopping, killed, ReadTail(layout_.VmmLog(instance), 300));
  spdlog::info("microvm runtime: {} stopped: {}{}", instance, v.reason,
               v.crashed ? " (crash)" : "");
  events_.Emit(RuntimeEvent{.kind = RuntimeEvent::Kind::kStopped,
                            .instance = instance,
                            .crashed = v.crashed,
                            .reason = v.reason});
}

Result<std::shared_ptr<MicroVmRuntime::Tracked>> MicroVmRuntime::Adopt(
    const InstanceRecord& record) {
  std::shared_ptr<Tracked> t;
  int watch_fd = -1;
  {
    std::lock_guard lock(mu_);
    if (auto it = tracked_.find(record.instance); it != tracked_.end()) return it->second;
    if (record.pid <= 0) return std::shared_ptr<Tracked>();
    int pidfd = PidfdOpen(record.pid);
    if (pidfd < 0) {
      if (errno == ESRCH) return std::shared_ptr<Tracked>();
      return ErrnoError(fmt::format("pidfd_open({}) (monitor of {})", record.pid, record.instance));
    }
    std::ifstream f(fmt::format("/proc/{}/cmdline", record.pid), std::ios::binary);
    std::string raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (oci::ProcessStartTime(record.pid) != record.start_time ||
        !IsMonitorOf(SplitProcCmdline(raw), layout_.ControlSocket(record.instance))) {
      ::close(pidfd);  // exited, or the pid now belongs to another process
      return std::shared_ptr<Tracked>();
    }
    watch_fd = ::fcntl(pidfd, F_DUPFD_CLOEXEC, 0);
    if (watch_fd < 0) {
      auto e = ErrnoError("dup of the pidfd of " + record.instance);
      ::close(pidfd);
      return e;
    }
    t = std::make_shared<Tracked>();
    t->pid = record.pid;
    t->pidfd = pidfd;
    tracked_[record.instance] = t;
  }
  spdlog::info("microvm runtime: watching {} (phoenix-vmm pid {})", record.instance, record.pid);
  WatchExit(record.instance, t, watch_fd);
  return t;
}

Result<std::shared_ptr<MicroVmRuntime::Tracked>> MicroVmRuntime::TrackedFor(
    const std::string& instance) {
  {
    std::lock_guard lock(mu_);
    if (auto it = tracked_.find(instance); it != tracked_.end()) return it->second;
  }
  if (!ValidInstanceName(instance)) return NotFound("no instance " + instance);
  auto record = ReadInstanceRecord(layout_.RecordFile(instance));
  if (!record) {
    if (record.error().code == ErrorCode::kNotFound) return NotFound("no instance " + instance);
    return std::unexpected(record.error());
  }
  return Adopt(*record);
}

// ---- jails ----

Result<JailFlags> MicroVmRuntime::MonitorJail(const std::string& name, uint32_t memory_mib,
                                              uint32_t vcpus) {
  // One empty directory serves every monitor: each mounts its own tmpfs there, in its own mount
  // namespace, so the host only ever sees it empty.
  const fs::path root = layout_.state_dir / "jail";
  PHX_TRY(MakeDir(root));
  if (::chmod(root.c_str(), 0700) != 0) return ErrnoError("chmod 0700 " + root.string());
  JailFlags jail{.uid = MonitorUid(options_.monitor_id_base, name),
                 .gid = options_.monitor_id_base,
                 .root = root};
  if (cgroup_layout_) {
    auto dirs = CreateMonitorCgroup(*cgroup_layout_, options_.cgroup_root, name,
                                    LimitsFor(memory_mib, vcpus));
    if (!dirs) return std::unexpected(dirs.error());
    jail.cgroups = std::move(*dirs);
  }
  return jail;
}

void MicroVmRuntime::ReleaseMonitorCgroup(const std::string& name) {
  if (!cgroup_layout_) return;
  for (const std::string& problem :
       RemoveMonitorCgroup(*cgroup_layout_, options_.cgroup_root, name))
    spdlog::warn("microvm runtime: cgroup of {}: {}", name, problem);
}

namespace {

// The monitor drops to its own uid before it reads the snapshot, so the files are root's and
// readable by the monitors' shared group only, and written by none.
Result<void> ShareWithMonitors(const fs::path& dir, uint32_t gid) {
  auto share = [gid](const fs::path& path, mode_t mode) -> Result<void> {
    if (::lchown(path.c_str(), 0, gid) != 0) return ErrnoError("chown " + path.string());
    if (::chmod(path.c_str(), mode) != 0) return ErrnoError("chmod " + path.string());
    return {};
  };
  PHX_TRY(share(dir, 0750));
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec)) PHX_TRY(share(it->path(), 0640));
  }
  if (ec) return Internal("listing " + dir.string() + ": " + ec.message());
  return {};
}

}  // namespace

// ---- golden snapshots ----

bool MicroVmRuntime::HasGolden(const ImageArtifacts& image, uint32_t vcpus,
                               uint32_t memory_mib) const {
  auto key = GoldenKey(image, vcpus, memory_mib);
  std::error_code ec;
  return key && fs::is_directory(layout_.GoldenDir(*key), ec);
}

Result<void> MicroVmRuntime::PrepareGolden(const ImageArtifacts& image, uint32_t vcpus,
                                           uint32_t memory_mib) {
  if (!available_) return Unavailable(description_);
  auto key = GoldenKey(image, vcpus, memory_mib);
  if (!key) return std::unexpected(key.error());
  if (image.kernel.empty()) return FailedPrecondition("the image has no kernel for micro-VMs");
  if (image.ready_marker.empty()) {
    return FailedPrecondition("the image has no ready marker: a golden snapshot needs one");
  }
  std::shared_ptr<std::mutex> key_mu;
  {
    std::lock_guard lock(mu_);
    auto& slot = golden_locks_[*key];
    if (!slot) slot = std::make_shared<std::mutex>();
    key_mu = slot;
  }
  // Concurrent first starts of one image wait here for the one boot.
  std::lock_guard boot_lock(*key_mu);
  std::error_code ec;
  if (fs::is_directory(layout_.GoldenDir(*key), ec)) return {};
  const auto started = SteadyClock::now();
  auto r = BootGolden(image, vcpus, memory_mib, *key);
  if (!r)
    return std::unexpected(r.error().Wrap("preparing the golden snapshot of " + image.image_id));
  spdlog::info("microvm runtime: golden snapshot {} ready in {} ms", *key,
               std::chrono::duration_cast<milliseconds>(SteadyClock::now() - started).count());
  return {};
}

Result<void> MicroVmRuntime::BootGolden(const ImageArtifacts& image, uint32_t vcpus,
                                        uint32_t memory_mib, const std::string& key) {
  const fs::path golden_root = layout_.state_dir / "golden";
  PHX_TRY(MakeDir(golden_root));
  {
    // Leftovers of a boot that an agent crash interrupted (we hold the key's lock).
    std::error_code ec;
    for (fs::directory_iterator it(golden_root, ec), end; !ec && it != end; it.increment(ec)) {
      if (layout_.IsGoldenTempOf(it->path(), key)) fs::remove_all(it->path(), ec);
    }
  }
  uint64_t attempt = 0;
  {
    std::lock_guard lock(mu_);
    attempt = ++golden_attempts_;
  }
  const fs::path temp = layout_.GoldenTemp(key, attempt);
  const fs::path log = layout_.GoldenBootLog(key);
  std::error_code ec;
  fs::remove(log, ec);
  if (!fs::create_directory(temp, ec) || ec) {
    return Internal("creating " + temp.string() + ": " + (ec ? ec.message() : "exists"));
  }
  struct RemoveTemp {
    fs::path dir;
    ~RemoveTemp() {
      std::error_code ec;
      if (!dir.empty()) fs::remove_all(dir, ec);
    }
  } remove_temp{temp};

  auto net = CreateGuestNetwork();
  if (!net) return std::unexpected(net.error().Wrap("guest network of the golden boot"));
  const std::string jail_name = "golden-" + key;
  auto jail = MonitorJail(jail_name, memory_mib, vcpus);
  if (!jail) return std::unexpected(jail.error().Wrap("jail of the golden boot"));
  struct ReleaseCgroup {
    MicroVmRuntime* rt;
    std::string name;
    ~ReleaseCgroup() { rt->ReleaseMonitorCgroup(name); }  // after the monitor is gone
  } release_cgroup{this, jail_name};
  BootCommand cmd{.vmm = vmm_,
                  .kernel = image.kernel,
                  .initrd = image.initrd,
                  .cmdline = GuestCmdline(image.cmdline),
                  .memory_mib = memory_mib,
                  .vcpus = vcpus,
                  .ready_marker = image.ready_marker,
                  .snapshot_to = temp,
                  .console_log = log,
                  .jail = *jail};
  const fs::path vmm_log = fs::path(log.string() + ".vmm");
  fs::remove(vmm_log, ec);
  auto spawned = SpawnMonitor(BootArgv(cmd), net->tap.get(), vmm_log);
  if (!spawned) return std::unexpected(spawned.error());
  net->tap.Reset();  // the monitor has it now
  auto ready = AwaitReady(*spawned, options_.golden_timeout, vmm_log);
  if (!ready) {
    Abandon(*spawned);
    return std::unexpected(ready.error().Wrap("golden boot; console: " + ReadTail(log, 1000)));
  }
  if (!WaitExited(spawned->pidfd.get(), kGoldenExitWait)) {
    Abandon(*spawned);
    return Internal(fmt::format("phoenix-vmm did not exit within {} ms after its golden snapshot",
                                kGoldenExitWait.count()));
  }
  int status = 0;
  while (::waitpid(spawned->pid, &status, 0) < 0) {
    if (errno != EINTR) return ErrnoError("waiting for the golden boot's phoenix-vmm");
  }
  spawned->pid = 0;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Internal(fmt::format("golden boot: phoenix-vmm {} after its snapshot: {}",
                                DescribeWaitStatus(status), ReadTail(vmm_log, 1000)));
  }
  if (fs::is_empty(temp, ec)) return Internal("golden boot: phoenix-vmm wrote no snapshot");
  {
    // Seal every file phoenix-vmm wrote: a restore reads them all.
    std::vector<std::string> files;
    for (fs::directory_iterator it(temp, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->is_regular_file(ec)) files.push_back(it->path().filename().string());
    }
    if (ec) return Internal("listing " + temp.string() + ": " + ec.message());
    std::sort(files.begin(), files.end());
    PHX_TRY(SealGolden(temp, files));
    PHX_TRY(ShareWithMonitors(temp, options_.monitor_id_base));
  }
  if (::rename(temp.c_str(), layout_.GoldenDir(key).c_str()) != 0) {
    return ErrnoError("renaming " + temp.string() + " to " + layout_.GoldenDir(key).string());
  }
  remove_temp.dir.clear();
  spdlog::info("microvm runtime: golden {}: ready marker after {} ms", key,
               ready->marker_ms.value_or(0));
  return {};
}

// ---- instances ----

Result<void> MicroVmRuntime::Teardown(const std::string& instance) {
  std::vector<std::string> problems;
  auto tracked = TrackedFor(instance);
  if (tracked && *tracked) {
    std::shared_ptr<Tracked> t = *tracked;
    {
      std::lock_guard lock(mu_);
      t->stopping = true;
    }
    if (PidfdSendSignal(t->pidfd, SIGKILL) != 0 && errno != ESRCH) {
      problems.push_back(
          ErrnoError(fmt::format("SIGKILL to phoenix-vmm {}", t->pid)).error().message);
    } else if (!WaitExited(t->pidfd, kKillWait)) {
      problems.push_back(fmt::format("phoenix-vmm {} did not exit within {} ms of SIGKILL", t->pid,
                                     kKillWait.count()));
    }
  } else if (!tracked && tracked.error().code != ErrorCode::kNotFound) {
    problems.push_back(tracked.error().message);
  }
  fs::path netns = layout_.NetnsFile(instance);
  if (auto record = ReadInstanceRecord(layout_.RecordFile(instance)); record) {
    if (!record->netns.empty()) netns = record->netns;
  }
  if (auto r = oci::RemoveNetns(netns); !r) problems.push_back(r.error().message);
  if (problems.empty()) ReleaseMonitorCgroup(instance);  // the monitor is gone
  if (!problems.empty()) {
    return Internal(fmt::format("cleaning up {}: {}", instance, fmt::join(problems, "; ")));
  }
  std::error_code ec;
  fs::remove_all(layout_.RunDir(instance), ec);
  if (ec) return Internal("removing " + layout_.RunDir(instance).string() + ": " + ec.message());
  return {};
}

Result<InstanceInfo> MicroVmRuntime::Start(const InstanceSpec& spec) {
  const auto started = SteadyClock::now();
  if (!ValidInstanceName(spec.instance)) {
    return InvalidArgument("instance",
                           "must start with \"phx-\", use only [A-Za-z0-9._-] and be at most 64 "
                           "characters");
  }
  if (spec.log_path.empty()) return InvalidArgument("log_path", "required");
  if (spec.image.kernel.empty()) {
    return FailedPrecondition("image " + spec.image.image_id + " has no kernel for micro-VMs");
  }
  if (!available_) return Unavailable(description_);
  // sun_path holds 107 bytes.
  if (layout_.ControlSocket(spec.instance).string().size() > 100) {
    return InvalidArgument("instance", "control socket path too long: " +
                                           layout_.ControlSocket(spec.instance).string());
  }
  {
    std::lock_guard lock(mu_);
    if (tracked_.contains(spec.instance) || !starting_.insert(spec.instance).second) {
      return AlreadyExists("instance " + spec.instance + " is already running or starting");
    }
  }
  struct Unmark {
    MicroVmRuntime* rt;
    const std::string& name;
    ~Unmark() {
      std::lock_guard lock(rt->mu_);
      rt->starting_.erase(name);
    }
  } unmark{this, spec.instance};

  bool restore = false;
  switch (spec.boot_mode) {
    case BootMode::kCold:
      break;
    case BootMode::kAuto:
      restore = HasGolden(spec.image, spec.vcpus, spec.memory_mib);
      break;
    case BootMode::kSnapshot:
      PHX_TRY(PrepareGolden(spec.image, spec.vcpus, spec.memory_mib));
      restore = true;
      break;
  }
  if (!restore) return Launch(spec, "", started);
  auto key = GoldenKey(spec.image, spec.vcpus, spec.memory_mib);
  if (!key) return std::unexpected(key.error());

  // A snapshot that fails its seal or its restore must not strand the guest (golden_seal.h).
  auto verified = goldens_.VerifyOnce(layout_.GoldenDir(*key));
  if (!verified) {
    auto info = Launch(spec, "", started);
    if (info)
      info->golden_problem =
          goldens_.Discard(layout_.GoldenDir(*key), *key, verified.error().message);
    return info;
  }
  auto restored = Launch(spec, *key, started);
  if (restored) return restored;
  auto cold = Launch(spec, "", started);
  if (!cold) {
    // Both failed: the snapshot is likely not the cause; keep it.
    return std::unexpected(
        cold.error().Wrap("cold boot after a failed restore (" + restored.error().message + ")"));
  }
  cold->golden_problem =
      goldens_.Discard(layout_.GoldenDir(*key), *key,
                       "restoring it failed: " + restored.error().message, &*verified);
  return cold;
}

Result<InstanceInfo> MicroVmRuntime::Launch(const InstanceSpec& spec, const std::string& key,
                                            SteadyClock::time_point started) {
  const bool restore = !key.empty();
  if (!restore && !fs::exists(spec.image.kernel)) {
    return NotFound("kernel " + spec.image.kernel.string() + " does not exist");
  }
  const fs::path run_dir = layout_.RunDir(spec.instance);
  InstanceRecord record{.instance = spec.instance,
                        .guest_id = spec.guest_id,
                        .netns = layout_.NetnsFile(spec.instance),
                        .golden = key};
  {
    std::error_code ec;
    if (fs::exists(run_dir, ec)) {
      return AlreadyExists("instance " + spec.instance + " exists (destroy it first)");
    }
    if (fs::exists(fs::symlink_status(record.netns, ec))) {
      return AlreadyExists("network namespace file " + record.netns.string() + " already exists");
    }
  }
  PHX_TRY(MakeDir(layout_.state_dir / "run"));
  PHX_TRY(MakeDir(layout_.state_dir / "netns"));
  {
    std::error_code ec;
    if (!fs::create_directory(run_dir, ec) || ec) {
      return Internal("creating " + run_dir.string() + ": " + (ec ? ec.message() : "exists"));
    }
    fs::permissions(run_dir, fs::perms::owner_all, ec);
    if (spec.log_path.has_parent_path()) fs::create_directories(spec.log_path.parent_path(), ec);
  }
  std::optional<Spawned> spawned;
  auto fail = [&](Error e) -> Result<InstanceInfo> {
    if (spawned) Abandon(*spawned);
    if (auto r = Teardown(spec.instance); !r) {
      spdlog::error("microvm runtime: failed start of {} left something behind: {}", spec.instance,
                    r.error().message);
      e.message += " (cleanup: " + r.error().message + ")";
    }
    return std::unexpected(e.Wrap("starting " + spec.instance));
  };
  // Written first so that Destroy finds everything even if the agent dies half-way.
  if (auto r = WriteInstanceRecord(layout_.RecordFile(spec.instance), record); !r) {
    return fail(r.error());
  }
  auto net = CreateGuestNetwork(record.netns);
  if (!net) return fail(net.error());
  auto jail = MonitorJail(spec.instance, spec.memory_mib, spec.vcpus);
  if (!jail) return fail(jail.error());

  std::vector<std::string> argv;
  if (restore) {
    argv = RestoreArgv({.vmm = vmm_,
                        .snapshot = layout_.GoldenDir(key),
                        .control = layout_.ControlSocket(spec.instance),
                        .console_log = spec.log_path,
                        .jail = *jail});
  } else {
    argv = BootArgv({.vmm = vmm_,
                     .kernel = spec.image.kernel,
                     .initrd = spec.image.initrd,
                     .cmdline = GuestCmdline(spec.image.cmdline),
                     .memory_mib = spec.memory_mib,
                     .vcpus = spec.vcpus,
                     .ready_marker = spec.image.ready_marker,
                     .control = layout_.ControlSocket(spec.instance),
                     .console_log = spec.log_path,
                     .jail = *jail});
  }
  auto s = SpawnMonitor(argv, net->tap.get(), layout_.VmmLog(spec.instance));
  if (!s) return fail(s.error());
  spawned = std::move(*s);
  net->tap.Reset();
  net->netns.Reset();  // the bind mount keeps the namespace
  record.pid = spawned->pid;
  record.start_time = oci::ProcessStartTime(spawned->pid);
  if (auto r = WriteInstanceRecord(layout_.RecordFile(spec.instance), record); !r) {
    return fail(r.error());
  }
  const milliseconds ready_timeout = restore ? options_.ready_timeout : options_.golden_timeout;
  auto ready = AwaitReady(*spawned, ready_timeout, layout_.VmmLog(spec.instance));
  if (!ready) {
    return fail(ready.error().Wrap(fmt::format("console: {}", ReadTail(spec.log_path, 800))));
  }

  auto t = std::make_shared<Tracked>();
  t->pid = spawned->pid;
  t->pidfd = spawned->pidfd.Release();
  t->child = true;
  int watch_fd = ::fcntl(t->pidfd, F_DUPFD_CLOEXEC, 0);
  if (watch_fd < 0) {
    spawned->pidfd.Reset(t->pidfd);
    t->pidfd = -1;
    return fail(ErrnoError("dup of the monitor's pidfd").error());
  }
  {
    std::lock_guard lock(mu_);
    tracked_[spec.instance] = t;
  }
  spawned.reset();  // tracked now: the watcher reaps it
  WatchExit(spec.instance, t, watch_fd);

  InstanceInfo info;
  info.instance = spec.instance;
  info.pid = t->pid;
  info.netns = record.netns;
  info.guest_address = std::string(kGuestAddress);
  info.boot = restore ? BootMode::kSnapshot : BootMode::kCold;
  info.start_duration = std::chrono::duration_cast<milliseconds>(SteadyClock::now() - started);
  info.accelerator = "kvm";
  spdlog::info("microvm runtime: {} running (phoenix-vmm pid {}, {} in {} ms, monitor setup {} us)",
               spec.instance, info.pid, restore ? "restored " + key : std::string("cold boot"),
               info.start_duration.count(), ready->setup_us);
  return info;
}

Result<void> MicroVmRuntime::Stop(const std::string& instance, milliseconds grace) {
  auto tracked = TrackedFor(instance);
  if (!tracked) return std::unexpected(tracked.error());
  std::shared_ptr<Tracked> t = *tracked;
  if (!t) return {};
  {
    std::lock_guard lock(mu_);
    t->stopping = true;
  }
  const auto deadline = SteadyClock::now() + grace;
  auto reply =
      Control(layout_.ControlSocket(instance), "stop", std::min(grace, options_.control_timeout));
  if (!reply) {
    spdlog::warn("microvm runtime: {}: control stop: {}", instance, reply.error().message);
  }
  auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now());
  if (WaitExited(t->pidfd, std::max(left, milliseconds(0)))) return {};
  if (PidfdSendSignal(t->pidfd, SIGTERM) != 0 && errno != ESRCH) {
    return ErrnoError(fmt::format("SIGTERM to phoenix-vmm {} ({})", t->pid, instance));
  }
  if (WaitExited(t->pidfd, options_.term_wait)) return {};
  if (PidfdSendSignal(t->pidfd, SIGKILL) != 0 && errno != ESRCH) {
    return ErrnoError(fmt::format("SIGKILL to phoenix-vmm {} ({})", t->pid, instance));
  }
  if (!WaitExited(t->pidfd, kKillWait)) {
    return Internal(fmt::format("phoenix-vmm {} of {} did not exit within {} ms of SIGKILL", t->pid,
                                instance, kKillWait.count()));
  }
  return {};
}

Result<void> MicroVmRuntime::Destroy(const std::string& instance) {
  if (!ValidInstanceName(instance)) {
    return InvalidArgument("instance", "not a Phoenix instance name");
  }
  return Teardown(instance);
}

Result<int> MicroVmRuntime::Kill(const std::string& instance) {
  auto tracked = TrackedFor(instance);
  if (!tracked) return std::unexpected(tracked.error());
  std::shared_ptr<Tracked> t = *tracked;
  if (!t) return NotFound("instance " + instance + " is not running");
  {
    std::lock_guard lock(mu_);
    t->killed = true;
  }
  if (PidfdSendSignal(t->pidfd, SIGKILL) != 0) {
    int err = errno;
    {
      std::lock_guard lock(mu_);
      t->killed = false;
    }
    if (err == ESRCH) return NotFound("instance " + instance + " is not running");
    return ErrnoError(fmt::format("kill -9 {} (phoenix-vmm of {})", t->pid, instance), err);
  }
  return t->pid;
}

Result<std::vector<InstanceStatus>> MicroVmRuntime::List() {
  std::vector<InstanceStatus> out;
  std::error_code ec;
  for (fs::directory_iterator it(layout_.state_dir / "run", ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!ValidInstanceName(name)) continue;
    {
      std::lock_guard lock(mu_);
      if (starting_.contains(name)) continue;
    }
    InstanceStatus s{.instance = name, .netns = layout_.NetnsFile(name)};
    s.guest_address = std::string(kGuestAddress);
    auto record = ReadInstanceRecord(layout_.RecordFile(name));
    if (!record) {
      // Half-created: listed as not running so the agent destroys it.
      spdlog::warn("microvm runtime: {}", record.error().message);
      out.push_back(std::move(s));
      continue;
    }
    s.guest_id = record->guest_id;
    if (!record->netns.empty()) s.netns = record->netns;
    auto tracked = Adopt(*record);
    if (!tracked) return std::unexpected(tracked.error());
    if (*tracked) {
      s.running = true;
      s.pid = (*tracked)->pid;
      // The process is ours; whether its monitor still answers is worth a line in the log.
      if (auto ping = Control(layout_.ControlSocket(name), "ping", options_.control_timeout);
          !ping) {
        spdlog::warn("microvm runtime: {} (pid {}) does not answer ping: {}", name, s.pid,
                     ping.error().message);
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace phoenix::agent::microvm
