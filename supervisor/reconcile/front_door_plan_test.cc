#include "supervisor/reconcile/front_door_plan.h"

#include <algorithm>

#include <gtest/gtest.h>

namespace phoenix::supervisor {
namespace {

FrontDoorReplicaView Ready(std::string guest, std::string endpoint, std::string zone = "a") {
  return FrontDoorReplicaView{.guest = std::move(guest),
                              .zone = std::move(zone),
                              .node_address = "192.0.2.1",
                              .guest_state = GuestState::kRunning,
                              .healthy = true,
                              .endpoints = {std::move(endpoint)}};
}

FrontDoorServiceView Web(std::vector<FrontDoorReplicaView> replicas) {
  return FrontDoorServiceView{
      .name = "web", .door = {.port = 8080, .guest_port = 80}, .replicas = std::move(replicas)};
}

TEST(FrontDoorPlanTest, WhichReplicasServeAndWhere) {
  struct Case {
    const char* what;
    FrontDoorReplicaView replica;
    std::vector<FrontDoorServer> want;
  };
  auto with = [](FrontDoorReplicaView r, auto change) {
    change(r);
    return r;
  };
  const FrontDoorServer served{
      .name = "web-0-1", .address = "10.0.0.2", .port = 31000, .zone = "a"};
  const Case cases[] = {
      {"running and healthy", Ready("web-0-1", "10.0.0.2:31000->80"), {served}},
      {"unhealthy",
       with(Ready("web-0-1", "10.0.0.2:31000->80"), [](auto& r) { r.healthy = false; }),
       {}},
      {"restarting",
       with(Ready("web-0-1", "10.0.0.2:31000->80"),
            [](auto& r) { r.guest_state = GuestState::kRestarting; }),
       {}},
      {"its node is DOWN",
       with(Ready("web-0-1", "10.0.0.2:31000->80"), [](auto& r) { r.node_down = true; }),
       {}},
      {"draining stays, marked",
       with(Ready("web-0-1", "10.0.0.2:31000->80"), [](auto& r) { r.draining = true; }),
       {FrontDoorServer{.name = "web-0-1",
                        .address = "10.0.0.2",
                        .port = 31000,
                        .zone = "a",
                        .draining = true}}},
      {"endpoint of another guest port", Ready("web-0-1", "10.0.0.2:31000->81"), {}},
      {"no endpoint yet", with(Ready("web-0-1", ""), [](auto& r) { r.endpoints.clear(); }), {}},
      {"a malformed endpoint", Ready("web-0-1", "somehost:31000->80"), {}},
      {"wildcard means the node's address",
       Ready("web-0-1", "0.0.0.0:31000->80"),
       {FrontDoorServer{.name = "web-0-1", .address = "192.0.2.1", .port = 31000, .zone = "a"}}},
      {"wildcard on a node without an address",
       with(Ready("web-0-1", "0.0.0.0:31000->80"), [](auto& r) { r.node_address = ""; }),
       {}},
      {"IPv6",
       Ready("web-0-1", "[fd00::2]:31000->80"),
       {FrontDoorServer{.name = "web-0-1", .address = "fd00::2", .port = 31000, .zone = "a"}}},
      {"its own address on the node network: the guest port there, no agent in the path",
       with(Ready("web-0-1", "10.0.0.2:31000->80"),
            [](auto& r) { r.instance_address = "10.88.1.5"; }),
       {FrontDoorServer{.name = "web-0-1", .address = "10.88.1.5", .port = 80, .zone = "a"}}},
      {"node network, draining",
       with(Ready("web-0-1", "10.0.0.2:31000->80"),
            [](auto& r) {
              r.instance_address = "10.88.1.5";
              r.draining = true;
            }),
       {FrontDoorServer{
           .name = "web-0-1", .address = "10.88.1.5", .port = 80, .zone = "a", .draining = true}}},
      {"node network, unhealthy",
       with(Ready("web-0-1", "10.0.0.2:31000->80"),
            [](auto& r) {
              r.instance_address = "10.88.1.5";
              r.healthy = false;
            }),
       {}},
  };
  for (const Case& c : cases) {
    auto plan = PlanFrontDoor({Web({c.replica})});
    ASSERT_EQ(plan.size(), 1u) << c.what;
    EXPECT_EQ(plan[0].name, "web");
    EXPECT_EQ(plan[0].port, 8080);
    EXPECT_EQ(plan[0].servers, c.want) << c.what;
  }
}

TEST(FrontDoorPlanTest, ATableIsTheSameForTheSameStateWhateverTheOrder) {
  FrontDoorServiceView api{
      .name = "api",
      .door = {.port = 9000, .guest_port = 80, .protocol = FrontDoorProtocol::kTcp},
      .replicas = {Ready("api-1-1", "10.0.0.3:1->80", "b"), Ready("api-0-4", "10.0.0.2:2->80")}};
  auto plan = PlanFrontDoor({Web({}), api});
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0].name, "api");
  EXPECT_EQ(plan[0].protocol, FrontDoorProtocol::kTcp);
  ASSERT_EQ(plan[0].servers.size(), 2u);
  EXPECT_EQ(plan[0].servers[0].name, "api-0-4");
  EXPECT_EQ(plan[0].servers[1].zone, "b");
  EXPECT_TRUE(plan[1].servers.empty()) << "a service with no ready replica keeps its frontend";
  std::ranges::reverse(api.replicas);
  EXPECT_EQ(PlanFrontDoor({api, Web({})}), plan);
}

TEST(FrontDoorPlanTest, NodeRoutesLeaveOutOverlappingAndIncompleteNodes) {
  const NodeRoute a{.node = "a", .subnet = "10.88.1.0/24", .via = "192.0.2.1"};
  const NodeRoute b{.node = "b", .subnet = "10.88.2.0/24", .via = "192.0.2.2"};
  const NodeRoute c_covers_a_and_b{.node = "c", .subnet = "10.88.0.0/16", .via = "192.0.2.3"};
  const NodeRoute d{.node = "d", .subnet = "10.89.0.0/24", .via = "192.0.2.4"};
  const NodeRoute no_subnet{.node = "e", .subnet = "", .via = "192.0.2.5"};
  const NodeRoute no_address{.node = "f", .subnet = "10.90.0.0/24", .via = ""};

  NodeRoutePlan plan = PlanNodeRoutes({b, a, no_subnet, no_address});
  EXPECT_EQ(plan.routes, (std::vector<NodeRoute>{a, b}));
  EXPECT_TRUE(plan.overlapping.empty());

  plan = PlanNodeRoutes({d, c_covers_a_and_b, b, a});
  EXPECT_EQ(plan.routes, (std::vector<NodeRoute>{d}));
  EXPECT_EQ(plan.overlapping, (std::vector<std::string>{"a", "b", "c"}));
}

TEST(FrontDoorPlanTest, VersionsGrowWithTheClockAndNeverGoBack) {
  const TimePoint t = TimePoint(std::chrono::microseconds(1'700'000'000'000'000));
  EXPECT_EQ(NextFrontDoorVersion(0, t), 1'700'000'000'000'000u);
  EXPECT_EQ(NextFrontDoorVersion(1'700'000'000'000'000u, t), 1'700'000'000'000'001u)
      << "two tables in one microsecond";
  EXPECT_EQ(NextFrontDoorVersion(1'800'000'000'000'000u, t), 1'800'000'000'000'001u)
      << "a clock that went back";
}

}  // namespace
}  // namespace phoenix::supervisor
