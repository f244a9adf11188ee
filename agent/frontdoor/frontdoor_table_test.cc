#include "agent/frontdoor/frontdoor_table.h"

#include <gtest/gtest.h>

namespace phoenix::agent::frontdoor {
namespace {

FrontDoorTable WebTable() {
  return FrontDoorTable{
      .version = 7,
      .services = {
          FrontDoorService{
              .name = "web",
              .port = 8080,
              .servers = {{.name = "web-0-1", .address = "10.0.0.2", .port = 31000, .zone = "a"},
                          {.name = "web-1-1",
                           .address = "fd00::3",
                           .port = 31001,
                           .zone = "b",
                           .draining = true}}},
          FrontDoorService{.name = "db", .port = 5432, .mode = FrontDoorMode::kTcp}}};
}

TEST(FrontDoorTableTest, ValidTableIsAccepted) { EXPECT_TRUE(ValidateTable(WebTable())); }

TEST(FrontDoorTableTest, EveryBadFieldIsNamed) {
  struct Case {
    const char* what;
    void (*spoil)(FrontDoorTable&);
    const char* field;
  };
  const Case cases[] = {
      {"name with a space (a second command)",
       [](FrontDoorTable& t) { t.services[0].name = "a b"; }, "services[0].name"},
      {"duplicate service", [](FrontDoorTable& t) { t.services[1].name = "web"; },
       "services[1].name"},
      {"port 0", [](FrontDoorTable& t) { t.services[1].port = 0; }, "services[1].port"},
      {"port taken twice", [](FrontDoorTable& t) { t.services[1].port = 8080; },
       "services[1].port"},
      {"server name with newline",
       [](FrontDoorTable& t) { t.services[0].servers[1].name = "x\nshow info"; },
       "services[0].servers[1].name"},
      {"duplicate server", [](FrontDoorTable& t) { t.services[0].servers[1].name = "web-0-1"; },
       "services[0].servers[1].name"},
      {"host name instead of an address",
       [](FrontDoorTable& t) { t.services[0].servers[0].address = "example.com"; },
       "services[0].servers[0].address"},
      {"server port 0", [](FrontDoorTable& t) { t.services[0].servers[0].port = 0; },
       "services[0].servers[0].port"},
      {"too many servers",
       [](FrontDoorTable& t) { t.services[0].servers.resize(kMaxServersPerService + 1); },
       "services[0].servers"},
  };
  for (const Case& c : cases) {
    FrontDoorTable t = WebTable();
    c.spoil(t);
    auto r = ValidateTable(t);
    ASSERT_FALSE(r.has_value()) << c.what;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << c.what;
    EXPECT_EQ(r.error().field, c.field) << c.what << ": " << r.error().message;
  }
}

TEST(FrontDoorTableTest, WeightsPreferTheNodesZoneAndDrainToZero) {
  const FrontDoorSettings settings{.zone = "a"};
  EXPECT_EQ(ServerWeight({.zone = "a"}, settings), kLocalZoneWeight);
  EXPECT_EQ(ServerWeight({.zone = "b"}, settings), kRemoteZoneWeight);
  EXPECT_EQ(ServerWeight({.zone = ""}, settings), kRemoteZoneWeight);
  EXPECT_EQ(ServerWeight({.zone = "a", .draining = true}, settings), 0u);
  EXPECT_EQ(ServerWeight({.zone = ""}, FrontDoorSettings{.zone = ""}), kRemoteZoneWeight)
      << "an unknown zone is nobody's own";
}

TEST(FrontDoorTableTest, ConfigHasOneFrontendAndBackendPerServiceWithItsServers) {
  const HaproxyFiles files{.dir = "/var/lib/phoenix/frontdoor"};
  const FrontDoorSettings settings{.bind_address = "192.0.2.10", .zone = "a"};
  const std::string c = RenderConfig(WebTable(), files, settings);
  for (const char* line : {
           "  master-worker\n",
           "  stats socket /var/lib/phoenix/frontdoor/api.sock mode 600 level admin expose-fd "
           "listeners\n",
           "  hard-stop-after 30s\n",
           "frontend web\n  mode http\n  bind 192.0.2.10:8080\n  default_backend web\n",
           "backend web\n  mode http\n  balance leastconn\n  retry-on conn-failure "
           "empty-response\n",
           "  server web-0-1 10.0.0.2:31000 weight 100 check inter 2s fastinter 500ms fall 2 rise "
           "1 "
           "observe layer7 error-limit 3 on-error mark-down\n",
           "  server web-1-1 ipv6@fd00::3:31001 weight 0 check",
           "frontend db\n  mode tcp\n  bind 192.0.2.10:5432\n",
           "backend db\n  mode tcp\n  balance leastconn\n",
           "# frontends: 192.0.2.10 web:8080:http db:5432:tcp\n",
       }) {
    EXPECT_NE(c.find(line), std::string::npos) << "missing:\n" << line << "\nin:\n" << c;
  }
  EXPECT_EQ(c.find("retry-on", c.find("backend db")), std::string::npos)
      << "TCP services are not retried at the HTTP level";
}

TEST(FrontDoorTableTest, SignatureIgnoresServersButNotPortsModesOrTheAddress) {
  const FrontDoorSettings settings{.bind_address = "10.0.0.1"};
  FrontDoorTable a = WebTable();
  FrontDoorTable b = a;
  b.services[0].servers.clear();
  b.version = 9;
  EXPECT_EQ(FrontendSignature(a, settings), FrontendSignature(b, settings));
  b.services[1].port = 5433;
  EXPECT_NE(FrontendSignature(a, settings), FrontendSignature(b, settings));
  b = a;
  b.services[1].mode = FrontDoorMode::kHttp;
  EXPECT_NE(FrontendSignature(a, settings), FrontendSignature(b, settings));
  EXPECT_NE(FrontendSignature(a, settings),
            FrontendSignature(a, FrontDoorSettings{.bind_address = "10.0.0.2"}));
}

}  // namespace
}  // namespace phoenix::agent::frontdoor
