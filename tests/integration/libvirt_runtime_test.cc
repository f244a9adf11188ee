// LibvirtRuntime against the real libvirtd and QEMU with the demo image: cold boot, crash
// detection, golden snapshot, several instances restored from one snapshot at once, isolation of
// their disks, and cleanup. Prints the boot/restore timings it measures.
//
// Environment: PHOENIX_DEMO_IMAGE_DIR (built on demand with PHOENIX_DEMO_RECIPE when missing),
// PHOENIX_TEST_TMP (scratch root), PHOENIX_LIBVIRT_ACCEL=kvm|tcg to override KVM detection.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "agent/runtime/libvirt/libvirt_runtime.h"
#include "tests/integration/support/http.h"
#include "tests/integration/support/process.h"

namespace phoenix::agent::libvirt {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// SIGKILL to kStopped: measured 154-159 ms here under TCG (the pidfd fires ~7 ms after the kill,
// then libvirt, busy tearing the domain down, does not answer within the runtime's 150 ms wait);
// libvirt's own event alone takes 1.2-2 s.
constexpr long kCrashNoticedWithinMs = 500;
// Destroy of an instance whose QEMU is already dead: measured 0 ms (no libvirt call); waiting for
// libvirt took up to 2 s.
constexpr long kDestroyDeadWithinMs = 250;
// Long enough for libvirt's own (late) STOPPED event to have arrived.
constexpr auto kLibvirtEventSettle = 3s;

std::string Env(const char* name, std::string fallback = {}) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

long Ms(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

uint16_t FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  PHX_CHECK(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  PHX_CHECK(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  PHX_CHECK(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::map<std::string, std::string> ReadManifest(const fs::path& file) {
  std::map<std::string, std::string> m;
  std::ifstream f(file);
  for (std::string line; std::getline(f, line);) {
    auto eq = line.find('=');
    if (eq != std::string::npos) m[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return m;
}

bool FileContains(const fs::path& p, const std::string& needle) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str().find(needle) != std::string::npos;
}

template <typename Pred>
bool WaitFor(Pred pred, std::chrono::milliseconds limit, std::chrono::milliseconds step = 100ms) {
  auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(step);
  }
  return pred();
}

// The pids watched through pidfds open in this process (-1 for a process that has exited), from
// /proc/self/fdinfo: how the runtime's pidfd handling is checked for leaks.
std::vector<int> PidfdPids() {
  std::vector<int> pids;
  for (const auto& e : fs::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    if (fs::read_symlink(e.path(), ec).string() != "anon_inode:[pidfd]") continue;
    std::ifstream info("/proc/self/fdinfo/" + e.path().filename().string());
    for (std::string line; std::getline(info, line);) {
      if (line.starts_with("Pid:")) pids.push_back(std::stoi(line.substr(4)));
    }
  }
  return pids;
}

// Pidfds on `pid`; List() may open a duplicate for a moment before the io thread drops it.
long PidfdsOn(int pid, long want) {
  auto count = [&] { return static_cast<long>(std::ranges::count(PidfdPids(), pid)); };
  auto deadline = Clock::now() + 2s;
  while (count() != want && Clock::now() < deadline) std::this_thread::sleep_for(20ms);
  return count();
}

bool Healthy(uint16_t port) {
  auto r = phoenix::testing::HttpGet(port, "/health", 2s);
  return r && r->status == 200;
}

// A Unix-socket proxy in front of libvirtd's socket: stopping it cuts this test's connection
// without disturbing libvirtd or anyone else using it.
class UnixProxy {
 public:
  UnixProxy(fs::path listen, fs::path target)
      : listen_(std::move(listen)), target_(std::move(target)) {}
  ~UnixProxy() { Stop(); }

  void Start() {
    fs::remove(listen_);
    listener_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    PHX_CHECK(listener_ >= 0);
    sockaddr_un addr = Addr(listen_);
    PHX_CHECK(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    PHX_CHECK(::listen(listener_, 16) == 0);
    PHX_CHECK(::pipe2(wake_, O_CLOEXEC) == 0);
    thread_ = std::thread([this] { Run(); });
  }

  void Stop() {
    if (!thread_.joinable()) return;
    PHX_CHECK(::write(wake_[1], "x", 1) == 1);
    thread_.join();
    for (int fd : {listener_, wake_[0], wake_[1]}) ::close(fd);
  }

 private:
  static sockaddr_un Addr(const fs::path& p) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    PHX_CHECK(p.string().size() < sizeof addr.sun_path);
    std::strcpy(addr.sun_path, p.c_str());
    return addr;
  }

  void Run() {
    std::vector<std::pair<int, int>> pairs;  // client, upstream
    for (;;) {
      std::vector<pollfd> fds{{wake_[0], POLLIN, 0}, {listener_, POLLIN, 0}};
      for (auto [a, b] : pairs) {
        fds.push_back({a, POLLIN, 0});
        fds.push_back({b, POLLIN, 0});
      }
      if (::poll(fds.data(), fds.size(), 1000) < 0) continue;
      if (fds[0].revents) break;
      const size_t polled = pairs.size();  // a pair accepted below was not polled yet
      if (fds[1].revents & POLLIN) {
        int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        int up = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr = Addr(target_);
        if (client >= 0 && up >= 0 &&
            ::connect(up, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
          pairs.emplace_back(client, up);
        } else {
          ::close(client);
          ::close(up);
        }
      }
      std::vector<std::pair<int, int>> alive;
      for (size_t i = 0; i < pairs.size(); ++i) {
        bool ok = i >= polled ||
                  (Pump(fds[2 + 2 * i], pairs[i].second) && Pump(fds[3 + 2 * i], pairs[i].first));
        if (ok) {
          alive.push_back(pairs[i]);
        } else {
          ::close(pairs[i].first);
          ::close(pairs[i].second);
        }
      }
      pairs = std::move(alive);
    }
    for (auto [a, b] : pairs) {
      ::close(a);
      ::close(b);
    }
  }

  // Copies what `from` has to `to`; false when the pair is finished.
  static bool Pump(const pollfd& from, int to) {
    if (from.revents == 0) return true;
    char buf[65536];
    ssize_t n = ::read(from.fd, buf, sizeof buf);
    if (n <= 0) return false;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = ::write(to, buf + done, static_cast<size_t>(n - done));
      if (w <= 0) return false;
      done += w;
    }
    return true;
  }

  fs::path listen_, target_;
  int listener_ = -1;
  int wake_[2] = {-1, -1};
  std::thread thread_;
};

class LibvirtRuntimeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    work_ =
        std::make_unique<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>(
            io_.get_executor());
    io_thread_ = std::thread([] { io_.run(); });
    root_ = fs::path(Env("PHOENIX_TEST_TMP", "/var/tmp")) /
            ("libvirt_runtime_test." + std::to_string(::getpid()));
    fs::create_directories(root_);
    // QEMU runs as libvirt-qemu: it must reach overlays, logs and the golden snapshot.
    for (fs::path p = root_; p != p.root_path(); p = p.parent_path()) {
      fs::permissions(p, fs::perms::others_exec | fs::perms::group_exec, fs::perm_options::add);
    }
    LibvirtRuntimeOptions options;
    options.state_dir = root_ / "state";
    std::string accel = Env("PHOENIX_LIBVIRT_ACCEL");
    if (accel == "tcg") options.force_accelerator = Accelerator::kTcg;
    if (accel == "kvm") options.force_accelerator = Accelerator::kKvm;
    runtime_ = std::make_unique<LibvirtRuntime>(io_, options);
    runtime_->Watch([](const RuntimeEvent& e) {
      std::lock_guard lock(events_mu_);
      events_.push_back(e);
      events_cv_.notify_all();
    });
  }

  static void TearDownTestSuite() {
    // Destroy the runtime on the io thread, as its contract asks.
    std::promise<void> done;
    boost::asio::post(io_, [&] {
      runtime_.reset();
      done.set_value();
    });
    done.get_future().wait();
    work_.reset();
    io_.stop();
    io_thread_.join();
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  void SetUp() override {
    if (!runtime_->Available()) {
      GTEST_SKIP() << "libvirtd is not reachable (" << runtime_->Describe()
                   << "); run `tools/libvirtd start` (tools/test does) to run this test";
    }
    fs::path dir = Env("PHOENIX_DEMO_IMAGE_DIR");
    ASSERT_FALSE(dir.empty()) << "PHOENIX_DEMO_IMAGE_DIR is not set (ctest sets it)";
    if (!fs::exists(dir / "manifest.env")) {
      std::string recipe = Env("PHOENIX_DEMO_RECIPE");
      ASSERT_FALSE(recipe.empty()) << "no demo image at " << dir << " and no PHOENIX_DEMO_RECIPE";
      auto r = phoenix::testing::RunCommand({recipe, dir.string()});
      ASSERT_EQ(r.exit_code, 0) << "building the demo image failed:\n" << r.output;
    }
    auto m = ReadManifest(dir / "manifest.env");
    image_.image_id = "sha256:libvirt-runtime-test-demo";
    image_.kernel = dir / m["KERNEL"];
    image_.initrd = dir / m["INITRD"];
    image_.disk = dir / m["DISK"];
    image_.cmdline = m["CMDLINE"];
    image_.ready_marker = m["READY_MARKER"];
    ASSERT_FALSE(image_.ready_marker.empty());
    std::cout << "[ accel    ] " << runtime_->Describe() << "\n";
  }

  InstanceSpec Spec(const std::string& suffix, BootMode mode) {
    InstanceSpec s;
    s.instance = "phx-lvtest-" + std::to_string(::getpid()) + "-" + suffix;
    s.guest_id = "guest-" + suffix;
    s.guest_name = "lvtest-" + suffix;
    s.image = image_;
    s.vcpus = 1;
    s.memory_mib = 256;
    s.ports = {{.guest_port = 80, .host_port = FreeLoopbackPort()}};
    s.guest_dir = root_ / "guests" / suffix;
    s.log_path = s.guest_dir / "console.log";
    s.boot_mode = mode;
    fs::create_directories(s.guest_dir);
    fs::permissions(s.guest_dir, fs::perms::others_exec | fs::perms::group_exec,
                    fs::perm_options::add);
    return s;
  }

  static int StopEvents(const std::string& instance) {
    std::lock_guard lock(events_mu_);
    return static_cast<int>(std::ranges::count_if(events_, [&](const RuntimeEvent& e) {
      return e.kind == RuntimeEvent::Kind::kStopped && e.instance == instance;
    }));
  }

  // Waits for the kStopped event of `instance`.
  static std::optional<RuntimeEvent> WaitStopped(const std::string& instance,
                                                 std::chrono::milliseconds limit) {
    std::unique_lock lock(events_mu_);
    std::optional<RuntimeEvent> found;
    events_cv_.wait_for(lock, limit, [&] {
      for (const auto& e : events_) {
        if (e.kind == RuntimeEvent::Kind::kStopped && e.instance == instance) found = e;
      }
      return found.has_value();
    });
    return found;
  }

  static bool Listed(const std::string& instance, std::string* guest_id = nullptr) {
    auto list = runtime_->List();
    EXPECT_TRUE(list.has_value()) << list.error().message;
    if (!list) return false;
    for (const auto& s : *list) {
      if (s.instance == instance) {
        if (guest_id) *guest_id = s.guest_id;
        return true;
      }
    }
    return false;
  }

  void ExpectGone(const InstanceSpec& s) {
    EXPECT_FALSE(Listed(s.instance)) << s.instance << " still exists";
    EXPECT_FALSE(fs::exists(s.guest_dir / (s.instance + ".qcow2"))) << "overlay left behind";
    EXPECT_FALSE(fs::exists(s.guest_dir / (s.instance + ".save"))) << "save clone left behind";
    EXPECT_FALSE(fs::exists(root_ / "state" / "run" / s.instance)) << "run record left behind";
  }

  static inline boost::asio::io_context io_;
  static inline std::unique_ptr<
      boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>
      work_;
  static inline std::thread io_thread_;
  static inline std::unique_ptr<LibvirtRuntime> runtime_;
  static inline fs::path root_;
  static inline std::mutex events_mu_;
  static inline std::condition_variable events_cv_;
  static inline std::vector<RuntimeEvent> events_;
  ImageArtifacts image_;
};

TEST_F(LibvirtRuntimeTest, StartWithMissingKernelLeavesNothingBehind) {
  InstanceSpec s = Spec("nokernel", BootMode::kCold);
  s.image.kernel = root_ / "no-such-kernel";
  auto r = runtime_->Start(s);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("no-such-kernel"), std::string::npos) << r.error().message;
  ExpectGone(s);
  // Only the agent's console log (appended across instances) may exist.
  std::string left;
  for (const auto& e : fs::directory_iterator(s.guest_dir)) {
    if (e.path() != s.log_path) left += e.path().filename().string() + " ";
  }
  EXPECT_EQ(left, "") << "left behind in the guest dir";
}

TEST_F(LibvirtRuntimeTest, ColdBootCrashGoldenSnapshotAndIsolatedRestores) {
  // ---- cold boot ----
  InstanceSpec cold = Spec("cold", BootMode::kCold);
  auto t0 = Clock::now();
  auto info = runtime_->Start(cold);
  ASSERT_TRUE(info.has_value()) << info.error().message;
  EXPECT_EQ(info->boot, BootMode::kCold);
  EXPECT_GT(info->pid, 0);
  ASSERT_TRUE(WaitFor([&] { return FileContains(cold.log_path, image_.ready_marker); }, 240s))
      << "no ready marker in " << cold.log_path;
  auto marker_ms = Ms(Clock::now() - t0);
  ASSERT_TRUE(WaitFor([&] { return Healthy(cold.ports[0].host_port); }, 60s, 200ms));
  auto healthy_ms = Ms(Clock::now() - t0);
  std::cout << "[ measure  ] " << info->accelerator << " cold boot: running after "
            << info->start_duration.count() << " ms, ready marker after " << marker_ms
            << " ms, HTTP healthy after " << healthy_ms << " ms\n";
  std::string guest_id;
  EXPECT_TRUE(Listed(cold.instance, &guest_id));
  EXPECT_EQ(guest_id, cold.guest_id);

  EXPECT_EQ(PidfdsOn(info->pid, 1), 1) << "the QEMU is watched once";

  // ---- crash drill: the pidfd notices at once, Destroy does not wait for libvirt ----
  auto kill_sent = Clock::now();
  auto killed = runtime_->Kill(cold.instance);
  ASSERT_TRUE(killed.has_value()) << killed.error().message;
  EXPECT_EQ(*killed, info->pid);
  auto stopped = WaitStopped(cold.instance, 30s);
  ASSERT_TRUE(stopped.has_value()) << "no stop event after SIGKILL";
  auto noticed_ms = Ms(Clock::now() - kill_sent);
  EXPECT_TRUE(stopped->crashed) << stopped->reason;
  EXPECT_NE(stopped->reason.find("SIGKILL"), std::string::npos) << stopped->reason;
  EXPECT_LT(noticed_ms, kCrashNoticedWithinMs) << "libvirt alone notices SIGKILL 1.2-2 s late";
  auto destroy_started = Clock::now();
  ASSERT_TRUE(runtime_->Destroy(cold.instance).has_value());
  const auto destroy_ms = Ms(Clock::now() - destroy_started);
  std::cout << "[ measure  ] SIGKILL to kStopped(crashed) " << noticed_ms
            << " ms; Destroy of the dead instance " << destroy_ms << " ms\n";
  EXPECT_LT(destroy_ms, kDestroyDeadWithinMs);
  EXPECT_FALSE(fs::exists(cold.guest_dir / (cold.instance + ".qcow2"))) << "overlay left behind";
  EXPECT_FALSE(fs::exists(root_ / "state" / "run" / cold.instance)) << "run record left behind";
  ASSERT_TRUE(runtime_->Destroy(cold.instance).has_value()) << "Destroy is idempotent";
  EXPECT_EQ(PidfdsOn(info->pid, 0), 0) << "pidfd left open";
  EXPECT_EQ(std::ranges::count(PidfdPids(), -1), 0) << "pidfd of an exited process left open";

  // ---- golden snapshot ----
  t0 = Clock::now();
  auto golden = runtime_->PrepareGolden(image_, 1, 256);
  ASSERT_TRUE(golden.has_value()) << golden.error().message;
  std::cout << "[ measure  ] PrepareGolden (boot to marker + save) " << Ms(Clock::now() - t0)
            << " ms\n";
  ASSERT_TRUE(runtime_->HasGolden(image_, 1, 256));
  t0 = Clock::now();
  ASSERT_TRUE(runtime_->PrepareGolden(image_, 1, 256).has_value());
  EXPECT_LT(Ms(Clock::now() - t0), 1000) << "second PrepareGolden must return at once";
  // The golden boot above started while libvirt still tore the killed domain down; by now libvirt
  // has removed it, and its own STOPPED event was not a second stop.
  ASSERT_TRUE(WaitFor([&] { return !Listed(cold.instance); }, 10s)) << "libvirt kept the domain";
  ExpectGone(cold);
  EXPECT_EQ(StopEvents(cold.instance), 1);

  // ---- two restores from one snapshot at once ----
  InstanceSpec a = Spec("snap-a", BootMode::kSnapshot);
  InstanceSpec b = Spec("snap-b", BootMode::kAuto);
  t0 = Clock::now();
  auto fa = std::async(std::launch::async, [&] { return runtime_->Start(a); });
  auto fb = std::async(std::launch::async, [&] { return runtime_->Start(b); });
  auto ia = fa.get();
  auto ib = fb.get();
  ASSERT_TRUE(ia.has_value()) << ia.error().message;
  ASSERT_TRUE(ib.has_value()) << ib.error().message;
  EXPECT_EQ(ia->boot, BootMode::kSnapshot);
  EXPECT_EQ(ib->boot, BootMode::kSnapshot);
  ASSERT_TRUE(WaitFor(
      [&] { return Healthy(a.ports[0].host_port) && Healthy(b.ports[0].host_port); }, 60s, 50ms));
  std::cout << "[ measure  ] " << ia->accelerator << " two concurrent restores: running after "
            << ia->start_duration.count() << " / " << ib->start_duration.count()
            << " ms, both HTTP healthy after " << Ms(Clock::now() - t0) << " ms\n";

  // ---- disks are private ----
  auto w = phoenix::testing::HttpGet(a.ports[0].host_port, "/cgi-bin/write?name=x&data=y");
  ASSERT_TRUE(w.has_value()) << w.error().message;
  EXPECT_EQ(w->status, 200) << w->body;
  auto ra = phoenix::testing::HttpGet(a.ports[0].host_port, "/cgi-bin/read?name=x");
  ASSERT_TRUE(ra.has_value());
  EXPECT_EQ(ra->status, 200);
  EXPECT_NE(ra->body.find('y'), std::string::npos) << ra->body;
  auto rb = phoenix::testing::HttpGet(b.ports[0].host_port, "/cgi-bin/read?name=x");
  ASSERT_TRUE(rb.has_value());
  EXPECT_EQ(rb->status, 404) << "written in a, visible in b: " << rb->body;

  InstanceSpec c = Spec("snap-c", BootMode::kAuto);
  t0 = Clock::now();
  auto ic = runtime_->Start(c);
  ASSERT_TRUE(ic.has_value()) << ic.error().message;
  EXPECT_EQ(ic->boot, BootMode::kSnapshot);
  ASSERT_TRUE(WaitFor([&] { return Healthy(c.ports[0].host_port); }, 60s, 20ms));
  std::cout << "[ measure  ] " << ic->accelerator << " single restore: running after "
            << ic->start_duration.count() << " ms, HTTP healthy after " << Ms(Clock::now() - t0)
            << " ms\n";
  auto rc = phoenix::testing::HttpGet(c.ports[0].host_port, "/cgi-bin/read?name=x");
  ASSERT_TRUE(rc.has_value());
  EXPECT_EQ(rc->status, 404) << "a fresh restored instance sees a's write: " << rc->body;

  EXPECT_TRUE(Listed(a.instance, &guest_id));
  EXPECT_EQ(guest_id, a.guest_id);
  for (const auto* i : {&*ia, &*ib, &*ic}) {
    EXPECT_EQ(PidfdsOn(i->pid, 1), 1) << "QEMU " << i->pid << " not watched once";
  }

  // ---- a restored instance killed and left alone: libvirt's late event is deduplicated ----
  kill_sent = Clock::now();
  ASSERT_TRUE(runtime_->Kill(c.instance).has_value());
  stopped = WaitStopped(c.instance, 30s);
  ASSERT_TRUE(stopped.has_value()) << "no stop event after SIGKILL";
  noticed_ms = Ms(Clock::now() - kill_sent);
  EXPECT_TRUE(stopped->crashed) << stopped->reason;
  EXPECT_LT(noticed_ms, kCrashNoticedWithinMs);
  ASSERT_TRUE(WaitFor([&] { return !Listed(c.instance); }, 30s)) << "libvirt never noticed";
  std::cout << "[ measure  ] restored instance: SIGKILL to kStopped(crashed) " << noticed_ms
            << " ms; libvirt removed the domain after " << Ms(Clock::now() - kill_sent) << " ms\n";
  std::this_thread::sleep_for(kLibvirtEventSettle);
  EXPECT_EQ(StopEvents(c.instance), 1) << "libvirt's STOPPED/FAILED reported a second time";

  ASSERT_TRUE(runtime_->Destroy(c.instance).has_value());
  ExpectGone(c);

  // ---- cleanup: our own destroys are not crashes ----
  for (const InstanceSpec* s : {&a, &b}) {
    ASSERT_TRUE(runtime_->Destroy(s->instance).has_value());
    ExpectGone(*s);
    auto ev = WaitStopped(s->instance, 10s);
    ASSERT_TRUE(ev.has_value()) << "no stop event for " << s->instance;
    EXPECT_FALSE(ev->crashed) << ev->reason;
  }
  std::this_thread::sleep_for(kLibvirtEventSettle);
  for (const InstanceSpec* s : {&a, &b}) EXPECT_EQ(StopEvents(s->instance), 1) << s->instance;
  for (const auto* i : {&*ia, &*ib, &*ic}) {
    EXPECT_EQ(PidfdsOn(i->pid, 0), 0) << "pidfd of " << i->pid << " left";
  }
  EXPECT_EQ(std::ranges::count(PidfdPids(), -1), 0) << "pidfd of an exited process left open";
}

TEST_F(LibvirtRuntimeTest, StopShutsDownCleanlyAndUnknownInstances) {
  EXPECT_EQ(runtime_->Stop("phx-lvtest-none", 100ms).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(runtime_->Kill("phx-lvtest-none").error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(runtime_->Destroy("phx-lvtest-none").has_value());

  InstanceSpec s = Spec("stop", BootMode::kAuto);
  auto info = runtime_->Start(s);
  ASSERT_TRUE(info.has_value()) << info.error().message;
  ASSERT_TRUE(WaitFor([&] { return Healthy(s.ports[0].host_port); }, 240s, 200ms));
  auto t0 = Clock::now();
  ASSERT_TRUE(runtime_->Stop(s.instance, 60s).has_value());
  std::cout << "[ measure  ] Stop (ACPI shutdown) took " << Ms(Clock::now() - t0) << " ms\n";
  auto ev = WaitStopped(s.instance, 10s);
  ASSERT_TRUE(ev.has_value());
  EXPECT_FALSE(ev->crashed) << ev->reason;
  EXPECT_FALSE(Listed(s.instance));
  EXPECT_TRUE(fs::exists(s.guest_dir / (s.instance + ".qcow2"))) << "Stop keeps the files";
  ASSERT_TRUE(runtime_->Destroy(s.instance).has_value());
  ExpectGone(s);
  std::this_thread::sleep_for(kLibvirtEventSettle);
  EXPECT_EQ(StopEvents(s.instance), 1);
}

// A power-off Phoenix did not ask for (ACPI shutdown from outside, as when the guest powers itself
// off): the QEMU exit the pidfd sees is not a crash, libvirt reports the clean shutdown once.
TEST_F(LibvirtRuntimeTest, OutsideAcpiShutdownIsNotACrash) {
  InstanceSpec s = Spec("acpi", BootMode::kAuto);
  auto info = runtime_->Start(s);
  ASSERT_TRUE(info.has_value()) << info.error().message;
  ASSERT_TRUE(WaitFor([&] { return Healthy(s.ports[0].host_port); }, 240s, 200ms));
  EXPECT_EQ(PidfdsOn(info->pid, 1), 1) << "the QEMU is watched";
  auto r = phoenix::testing::RunCommand({"virsh", "-c", "qemu:///system", "shutdown", s.instance});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto ev = WaitStopped(s.instance, 60s);
  ASSERT_TRUE(ev.has_value()) << "no stop event after the ACPI shutdown";
  EXPECT_FALSE(ev->crashed) << ev->reason;
  EXPECT_EQ(ev->reason, "guest shut down");
  std::this_thread::sleep_for(kLibvirtEventSettle);
  EXPECT_EQ(StopEvents(s.instance), 1);
  EXPECT_FALSE(phoenix::testing::ProcessAlive(info->pid));
  EXPECT_EQ(PidfdsOn(info->pid, 0), 0) << "pidfd left open";
  ASSERT_TRUE(runtime_->Destroy(s.instance).has_value());
  ExpectGone(s);
}

// Losing libvirtd: kDisconnected, kUnavailable with a hint while away, then reconnection with
// kConnected once it is back.
TEST_F(LibvirtRuntimeTest, ReconnectsAfterLosingLibvirtd) {
  UnixProxy proxy(root_ / "libvirt-proxy.sock", "/run/libvirt/libvirt-sock");
  proxy.Start();
  // A running instance of the suite's runtime: the second runtime finds and watches it too.
  InstanceSpec s = Spec("reconnect", BootMode::kAuto);
  auto info = runtime_->Start(s);
  ASSERT_TRUE(info.has_value()) << info.error().message;
  const auto pidfds_before = PidfdPids().size();
  LibvirtRuntimeOptions options;
  options.uri = "qemu+unix:///system?socket=" + (root_ / "libvirt-proxy.sock").string();
  options.state_dir = root_ / "reconnect-state";
  options.reconnect_min = 100ms;
  options.reconnect_max = 400ms;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<RuntimeEvent::Kind> kinds;
  auto rt = std::make_unique<LibvirtRuntime>(io_, options);
  rt->Watch([&](const RuntimeEvent& e) {
    std::lock_guard lock(mu);
    kinds.push_back(e.kind);
    cv.notify_all();
  });
  auto wait_kind = [&](RuntimeEvent::Kind k) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, 20s, [&] { return std::ranges::count(kinds, k) > 0; });
  };
  ASSERT_TRUE(rt->Available()) << rt->Describe();
  ASSERT_TRUE(rt->List().has_value());

  auto cut = Clock::now();
  proxy.Stop();
  ASSERT_TRUE(wait_kind(RuntimeEvent::Kind::kDisconnected)) << "no kDisconnected";
  std::cout << "[ measure  ] disconnect noticed after " << Ms(Clock::now() - cut) << " ms\n";
  EXPECT_FALSE(rt->Available());
  auto list = rt->List();
  ASSERT_FALSE(list.has_value());
  EXPECT_EQ(list.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(list.error().message.find("tools/libvirtd start"), std::string::npos)
      << list.error().message;
  EXPECT_EQ(rt->Start(Spec("offline", BootMode::kCold)).error().code, ErrorCode::kUnavailable);
  std::this_thread::sleep_for(500ms);  // a few failed attempts with backoff

  auto back = Clock::now();
  proxy.Start();
  ASSERT_TRUE(wait_kind(RuntimeEvent::Kind::kConnected)) << "no kConnected";
  std::cout << "[ measure  ] reconnected " << Ms(Clock::now() - back)
            << " ms after libvirtd came back\n";
  EXPECT_TRUE(rt->Available());
  EXPECT_TRUE(rt->List().has_value());
  // Found at connection, then again at reconnection and by List: one pidfd for it in `rt`.
  EXPECT_EQ(PidfdsOn(info->pid, 2), 2) << "the second runtime does not watch the QEMU once";

  std::promise<void> done;
  boost::asio::post(io_, [&] {
    rt.reset();
    done.set_value();
  });
  done.get_future().wait();
  EXPECT_EQ(PidfdPids().size(), pidfds_before) << "the destroyed runtime left pidfds open";
  ASSERT_TRUE(runtime_->Destroy(s.instance).has_value());
  ExpectGone(s);
}

}  // namespace
}  // namespace phoenix::agent::libvirt
