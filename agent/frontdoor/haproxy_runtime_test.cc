#include "agent/frontdoor/haproxy_runtime.h"

#include <gtest/gtest.h>

namespace phoenix::agent::frontdoor {
namespace {

// What HAProxy 2.6 printed here for "show servers state web" with two dynamic servers: r1 ready
// and up, r2 just added (forced maintenance).
constexpr std::string_view kTwoServers =
    "1\n"
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
    "srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health "
    "srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord "
    "srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n"
    "3 web 1 r1 127.0.0.1 2 0 1 1 5 1 0 3 7 0 0 0 - 18181 - 0 0 - - 0\n"
    "3 web 2 r2 10.1.2.3 0 1 50 1 2 1 0 0 7 0 0 0 - 8080 - 0 0 - - 0\n"
    "\n";

TEST(ParseServersStateTest, ReadsEachServerByColumnName) {
  auto servers = ParseServersState(kTwoServers);
  ASSERT_TRUE(servers.has_value()) << servers.error().ToString();
  ASSERT_EQ(servers->size(), 2u);
  const ServerState& r1 = (*servers)[0];
  EXPECT_EQ(r1.backend, "web");
  EXPECT_EQ(r1.name, "r1");
  EXPECT_EQ(r1.address, "127.0.0.1");
  EXPECT_EQ(r1.port, 18181);
  EXPECT_TRUE(r1.running);
  EXPECT_FALSE(r1.in_maintenance);
  EXPECT_FALSE(r1.draining);
  EXPECT_EQ(r1.weight, 1u);
  const ServerState& r2 = (*servers)[1];
  EXPECT_FALSE(r2.running);
  EXPECT_TRUE(r2.in_maintenance);
  EXPECT_EQ(r2.weight, 50u);
}

TEST(ParseServersStateTest, AnEmptyBackendHasNoServersAndJunkIsAnError) {
  auto empty = ParseServersState("1\n# be_id be_name srv_id\n");
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->empty());
  EXPECT_FALSE(ParseServersState("").has_value());
  EXPECT_FALSE(ParseServersState("Unknown command.\n").has_value());
  EXPECT_FALSE(ParseServersState("1\n# be_name srv_name\nweb r1\n").has_value())
      << "columns missing";
}

TEST(HaproxyRuntimeTest, NamesThatCouldBeAnotherCommandAreRefusedBeforeSending) {
  HaproxyRuntime haproxy("/nonexistent/api.sock");
  const std::string too_long(65, 'a');
  for (std::string_view bad : std::initializer_list<std::string_view>{"", "web 1", "web\nshutdown",
                                                                      "web;x", "a/b", too_long}) {
    auto r = haproxy.AddServer("web", bad, "127.0.0.1", 80, 1);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << bad;
    EXPECT_EQ(r.error().field, "server") << bad;
  }
  auto host = haproxy.AddServer("web", "r1", "example.com", 80, 1);
  ASSERT_FALSE(host.has_value());
  EXPECT_EQ(host.error().field, "address");
  EXPECT_FALSE(haproxy.Execute("show info; shutdown sessions").has_value());
}

TEST(HaproxyRuntimeTest, NoHaproxyIsUnavailable) {
  auto r = HaproxyRuntime("/nonexistent/api.sock").Execute("show info");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("/nonexistent/api.sock"), std::string::npos);
}

}  // namespace
}  // namespace phoenix::agent::frontdoor
