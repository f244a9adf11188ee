#include "tools/phoenixctl/bench_command.h"

#include <gmock/gmock.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include "tools/phoenixctl/testing/fake_agent.h"

namespace phoenix::ctl {
namespace {

using testing::FakeAgent;
using ::testing::HasSubstr;
using testing::RunCli;
using namespace std::chrono_literals;

TEST(PercentileTest, NearestRankOnUnsortedSamples) {
  std::vector<double> samples = {10, 1, 9, 2, 8, 3, 7, 4, 6, 5};
  EXPECT_EQ(Percentile(samples, 50), 5);
  EXPECT_EQ(Percentile(samples, 90), 9);
  EXPECT_EQ(Percentile(samples, 91), 10);
  EXPECT_EQ(Percentile(samples, 100), 10);
  EXPECT_EQ(Percentile(samples, 0), 1);
  EXPECT_EQ(Percentile(samples, 10), 1);
  EXPECT_EQ(Percentile(samples, 11), 2);
}

TEST(PercentileTest, SmallAndEmptyInputs) {
  EXPECT_EQ(Percentile(std::vector<double>{}, 50), std::nullopt);
  EXPECT_EQ(Percentile(std::vector<double>{42.5}, 50), 42.5);
  EXPECT_EQ(Percentile(std::vector<double>{42.5}, 90), 42.5);
  EXPECT_EQ(Percentile(std::vector<double>{3, 1}, 50), 1);
  EXPECT_EQ(Percentile(std::vector<double>{3, 1}, 90), 3);
  EXPECT_EQ(Percentile(std::vector<double>{1, 2, 3}, 150), 3);  // clamped
}

TEST(SummarizeTest, CountP50P90Max) {
  std::vector<double> samples = {800, 812, 790, 2000, 805};
  auto summary = Summarize(samples);
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->count, 5u);
  EXPECT_EQ(summary->p50_ms, 805);
  EXPECT_EQ(summary->p90_ms, 2000);
  EXPECT_EQ(summary->max_ms, 2000);
  EXPECT_FALSE(Summarize(std::vector<double>{}));
}

TEST(BenchReportTest, TableAndJson) {
  BenchReport report;
  report.image = "demo";
  report.runtime = "vm";
  report.results.push_back({"cold", "bench-vm-cold", true, {812.4, 790.1}, {1630.2, 1500}});
  report.results.push_back({"snapshot", "bench-vm-snapshot", false, {120}, {}});
  std::ostringstream out;
  RenderBenchTable(report, out);
  EXPECT_EQ(out.str(),
            "MODE       GUEST               KILLS   RUNNING_P50_MS   RUNNING_P90_MS   "
            "RUNNING_MAX_MS   HEALTHY_P50_MS   HEALTHY_P90_MS   HEALTHY_MAX_MS\n"
            "cold       bench-vm-cold       2       790              812              "
            "812              1500             1630             1630\n"
            "snapshot   bench-vm-snapshot   1       120              120              "
            "120              -                -                -\n");
  auto json = BenchJson(report);
  ASSERT_TRUE(json);
  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(*json, &parsed).ok()) << *json;
  const auto& cold = parsed.fields().at("results").list_value().values(0).struct_value().fields();
  EXPECT_EQ(cold.at("mode").string_value(), "cold");
  EXPECT_EQ(cold.at("kills").number_value(), 2);
  EXPECT_EQ(cold.at("kill_to_running_ms").struct_value().fields().at("p50").number_value(), 790.1);
  EXPECT_EQ(cold.at("kill_to_healthy_ms").struct_value().fields().at("max").number_value(), 1630.2);
  const auto& snap = parsed.fields().at("results").list_value().values(1).struct_value().fields();
  EXPECT_TRUE(snap.at("kill_to_healthy_ms").has_null_value());
}

TEST(BenchRestartTest, OwnGuestsPerBootModeAreMeasuredAndDeleted) {
  FakeAgent agent;
  agent.ScriptRestarts({.running_after = 40ms, .healthy_after = 90ms});
  auto result = RunCli(RunBenchGroup, agent.endpoint(),
                       {"restart", "--runtime", "container", "--count", "3", "--timeout", "10s"});
  ASSERT_EQ(result.exit_code, 0) << result.err;

  auto runs = agent.run_requests();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].spec().name(), "bench-container-cold");
  EXPECT_EQ(runs[0].spec().boot_mode(), v1::BOOT_MODE_COLD);
  EXPECT_EQ(runs[0].spec().image(), "demo");
  EXPECT_EQ(runs[0].spec().runtime(), v1::RUNTIME_CONTAINER);
  EXPECT_EQ(runs[0].spec().health().http().port(), 80u);
  EXPECT_EQ(runs[0].spec().health().http().path(), "/health");
  EXPECT_LE(runs[0].spec().health().timeout_ms(), runs[0].spec().health().interval_ms());
  ASSERT_EQ(runs[0].spec().ports_size(), 1);
  EXPECT_EQ(runs[0].spec().ports(0).guest_port(), 80u);
  EXPECT_EQ(runs[1].spec().name(), "bench-container-snapshot");
  EXPECT_EQ(runs[1].spec().boot_mode(), v1::BOOT_MODE_SNAPSHOT);
  EXPECT_EQ(agent.killed().size(), 6u);
  EXPECT_THAT(agent.deleted(),
              ::testing::ElementsAre("bench-container-cold", "bench-container-snapshot"));

  EXPECT_THAT(result.err, HasSubstr("kill 3/3: running after "));
  EXPECT_THAT(result.out, HasSubstr("cold       bench-container-cold       3"));
  EXPECT_THAT(result.out, HasSubstr("snapshot   bench-container-snapshot   3"));
}

