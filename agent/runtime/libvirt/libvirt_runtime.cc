#include "agent/runtime/libvirt/libvirt_runtime.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <fstream>
#include <random>
#include <sstream>

#include "agent/runtime/console_log.h"
#include "agent/runtime/libvirt/asio_event_loop.h"
#include "agent/runtime/libvirt/capabilities.h"
#include "agent/runtime/libvirt/pid_watch.h"
#include "agent/runtime/libvirt/qemu_exit.h"
#include "agent/runtime/libvirt/qemu_img.h"
#include "agent/runtime/libvirt/save_image.h"

namespace phoenix::agent::libvirt {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

constexpr std::string_view kInstancePrefix = "phx-";
constexpr std::string_view kGoldenPrefix = "phoenix-golden-";  // not "phx-": never listed/adopted
constexpr milliseconds kPollInterval{100};
// How long a fired pidfd waits for virDomainGetState before judging without it (qemu_exit.h):
// libvirt answers in a few ms when it is not busy with the domain, and blocks 1.2-2 s when it is.
constexpr milliseconds kLibvirtAnswerWait{150};

// What libvirt callbacks and io_context handlers reach the runtime through: they may outlive it.
struct LibvirtRuntime::Shared {
  std::mutex mu;
  bool alive = true;
  LibvirtRuntime* runtime = nullptr;
  std::optional<asio::steady_timer> reconnect_timer;  // io thread only
  // Detached threads asking libvirt about a QEMU that exited; the destructor waits for them.
  int checks_in_flight = 0;
  std::condition_variable checks_done;
};

// A reference to the connection held for the duration of one call.
class LibvirtRuntime::ConnRef {
 public:
  explicit ConnRef(virConnectPtr c) : c_(c) {}
  ConnRef(ConnRef&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
  ConnRef& operator=(ConnRef&&) = delete;
  ~ConnRef() {
    if (c_ != nullptr) virConnectClose(c_);
  }
  virConnectPtr get() const { return c_; }

 private:
  virConnectPtr c_;
};

namespace {

using SharedBox = std::shared_ptr<void>;  // opaque for libvirt callbacks (type-erased Shared)

struct DomainRef {
  virDomainPtr d = nullptr;
  ~DomainRef() {
    if (d != nullptr) virDomainFree(d);
  }
};

void SilenceLibvirtErrors(void*, virErrorPtr) {}  // errors are reported through Result

std::string LastLibvirtMessage() {
  const char* msg = virGetLastErrorMessage();
  return msg != nullptr ? msg : "unknown libvirt error";
}

int LastLibvirtCode() {
  virErrorPtr e = virGetLastError();
  return e != nullptr ? e->code : VIR_ERR_OK;
}

std::string NewUuid() {
  std::random_device rd;
  std::array<uint8_t, 16> b;
  for (auto& x : b) x = static_cast<uint8_t>(rd());
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  std::string s;
  for (size_t i = 0; i < b.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
    s += fmt::format("{:02x}", b[i]);
  }
  return s;
}

std::string Sanitize(std::string_view s) {
  std::string out;
  for (char c : s) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return out;
}

std::optional<int> ReadQemuPid(const std::string& name) {
  std::ifstream f("/run/libvirt/qemu/" + name + ".pid");
  int pid = 0;
  if (f >> pid && pid > 0) return pid;
  return std::nullopt;
}

// Whether `pid` is the QEMU of domain `name` (pids get reused).
bool IsQemuOf(int pid, const std::string& name) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::string cmdline((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return cmdline.find("guest=" + name + ",") != std::string::npos ||
         cmdline.find("guest=" + name + '\0') != std::string::npos;
}

// Whether the instance's QEMU, per libvirt's pid file, has exited (true also when the pid now
// belongs to another process); nullopt when there is no pid file or the check failed.
std::optional<bool> QemuExited(const std::string& name) {
  auto pid = ReadQemuPid(name);
  if (!pid) return std::nullopt;
  const long fd = ::syscall(SYS_pidfd_open, *pid, 0);
  if (fd < 0) {
    if (errno == ESRCH) return true;
    return std::nullopt;
  }
  // The pidfd pins the process: the cmdline check and the poll see the same one.
  pollfd p{.fd = static_cast<int>(fd), .events = POLLIN, .revents = 0};
  const bool is_qemu = IsQemuOf(*pid, name);
  const int ready = ::poll(&p, 1, 0);
  ::close(static_cast<int>(fd));
  if (ready < 0) return std::nullopt;
  return ready == 1 || !is_qemu;  // readable: exited (a zombie has no cmdline either)
}

bool FileContains(const fs::path& path, const std::string& needle) {
  std::ifstream f(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return s.find(needle) != std::string::npos;
}

Result<void> MakeDir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Internal("creating " + dir.string() + ": " + ec.message());
  return {};
}

void FreeBox(void* opaque) { delete static_cast<SharedBox*>(opaque); }

}  // namespace

// ---- construction and connection ----

LibvirtRuntime::LibvirtRuntime(asio::io_context& io, LibvirtRuntimeOptions options)
    : io_(io), options_(std::move(options)), shared_(std::make_shared<Shared>()) {
  shared_->runtime = this;
  shared_->reconnect_timer.emplace(io_);
  auto installed = AsioEventLoop::Install(io_);
  PHX_CHECK(installed.has_value());  // one io_context per process: a second one is a bug
  virSetErrorFunc(nullptr, SilenceLibvirtErrors);
  backoff_ = options_.reconnect_min;
  if (auto r = Connect(); !r) {
    spdlog::warn("libvirt runtime: {}", r.error().message);
    asio::post(io_, [shared = shared_] {
      std::lock_guard lock(shared->mu);
      if (shared->alive) shared->runtime->ScheduleReconnect();
    });
  }
}

LibvirtRuntime::~LibvirtRuntime() {
  {
    std::unique_lock lock(shared_->mu);
    shared_->alive = false;
    // Bounded by libvirt's keepalive: a call on a dead connection fails after interval * count.
    shared_->checks_done.wait(lock, [&] { return shared_->checks_in_flight == 0; });
  }
  if (connector_.joinable()) connector_.join();
  // On the io thread (or with the io_context stopped), as the contract asks.
  for (auto& [instance, watch] : pid_watches_) watch->Close();
  pid_watches_.clear();
  std::lock_guard lock(mu_);
  if (conn_ != nullptr) {
    if (lifecycle_callback_ >= 0) virConnectDomainEventDeregisterAny(conn_, lifecycle_callback_);
    virConnectUnregisterCloseCallback(conn_, CloseThunk);
    virConnectClose(conn_);
    conn_ = nullptr;
  }
}

Result<void> LibvirtRuntime::Connect() {
  virConnectPtr c = virConnectOpen(options_.uri.c_str());
  if (c == nullptr) {
    Error e = Unreachable(LastLibvirtMessage());
    std::lock_guard lock(mu_);
    last_error_ = LastLibvirtMessage();
    return std::unexpected(e);
  }
  if (virConnectSetKeepAlive(c, options_.keepalive_interval_s, options_.keepalive_count) < 0) {
    spdlog::warn("libvirt: keepalive not available on {}: {}", options_.uri, LastLibvirtMessage());
  }
  // Detect, don't configure (see capabilities.h).
  bool kvm_domain = false;
  if (char* dc = virConnectGetDomainCapabilities(c, nullptr, "x86_64", nullptr, "kvm", 0)) {
    free(dc);
    kvm_domain = true;
  }
  std::string host_caps;
  if (char* caps = virConnectGetCapabilities(c)) {
    host_caps = caps;
    free(caps);
  }
  AcceleratorChoice choice = ChooseAccelerator(kvm_domain, host_caps);
  Accelerator accel = choice.accel;
  std::string note = choice.description;
  virResetLastError();
  if (options_.force_accelerator) {
    accel = *options_.force_accelerator;
    note = fmt::format("{} (forced by configuration; detected: {})", AcceleratorName(accel), note);
  }
  auto* close_box = new SharedBox(shared_);
  if (virConnectRegisterCloseCallback(c, CloseThunk, close_box, FreeBox) < 0) {
    delete close_box;
    std::string msg = LastLibvirtMessage();
    virConnectClose(c);
    return Internal("registering the libvirt close callback: " + msg);
  }
  auto* event_box = new SharedBox(shared_);
  int cb = virConnectDomainEventRegisterAny(c, nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                            VIR_DOMAIN_EVENT_CALLBACK(LifecycleThunk), event_box,
                                            FreeBox);
  if (cb < 0) {
    delete event_box;
    std::string msg = LastLibvirtMessage();
    virConnectUnregisterCloseCallback(c, CloseThunk);
    virConnectClose(c);
    return Internal("registering for libvirt lifecycle events: " + msg);
  }
  std::lock_guard lock(mu_);
  PHX_CHECK(conn_ == nullptr);
  conn_ = c;
  lifecycle_callback_ = cb;
  accel_ = accel;
  accel_note_ = note;
  last_error_.clear();
  connected_ = true;
  spdlog::info("libvirt runtime: connected to {} ({})", options_.uri, note);
  // Instances that were running before this connection (agent restart, libvirtd restart).
  WatchRunningInstances(c);
  return {};
}

std::string LibvirtRuntime::Describe() const {
  std::lock_guard lock(mu_);
  if (conn_ == nullptr) return "libvirt unavailable: " + last_error_;
  return accel_note_;
}

bool LibvirtRuntime::Available() const { return connected_; }

void LibvirtRuntime::Watch(std::function<void(const RuntimeEvent&)> on_event) {
  std::lock_guard lock(mu_);
  on_event_ = std::move(on_event);
}

Error LibvirtRuntime::Unreachable(const std::string& detail) const {
  return Error{
      ErrorCode::kUnavailable,
      fmt::format("libvirtd is not reachable at {}: {}; start it with tools/libvirtd start",
                  options_.uri, detail)};
}

Result<LibvirtRuntime::ConnRef> LibvirtRuntime::Conn() const {
  std::lock_guard lock(mu_);
  if (conn_ == nullptr) return std::unexpected(Unreachable(last_error_));
  virConnectRef(conn_);
  return ConnRef(conn_);
}

Error LibvirtRuntime::LibvirtError(virConnectPtr conn, const std::string& what) const {
  std::string msg = LastLibvirtMessage();
  if (conn != nullptr && virConnectIsAlive(conn) != 1) return Unreachable(msg).Wrap(what);
  return Error{ErrorCode::kInternal, what + ": " + msg};
}

Accelerator LibvirtRuntime::CurrentAccelerator() const {
  std::lock_guard lock(mu_);
  return accel_;
}

void LibvirtRuntime::OnClosed(virConnectPtr conn, int reason) {
  virConnectPtr dead = nullptr;
  {
    std::lock_guard lock(mu_);
    if (conn_ != conn) return;
    dead = std::exchange(conn_, nullptr);
    lifecycle_callback_ = -1;
    connected_ = false;
    last_error_ = fmt::format("connection closed (reason {})", reason);
  }
  spdlog::warn("libvirt runtime: connection to {} closed (reason {})", options_.uri, reason);
  // Never drop the connection from inside libvirt's close callback: do it on a later turn.
  asio::post(io_, [dead] { virConnectClose(dead); });
  Emit(RuntimeEvent{.kind = RuntimeEvent::Kind::kDisconnected,
                    .reason = "libvirtd connection lost"});
  backoff_ = options_.reconnect_min;
  ScheduleReconnect();
}

void LibvirtRuntime::ScheduleReconnect() {
  auto& timer = *shared_->reconnect_timer;
  timer.expires_after(backoff_);
  timer.async_wait([shared = shared_](const boost::system::error_code& ec) {
    if (ec) return;
    LibvirtRuntime* rt;
    {
      std::lock_guard lock(shared->mu);
      if (!shared->alive) return;
      rt = shared->runtime;
      if (rt->connector_.joinable()) rt->connector_.join();  // the previous attempt has reported
      // Each attempt blocks in virConnectOpen: keep it off the io thread.
      rt->connector_ = std::thread([shared] {
        LibvirtRuntime* r;
        {
          std::lock_guard lock(shared->mu);
          if (!shared->alive) return;
          r = shared->runtime;
        }
        // The destructor joins this thread before the runtime goes away.
        auto result = r->Connect();
        asio::post(r->io_, [shared, ok = result.has_value()] {
          std::lock_guard lock(shared->mu);
          if (!shared->alive) return;
          LibvirtRuntime* rt = shared->runtime;
          if (ok) {
            rt->backoff_ = rt->options_.reconnect_min;
            rt->Emit(RuntimeEvent{.kind = RuntimeEvent::Kind::kConnected,
                                  .reason = "libvirtd connection established"});
            return;
          }
          rt->backoff_ = std::min(rt->backoff_ * 2, rt->options_.reconnect_max);
          rt->ScheduleReconnect();
        });
      });
    }
  });
}

void LibvirtRuntime::Emit(const RuntimeEvent& event) {
  std::function<void(const RuntimeEvent&)> sink;
  {
    std::lock_guard lock(mu_);
    sink = on_event_;
  }
  if (sink) sink(event);
}

int LibvirtRuntime::LifecycleThunk(virConnectPtr, virDomainPtr dom, int event, int detail,
                                   void* opaque) {
  auto shared = std::static_pointer_cast<Shared>(*static_cast<SharedBox*>(opaque));
  const char* name = virDomainGetName(dom);
  if (name == nullptr) return 0;
  char uuid[VIR_UUID_STRING_BUFLEN] = {};
  if (virDomainGetUUIDString(dom, uuid) != 0) uuid[0] = '\0';
  std::lock_guard lock(shared->mu);
  if (shared->alive) shared->runtime->OnLifecycle(name, uuid, event, detail);
  return 0;
}

void LibvirtRuntime::CloseThunk(virConnectPtr conn, int reason, void* opaque) {
  auto shared = std::static_pointer_cast<Shared>(*static_cast<SharedBox*>(opaque));
  std::lock_guard lock(shared->mu);
  if (shared->alive) shared->runtime->OnClosed(conn, reason);
}

void LibvirtRuntime::OnLifecycle(const std::string& name, const std::string& uuid, int event,
                                 int detail) {
  if (!name.starts_with(kInstancePrefix)) return;
  RuntimeEvent ev{.kind = RuntimeEvent::Kind::kStopped, .instance = name};
  {
    std::lock_guard lock(mu_);
    // A failed restore's domain may report its end after the cold boot that replaced it under
    // the same name started.
    if (auto it = uuids_.find(name); it != uuids_.end() && !uuid.empty() && it->second != uuid) {
      return;
    }
    const bool ours = stopping_.contains(name);
    const bool killed = killed_.contains(name);
    if (event == VIR_DOMAIN_EVENT_SHUTDOWN) {
      // QEMU reported a power-off; libvirt terminates it next (see qemu_exit.h).
      shutdown_seen_.insert(name);
      return;
    }
    if (event == VIR_DOMAIN_EVENT_CRASHED) {
      ev.crashed = true;
      ev.reason = "guest crashed (kernel panic)";
    } else if (event == VIR_DOMAIN_EVENT_STOPPED) {
      switch (detail) {
        case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN:
          ev.reason = ours ? "stopped by Phoenix (guest shut down)" : "guest shut down";
          break;
        case VIR_DOMAIN_EVENT_STOPPED_DESTROYED:
          ev.crashed = !ours;
          ev.reason = ours ? "stopped by Phoenix" : "domain destroyed outside Phoenix";
          break;
        case VIR_DOMAIN_EVENT_STOPPED_CRASHED:
          ev.crashed = true;
          ev.reason = "guest crashed";
          break;
        case VIR_DOMAIN_EVENT_STOPPED_FAILED:
          ev.crashed = true;
          ev.reason = killed ? "qemu process killed (SIGKILL)" : "qemu process failed";
          break;
        default:
          return;  // saved, migrated, from snapshot: not a stop of a Phoenix instance
      }
    } else {
      return;
    }
    // CRASHED is followed by STOPPED, and the pidfd may have reported first: report once.
    if (!reported_.insert(name).second) return;
    stopping_.erase(name);
    killed_.erase(name);
    shutdown_seen_.erase(name);
  }
  ClosePidWatch(name);
  spdlog::info("libvirt runtime: {} stopped: {}{}", name, ev.reason, ev.crashed ? " (crash)" : "");
  Emit(ev);
}

// ---- QEMU exit through pidfd (see "Crash detection" in the header) ----

void LibvirtRuntime::WatchQemu(const std::string& instance, int pid) {
  if (pid <= 0) return;
  auto watch = PidWatch::Open(io_, pid);
  if (!watch) {
    if (watch.error().code != ErrorCode::kNotFound) {
      spdlog::warn(
          "libvirt runtime: cannot watch the QEMU of {} (pid {}): {}; its death is "
          "noticed through libvirt only",
          instance, pid, watch.error().message);
    }
    return;  // kNotFound: already gone, libvirt reports it
  }
  // Checked after opening: the pidfd pins the process, so a reused pid cannot slip in between.
  if (!IsQemuOf(pid, instance)) return;
  std::shared_ptr<PidWatch> w = std::move(*watch);
  asio::post(io_, [shared = shared_, instance, w] {
    std::lock_guard lock(shared->mu);
    if (shared->alive) shared->runtime->ArmPidWatch(instance, w);
  });
}

void LibvirtRuntime::WatchRunningInstances(virConnectPtr conn) {
  virDomainPtr* doms = nullptr;
  int n = virConnectListAllDomains(conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
  if (n < 0) {
    spdlog::warn("libvirt runtime: listing running domains to watch their QEMU: {}",
                 LastLibvirtMessage());
    virResetLastError();
    return;
  }
  for (int i = 0; i < n; ++i) {
    DomainRef d{doms[i]};
    const char* name = virDomainGetName(d.d);
    if (name == nullptr || !std::string_view(name).starts_with(kInstancePrefix)) continue;
    if (auto pid = ReadQemuPid(name)) WatchQemu(name, *pid);
  }
  free(doms);
}

void LibvirtRuntime::ArmPidWatch(const std::string& instance, std::shared_ptr<PidWatch> watch) {
  {
    std::lock_guard lock(mu_);
    if (reported_.contains(instance)) return;  // its end was reported already
  }
  auto it = pid_watches_.find(instance);
  if (it != pid_watches_.end()) {
    if (it->second->pid() == watch->pid()) return;  // watched already (List runs repeatedly)
    it->second->Close();
  }
  watch->Arm([shared = shared_, instance, pid = watch->pid()] {
    std::lock_guard lock(shared->mu);
    if (shared->alive) shared->runtime->OnQemuExited(instance, pid);
  });
  pid_watches_[instance] = std::move(watch);
}

void LibvirtRuntime::ClosePidWatch(const std::string& instance) {
  auto it = pid_watches_.find(instance);
  if (it == pid_watches_.end()) return;
  it->second->Close();
  pid_watches_.erase(it);
}

void LibvirtRuntime::PostClosePidWatch(const std::string& instance) {
  asio::post(io_, [shared = shared_, instance] {
    std::lock_guard lock(shared->mu);
    if (shared->alive) shared->runtime->ClosePidWatch(instance);
  });
}

void LibvirtRuntime::OnQemuExited(const std::string& instance, int pid) {
  if (auto it = pid_watches_.find(instance); it != pid_watches_.end() && it->second->pid() == pid) {
    pid_watches_.erase(it);  // it closed its pidfd when it fired
  }
  {
    std::lock_guard lock(mu_);
    // Our own Stop/Destroy: libvirt's event says "stopped by Phoenix".
    if (stopping_.contains(instance) || reported_.contains(instance)) return;
    if (shutdown_seen_.contains(instance)) return;  // a clean power-off: libvirt reports it
  }
  // Ask libvirt on a short-lived thread (crashes are rare) and judge when it answers or after
  // kLibvirtAnswerWait, whichever comes first; the io thread never blocks on libvirt.
  auto check = std::make_shared<ExitCheck>(io_);
  check->exited = SteadyClock::now();
  check->timer.expires_after(kLibvirtAnswerWait);
  check->timer.async_wait([shared = shared_, instance, check](const boost::system::error_code& ec) {
    if (ec) return;
    std::lock_guard lock(shared->mu);
    if (shared->alive) shared->runtime->DecideQemuExit(instance, *check, std::nullopt);
  });
  auto conn = Conn();
  if (!conn) {
    // libvirtd is away, so it cannot be the one ending QEMU: judged on what we heard.
    check->timer.cancel();
    DecideQemuExit(instance, *check, std::nullopt);
    return;
  }
  ++shared_->checks_in_flight;  // under shared_->mu (we run in a handler holding it)
  try {
    std::thread([shared = shared_, c = std::make_shared<ConnRef>(std::move(*conn)), instance,
                 check]() mutable {
      LibvirtAnswer answer;
      {
        DomainRef d{virDomainLookupByName(c->get(), instance.c_str())};
        int st = 0, rs = 0;
        if (d.d != nullptr && virDomainGetState(d.d, &st, &rs, 0) == 0) {
          answer.state = DomainState{.state = st, .reason = rs};
        } else if (LastLibvirtCode() != VIR_ERR_NO_DOMAIN) {
          answer.failure = LastLibvirtMessage();
        }
        virResetLastError();
      }
      c.reset();
      std::lock_guard lock(shared->mu);
      if (shared->alive) {
        asio::post(shared->runtime->io_, [shared, instance, check, answer] {
          std::lock_guard lock(shared->mu);
          if (shared->alive) shared->runtime->DecideQemuExit(instance, *check, answer);
        });
      }
      --shared->checks_in_flight;
      shared->checks_done.notify_all();
    }).detach();
  } catch (const std::exception& e) {
    --shared_->checks_in_flight;
    spdlog::warn("libvirt runtime: cannot ask libvirt about the exit of {}'s QEMU: {}", instance,
                 e.what());
  }
}

void LibvirtRuntime::DecideQemuExit(const std::string& instance, ExitCheck& check,
                                    const std::optional<LibvirtAnswer>& answer) {
  const auto waited_ms =
      std::chrono::duration_cast<milliseconds>(SteadyClock::now() - check.exited).count();
  if (check.decided) {
    spdlog::debug("libvirt runtime: libvirt answered about {} after {} ms", instance, waited_ms);
    return;
  }
  check.decided = true;
  check.timer.cancel();
  if (answer && !answer->failure.empty()) {
    spdlog::warn("libvirt runtime: asking libvirt about the exit of {}'s QEMU: {}", instance,
                 answer->failure);
  }
  QemuExitFacts facts;
  facts.libvirt_answered = answer.has_value() && answer->failure.empty();
  if (facts.libvirt_answered) facts.state = answer->state;
  QemuExitVerdict verdict;
  {
    std::lock_guard lock(mu_);
    if (stopping_.contains(instance)) return;  // Phoenix stops it meanwhile: libvirt reports
    facts.shutdown_event_seen = shutdown_seen_.contains(instance);
    facts.killed_by_us = killed_.contains(instance);
    verdict = JudgeQemuExit(facts);
    if (!verdict.report_now) {
      spdlog::info("libvirt runtime: QEMU of {} exited after a shutdown libvirt has handled",
                   instance);
      return;
    }
    if (!reported_.insert(instance).second) return;  // libvirt's event came first
    killed_.erase(instance);
    shutdown_seen_.erase(instance);
  }
  spdlog::info("libvirt runtime: {} stopped: {}{} (QEMU exit seen through its pidfd; {})", instance,
               verdict.reason, verdict.crashed ? " (crash)" : "",
               facts.libvirt_answered ? fmt::format("libvirt answered in {} ms", waited_ms)
                                      : fmt::format("no answer from libvirt in {} ms", waited_ms));
  Emit(RuntimeEvent{.kind = RuntimeEvent::Kind::kStopped,
                    .instance = instance,
                    .crashed = verdict.crashed,
                    .reason = verdict.reason});
}

// ---- golden snapshots ----

LibvirtRuntime::Golden LibvirtRuntime::GoldenFor(const ImageArtifacts& image, uint32_t vcpus,
                                                 uint32_t memory_mib, Accelerator accel) const {
  std::string id = image.image_id;
  if (auto colon = id.find(':'); colon != std::string::npos) id = id.substr(colon + 1);
  Golden g;
  g.key = fmt::format("{}-{}c-{}m-{}", Sanitize(id), vcpus, memory_mib, AcceleratorName(accel));
  g.dir = options_.state_dir / "golden" / g.key;
  g.overlay = g.dir / "disk.qcow2";
  g.save = g.dir / "memory.save";
  g.log = g.dir / "console.log";
  g.domain = std::string(kGoldenPrefix) + g.key.substr(0, 40);
  return g;
}

bool LibvirtRuntime::HasGolden(const ImageArtifacts& image, uint32_t vcpus,
                               uint32_t memory_mib) const {
  std::error_code ec;
  return fs::exists(GoldenFor(image, vcpus, memory_mib, CurrentAccelerator()).save, ec);
}

Result<void> LibvirtRuntime::PrepareGolden(const ImageArtifacts& image, uint32_t vcpus,
                                           uint32_t memory_mib) {
  auto conn = Conn();
  if (!conn) return std::unexpected(conn.error());
  const Accelerator accel = CurrentAccelerator();
  Golden g = GoldenFor(image, vcpus, memory_mib, accel);
  std::shared_ptr<std::mutex> key_mu;
  {
    std::lock_guard lock(mu_);
    auto& slot = golden_locks_[g.key];
    if (!slot) slot = std::make_shared<std::mutex>();
    key_mu = slot;
  }
  std::lock_guard key_lock(*key_mu);
  std::error_code ec;
  if (fs::exists(g.save, ec)) return {};
  auto started = SteadyClock::now();
  auto r = BootGolden(conn->get(), image, vcpus, memory_mib, accel, g);
  if (!r) {
    fs::remove_all(g.dir, ec);
    return std::unexpected(r.error().Wrap("preparing the golden snapshot of " + image.image_id));
  }
  spdlog::info("libvirt runtime: golden snapshot {} ready in {} ms", g.key,
               std::chrono::duration_cast<milliseconds>(SteadyClock::now() - started).count());
  return {};
}

Result<void> LibvirtRuntime::BootGolden(virConnectPtr conn, const ImageArtifacts& image,
                                        uint32_t vcpus, uint32_t memory_mib, Accelerator accel,
                                        const Golden& g) {
  if (image.ready_marker.empty()) {
    return FailedPrecondition("the image has no ready marker to snapshot at");
  }
  // A previous agent may have died half-way: start from nothing.
  {
    DomainRef stale{virDomainLookupByName(conn, g.domain.c_str())};
    if (stale.d != nullptr) virDomainDestroy(stale.d);
    virResetLastError();
  }
  std::error_code ec;
  fs::remove_all(g.dir, ec);
  PHX_TRY(MakeDir(g.dir));
  fs::permissions(g.dir, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec, ec);
  if (!image.disk.empty()) PHX_TRY(CreateOverlay(image.disk, g.overlay));

  InstanceSpec spec;
  spec.instance = g.domain;
  spec.guest_id = "golden:" + g.key;
  spec.image = image;
  spec.vcpus = vcpus;
  spec.memory_mib = memory_mib;
  spec.log_path = g.log;
  std::string xml =
      DomainXml(spec, DomainDetails{.accel = accel,
                                    .uuid = NewUuid(),
                                    .genid = NewUuid(),
                                    .overlay = image.disk.empty() ? fs::path() : g.overlay});
  auto boot_started = SteadyClock::now();
  DomainRef dom{virDomainCreateXML(conn, xml.c_str(), VIR_DOMAIN_NONE)};
  if (dom.d == nullptr) return std::unexpected(LibvirtError(conn, "booting " + g.domain));
  auto destroy = [&] {
    virDomainDestroy(dom.d);
    virResetLastError();
  };
  const auto deadline = boot_started + options_.ready_timeout;
  for (;;) {
    if (FileContains(g.log, image.ready_marker)) break;
    if (virDomainIsActive(dom.d) != 1) {
      return Internal("the golden boot stopped before its ready marker; console: " +
                      ReadTail(g.log, 2000));
    }
    int state = 0, reason = 0;
    if (virDomainGetState(dom.d, &state, &reason, 0) == 0 && state == VIR_DOMAIN_PAUSED) {
      // QEMU pauses a guest it cannot run on (e.g. "KVM internal error: emulation failure").
      destroy();
      return Internal(
          fmt::format("QEMU paused the golden boot (reason {}) before its ready marker; see "
                      "/var/log/libvirt/qemu/{}.log; console: {}",
                      reason, g.domain, ReadTail(g.log, 2000)));
    }
    if (SteadyClock::now() > deadline) {
      destroy();
      return MakeError(
          ErrorCode::kDeadlineExceeded,
          fmt::format("no ready marker '{}' on the console within {} ms; console: {}",
                      image.ready_marker, options_.ready_timeout.count(), ReadTail(g.log, 2000)));
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  auto ready_ms =
      std::chrono::duration_cast<milliseconds>(SteadyClock::now() - boot_started).count();
  const fs::path tmp = g.dir / "memory.save.tmp";
  auto save_started = SteadyClock::now();
  if (virDomainSaveFlags(dom.d, tmp.c_str(), nullptr, VIR_DOMAIN_SAVE_RUNNING) < 0) {
    Error e = LibvirtError(conn, "saving " + g.domain);
    destroy();
    return std::unexpected(e);
  }
  auto save_ms =
      std::chrono::duration_cast<milliseconds>(SteadyClock::now() - save_started).count();
  fs::rename(tmp, g.save, ec);
  if (ec) return Internal("renaming " + tmp.string() + ": " + ec.message());
  // Restored guests see this exact disk through their own overlays; nothing may write it again.
  std::vector<std::string> sealed = {g.save.filename().string()};
  if (!image.disk.empty()) {
    fs::permissions(g.overlay,
                    fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read, ec);
    sealed.push_back(g.overlay.filename().string());
  }
  PHX_TRY(SealGolden(g.dir, sealed));
  spdlog::info("libvirt runtime: golden {} ({}): boot to ready marker {} ms, save {} ms", g.key,
               AcceleratorName(accel), ready_ms, save_ms);
  return {};
}

// ---- instances ----

fs::path LibvirtRuntime::RunRecord(const std::string& instance) const {
  return options_.state_dir / "run" / instance;
}

void LibvirtRuntime::RemoveOwnedFiles(const std::string& instance) {
  std::error_code ec;
  const fs::path record = RunRecord(instance);
  std::ifstream f(record);
  for (std::string line; std::getline(f, line);) {
    if (!line.empty()) fs::remove(line, ec);
  }
  fs::remove(record, ec);
}

Result<InstanceInfo> LibvirtRuntime::Start(const InstanceSpec& spec) {
  const auto started = SteadyClock::now();
  if (!spec.instance.starts_with(kInstancePrefix) || spec.instance.size() > 200 ||
      spec.instance.find('/') != std::string::npos) {
    return InvalidArgument("instance", "must start with \"phx-\" and contain no '/'");
  }
  if (spec.guest_dir.empty() || !spec.guest_dir.is_absolute()) {
    return InvalidArgument("guest_dir", "must be an absolute directory");
  }
  if (spec.log_path.empty()) return InvalidArgument("log_path", "required");
  if (spec.image.kernel.empty()) return InvalidArgument("image.kernel", "required");
  auto conn = Conn();
  if (!conn) return std::unexpected(conn.error());
  virConnectPtr c = conn->get();
  {
    DomainRef existing{virDomainLookupByName(c, spec.instance.c_str())};
    if (existing.d != nullptr) return AlreadyExists("domain " + spec.instance + " already exists");
    if (LastLibvirtCode() != VIR_ERR_NO_DOMAIN) {
      return std::unexpected(LibvirtError(c, "looking up " + spec.instance));
    }
    virResetLastError();
  }
  {
    std::lock_guard lock(mu_);
    if (!starting_.insert(spec.instance).second) {
      return AlreadyExists("instance " + spec.instance + " is already being started");
    }
    reported_.erase(spec.instance);
    stopping_.erase(spec.instance);
    killed_.erase(spec.instance);
    shutdown_seen_.erase(spec.instance);
  }
  struct Unmark {
    LibvirtRuntime* rt;
    const std::string& name;
    ~Unmark() {
      std::lock_guard lock(rt->mu_);
      rt->starting_.erase(name);
    }
  } unmark{this, spec.instance};

  const Accelerator accel = CurrentAccelerator();
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
  const Golden g = GoldenFor(spec.image, spec.vcpus, spec.memory_mib, accel);
  if (!restore) return Launch(c, spec, accel, nullptr, started);

  // A snapshot that fails its seal or its restore must not strand the guest (golden_seal.h).
  auto verified = goldens_.VerifyOnce(g.dir);
  if (!verified) {
    auto info = Launch(c, spec, accel, nullptr, started);
    if (info) info->golden_problem = goldens_.Discard(g.dir, g.key, verified.error().message);
    return info;
  }
  auto restored = Launch(c, spec, accel, &g, started);
  if (restored) return restored;
  auto cold = Launch(c, spec, accel, nullptr, started);
  if (!cold) {
    // Both failed: the snapshot is likely not the cause; keep it.
    return std::unexpected(
        cold.error().Wrap("cold boot after a failed restore (" + restored.error().message + ")"));
  }
  cold->golden_problem = goldens_.Discard(
      g.dir, g.key, "restoring it failed: " + restored.error().message, &*verified);
  return cold;
}

Result<InstanceInfo> LibvirtRuntime::Launch(virConnectPtr c, const InstanceSpec& spec,
                                            Accelerator accel, const Golden* golden,
                                            SteadyClock::time_point started) {
  const bool restore = golden != nullptr;
  {
    std::lock_guard lock(mu_);
    reported_.erase(spec.instance);
  }
  const fs::path overlay = spec.guest_dir / (spec.instance + ".qcow2");
  const fs::path save_clone = spec.guest_dir / (spec.instance + ".save");
  const bool has_disk = !spec.image.disk.empty();
  PHX_TRY(MakeDir(options_.state_dir / "run"));
  PHX_TRY(MakeDir(spec.guest_dir));
  {
    // Written first so that Destroy finds the files even if this process dies half-way.
    std::ofstream record(RunRecord(spec.instance), std::ios::trunc);
    record << overlay.string() << '\n' << save_clone.string() << '\n';
    if (!record) return ErrnoError("writing " + RunRecord(spec.instance).string());
  }
  bool domain_created = false;
  auto fail = [&](Error e) -> Result<InstanceInfo> {
    if (domain_created) {
      DomainRef d{virDomainLookupByName(c, spec.instance.c_str())};
      if (d.d != nullptr) {
        // The instance never ran as far as the caller knows: no stop event for it.
        std::lock_guard lock(mu_);
        reported_.insert(spec.instance);
      }
      if (d.d != nullptr) virDomainDestroy(d.d);
      virResetLastError();
    }
    RemoveOwnedFiles(spec.instance);
    return std::unexpected(e.Wrap("starting " + spec.instance));
  };
  {
    std::error_code ec;
    if (fs::exists(overlay, ec)) {
      // Not ours to delete: leave it and fail without touching it.
      fs::remove(RunRecord(spec.instance), ec);
      return AlreadyExists("overlay " + overlay.string() + " already exists");
    }
  }
  if (has_disk) {
    if (auto r = CreateOverlay(restore ? golden->overlay : spec.image.disk, overlay); !r) {
      return fail(r.error());
    }
  }
  const std::string uuid = NewUuid();
  const std::string genid = NewUuid();
  {
    std::lock_guard lock(mu_);
    uuids_[spec.instance] = uuid;
  }
  const std::string xml =
      DomainXml(spec, DomainDetails{.accel = accel,
                                    .uuid = uuid,
                                    .genid = genid,
                                    .overlay = has_disk ? overlay : fs::path()});
  if (!restore) {
    DomainRef dom{virDomainCreateXML(c, xml.c_str(), VIR_DOMAIN_NONE)};
    domain_created = dom.d != nullptr;
    if (dom.d == nullptr) return fail(LibvirtError(c, "creating the domain"));
  } else {
    auto clone_started = SteadyClock::now();
    if (auto r = CloneSaveImage(golden->save, save_clone, spec.instance, uuid, genid); !r) {
      return fail(r.error());
    }
    auto restore_started = SteadyClock::now();
    int rc = virDomainRestoreFlags(c, save_clone.c_str(), xml.c_str(), VIR_DOMAIN_SAVE_RUNNING);
    Error restore_error;
    if (rc < 0) restore_error = LibvirtError(c, "restoring the golden snapshot");
    std::error_code ec;
    fs::remove(save_clone, ec);
    // Even a failed restore may have left a domain behind.
    domain_created = true;
    if (rc < 0) return fail(restore_error);
    spdlog::info(
        "libvirt runtime: {} restored: clone {} ms, restore {} ms", spec.instance,
        std::chrono::duration_cast<milliseconds>(restore_started - clone_started).count(),
        std::chrono::duration_cast<milliseconds>(SteadyClock::now() - restore_started).count());
  }
  InstanceInfo info;
  info.instance = spec.instance;
  info.pid = ReadQemuPid(spec.instance).value_or(0);
  info.boot = restore ? BootMode::kSnapshot : BootMode::kCold;
  info.accelerator = std::string(AcceleratorName(accel));
  info.start_duration = std::chrono::duration_cast<milliseconds>(SteadyClock::now() - started);
  spdlog::info("libvirt runtime: {} running ({}, {}, pid {}) after {} ms", spec.instance,
               BootModeName(info.boot), info.accelerator, info.pid, info.start_duration.count());
  WatchQemu(spec.instance, info.pid);
  return info;
}

Result<void> LibvirtRuntime::Stop(const std::string& instance, milliseconds grace) {
  auto conn = Conn();
  if (!conn) return std::unexpected(conn.error());
  virConnectPtr c = conn->get();
  DomainRef dom{virDomainLookupByName(c, instance.c_str())};
  if (dom.d == nullptr) {
    if (LastLibvirtCode() == VIR_ERR_NO_DOMAIN) return NotFound("no instance " + instance);
    return std::unexpected(LibvirtError(c, "looking up " + instance));
  }
  {
    std::lock_guard lock(mu_);
    stopping_.insert(instance);
  }
  if (virDomainShutdown(dom.d) < 0) {
    spdlog::info("libvirt runtime: shutdown request to {} failed: {}", instance,
                 LastLibvirtMessage());
  }
  const auto deadline = SteadyClock::now() + grace;
  while (SteadyClock::now() < deadline) {
    if (virDomainIsActive(dom.d) != 1) return {};
    std::this_thread::sleep_for(kPollInterval);
  }
  if (virDomainDestroy(dom.d) < 0) {
    int code = LastLibvirtCode();
    if (code != VIR_ERR_NO_DOMAIN && code != VIR_ERR_OPERATION_INVALID) {
      return std::unexpected(LibvirtError(c, "destroying " + instance));
    }
  }
  return {};
}

Result<void> LibvirtRuntime::Destroy(const std::string& instance) {
  if (!instance.starts_with(kInstancePrefix) || instance.find('/') != std::string::npos) {
    return InvalidArgument("instance", "not a Phoenix instance name");
  }
  if (QemuExited(instance).value_or(false)) {
    // libvirt is tearing the domain down (or is about to: QEMU's monitor socket is closed) and
    // every call on it, lookup included, blocks until it is done: 1.2-2 s measured here. It
    // removes the transient domain by itself, so only our files are left to remove.
    {
      std::lock_guard lock(mu_);
      stopping_.insert(instance);
    }
    spdlog::info("libvirt runtime: {}: QEMU already exited; libvirt removes the domain", instance);
    RemoveOwnedFiles(instance);
    PostClosePidWatch(instance);
    ForgetUuid(instance);
    return {};
  }
  auto conn = Conn();
  if (!conn) return std::unexpected(conn.error());
  virConnectPtr c = conn->get();
  DomainRef dom{virDomainLookupByName(c, instance.c_str())};
  if (dom.d != nullptr) {
    {
      std::lock_guard lock(mu_);
      stopping_.insert(instance);
    }
    if (virDomainDestroy(dom.d) < 0) {
      int code = LastLibvirtCode();
      if (code != VIR_ERR_NO_DOMAIN && code != VIR_ERR_OPERATION_INVALID) {
        return std::unexpected(LibvirtError(c, "destroying " + instance));
      }
    }
  } else if (LastLibvirtCode() != VIR_ERR_NO_DOMAIN) {
    return std::unexpected(LibvirtError(c, "looking up " + instance));
  }
  virResetLastError();
  RemoveOwnedFiles(instance);
  PostClosePidWatch(instance);
  ForgetUuid(instance);
  return {};
}

void LibvirtRuntime::ForgetUuid(const std::string& instance) {
  std::lock_guard lock(mu_);
  uuids_.erase(instance);
}

Result<int> LibvirtRuntime::Kill(const std::string& instance) {
  auto conn = Conn();
  if (!conn) return std::unexpected(conn.error());
  auto pid = ReadQemuPid(instance);
  if (!pid || !IsQemuOf(*pid, instance)) {
    return NotFound("no running QEMU process for instance " + instance);
  }
  {
    std::lock_guard lock(mu_);
    killed_.insert(instance);
  }
  if (::kill(*pid, SIGKILL) != 0) {
    std::lock_guard lock(mu_);
    killed_.erase(instance);
    return ErrnoError(fmt::format("kill -9 {} (QEMU of {})", *pid, instance));
  }
  return *pid;
}

Result<std::vector<InstanceStatus>> LibvirtRuntime::List() {
  auto conn = Conn();
  if (!conn) return std::unexpected(conn.error());
  virConnectPtr c = conn->get();
  virDomainPtr* doms = nullptr;
  int n = virConnectListAllDomains(c, &doms, 0);
  if (n < 0) return std::unexpected(LibvirtError(c, "listing domains"));
  std::vector<InstanceStatus> out;
  for (int i = 0; i < n; ++i) {
    DomainRef d{doms[i]};
    const char* name = virDomainGetName(d.d);
    if (name == nullptr || !std::string_view(name).starts_with(kInstancePrefix)) continue;
    InstanceStatus s;
    s.instance = name;
    s.running = virDomainIsActive(d.d) == 1;
    if (char* md = virDomainGetMetadata(d.d, VIR_DOMAIN_METADATA_ELEMENT,
                                        std::string(kMetadataNamespace).c_str(), 0)) {
      s.guest_id = ParseMetadata(md).guest_id;
      free(md);
    }
    virResetLastError();
    if (s.running) s.pid = ReadQemuPid(s.instance).value_or(0);
    if (s.running && s.pid > 0) WatchQemu(s.instance, s.pid);  // re-adoption
    out.push_back(std::move(s));
  }
  free(doms);
  return out;
}

}  // namespace phoenix::agent::libvirt
