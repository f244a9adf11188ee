#include "supervisor/reconcile/controller.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "supervisor/state/memory_state_store.h"

namespace phoenix::supervisor {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;

// An agent's session as the controller sees it: records what it is sent.
class FakeSession : public AgentSession {
 public:
  void SendAssignment(const NodeAssignment& assignment) override {
    std::lock_guard lock(mu_);
    assignments_.push_back(assignment);
  }
  void SendFrontDoor(const FrontDoorTable& table) override {
    std::lock_guard lock(mu_);
    front_doors_.push_back(table);
  }
  std::optional<FrontDoorTable> LastFrontDoor() {
    std::lock_guard lock(mu_);
    if (front_doors_.empty()) return std::nullopt;
    return front_doors_.back();
  }
  void Close(const Error& error) override {
    std::lock_guard lock(mu_);
    closed_ = error.message;
  }
  std::optional<NodeAssignment> Last() {
    std::lock_guard lock(mu_);
    if (assignments_.empty()) return std::nullopt;
    return assignments_.back();
  }
  std::string closed() {
    std::lock_guard lock(mu_);
    return closed_;
  }

 private:
  std::mutex mu_;
  std::vector<NodeAssignment> assignments_;
  std::vector<FrontDoorTable> front_doors_;
  std::string closed_;
};

// A store that refuses every commit once told to, to prove nothing changes without a commit.
class FlakyStore : public StateStore {
 public:
  explicit FlakyStore(StateStore& inner) : inner_(inner) {}
  Result<ClusterSnapshotRecord> Load() override { return inner_.Load(); }
  Result<CommitResult> Commit(const CommitBatch& batch) override {
    if (refuse_) return Unavailable("disk on fire");
    return inner_.Commit(batch);
  }
  Result<std::vector<ClusterEvent>> EventsSince(uint64_t from, size_t limit) override {
    return inner_.EventsSince(from, limit);
  }
  std::atomic<bool> refuse_{false};

 private:
  StateStore& inner_;
};

class ControllerTest : public testing::Test {
 protected:
  void SetUp() override { Start(); }
  void TearDown() override { Stop(); }

  void Start() {
    loop_ = std::make_unique<asio::io_context>();
    Controller::Options options;
    options.suspect_after = 150ms;
    options.down_after = 300ms;
    options.tick = 20ms;
    options.autoscale_interval = 50ms;
    options.drain_grace = 300ms;
    options.drain_deadline = drain_deadline_;
    controller_ = std::make_unique<Controller>(*loop_, store_, hub_, options);
    ASSERT_TRUE(controller_->Recover());
    work_ = std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
        loop_->get_executor());
    thread_ = std::thread([this] { loop_->run(); });
  }

  void Stop() {
    if (!loop_) return;
    work_.reset();
    loop_->stop();
    thread_.join();
    controller_.reset();
    loop_.reset();
  }

  // Waits until everything posted so far has run on the loop.
  void Sync() {
    std::promise<void> done;
    asio::post(*loop_, [&] { done.set_value(); });
    done.get_future().wait();
  }

  AgentHello Hello(const std::string& name, const std::string& zone, uint64_t applied = 0) {
    AgentHello hello;
    hello.node.name = name;
    hello.node.zone = zone;
    hello.node.capacity = {8, 8192};
    hello.node.runtimes = {RuntimeKind::kContainer};
    hello.applied_version = applied;
    return hello;
  }

  void Connect(const std::string& name, const std::string& zone, uint64_t applied = 0) {
    sessions_[name] = std::make_unique<FakeSession>();
    controller_->AgentConnected(sessions_[name].get(), Hello(name, zone, applied));
    Sync();
  }

  // Reports every assigned guest as running (what a healthy agent does).
  void ReportAssigned(const std::string& name, std::vector<std::string> extra_guests = {}) {
    AgentReport report;
    std::optional<NodeAssignment> a = sessions_.at(name)->Last();
    if (a) {
      report.applied_version = a->version;
      for (const AssignedReplica& r : a->replicas) {
        report.guests.push_back({r.guest, ReplicaObservation{.guest_state = GuestState::kRunning}});
      }
    }
    for (std::string& g : extra_guests) {
      report.guests.push_back({g, ReplicaObservation{.guest_state = GuestState::kRunning}});
    }
    controller_->AgentReported(sessions_.at(name).get(), report);
    Sync();
  }

  // Reports every assigned guest running with a new rps sample (nullopt: no metrics at all).
  void ReportLoad(const std::string& name, std::optional<double> rps) {
    AgentReport report;
    std::optional<NodeAssignment> a = sessions_.at(name)->Last();
    if (a) {
      report.applied_version = a->version;
      for (const AssignedReplica& r : a->replicas) {
        ReplicaObservation o{.guest_state = GuestState::kRunning, .reported_at = Clock::now()};
        if (rps) {
          o.metrics = GuestMetrics{.sampled_at = Clock::now(),
                                   .window_ms = 1000,
                                   .requests_valid = true,
                                   .requests_per_second = *rps};
        }
        report.guests.push_back({r.guest, o});
      }
    }
    controller_->AgentReported(sessions_.at(name).get(), report);
    Sync();
  }

  // Keeps every node reporting `rps` per replica until `done` (bounded).
  bool PumpUntil(std::function<std::optional<double>(const std::string&)> rps_of,
                 const std::function<bool()>& done, std::chrono::milliseconds limit) {
    for (auto deadline = std::chrono::steady_clock::now() + limit;
         std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(25ms)) {
      for (const auto& [node, _] : sessions_) ReportLoad(node, rps_of(node));
      if (done()) return true;
    }
    return done();
  }

