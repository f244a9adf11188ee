#include "agent/link/front_door_convert.h"

#include <gtest/gtest.h>

namespace phoenix::agent::link {
namespace {

TEST(FrontDoorConvertTest, TableFieldForFieldAndPortsOutOfRangeBecomeZero) {
  v1::FrontDoorTable in;
  in.set_version(42);
  v1::FrontDoorService* s = in.add_services();
  s->set_name("db");
  s->set_port(5432);
  s->set_protocol(v1::FRONT_DOOR_PROTOCOL_TCP);
  v1::FrontDoorServer* r = s->add_servers();
  r->set_name("db-0-1");
  r->set_address("10.88.1.2");
  r->set_port(70000);
  r->set_zone("a");
  r->set_draining(true);
  frontdoor::FrontDoorTable out = FrontDoorTableFromProto(in);
  EXPECT_EQ(out.version, 42u);
  ASSERT_EQ(out.services.size(), 1u);
  EXPECT_EQ(out.services[0].mode, frontdoor::FrontDoorMode::kTcp);
  EXPECT_EQ(
      out.services[0].servers[0],
      (frontdoor::FrontDoorServer{
          .name = "db-0-1", .address = "10.88.1.2", .port = 0, .zone = "a", .draining = true}));
}

TEST(FrontDoorConvertTest, RoutesKeepOnlyWellFormedOnes) {
  v1::FrontDoorTable in;
  auto add = [&](const char* subnet, const char* via) {
    v1::NodeRoute* r = in.add_routes();
    r->set_node("n");
    r->set_subnet(subnet);
    r->set_via(via);
  };
  add("10.88.2.0/24", "192.0.2.2");
  add("10.88.3.1/24", "192.0.2.3");  // host bits
  add("10.88.4.0/24", "fd00::4");    // IPv6 gateway for an IPv4 subnet
  add("10.88.5.0/24", "node-e");     // a name
  auto routes = PeerRoutesFromProto(in);
  ASSERT_EQ(routes.size(), 1u);
  EXPECT_EQ(FormatSubnet(routes[0].subnet), "10.88.2.0/24");
  EXPECT_EQ(FormatIpv4(routes[0].via), "192.0.2.2");
}

TEST(FrontDoorConvertTest, LoadGoesOutOnlyOnceMeasured) {
  v1::Status status;
  FrontDoorLoadToProto({}, &status);
  EXPECT_EQ(status.front_door_window_ms(), 0u);
  EXPECT_EQ(status.front_door_size(), 0);
  FrontDoorLoadToProto(
      {.window = std::chrono::milliseconds(1000),
       .servers =
           {{.service = "web", .server = "web-0-1", .requests_per_second = 3, .in_flight = 1}}},
      &status);
  EXPECT_EQ(status.front_door_window_ms(), 1000u);
  ASSERT_EQ(status.front_door_size(), 1);
  EXPECT_EQ(status.front_door(0).server(), "web-0-1");
  EXPECT_EQ(status.front_door(0).requests_per_second(), 3);
  EXPECT_EQ(status.front_door(0).in_flight(), 1u);
}

}  // namespace
}  // namespace phoenix::agent::link
