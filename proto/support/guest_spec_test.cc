#include "proto/support/guest_spec.h"

#include <functional>

#include <gtest/gtest.h>

#include "phoenix/v1/agent.pb.h"

namespace phoenix::spec {
namespace {

GuestSpec ValidSpec() {
  GuestSpec s;
  s.name = "web";
  s.image = "demo";
  s.ports = {{80, 0, "127.0.0.1"}};
  s.health.kind = HealthCheck::Kind::kHttp;
  s.health.port = 80;
  return s;
}

struct Case {
  const char* title;
  std::function<void(GuestSpec&)> mutate;
  const char* field;  // nullptr = valid
};

class ValidateGuestSpecTest : public ::testing::TestWithParam<Case> {};

TEST_P(ValidateGuestSpecTest, ReportsTheOffendingField) {
  GuestSpec spec = ValidSpec();
  GetParam().mutate(spec);
  auto r = ValidateGuestSpec(spec);
  if (GetParam().field == nullptr) {
    EXPECT_TRUE(r) << r.error().ToString();
  } else {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(r.error().field, GetParam().field) << r.error().ToString();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, ValidateGuestSpecTest,
    ::testing::Values(
        Case{"valid", [](GuestSpec&) {}, nullptr},
        Case{"no_health_no_ports",
             [](GuestSpec& s) {
               s.ports.clear();
               s.health = {};
             },
             nullptr},
        Case{"empty_name", [](GuestSpec& s) { s.name = ""; }, "spec.name"},
        Case{"upper_name", [](GuestSpec& s) { s.name = "Web"; }, "spec.name"},
        Case{"trailing_dash", [](GuestSpec& s) { s.name = "web-"; }, "spec.name"},
        Case{"long_name", [](GuestSpec& s) { s.name = std::string(64, 'a'); }, "spec.name"},
        Case{"no_image", [](GuestSpec& s) { s.image = ""; }, "spec.image"},
        Case{"zero_vcpus", [](GuestSpec& s) { s.vcpus = 0; }, "spec.vcpus"},
        Case{"many_vcpus", [](GuestSpec& s) { s.vcpus = 65; }, "spec.vcpus"},
        Case{"tiny_memory", [](GuestSpec& s) { s.memory_mib = 32; }, "spec.memory_mib"},
        Case{"vm_command", [](GuestSpec& s) { s.command = {"/bin/sh"}; }, "spec.command"},
        Case{"vm_env", [](GuestSpec& s) { s.env["A"] = "b"; }, "spec.env"},
        Case{"container_command",
             [](GuestSpec& s) {
               s.runtime = RuntimeKind::kContainer;
               s.command = {"/bin/sh"};
             },
             nullptr},
        Case{"env_empty_key",
             [](GuestSpec& s) {
               s.runtime = RuntimeKind::kContainer;
               s.env[""] = "x";
             },
             "spec.env"},
        Case{"env_key_with_equals",
             [](GuestSpec& s) {
               s.runtime = RuntimeKind::kContainer;
               s.env["A=B"] = "x";
             },
             "spec.env[\"A=B\"]"},
        Case{"env_value_with_nul",
             [](GuestSpec& s) {
               s.runtime = RuntimeKind::kContainer;
               s.env["A"] = std::string("x\0y", 3);
             },
             "spec.env[\"A\"]"},
        Case{"env_valid",
             [](GuestSpec& s) {
               s.runtime = RuntimeKind::kContainer;
               s.env["PATH"] = "/bin:/usr/bin";
             },
             nullptr},
        Case{"command_arg_with_nul",
             [](GuestSpec& s) {
               s.runtime = RuntimeKind::kContainer;
               s.command = {"/bin/sh", std::string("-c\0", 3)};
             },
             "spec.command[1]"},
        Case{"guest_port_zero", [](GuestSpec& s) { s.ports[0].guest_port = 0; },
             "spec.ports[0].guest_port"},
        Case{"guest_port_twice",
             [](GuestSpec& s) {
               s.ports.push_back({80, 0, "127.0.0.1"});
             },
             "spec.ports[1].guest_port"},
        Case{"host_port_twice",
             [](GuestSpec& s) {
               s.ports[0].host_port = 8080;
               s.ports.push_back({81, 8080, "127.0.0.1"});
             },
             "spec.ports[1].host_port"},
        Case{"foreign_ip", [](GuestSpec& s) { s.ports[0].host_ip = "10.0.0.1"; },
             "spec.ports[0].host_ip"},
        Case{"health_port_unpublished", [](GuestSpec& s) { s.health.port = 81; },
             "spec.health.port"},
        Case{"health_path", [](GuestSpec& s) { s.health.path = "health"; },
             "spec.health.http.path"},
        Case{"health_path_crlf",
             [](GuestSpec& s) { s.health.path = "/health HTTP/1.0\r\nX-Injected: 1\r\n"; },
             "spec.health.http.path"},
        Case{"health_path_long", [](GuestSpec& s) { s.health.path = "/" + std::string(1024, 'a'); },
             "spec.health.http.path"},
        Case{"health_path_query", [](GuestSpec& s) { s.health.path = "/health?full=1"; }, nullptr},
        Case{"health_interval", [](GuestSpec& s) { s.health.interval_ms = 10; },
             "spec.health.interval_ms"},
        Case{"health_timeout", [](GuestSpec& s) { s.health.timeout_ms = s.health.interval_ms + 1; },
             "spec.health.timeout_ms"},
        Case{"health_threshold", [](GuestSpec& s) { s.health.unhealthy_threshold = 0; },
             "spec.health.unhealthy_threshold"},
        Case{"health_restart_after",
             [](GuestSpec& s) { s.health.restart_after_unhealthy_ms = 3'600'001; },
             "spec.health.restart_after_unhealthy_ms"},
        Case{"backoff_zero", [](GuestSpec& s) { s.restart.initial_backoff_ms = 0; },
             "spec.restart.initial_backoff_ms"},
        Case{"backoff_cap", [](GuestSpec& s) { s.restart.max_backoff_ms = 1; },
             "spec.restart.max_backoff_ms"}),
    [](const auto& info) { return std::string(info.param.title); });

TEST(GuestSpecConvertTest, AppliesDefaults) {
  v1::GuestSpec in;
  in.set_name("web");
  in.set_image("demo");
  in.add_ports()->set_guest_port(80);
  in.mutable_health()->mutable_http()->set_port(80);
  auto s = GuestSpecFromProto(in);
  ASSERT_TRUE(s) << s.error().ToString();
  EXPECT_EQ(s->runtime, RuntimeKind::kVm);
  EXPECT_EQ(s->vcpus, 1u);
  EXPECT_EQ(s->memory_mib, 256u);
  EXPECT_EQ(s->ports.at(0).host_ip, "127.0.0.1");
  EXPECT_EQ(s->health.kind, HealthCheck::Kind::kHttp);
  EXPECT_EQ(s->health.path, "/health");
  EXPECT_EQ(s->health.restart_after_unhealthy_ms, 10000u) << "unset: a 10 s liveness grace";
  EXPECT_EQ(s->restart.policy, RestartPolicy::kAlways);
  EXPECT_EQ(s->boot_mode, BootMode::kAuto);
}

TEST(GuestSpecConvertTest, RestartAfterUnhealthyZeroIsKeptNotDefaulted) {
  v1::GuestSpec in;
  in.add_ports()->set_guest_port(80);
  in.mutable_health()->mutable_tcp()->set_port(80);
  in.mutable_health()->set_restart_after_unhealthy_ms(0);
  auto s = GuestSpecFromProto(in);
  ASSERT_TRUE(s) << s.error().ToString();
  EXPECT_EQ(s->health.restart_after_unhealthy_ms, 0u);
}

TEST(GuestSpecConvertTest, RejectsPortsOutOfRangeNamingTheField) {
  v1::GuestSpec in;
  in.add_ports()->set_guest_port(80);
  in.add_ports()->set_guest_port(70000);
  auto s = GuestSpecFromProto(in);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().field, "spec.ports[1].guest_port");
}

TEST(GuestSpecConvertTest, RejectsEmptyHealth) {
  v1::GuestSpec in;
  in.mutable_health()->set_interval_ms(1000);
  auto s = GuestSpecFromProto(in);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().field, "spec.health");
}

TEST(GuestSpecConvertTest, SpecRoundTrips) {
  GuestSpec spec;
  spec.name = "api";
  spec.runtime = RuntimeKind::kContainer;
  spec.image = "demo:v2";
  spec.vcpus = 2;
  spec.memory_mib = 512;
  spec.command = {"/bin/sh", "-c", "echo hi"};
  spec.env = {{"A", "1"}};
  spec.ports = {{8080, 18080, "127.0.0.1"}};
  spec.health = {HealthCheck::Kind::kTcp, 8080, "/health", 500, 400, 2, 30000, 2500};
  spec.restart = {RestartPolicy::kOnFailure, 100, 5000};
  spec.boot_mode = BootMode::kCold;
  v1::GuestSpec wire;
  GuestSpecToProto(spec, &wire);
  auto back = GuestSpecFromProto(wire);
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(*back, spec);
  spec.health.restart_after_unhealthy_ms = 0;  // "at once" survives the wire too
  v1::GuestSpec wire_at_once;
  GuestSpecToProto(spec, &wire_at_once);
  back = GuestSpecFromProto(wire_at_once);
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(*back, spec);
}

TEST(GuestSpecConvertTest, TemplatesAreCheckedByTheSameRulesUnderTheirOwnPrefix) {
  v1::GuestSpec in;
  in.set_image("demo");
  in.set_memory_mib(32);  // an agent refuses this, so a service template must be refused too
  auto s = ParseGuestSpec(in, "spec.template", SpecUse::kTemplate);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().field, "spec.template.memory_mib");

