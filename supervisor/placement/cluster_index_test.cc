// The zone index gives the same eligible zones, and so the same plans, as a scan of every node.
#include "supervisor/placement/cluster_index.h"

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "supervisor/placement/filters/labels.h"
#include "supervisor/placement/filters/node_state.h"
#include "supervisor/placement/plan_state.h"
#include "supervisor/placement/testing/nodes.h"

namespace phoenix::supervisor::placement {
namespace {

using testing::NodeBuilder;

// The pre-index definition: a zone is eligible when any of its nodes passes the node-level checks.
std::map<std::string, bool> ScanEligible(const ClusterView& cluster,
                                         const PlacementRequest& request) {
  std::map<std::string, bool> zones;
  for (const NodeView& node : cluster.nodes) {
    if (node.zone.empty()) continue;
    bool ok = NodeStateFilter::Passes(node) && node.runtimes.contains(request.runtime) &&
              LabelsFilter::Passes(node, request);
    zones[node.zone] = zones[node.zone] || ok;
  }
  return zones;
}

std::map<std::string, bool> IndexEligible(const ClusterView& cluster,
                                          const PlacementRequest& request) {
  PlanState plan(cluster);
  const std::vector<bool>& eligible = plan.EligibleZones(request);
  std::map<std::string, bool> zones;
  for (ZoneId zone = 0; zone < plan.ZoneCount(); ++zone) {
    zones[std::string(plan.ZoneName(zone))] = eligible[zone];
  }
  return zones;
}

PlacementRequest Spread(RuntimeKind runtime = RuntimeKind::kContainer,
                        std::map<std::string, std::string> selector = {}) {
  PlacementRequest request;
  request.service = "web";
  request.need = {1, 512};
  request.spread_attribute = "zone";
  request.runtime = runtime;
  request.node_selector = std::move(selector);
  return request;
}

struct Case {
  std::string name;
  ClusterView cluster;
  PlacementRequest request;
  std::map<std::string, bool> expected;
};

std::vector<Case> Cases() {
  std::vector<Case> cases;
  {
    Case c{"only the last node of zone b is eligible", {}, Spread(), {}};
    c.cluster.nodes = {
        NodeBuilder("a0", "a"),           NodeBuilder("b0", "b").State(NodeState::kDown),
        NodeBuilder("b1", "b").Drained(), NodeBuilder("b2", "b").State(NodeState::kSuspect),
        NodeBuilder("c0", "c"),           NodeBuilder("b3", "b")};
    c.expected = {{"a", true}, {"b", true}, {"c", true}};
    cases.push_back(std::move(c));
  }
  {
    Case c{"zone c all DOWN", {}, Spread(), {}};
    c.cluster.nodes = {NodeBuilder("c0", "c").State(NodeState::kDown), NodeBuilder("a0", "a"),
                       NodeBuilder("c1", "c").State(NodeState::kDown), NodeBuilder("b0", "b"),
                       NodeBuilder("c2", "c").State(NodeState::kDown)};
    c.expected = {{"a", true}, {"b", true}, {"c", false}};
    cases.push_back(std::move(c));
  }
  {
    Case c{"runtime and labels, interleaved zones, a node without zone",
           {},
           Spread(RuntimeKind::kVm, {{"disk", "ssd"}}),
           {}};
    c.cluster.nodes = {
        NodeBuilder("a0", "a").Runtimes({RuntimeKind::kVm}).Label("disk", "hdd"),
        NodeBuilder("b0", "b").Label("disk", "ssd"),
        NodeBuilder("x", "").Runtimes({RuntimeKind::kVm}).Label("disk", "ssd"),
        NodeBuilder("a1", "a"),
        NodeBuilder("b1", "b").Runtimes({RuntimeKind::kVm}).Label("disk", "ssd"),
        NodeBuilder("a2", "a").Runtimes({RuntimeKind::kVm}).Label("disk", "ssd"),
    };
    c.expected = {{"a", true}, {"b", true}};
    cases.push_back(std::move(c));
  }
  {
    Case c{"no zone eligible", {}, Spread(RuntimeKind::kMicroVm), {}};
    c.cluster.nodes = {NodeBuilder("a0", "a"), NodeBuilder("b0", "b")};
    c.expected = {{"a", false}, {"b", false}};
    cases.push_back(std::move(c));
  }
  return cases;
}

TEST(ClusterIndexTest, EligibleZonesMatchAScanOfEveryNode) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(ScanEligible(c.cluster, c.request), c.expected);
    EXPECT_EQ(IndexEligible(c.cluster, c.request), c.expected);
  }
}

TEST(ClusterIndexTest, ZonesAreNumberedInOrderOfFirstAppearance) {
  ClusterView cluster;
  cluster.nodes = {NodeBuilder("c0", "c"), NodeBuilder("x", ""), NodeBuilder("a0", "a"),
                   NodeBuilder("c1", "c")};
  ClusterIndex index(cluster);
  ASSERT_EQ(index.ZoneCount(), 2u);
  EXPECT_EQ(index.ZoneName(0), "c");
  EXPECT_EQ(index.ZoneName(1), "a");
  EXPECT_EQ(index.ZoneOf(1), kNoZone);
  EXPECT_EQ(index.NodesIn(0), (std::vector<size_t>{0, 3}));
}

// The cached index never outlives a change of the nodes: a plan over a changed view equals the
// plan over a fresh copy of it built without any cache.
TEST(ClusterIndexTest, PlansAfterChangingTheViewMatchAFreshView) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    ClusterView cluster = c.cluster;
    std::vector<PlacementRequest> requests(4, c.request);
    for (uint32_t i = 0; i < requests.size(); ++i) requests[i].index = i;
    (void)Place(cluster, requests, Options{});  // builds and caches the index
    ASSERT_NE(cluster.index_cache.Get(), nullptr);

    // Move the first node to a new zone and add a node to another new one.
    cluster.nodes[0].zone = "moved";
    cluster.nodes.push_back(NodeBuilder("z0", "z").Runtimes({c.request.runtime}));
    ClusterView fresh;
    fresh.nodes = cluster.nodes;
    Plan cached = Place(cluster, requests, Options{});
    Plan reference = Place(fresh, requests, Options{});
    ASSERT_EQ(cached.decisions.size(), reference.decisions.size());
    for (size_t i = 0; i < cached.decisions.size(); ++i) {
      EXPECT_EQ(cached.decisions[i].node, reference.decisions[i].node);
      EXPECT_EQ(cached.decisions[i].explanation.Summary(),
                reference.decisions[i].explanation.Summary());
    }
    EXPECT_EQ(IndexEligible(cluster, c.request), ScanEligible(cluster, c.request));
  }
}

}  // namespace
}  // namespace phoenix::supervisor::placement
