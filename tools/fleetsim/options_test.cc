#include "tools/fleetsim/options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace phoenix::fleetsim {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

Result<Options> Parse(std::vector<std::string> args) { return ParseArgs(args); }

TEST(FleetsimOptionsTest, ParsesEveryFlag) {
  auto options =
      Parse({"--supervisor", "127.0.0.1:7400", "--ca-file", "/tmp/ca.pem", "--join-token", "tok",
             "--agents", "5000", "--zones", "4", "--duration", "2m", "--ramp", "15s",
             "--report-interval", "500ms", "--supervisor-pid", "1234"});
  ASSERT_TRUE(options.has_value()) << options.error().ToString();
  EXPECT_EQ(options->supervisor, "127.0.0.1:7400");
  EXPECT_EQ(options->ca_file, "/tmp/ca.pem");
  EXPECT_EQ(options->join_token, "tok");
  EXPECT_FALSE(options->insecure);
  EXPECT_EQ(options->agents, 5000u);
  EXPECT_EQ(options->zones, 4u);
  EXPECT_EQ(options->duration, 120s);
  EXPECT_EQ(options->ramp, 15s);
  EXPECT_EQ(options->report_interval, 500ms);
  EXPECT_EQ(options->supervisor_pid, 1234);
}

TEST(FleetsimOptionsTest, Defaults) {
  auto options = Parse({"--supervisor", "127.0.0.1:1", "--insecure", "--agents", "3"});
  ASSERT_TRUE(options.has_value()) << options.error().ToString();
  EXPECT_TRUE(options->insecure);
  EXPECT_EQ(options->zones, 3u);
  EXPECT_EQ(options->duration, 60s);
  EXPECT_EQ(options->ramp, 10s);
  EXPECT_EQ(options->report_interval, 10s);
  EXPECT_FALSE(options->supervisor_pid.has_value());
}

TEST(FleetsimOptionsTest, ErrorsNameTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::string field;
    std::string message;
  };
  const Case cases[] = {
      {{"--agents", "3", "--insecure"}, "--supervisor", "required"},
      {{"--supervisor", "127.0.0.1:1", "--insecure"}, "--agents", "at least 1"},
      {{"--supervisor", "127.0.0.1:1", "--agents", "3"}, "--ca-file", "required"},
      {{"--supervisor", "127.0.0.1:1", "--agents", "3", "--ca-file", "x"},
       "--join-token",
       "required"},
      {{"--supervisor", "127.0.0.1:1", "--insecure", "--agents", "x"}, "--agents", "not a number"},
      {{"--supervisor", "127.0.0.1:1", "--insecure", "--agents", "100001"}, "--agents", "at most"},
      {{"--supervisor", "127.0.0.1:1", "--insecure", "--agents", "1", "--zones", "27"},
       "--zones",
       "at most"},
      {{"--supervisor", "127.0.0.1:1", "--insecure", "--agents", "1", "--duration", "5d"},
       "--duration",
       "unknown unit"},
      {{"--supervisor", "127.0.0.1:1", "--insecure", "--agents", "1", "--duration", "5s"},
       "--ramp",
       "exceed"},
      {{"--supervisor", "127.0.0.1:1", "--insecure", "--agents", "1", "--bogus", "1"},
       "--bogus",
       "unknown flag"},
      {{"--supervisor"}, "--supervisor", "needs a value"},
      {{"extra"}, "extra", "unexpected"},
  };
  for (const Case& c : cases) {
    auto options = Parse(c.args);
    ASSERT_FALSE(options.has_value()) << ::testing::PrintToString(c.args);
    EXPECT_EQ(options.error().field, c.field) << ::testing::PrintToString(c.args);
    EXPECT_THAT(options.error().message, HasSubstr(c.message)) << ::testing::PrintToString(c.args);
  }
}

