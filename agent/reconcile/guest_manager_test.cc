#include "agent/reconcile/guest_manager.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

#include <boost/asio/executor_work_guard.hpp>
#include <fstream>
#include <functional>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/runtime/testing/fake_runtime.h"

namespace phoenix::agent {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// The manager with real stores in a temp dir, a fake runtime and its loop on a thread.
class GuestManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/phx-manager-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ / "src");
    std::ofstream(dir_ / "src" / "vmlinux") << "kernel";
    std::ofstream(dir_ / "src" / "initrd.img") << "initrd";
    std::ofstream(dir_ / "src" / "manifest.env")
        << "PHOENIX_IMAGE_FORMAT=1\nNAME=demo\nKERNEL=vmlinux\nINITRD=initrd.img\n"
           "CMDLINE=console=ttyS0\nREADY_MARKER=PHOENIX-READY\nRUNTIMES=vm\n";
    auto store = AgentStore::Open(dir_ / "agent.db");
    ASSERT_TRUE(store) << store.error().ToString();
    store_ = std::move(*store);
    auto images = ImageStore::Open(dir_ / "images");
    ASSERT_TRUE(images) << images.error().ToString();
    images_ = std::move(*images);
    auto imported = images_->Import(dir_ / "src", "demo", "latest");
    ASSERT_TRUE(imported) << imported.error().ToString();
    StartManager();
  }

  void TearDown() override {
    StopManager();
    images_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  void StartManager() {
    loop_ = std::make_unique<boost::asio::io_context>();
    runtime_ = std::make_unique<testing::FakeRuntime>(*loop_);
    StartManagerOn();
  }

  void StopManager() {
    if (!thread_.joinable()) return;
    work_.reset();
    loop_->stop();
    thread_.join();
    pool_->join();
    manager_.reset();
  }

  // A restart of the agent: same stores, the instances keep running, a new loop and manager.
  void RestartAgent(bool runtime_unreachable = false) {
    StopManager();
    auto running = runtime_->running();
    runtime_.reset();
    loop_ = std::make_unique<boost::asio::io_context>();
    runtime_ = std::make_unique<testing::FakeRuntime>(*loop_);
    runtime_->SetListFails(runtime_unreachable);
    for (const auto& [instance, guest_id] : running) runtime_->AddRunning(instance, guest_id);
    StartManagerOn();
  }

  void StartManagerOn() {
    pool_ = std::make_unique<boost::asio::thread_pool>(2);
    hub_ = std::make_unique<EventHub>(store_->LastSequence());
    GuestManager::Options options;
    options.guests_dir = dir_ / "guests";
    options.capacity = {4, 4096};
    options.stable_after =
        30s;  // no test relies on the reset; a short one races the crash loop test
    options.call_timeout = 10s;
    options.metrics_interval = 50ms;
    options.usage_reader = &usage_;
    manager_ = std::make_unique<GuestManager>(
        *loop_, *pool_, *store_, *images_,
        std::map<RuntimeKind, Runtime*>{{RuntimeKind::kVm, runtime_.get()},
                                        {RuntimeKind::kContainer, runtime_.get()}},
        *hub_, options);
    ASSERT_TRUE(manager_->Recover());
    work_ = std::make_unique<WorkGuard>(loop_->get_executor());
    thread_ = std::thread([this] { loop_->run(); });
  }

  static GuestSpec Spec(const std::string& name) {
    GuestSpec s;
    s.name = name;
    s.image = "demo";
    s.ports = {{80, 0, "127.0.0.1"}};
    s.restart.initial_backoff_ms = 20;
    s.restart.max_backoff_ms = 100;
    return s;
  }

  // Polls the guest until `pred` holds (bounded).
  GuestRecord WaitGuest(const std::string& name,
                        const std::function<bool(const GuestRecord&)>& pred) {
    GuestRecord last;
    for (int i = 0; i < 500; ++i) {
      auto g = manager_->Get(name);
      if (g) {
        last = *g;
        if (pred(last)) return last;
      }
      std::this_thread::sleep_for(10ms);
    }
    ADD_FAILURE() << "guest " << name << " never reached the expected state; last state "
                  << GuestStateName(last.state) << " reason: " << last.last_exit_reason;
    return last;
  }

  std::vector<EventType> EventTypes(const std::string& guest) {
    std::vector<EventType> out;
    auto events = store_->EventsSince(1, 1000);
    for (const auto& e : *events) {
      if (e.guest == guest) out.push_back(e.type);
    }
    return out;
  }

  static bool Running(const GuestRecord& g) { return g.state == GuestState::kRunning; }

  // CPU and memory for the sampler: a fixed reading for any pid; remembers what was asked.
  class FakeUsageReader : public metrics::UsageReader {
   public:
    Result<metrics::Usage> Read(const metrics::UsageSource& source) override {
      std::lock_guard lock(mu_);
      last_ = source;
      return metrics::Usage{5'000'000'000, 4096};
    }
    std::optional<metrics::UsageSource> last() {
      std::lock_guard lock(mu_);
      return last_;
    }

   private:
    std::mutex mu_;
    std::optional<metrics::UsageSource> last_;
  };

  using WorkGuard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
  FakeUsageReader usage_;  // outlives every manager
  fs::path dir_;
  std::unique_ptr<AgentStore> store_;
  std::unique_ptr<ImageStore> images_;
  std::unique_ptr<boost::asio::io_context> loop_;
  std::unique_ptr<boost::asio::thread_pool> pool_;
  std::unique_ptr<testing::FakeRuntime> runtime_;
  std::unique_ptr<EventHub> hub_;
  std::unique_ptr<GuestManager> manager_;
  std::unique_ptr<WorkGuard> work_;
  std::thread thread_;
};

TEST_F(GuestManagerTest, RunStartsAFreshInstanceAndPublishesPorts) {
  auto rec = manager_->Run(Spec("web"));
  ASSERT_TRUE(rec) << rec.error().ToString();
  EXPECT_NE(rec->spec.ports[0].host_port, 0) << "an automatic host port is allocated";
  GuestRecord g = WaitGuest("web", Running);
  EXPECT_EQ(g.instance, "phx-web-1");
  EXPECT_TRUE(g.healthy) << "without a health check a running guest counts as healthy";
  ASSERT_EQ(runtime_->starts().size(), 1u);
  const InstanceSpec spec = runtime_->starts()[0];
  EXPECT_EQ(spec.guest_id, g.id);
  EXPECT_EQ(spec.ports.at(0).guest_port, 80);
  EXPECT_EQ(spec.ports.at(0).host_port, g.backend_ports.at(0));
  EXPECT_NE(spec.ports.at(0).host_port, g.spec.ports[0].host_port)
      << "the runtime gets a private backend port; users keep the published one";
  EXPECT_THAT(EventTypes("web"), ElementsAre(EventType::kGuestCreated, EventType::kGuestStarting,
                                             EventType::kGuestRunning));
}

TEST_F(GuestManagerTest, RunningGuestsAreSampledAndStoppedOnesHaveNoMetrics) {
  ASSERT_TRUE(manager_->Run(Spec("web")));
  GuestRecord g = WaitGuest("web", [](const GuestRecord& g) {
    return Running(g) && g.metrics && g.metrics->cpu_valid && g.metrics->requests_valid;
  });
  ASSERT_TRUE(g.metrics.has_value());
  EXPECT_EQ(g.metrics->cpu_percent, 0.0);  // the fake's CPU time does not move: idle, not missing
  EXPECT_EQ(g.metrics->memory_bytes, 4096u);
  EXPECT_EQ(g.metrics->requests_total, 0u);
  EXPECT_GT(g.metrics->window_ms, 0u);
  auto source = usage_.last();
  ASSERT_TRUE(source.has_value());
  EXPECT_EQ(source->kind, metrics::UsageSource::Kind::kProcess);  // a VM: its hypervisor process
  EXPECT_EQ(source->pid, 1001);

  ASSERT_TRUE(manager_->Stop("web", 1s));
  auto stopped = manager_->Get("web");
  ASSERT_TRUE(stopped);
  EXPECT_FALSE(stopped->metrics.has_value());
}

TEST_F(GuestManagerTest, RefusesDuplicatesUnknownImagesAndOvercommit) {
  ASSERT_TRUE(manager_->Run(Spec("web")));
  WaitGuest("web", Running);  // its Start has reached the runtime
  auto dup = manager_->Run(Spec("web"));
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, ErrorCode::kAlreadyExists);

  GuestSpec unknown = Spec("other");
  unknown.image = "nope";
  auto r = manager_->Run(unknown);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(r.error().field, "spec.image");

  GuestSpec container = Spec("ct");
  container.runtime = RuntimeKind::kContainer;  // the test image only has VM artifacts
  auto c = manager_->Run(container);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(c.error().field, "spec.runtime");

  GuestSpec big = Spec("big");
  big.memory_mib = 4096;  // 256 MiB are taken by "web"
  auto b = manager_->Run(big);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, ErrorCode::kResourceExhausted);
  EXPECT_EQ(b.error().field, "spec.memory_mib");
  EXPECT_EQ(runtime_->starts().size(), 1u) << "refused guests never reach the runtime";
}

