// OciRuntime against real crun/runc with the demo image's rootfs: the web app serving inside the
// instance's own network namespace, a crash (SIGKILL) reported once and restarts starting fresh
// from the golden rootfs, the memory limit OOM-killing a process, a clean Stop, re-adoption by a
// second runtime, failed Starts leaving nothing, and Destroy leaving no mount, cgroup, bundle or
// netns file. Prints the Start timings it measures.
//
// Environment: PHOENIX_DEMO_IMAGE_DIR (built on demand with PHOENIX_DEMO_RECIPE when missing),
// PHOENIX_TEST_TMP (scratch root). Needs root (mounts, namespaces, cgroups).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <future>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

#include "agent/process/process.h"
#include "agent/runtime/oci/bundle_config.h"
#include "agent/runtime/oci/cgroup_layout.h"
#include "agent/runtime/oci/oci_runtime.h"
#include "tests/integration/support/http.h"
#include "tests/integration/support/process.h"

namespace phoenix::agent::oci {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string Env(const char* name, std::string fallback = {}) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

long Ms(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
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

std::string ReadAll(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

template <typename Pred>
bool WaitFor(Pred pred, std::chrono::milliseconds limit, std::chrono::milliseconds step = 20ms) {
  auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(step);
  }
  return pred();
}

// GET http://127.0.0.1:<port><path> from inside the network namespace `netns`: a socket belongs
// to the namespace of the thread that creates it, so a helper thread enters it first.
Result<phoenix::testing::HttpResponse> HttpGetIn(const fs::path& netns, uint16_t port,
                                                 const std::string& path) {
  Result<phoenix::testing::HttpResponse> result = Internal("not run");
  std::thread t([&] {
    int fd = ::open(netns.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      result = ErrnoError("open " + netns.string());
      return;
    }
    int rc = ::setns(fd, CLONE_NEWNET);
    int err = errno;
    ::close(fd);
    if (rc != 0) {
      result = ErrnoError("setns " + netns.string(), err);
      return;
    }
    result = phoenix::testing::HttpGet(port, path, 2s);
  });
  t.join();
  return result;
}

bool MountinfoMentions(const std::string& needle) {
  return ReadAll("/proc/self/mountinfo").find(needle) != std::string::npos;
}

class OciRuntimeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    work_ =
        std::make_unique<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>(
            io_.get_executor());
    io_thread_ = std::thread([] { io_.run(); });
    root_ = fs::path(Env("PHOENIX_TEST_TMP", "/var/tmp")) /
            ("oci_runtime_test." + std::to_string(::getpid()));
    fs::create_directories(root_);
    runtime_ = MakeRuntime("");
  }

