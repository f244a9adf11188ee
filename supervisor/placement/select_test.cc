#include "supervisor/placement/select.h"

#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "supervisor/placement/filters/node_state.h"
#include "supervisor/placement/scorers/spread.h"
#include "supervisor/placement/testing/nodes.h"

namespace phoenix::supervisor::placement {
namespace {

using testing::NodeBuilder;

TEST(EffectiveLimitTest, ZeroMeansLog2ButAtLeastEight) {
  struct Case {
    size_t limit, nodes, want;
  } cases[] = {
      {0, 0, 8},    {0, 1, 8},      {0, 3, 8},         {0, 256, 8},   {0, 257, 9},   {0, 512, 9},
      {0, 513, 10}, {0, 10000, 14}, {0, 1u << 20, 20}, {3, 10000, 3}, {100, 5, 100},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(EffectiveLimit(c.limit, c.nodes), c.want) << c.limit << " " << c.nodes;
  }
}

TEST(VisitOrderTest, IsAPermutationForEverySize) {
  for (size_t n : {1u, 2u, 3u, 4u, 5u, 7u, 8u, 9u, 100u, 1000u, 1025u, 4096u, 10000u}) {
    for (uint64_t key : {0ull, 1ull, 42ull}) {
      VisitOrder order(n, key);
      std::vector<bool> seen(n, false);
      for (size_t i = 0; i < n; ++i) {
        size_t at = order[i];
        ASSERT_LT(at, n) << n;
        ASSERT_FALSE(seen[at]) << "n=" << n << " key=" << key << " repeats " << at;
        seen[at] = true;
      }
    }
  }
}

TEST(VisitOrderTest, SameKeySameOrderOtherKeyOtherOrder) {
  auto order = [](uint64_t key) {
    VisitOrder visit(1000, key);
    std::vector<size_t> out;
    for (size_t i = 0; i < 20; ++i) out.push_back(visit[i]);
    return out;
  };
  EXPECT_EQ(order(7), order(7));
  EXPECT_NE(order(7), order(8));
  EXPECT_NE(VisitKey(1, 0), VisitKey(1, 1));
  EXPECT_NE(VisitKey(1, 0), VisitKey(2, 0));
}

TEST(VisitOrderTest, IsShuffledNotSequential) {
  VisitOrder visit(1000, 99);
  size_t in_place = 0;
  size_t ascending = 0;
  for (size_t i = 0; i < 1000; ++i) {
    if (visit[i] == i) ++in_place;
    if (i > 0 && visit[i] == visit[i - 1] + 1) ++ascending;
  }
  EXPECT_LT(in_place, 20u);
  EXPECT_LT(ascending, 20u);
}

class SelectTest : public ::testing::Test {
 protected:
  NodeStateFilter node_state_;
  SpreadScorer spread_{1};
  Chain chain_{{&node_state_}, {&spread_}};
};

TEST_F(SelectTest, StopsAfterLimitFeasibleCandidates) {
  ClusterView cluster;
  for (int i = 0; i < 100; ++i) {
    NodeBuilder node("n" + std::to_string(i), "a");
    if (i % 2 == 0) node.State(NodeState::kDown);
    cluster.nodes.push_back(node);
  }
  PlanState plan(cluster);
  PlacementRequest request;
  request.need = {1, 256};
  RequestContext context(plan, request);
  Decision decision = Select(chain_, context, 5, 1);
  ASSERT_TRUE(decision.node);
  EXPECT_EQ(decision.explanation.nodes_feasible, 5u);
  EXPECT_EQ(decision.explanation.nodes_evaluated, 5u + decision.explanation.rejected["node-state"]);
  EXPECT_LT(decision.explanation.nodes_evaluated, 100u);
}

TEST_F(SelectTest, ScoresAllNodesWhenTheClusterIsWithinTheLimit) {
  ClusterView cluster{
      {NodeBuilder("x", "a"), NodeBuilder("y", "a").Capacity(64, 65536), NodeBuilder("z", "a")}};
  PlanState plan(cluster);
  PlacementRequest request;
  request.need = {1, 256};
  RequestContext context(plan, request);
  for (uint64_t key = 0; key < 10; ++key) {
    Decision decision = Select(chain_, context, 8, key);
    ASSERT_TRUE(decision.node);
    EXPECT_EQ(*decision.node, 1u);  // the emptiest, whatever the visiting order
    EXPECT_EQ(decision.explanation.nodes_evaluated, 3u);
  }
}

TEST_F(SelectTest, TiesGoToTheSmallestNodeName) {
  ClusterView cluster{{NodeBuilder("m", "a"), NodeBuilder("c", "a"), NodeBuilder("q", "a")}};
  PlanState plan(cluster);
  PlacementRequest request;
  request.need = {1, 256};
  RequestContext context(plan, request);
  for (uint64_t key = 0; key < 10; ++key) {
    Decision decision = Select(chain_, context, 8, key);
    ASSERT_TRUE(decision.node);
    EXPECT_EQ(*decision.node, 1u);
    EXPECT_EQ(decision.explanation.node, "c");
  }
}

TEST_F(SelectTest, NothingFeasibleIsPendingWithEveryNodeEvaluated) {
  ClusterView cluster{
      {NodeBuilder("m", "a").State(NodeState::kDown), NodeBuilder("c", "a").Drained()}};
  PlanState plan(cluster);
  PlacementRequest request;
  RequestContext context(plan, request);
  Decision decision = Select(chain_, context, 8, 3);
  EXPECT_FALSE(decision.node);
  EXPECT_EQ(decision.explanation.nodes_evaluated, 2u);
  EXPECT_EQ(decision.explanation.rejected["node-state"], 2u);
  EXPECT_TRUE(decision.explanation.scores.empty());
}

TEST_F(SelectTest, EmptyClusterIsPending) {
  ClusterView cluster;
  PlanState plan(cluster);
  PlacementRequest request;
  RequestContext context(plan, request);
  Decision decision = Select(chain_, context, 8, 3);
  EXPECT_FALSE(decision.node);
  EXPECT_EQ(decision.explanation.Summary(), "no node fits (0 nodes)");
}

}  // namespace
}  // namespace phoenix::supervisor::placement
