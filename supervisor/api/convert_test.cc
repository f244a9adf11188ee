#include "supervisor/api/convert.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <google/protobuf/util/time_util.h>
#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

namespace phoenix::supervisor::api {
namespace {

using google::protobuf::util::MessageDifferencer;
using google::protobuf::util::TimeUtil;

v1::ServiceSpec MinimalSpec() {
  v1::ServiceSpec spec;
  spec.set_name("web");
  spec.set_replicas(3);
  spec.mutable_template_()->set_runtime(v1::RUNTIME_CONTAINER);
  spec.mutable_template_()->set_image("demo:latest");
  return spec;
}

struct InvalidCase {
  std::string label;
  std::function<void(v1::ServiceSpec&)> mutate;
  std::string field;
};

class ServiceSpecInvalid : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(ServiceSpecInvalid, RefusedNamingTheField) {
  v1::ServiceSpec spec = MinimalSpec();
  GetParam().mutate(spec);
  auto result = ServiceSpecFromProto(spec);
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(result.error().field, GetParam().field) << result.error().ToString();
  EXPECT_FALSE(result.error().message.empty());
}

INSTANTIATE_TEST_SUITE_P(
    Validation, ServiceSpecInvalid,
    ::testing::Values(
        InvalidCase{"name_empty", [](v1::ServiceSpec& s) { s.set_name(""); }, "spec.name"},
        InvalidCase{"name_too_long", [](v1::ServiceSpec& s) { s.set_name(std::string(41, 'a')); },
                    "spec.name"},
        InvalidCase{"name_uppercase", [](v1::ServiceSpec& s) { s.set_name("Web"); }, "spec.name"},
        InvalidCase{"name_leading_dash", [](v1::ServiceSpec& s) { s.set_name("-web"); },
                    "spec.name"},
        InvalidCase{"name_underscore", [](v1::ServiceSpec& s) { s.set_name("my_web"); },
                    "spec.name"},
        InvalidCase{"name_slash", [](v1::ServiceSpec& s) { s.set_name("a/b"); }, "spec.name"},
        InvalidCase{"replicas_over_limit", [](v1::ServiceSpec& s) { s.set_replicas(1001); },
                    "spec.replicas"},
        InvalidCase{"template_missing", [](v1::ServiceSpec& s) { s.clear_template_(); },
                    "spec.template.image"},
        InvalidCase{"runtime_unknown",
                    [](v1::ServiceSpec& s) {
                      s.mutable_template_()->set_runtime(static_cast<v1::Runtime>(42));
                    },
                    "spec.template.runtime"},
        InvalidCase{"image_empty", [](v1::ServiceSpec& s) { s.mutable_template_()->set_image(""); },
                    "spec.template.image"},
        InvalidCase{"memory_too_small",
                    [](v1::ServiceSpec& s) { s.mutable_template_()->set_memory_mib(63); },
                    "spec.template.memory_mib"},
        InvalidCase{"spread_attribute_unknown",
                    [](v1::ServiceSpec& s) { s.mutable_spread()->set_attribute("rack"); },
                    "spec.spread.attribute"},
        InvalidCase{
            "strategy_unknown",
            [](v1::ServiceSpec& s) { s.set_strategy(static_cast<v1::PlacementStrategy>(9)); },
            "spec.strategy"},
        InvalidCase{"front_door_port_zero",
                    [](v1::ServiceSpec& s) { s.mutable_front_door()->set_guest_port(80); },
                    "spec.front_door.port"},
        InvalidCase{"front_door_port_too_big",
                    [](v1::ServiceSpec& s) {
                      s.mutable_front_door()->set_port(65536);
                      s.mutable_front_door()->set_guest_port(80);
                    },
                    "spec.front_door.port"},
        InvalidCase{"front_door_guest_port_zero",
                    [](v1::ServiceSpec& s) { s.mutable_front_door()->set_port(8080); },
                    "spec.front_door.guest_port"},
        InvalidCase{"front_door_protocol_unknown",
                    [](v1::ServiceSpec& s) {
                      s.mutable_front_door()->set_port(8080);
                      s.mutable_front_door()->set_guest_port(80);
                      s.mutable_front_door()->set_protocol(static_cast<v1::FrontDoorProtocol>(7));
                    },
                    "spec.front_door.protocol"}),
    [](const ::testing::TestParamInfo<InvalidCase>& info) { return info.param.label; });

struct ValidCase {
  std::string label;
  std::function<void(v1::ServiceSpec&)> mutate;
  std::function<void(const ServiceSpec&)> check;
};

class ServiceSpecValid : public ::testing::TestWithParam<ValidCase> {};

TEST_P(ServiceSpecValid, AcceptedWithDefaults) {
  v1::ServiceSpec spec = MinimalSpec();
  GetParam().mutate(spec);
  auto result = ServiceSpecFromProto(spec);
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  GetParam().check(*result);
}

INSTANTIATE_TEST_SUITE_P(
    Defaults, ServiceSpecValid,
    ::testing::Values(
        ValidCase{"minimal", [](v1::ServiceSpec&) {},
                  [](const ServiceSpec& s) {
                    EXPECT_EQ(s.name, "web");
                    EXPECT_EQ(s.runtime, RuntimeKind::kContainer);
                    EXPECT_EQ(s.image, "demo:latest");
                    EXPECT_EQ(s.replicas, 3u);
                    EXPECT_EQ(s.memory_mib, 256u);
                    EXPECT_EQ(s.vcpus, 1u);
                    EXPECT_EQ(s.spread_attribute, "");
                    EXPECT_EQ(s.max_skew, 1u);
                    EXPECT_EQ(s.strategy, PlacementStrategy::kSpread);
                    EXPECT_FALSE(s.distinct_hosts);
                    EXPECT_TRUE(s.node_selector.empty());
                  }},
        ValidCase{"name_max_length", [](v1::ServiceSpec& s) { s.set_name(std::string(40, 'a')); },
                  [](const ServiceSpec& s) { EXPECT_EQ(s.name.size(), 40u); }},
        ValidCase{"name_digits_and_dashes", [](v1::ServiceSpec& s) { s.set_name("0-web-1"); },
                  [](const ServiceSpec& s) { EXPECT_EQ(s.name, "0-web-1"); }},
        ValidCase{"replicas_zero", [](v1::ServiceSpec& s) { s.set_replicas(0); },
                  [](const ServiceSpec& s) { EXPECT_EQ(s.replicas, 0u); }},
        ValidCase{"replicas_max", [](v1::ServiceSpec& s) { s.set_replicas(1000); },
                  [](const ServiceSpec& s) { EXPECT_EQ(s.replicas, 1000u); }},
        ValidCase{"memory_min",
                  [](v1::ServiceSpec& s) { s.mutable_template_()->set_memory_mib(64); },
                  [](const ServiceSpec& s) { EXPECT_EQ(s.memory_mib, 64u); }},
        ValidCase{
            "runtime_unset_is_vm",
            [](v1::ServiceSpec& s) { s.mutable_template_()->set_runtime(v1::RUNTIME_UNSPECIFIED); },
            [](const ServiceSpec& s) {
              EXPECT_EQ(s.runtime, RuntimeKind::kVm);
              v1::GuestSpec stored;
              ASSERT_TRUE(stored.ParseFromString(s.guest_template));
              EXPECT_EQ(stored.runtime(), v1::RUNTIME_VM) << "explicit on the link";
            }},
        ValidCase{"vcpus_set", [](v1::ServiceSpec& s) { s.mutable_template_()->set_vcpus(4); },
                  [](const ServiceSpec& s) { EXPECT_EQ(s.vcpus, 4u); }},
        ValidCase{"runtime_vm",
                  [](v1::ServiceSpec& s) { s.mutable_template_()->set_runtime(v1::RUNTIME_VM); },
                  [](const ServiceSpec& s) { EXPECT_EQ(s.runtime, RuntimeKind::kVm); }},
        ValidCase{
            "runtime_microvm",
            [](v1::ServiceSpec& s) { s.mutable_template_()->set_runtime(v1::RUNTIME_MICROVM); },
            [](const ServiceSpec& s) { EXPECT_EQ(s.runtime, RuntimeKind::kMicroVm); }},
        ValidCase{"spread_zone_default_skew",
                  [](v1::ServiceSpec& s) { s.mutable_spread()->set_attribute("zone"); },
                  [](const ServiceSpec& s) {
                    EXPECT_EQ(s.spread_attribute, "zone");
                    EXPECT_EQ(s.max_skew, 1u);
                  }},
        ValidCase{"spread_zone_skew_two",
                  [](v1::ServiceSpec& s) {
                    s.mutable_spread()->set_attribute("zone");
                    s.mutable_spread()->set_max_skew(2);
                  },
                  [](const ServiceSpec& s) { EXPECT_EQ(s.max_skew, 2u); }},
        ValidCase{"binpack",
                  [](v1::ServiceSpec& s) { s.set_strategy(v1::PLACEMENT_STRATEGY_BINPACK); },
                  [](const ServiceSpec& s) { EXPECT_EQ(s.strategy, PlacementStrategy::kBinpack); }},
        ValidCase{
            "selector_and_distinct",
            [](v1::ServiceSpec& s) {
              (*s.mutable_node_selector())["disk"] = "ssd";
              s.set_distinct_hosts(true);
            },
            [](const ServiceSpec& s) {
              EXPECT_EQ(s.node_selector, (std::map<std::string, std::string>{{"disk", "ssd"}}));
              EXPECT_TRUE(s.distinct_hosts);
            }}),
    [](const ::testing::TestParamInfo<ValidCase>& info) { return info.param.label; });

v1::ServiceSpec FullSpec() {
  v1::ServiceSpec spec;
  spec.set_name("shop");
  spec.set_replicas(6);
  spec.mutable_spread()->set_attribute("zone");
  spec.mutable_spread()->set_max_skew(2);
  spec.set_strategy(v1::PLACEMENT_STRATEGY_BINPACK);
  (*spec.mutable_node_selector())["disk"] = "ssd";
  (*spec.mutable_node_selector())["gpu"] = "no";
  spec.set_distinct_hosts(true);
  v1::GuestSpec* t = spec.mutable_template_();
  t->set_runtime(v1::RUNTIME_CONTAINER);  // command and env are for containers only
  t->set_image("sha256:abcdef");
  t->set_vcpus(2);
  t->set_memory_mib(512);
  t->add_command("/bin/server");
  t->add_command("--port=80");
  for (int i = 0; i < 20; ++i) (*t->mutable_env())["K" + std::to_string(i)] = std::to_string(i);
  auto* port = t->add_ports();
  port->set_guest_port(80);
  port->set_host_ip("127.0.0.1");
  t->mutable_health()->mutable_http()->set_port(80);
  t->mutable_health()->mutable_http()->set_path("/ready");
  t->mutable_health()->set_interval_ms(500);
  t->mutable_restart()->set_policy(v1::RESTART_POLICY_ON_FAILURE);
  t->set_boot_mode(v1::BOOT_MODE_COLD);
  return spec;
}

TEST(ServiceSpecConvert, RoundTripKeepsEveryField) {
  v1::ServiceSpec in = FullSpec();
  auto value = ServiceSpecFromProto(in);
  ASSERT_TRUE(value.has_value()) << value.error().ToString();
  EXPECT_EQ(value->runtime, RuntimeKind::kContainer);
  EXPECT_EQ(value->image, "sha256:abcdef");
  EXPECT_EQ(value->vcpus, 2u);
  EXPECT_EQ(value->memory_mib, 512u);
  EXPECT_EQ(value->max_skew, 2u);
  EXPECT_EQ(value->strategy, PlacementStrategy::kBinpack);
  EXPECT_TRUE(value->distinct_hosts);
  EXPECT_EQ(value->node_selector.size(), 2u);

  v1::ServiceSpec out;
  ServiceSpecToProto(*value, &out);
  // Every field survives; the template comes back with its defaults made explicit.
  v1::ServiceSpec expected = in;
  auto parsed = spec::ParseGuestSpec(in.template_(), "spec.template", spec::SpecUse::kTemplate);
  ASSERT_TRUE(parsed.has_value());
  expected.clear_template_();
  spec::GuestSpecToProto(*parsed, expected.mutable_template_());
  EXPECT_EQ(expected.template_().health().timeout_ms(), 500u) << "defaults are explicit";
  std::string diff;
  MessageDifferencer differ;
  differ.ReportDifferencesToString(&diff);
  EXPECT_TRUE(differ.Compare(expected, out)) << diff;

  // And the value survives a second trip unchanged.
  auto again = ServiceSpecFromProto(out);
  ASSERT_TRUE(again.has_value()) << again.error().ToString();
  EXPECT_EQ(*again, *value);
}

TEST(ServiceSpecConvert, TemplateDropsNameAndHostPortsAndKeepsDefaults) {
  v1::ServiceSpec in = FullSpec();
  in.mutable_template_()->set_name("user-chosen");
  in.mutable_template_()->mutable_ports(0)->set_host_port(8080);
  auto* second = in.mutable_template_()->add_ports();
  second->set_guest_port(443);
  second->set_host_port(8443);
  in.mutable_template_()->clear_memory_mib();
  in.mutable_template_()->clear_vcpus();
  auto value = ServiceSpecFromProto(in);
  ASSERT_TRUE(value.has_value()) << value.error().ToString();

  v1::GuestSpec stored;
  ASSERT_TRUE(stored.ParseFromString(value->guest_template));
  EXPECT_EQ(stored.name(), "");
  ASSERT_EQ(stored.ports_size(), 2);
  EXPECT_EQ(stored.ports(0).host_port(), 0u);
  EXPECT_EQ(stored.ports(0).guest_port(), 80u);
  EXPECT_EQ(stored.ports(1).host_port(), 0u);
  EXPECT_EQ(stored.ports(1).guest_port(), 443u);
  // The agent gets the same defaults the supervisor placed with.
  EXPECT_EQ(stored.memory_mib(), 256u);
  EXPECT_EQ(stored.vcpus(), 1u);
  EXPECT_EQ(stored.env_size(), 20);
  EXPECT_EQ(stored.health().http().path(), "/ready");
  EXPECT_EQ(stored.restart().policy(), v1::RESTART_POLICY_ON_FAILURE);
  EXPECT_EQ(stored.boot_mode(), v1::BOOT_MODE_COLD);
  EXPECT_EQ(stored.runtime(), v1::RUNTIME_CONTAINER);
  EXPECT_EQ(stored.image(), "sha256:abcdef");
}

TEST(ServiceSpecConvert, AFrontDoorPublishesItsGuestPortOnEveryReplica) {
  v1::ServiceSpec in = FullSpec();  // publishes guest port 80
  in.mutable_front_door()->set_port(8080);
  in.mutable_front_door()->set_guest_port(9000);
  in.mutable_front_door()->set_protocol(v1::FRONT_DOOR_PROTOCOL_TCP);
  auto value = ServiceSpecFromProto(in);
  ASSERT_TRUE(value.has_value()) << value.error().ToString();
  ASSERT_TRUE(value->front_door.has_value());
  EXPECT_EQ(*value->front_door,
            (FrontDoorPort{.port = 8080, .guest_port = 9000, .protocol = FrontDoorProtocol::kTcp}));
  v1::GuestSpec stored;
  ASSERT_TRUE(stored.ParseFromString(value->guest_template));
  ASSERT_EQ(stored.ports_size(), 2);
  EXPECT_EQ(stored.ports(1).guest_port(), 9000u) << "added to what the template published";

  in.mutable_front_door()->set_guest_port(80);  // already published: not twice
  value = ServiceSpecFromProto(in);
  ASSERT_TRUE(value.has_value());
  ASSERT_TRUE(stored.ParseFromString(value->guest_template));
  EXPECT_EQ(stored.ports_size(), 1);

  v1::ServiceSpec out;
  ServiceSpecToProto(*value, &out);
  EXPECT_EQ(out.front_door().port(), 8080u);
  EXPECT_EQ(out.front_door().guest_port(), 80u);
  EXPECT_EQ(out.front_door().protocol(), v1::FRONT_DOOR_PROTOCOL_TCP);
}

TEST(ServiceSpecConvert, SameSpecGivesSameTemplateBytes) {
  auto a = ServiceSpecFromProto(FullSpec());
  auto b = ServiceSpecFromProto(FullSpec());
  ASSERT_TRUE(a.has_value() && b.has_value());
  EXPECT_EQ(a->guest_template, b->guest_template);
  EXPECT_EQ(*a, *b);
}

TEST(ServiceSpecConvert, NoSpreadShowsNoSpread) {
  auto value = ServiceSpecFromProto(MinimalSpec());
  ASSERT_TRUE(value.has_value());
  v1::ServiceSpec out;
  ServiceSpecToProto(*value, &out);
  EXPECT_FALSE(out.has_spread());
  EXPECT_EQ(out.template_().memory_mib(), 256u);
  EXPECT_EQ(out.template_().vcpus(), 1u);
}

struct EndpointCase {
  std::string text;
  bool ok;
  std::string ip;
  uint32_t host_port;
  uint32_t guest_port;
};

class Endpoints : public ::testing::TestWithParam<EndpointCase> {};

TEST_P(Endpoints, Parse) {
  const EndpointCase& c = GetParam();
  v1::Endpoint endpoint;
  EXPECT_EQ(ParseEndpoint(c.text, &endpoint), c.ok) << c.text;
  if (c.ok) {
    EXPECT_EQ(endpoint.host_ip(), c.ip);
    EXPECT_EQ(endpoint.host_port(), c.host_port);
    EXPECT_EQ(endpoint.guest_port(), c.guest_port);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, Endpoints,
    ::testing::Values(EndpointCase{"127.0.0.1:49153->80", true, "127.0.0.1", 49153, 80},
                      EndpointCase{"0.0.0.0:1->65535", true, "0.0.0.0", 1, 65535},
                      EndpointCase{"[::1]:8080->80", true, "::1", 8080, 80},
                      EndpointCase{"127.0.0.1:49153", false, "", 0, 0},
                      EndpointCase{"127.0.0.1->80", false, "", 0, 0},
                      EndpointCase{":80->80", false, "", 0, 0},
                      EndpointCase{"127.0.0.1:x->80", false, "", 0, 0},
                      EndpointCase{"127.0.0.1:80->", false, "", 0, 0},
                      EndpointCase{"127.0.0.1:70000->80", false, "", 0, 0},
                      EndpointCase{"127.0.0.1:80->80x", false, "", 0, 0},
                      EndpointCase{"", false, "", 0, 0}));

TEST(StatusConvert, ServiceWithReplicas) {
  auto spec = ServiceSpecFromProto(FullSpec());
  ASSERT_TRUE(spec.has_value());
  ServiceStatus status;
  status.service.spec = *spec;
  status.service.version = 7;
  status.service.created_at = TimePoint{} + std::chrono::seconds(1700000000);
  ReplicaStatus running;
  running.placement = {0, 2, "n1"};
  running.guest = ReplicaGuestName("shop", 0, 2);
  running.zone = "z1";
  running.state = ReplicaState::kRunning;
  running.observed.guest_state = GuestState::kRunning;
  running.observed.healthy = true;
  running.observed.restart_count = 3;
  running.observed.last_exit_reason = "exit 1";
  running.observed.endpoints = {"127.0.0.1:49153->80", "garbage", "127.0.0.1:49154->443"};
  ReplicaStatus pending;
  pending.placement = {1, 0, ""};
  pending.state = ReplicaState::kPending;
  pending.pending_reason = "0 nodes";
  status.replicas = {running, pending};
  status.running = 1;

  v1::Service out;
  ServiceToProto(status, &out);
  EXPECT_EQ(out.spec().name(), "shop");
  EXPECT_EQ(out.spec().replicas(), 6u);
  EXPECT_EQ(out.version(), 7u);
  EXPECT_EQ(TimeUtil::TimestampToSeconds(out.created_at()), 1700000000);
  EXPECT_EQ(out.running(), 1u);
  ASSERT_EQ(out.replicas_size(), 2);
  const v1::Replica& r0 = out.replicas(0);
  EXPECT_EQ(r0.index(), 0u);
  EXPECT_EQ(r0.generation(), 2u);
  EXPECT_EQ(r0.guest(), "shop-0-2");
  EXPECT_EQ(r0.node(), "n1");
  EXPECT_EQ(r0.zone(), "z1");
  EXPECT_EQ(r0.state(), v1::REPLICA_STATE_RUNNING);
  EXPECT_EQ(r0.guest_state(), v1::GUEST_STATE_RUNNING);
  EXPECT_TRUE(r0.healthy());
  EXPECT_EQ(r0.restart_count(), 3u);
  EXPECT_EQ(r0.last_exit_reason(), "exit 1");
  ASSERT_EQ(r0.endpoints_size(), 2);
  EXPECT_EQ(r0.endpoints(0).host_port(), 49153u);
  EXPECT_EQ(r0.endpoints(1).guest_port(), 443u);
  const v1::Replica& r1 = out.replicas(1);
  EXPECT_EQ(r1.state(), v1::REPLICA_STATE_PENDING);
  EXPECT_EQ(r1.node(), "");
  EXPECT_EQ(r1.pending_reason(), "0 nodes");
  EXPECT_EQ(r1.guest_state(), v1::GUEST_STATE_UNSPECIFIED);
}

TEST(StatusConvert, Node) {
  NodeStatus node;
  node.record.name = "n1";
  node.record.zone = "z2";
  node.record.labels = {{"disk", "ssd"}};
  node.record.capacity = {8, 16384};
  node.record.runtimes = {RuntimeKind::kContainer, RuntimeKind::kVm};
  node.record.drained = true;
  node.record.assignment_version = 12;
  node.live.state = NodeState::kSuspect;
  node.live.allocated = {2, 1024};
  node.live.applied_version = 11;
  node.live.last_heartbeat = TimePoint{} + std::chrono::seconds(1700000100);
  node.live.agent_version = "0.4.0";
  node.live.state_reason = "no heartbeat for 3.2 s";
  node.replicas = 2;

  v1::Node out;
  NodeToProto(node, &out);
  EXPECT_EQ(out.name(), "n1");
  EXPECT_EQ(out.zone(), "z2");
  EXPECT_EQ(out.labels().at("disk"), "ssd");
  EXPECT_EQ(out.state(), v1::NODE_STATE_SUSPECT);
  EXPECT_TRUE(out.drained());
  EXPECT_EQ(out.capacity().vcpus(), 8u);
  EXPECT_EQ(out.capacity().memory_mib(), 16384u);
  EXPECT_EQ(out.allocated().vcpus(), 2u);
  EXPECT_EQ(out.allocated().memory_mib(), 1024u);
  std::set<int> runtimes;
  for (const auto& r : out.runtimes()) {
    EXPECT_TRUE(r.available());
    runtimes.insert(r.runtime());
  }
  EXPECT_EQ(runtimes, (std::set<int>{v1::RUNTIME_VM, v1::RUNTIME_CONTAINER}));
  EXPECT_EQ(TimeUtil::TimestampToSeconds(out.last_heartbeat()), 1700000100);
  EXPECT_EQ(out.assignment_version(), 12u);
  EXPECT_EQ(out.applied_version(), 11u);
  EXPECT_EQ(out.replicas(), 2u);
  EXPECT_EQ(out.agent_version(), "0.4.0");
  EXPECT_EQ(out.state_reason(), "no heartbeat for 3.2 s");
}

TEST(StatusConvert, EveryEventTypeHasItsOwnWireValue) {
  const std::vector<std::pair<ClusterEventType, v1::ClusterEventType>> table = {
      {ClusterEventType::kServiceCreated, v1::CLUSTER_EVENT_TYPE_SERVICE_CREATED},
      {ClusterEventType::kServiceScaled, v1::CLUSTER_EVENT_TYPE_SERVICE_SCALED},
      {ClusterEventType::kServiceDeleted, v1::CLUSTER_EVENT_TYPE_SERVICE_DELETED},
      {ClusterEventType::kReplicaPlaced, v1::CLUSTER_EVENT_TYPE_REPLICA_PLACED},
      {ClusterEventType::kReplicaPending, v1::CLUSTER_EVENT_TYPE_REPLICA_PENDING},
      {ClusterEventType::kReplicaRunning, v1::CLUSTER_EVENT_TYPE_REPLICA_RUNNING},
      {ClusterEventType::kReplicaReplaced, v1::CLUSTER_EVENT_TYPE_REPLICA_REPLACED},
      {ClusterEventType::kReplicaRemoved, v1::CLUSTER_EVENT_TYPE_REPLICA_REMOVED},
      {ClusterEventType::kNodeJoined, v1::CLUSTER_EVENT_TYPE_NODE_JOINED},
      {ClusterEventType::kNodeReady, v1::CLUSTER_EVENT_TYPE_NODE_READY},
      {ClusterEventType::kNodeSuspect, v1::CLUSTER_EVENT_TYPE_NODE_SUSPECT},
      {ClusterEventType::kNodeDown, v1::CLUSTER_EVENT_TYPE_NODE_DOWN},
      {ClusterEventType::kNodeDrained, v1::CLUSTER_EVENT_TYPE_NODE_DRAINED},
      {ClusterEventType::kNodeUndrained, v1::CLUSTER_EVENT_TYPE_NODE_UNDRAINED},
      {ClusterEventType::kStaleGuestStopped, v1::CLUSTER_EVENT_TYPE_STALE_GUEST_STOPPED},
      {ClusterEventType::kNodeRemoved, v1::CLUSTER_EVENT_TYPE_NODE_REMOVED},
      {ClusterEventType::kTokenCreated, v1::CLUSTER_EVENT_TYPE_TOKEN_CREATED},
      {ClusterEventType::kTokenRevoked, v1::CLUSTER_EVENT_TYPE_TOKEN_REVOKED},
      {ClusterEventType::kJoinTokenCreated, v1::CLUSTER_EVENT_TYPE_JOIN_TOKEN_CREATED},
  };
  ASSERT_EQ(std::size(table), static_cast<size_t>(kLastClusterEventType) + 1);
  for (const auto& [type, wire] : table) {
    ClusterEvent event{41,      TimePoint{} + std::chrono::seconds(5), type, "web", "n1",
                       "hello", "token 0123456789ab (operator)"};
    v1::ClusterEvent out;
    ClusterEventToProto(event, &out);
    EXPECT_EQ(out.type(), wire) << ClusterEventTypeName(type);
    EXPECT_EQ(out.sequence(), 41u);
    EXPECT_EQ(TimeUtil::TimestampToSeconds(out.time()), 5);
    EXPECT_EQ(out.service(), "web");
    EXPECT_EQ(out.node(), "n1");
    EXPECT_EQ(out.message(), "hello");
    EXPECT_EQ(out.actor(), "token 0123456789ab (operator)");
  }
}

TEST(StatusConvert, StateEnums) {
  EXPECT_EQ(NodeStateToProto(NodeState::kReady), v1::NODE_STATE_READY);
  EXPECT_EQ(NodeStateToProto(NodeState::kDown), v1::NODE_STATE_DOWN);
  EXPECT_EQ(ReplicaStateToProto(ReplicaState::kAssigned), v1::REPLICA_STATE_ASSIGNED);
  EXPECT_EQ(ReplicaStateToProto(ReplicaState::kLost), v1::REPLICA_STATE_LOST);
  EXPECT_EQ(GuestStateToProto(GuestState::kCrashed), v1::GUEST_STATE_CRASHED);
  EXPECT_EQ(GuestStateToProto(GuestState::kFailed), v1::GUEST_STATE_FAILED);
  EXPECT_EQ(GuestStateToProto(GuestState::kRestarting), v1::GUEST_STATE_RESTARTING);
}

}  // namespace
}  // namespace phoenix::supervisor::api