  uint32_t Replicas(const std::string& service) {
    auto s = controller_->GetService(service);
    return s ? s->service.spec.replicas : 0;
  }

  static AutoscalePolicy Rps100(uint32_t down_window_s) {
    return AutoscalePolicy{.min_replicas = 1,
                           .max_replicas = 6,
                           .metric = AutoscaleMetric::kRps,
                           .target = 100,
                           .scale_down_stabilization_s = down_window_s};
  }

  ServiceSpec Spec(std::string name, uint32_t replicas) {
    ServiceSpec spec;
    spec.name = std::move(name);
    spec.image = "demo:latest";
    spec.replicas = replicas;
    spec.memory_mib = 128;
    spec.spread_attribute = "zone";
    spec.guest_template = "template-bytes";
    return spec;
  }

  std::map<std::string, int> ZoneCounts(const ServiceStatus& s) {
    std::map<std::string, int> counts;
    for (const ReplicaStatus& r : s.replicas) counts[r.zone]++;
    return counts;
  }

  std::vector<ClusterEventType> EventTypes() {
    auto events = store_.EventsSince(0, 1000);
    std::vector<ClusterEventType> types;
    for (const ClusterEvent& e : *events) types.push_back(e.type);
    return types;
  }

  // Polls (bounded) until `done` holds.
  bool Eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = 3s) {
    for (auto deadline = std::chrono::steady_clock::now() + limit;
         std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(10ms)) {
      if (done()) return true;
    }
    return done();
  }

  void ConnectThreeZones() {
    Connect("n-a", "a");
    Connect("n-b", "b");
    Connect("n-c", "c");
  }

  std::chrono::milliseconds drain_deadline_{1500};
  MemoryStateStore store_;
  EventHub hub_;
  std::unique_ptr<asio::io_context> loop_;
  std::unique_ptr<Controller> controller_;
  std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
  std::map<std::string, std::unique_ptr<FakeSession>> sessions_;
};

TEST_F(ControllerTest, ServiceSpreadsAcrossZonesAndAgentsGetTheirAssignments) {
  ConnectThreeZones();
  auto created = controller_->CreateService(Spec("web", 6));
  ASSERT_TRUE(created) << created.error().ToString();
  EXPECT_EQ(ZoneCounts(*created), (std::map<std::string, int>{{"a", 2}, {"b", 2}, {"c", 2}}));
  for (const std::string node : {"n-a", "n-b", "n-c"}) {
    std::optional<NodeAssignment> a = sessions_[node]->Last();
    ASSERT_TRUE(a) << node;
    EXPECT_EQ(a->replicas.size(), 2u) << node;
    EXPECT_GT(a->version, 0u);
    for (const AssignedReplica& r : a->replicas) {
      EXPECT_EQ(r.guest, ReplicaGuestName("web", r.index, r.generation));
      EXPECT_EQ(r.guest_template, "template-bytes");
    }
    ReportAssigned(node);
  }
  auto shown = controller_->GetService("web");
  ASSERT_TRUE(shown);
  EXPECT_EQ(shown->running, 6u);
  EXPECT_THAT(EventTypes(), testing::Contains(ClusterEventType::kReplicaRunning));
}

TEST_F(ControllerTest, InvalidAndDuplicateServicesAreRefusedWithTheField) {
  auto bad = controller_->CreateService(Spec("Web!", 1));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().field, "spec.name");
  ServiceSpec spread = Spec("web", 1);
  spread.spread_attribute = "rack";
  EXPECT_EQ(controller_->CreateService(spread).error().field, "spec.spread.attribute");
  ASSERT_TRUE(controller_->CreateService(Spec("web", 1)));
  EXPECT_EQ(controller_->CreateService(Spec("web", 1)).error().code, ErrorCode::kAlreadyExists);
}

TEST_F(ControllerTest, NoNodesMeansPendingWithAReason) {
  auto created = controller_->CreateService(Spec("web", 2));
  ASSERT_TRUE(created);
  ASSERT_EQ(created->replicas.size(), 2u);
  for (const ReplicaStatus& r : created->replicas) {
    EXPECT_EQ(r.state, ReplicaState::kPending);
    EXPECT_FALSE(r.pending_reason.empty());
  }
  Connect("n-a", "a");  // a node arrives: the pending replicas land on it
  auto shown = controller_->GetService("web");
  ASSERT_TRUE(shown);
  for (const ReplicaStatus& r : shown->replicas) EXPECT_EQ(r.placement.node, "n-a");
}

