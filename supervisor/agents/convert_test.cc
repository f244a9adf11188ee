#include "supervisor/agents/convert.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace phoenix::supervisor::agents {
namespace {

using ::testing::ElementsAre;

TEST(AgentLinkConvertTest, HelloTakesTheAuthenticatedNameAndOnlyAvailableRuntimes) {
  v1::Hello hello;
  v1::NodeInfo* node = hello.mutable_node();
  node->set_name("claimed");
  node->set_zone("zone-b");
  (*node->mutable_labels())["disk"] = "ssd";
  node->mutable_capacity()->set_vcpus(16);
  node->mutable_capacity()->set_memory_mib(65536);
  node->mutable_allocated()->set_vcpus(2);
  node->mutable_allocated()->set_memory_mib(512);
  node->set_version("0.1.0");
  auto* vm = node->add_runtimes();
  vm->set_runtime(v1::RUNTIME_VM);
  vm->set_available(true);
  auto* microvm = node->add_runtimes();
  microvm->set_runtime(v1::RUNTIME_MICROVM);
  microvm->set_available(false);
  auto* container = node->add_runtimes();
  container->set_runtime(v1::RUNTIME_CONTAINER);
  container->set_available(true);
  hello.set_applied_version(7);
  hello.add_images("demo:latest");
  hello.add_images("sha256:abc");

  AgentHello out = HelloFromProto(hello, "n1");
  EXPECT_EQ(out.node.name, "n1");
  EXPECT_EQ(out.node.zone, "zone-b");
  EXPECT_EQ(out.node.labels, (std::map<std::string, std::string>{{"disk", "ssd"}}));
  EXPECT_EQ(out.node.capacity, (Resources{16, 65536}));
  EXPECT_EQ(out.node.runtimes, (std::set{RuntimeKind::kVm, RuntimeKind::kContainer}));
  EXPECT_EQ(out.allocated, (Resources{2, 512}));
  EXPECT_EQ(out.applied_version, 7u);
  EXPECT_EQ(out.images, (std::set<std::string>{"demo:latest", "sha256:abc"}));
  EXPECT_EQ(out.agent_version, "0.1.0");
}

TEST(AgentLinkConvertTest, StatusBecomesReportWithRenderedEndpoints) {
  v1::Status status;
  status.set_applied_version(3);
  status.mutable_allocated()->set_vcpus(1);
  status.mutable_allocated()->set_memory_mib(256);
  status.add_images("demo:latest");
  v1::Guest* guest = status.add_guests();
  guest->mutable_spec()->set_name("web-0-1");
  guest->set_state(v1::GUEST_STATE_CRASHED);
  guest->set_healthy(false);
  guest->set_restart_count(4);
  guest->set_last_exit_reason("exit 1");
  auto* v4 = guest->add_endpoints();
  v4->set_host_ip("127.0.0.1");
  v4->set_host_port(49153);
  v4->set_guest_port(80);
  auto* v6 = guest->add_endpoints();
  v6->set_host_ip("::1");
  v6->set_host_port(8443);
  v6->set_guest_port(443);

  const TimePoint now = Clock::now();
  AgentReport report = ReportFromProto(status, now);
  EXPECT_EQ(report.applied_version, 3u);
  EXPECT_EQ(report.allocated, (Resources{1, 256}));
  EXPECT_EQ(report.images, (std::set<std::string>{"demo:latest"}));
  ASSERT_EQ(report.guests.size(), 1u);
  const ReportedGuest& out = report.guests[0];
  EXPECT_EQ(out.name, "web-0-1");
  EXPECT_EQ(out.observed.guest_state, GuestState::kCrashed);
  EXPECT_FALSE(out.observed.healthy);
  EXPECT_EQ(out.observed.restart_count, 4u);
  EXPECT_EQ(out.observed.last_exit_reason, "exit 1");
  EXPECT_THAT(out.observed.endpoints, ElementsAre("127.0.0.1:49153->80", "[::1]:8443->443"));
  EXPECT_EQ(out.observed.reported_at, now);
}

TEST(AgentLinkConvertTest, InstanceNetworksAndFrontDoorLoadAreCheckedAtTheEdge) {
  v1::Hello hello;
  hello.mutable_node()->set_instance_subnet("10.88.1.0/24");
  EXPECT_EQ(HelloFromProto(hello, "n1").instance_subnet, "10.88.1.0/24");
  for (const char* bad : {"10.88.1.1/24", "10.88.1.0", "fd00::/64", "10.88.1.0/24; rm"}) {
    hello.mutable_node()->set_instance_subnet(bad);
    EXPECT_EQ(HelloFromProto(hello, "n1").instance_subnet, "") << bad;
  }

  v1::Status status;
  v1::Guest* guest = status.add_guests();
  guest->mutable_spec()->set_name("web-0-1");
  guest->set_node_address("10.88.1.7");
  v1::Guest* odd = status.add_guests();
  odd->mutable_spec()->set_name("web-1-1");
  odd->set_node_address("somewhere");
  auto* load = status.add_front_door();
  load->set_service("web");
  load->set_server("web-0-1");
  load->set_requests_per_second(12.5);
  load->set_requests_total(100);
  load->set_in_flight(2);
  auto* broken = status.add_front_door();
  broken->set_service("web");
  broken->set_server("web-1-1");
  broken->set_requests_per_second(-1);
  auto* taken = status.add_front_door_blocked();
  taken->set_service("api");
  taken->set_port(9090);
  taken->set_reason("port 9090 on 192.0.2.1 is taken by another process");
  status.add_front_door_blocked()->set_port(70000);  // not a port: dropped
  const TimePoint now = Clock::now();
  EXPECT_TRUE(ReportFromProto(status, now).front_door.empty()) << "no window: nothing measured";
  EXPECT_EQ(ReportFromProto(status, now).front_door_blocked,
            (std::vector<BlockedFrontDoor>{
                {.service = "api",
                 .port = 9090,
                 .reason = "port 9090 on 192.0.2.1 is taken by another process"}}));
  status.set_front_door_window_ms(1000);
  AgentReport report = ReportFromProto(status, now);
  EXPECT_EQ(report.guests[0].observed.node_address, "10.88.1.7");
  EXPECT_EQ(report.guests[1].observed.node_address, "");
  EXPECT_EQ(report.front_door, (std::vector<FrontDoorServerLoad>{{.service = "web",
                                                                  .server = "web-0-1",
                                                                  .requests_per_second = 12.5,
                                                                  .requests_total = 100,
                                                                  .in_flight = 2}}));
}

TEST(AgentLinkConvertTest, GuestMetricsAreCopiedAndAbsentStaysAbsent) {
  const TimePoint now = Clock::now();
  v1::Guest guest;
  guest.mutable_spec()->set_name("web-0-1");
  EXPECT_FALSE(GuestFromProto(guest, now).observed.metrics.has_value());

  v1::GuestMetrics* m = guest.mutable_metrics();
  m->mutable_sampled_at()->set_seconds(1'800'000'000);
  m->mutable_sampled_at()->set_nanos(250'000'000);
  m->set_window_ms(1000);
  m->set_cpu_valid(true);
  m->set_cpu_percent(91.5);
  m->set_memory_bytes(123456);
  m->set_requests_valid(false);
  m->set_requests_per_second(0);
  m->set_latency_p50_ms(1.5);
  m->set_latency_p99_ms(9.5);
  m->set_requests_total(77);
  m->set_connection_errors_total(3);
  ReportedGuest g = GuestFromProto(guest, now);
  ASSERT_TRUE(g.observed.metrics.has_value());
  const GuestMetrics& got = *g.observed.metrics;
  EXPECT_EQ(got.sampled_at,
            TimePoint(std::chrono::seconds(1'800'000'000) + std::chrono::milliseconds(250)));
  EXPECT_EQ(got.window_ms, 1000u);
  EXPECT_TRUE(got.cpu_valid);
  EXPECT_DOUBLE_EQ(got.cpu_percent, 91.5);
  EXPECT_EQ(got.memory_bytes, 123456u);
  EXPECT_FALSE(got.requests_valid);  // missing, not zero
  EXPECT_DOUBLE_EQ(got.latency_p99_ms, 9.5);
  EXPECT_EQ(got.requests_total, 77u);
  EXPECT_EQ(got.connection_errors_total, 3u);
}

TEST(AgentLinkConvertTest, GuestStatesMapOneToOne) {
  const std::pair<v1::GuestState, GuestState> table[] = {
      {v1::GUEST_STATE_UNSPECIFIED, GuestState::kUnknown},
      {v1::GUEST_STATE_PENDING, GuestState::kPending},
      {v1::GUEST_STATE_STARTING, GuestState::kStarting},
      {v1::GUEST_STATE_RUNNING, GuestState::kRunning},
      {v1::GUEST_STATE_STOPPING, GuestState::kStopping},
      {v1::GUEST_STATE_STOPPED, GuestState::kStopped},
      {v1::GUEST_STATE_CRASHED, GuestState::kCrashed},
      {v1::GUEST_STATE_RESTARTING, GuestState::kRestarting},
      {v1::GUEST_STATE_FAILED, GuestState::kFailed},
  };
  for (const auto& [in, want] : table) {
    EXPECT_EQ(GuestStateFromProto(in), want) << v1::GuestState_Name(in);
  }
}

std::string Template() {
  v1::GuestSpec spec;
  spec.set_name("ignored");
  spec.set_runtime(v1::RUNTIME_CONTAINER);
  spec.set_image("demo:latest");
  spec.set_memory_mib(128);
  (*spec.mutable_env())["MODE"] = "demo";
  auto* port = spec.add_ports();
  port->set_guest_port(80);
  port->set_host_port(8080);
  port->set_host_ip("127.0.0.1");
  return spec.SerializeAsString();
}

TEST(AgentLinkConvertTest, AssignedGuestNamesTheSpecAndClearsHostPorts) {
  AssignedReplica replica{.service = "web",
                          .index = 2,
                          .generation = 5,
                          .guest = "web-2-5",
                          .guest_template = Template()};
  auto out = AssignedGuestToProto(replica);
  ASSERT_TRUE(out.has_value()) << out.error().ToString();
  EXPECT_EQ(out->service(), "web");
  EXPECT_EQ(out->index(), 2u);
  EXPECT_EQ(out->generation(), 5u);
  EXPECT_EQ(out->spec().name(), "web-2-5");
  EXPECT_EQ(out->spec().image(), "demo:latest");
  EXPECT_EQ(out->spec().runtime(), v1::RUNTIME_CONTAINER);
  EXPECT_EQ(out->spec().memory_mib(), 128u);
  EXPECT_EQ(out->spec().env().at("MODE"), "demo");
  ASSERT_EQ(out->spec().ports_size(), 1);
  EXPECT_EQ(out->spec().ports(0).guest_port(), 80u);
  EXPECT_EQ(out->spec().ports(0).host_port(), 0u);
  EXPECT_EQ(out->spec().ports(0).host_ip(), "127.0.0.1");
}

TEST(AgentLinkConvertTest, AssignmentSkipsReplicasWhoseTemplateDoesNotParse) {
  NodeAssignment assignment{.version = 9,
                            .replicas = {
                                {"web", 0, 1, "web-0-1", Template()},
                                {"bad", 0, 1, "bad-0-1", std::string("\xff\xff\xff", 3)},
                                {"web", 1, 1, "web-1-1", Template()},
                            }};
  AssignmentProto out = AssignmentToProto(assignment);
  EXPECT_EQ(out.assignment.version(), 9u);
  ASSERT_EQ(out.assignment.guests_size(), 2);
  EXPECT_EQ(out.assignment.guests(0).spec().name(), "web-0-1");
  EXPECT_EQ(out.assignment.guests(1).spec().name(), "web-1-1");
  ASSERT_EQ(out.skipped.size(), 1u);
  EXPECT_EQ(out.skipped[0].code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(out.skipped[0].message, ::testing::HasSubstr("bad-0-1"));
}

}  // namespace
}  // namespace phoenix::supervisor::agents