TEST_F(GuestManagerTest, RuntimeUnreachableIsUnavailableWithAHintAndLeavesNothing) {
  runtime_->SetAvailable(false);
  auto r = manager_->Run(Spec("web"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("tools/libvirtd start"), std::string::npos) << r.error().message;
  EXPECT_TRUE(store_->LoadGuests()->empty());
  EXPECT_EQ(manager_->Get("web").error().code, ErrorCode::kNotFound);
  runtime_->SetAvailable(true);
  EXPECT_TRUE(manager_->Run(Spec("web")));
}

TEST_F(GuestManagerTest, CrashDestroysTheInstanceAndStartsAFreshOne) {
  ASSERT_TRUE(manager_->Run(Spec("web")));
  WaitGuest("web", Running);
  runtime_->Crash("phx-web-1");
  GuestRecord g = WaitGuest("web", [](const GuestRecord& g) {
    return g.state == GuestState::kRunning && g.instance == "phx-web-2";
  });
  EXPECT_EQ(g.restart_count, 1u);
  EXPECT_EQ(g.last_exit_reason, "crashed");
  EXPECT_THAT(runtime_->destroys(), ElementsAre("phx-web-1"))
      << "the crashed instance's overlay is discarded";
  auto events = EventTypes("web");
  EXPECT_NE(std::find(events.begin(), events.end(), EventType::kGuestCrashed), events.end());
  EXPECT_NE(std::find(events.begin(), events.end(), EventType::kGuestRestarting), events.end());
}

TEST_F(GuestManagerTest, BadGoldenSnapshotIsReportedAndRebuiltWhileTheGuestRuns) {
  runtime_->BadGoldenOnNextStart("golden snapshot k: memory.save has sha256 00, sealed with 11");
  ASSERT_TRUE(manager_->Run(Spec("web")));
  GuestRecord g = WaitGuest("web", Running);
  EXPECT_EQ(g.last_boot, BootMode::kCold);
  auto events = store_->EventsSince(1, 1000);
  ASSERT_TRUE(events);
  auto discarded = std::find_if(events->begin(), events->end(), [](const EventRecord& e) {
    return e.type == EventType::kSnapshotDiscarded;
  });
  ASSERT_NE(discarded, events->end());
  EXPECT_EQ(discarded->guest, "web");
  EXPECT_THAT(discarded->message, HasSubstr("memory.save has sha256 00"));
  EXPECT_THAT(discarded->message, HasSubstr("phx-web-1 cold-booted instead"));
  for (int i = 0; i < 500 && runtime_->golden_prepared() == 0; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(runtime_->golden_prepared(), 1) << "the snapshot is rebuilt in the background";
}

TEST_F(GuestManagerTest, KillGoesThroughTheCrashPath) {
  ASSERT_TRUE(manager_->Run(Spec("web")));
  WaitGuest("web", Running);
  auto pid = manager_->Kill("web");
  ASSERT_TRUE(pid) << pid.error().ToString();
  EXPECT_EQ(*pid, 4242);
  GuestRecord g = WaitGuest("web", [](const GuestRecord& g) {
    return g.state == GuestState::kRunning && g.restart_count == 1;
  });
  EXPECT_EQ(g.instance, "phx-web-2");
}

TEST_F(GuestManagerTest, CrashLoopBacksOffAndNeverPolicyFails) {
  GuestSpec spec = Spec("loop");
  ASSERT_TRUE(manager_->Run(spec));
  WaitGuest("loop", Running);
  runtime_->Crash("phx-loop-1");
  WaitGuest("loop", [](const GuestRecord& g) { return g.instance == "phx-loop-2" && Running(g); });
  runtime_->Crash("phx-loop-2");
  GuestRecord g = WaitGuest(
      "loop", [](const GuestRecord& g) { return g.instance == "phx-loop-3" && Running(g); });
  EXPECT_EQ(g.restart_count, 2u);
  auto events = store_->EventsSince(1, 1000);
  std::vector<std::string> restarts;
  for (const auto& e : *events) {
    if (e.type == EventType::kGuestRestarting) restarts.push_back(e.message);
  }
  EXPECT_THAT(restarts, ElementsAre("restart 1 from the golden image in 0 ms",
                                    "restart 2 from the golden image in 20 ms"));

  GuestSpec never = Spec("once");
  never.restart.policy = RestartPolicy::kNever;
  ASSERT_TRUE(manager_->Run(never));
  WaitGuest("once", Running);
  runtime_->Crash("phx-once-1");
  GuestRecord f =
      WaitGuest("once", [](const GuestRecord& g) { return g.state == GuestState::kFailed; });
  EXPECT_EQ(f.restart_count, 0u);
  EXPECT_TRUE(f.instance.empty());
}

TEST_F(GuestManagerTest, CleanExitWithOnFailurePolicyStops) {
  GuestSpec spec = Spec("job");
  spec.restart.policy = RestartPolicy::kOnFailure;
  ASSERT_TRUE(manager_->Run(spec));
  WaitGuest("job", Running);
  runtime_->Crash("phx-job-1", /*crashed=*/false);
  GuestRecord g =
      WaitGuest("job", [](const GuestRecord& g) { return g.state == GuestState::kStopped; });
  EXPECT_EQ(g.restart_count, 0u);
}

TEST_F(GuestManagerTest, TransientStartFailureRetriesPermanentOneFails) {
  runtime_->FailNextStart(Error{ErrorCode::kUnavailable, "libvirtd went away", ""});
  ASSERT_TRUE(manager_->Run(Spec("web")));
  GuestRecord g = WaitGuest("web", [](const GuestRecord& g) { return Running(g); });
  EXPECT_EQ(runtime_->starts().size(), 2u);
  EXPECT_EQ(g.instance, "phx-web-2");

  runtime_->FailNextStart(Error{ErrorCode::kNotFound, "kernel missing", ""});
  ASSERT_TRUE(manager_->Run(Spec("broken")));
  GuestRecord b =
      WaitGuest("broken", [](const GuestRecord& g) { return g.state == GuestState::kFailed; });
  EXPECT_NE(b.last_exit_reason.find("kernel missing"), std::string::npos);
  // An explicit start tries again.
  ASSERT_TRUE(manager_->Start("broken"));
  WaitGuest("broken", Running);
}

TEST_F(GuestManagerTest, StopThenStartAndDelete) {
  ASSERT_TRUE(manager_->Run(Spec("web")));
  WaitGuest("web", Running);
  auto stopped = manager_->Stop("web", 1s);
  ASSERT_TRUE(stopped) << stopped.error().ToString();
  EXPECT_EQ(stopped->state, GuestState::kStopped);
  EXPECT_TRUE(stopped->instance.empty());
  EXPECT_THAT(runtime_->stops(), ElementsAre("phx-web-1"));
  EXPECT_THAT(runtime_->running(), IsEmpty());
  auto killed = manager_->Kill("web");
  ASSERT_FALSE(killed);
  EXPECT_EQ(killed.error().code, ErrorCode::kFailedPrecondition);

  ASSERT_TRUE(manager_->Start("web"));
  GuestRecord g = WaitGuest("web", Running);
  EXPECT_EQ(g.instance, "phx-web-2");

  auto id = g.id;
  ASSERT_TRUE(manager_->Delete("web"));
  EXPECT_THAT(runtime_->running(), IsEmpty());
  EXPECT_EQ(manager_->Get("web").error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(store_->LoadGuests()->empty());
  EXPECT_FALSE(fs::exists(dir_ / "guests" / id));
}

TEST_F(GuestManagerTest, RestartedAgentAdoptsRunningInstanceWithoutDuplicating) {
  ASSERT_TRUE(manager_->Run(Spec("web")));
  GuestRecord before = WaitGuest("web", Running);
  RestartAgent();
  GuestRecord after = WaitGuest("web", Running);
  EXPECT_EQ(after.instance, before.instance);
  EXPECT_EQ(after.spec.ports[0].host_port, before.spec.ports[0].host_port);
  EXPECT_TRUE(runtime_->starts().empty()) << "adopted, not restarted";
  EXPECT_EQ(runtime_->running().size(), 1u);
  auto events = EventTypes("web");
  EXPECT_EQ(events.back(), EventType::kGuestAdopted);
}

TEST_F(GuestManagerTest, AgentStartedWhileRuntimeIsAwayWaitsAndAdoptsOnReconnect) {
  ASSERT_TRUE(manager_->Run(Spec("web")));
  GuestRecord before = WaitGuest("web", Running);
  RestartAgent(/*runtime_unreachable=*/true);
  // Whether its instance still runs is unknown: nothing may be started in the meantime.
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(runtime_->starts().empty());
  EXPECT_EQ(manager_->Get("web")->instance, before.instance);

  runtime_->AddRunning("phx-web-9", before.id);  // a leftover the runtime reports on its return
  runtime_->SetListFails(false);
  runtime_->Connected();
  GuestRecord after =
      WaitGuest("web", [](const GuestRecord& g) { return Running(g) && g.healthy; });
  EXPECT_EQ(after.instance, before.instance) << "adopted, not started twice";
  EXPECT_TRUE(runtime_->starts().empty());
  for (int i = 0; i < 100 && runtime_->running().size() > 1; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(runtime_->running().size(), 1u) << "the leftover was removed";
}

TEST_F(GuestManagerTest, RestartedAgentRestartsVanishedAndRemovesLeftoverInstances) {
  ASSERT_TRUE(manager_->Run(Spec("web")));
  GuestRecord before = WaitGuest("web", Running);
  StopManager();
  // While the agent was down its guest died, and a leftover of an interrupted start remained.
  runtime_->Crash(before.instance);
  runtime_->AddRunning("phx-web-7", before.id);
  RestartAgent();
  GuestRecord after = WaitGuest("web", [](const GuestRecord& g) { return Running(g); });
  EXPECT_NE(after.instance, before.instance);
  EXPECT_NE(after.instance, "phx-web-7");
  EXPECT_EQ(runtime_->running().size(), 1u) << "exactly one instance of the guest runs";
}

// The guest's health endpoint, stood in for on the guest's backend port (the fake runtime runs
// nothing there): answers every request with 200 or 503 as the test chooses. Serves from its own
// thread with bounded waits; stops in the destructor.
class HealthEndpoint {
 public:
  explicit HealthEndpoint(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bound_ =
        bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 && listen(fd_, 16) == 0;
    if (bound_) thread_ = std::thread([this] { Serve(); });
  }
  ~HealthEndpoint() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    close(fd_);
  }
  bool bound() const { return bound_; }
  void SetHealthy(bool healthy) { healthy_ = healthy; }

 private:
  void Serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      char buf[1024];
      pollfd in{c, POLLIN, 0};
      if (poll(&in, 1, 500) > 0) (void)!read(c, buf, sizeof buf);
      const std::string reply = healthy_ ? "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
                                         : "HTTP/1.1 503 Busy\r\nContent-Length: 5\r\n\r\nbusy\n";
      (void)!write(c, reply.data(), reply.size());
      close(c);
    }
  }

  int fd_ = -1;
  bool bound_ = false;
  std::atomic<bool> healthy_{true};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A guest with a fast HTTP health check and the given liveness grace.
GuestSpec HealthChecked(GuestSpec s, uint32_t restart_after_unhealthy_ms) {
  s.health.kind = HealthCheck::Kind::kHttp;
  s.health.port = 80;
  s.health.interval_ms = 100;
  s.health.timeout_ms = 100;
  s.health.unhealthy_threshold = 2;
  s.health.start_period_ms = 0;
  s.health.restart_after_unhealthy_ms = restart_after_unhealthy_ms;
  return s;
}

// Guest "web" with a health check and its endpoint served by the test.
class GuestManagerHealthTest : public GuestManagerTest {
 protected:
  // Runs "web" with the given liveness grace and returns its first instance once it is healthy.
  GuestRecord RunHealthy(uint32_t restart_after_unhealthy_ms) {
    EXPECT_TRUE(manager_->Run(HealthChecked(Spec("web"), restart_after_unhealthy_ms)));
    GuestRecord up = WaitGuest("web", Running);
    endpoint_ = std::make_unique<HealthEndpoint>(up.backend_ports.at(0));
    EXPECT_TRUE(endpoint_->bound()) << "backend port " << up.backend_ports.at(0);
    WaitGuest("web", [](const GuestRecord& g) { return Running(g) && g.healthy; });
    return up;
  }

  std::unique_ptr<HealthEndpoint> endpoint_;
};

TEST_F(GuestManagerHealthTest, UnhealthyGuestRunsOnOutOfRotationAndRestartsOnlyAfterTheGrace) {
  const GuestRecord up = RunHealthy(700);
  endpoint_->SetHealthy(false);
  // Readiness: reported unhealthy while the same instance still runs.
  GuestRecord sick = WaitGuest("web", [](const GuestRecord& g) { return !g.healthy; });
  EXPECT_EQ(sick.state, GuestState::kRunning);
  EXPECT_EQ(sick.instance, up.instance) << "not restarted at the first unhealthy verdict";
  // Liveness: still unhealthy when the grace ends, so a fresh instance replaces it.
  GuestRecord replaced =
      WaitGuest("web", [&](const GuestRecord& g) { return g.instance != up.instance; });
  EXPECT_NE(replaced.last_exit_reason.find("still unhealthy after 700 ms"), std::string::npos)
      << replaced.last_exit_reason;
  auto events = store_->EventsSince(1, 1000);
  ASSERT_TRUE(events);
  bool announced = false;
  for (const auto& e : *events) {
    if (e.type == EventType::kGuestUnhealthy &&
        e.message.find("restarting in 700 ms unless it recovers") != std::string::npos) {
      announced = true;
    }
  }
  EXPECT_TRUE(announced) << "the unhealthy event says when the restart comes";
}

TEST_F(GuestManagerHealthTest, GuestThatRecoversWithinTheGraceIsNotRestarted) {
  const GuestRecord up = RunHealthy(800);
  endpoint_->SetHealthy(false);
  WaitGuest("web", [](const GuestRecord& g) { return !g.healthy; });
  endpoint_->SetHealthy(true);
  GuestRecord again = WaitGuest("web", [](const GuestRecord& g) { return g.healthy; });
  EXPECT_EQ(again.instance, up.instance);
  // Past the grace: the cancelled restart stays cancelled.
  std::this_thread::sleep_for(1200ms);
  GuestRecord later = WaitGuest("web", Running);
  EXPECT_EQ(later.instance, up.instance);
  EXPECT_TRUE(later.healthy);
  EXPECT_EQ(runtime_->starts().size(), 1u);
  EXPECT_EQ(later.restart_count, 0u);
}

TEST_F(GuestManagerHealthTest, ZeroGraceRestartsAtTheFirstUnhealthyVerdict) {
  const GuestRecord up = RunHealthy(0);
  endpoint_->SetHealthy(false);
  GuestRecord replaced =
      WaitGuest("web", [&](const GuestRecord& g) { return g.instance != up.instance; });
  EXPECT_NE(replaced.last_exit_reason.find("health check failed: HTTP 503"), std::string::npos)
      << replaced.last_exit_reason;
  EXPECT_EQ(replaced.last_exit_reason.find("still unhealthy"), std::string::npos)
      << replaced.last_exit_reason;
}

}  // namespace
}  // namespace phoenix::agent