TEST(BenchRestartTest, JsonNumbersFollowTheAgentsTiming) {
  FakeAgent agent;
  agent.ScriptRestarts({.running_after = 50ms, .healthy_after = 120ms});
  auto result = RunCli(RunBenchGroup, agent.endpoint(),
                       {"restart", "--boot", "snapshot", "--count", "4", "-o", "json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(result.out, &parsed).ok()) << result.out;
  EXPECT_EQ(parsed.fields().at("runtime").string_value(), "vm");
  const auto& results = parsed.fields().at("results").list_value();
  ASSERT_EQ(results.values_size(), 1);
  const auto& fields = results.values(0).struct_value().fields();
  EXPECT_EQ(fields.at("guest").string_value(), "bench-vm-snapshot");
  const auto& running = fields.at("kill_to_running_ms").struct_value().fields();
  const auto& healthy = fields.at("kill_to_healthy_ms").struct_value().fields();
  ASSERT_EQ(running.at("samples").list_value().values_size(), 4);
  // The fake emits RUNNING 50ms and HEALTHY 120ms after each kill; the client sees them no sooner
  // and, on a loopback call, well within seconds.
  for (const auto& sample : running.at("samples").list_value().values()) {
    EXPECT_GE(sample.number_value(), 49);
    EXPECT_LT(sample.number_value(), 5000);
  }
  for (const auto& sample : healthy.at("samples").list_value().values()) {
    EXPECT_GE(sample.number_value(), 119);
    EXPECT_LT(sample.number_value(), 5000);
  }
  EXPECT_LE(running.at("p50").number_value(), running.at("p90").number_value());
  EXPECT_LE(running.at("p90").number_value(), running.at("max").number_value());
  EXPECT_GT(healthy.at("p50").number_value(), running.at("p50").number_value());
}

TEST(BenchRestartTest, ExistingGuestIsKeptAndMeasured) {
  FakeAgent agent;
  v1::Guest guest;
  guest.mutable_spec()->set_name("web");
  guest.mutable_spec()->set_runtime(v1::RUNTIME_MICROVM);
  guest.mutable_spec()->mutable_health()->mutable_tcp()->set_port(80);
  guest.set_state(v1::GUEST_STATE_RUNNING);
  guest.set_healthy(true);
  agent.AddGuest(guest);
  agent.ScriptRestarts({.running_after = 30ms, .healthy_after = 60ms});
  auto result =
      RunCli(RunBenchGroup, agent.endpoint(), {"restart", "--guest", "web", "--count", "2"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(agent.killed().size(), 2u);
  EXPECT_TRUE(agent.deleted().empty());
  EXPECT_TRUE(agent.run_requests().empty());
  EXPECT_THAT(result.out, HasSubstr("auto   web     2"));
}

TEST(BenchRestartTest, TimeoutWhenTheGuestNeverComesBackStillDeletesIt) {
  FakeAgent agent;
  // No scripted restart: the fake never reports the guest healthy.
  auto result =
      RunCli(RunBenchGroup, agent.endpoint(), {"restart", "--boot", "cold", "--timeout", "300ms"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr("bench-vm-cold was not healthy within 300ms"));
  EXPECT_THAT(result.err, HasSubstr("(DEADLINE_EXCEEDED)"));
  EXPECT_THAT(agent.deleted(), ::testing::ElementsAre("bench-vm-cold"));
  EXPECT_TRUE(agent.killed().empty());
}

TEST(BenchRestartTest, CtrlCStillDeletesTheCreatedGuest) {
  FakeAgent agent;  // never reports the guest healthy
  std::thread interrupter([] {
    std::this_thread::sleep_for(150ms);
    SetInterruptedForTest(true);
  });
  auto start = std::chrono::steady_clock::now();
  auto result =
      RunCli(RunBenchGroup, agent.endpoint(), {"restart", "--boot", "cold", "--timeout", "30s"});
  interrupter.join();
  SetInterruptedForTest(false);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr("interrupted (CANCELLED)"));
  EXPECT_THAT(agent.deleted(), ::testing::ElementsAre("bench-vm-cold"));
}

TEST(BenchRestartTest, FailedAfterKillIsReported) {
  FakeAgent agent;
  v1::Guest guest;
  guest.mutable_spec()->set_name("web");
  guest.set_state(v1::GUEST_STATE_RUNNING);
  agent.AddGuest(guest);
  std::thread failer([&agent] {
    // Fail the guest once it has been killed.
    for (int i = 0; i < 200 && agent.killed().empty(); ++i) std::this_thread::sleep_for(10ms);
    agent.Emit(v1::EVENT_TYPE_GUEST_FAILED, "web", "start keeps failing");
  });
  auto result = RunCli(RunBenchGroup, agent.endpoint(),
                       {"restart", "--guest", "web", "--count", "1", "--timeout", "5s"});
  failer.join();
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr("web is failed after kill 1: start keeps failing"));
}

TEST(BenchRestartTest, UsageErrors) {
  FakeAgent agent;
  for (auto args : std::vector<std::vector<std::string>>{
           {"restart", "--guest", "web", "--boot", "cold"},
           {"restart", "--boot", "warm"},
           {"restart", "--count", "0"},
           {"restart", "--runtime", "docker"},
           {"restart", "web"},
       }) {
    auto result = RunCli(RunBenchGroup, agent.endpoint(), args);
    EXPECT_EQ(result.exit_code, 2) << args.back();
  }
  EXPECT_TRUE(agent.run_requests().empty());
  auto help = RunCli(RunBenchGroup, agent.endpoint(), {"restart", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, HasSubstr("default both"));
  EXPECT_THAT(help.out, HasSubstr("Examples:"));
}

}  // namespace
}  // namespace phoenix::ctl
