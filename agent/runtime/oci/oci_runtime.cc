#include "agent/runtime/oci/oci_runtime.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "agent/process/process.h"
#include "agent/runtime/console_log.h"
#include "agent/runtime/oci/bundle_config.h"
#include "agent/runtime/oci/json.h"
#include "agent/runtime/oci/netns.h"
#include "agent/runtime/oci/stop_reason.h"

namespace phoenix::agent::oci {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kInstancePrefix = "phx-";
constexpr size_t kMaxInstanceName = 64;
constexpr milliseconds kKillWait{10000};

bool ValidInstanceName(std::string_view name) {
  if (!name.starts_with(kInstancePrefix) || name.size() > kMaxInstanceName) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

// overlayfs splits its options at ',' and lowerdir at ':'; '\\' escapes.
bool SafeOverlayPath(const fs::path& p) {
  return p.string().find_first_of(",:\\\n") == std::string::npos;
}

Result<void> MakeDir(const fs::path& dir, fs::perms perms) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Internal("creating " + dir.string() + ": " + ec.message());
  fs::permissions(dir, perms, ec);
  if (ec) return Internal("chmod " + dir.string() + ": " + ec.message());
  return {};
}

Result<void> WriteFile(const fs::path& file, const std::string& text) {
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("creating " + file.string());
  ssize_t n = ::write(fd, text.data(), text.size());
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size())) return ErrnoError("writing " + file.string(), err);
  return {};
}

Result<int> ReadPidFile(const fs::path& file) {
  std::ifstream f(file);
  std::string text;
  if (!(f >> text)) return Internal("no pid in " + file.string());
  int pid = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), pid);
  if (ec != std::errc() || end != text.data() + text.size() || pid <= 0) {
    return Internal(fmt::format("bad pid '{}' in {}", text, file.string()));
  }
  return pid;
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
    if (left.count() <= 0 || n == 0) return false;
    return false;  // poll error on a pidfd we own: treat as still running (caller escalates)
  }
}

}  // namespace

// A running container init being watched.
struct OciRuntime::Tracked {
  int pid = 0;
  int pidfd = -1;  // owned; for signals and waits from worker threads
  uint32_t memory_mib = 0;
  std::string cgroups_path;
  bool stopping = false;  // under OciRuntime::mu_
  bool killed = false;    // under OciRuntime::mu_
  ~Tracked() {
    if (pidfd >= 0) ::close(pidfd);
  }
};

// ---- construction and detection ----

OciRuntime::OciRuntime(asio::io_context& io, OciRuntimeOptions options)
    : options_(std::move(options)), exits_(io) {
  auto layout = DetectCgroupLayout(options_.cgroup_root);
  if (!layout) {
    description_ = "containers unavailable: " + layout.error().message;
    spdlog::warn("oci runtime: {}", description_);
    return;
  }
  layout_ = *layout;
  limit_swap_ = layout_ != CgroupLayout::kUnified &&
                fs::exists(options_.cgroup_root / "memory" / "memory.memsw.limit_in_bytes");
  std::vector<std::string> candidates = options_.oci_tool.empty()
                                            ? std::vector<std::string>{"crun", "runc"}
                                            : std::vector<std::string>{options_.oci_tool};
  for (const std::string& c : candidates) {
    if (FindInPath(c)) {
      tool_ = c;
      break;
    }
  }
  if (tool_.empty()) {
    description_ = fmt::format(
        "containers unavailable: {} not found in PATH; install crun or runc (tools/install-deps)",
        fmt::join(candidates, " or "));
    spdlog::warn("oci runtime: {}", description_);
    return;
  }
  std::string version = tool_;
  if (auto v = RunCommand({tool_, "--version"}, {.timeout = options_.tool_timeout}); v && v->ok()) {
    version = v->out.substr(0, v->out.find('\n'));
  }
  description_ = fmt::format("{} on {}", version, CgroupLayoutName(layout_));
  if (tool_ == "crun" && layout_ == CgroupLayout::kHybrid) {
    description_ += " (crun runs in a private mount namespace without /sys/fs/cgroup/unified)";
  }
  std::error_code ec;
  // runc cannot mount sysfs in a user namespace that does not own the instance's network
  // namespace (EPERM); crun falls back to binding it.
  if (options_.user_namespaces && tool_ == "crun" && fs::exists("/proc/self/ns/user", ec)) {
    uint64_t max = 0;
    std::ifstream("/proc/sys/user/max_user_namespaces") >> max;
    userns_ = max > 0;
  }
  description_ += userns_ ? ", a user namespace per container"
                          : ", no user namespaces (" +
                                std::string(!options_.user_namespaces ? "turned off"
                                            : tool_ != "crun"         ? "they need crun"
                                                                      : "the kernel has none") +
                                ")";
  available_ = true;
  spdlog::info("oci runtime: {}", description_);
}