TEST_F(ControllerTest, DeadNodeIsReplacedInOtherZonesAndFencedWhenItReturns) {
  ConnectThreeZones();
  ASSERT_TRUE(controller_->CreateService(Spec("web", 6)));
  for (const std::string node : {"n-a", "n-b", "n-c"}) ReportAssigned(node);
  const NodeAssignment before = *sessions_["n-c"]->Last();
  std::vector<std::string> stale;
  for (const AssignedReplica& r : before.replicas) stale.push_back(r.guest);

  // n-c dies: its link closes and heartbeats stop. n-a and n-b keep heartbeating.
  controller_->AgentGone(sessions_["n-c"].get());
  ASSERT_TRUE(Eventually([&] {
    ReportAssigned("n-a");
    ReportAssigned("n-b");
    auto n = controller_->GetNode("n-c");
    return n && n->live.state == NodeState::kDown;
  }));
  auto replaced = controller_->GetService("web");
  ASSERT_TRUE(replaced);
  EXPECT_EQ(ZoneCounts(*replaced), (std::map<std::string, int>{{"a", 3}, {"b", 3}}));
  auto down = controller_->GetNode("n-c");
  EXPECT_GT(down->record.assignment_version, before.version)
      << "the dead node's assignment moved on";
  EXPECT_EQ(down->replicas, 0u);

  // n-c returns still running its old guests: it gets the newer, empty assignment...
  Connect("n-c", "c", before.version);
  std::optional<NodeAssignment> fenced = sessions_["n-c"]->Last();
  ASSERT_TRUE(fenced);
  EXPECT_GT(fenced->version, before.version);
  EXPECT_TRUE(fenced->replicas.empty());
  // ...reports the stale guests while it stops them, then reports them gone.
  ReportAssigned("n-c", stale);
  ReportAssigned("n-c");
  EXPECT_THAT(EventTypes(), testing::Contains(ClusterEventType::kStaleGuestStopped));
  EXPECT_THAT(EventTypes(), testing::Contains(ClusterEventType::kNodeDown));
  // The survivors' replicas stay where they are (no flapping back).
  auto after = controller_->GetService("web");
  EXPECT_EQ(ZoneCounts(*after), (std::map<std::string, int>{{"a", 3}, {"b", 3}}));
}

TEST_F(ControllerTest, ScaleChecksTheVersionAndScaleInKeepsTheSpread) {
  ConnectThreeZones();
  auto created = controller_->CreateService(Spec("web", 6));
  ASSERT_TRUE(created);
  auto stale = controller_->ScaleService("web", 3, created->service.version + 7);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, ErrorCode::kAborted);
  auto scaled = controller_->ScaleService("web", 3, created->service.version);
  ASSERT_TRUE(scaled) << scaled.error().ToString();
  EXPECT_EQ(ZoneCounts(*scaled), (std::map<std::string, int>{{"a", 1}, {"b", 1}, {"c", 1}}));
  EXPECT_GT(scaled->service.version, created->service.version);
  EXPECT_EQ(controller_->ScaleService("nope", 1, 0).error().code, ErrorCode::kNotFound);
}

TEST_F(ControllerTest, DrainMovesReplicasAwayAndUndrainAcceptsNewOnes) {
  ConnectThreeZones();
  Connect("n-a2", "a");
  ASSERT_TRUE(controller_->CreateService(Spec("web", 3)));
  std::string node_in_a;
  auto placed = controller_->GetService("web");
  ASSERT_TRUE(placed);
  for (const ReplicaStatus& r : placed->replicas) {
    if (r.zone == "a") node_in_a = r.placement.node;
  }
  ASSERT_FALSE(node_in_a.empty());
  auto drained = controller_->DrainNode(node_in_a);
  ASSERT_TRUE(drained);
  EXPECT_TRUE(drained->record.drained);
  EXPECT_EQ(drained->replicas, 0u);
  auto shown = controller_->GetService("web");
  EXPECT_EQ(ZoneCounts(*shown), (std::map<std::string, int>{{"a", 1}, {"b", 1}, {"c", 1}}));
  EXPECT_FALSE(controller_->UndrainNode(node_in_a)->record.drained);
  EXPECT_EQ(controller_->DrainNode("nope").error().code, ErrorCode::kNotFound);
}

// Every admin change is in the event log with who asked for it; the supervisor's own decisions
// name nobody (issue 11, item 7).
TEST_F(ControllerTest, AdminChangesRecordTheirActorAndTheSupervisorsOwnDoNot) {
  ConnectThreeZones();
  const std::string op = "token 0123456789ab (operator)";
  auto created = controller_->CreateService(Spec("web", 3), op);
  ASSERT_TRUE(created);
  ASSERT_TRUE(controller_->ScaleService("web", 2, 0, op));
  ASSERT_TRUE(controller_->SetAutoscale(
      "web", AutoscalePolicy{.min_replicas = 1, .max_replicas = 4, .target = 60}, 0, op));
  ASSERT_TRUE(controller_->SetAutoscale("web", std::nullopt, 0, op));
  ASSERT_TRUE(controller_->DrainNode("n-a", op));
  ASSERT_TRUE(controller_->UndrainNode("n-a", op));
  ASSERT_TRUE(controller_->DeleteService("web", op));
  ASSERT_TRUE(controller_->RecordEvent({.type = ClusterEventType::kTokenRevoked,
                                        .message = "token feedfacecafe (viewer) revoked",
                                        .actor = "token ba5eba11ba5e (admin)"}));
  auto events = store_.EventsSince(0, 1000);
  ASSERT_TRUE(events.has_value());
  std::map<ClusterEventType, std::set<std::string>> actors;
  for (const ClusterEvent& e : *events) actors[e.type].insert(e.actor);
  for (ClusterEventType admin :
       {ClusterEventType::kServiceCreated, ClusterEventType::kServiceScaled,
        ClusterEventType::kNodeDrained, ClusterEventType::kNodeUndrained,
        ClusterEventType::kServiceDeleted}) {
    EXPECT_EQ(actors[admin], std::set<std::string>{op}) << ClusterEventTypeName(admin);
  }
  EXPECT_EQ(actors[ClusterEventType::kTokenRevoked],
            std::set<std::string>{"token ba5eba11ba5e (admin)"});
  EXPECT_EQ(actors[ClusterEventType::kReplicaPlaced], std::set<std::string>{""})
      << "placement is the supervisor's own decision";
}

