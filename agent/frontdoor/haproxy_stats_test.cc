#include "agent/frontdoor/haproxy_stats.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace phoenix::agent::frontdoor {
namespace {

using namespace std::chrono_literals;

// HAProxy 2.6's `show stat` header (Debian 12), up to the columns used here.
constexpr std::string_view kHeader =
    "pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,"
    "wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,"
    "lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,"
    "hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,"
    "cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,"
    "rtime,ttime";

// A line with `cells` in their columns and every other cell empty, as HAProxy leaves unused ones.
std::string Line(const std::map<std::string, std::string>& cells) {
  std::string line;
  size_t start = 0;
  for (bool first = true;; first = false) {
    const size_t comma = kHeader.find(',', start);
    const std::string name(
        kHeader.substr(start, comma == std::string_view::npos ? comma : comma - start));
    if (!first) line += ',';
    if (auto it = cells.find(name); it != cells.end()) line += it->second;
    if (comma == std::string_view::npos) return line + "\n";
    start = comma + 1;
  }
}

const std::string kShowStat =
    "# " + std::string(kHeader) + "\n" +
    Line({{"pxname", "web"}, {"svname", "FRONTEND"}, {"stot", "2"}, {"req_tot", "2"}}) +
    Line({{"pxname", "web"},
          {"svname", "web-1-1"},
          {"scur", "3"},
          {"stot", "17"},
          {"econ", "2"},
          {"hrsp_5xx", "4"},
          {"req_tot", "15"},
          {"rtime", "12"}}) +
    Line({{"pxname", "db"}, {"svname", "db-0-1"}, {"stot", "9"}, {"rtime", "1"}}) +
    Line({{"pxname", "web"}, {"svname", "BACKEND"}, {"stot", "2"}, {"req_tot", "2"}});

TEST(HaproxyStatsTest, ServerLinesByColumnName) {
  auto servers = ParseShowStat(kShowStat);
  ASSERT_TRUE(servers) << servers.error().ToString();
  ASSERT_EQ(servers->size(), 2u) << "FRONTEND and BACKEND lines are not servers";
  EXPECT_EQ((*servers)[0], (ServerCounters{.backend = "web",
                                           .server = "web-1-1",
                                           .requests = 15,
                                           .responses_5xx = 4,
                                           .connection_errors = 2,
                                           .in_flight = 3,
                                           .avg_response_ms = 12}));
  EXPECT_EQ((*servers)[1].requests, 9u) << "a TCP server has no req_tot: its connections count";
}

TEST(HaproxyStatsTest, RefusesAnswersWithoutTheColumnsItNeeds) {
  EXPECT_FALSE(ParseShowStat("web,web-1-1,0\n"));
  auto old = ParseShowStat("# pxname,svname,scur\nweb,web-1-1,0\n");
  ASSERT_FALSE(old);
  EXPECT_NE(old.error().message.find("no column stot"), std::string::npos) << old.error().message;
  EXPECT_FALSE(ParseShowStat(""));
}

TEST(HaproxyStatsTest, RatesBetweenSamplesStartOverWhenCountersDo) {
  const std::vector<ServerCounters> before = {{.backend = "web", .server = "a", .requests = 100},
                                              {.backend = "web", .server = "b", .requests = 50}};
  const std::vector<ServerCounters> after = {
      {.backend = "web", .server = "a", .requests = 120, .in_flight = 2},
      {.backend = "web", .server = "b", .requests = 5},   // deleted and added again
      {.backend = "web", .server = "c", .requests = 4}};  // new
  auto load = LoadBetween(before, after, 2000ms);
  ASSERT_EQ(load.size(), 3u);
  EXPECT_DOUBLE_EQ(load[0].requests_per_second, 10.0);
  EXPECT_EQ(load[0].requests_total, 120u);
  EXPECT_EQ(load[0].in_flight, 2u);
  EXPECT_DOUBLE_EQ(load[1].requests_per_second, 2.5);
  EXPECT_DOUBLE_EQ(load[2].requests_per_second, 2.0);
}

}  // namespace
}  // namespace phoenix::agent::frontdoor