uint32_t PreferredUsernsSlot(std::string_view instance) {
  uint32_t hash = 2166136261u;
  for (unsigned char c : instance) hash = (hash ^ c) * 16777619u;
  return hash % kUsernsSlots;
}

Result<uint32_t> OciRuntime::ReserveUsernsBaseLocked(const std::string& instance) {
  std::set<uint32_t> taken;
  for (const auto& [_, base] : starting_userns_) taken.insert(base);
  std::error_code ec;
  for (fs::directory_iterator it(options_.state_dir / "run", ec), end; !ec && it != end;
       it.increment(ec)) {
    if (auto r = ReadRunRecord(it->path()); r && r->userns_base != 0) taken.insert(r->userns_base);
  }
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return Internal("listing " + (options_.state_dir / "run").string() + ": " + ec.message());
  }
  const uint32_t first = PreferredUsernsSlot(instance);
  for (uint32_t i = 0; i < kUsernsSlots; ++i) {
    const uint32_t base = kUsernsFirstBase + ((first + i) % kUsernsSlots) * kUsernsSize;
    if (!taken.contains(base)) {
      starting_userns_[instance] = base;
      return base;
    }
  }
  return MakeError(
      ErrorCode::kResourceExhausted,
      "every one of the " + std::to_string(kUsernsSlots) + " user namespace id ranges is in use");
}

OciRuntime::~OciRuntime() { exits_.Stop(); }

std::string OciRuntime::Describe() const { return description_; }

void OciRuntime::Watch(std::function<void(const RuntimeEvent&)> on_event) {
  events_.Set(std::move(on_event));
}

fs::path OciRuntime::NetnsFile(const std::string& instance) const {
  return options_.state_dir / "netns" / instance;
}

fs::path OciRuntime::RunRecordFile(const std::string& instance) const {
  return options_.state_dir / "run" / instance;
}