  static void TearDownTestSuite() {
    DestroyOnIo(runtime_);
    work_.reset();
    io_.stop();
    io_thread_.join();
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  static std::unique_ptr<OciRuntime> MakeRuntime(const std::string& tool) {
    OciRuntimeOptions options;
    options.state_dir = root_ / "state";
    options.oci_tool = tool;
    auto rt = std::make_unique<OciRuntime>(io_, options);
    rt->Watch([](const RuntimeEvent& e) {
      std::lock_guard lock(events_mu_);
      events_.push_back(e);
      events_cv_.notify_all();
    });
    return rt;
  }

  // The runtime's contract: destroy it on the io thread.
  static void DestroyOnIo(std::unique_ptr<OciRuntime>& rt) {
    std::promise<void> done;
    boost::asio::post(io_, [&] {
      rt.reset();
      done.set_value();
    });
    done.get_future().wait();
  }

  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (mounts, namespaces, cgroups)";
    if (!runtime_->Available()) {
      GTEST_SKIP() << runtime_->Describe() << "; run tools/install-deps to install crun and runc";
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
    image_ = ImageArtifacts{};
    image_.image_id = "sha256:oci-runtime-test-demo";
    image_.rootfs = dir / m["ROOTFS"];
    image_.ready_marker = m["READY_MARKER"];
    std::istringstream cmd(m["COMMAND"]);
    for (std::string w; cmd >> w;) image_.command.push_back(w);
    ASSERT_FALSE(image_.command.empty());
    ASSERT_TRUE(fs::is_directory(image_.rootfs)) << image_.rootfs;
    std::cout << "[ runtime  ] " << runtime_->Describe() << "\n";
  }

  InstanceSpec Spec(const std::string& suffix) {
    InstanceSpec s;
    s.instance = "phx-ocitest-" + std::to_string(::getpid()) + "-" + suffix;
    s.guest_id = "guest-" + suffix;
    s.guest_name = "ocitest-" + suffix;
    s.image = image_;
    s.vcpus = 1;
    s.memory_mib = 64;
    s.ports = {{.guest_port = 80, .host_port = 0}};
    s.guest_dir = root_ / "guests" / suffix;
    s.log_path = s.guest_dir / "console.log";
    return s;
  }

  static std::optional<RuntimeEvent> WaitStopEvent(const std::string& instance,
                                                   std::chrono::milliseconds limit) {
    std::unique_lock lock(events_mu_);
    std::optional<RuntimeEvent> found;
    events_cv_.wait_for(lock, limit, [&] {
      for (const auto& e : events_) {
        if (e.kind == RuntimeEvent::Kind::kStopped && e.instance == instance) {
          found = e;
          return true;
        }
      }
      return false;
    });
    return found;
  }

  static int StopEvents(const std::string& instance) {
    std::lock_guard lock(events_mu_);
    return static_cast<int>(std::ranges::count_if(events_, [&](const RuntimeEvent& e) {
      return e.kind == RuntimeEvent::Kind::kStopped && e.instance == instance;
    }));
  }

  // Nothing of the instance is left on the host.
  void ExpectNoLeftovers(OciRuntime& rt, const InstanceSpec& spec) {
    const fs::path bundle = spec.guest_dir / spec.instance;
    EXPECT_FALSE(MountinfoMentions(bundle.string())) << "overlay still mounted";
    EXPECT_FALSE(MountinfoMentions(rt.NetnsFile(spec.instance).string())) << "netns still bound";
    EXPECT_TRUE(ExistingCgroupDirs("/sys/fs/cgroup", "/phoenix/" + spec.instance).empty());
    std::error_code ec;
    EXPECT_FALSE(fs::exists(bundle, ec)) << bundle;
    EXPECT_FALSE(fs::exists(rt.NetnsFile(spec.instance), ec));
    EXPECT_FALSE(fs::exists(rt.RunRecordFile(spec.instance), ec));
    auto state = RunCommand({rt.tool(), "state", spec.instance});
    ASSERT_TRUE(state.has_value());
    EXPECT_FALSE(state->ok()) << "container still known to " << rt.tool() << ": " << state->out;
    auto list = rt.List();
    ASSERT_TRUE(list.has_value()) << list.error().message;
    for (const auto& s : *list) EXPECT_NE(s.instance, spec.instance);
  }

  // Starts the demo app and waits until it answers /health in its netns; prints timings.
  InstanceInfo StartServing(OciRuntime& rt, const InstanceSpec& spec) {
    const auto t0 = Clock::now();
    auto info = rt.Start(spec);
    EXPECT_TRUE(info.has_value()) << info.error().message;
    if (!info) return {};
    const auto running = Clock::now();
    EXPECT_EQ(info->netns, rt.NetnsFile(spec.instance));
    EXPECT_GT(info->pid, 0);
    bool marker = WaitFor(
        [&] { return ReadAll(spec.log_path).find(image_.ready_marker) != std::string::npos; }, 15s);
    const auto marked = Clock::now();
    EXPECT_TRUE(marker) << "no ready marker; log:\n" << ReadAll(spec.log_path);
    bool healthy = WaitFor(
        [&] {
          auto r = HttpGetIn(info->netns, 80, "/health");
          return r && r->status == 200;
        },
        15s);
    const auto serving = Clock::now();
    EXPECT_TRUE(healthy) << "log:\n" << ReadAll(spec.log_path);
    std::cout << "[ timing   ] " << rt.tool() << " " << spec.instance
              << ": Start returned (running) after " << Ms(running - t0) << " ms (reported "
              << info->start_duration.count() << " ms), ready marker after " << Ms(marked - t0)
              << " ms, HTTP /health 200 after " << Ms(serving - t0) << " ms\n";
    return *info;
  }

  static inline boost::asio::io_context io_;
  static inline std::unique_ptr<
      boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>
      work_;
  static inline std::thread io_thread_;
  static inline fs::path root_;
  static inline std::unique_ptr<OciRuntime> runtime_;
  static inline std::mutex events_mu_;
  static inline std::condition_variable events_cv_;
  static inline std::vector<RuntimeEvent> events_;
  ImageArtifacts image_;
};

TEST_F(OciRuntimeTest, ServesInItsNetnsCrashIsReportedOnceAndRestartStartsFresh) {
  InstanceSpec a = Spec("a");
  InstanceInfo info = StartServing(*runtime_, a);
  ASSERT_GT(info.pid, 0);

  // Listed with its guest id, pid and netns.
  auto list = runtime_->List();
  ASSERT_TRUE(list.has_value()) << list.error().message;
  auto it = std::ranges::find_if(*list, [&](const auto& s) { return s.instance == a.instance; });
  ASSERT_NE(it, list->end());
  EXPECT_TRUE(it->running);
  EXPECT_EQ(it->guest_id, a.guest_id);
  EXPECT_EQ(it->pid, info.pid);
  EXPECT_EQ(it->netns, info.netns);

  // The guest runs as nobody, writes through its overlay, and the golden rootfs stays untouched.
  auto w = HttpGetIn(info.netns, 80, "/cgi-bin/write?name=x&data=y");
  ASSERT_TRUE(w.has_value()) << w.error().message;
  ASSERT_EQ(w->status, 200) << w->body;
  auto r = HttpGetIn(info.netns, 80, "/cgi-bin/read?name=x");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body.substr(0, 1), "y");
  EXPECT_TRUE(fs::exists(a.guest_dir / a.instance / "upper" / "data" / "x"));
  EXPECT_FALSE(fs::exists(image_.rootfs / "data" / "x"));
  // Nobody inside its own user namespace: on the host, an id of its own range above 2^31.
  std::string status = ReadAll("/proc/" + std::to_string(info.pid) + "/status");
  if (runtime_->tool() == "crun") {
    std::istringstream map(ReadAll("/proc/" + std::to_string(info.pid) + "/uid_map"));
    uint64_t inside = 1, base = 0, size = 0;
    map >> inside >> base >> size;
    EXPECT_EQ(inside, 0u);
    EXPECT_GE(base, kUsernsFirstBase);
    EXPECT_EQ(size, kUsernsSize);
    const std::string host = std::to_string(base + 65534);
    EXPECT_NE(status.find("Uid:\t" + host + "\t" + host + "\t" + host + "\t" + host),
              std::string::npos)
        << status;
    struct stat data {};
    ASSERT_EQ(::stat((a.guest_dir / a.instance / "upper" / "data").c_str(), &data), 0);
    EXPECT_EQ(data.st_uid, base + 65534) << "its writable dirs belong to its own host id";
  } else {
    EXPECT_NE(status.find("Uid:\t65534\t65534\t65534\t65534"), std::string::npos) << status;
  }
  EXPECT_NE(status.find("CapEff:\t0000000000000000"), std::string::npos) << status;

