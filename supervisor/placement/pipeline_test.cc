// Place() end to end: the chain as pipeline.cc builds it, over small static clusters.
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "supervisor/placement/placement.h"
#include "supervisor/placement/testing/nodes.h"

namespace phoenix::supervisor::placement {
namespace {

using testing::IndexOf;
using testing::NodeBuilder;

std::vector<PlacementRequest> Replicas(const std::string& service, uint32_t count,
                                       PlacementStrategy strategy = PlacementStrategy::kSpread) {
  std::vector<PlacementRequest> requests;
  for (uint32_t i = 0; i < count; ++i) {
    PlacementRequest request;
    request.service = service;
    request.index = i;
    request.need = {1, 512};
    request.spread_attribute = "zone";
    request.max_skew = 1;
    request.strategy = strategy;
    requests.push_back(request);
  }
  return requests;
}

std::map<std::string, int> PerZone(const ClusterView& cluster, const Plan& plan) {
  std::map<std::string, int> zones;
  for (const Decision& decision : plan.decisions) {
    if (decision.node) ++zones[cluster.nodes[*decision.node].zone];
  }
  return zones;
}

ClusterView ThreeZones(int nodes_per_zone) {
  ClusterView cluster;
  for (std::string zone : {"a", "b", "c"}) {
    for (int i = 0; i < nodes_per_zone; ++i) {
      cluster.nodes.push_back(NodeBuilder(zone + std::to_string(i), zone).Capacity(8, 16384));
    }
  }
  return cluster;
}

TEST(PlaceTest, SixReplicasOverThreeZonesLandTwoPerZone) {
  for (int per_zone : {1, 2, 5}) {
    for (PlacementStrategy strategy : {PlacementStrategy::kSpread, PlacementStrategy::kBinpack}) {
      SCOPED_TRACE(per_zone);
      ClusterView cluster = ThreeZones(per_zone);
      Plan plan = Place(cluster, Replicas("web", 6, strategy), Options{});
      ASSERT_EQ(plan.decisions.size(), 6u);
      for (const Decision& decision : plan.decisions) {
        ASSERT_TRUE(decision.node) << decision.explanation.Summary();
      }
      EXPECT_EQ(PerZone(cluster, plan), (std::map<std::string, int>{{"a", 2}, {"b", 2}, {"c", 2}}));
    }
  }
}

TEST(PlaceTest, ExistingReplicasCountTowardsTheSpread) {
  ClusterView cluster = ThreeZones(2);
  auto requests = Replicas("web", 3);
  for (PlacementRequest& request : requests) {
    // Two live replicas in zone a already.
    request.service_replica_nodes = {IndexOf(cluster, "a0"), IndexOf(cluster, "a1")};
  }
  Plan plan = Place(cluster, requests, Options{});
  EXPECT_EQ(PerZone(cluster, plan), (std::map<std::string, int>{{"b", 2}, {"c", 1}}));
}

TEST(PlaceTest, ADownZoneIsLeftOutOfTheSkew) {
  ClusterView cluster = ThreeZones(2);
  for (NodeView& node : cluster.nodes) {
    if (node.zone == "a") node.state = NodeState::kDown;
  }
  Plan plan = Place(cluster, Replicas("web", 6), Options{});
  for (const Decision& decision : plan.decisions) {
    ASSERT_TRUE(decision.node) << decision.explanation.Summary();
  }
  // Had the DOWN zone counted (0 replicas), b and c could hold only 1 each.
  EXPECT_EQ(PerZone(cluster, plan), (std::map<std::string, int>{{"b", 3}, {"c", 3}}));
  EXPECT_EQ(plan.decisions[0].explanation.rejected.at("node-state"), 2u);
}

TEST(PlaceTest, AFullZoneStillHoldsTheSpreadAndSaysSo) {
  ClusterView cluster = ThreeZones(1);
  cluster.nodes[0].allocated = {8, 16384};  // zone a is full
  Plan plan = Place(cluster, Replicas("web", 4), Options{});
  ASSERT_EQ(plan.decisions.size(), 4u);
  EXPECT_TRUE(plan.decisions[0].node);
  EXPECT_TRUE(plan.decisions[1].node);
  EXPECT_FALSE(plan.decisions[2].node);
  EXPECT_FALSE(plan.decisions[3].node);
  EXPECT_EQ(plan.decisions[2].explanation.Summary(),
            "no node fits (3 nodes): 2 zone-skew (b0: zone b would have 2, zone a has 0 (max skew "
            "1); c0: zone c would have 2, zone a has 0 (max skew 1)), 1 cpu (a0: needs 1 vCPU, 0 "
            "free)");
}

TEST(PlaceTest, BinpackAndSpreadChooseDifferently) {
  ClusterView cluster{{
      NodeBuilder("busy", "a").Capacity(16, 32768).Allocated(12, 24576),
      NodeBuilder("idle", "a").Capacity(16, 32768),
  }};
  auto spread = Replicas("web", 1, PlacementStrategy::kSpread);
  auto binpack = Replicas("web", 1, PlacementStrategy::kBinpack);
  Plan spread_plan = Place(cluster, spread, Options{});
  Plan binpack_plan = Place(cluster, binpack, Options{});
  ASSERT_TRUE(spread_plan.decisions[0].node);
  ASSERT_TRUE(binpack_plan.decisions[0].node);
  EXPECT_EQ(cluster.nodes[*spread_plan.decisions[0].node].name, "idle");
  EXPECT_EQ(cluster.nodes[*binpack_plan.decisions[0].node].name, "busy");

  // Binpack keeps filling the busy node until it is full, then moves on.
  auto many = Replicas("batch", 6, PlacementStrategy::kBinpack);
  for (auto& request : many) {
    request.spread_attribute.clear();
    request.need = {1, 1024};
  }
  Plan packed = Place(cluster, many, Options{});
  std::vector<std::string> names;
  for (const Decision& decision : packed.decisions) {
    ASSERT_TRUE(decision.node);
    names.push_back(cluster.nodes[*decision.node].name);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"busy", "busy", "busy", "busy", "idle", "idle"}));
}