Result<std::vector<std::string>> OciRuntime::ToolArgv(const std::string& tool,
                                                      const std::vector<std::string>& args,
                                                      bool creates_cgroups) const {
  auto path = FindInPath(tool);
  if (!path) {
    return Unavailable(tool + " is not installed (not in PATH); run tools/install-deps");
  }
  std::vector<std::string> argv;
  if (tool == "crun" && creates_cgroups && layout_ == CgroupLayout::kHybrid) {
    // crun 1.8 refuses a cgroup2 mount next to v1 controllers; hide it from crun only.
    argv = {"unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            "umount " + (options_.cgroup_root / "unified").string() + " && exec \"$0\" \"$@\""};
  }
  argv.push_back(*path);
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

Result<std::optional<OciRuntime::ContainerState>> OciRuntime::State(const std::string& tool,
                                                                    const std::string& id) {
  // Through `list`, not `state`: the tools word "no such container" differently (runc: "container
  // does not exist", crun: "error opening file .../status"), while list output is structured.
  auto all = ListContainers(tool);
  if (!all) return std::unexpected(all.error());
  for (ContainerState& c : *all) {
    if (c.id == id) return std::optional<ContainerState>(std::move(c));
  }
  return std::optional<ContainerState>();
}

Result<std::vector<OciRuntime::ContainerState>> OciRuntime::ListContainers(
    const std::string& tool) {
  auto argv = ToolArgv(tool, {"list", "--format", "json"});
  if (!argv) return std::unexpected(argv.error());
  auto r = RunCommand(*argv, {.timeout = options_.tool_timeout});
  if (!r) return std::unexpected(r.error().Wrap(tool + " list"));
  if (!r->ok()) return Internal(fmt::format("{} list: {}", tool, r->Describe()));
  auto json = ParseJson(r->out);
  if (!json) return Internal(fmt::format("{} list: unreadable output: {}", tool, r->out));
  std::vector<ContainerState> out;
  if (json->is_null()) return out;  // runc prints "null" when there are none
  if (!json->is_array()) return Internal(fmt::format("{} list: not an array: {}", tool, r->out));
  for (const Json& c : json->as_array()) {
    out.push_back(ContainerState{.id = c.StringOr("id"),
                                 .status = c.StringOr("status"),
                                 .pid = static_cast<int>(c.IntOr("pid", 0))});
  }
  return out;
}

// ---- events ----

void OciRuntime::WatchInit(const std::string& instance, const std::shared_ptr<Tracked>& tracked,
                           int fd) {
  exits_.Watch(instance, fd, [this, instance, tracked] { OnInitExited(instance, tracked); });
}

void OciRuntime::OnInitExited(const std::string& instance,
                              const std::shared_ptr<Tracked>& tracked) {
  StopFacts facts;
  // First, before the init's reaper gets to it.
  facts.wait_status = ZombieWaitStatus(tracked->pid, tracked->pidfd);
  facts.oom_kills = ReadOomKillCount(layout_, options_.cgroup_root, tracked->cgroups_path);
  facts.memory_mib = tracked->memory_mib;
  {
    std::lock_guard lock(mu_);
    facts.stopped_by_us = tracked->stopping;
    facts.killed_by_us = tracked->killed;
    auto it = tracked_.find(instance);
    if (it != tracked_.end() && it->second == tracked) tracked_.erase(it);
  }
  StopReason why = ClassifyStop(facts);
  spdlog::info("oci runtime: {} stopped: {}{}", instance, why.reason,
               why.crashed ? " (crash)" : "");
  events_.Emit(RuntimeEvent{.kind = RuntimeEvent::Kind::kStopped,
                            .instance = instance,
                            .crashed = why.crashed,
                            .reason = why.reason});
}

Result<std::shared_ptr<OciRuntime::Tracked>> OciRuntime::Adopt(const RunRecord& record, int pid) {
  std::shared_ptr<Tracked> t;
  int watch_fd = -1;
  {
    std::lock_guard lock(mu_);
    if (auto it = tracked_.find(record.instance); it != tracked_.end()) return it->second;
    int pidfd = PidfdOpen(pid);
    if (pidfd < 0) {
      if (errno == ESRCH) return std::shared_ptr<Tracked>();
      return ErrnoError(fmt::format("pidfd_open({}) (init of {})", pid, record.instance));
    }
    if (ProcessStartTime(pid) != record.init_start_time) {
      ::close(pidfd);  // exited and reaped, or the pid was reused: not our container's init
      return std::shared_ptr<Tracked>();
    }
    // The io_context owns its own descriptor: closing ours in a worker must not pull it away.
    watch_fd = ::fcntl(pidfd, F_DUPFD_CLOEXEC, 0);
    if (watch_fd < 0) {
      auto e = ErrnoError(fmt::format("dup of the pidfd of {}", record.instance));
      ::close(pidfd);
      return e;
    }
    t = std::make_shared<Tracked>();
    t->pid = pid;
    t->pidfd = pidfd;
    t->memory_mib = record.memory_mib;
    t->cgroups_path = record.cgroups_path;
    tracked_[record.instance] = t;
  }
  spdlog::info("oci runtime: watching {} (init pid {})", record.instance, pid);
  WatchInit(record.instance, t, watch_fd);
  return t;
}

Result<std::shared_ptr<OciRuntime::Tracked>> OciRuntime::TrackedFor(const std::string& instance) {
  {
    std::lock_guard lock(mu_);
    if (auto it = tracked_.find(instance); it != tracked_.end()) return it->second;
  }
  if (!ValidInstanceName(instance)) return NotFound("no instance " + instance);
  auto record = ReadRunRecord(RunRecordFile(instance));
  if (!record) {
    if (record.error().code == ErrorCode::kNotFound) return NotFound("no instance " + instance);
    return std::unexpected(record.error());
  }
  auto state = State(record->oci, instance);
  if (!state) return std::unexpected(state.error());
  if (!*state) return NotFound("no container " + instance);
  if ((*state)->status != "running" || (*state)->pid <= 0) return std::shared_ptr<Tracked>();
  return Adopt(*record, (*state)->pid);
}

// ---- instances ----

Result<void> OciRuntime::GiveDirsToGuest(const fs::path& root, uint32_t uid, uint32_t gid) const {
  int root_fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) return ErrnoError("opening " + root.string());
  Result<void> result;
  for (const std::string& name : options_.guest_owned_dirs) {
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
      result = InvalidArgument("guest_owned_dirs", "not a single directory name: " + name);
      break;
    }
    // O_NOFOLLOW: a symlink in the image must not make us chown something outside the rootfs.
    int fd = ::openat(root_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) continue;
      result = ErrnoError("opening " + (root / name).string());
      break;
    }
    int rc = ::fchown(fd, uid, gid);
    int err = errno;
    ::close(fd);
    if (rc != 0) {
      result = ErrnoError("chown " + (root / name).string(), err);
      break;
    }
  }
  ::close(root_fd);
  return result;
}