TEST(FleetsimOptionsTest, Durations) {
  EXPECT_EQ(*ParseDuration("60"), 60s);
  EXPECT_EQ(*ParseDuration("60s"), 60s);
  EXPECT_EQ(*ParseDuration("250ms"), 250ms);
  EXPECT_EQ(*ParseDuration("2m"), 120s);
  EXPECT_EQ(*ParseDuration("1h"), 3600s);
  EXPECT_FALSE(ParseDuration("").has_value());
  EXPECT_FALSE(ParseDuration("s").has_value());
  EXPECT_FALSE(ParseDuration("1.5s").has_value());
}

TEST(FleetsimOptionsTest, NodeAndZoneNames) {
  EXPECT_EQ(NodeName(0), "sim-00001");
  EXPECT_EQ(NodeName(4999), "sim-05000");
  EXPECT_EQ(ZoneName(0, 3), "sim-a");
  EXPECT_EQ(ZoneName(1, 3), "sim-b");
  EXPECT_EQ(ZoneName(2, 3), "sim-c");
  EXPECT_EQ(ZoneName(3, 3), "sim-a");
  EXPECT_EQ(ZoneName(7, 1), "sim-a");
}

TEST(FleetsimOptionsTest, ParsesProcStatWithAWickedCommandName) {
  // comm "(a) b" holds a space and a ')'; utime 1500, stime 250.
  const std::string stat =
      "4242 ((a) b) S 1 4242 4242 0 -1 4194560 900 0 0 0 1500 250 0 0 20 0 7 0 100 1000000 2000";
  auto ticks = ParseStatCpuTicks(stat);
  ASSERT_TRUE(ticks.has_value()) << ticks.error().ToString();
  EXPECT_EQ(*ticks, 1750u);
  EXPECT_FALSE(ParseStatCpuTicks("4242 (x) S 1 2").has_value());
  EXPECT_FALSE(ParseStatCpuTicks("no parens").has_value());
}

TEST(FleetsimOptionsTest, ParsesProcStatus) {
  const std::string status = "Name:\tphoenix-superv\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
  EXPECT_EQ(*ParseStatusKib(status, "VmRSS"), 102400u);
  EXPECT_EQ(*ParseStatusKib(status, "VmHWM"), 204800u);
  EXPECT_EQ(ParseStatusKib(status, "VmSwap").error().code, ErrorCode::kNotFound);
}

TEST(FleetsimOptionsTest, ReadsOwnProcess) {
  auto usage = ReadProcessUsage(getpid());
  ASSERT_TRUE(usage.has_value()) << usage.error().ToString();
  EXPECT_GT(usage->rss_kib, 0u);
  EXPECT_GE(usage->peak_rss_kib, usage->rss_kib);
  EXPECT_FALSE(ReadProcessUsage(0x3fffff).has_value());
}

TEST(FleetsimOptionsTest, CpuPercent) {
  EXPECT_DOUBLE_EQ(CpuPercent(50, std::chrono::seconds(1), 100), 50.0);
  EXPECT_DOUBLE_EQ(CpuPercent(400, std::chrono::seconds(2), 100), 200.0);
  EXPECT_DOUBLE_EQ(CpuPercent(10, std::chrono::seconds(0), 100), 0.0);
}

TEST(FleetsimOptionsTest, FormatsFigures) {
  Figures figures;
  figures.agents = 5000;
  figures.streams_up = 4998;
  figures.streams_ended = 2;
  figures.heartbeats_per_second = 4997.25;
  figures.heartbeats = 249863;
  figures.assignments = 5000;
  EXPECT_EQ(FormatFigures("  10.0s", figures),
            "[  10.0s] streams up 4998/5000 (ended 2), heartbeats 4997.2/s (249863 total), "
            "assignments received 5000");
  figures.supervisor_cpu_percent = 37.25;
  figures.supervisor_usage =
      ProcessUsage{.cpu_ticks = 1, .rss_kib = 153600, .peak_rss_kib = 204800};
  EXPECT_EQ(FormatFigures("final", figures),
            "[final] streams up 4998/5000 (ended 2), heartbeats 4997.2/s (249863 total), "
            "assignments received 5000, supervisor cpu 37.2% rss 150.0 MiB (peak 200.0 MiB)");
}

}  // namespace
}  // namespace phoenix::fleetsim