TEST_F(ControllerTest, DisconnectNodeClosesItsLinkOnce) {
  Connect("n-a1", "a");
  auto closed = controller_->DisconnectNode("n-a1", "certificate revoked");
  ASSERT_TRUE(closed);
  EXPECT_TRUE(*closed);
  EXPECT_EQ(sessions_.at("n-a1")->closed(), "certificate revoked");
  EXPECT_FALSE(*controller_->DisconnectNode("n-a1", "again"));  // no link left to close
  EXPECT_FALSE(*controller_->DisconnectNode("nope", "never connected"));
  // A report on the closed session is ignored: it no longer speaks for the node.
  controller_->AgentReported(sessions_.at("n-a1").get(), AgentReport{});
  Sync();
  EXPECT_FALSE(controller_->GetNode("n-a1")->live.connected);
}

// An agent that reports faster than the loop handles reports grows nothing: each waiting report
// is replaced by the newer one, and the loop sees the latest state (issue 11, item 8).
TEST_F(ControllerTest, ReportsWaitingForABusyLoopAreReplacedNotQueued) {
  Connect("n-a1", "a");
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  asio::post(*loop_, [released] { released.wait(); });  // the loop is busy
  for (uint64_t i = 1; i <= 10000; ++i) {
    AgentReport report;
    report.applied_version = i;
    controller_->AgentReported(sessions_.at("n-a1").get(), std::move(report));
  }
  EXPECT_EQ(controller_->ReportsReplaced(), 9999u);
  release.set_value();
  Sync();
  EXPECT_EQ(controller_->GetNode("n-a1")->live.applied_version, 10000u);
}

TEST_F(ControllerTest, RestartRecoversEverythingAcknowledged) {
  ConnectThreeZones();
  ASSERT_TRUE(controller_->CreateService(Spec("web", 6)));
  ASSERT_TRUE(controller_->ScaleService("web", 4, 0));
  auto before = controller_->GetService("web");
  auto nodes_before = controller_->ListNodes();
  Stop();
  sessions_.clear();
  Start();
  auto after = controller_->GetService("web");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->service, before->service);
  auto nodes_after = controller_->ListNodes();
  ASSERT_EQ(nodes_after.size(), nodes_before.size());
  for (size_t i = 0; i < nodes_after.size(); ++i) {
    EXPECT_EQ(nodes_after[i].record, nodes_before[i].record);
    EXPECT_EQ(nodes_after[i].live.state, NodeState::kSuspect) << "until the agent says hello";
  }
  // Agents reconnect before the down window: nothing moves.
  ConnectThreeZones();
  EXPECT_EQ(controller_->GetService("web")->service.replicas, before->service.replicas);
}

TEST_F(ControllerTest, AFailedCommitChangesNothing) {
  Stop();
  FlakyStore flaky(store_);
  loop_ = std::make_unique<asio::io_context>();
  controller_ = std::make_unique<Controller>(*loop_, flaky, hub_, Controller::Options{});
  ASSERT_TRUE(controller_->Recover());
  work_ = std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
      loop_->get_executor());
  thread_ = std::thread([this] { loop_->run(); });
  ConnectThreeZones();
  ASSERT_TRUE(controller_->CreateService(Spec("web", 3)));
  flaky.refuse_ = true;
  auto scaled = controller_->ScaleService("web", 6, 0);
  ASSERT_FALSE(scaled);
  EXPECT_EQ(scaled.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(controller_->GetService("web")->service.spec.replicas, 3u);
  EXPECT_EQ(controller_->CreateService(Spec("api", 1)).error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(controller_->GetService("api").error().code, ErrorCode::kNotFound);
  Stop();
}

TEST_F(ControllerTest, ASecondLinkReplacesTheFirst) {
  Connect("n-a", "a");
  FakeSession* first = sessions_["n-a"].release();
  Connect("n-a", "a");
  EXPECT_THAT(first->closed(), testing::HasSubstr("replaced"));
  controller_->AgentGone(first);  // the old stream ends later: the node must stay READY
  EXPECT_EQ(controller_->GetNode("n-a")->live.state, NodeState::kReady);
  delete first;
}

}  // namespace
}  // namespace phoenix::supervisor