Result<void> OciRuntime::Teardown(const RunRecord& record) {
  std::vector<std::string> problems;
  const std::string tool = record.oci.empty() ? tool_ : record.oci;
  if (!tool.empty()) {
    auto state = State(tool, record.instance);
    if (!state) {
      problems.push_back(state.error().message);
    } else if (*state) {
      auto argv = ToolArgv(tool, {"delete", "--force", record.instance});
      auto r = argv ? RunCommand(*argv, {.timeout = options_.tool_timeout})
                    : Result<CommandResult>(std::unexpected(argv.error()));
      if (!r || !r->ok()) {
        auto again = State(tool, record.instance);
        if (!again || *again) {
          problems.push_back(fmt::format("{} delete --force {}: {}", tool, record.instance,
                                         r ? r->Describe() : r.error().message));
        }
      }
    }
  }
  if (!record.cgroups_path.empty()) {
    for (const fs::path& dir : ExistingCgroupDirs(options_.cgroup_root, record.cgroups_path)) {
      if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) {
        problems.push_back(ErrnoError("removing cgroup " + dir.string()).error().message);
      }
    }
  }
  const fs::path rootfs = record.bundle.empty() ? fs::path() : record.bundle / "rootfs";
  if (!rootfs.empty() && IsMountPoint(rootfs)) {
    if (::umount2(rootfs.c_str(), 0) != 0) {
      // Busy (a process still has a file open in it): detach; it goes once unused.
      if (errno != EBUSY || ::umount2(rootfs.c_str(), MNT_DETACH) != 0) {
        problems.push_back(ErrnoError("unmounting " + rootfs.string()).error().message);
      }
    }
  }
  if (options_.node_network) {
    if (auto r = options_.node_network->Detach(record.instance, record.address); !r) {
      problems.push_back(r.error().message);
    }
  }
  if (!record.netns.empty()) {
    if (auto r = RemoveNetns(record.netns); !r) problems.push_back(r.error().message);
  }
  if (!record.bundle.empty()) {
    if (IsMountPoint(rootfs)) {
      problems.push_back(rootfs.string() + " is still mounted: not removing the bundle");
    } else {
      std::error_code ec;
      fs::remove_all(record.bundle, ec);
      if (ec) problems.push_back("removing " + record.bundle.string() + ": " + ec.message());
    }
  }
  if (!problems.empty()) {
    return Internal(fmt::format("cleaning up {}: {}", record.instance, fmt::join(problems, "; ")));
  }
  std::error_code ec;
  fs::remove(RunRecordFile(record.instance), ec);
  if (ec) return Internal("removing the run record of " + record.instance + ": " + ec.message());
  return {};
}