  // Chaos: SIGKILL of the init is a crash, reported exactly once.
  auto killed = runtime_->Kill(a.instance);
  ASSERT_TRUE(killed.has_value()) << killed.error().message;
  EXPECT_EQ(*killed, info.pid);
  auto ev = WaitStopEvent(a.instance, 10s);
  ASSERT_TRUE(ev.has_value()) << "no kStopped event after Kill";
  EXPECT_TRUE(ev->crashed);
  std::cout << "[ event    ] " << ev->reason << "\n";
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(StopEvents(a.instance), 1);
  auto after = runtime_->List();
  ASSERT_TRUE(after.has_value());
  it = std::ranges::find_if(*after, [&](const auto& s) { return s.instance == a.instance; });
  ASSERT_NE(it, after->end());
  EXPECT_FALSE(it->running);

  // The restart is a new instance on a fresh upper dir: the file is gone.
  InstanceSpec b = Spec("b");
  b.guest_dir = a.guest_dir;  // same guest, same log
  b.log_path = a.log_path;
  InstanceInfo info_b = StartServing(*runtime_, b);
  ASSERT_GT(info_b.pid, 0);
  auto gone = HttpGetIn(info_b.netns, 80, "/cgi-bin/read?name=x");
  ASSERT_TRUE(gone.has_value()) << gone.error().message;
  EXPECT_NE(gone->status, 200) << gone->body;

  ASSERT_TRUE(runtime_->Destroy(a.instance).has_value());
  ExpectNoLeftovers(*runtime_, a);
  auto destroyed = runtime_->Destroy(b.instance);
  ASSERT_TRUE(destroyed.has_value()) << destroyed.error().message;
  auto ev_b = WaitStopEvent(b.instance, 10s);
  ASSERT_TRUE(ev_b.has_value());
  EXPECT_FALSE(ev_b->crashed) << ev_b->reason;
  ExpectNoLeftovers(*runtime_, b);
  // Idempotent.
  EXPECT_TRUE(runtime_->Destroy(b.instance).has_value());
  EXPECT_EQ(StopEvents(b.instance), 1);
}

