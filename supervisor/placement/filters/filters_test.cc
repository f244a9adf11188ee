// Table-driven tests of every filter over one static node list.
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "supervisor/placement/filters/distinct_hosts.h"
#include "supervisor/placement/filters/fit.h"
#include "supervisor/placement/filters/front_door_port.h"
#include "supervisor/placement/filters/labels.h"
#include "supervisor/placement/filters/node_state.h"
#include "supervisor/placement/filters/runtime.h"
#include "supervisor/placement/filters/zone_spread.h"
#include "supervisor/placement/testing/nodes.h"

namespace phoenix::supervisor::placement {
namespace {

using testing::IndexOf;
using testing::NodeBuilder;

// Eligible zones for a container request without selector: a (a1, a2) and b (b1); c is all DOWN or
// SUSPECT, d runs only VMs, "nz" has no zone. For a vm request: a (a1) and d.
const ClusterView& Nodes() {
  static const ClusterView cluster{{
      NodeBuilder("a1", "a")
          .Capacity(8, 16384)
          .Allocated(2, 4096)
          .Runtimes({RuntimeKind::kContainer, RuntimeKind::kVm})
          .Label("disk", "ssd")
          .Label("tier", "web")
          .Image("web:1"),
      NodeBuilder("a2", "a").Capacity(16, 32768).Label("disk", "hdd").FrontDoorPortTaken(8080),
      NodeBuilder("b1", "b").Capacity(8, 16384).Allocated(7, 15872),
      NodeBuilder("b2", "b").Drained(),
      NodeBuilder("c1", "c").State(NodeState::kDown),
      NodeBuilder("c2", "c").State(NodeState::kSuspect),
      NodeBuilder("d1", "d").Runtimes({RuntimeKind::kVm}),
      NodeBuilder("nz", ""),
  }};
  return cluster;
}

struct FilterCase {
  std::string name;
  std::string node;
  std::function<void(PlacementRequest&)> adjust = [](PlacementRequest&) {};
  std::vector<std::string> replicas_on = {};  // live replicas of the service, by node name
  std::vector<std::string> committed = {};    // earlier decisions of the plan, by node name
  bool feasible = true;
  std::string reason = {};  // when rejected
  std::string detail = {};  // a substring of the recorded example
};

void RunTable(const Filter& filter, const std::vector<FilterCase>& cases) {
  const ClusterView& cluster = Nodes();
  for (const FilterCase& c : cases) {
    SCOPED_TRACE(std::string(filter.Name()) + ": " + c.name);
    PlacementRequest request;
    request.service = "web";
    request.need = {1, 512};
    c.adjust(request);
    for (const std::string& name : c.replicas_on) {
      request.service_replica_nodes.push_back(IndexOf(cluster, name));
    }
    PlanState plan(cluster);
    for (const std::string& name : c.committed) plan.Commit(request, IndexOf(cluster, name));
    RequestContext context(plan, request);
    size_t index = IndexOf(cluster, c.node);
    ASSERT_LT(index, cluster.nodes.size());

    Explain explain;
    bool feasible = filter.Feasible(cluster.nodes[index], index, context, explain);
    EXPECT_EQ(feasible, c.feasible);
    Explanation explanation = std::move(explain).Finish(cluster.nodes.size());
    if (c.feasible) {
      EXPECT_TRUE(explanation.rejected.empty());
      continue;
    }
    ASSERT_EQ(explanation.rejected.size(), 1u);
    EXPECT_EQ(explanation.rejected.begin()->first, c.reason);
    EXPECT_EQ(explanation.rejected.begin()->second, 1u);
    ASSERT_EQ(explanation.examples.size(), 1u);
    EXPECT_EQ(explanation.examples[0].rfind(c.node + ": ", 0), 0u) << explanation.examples[0];
    EXPECT_NE(explanation.examples[0].find(c.detail), std::string::npos)
        << explanation.examples[0] << " lacks " << c.detail;
  }
}

TEST(NodeStateFilterTest, OnlyReadyUndrainedNodesPass) {
  RunTable(NodeStateFilter(), {
                                  {.name = "ready", .node = "a1"},
                                  {.name = "ready without zone", .node = "nz"},
                                  {.name = "down",
                                   .node = "c1",
                                   .feasible = false,
                                   .reason = "node-state",
                                   .detail = "DOWN"},
                                  {.name = "suspect",
                                   .node = "c2",
                                   .feasible = false,
                                   .reason = "node-state",
                                   .detail = "SUSPECT"},
                                  {.name = "drained",
                                   .node = "b2",
                                   .feasible = false,
                                   .reason = "node-state",
                                   .detail = "drained"},
                              });
}

TEST(RuntimeFilterTest, NodeMustRunTheRequestsRuntime) {
  auto vm = [](PlacementRequest& r) { r.runtime = RuntimeKind::kVm; };
  auto microvm = [](PlacementRequest& r) { r.runtime = RuntimeKind::kMicroVm; };
  RunTable(RuntimeFilter(), {
                                {.name = "container on container node", .node = "a2"},
                                {.name = "vm on mixed node", .node = "a1", .adjust = vm},
                                {.name = "vm on vm-only node", .node = "d1", .adjust = vm},
                                {.name = "container on vm-only node",
                                 .node = "d1",
                                 .feasible = false,
                                 .reason = "runtime",
                                 .detail = "no container runtime"},
                                {.name = "vm on container node",
                                 .node = "a2",
                                 .adjust = vm,
                                 .feasible = false,
                                 .reason = "runtime",
                                 .detail = "no vm runtime"},
                                {.name = "microvm nowhere",
                                 .node = "a1",
                                 .adjust = microvm,
                                 .feasible = false,
                                 .reason = "runtime",
                                 .detail = "no microvm runtime"},
                            });
}

TEST(LabelsFilterTest, EverySelectorLabelMustMatch) {
  auto ssd = [](PlacementRequest& r) { r.node_selector = {{"disk", "ssd"}}; };
  auto ssd_web = [](PlacementRequest& r) { r.node_selector = {{"disk", "ssd"}, {"tier", "web"}}; };
  auto gpu = [](PlacementRequest& r) { r.node_selector = {{"gpu", "true"}}; };
  RunTable(LabelsFilter(), {
                               {.name = "no selector, no labels", .node = "b1"},
                               {.name = "one label matches", .node = "a1", .adjust = ssd},
                               {.name = "two labels match", .node = "a1", .adjust = ssd_web},
                               {.name = "value differs",
                                .node = "a2",
                                .adjust = ssd,
                                .feasible = false,
                                .reason = "labels",
                                .detail = "disk=hdd, wants disk=ssd"},
                               {.name = "label missing",
                                .node = "b1",
                                .adjust = ssd,
                                .feasible = false,
                                .reason = "labels",
                                .detail = "no label disk"},
                               {.name = "second label missing",
                                .node = "a1",
                                .adjust = gpu,
                                .feasible = false,
                                .reason = "labels",
                                .detail = "no label gpu (wants gpu=true)"},
                           });
}

TEST(FrontDoorPortFilterTest, ANodeThatCannotServeThePortGetsNoReplica) {
  auto door = [](uint16_t port) {
    return [port](PlacementRequest& r) { r.front_door_port = port; };
  };
  RunTable(FrontDoorPortFilter(),
           {
               {.name = "no front door", .node = "a2"},
               {.name = "port free there", .node = "a1", .adjust = door(8080)},
               {.name = "another port taken", .node = "a2", .adjust = door(9090)},
               {.name = "port taken",
                .node = "a2",
                .adjust = door(8080),
                .feasible = false,
                .reason = "front-door-port",
                .detail = "front-door port 8080 is taken on the node"},
           });
}

TEST(FitFilterTest, FreeIsCapacityMinusAllocatedMinusEarlierDecisions) {
  auto need = [](uint32_t vcpus, uint64_t mib) {
    return [=](PlacementRequest& r) { r.need = {vcpus, mib}; };
  };
  RunTable(FitFilter(),
           {
               {.name = "fits", .node = "a1", .adjust = need(6, 12288)},
               {.name = "exactly the last vcpu and 512 MiB", .node = "b1", .adjust = need(1, 512)},
               {.name = "one vcpu too many",
                .node = "a1",
                .adjust = need(7, 512),
                .feasible = false,
                .reason = "cpu",
                .detail = "needs 7 vCPU, 6 free"},
               {.name = "memory short",
                .node = "b1",
                .adjust = need(1, 1024),
                .feasible = false,
                .reason = "memory",
                .detail = "needs 1 GiB, 512 MiB free"},
               {.name = "earlier decision took the room",
                .node = "b1",
                .adjust = need(1, 512),
                .committed = {"b1"},
                .feasible = false,
                .reason = "cpu",
                .detail = "needs 1 vCPU, 0 free"},
               {.name = "earlier decisions on another node do not count",
                .node = "b1",
                .adjust = need(1, 512),
                .committed = {"a1", "a2"}},
               {.name = "two earlier decisions leave 2 of 6 free vcpus",
                .node = "a1",
                .adjust = need(2, 1024),
                .committed = {"a1", "a1"}},
               {.name = "three earlier decisions take all 6",
                .node = "a1",
                .adjust = need(2, 1024),
                .committed = {"a1", "a1", "a1"},
                .feasible = false,
                .reason = "cpu",
                .detail = "needs 2 vCPU, 0 free"},
           });
}

TEST(DistinctHostsFilterTest, NoTwoReplicasOfAServiceOnOneNode) {
  auto distinct = [](PlacementRequest& r) { r.distinct_hosts = true; };
  RunTable(
      DistinctHostsFilter(),
      {
          {.name = "off: a node with a replica still passes", .node = "a1", .replicas_on = {"a1"}},
          {.name = "empty node", .node = "a1", .adjust = distinct, .replicas_on = {"a2"}},
          {.name = "live replica there",
           .node = "a1",
           .adjust = distinct,
           .replicas_on = {"a1"},
           .feasible = false,
           .reason = "distinct-hosts",
           .detail = "already runs 1 replica of web"},
          {.name = "placed there earlier in this plan",
           .node = "a2",
           .adjust = distinct,
           .committed = {"a2"},
           .feasible = false,
           .reason = "distinct-hosts",
           .detail = "already runs 1 replica of web"},
          {.name = "live and planned add up",
           .node = "a2",
           .adjust = distinct,
           .replicas_on = {"a2"},
           .committed = {"a2"},
           .feasible = false,
           .reason = "distinct-hosts",
           .detail = "already runs 2 replicas"},
      });
}

TEST(ZoneSpreadFilterTest, SkewIsAHardLimitOverEligibleZones) {
  auto zone = [](uint32_t skew) {
    return [=](PlacementRequest& r) {
      r.spread_attribute = "zone";
      r.max_skew = skew;
    };
  };
  auto vm_zone = [](PlacementRequest& r) {
    r.spread_attribute = "zone";
    r.runtime = RuntimeKind::kVm;
  };
  RunTable(
      ZoneSpreadFilter(),
      {
          {.name = "no spread attribute", .node = "a1", .replicas_on = {"a1", "a2"}},
          {.name = "first replica anywhere", .node = "a1", .adjust = zone(1)},
          {.name = "zone a at 1, b at 0: a second in a is skew 2",
           .node = "a2",
           .adjust = zone(1),
           .replicas_on = {"a1"},
           .feasible = false,
           .reason = "zone-skew",
           .detail = "zone a would have 2, zone b has 0 (max skew 1)"},
          {.name = "the same with the first placed earlier in the plan",
           .node = "a2",
           .adjust = zone(1),
           .committed = {"a1"},
           .feasible = false,
           .reason = "zone-skew",
           .detail = "zone a would have 2"},
          {.name = "the fewer zone is fine",
           .node = "b1",
           .adjust = zone(1),
           .replicas_on = {"a1"}},
          {.name = "max skew 2 allows it", .node = "a2", .adjust = zone(2), .replicas_on = {"a1"}},
          {.name = "max skew 0 is taken as 1", .node = "b1", .adjust = zone(0)},
          // c is all DOWN/SUSPECT and d runs no containers: neither holds a back.
          {.name = "ineligible zones do not count",
           .node = "a2",
           .adjust = zone(1),
           .replicas_on = {"a1", "b1"}},
          // For VMs the eligible zones are a and d (d1), so d's zero holds a back.
          {.name = "eligibility follows the runtime",
           .node = "a1",
           .adjust = vm_zone,
           .replicas_on = {"a1"},
           .feasible = false,
           .reason = "zone-skew",
           .detail = "zone d has 0"},
          {.name = "node without a zone",
           .node = "nz",
           .adjust = zone(1),
           .feasible = false,
           .reason = "zone-skew",
           .detail = "node has no zone"},
          {.name = "unknown spread attribute",
           .node = "a1",
           .adjust = [](PlacementRequest& r) { r.spread_attribute = "rack"; },
           .feasible = false,
           .reason = "zone-skew",
           .detail = "cannot spread by 'rack'"},
      });
}

TEST(FilterExamplesTest, DetailsAreFormattedOnlyForTheFirstFewRejections) {
  const ClusterView& cluster = Nodes();
  Explain explain;
  int formatted = 0;
  for (int i = 0; i < 10; ++i) {
    explain.Reject("memory", cluster.nodes[0], [&] {
      ++formatted;
      return std::string("short");
    });
  }
  EXPECT_EQ(formatted, static_cast<int>(Explain::kExamplesPerReason));
  EXPECT_EQ(explain.RejectedFor("memory"), 10u);
}

}  // namespace
}  // namespace phoenix::supervisor::placement