Result<InstanceInfo> OciRuntime::Start(const InstanceSpec& spec) {
  const auto started = SteadyClock::now();
  if (!ValidInstanceName(spec.instance)) {
    return InvalidArgument("instance",
                           "must start with \"phx-\", use only [A-Za-z0-9._-] and be at most 64 "
                           "characters");
  }
  if (spec.guest_dir.empty() || !spec.guest_dir.is_absolute() || !SafeOverlayPath(spec.guest_dir)) {
    return InvalidArgument("guest_dir", "must be an absolute directory without ',', ':' or '\\'");
  }
  if (spec.log_path.empty()) return InvalidArgument("log_path", "required");
  const fs::path& golden = spec.image.rootfs;
  if (golden.empty() || !golden.is_absolute() || !SafeOverlayPath(golden)) {
    return InvalidArgument("image.rootfs",
                           "must be an absolute directory without ',', ':' or '\\'");
  }
  {
    std::error_code ec;
    if (!fs::is_directory(golden, ec)) {
      return NotFound("image rootfs " + golden.string() + " is not a directory");
    }
  }
  if (!available_) return Unavailable(description_);

  RunRecord record{.instance = spec.instance,
                   .guest_id = spec.guest_id,
                   .oci = tool_,
                   .bundle = spec.guest_dir / spec.instance,
                   .netns = NetnsFile(spec.instance),
                   .cgroups_path = "/phoenix/" + spec.instance,
                   .memory_mib = spec.memory_mib};
  {
    std::lock_guard lock(mu_);
    if (tracked_.contains(spec.instance) || !starting_.insert(spec.instance).second) {
      return AlreadyExists("instance " + spec.instance + " is already running or starting");
    }
  }
  struct Unmark {
    OciRuntime* rt;
    const std::string& name;
    ~Unmark() {
      std::lock_guard lock(rt->mu_);
      rt->starting_.erase(name);
      rt->starting_userns_.erase(name);
    }
  } unmark{this, spec.instance};

  if (userns_) {
    std::lock_guard lock(mu_);
    auto base = ReserveUsernsBaseLocked(spec.instance);
    if (!base) return std::unexpected(base.error().Wrap("starting " + spec.instance));
    record.userns_base = *base;
  }
  // The guest's ids as the host sees them (what owns the directories it may write).
  const uint32_t host_uid = record.userns_base + options_.uid;
  const uint32_t host_gid = record.userns_base + options_.gid;
  auto config = BundleConfig(
      spec, BundleDetails{
                .netns = record.netns,
                .cgroups_path = record.cgroups_path,
                .uid = options_.uid,
                .gid = options_.gid,
                .userns_base = userns_ ? std::optional<uint32_t>(record.userns_base) : std::nullopt,
                .pids_limit = options_.pids_limit,
                .limit_swap = limit_swap_});
  if (!config) return std::unexpected(config.error());

  {
    std::error_code ec;
    // Not ours to delete: whatever exists under these names belongs to an instance that was never
    // destroyed; fail without touching it.
    if (fs::exists(RunRecordFile(spec.instance), ec)) {
      return AlreadyExists("instance " + spec.instance + " exists (destroy it first)");
    }
    if (fs::exists(record.bundle, ec)) {
      return AlreadyExists("bundle " + record.bundle.string() + " already exists");
    }
    if (fs::exists(fs::symlink_status(record.netns, ec))) {
      return AlreadyExists("network namespace file " + record.netns.string() + " already exists");
    }
  }
  auto existing = State(tool_, spec.instance);
  if (!existing) return std::unexpected(existing.error().Wrap("starting " + spec.instance));
  if (*existing) return AlreadyExists("container " + spec.instance + " already exists");

  PHX_TRY(MakeDir(options_.state_dir / "run", fs::perms::owner_all));
  PHX_TRY(MakeDir(options_.state_dir / "netns",
                  fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec));
  {
    std::error_code ec;
    fs::create_directories(spec.guest_dir, ec);
    if (ec) return Internal("creating " + spec.guest_dir.string() + ": " + ec.message());
    if (spec.log_path.has_parent_path()) fs::create_directories(spec.log_path.parent_path(), ec);
  }
  // Written first so that Destroy finds everything even if this process dies half-way.
  PHX_TRY(WriteRunRecord(RunRecordFile(spec.instance), record));

  auto fail = [&](Error e) -> Result<InstanceInfo> {
    if (auto r = Teardown(record); !r) {
      spdlog::error("oci runtime: failed start of {} left something behind: {}", spec.instance,
                    r.error().message);
      e.message += " (cleanup: " + r.error().message + ")";
    }
    return std::unexpected(e.Wrap("starting " + spec.instance));
  };

  const fs::path rootfs = record.bundle / "rootfs";
  const fs::path upper = record.bundle / "upper";
  const fs::path work = record.bundle / "work";
  const fs::path pid_file = record.bundle / "init.pid";
  const fs::path tool_log = record.bundle / "oci.log";
  for (const fs::path& dir : {record.bundle, rootfs, upper, work}) {
    if (auto r = MakeDir(dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec);
        !r) {
      return fail(r.error());
    }
  }
  if (auto r = CreateNetns(record.netns); !r) return fail(r.error());
  if (options_.node_network) {
    auto address =
        options_.node_network->Attach(spec.instance, record.netns, spec.node_address_hint);
    if (!address) return fail(address.error());
    record.address = *address;
    if (auto r = WriteRunRecord(RunRecordFile(spec.instance), record); !r) return fail(r.error());
  }
  const std::string overlay_options = fmt::format("lowerdir={},upperdir={},workdir={}",
                                                  golden.string(), upper.string(), work.string());
  if (::mount("overlay", rootfs.c_str(), "overlay", MS_NOSUID | MS_NODEV,
              overlay_options.c_str()) != 0) {
    return fail(ErrnoError("mounting the overlay on " + rootfs.string()).error());
  }
  if (auto r = GiveDirsToGuest(rootfs, host_uid, host_gid); !r) return fail(r.error());
  if (auto r = WriteFile(record.bundle / "config.json", config->Dump(1)); !r) {
    return fail(r.error());
  }

  int log_fd =
      ::open(spec.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
  if (log_fd < 0) return fail(ErrnoError("opening " + spec.log_path.string()).error());
  auto argv = ToolArgv(tool_,
                       {"--log=" + tool_log.string(), "run", "--detach", "--pid-file",
                        pid_file.string(), "--bundle", record.bundle.string(), spec.instance},
                       /*creates_cgroups=*/true);
  Result<CommandResult> run =
      argv ? RunCommand(*argv, {.timeout = options_.tool_timeout, .output_fd = log_fd})
           : Result<CommandResult>(std::unexpected(argv.error()));
  ::close(log_fd);
  const auto run_done = SteadyClock::now();
  if (!run) return fail(run.error());
  if (!run->ok()) {
    return fail(Error{ErrorCode::kInternal,
                      fmt::format("{} run {}: {}", tool_, DescribeWaitStatus(run->wait_status),
                                  ReadTail(tool_log, 2000))});
  }
  auto pid = ReadPidFile(pid_file);
  if (!pid) return fail(pid.error());
  record.init_start_time = ProcessStartTime(*pid);
  if (record.init_start_time == 0) {
    return fail(Error{ErrorCode::kInternal, fmt::format("container init {} exited at once; log: {}",
                                                        *pid, ReadTail(spec.log_path, 2000))});
  }
  if (auto r = WriteRunRecord(RunRecordFile(spec.instance), record); !r) return fail(r.error());
  auto tracked = Adopt(record, *pid);
  if (!tracked) return fail(tracked.error());
  if (!*tracked) {
    // It exited (and was reaped) before we could watch it: a container that cannot stay up.
    return fail(Error{ErrorCode::kInternal, fmt::format("container init {} exited at once; log: {}",
                                                        *pid, ReadTail(spec.log_path, 2000))});
  }

  InstanceInfo info;
  info.instance = spec.instance;
  info.pid = *pid;
  info.netns = record.netns;
  info.node_address = record.address;
  info.boot = BootMode::kCold;
  info.start_duration = std::chrono::duration_cast<milliseconds>(SteadyClock::now() - started);
  spdlog::info("oci runtime: {} running ({}, init pid {}) after {} ms ({} run {} ms)",
               spec.instance, tool_, info.pid, info.start_duration.count(), tool_,
               std::chrono::duration_cast<milliseconds>(run_done - started).count());
  return info;
}

Result<void> OciRuntime::Stop(const std::string& instance, milliseconds grace) {
  auto tracked = TrackedFor(instance);
  if (!tracked) return std::unexpected(tracked.error());
  std::shared_ptr<Tracked> t = *tracked;
  if (!t) return {};  // exists but is not running
  {
    std::lock_guard lock(mu_);
    t->stopping = true;
  }
  // The init is PID 1 of its namespace: SIGTERM reaches it only if it handles SIGTERM.
  if (PidfdSendSignal(t->pidfd, SIGTERM) != 0 && errno != ESRCH) {
    return ErrnoError(fmt::format("SIGTERM to {} (init of {})", t->pid, instance));
  }
  if (WaitExited(t->pidfd, grace)) return {};
  if (PidfdSendSignal(t->pidfd, SIGKILL) != 0 && errno != ESRCH) {
    return ErrnoError(fmt::format("SIGKILL to {} (init of {})", t->pid, instance));
  }
  if (!WaitExited(t->pidfd, kKillWait)) {
    return Internal(fmt::format("init {} of {} did not exit within {} ms of SIGKILL", t->pid,
                                instance, kKillWait.count()));
  }
  return {};
}

Result<void> OciRuntime::Destroy(const std::string& instance) {
  if (!ValidInstanceName(instance)) {
    return InvalidArgument("instance", "not a Phoenix instance name");
  }
  {
    std::lock_guard lock(mu_);
    if (auto it = tracked_.find(instance); it != tracked_.end()) it->second->stopping = true;
  }
  auto record = ReadRunRecord(RunRecordFile(instance));
  if (!record) {
    if (record.error().code != ErrorCode::kNotFound) return std::unexpected(record.error());
    // No record: a container we did not start (or already cleaned up); remove what its name
    // implies, never guessing at directories.
    record = RunRecord{.instance = instance,
                       .oci = tool_,
                       .netns = NetnsFile(instance),
                       .cgroups_path = "/phoenix/" + instance};
  }
  return Teardown(*record);
}

Result<int> OciRuntime::Kill(const std::string& instance) {
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
    return ErrnoError(fmt::format("kill -9 {} (init of {})", t->pid, instance), err);
  }
  return t->pid;
}

