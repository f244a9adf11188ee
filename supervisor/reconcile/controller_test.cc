#include "supervisor/reconcile/controller_test_fixture.h"

namespace phoenix::supervisor {
namespace {

using namespace std::chrono_literals;

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

}  // namespace
}  // namespace phoenix::supervisor
