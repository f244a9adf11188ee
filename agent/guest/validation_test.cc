#include "agent/guest/validation.h"

#include <functional>

#include <gtest/gtest.h>

namespace phoenix::agent {
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
}  // namespace phoenix::agent