Result<std::vector<InstanceStatus>> OciRuntime::List() {
  if (!available_) return Unavailable(description_);
  std::map<std::string, RunRecord> records;
  std::set<std::string> tools{tool_};
  {
    std::error_code ec;
    for (fs::directory_iterator it(options_.state_dir / "run", ec), end; !ec && it != end;
         it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (!ValidInstanceName(name)) continue;  // also skips "*.tmp"
      auto r = ReadRunRecord(it->path());
      if (!r) {
        spdlog::warn("oci runtime: {}", r.error().message);
        continue;
      }
      if (!r->oci.empty()) tools.insert(r->oci);
      records[name] = std::move(*r);
    }
  }
  std::vector<InstanceStatus> out;
  std::set<std::string> seen;
  for (const std::string& tool : tools) {
    if (!FindInPath(tool)) continue;
    auto containers = ListContainers(tool);
    if (!containers) return std::unexpected(containers.error());
    for (const ContainerState& c : *containers) {
      if (!c.id.starts_with(kInstancePrefix) || !seen.insert(c.id).second) continue;
      InstanceStatus s;
      s.instance = c.id;
      s.running = c.status == "running" && c.pid > 0;
      s.pid = s.running ? c.pid : 0;
      if (auto rec = records.find(c.id); rec != records.end()) {
        s.guest_id = rec->second.guest_id;
        s.netns = rec->second.netns;
        s.node_address = rec->second.address;
        // Re-adoption: watch it so its stop is reported like any other.
        if (s.running) {
          auto adopted = Adopt(rec->second, c.pid);
          if (!adopted) return std::unexpected(adopted.error());
          if (!*adopted) s.running = false;
        }
      }
      out.push_back(std::move(s));
    }
  }
  // Half-started or half-destroyed instances: listed as not running so the agent destroys them.
  for (const auto& [name, rec] : records) {
    if (seen.contains(name)) continue;
    {
      std::lock_guard lock(mu_);
      if (starting_.contains(name)) continue;
    }
    out.push_back(InstanceStatus{.instance = name, .guest_id = rec.guest_id, .netns = rec.netns});
  }
  return out;
}

Result<void> OciRuntime::PrepareGolden(const ImageArtifacts& image, uint32_t, uint32_t) {
  std::error_code ec;
  if (image.rootfs.empty() || !fs::is_directory(image.rootfs, ec)) {
    return FailedPrecondition("the image has no container rootfs");
  }
  return {};
}

}  // namespace phoenix::agent::oci