namespace phoenix::supervisor {
namespace {

TEST_F(ControllerTest, AutoscaleOutAcrossZonesThenInAfterTheWindowDrainingFirst) {
  ConnectThreeZones();
  ServiceSpec spec = Spec("web", 0);
  spec.autoscale = Rps100(1);
  auto created = controller_->CreateService(spec);
  ASSERT_TRUE(created) << created.error().ToString();
  EXPECT_EQ(created->service.spec.replicas, 1u);  // moved into [min, max] at once
  ASSERT_TRUE(created->autoscale.has_value());

  // 350 rps on the single replica: ceil(1 * 350 / 100) = 4.
  ASSERT_TRUE(PumpUntil([](const std::string&) { return 350.0; },
                        [&] { return Replicas("web") >= 4; }, 3s));
  auto shown = controller_->GetService("web");
  ASSERT_TRUE(shown);
  EXPECT_GE(ZoneCounts(*shown).size(), 2u);
  ASSERT_TRUE(shown->autoscale);
  ASSERT_FALSE(shown->autoscale->recent.empty());
  EXPECT_EQ(shown->autoscale->recent.back().from_replicas, 1u);
  EXPECT_EQ(shown->autoscale->recent.back().to_replicas, 4u);
  auto events = store_.EventsSince(0, 1000);
  ASSERT_TRUE(events);
  EXPECT_TRUE(std::ranges::any_of(*events, [](const ClusterEvent& e) {
    return e.message.starts_with(
        "autoscale web 1 -> 4: rps 350.0 > target 100 (±10%) over 1 "
        "replica: want 4");
  }));

  // Load gone: after the 1 s window, back to 1; removed replicas leave the service at once but
  // stay assigned to their node for the drain grace.
  std::set<std::string> assigned_before;
  for (const auto& [node, session] : sessions_) {
    const std::optional<NodeAssignment> a = session->Last();
    for (const AssignedReplica& r : a->replicas) assigned_before.insert(r.guest);
  }
  ASSERT_EQ(assigned_before.size(), 4u);
  ASSERT_TRUE(
      PumpUntil([](const std::string&) { return 5.0; }, [&] { return Replicas("web") == 1; }, 5s));
  shown = controller_->GetService("web");
  ASSERT_TRUE(shown);
  EXPECT_EQ(shown->replicas.size(), 1u);
  std::set<std::string> assigned_now;
  for (const auto& [node, session] : sessions_) {
    const std::optional<NodeAssignment> a = session->Last();
    for (const AssignedReplica& r : a->replicas) assigned_now.insert(r.guest);
  }
  EXPECT_EQ(assigned_now, assigned_before) << "scale-in must drain before it stops";
  EXPECT_TRUE(PumpUntil([](const std::string&) { return 5.0; },
                        [&] {
                          size_t n = 0;
                          for (const auto& [node, session] : sessions_) {
                            n += session->Last()->replicas.size();
                          }
                          return n == 1;
                        },
                        2s));
  EXPECT_THAT(shown->autoscale->recent.front().reason, testing::HasSubstr("rps 5.0 < target 100"));
}

TEST_F(ControllerTest, AutoscaleNeverShrinksOnMissingData) {
  ConnectThreeZones();
  ServiceSpec spec = Spec("web", 3);
  spec.autoscale = Rps100(0);
  ASSERT_TRUE(controller_->CreateService(spec));
  // n-a's replica reports no metrics; the others report almost nothing.
  auto rps = [](const std::string& node) -> std::optional<double> {
    if (node == "n-a") return std::nullopt;
    return 1.0;
  };
  EXPECT_FALSE(PumpUntil(
      rps, [&] { return Replicas("web") != 3; }, 1s));
  auto shown = controller_->GetService("web");
  ASSERT_TRUE(shown && shown->autoscale);
  EXPECT_THAT(shown->autoscale->state, testing::HasSubstr("no scale-in on missing data"));
  EXPECT_EQ(shown->autoscale->reporting_replicas, 2u);
  // Everyone reports: it shrinks.
  EXPECT_TRUE(
      PumpUntil([](const std::string&) { return 1.0; }, [&] { return Replicas("web") == 1; }, 2s));
}

TEST_F(ControllerTest, AutoscaleWindowSurvivesARestartWithoutDoubleScaling) {
  ConnectThreeZones();
  ServiceSpec spec = Spec("web", 1);
  spec.autoscale = Rps100(30);
  ASSERT_TRUE(controller_->CreateService(spec));
  ASSERT_TRUE(PumpUntil([](const std::string&) { return 250.0; },
                        [&] { return Replicas("web") == 3; }, 3s));
  auto before = store_.Load();
  ASSERT_TRUE(before);
  ASSERT_EQ(before->services.size(), 1u);
  const AutoscaleWindow window = before->services[0].autoscale;
  ASSERT_FALSE(window.recent.empty());
  ASSERT_FALSE(window.desires.empty());

  Stop();
  sessions_.clear();
  Start();
  ConnectThreeZones();
  // Low load right after the restart: the persisted 30 s window still holds the desire of 3.
  EXPECT_FALSE(
      PumpUntil([](const std::string&) { return 1.0; }, [&] { return Replicas("web") != 3; }, 1s));
  auto shown = controller_->GetService("web");
  ASSERT_TRUE(shown && shown->autoscale);
  EXPECT_THAT(shown->autoscale->state, testing::HasSubstr("scale-down window"));
  EXPECT_EQ(shown->autoscale->recent.size(), window.recent.size());
}

TEST_F(ControllerTest, SetAutoscaleValidatesChecksTheVersionAndOwnsTheCount) {
  ConnectThreeZones();
  auto created = controller_->CreateService(Spec("web", 5));
  ASSERT_TRUE(created);
  AutoscalePolicy bad = Rps100(10);
  bad.min_replicas = 4;
  bad.max_replicas = 2;
  auto refused = controller_->SetAutoscale("web", bad, 0);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(refused.error().ToString(), "policy.max_replicas: must be >= min_replicas (4)");
  auto stale = controller_->SetAutoscale("web", Rps100(10), created->service.version + 7);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, ErrorCode::kAborted);
  AutoscalePolicy small = Rps100(10);
  small.max_replicas = 3;
  auto set = controller_->SetAutoscale("web", small, created->service.version);
  ASSERT_TRUE(set) << set.error().ToString();
  EXPECT_EQ(set->service.spec.replicas, 3u);  // into [1, 3] at once
  auto scaled = controller_->ScaleService("web", 2, 0);
  ASSERT_FALSE(scaled);
  EXPECT_EQ(scaled.error().code, ErrorCode::kFailedPrecondition);
  auto off = controller_->SetAutoscale("web", std::nullopt, 0);
  ASSERT_TRUE(off);
  EXPECT_FALSE(off->autoscale.has_value());
  EXPECT_EQ(off->service.spec.replicas, 3u);
  EXPECT_TRUE(controller_->ScaleService("web", 2, 0));
  ServiceSpec invalid = Spec("api", 1);
  invalid.autoscale = Rps100(10);
  invalid.autoscale->target = 0;
  auto r = controller_->CreateService(invalid);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "spec.autoscale.target");
}