  // No name (the supervisor names replicas) and host ports that agents pick are fine.
  in.set_memory_mib(0);
  in.add_ports()->set_guest_port(80);
  in.mutable_ports(0)->set_host_port(8080);
  s = ParseGuestSpec(in, "spec.template", SpecUse::kTemplate);
  ASSERT_TRUE(s) << s.error().ToString();
  EXPECT_EQ(s->runtime, RuntimeKind::kVm) << "unset runtime is a VM, as on the agent";
  EXPECT_EQ(s->ports.at(0).host_port, 0);
  EXPECT_EQ(s->memory_mib, kDefaultMemoryMib);

  in.mutable_env()->insert({"A=B", "c"});
  s = ParseGuestSpec(in, "spec.template", SpecUse::kTemplate);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().field, "spec.template.env");
  in.set_runtime(v1::RUNTIME_CONTAINER);
  s = ParseGuestSpec(in, "spec.template", SpecUse::kTemplate);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().field, "spec.template.env[\"A=B\"]");

  // A guest of its own needs its name.
  v1::GuestSpec guest;
  guest.set_image("demo");
  auto g = ParseGuestSpec(guest);
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().field, "spec.name");
}

TEST(StopGraceTest, DefaultsAndBounds) {
  EXPECT_EQ(StopGrace(0).value(), kDefaultStopGrace);
  EXPECT_EQ(StopGrace(1).value(), std::chrono::milliseconds(1));
  EXPECT_EQ(StopGrace(3'600'000).value(), kMaxStopGrace);
  for (uint64_t bad : {uint64_t{3'600'001}, uint64_t{1} << 31, uint64_t{0xffffffff}}) {
    auto r = StopGrace(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().field, "timeout_ms");
  }
}

TEST(IsValidGuestNameTest, AcceptsDnsLabels) {
  EXPECT_TRUE(IsValidGuestName("a"));
  EXPECT_TRUE(IsValidGuestName("web-1"));
  EXPECT_TRUE(IsValidGuestName("0web"));
  EXPECT_FALSE(IsValidGuestName("-web"));
  EXPECT_FALSE(IsValidGuestName("we_b"));
}

}  // namespace
}  // namespace phoenix::spec