TEST_F(OciRuntimeTest, MemoryLimitOomKills) {
  InstanceSpec s = Spec("oom");
  s.memory_mib = 64;
  s.command = {"sh", "-c", "head -c 200m /dev/zero | tail"};
  auto info = runtime_->Start(s);
  ASSERT_TRUE(info.has_value()) << info.error().message;
  auto ev = WaitStopEvent(s.instance, 30s);
  ASSERT_TRUE(ev.has_value()) << "the allocation was not stopped; log:\n" << ReadAll(s.log_path);
  EXPECT_TRUE(ev->crashed);
  EXPECT_NE(ev->reason.find("out of memory"), std::string::npos) << ev->reason;
  std::cout << "[ event    ] " << ev->reason << "\n";
  ASSERT_TRUE(runtime_->Destroy(s.instance).has_value());
  ExpectNoLeftovers(*runtime_, s);
}

TEST_F(OciRuntimeTest, CleanStopAndReadoptionByANewRuntime) {
  InstanceSpec s = Spec("stop");
  InstanceInfo info = StartServing(*runtime_, s);
  ASSERT_GT(info.pid, 0);
  // A second runtime on the same state dir (an agent restart) adopts the running container.
  std::unique_ptr<OciRuntime> second = MakeRuntime(runtime_->tool());
  auto list = second->List();
  ASSERT_TRUE(list.has_value()) << list.error().message;
  auto it = std::ranges::find_if(*list, [&](const auto& x) { return x.instance == s.instance; });
  ASSERT_NE(it, list->end());
  EXPECT_TRUE(it->running);
  EXPECT_EQ(it->guest_id, s.guest_id);
  EXPECT_EQ(it->netns, info.netns);
  DestroyOnIo(runtime_);  // the "old agent" goes away; the container keeps running
  runtime_ = std::move(second);
  auto r = HttpGetIn(info.netns, 80, "/health");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  // httpd as PID 1 ignores SIGTERM (no handler): Stop escalates to SIGKILL after the grace.
  const auto t0 = Clock::now();
  auto stopped = runtime_->Stop(s.instance, 500ms);
  ASSERT_TRUE(stopped.has_value()) << stopped.error().message;
  std::cout << "[ timing   ] Stop took " << Ms(Clock::now() - t0) << " ms\n";
  auto ev = WaitStopEvent(s.instance, 10s);
  ASSERT_TRUE(ev.has_value()) << "the adopting runtime reported no stop";
  EXPECT_FALSE(ev->crashed) << ev->reason;
  std::cout << "[ event    ] " << ev->reason << "\n";
  // Stop keeps the files; Destroy removes them.
  EXPECT_TRUE(fs::exists(s.guest_dir / s.instance / "config.json"));
  ASSERT_TRUE(runtime_->Destroy(s.instance).has_value());
  ExpectNoLeftovers(*runtime_, s);
  EXPECT_EQ(StopEvents(s.instance), 1);
}

TEST_F(OciRuntimeTest, FailedStartsLeaveNothingBehind) {
  InstanceSpec missing = Spec("norootfs");
  missing.image.rootfs = root_ / "no-such-rootfs";
  auto r = runtime_->Start(missing);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound) << r.error().message;
  std::cout << "[ error    ] " << r.error().message << "\n";
  ExpectNoLeftovers(*runtime_, missing);

  // Fails only in crun/runc, after the netns, overlay and bundle exist.
  InstanceSpec bad = Spec("nocmd");
  bad.command = {"/bin/no-such-program"};
  r = runtime_->Start(bad);
  ASSERT_FALSE(r.has_value());
  std::cout << "[ error    ] " << r.error().message << "\n";
  ExpectNoLeftovers(*runtime_, bad);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(StopEvents(bad.instance), 0);
}

TEST_F(OciRuntimeTest, TheOtherToolWorksToo) {
  const std::string other = runtime_->tool() == "crun" ? "runc" : "crun";
  if (!FindInPath(other)) GTEST_SKIP() << other << " is not installed";
  std::unique_ptr<OciRuntime> rt = MakeRuntime(other);
  ASSERT_TRUE(rt->Available()) << rt->Describe();
  std::cout << "[ runtime  ] " << rt->Describe() << "\n";
  InstanceSpec s = Spec("other");
  InstanceInfo info = StartServing(*rt, s);
  ASSERT_GT(info.pid, 0);
  auto killed = rt->Kill(s.instance);
  ASSERT_TRUE(killed.has_value()) << killed.error().message;
  auto ev = WaitStopEvent(s.instance, 10s);
  ASSERT_TRUE(ev.has_value());
  EXPECT_TRUE(ev->crashed);
  ASSERT_TRUE(rt->Destroy(s.instance).has_value());
  ExpectNoLeftovers(*rt, s);
  DestroyOnIo(rt);
}

}  // namespace
}  // namespace phoenix::agent::oci