TEST_F(ControllerTest, FrontDoorTablesFollowReadyReplicasAndReachEveryAgent) {
  ConnectThreeZones();
  ServiceSpec web = Spec("web", 3);
  web.front_door = FrontDoorPort{.port = 8080, .guest_port = 80};
  ASSERT_TRUE(controller_->CreateService(web).has_value());

  ServiceSpec clash = Spec("api", 1);
  clash.front_door = FrontDoorPort{.port = 8080, .guest_port = 81};
  auto refused = controller_->CreateService(clash);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(refused.error().field, "spec.front_door.port") << refused.error().message;

  // Until a replica is ready (running, not yet healthy here), the table has the service's
  // frontend and no server.
  for (const char* node : {"n-a", "n-b", "n-c"}) ReportAssigned(node);
  ASSERT_TRUE(Eventually([&] { return sessions_["n-a"]->LastFrontDoor().has_value(); }));
  EXPECT_TRUE(sessions_["n-a"]->LastFrontDoor()->services.at(0).servers.empty());

  // Every node reports its replica running and healthy, published on its own address.
  for (const auto& [node, session] : sessions_) {
    AgentReport report;
    const NodeAssignment a = *session->Last();
    report.applied_version = a.version;
    for (const AssignedReplica& r : a.replicas) {
      report.guests.push_back(
          {r.guest,
           ReplicaObservation{
               .guest_state = GuestState::kRunning,
               .healthy = true,
               .endpoints = {"10.0.0." + std::to_string(node.back() - 'a' + 1) + ":31000->80"}}});
    }
    controller_->AgentReported(session.get(), report);
  }
  Sync();
  auto table_has = [&](const std::string& node, size_t servers) {
    auto t = sessions_[node]->LastFrontDoor();
    return t && t->services.size() == 1 && t->services[0].servers.size() == servers;
  };
  ASSERT_TRUE(Eventually([&] { return table_has("n-a", 3) && table_has("n-c", 3); }));
  const FrontDoorTable first = *sessions_["n-b"]->LastFrontDoor();
  EXPECT_EQ(first.services[0].name, "web");
  EXPECT_EQ(first.services[0].port, 8080);
  std::set<std::string> addresses, zones;
  for (const FrontDoorServer& r : first.services[0].servers) {
    addresses.insert(r.address);
    zones.insert(r.zone);
    EXPECT_EQ(r.port, 31000);
    EXPECT_FALSE(r.draining);
  }
  EXPECT_EQ(addresses, (std::set<std::string>{"10.0.0.1", "10.0.0.2", "10.0.0.3"}));
  EXPECT_EQ(zones, (std::set<std::string>{"a", "b", "c"}));

  // Scaled in: the removed replica drains first, then leaves.
  ASSERT_TRUE(controller_->ScaleService("web", 2, 0).has_value());
  Sync();
  auto table = sessions_["n-a"]->LastFrontDoor();
  ASSERT_TRUE(table.has_value());
  EXPECT_GT(table->version, first.version);
  ASSERT_EQ(table->services[0].servers.size(), 3u);
  EXPECT_EQ(std::ranges::count(table->services[0].servers, true, &FrontDoorServer::draining), 1);

  // A late agent gets the current table right after its hello.
  Connect("n-d", "a");
  ASSERT_TRUE(sessions_["n-d"]->LastFrontDoor().has_value());
  EXPECT_EQ(sessions_["n-d"]->LastFrontDoor()->version, table->version);
}

TEST_F(ControllerTest, ARestartedSupervisorSendsNoFrontDoorTableBeforeTheNodesReport) {
  ConnectThreeZones();
  ServiceSpec web = Spec("web", 3);
  web.front_door = FrontDoorPort{.port = 8080, .guest_port = 80};
  ASSERT_TRUE(controller_->CreateService(web).has_value());
  auto report_healthy = [&] {
    for (const auto& [node, session] : sessions_) {
      AgentReport report;
      const std::optional<NodeAssignment> a = session->Last();
      if (!a) continue;
      report.applied_version = a->version;
      for (const AssignedReplica& r : a->replicas) {
        report.guests.push_back({r.guest, ReplicaObservation{.guest_state = GuestState::kRunning,
                                                             .healthy = true,
                                                             .endpoints = {"10.0.0.9:31000->80"}}});
      }
      controller_->AgentReported(session.get(), report);
    }
    Sync();
  };
  report_healthy();
  ASSERT_TRUE(Eventually([&] {
    auto t = sessions_["n-a"]->LastFrontDoor();
    return t && t->services.at(0).servers.size() == 3;
  }));

  // The supervisor restarts; the agents reconnect but have not reported yet.
  Stop();
  Start();
  sessions_.clear();
  ConnectThreeZones();
  std::this_thread::sleep_for(100ms);  // several ticks (20 ms), within down_after (300 ms)
  for (const auto& [node, session] : sessions_) {
    EXPECT_FALSE(session->LastFrontDoor().has_value())
        << node << " got a table before the nodes said what runs: every front door would empty";
  }
  // Their first reports: the table comes back whole.
  report_healthy();
  ASSERT_TRUE(Eventually([&] {
    auto t = sessions_["n-b"]->LastFrontDoor();
    return t && t->services.at(0).servers.size() == 3;
  }));
}

