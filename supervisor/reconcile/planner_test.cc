#include "supervisor/reconcile/planner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace phoenix::supervisor {
namespace {

using Kind = ReplicaChange::Kind;
using namespace std::chrono_literals;

PlannerNode MakeNode(std::string name, std::string zone, NodeState state = NodeState::kReady,
                     bool drained = false, uint64_t memory_mib = 4096) {
  PlannerNode n;
  n.record.name = std::move(name);
  n.record.zone = std::move(zone);
  n.record.capacity = {8, memory_mib};
  n.record.runtimes = {RuntimeKind::kContainer, RuntimeKind::kVm};
  n.record.drained = drained;
  n.state = state;
  return n;
}

Service MakeService(std::string name, uint32_t replicas,
                    std::vector<ReplicaPlacement> placed = {}) {
  Service s;
  s.spec.name = std::move(name);
  s.spec.image = "demo:latest";
  s.spec.replicas = replicas;
  s.spec.memory_mib = 256;
  s.spec.spread_attribute = "zone";
  s.replicas = std::move(placed);
  s.version = 1;
  return s;
}

std::map<std::string, PlannerNode> ThreeZones(NodeState zone_c_state = NodeState::kReady) {
  std::map<std::string, PlannerNode> nodes;
  for (auto [name, zone] :
       {std::pair{"a1", "a"}, {"a2", "a"}, {"b1", "b"}, {"b2", "b"}, {"c1", "c"}, {"c2", "c"}}) {
    nodes[name] = MakeNode(name, zone, zone[0] == 'c' ? zone_c_state : NodeState::kReady);
  }
  return nodes;
}

ReconcilePlan Plan(const std::map<std::string, Service>& services,
                   const std::map<std::string, PlannerNode>& nodes) {
  return PlanReconcile({.services = &services, .nodes = &nodes}, placement::Options{});
}

std::map<std::string, int> ZoneCounts(const ReconcilePlan& plan,
                                      const std::map<std::string, PlannerNode>& nodes,
                                      const std::vector<ReplicaPlacement>& staying = {}) {
  std::map<std::string, int> counts;
  for (const ReplicaPlacement& r : staying) counts[nodes.at(r.node).record.zone]++;
  for (const ReplicaChange& c : plan.changes) {
    if (c.kind == Kind::kPlace || c.kind == Kind::kReplace)
      counts[nodes.at(c.to_node).record.zone]++;
  }
  return counts;
}

TEST(PlannerTest, SettledClusterNeedsNothing) {
  auto nodes = ThreeZones();
  std::map<std::string, Service> services{
      {"web", MakeService("web", 3, {{0, 1, "a1"}, {1, 1, "b1"}, {2, 1, "c1"}})}};
  EXPECT_TRUE(Plan(services, nodes).changes.empty());
}

TEST(PlannerTest, NewServiceSpreadsTwoPerZone) {
  auto nodes = ThreeZones();
  std::map<std::string, Service> services{{"web", MakeService("web", 6)}};
  ReconcilePlan plan = Plan(services, nodes);
  ASSERT_EQ(plan.changes.size(), 6u);
  std::set<uint32_t> indexes;
  for (const ReplicaChange& c : plan.changes) {
    EXPECT_EQ(c.kind, Kind::kPlace);
    EXPECT_EQ(c.generation, 1u);
    EXPECT_TRUE(c.from_node.empty());
    indexes.insert(c.index);
  }
  EXPECT_EQ(indexes, (std::set<uint32_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(ZoneCounts(plan, nodes), (std::map<std::string, int>{{"a", 2}, {"b", 2}, {"c", 2}}));
}

struct MoveCase {
  std::string name;
  NodeState c1_state;
  bool c1_drained;
  bool expect_move;
  std::string reason_has;
};

class PlannerMoveTest : public testing::TestWithParam<MoveCase> {};

TEST_P(PlannerMoveTest, ReplicaLeavesOnlyDownDrainedOrUnknownNodes) {
  const MoveCase& tc = GetParam();
  auto nodes = ThreeZones();
  nodes["c1"].state = tc.c1_state;
  nodes["c1"].record.drained = tc.c1_drained;
  std::map<std::string, Service> services{
      {"web", MakeService("web", 3, {{0, 1, "a1"}, {1, 1, "b1"}, {2, 4, "c1"}})}};
  ReconcilePlan plan = Plan(services, nodes);
  if (!tc.expect_move) {
    EXPECT_TRUE(plan.changes.empty());
    return;
  }
  ASSERT_EQ(plan.changes.size(), 1u);
  const ReplicaChange& c = plan.changes[0];
  EXPECT_EQ(c.kind, Kind::kReplace);
  EXPECT_EQ(c.index, 2u);
  EXPECT_EQ(c.from_node, "c1");
  EXPECT_EQ(c.generation, 5u) << "a replacement is a new generation";
  EXPECT_NE(c.to_node, "c1");
  EXPECT_THAT(c.reason, testing::HasSubstr(tc.reason_has));
  // Zone c still has a usable node: the spread keeps the replica in zone c.
  EXPECT_EQ(c.to_node, "c2");
}

INSTANTIATE_TEST_SUITE_P(
    Cases, PlannerMoveTest,
    testing::Values(MoveCase{"ready", NodeState::kReady, false, false, ""},
                    MoveCase{"suspect_stays", NodeState::kSuspect, false, false, ""},
                    MoveCase{"down_moves", NodeState::kDown, false, true, "is DOWN"},
                    MoveCase{"drained_moves", NodeState::kReady, true, true, "drained"}),
    [](const auto& info) { return info.param.name; });

TEST(PlannerTest, LostZoneReplicasGoToOtherZones) {
  auto nodes = ThreeZones(NodeState::kDown);
  std::vector<ReplicaPlacement> placed{{0, 1, "a1"}, {1, 1, "a2"}, {2, 1, "b1"},
                                       {3, 1, "b2"}, {4, 1, "c1"}, {5, 1, "c2"}};
  std::map<std::string, Service> services{{"web", MakeService("web", 6, placed)}};
  ReconcilePlan plan = Plan(services, nodes);
  ASSERT_EQ(plan.changes.size(), 2u);
  std::vector<ReplicaPlacement> staying(placed.begin(), placed.begin() + 4);
  EXPECT_EQ(ZoneCounts(plan, nodes, staying), (std::map<std::string, int>{{"a", 3}, {"b", 3}}));
  for (const ReplicaChange& c : plan.changes) {
    EXPECT_EQ(c.kind, Kind::kReplace);
    EXPECT_THAT(c.from_node, testing::StartsWith("c"));
  }
}

TEST(PlannerTest, NoFeasibleNodeLeavesReplicaPendingWithReason) {
  std::map<std::string, PlannerNode> nodes{{"a1", MakeNode("a1", "a")}};
  nodes["a1"].record.runtimes = {RuntimeKind::kVm};
  std::map<std::string, Service> services{{"web", MakeService("web", 1)}};
  ReconcilePlan plan = Plan(services, nodes);
  ASSERT_EQ(plan.changes.size(), 1u);
  EXPECT_EQ(plan.changes[0].kind, Kind::kPending);
  EXPECT_FALSE(plan.changes[0].reason.empty());
}

TEST(PlannerTest, DownNodeWithNowhereToGoFencesAndPends) {
  std::map<std::string, PlannerNode> nodes{{"a1", MakeNode("a1", "a", NodeState::kDown)}};
  std::map<std::string, Service> services{{"web", MakeService("web", 1, {{0, 3, "a1"}})}};
  ReconcilePlan plan = Plan(services, nodes);
  ASSERT_EQ(plan.changes.size(), 1u);
  EXPECT_EQ(plan.changes[0].kind, Kind::kPending);
  EXPECT_EQ(plan.changes[0].from_node, "a1");
  EXPECT_THAT(plan.changes[0].reason, testing::HasSubstr("a1 is DOWN"));
}

TEST(PlannerTest, ScaleOutFillsLowestFreeIndexes) {
  auto nodes = ThreeZones();
  std::map<std::string, Service> services{
      {"web", MakeService("web", 4, {{1, 1, "a1"}, {3, 1, "b1"}})}};
  ReconcilePlan plan = Plan(services, nodes);
  std::set<uint32_t> placed;
  for (const ReplicaChange& c : plan.changes) {
    EXPECT_EQ(c.kind, Kind::kPlace);
    placed.insert(c.index);
  }
  EXPECT_EQ(placed, (std::set<uint32_t>{0, 2}));
}

struct ScaleInCase {
  std::string name;
  std::vector<ReplicaPlacement> placed;
  uint32_t replicas;
  std::set<uint32_t> removed;
};

class PlannerScaleInTest : public testing::TestWithParam<ScaleInCase> {};

TEST_P(PlannerScaleInTest, RemovesPendingThenGoneThenMostCrowdedZone) {
  const ScaleInCase& tc = GetParam();
  auto nodes = ThreeZones();
  nodes["c2"].state = NodeState::kDown;
  std::map<std::string, Service> services{{"web", MakeService("web", tc.replicas, tc.placed)}};
  std::set<uint32_t> removed;
  for (const ReplicaChange& c : Plan(services, nodes).changes) {
    if (c.kind == Kind::kRemove) removed.insert(c.index);
  }
  EXPECT_EQ(removed, tc.removed);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, PlannerScaleInTest,
    testing::Values(
        ScaleInCase{"pending_first", {{0, 1, "a1"}, {1, 0, ""}, {2, 1, "b1"}}, 2, {1}},
        ScaleInCase{"down_node_next", {{0, 1, "a1"}, {1, 1, "c2"}, {2, 1, "b1"}}, 2, {1}},
        ScaleInCase{
            "crowded_zone", {{0, 1, "a1"}, {1, 1, "a2"}, {2, 1, "b1"}, {3, 1, "a1"}}, 3, {3}},
        ScaleInCase{"to_zero", {{0, 1, "a1"}, {1, 1, "b1"}}, 0, {0, 1}}),
    [](const auto& info) { return info.param.name; });

struct LivenessCase {
  std::string name;
  NodeState current;
  bool connected;
  std::chrono::milliseconds silence;
  NodeState expected;
};

class LivenessTest : public testing::TestWithParam<LivenessCase> {};

TEST_P(LivenessTest, NextNodeState) {
  const LivenessCase& tc = GetParam();
  EXPECT_EQ(NextNodeState(tc.current, tc.connected, tc.silence, {2500ms, 4000ms}), tc.expected);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, LivenessTest,
    testing::Values(
        LivenessCase{"fresh", NodeState::kReady, true, 900ms, NodeState::kReady},
        LivenessCase{"late", NodeState::kReady, true, 2600ms, NodeState::kSuspect},
        LivenessCase{"link_closed", NodeState::kReady, false, 10ms, NodeState::kSuspect},
        LivenessCase{"resumed", NodeState::kSuspect, true, 100ms, NodeState::kReady},
        LivenessCase{"dead", NodeState::kSuspect, false, 4000ms, NodeState::kDown},
        LivenessCase{"dead_connected", NodeState::kReady, true, 5000ms, NodeState::kDown},
        LivenessCase{"down_sticks", NodeState::kDown, true, 10ms, NodeState::kDown}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace phoenix::supervisor