TEST(PlaceTest, SpreadEvensOutIdenticalNodes) {
  ClusterView cluster{{NodeBuilder("n1", "a"), NodeBuilder("n2", "a"), NodeBuilder("n3", "a")}};
  auto requests = Replicas("web", 6);
  for (auto& request : requests) request.spread_attribute.clear();
  Plan plan = Place(cluster, requests, Options{});
  std::map<std::string, int> per_node;
  for (const Decision& decision : plan.decisions) {
    ASSERT_TRUE(decision.node);
    ++per_node[cluster.nodes[*decision.node].name];
  }
  EXPECT_EQ(per_node, (std::map<std::string, int>{{"n1", 2}, {"n2", 2}, {"n3", 2}}));
}

TEST(PlaceTest, DistinctHostsNeverDoublesUp) {
  ClusterView cluster{
      {NodeBuilder("n1", "a").Capacity(64, 65536), NodeBuilder("n2", "a"), NodeBuilder("n3", "b")}};
  auto requests = Replicas("db", 4, PlacementStrategy::kBinpack);
  for (auto& request : requests) {
    request.distinct_hosts = true;
    request.spread_attribute.clear();
  }
  Plan plan = Place(cluster, requests, Options{});
  std::set<size_t> used;
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(plan.decisions[i].node) << plan.decisions[i].explanation.Summary();
    EXPECT_TRUE(used.insert(*plan.decisions[i].node).second);
  }
  ASSERT_FALSE(plan.decisions[3].node);
  EXPECT_EQ(plan.decisions[3].explanation.rejected.at("distinct-hosts"), 3u);
  EXPECT_NE(plan.decisions[3].explanation.Summary().find("3 distinct-hosts"), std::string::npos);
}

TEST(PlaceTest, PendingExplanationCountsEveryReason) {
  ClusterView cluster{{
      NodeBuilder("n1", "a").Capacity(8, 16384).Allocated(1, 16000),
      NodeBuilder("n2", "a").Capacity(8, 16384).Allocated(0, 16256),
      NodeBuilder("n3", "b").Runtimes({RuntimeKind::kVm}),
      NodeBuilder("n4", "b").State(NodeState::kDown),
      NodeBuilder("n5", "c").Label("disk", "hdd"),
  }};
  PlacementRequest request;
  request.service = "web";
  request.need = {1, 512};
  request.node_selector = {{"disk", "ssd"}};
  cluster.nodes[0].labels = cluster.nodes[1].labels = {{"disk", "ssd"}};
  Plan plan = Place(cluster, {request}, Options{});
  ASSERT_EQ(plan.decisions.size(), 1u);
  const Decision& decision = plan.decisions[0];
  EXPECT_FALSE(decision.node);
  const Explanation& why = decision.explanation;
  EXPECT_EQ(why.nodes_total, 5u);
  EXPECT_EQ(why.nodes_evaluated, 5u);
  EXPECT_EQ(why.nodes_feasible, 0u);
  EXPECT_EQ(why.rejected, (std::map<std::string, size_t>{
                              {"memory", 2}, {"runtime", 1}, {"node-state", 1}, {"labels", 1}}));
  EXPECT_EQ(why.Summary(),
            "no node fits (5 nodes): 2 memory (n1: needs 512 MiB, 384 MiB free; n2: needs 512 "
            "MiB, 128 MiB free), 1 labels (n5: disk=hdd, wants disk=ssd), 1 node-state (n4: DOWN), "
            "1 runtime (n3: no container runtime)");
}