TEST_F(ControllerTest, FrontDoorServicesAutoscaleOnWhatTheFrontDoorsSent) {
  ConnectThreeZones();
  ServiceSpec web = Spec("web", 0);
  web.front_door = FrontDoorPort{.port = 8080, .guest_port = 80};
  web.autoscale = Rps100(60);
  ASSERT_TRUE(controller_->CreateService(web).has_value());
  const std::string replica = ReplicaGuestName("web", 0, 1);
  // The replica's own agent sees no request (its port proxy is not on the path); two nodes' front
  // doors sent it 200 and 150 requests/s: 350 in all, so ceil(350 / 100) = 4 replicas.
  auto pump = [&](double a, double b) {
    for (const auto& [node, session] : sessions_) {
      AgentReport report;
      const std::optional<NodeAssignment> assigned = session->Last();
      if (assigned) {
        report.applied_version = assigned->version;
        for (const AssignedReplica& r : assigned->replicas) {
          report.guests.push_back(
              {r.guest, ReplicaObservation{.guest_state = GuestState::kRunning,
                                           .healthy = true,
                                           .reported_at = Clock::now(),
                                           .metrics = GuestMetrics{.sampled_at = Clock::now(),
                                                                   .window_ms = 1000,
                                                                   .requests_valid = true,
                                                                   .requests_per_second = 0}}});
        }
      }
      const double rps = node == "n-a" ? a : node == "n-b" ? b : 0;
      report.front_door.push_back(
          FrontDoorServerLoad{.service = "web", .server = replica, .requests_per_second = rps});
      controller_->AgentReported(session.get(), report);
    }
    Sync();
  };
  auto shown = controller_->GetService("web");
  ASSERT_TRUE(Eventually(
      [&] {
        pump(200, 150);
        shown = controller_->GetService("web");
        return shown && !shown->replicas.empty() && shown->replicas[0].observed.metrics &&
               shown->replicas[0].observed.metrics->requests_per_second == 350;
      },
      3s));
  EXPECT_TRUE(shown->replicas[0].observed.metrics->requests_valid);
  ASSERT_TRUE(Eventually(
      [&] {
        pump(200, 150);
        return Replicas("web") == 4;
      },
      3s))
      << Replicas("web");
}

TEST_F(ControllerTest, ReplicasOnInstanceNetworksAreReachedAtTheirOwnAddresses) {
  auto hello = [&](const std::string& name, const std::string& zone, const std::string& address,
                   const std::string& subnet) {
    AgentHello h = Hello(name, zone);
    h.advertise_address = address;
    h.instance_subnet = subnet;
    sessions_[name] = std::make_unique<FakeSession>();
    controller_->AgentConnected(sessions_[name].get(), h);
    Sync();
  };
  hello("n-a", "a", "192.0.2.1", "10.88.1.0/24");
  hello("n-b", "b", "192.0.2.2", "10.88.2.0/24");
  hello("n-c", "c", "192.0.2.3", "10.88.2.128/25");  // overlaps b's: both left out of the routes
  ServiceSpec web = Spec("web", 3);
  web.front_door = FrontDoorPort{.port = 8080, .guest_port = 80};
  ASSERT_TRUE(controller_->CreateService(web).has_value());
  for (const auto& [node, session] : sessions_) {
    AgentReport report;
    const NodeAssignment a = *session->Last();
    report.applied_version = a.version;
    const std::string n = std::to_string(node.back() - 'a' + 1);
    for (const AssignedReplica& r : a.replicas) {
      report.guests.push_back(
          {r.guest, ReplicaObservation{.guest_state = GuestState::kRunning,
                                       .healthy = true,
                                       .endpoints = {"192.0.2." + n + ":31000->80"},
                                       .node_address = "10.88." + n + ".7"}});
    }
    controller_->AgentReported(session.get(), report);
  }
  Sync();
  std::optional<FrontDoorTable> table;
  ASSERT_TRUE(Eventually([&] {
    table = sessions_["n-a"]->LastFrontDoor();
    return table && table->services.size() == 1 && table->services[0].servers.size() == 3;
  }));
  std::map<std::string, std::string> where;
  for (const FrontDoorServer& s : table->services[0].servers) {
    where[s.zone] = s.address + ":" + std::to_string(s.port);
  }
  EXPECT_EQ(where, (std::map<std::string, std::string>{
                       {"a", "10.88.1.7:80"}, {"b", "192.0.2.2:31000"}, {"c", "192.0.2.3:31000"}}))
      << "b's and c's subnets overlap: their replicas are reached at their published ports";
  EXPECT_EQ(
      table->routes,
      (std::vector<NodeRoute>{{.node = "n-a", .subnet = "10.88.1.0/24", .via = "192.0.2.1"}}));

  // Node c comes back with a subnet of its own: every node gets every route.
  std::unique_ptr<FakeSession> first_link = std::move(sessions_["n-c"]);
  hello("n-c", "c", "192.0.2.3", "10.88.3.0/24");
  controller_->AgentGone(first_link.get());
  Sync();
  ASSERT_TRUE(Eventually([&] {
    table = sessions_["n-b"]->LastFrontDoor();
    return table && table->routes.size() == 3;
  }));
  EXPECT_EQ(table->routes[2],
            (NodeRoute{.node = "n-c", .subnet = "10.88.3.0/24", .via = "192.0.2.3"}));
}

