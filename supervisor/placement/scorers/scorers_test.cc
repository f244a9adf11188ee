// Table-driven tests of every scorer over one static node list.
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "supervisor/placement/scorers/anti_affinity.h"
#include "supervisor/placement/scorers/binpack.h"
#include "supervisor/placement/scorers/image_locality.h"
#include "supervisor/placement/scorers/reschedule_penalty.h"
#include "supervisor/placement/scorers/spread.h"
#include "supervisor/placement/scorers/zone_spread.h"
#include "supervisor/placement/testing/nodes.h"

namespace phoenix::supervisor::placement {
namespace {

using testing::IndexOf;
using testing::NodeBuilder;

// Free before placing a {2 vCPU, 4 GiB} replica: e1 all, f1 half, g1 a quarter; h1 is in zone c.
const ClusterView& Nodes() {
  static const ClusterView cluster{{
      NodeBuilder("e1", "a").Capacity(8, 16384).Image("web:1"),
      NodeBuilder("f1", "a").Capacity(8, 16384).Allocated(4, 8192),
      NodeBuilder("g1", "b").Capacity(8, 16384).Allocated(6, 12288),
      NodeBuilder("h1", "c").Capacity(8, 16384),
      NodeBuilder("z0", "c").Capacity(0, 0),
  }};
  return cluster;
}

struct ScoreCase {
  std::string name;
  std::string node;
  std::function<void(PlacementRequest&)> adjust = [](PlacementRequest&) {};
  std::vector<std::string> replicas_on = {};
  std::vector<std::string> committed = {};
  bool applies = true;
  double score = 0;  // when it applies
};

void RunTable(const Scorer& scorer, const std::vector<ScoreCase>& cases) {
  const ClusterView& cluster = Nodes();
  for (const ScoreCase& c : cases) {
    SCOPED_TRACE(std::string(scorer.Name()) + ": " + c.name);
    PlacementRequest request;
    request.service = "web";
    request.need = {2, 4096};
    c.adjust(request);
    for (const std::string& name : c.replicas_on) {
      request.service_replica_nodes.push_back(IndexOf(cluster, name));
    }
    PlanState plan(cluster);
    for (const std::string& name : c.committed) plan.Commit(request, IndexOf(cluster, name));
    RequestContext context(plan, request);
    size_t index = IndexOf(cluster, c.node);
    ASSERT_LT(index, cluster.nodes.size());

    EXPECT_EQ(scorer.Applies(context), c.applies);
    if (!c.applies) continue;
    double score = scorer.Score(cluster.nodes[index], index, context);
    EXPECT_NEAR(score, c.score, 1e-9);
    EXPECT_GE(score, -1.0);
    EXPECT_LE(score, 1.0);
  }
}

void Zone(PlacementRequest& r) { r.spread_attribute = "zone"; }

TEST(ZoneSpreadScorerTest, FavorsTheZoneFurthestBelowItsShare) {
  RunTable(
      ZoneSpreadScorer(1),
      {
          {.name = "no spread", .node = "e1", .applies = false},
          {.name = "first replica: every zone is empty", .node = "e1", .adjust = Zone, .score = 1},
          // a:2 b:0 c:0, desired (2+1)/3 = 1
          {.name = "over its share",
           .node = "f1",
           .adjust = Zone,
           .replicas_on = {"e1", "f1"},
           .score = -1},
          {.name = "empty zone",
           .node = "g1",
           .adjust = Zone,
           .replicas_on = {"e1", "f1"},
           .score = 1},
          // a:1 b:1 c:0 (one placed in this plan), desired 1
          {.name = "at its share",
           .node = "e1",
           .adjust = Zone,
           .replicas_on = {"e1"},
           .committed = {"g1"},
           .score = 0},
          // a:1 b:0 c:0, desired 2/3
          {.name = "half over", .node = "e1", .adjust = Zone, .replicas_on = {"f1"}, .score = -0.5},
      });
}

TEST(SpreadScorerTest, FavorsTheEmptiestNode) {
  RunTable(SpreadScorer(1),
           {
               {.name = "binpack request",
                .node = "e1",
                .adjust = [](PlacementRequest& r) { r.strategy = PlacementStrategy::kBinpack; },
                .applies = false},
               {.name = "empty node: 3/4 free after", .node = "e1", .score = 0.5},
               {.name = "half full: 1/4 free after", .node = "f1", .score = -0.5},
               {.name = "ends full", .node = "g1", .score = -1},
               {.name = "earlier decision counted", .node = "e1", .committed = {"e1"}, .score = 0},
               {.name = "no capacity at all", .node = "z0", .score = -1},
           });
}

TEST(BinpackScorerTest, FavorsTheFullestNode) {
  auto binpack = [](PlacementRequest& r) { r.strategy = PlacementStrategy::kBinpack; };
  RunTable(BinpackScorer(1),
           {
               {.name = "spread request", .node = "e1", .applies = false},
               {.name = "empty node", .node = "e1", .adjust = binpack, .score = -0.5},
               {.name = "half full", .node = "f1", .adjust = binpack, .score = 0.5},
               {.name = "ends full", .node = "g1", .adjust = binpack, .score = 1},
               {.name = "earlier decisions counted",
                .node = "e1",
                .adjust = binpack,
                .committed = {"e1", "e1"},
                .score = 0.5},
           });
}

TEST(AntiAffinityScorerTest, FewerReplicasOfTheServiceIsBetter) {
  RunTable(
      AntiAffinityScorer(1),
      {
          {.name = "none", .node = "e1", .replicas_on = {"f1"}, .score = 0},
          {.name = "one live", .node = "e1", .replicas_on = {"e1"}, .score = -0.5},
          {.name = "one live, one planned",
           .node = "e1",
           .replicas_on = {"e1"},
           .committed = {"e1"},
           .score = -2.0 / 3},
          {.name = "three live", .node = "f1", .replicas_on = {"f1", "f1", "f1"}, .score = -0.75},
      });
}

TEST(ImageLocalityScorerTest, ImageAlreadyOnTheNodeScoresOne) {
  auto image = [](std::string name) { return [=](PlacementRequest& r) { r.image = name; }; };
  RunTable(ImageLocalityScorer(1),
           {
               {.name = "no image", .node = "e1", .applies = false},
               {.name = "present", .node = "e1", .adjust = image("web:1"), .score = 1},
               {.name = "other tag", .node = "e1", .adjust = image("web:2"), .score = 0},
               {.name = "absent", .node = "f1", .adjust = image("web:1"), .score = 0},
           });
}

TEST(ReschedulePenaltyScorerTest, TheNodeBeingLeftScoresMinusOne) {
  auto leaving = [](size_t node) { return [=](PlacementRequest& r) { r.leaving_node = node; }; };
  RunTable(ReschedulePenaltyScorer(1),
           {
               {.name = "not a replacement", .node = "e1", .applies = false},
               {.name = "the node left", .node = "e1", .adjust = leaving(0), .score = -1},
               {.name = "another node", .node = "f1", .adjust = leaving(0), .score = 0},
           });
}

}  // namespace
}  // namespace phoenix::supervisor::placement