TEST(PlaceTest, PlacedExplanationListsScores) {
  ClusterView cluster = ThreeZones(1);
  auto requests = Replicas("web", 1);
  requests[0].image = "web:1";
  cluster.nodes[1].images = {"web:1"};
  Plan plan = Place(cluster, requests, Options{});
  ASSERT_TRUE(plan.decisions[0].node);
  EXPECT_EQ(cluster.nodes[*plan.decisions[0].node].name, "b0");  // only image locality differs
  const Explanation& why = plan.decisions[0].explanation;
  EXPECT_EQ(why.node, "b0");
  EXPECT_EQ(why.scores.size(), 4u);  // zone-spread, spread, anti-affinity, image-locality
  EXPECT_DOUBLE_EQ(why.scores.at("image-locality"), 1);
  EXPECT_DOUBLE_EQ(why.scores.at("zone-spread"), 1);
  EXPECT_EQ(why.Summary(),
            "placed on b0 (image-locality 1.00, zone-spread 1.00, spread 0.84, anti-affinity "
            "0.00); 3 feasible of 3 evaluated, 3 nodes");
}

TEST(PlaceTest, LeavingNodeAvoidedWhenAnAlternativeExists) {
  // The node being left is the emptiest, holds the image and is alone in its zone: every other
  // scorer prefers it, the penalty still wins.
  ClusterView cluster{{
      NodeBuilder("old", "a").Capacity(64, 262144).Image("web:1"),
      NodeBuilder("other", "b").Capacity(8, 16384).Allocated(6, 12288),
  }};
  auto requests = Replicas("web", 1);
  requests[0].image = "web:1";
  requests[0].leaving_node = 0;
  requests[0].service_replica_nodes = {1};
  requests[0].max_skew = 2;
  Plan plan = Place(cluster, requests, Options{});
  ASSERT_TRUE(plan.decisions[0].node);
  EXPECT_EQ(*plan.decisions[0].node, 1u);

  // With no alternative, the replica goes back rather than staying pending.
  cluster.nodes[1].allocated = {8, 16384};
  plan = Place(cluster, requests, Options{});
  ASSERT_TRUE(plan.decisions[0].node);
  EXPECT_EQ(*plan.decisions[0].node, 0u);
  EXPECT_DOUBLE_EQ(plan.decisions[0].explanation.scores.at("reschedule-penalty"), -1);
}

TEST(PlaceTest, DeterministicForASeed) {
  ClusterView cluster;
  for (int i = 0; i < 300; ++i) {
    std::string zone(1, static_cast<char>('a' + i % 3));
    cluster.nodes.push_back(NodeBuilder("n" + std::to_string(i), zone));
  }
  std::vector<PlacementRequest> requests;
  for (int s = 0; s < 5; ++s) {
    auto more = Replicas("svc" + std::to_string(s), 10);
    requests.insert(requests.end(), more.begin(), more.end());
  }
  auto nodes_of = [&](const Plan& plan) {
    std::vector<size_t> nodes;
    for (const Decision& decision : plan.decisions) {
      EXPECT_TRUE(decision.node);
      nodes.push_back(decision.node.value_or(SIZE_MAX));
    }
    return nodes;
  };
  Options one{.limit = 0, .seed = 1};
  Options two{.limit = 0, .seed = 2};
  auto first = nodes_of(Place(cluster, requests, one));
  EXPECT_EQ(first, nodes_of(Place(cluster, requests, one)));
  // With 300 identical nodes and 9 candidates per request, the seed picks the sample.
  EXPECT_NE(first, nodes_of(Place(cluster, requests, two)));
  // Every service still spreads 4/3/3 whatever the seed.
  for (const Options& options : {one, two}) {
    Plan plan = Place(cluster, requests, options);
    for (size_t s = 0; s < 5; ++s) {
      std::map<std::string, int> zones;
      for (size_t r = 0; r < 10; ++r) ++zones[cluster.nodes[*plan.decisions[s * 10 + r].node].zone];
      for (const auto& [zone, count] : zones) {
        EXPECT_GE(count, 3) << zone;
        EXPECT_LE(count, 4) << zone;
      }
    }
  }
}

TEST(PlaceTest, DecisionsSeeEarlierResources) {
  ClusterView cluster{{NodeBuilder("only", "a").Capacity(4, 4096)}};
  auto requests = Replicas("web", 5);
  for (auto& request : requests) request.need = {1, 1024};
  Plan plan = Place(cluster, requests, Options{});
  for (size_t i = 0; i < 4; ++i) EXPECT_TRUE(plan.decisions[i].node);
  ASSERT_FALSE(plan.decisions[4].node);
  EXPECT_EQ(plan.decisions[4].explanation.Summary(),
            "no node fits (1 node): 1 cpu (only: needs 1 vCPU, 0 free)");
}

}  // namespace
}  // namespace phoenix::supervisor::placement