TEST_F(ControllerTest, AFrontDoorReplicaDrainsUntilItsRequestsFinishUpToTheDeadline) {
  ConnectThreeZones();
  ServiceSpec web = Spec("web", 3);
  web.front_door = FrontDoorPort{.port = 8080, .guest_port = 80};
  ASSERT_TRUE(controller_->CreateService(web).has_value());
  std::set<std::string> guests;
  // Every node reports its replicas healthy, and its front door `in_flight` requests to each.
  auto report = [&](uint32_t in_flight) {
    for (const auto& [node, session] : sessions_) {
      AgentReport r;
      const std::optional<NodeAssignment> a = session->Last();
      if (!a) continue;
      r.applied_version = a->version;
      for (const AssignedReplica& g : a->replicas) {
        guests.insert(g.guest);
        r.guests.push_back({g.guest, ReplicaObservation{.guest_state = GuestState::kRunning,
                                                        .healthy = true,
                                                        .endpoints = {"10.0.0.1:31000->80"}}});
      }
      for (const std::string& g : guests) {
        r.front_door.push_back(FrontDoorServerLoad{
            .service = "web", .server = g, .requests_per_second = 1, .in_flight = in_flight});
      }
      controller_->AgentReported(session.get(), r);
    }
    Sync();
  };
  auto assigned = [&] {
    size_t n = 0;
    for (const auto& [node, session] : sessions_) n += session->Last()->replicas.size();
    return n;
  };
  report(0);
  ASSERT_TRUE(controller_->ScaleService("web", 2, 0).has_value());
  // Past the grace (300 ms) with a request still in flight: it stays.
  const auto left = std::chrono::steady_clock::now();
  for (int i = 0; i < 30; ++i) {
    report(1);
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(assigned(), 3u) << "stopped with a request in flight";
  // Its last request finished: it stops.
  EXPECT_TRUE(Eventually([&] {
    report(0);
    return assigned() == 2;
  })) << "still assigned after its requests finished";
  EXPECT_LT(std::chrono::steady_clock::now() - left, 1400ms) << "it waited for the deadline";
  auto events = store_.EventsSince(0, 1000);
  ASSERT_TRUE(events);
  EXPECT_TRUE(std::ranges::any_of(*events, [](const ClusterEvent& e) {
    return e.message.ends_with(": drained, no request in flight");
  }));

  // A replica whose requests never finish stops at the deadline (1.5 s here).
  ASSERT_TRUE(controller_->ScaleService("web", 1, 0).has_value());
  const auto second = std::chrono::steady_clock::now();
  EXPECT_TRUE(Eventually(
      [&] {
        report(2);
        return assigned() == 1;
      },
      5s));
  EXPECT_GE(std::chrono::steady_clock::now() - second, 1400ms);
  events = store_.EventsSince(0, 1000);
  EXPECT_TRUE(std::ranges::any_of(*events, [](const ClusterEvent& e) {
    return e.message.ends_with("drain deadline reached with 6 requests still in flight");
  })) << "three front doors with 2 each";
}

TEST_F(ControllerTest, ANodeWhoseFrontDoorPortIsTakenGetsNoReplicaAndServiceShowSaysWhy) {
  ConnectThreeZones();
  AgentReport blocked;
  blocked.front_door_blocked.push_back(
      BlockedFrontDoor{.service = "web",
                       .port = 8080,
                       .reason = "port 8080 on 192.0.2.2 is taken by another process"});
  controller_->AgentReported(sessions_["n-b"].get(), blocked);
  Sync();
  ServiceSpec web = Spec("web", 3);
  web.front_door = FrontDoorPort{.port = 8080, .guest_port = 80};
  web.spread_attribute.clear();
  auto created = controller_->CreateService(web);
  ASSERT_TRUE(created.has_value()) << created.error().ToString();
  std::map<std::string, int> per_node;
  for (const ReplicaStatus& r : created->replicas) per_node[r.placement.node]++;
  EXPECT_FALSE(per_node.contains("n-b")) << "n-b cannot serve port 8080";
  EXPECT_EQ(per_node["n-a"] + per_node["n-c"], 3);
  EXPECT_THAT(created->front_door_problems,
              testing::ElementsAre("n-b: port 8080 on 192.0.2.2 is taken by another process"));

  // Another service's port is free there.
  ServiceSpec api = Spec("api", 3);
  api.front_door = FrontDoorPort{.port = 9090, .guest_port = 80};
  auto other = controller_->CreateService(api);
  ASSERT_TRUE(other.has_value());
  EXPECT_TRUE(std::ranges::any_of(
      other->replicas, [](const ReplicaStatus& r) { return r.placement.node == "n-b"; }));
  EXPECT_TRUE(other->front_door_problems.empty());
}

}  // namespace
}  // namespace phoenix::supervisor
