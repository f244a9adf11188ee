#include "tools/phoenixctl/guest_commands.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <google/protobuf/util/json_util.h>

#include "tools/phoenixctl/testing/fake_agent.h"

namespace phoenix::ctl {
namespace {

using testing::FakeAgent;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::RunCli;

TEST(ParsePublishTest, AcceptsGuestPortHostPortAndHostIpForms) {
  auto guest_only = ParsePublish("80");
  ASSERT_TRUE(guest_only);
  EXPECT_EQ(guest_only->guest_port(), 80u);
  EXPECT_EQ(guest_only->host_port(), 0u);
  EXPECT_EQ(guest_only->host_ip(), "127.0.0.1");

  auto mapped = ParsePublish("8080:80");
  ASSERT_TRUE(mapped);
  EXPECT_EQ(mapped->host_port(), 8080u);
  EXPECT_EQ(mapped->guest_port(), 80u);

  auto with_ip = ParsePublish("0.0.0.0:8443:443");
  ASSERT_TRUE(with_ip);
  EXPECT_EQ(with_ip->host_ip(), "0.0.0.0");
  EXPECT_EQ(with_ip->host_port(), 8443u);
  EXPECT_EQ(with_ip->guest_port(), 443u);

  auto v6 = ParsePublish("[::1]:8080:80");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host_ip(), "::1");
  EXPECT_EQ(v6->host_port(), 8080u);

  auto any_host_port = ParsePublish("0:80");
  ASSERT_TRUE(any_host_port);
  EXPECT_EQ(any_host_port->host_port(), 0u);
}

TEST(ParsePublishTest, RejectsMalformedPorts) {
  for (const char* bad : {"", "0", "http", "80:", ":80", "8080:0", "70000", "1:2:3:4", "a:b:80",
                          "[::1]80", "[::1]:80", ":8080:80"}) {
    EXPECT_FALSE(ParsePublish(bad)) << bad;
  }
}

TEST(ParseHttpProbeTest, PortWithOptionalPath) {
  auto bare = ParseHttpProbe("80");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->port(), 80u);
  EXPECT_EQ(bare->path(), "");  // the agent's default, /health
  auto with_path = ParseHttpProbe("8080/api/healthz");
  ASSERT_TRUE(with_path);
  EXPECT_EQ(with_path->port(), 8080u);
  EXPECT_EQ(with_path->path(), "/api/healthz");
  for (const char* bad : {"", "/health", "0/health", "http/health", "99999", "80health"}) {
    EXPECT_FALSE(ParseHttpProbe(bad)) << bad;
  }
}

TEST(GuestRunTest, BuildsTheGuestSpecFromFlags) {
  FakeAgent agent;
  auto result = RunCli(RunGuestGroup, agent.endpoint(),
                       {"run",
                        "web",
                        "--image",
                        "demo:v2",
                        "--runtime",
                        "container",
                        "--cpus",
                        "2",
                        "--memory",
                        "512",
                        "--publish",
                        "8080:80",
                        "--publish",
                        "9090",
                        "--health-http",
                        "80/healthz",
                        "--health-interval",
                        "500ms",
                        "--health-restart-after",
                        "0s",
                        "--restart",
                        "on-failure",
                        "--boot",
                        "cold",
                        "--env",
                        "MODE=web",
                        "--env",
                        "X=a=b",
                        "--",
                        "/bin/server",
                        "--port",
                        "80"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  auto requests = agent.run_requests();
  ASSERT_EQ(requests.size(), 1u);
  const v1::GuestSpec& spec = requests[0].spec();
  EXPECT_EQ(spec.name(), "web");
  EXPECT_EQ(spec.image(), "demo:v2");
  EXPECT_EQ(spec.runtime(), v1::RUNTIME_CONTAINER);
  EXPECT_EQ(spec.vcpus(), 2u);
  EXPECT_EQ(spec.memory_mib(), 512u);
  ASSERT_EQ(spec.ports_size(), 2);
  EXPECT_EQ(spec.ports(0).host_port(), 8080u);
  EXPECT_EQ(spec.ports(0).guest_port(), 80u);
  EXPECT_EQ(spec.ports(0).host_ip(), "127.0.0.1");
  EXPECT_EQ(spec.ports(1).host_port(), 0u);
  EXPECT_EQ(spec.ports(1).guest_port(), 9090u);
  ASSERT_TRUE(spec.health().has_http());
  EXPECT_EQ(spec.health().http().port(), 80u);
  EXPECT_EQ(spec.health().http().path(), "/healthz");
  EXPECT_EQ(spec.health().interval_ms(), 500u);
  EXPECT_EQ(spec.health().timeout_ms(), 500u);  // may not exceed the interval
  ASSERT_TRUE(spec.health().has_restart_after_unhealthy_ms()) << "0 is a choice, not unset";
  EXPECT_EQ(spec.health().restart_after_unhealthy_ms(), 0u);
  EXPECT_EQ(spec.restart().policy(), v1::RESTART_POLICY_ON_FAILURE);
  EXPECT_EQ(spec.boot_mode(), v1::BOOT_MODE_COLD);
  EXPECT_EQ(spec.env().at("MODE"), "web");
  EXPECT_EQ(spec.env().at("X"), "a=b");
  EXPECT_THAT(std::vector<std::string>(spec.command().begin(), spec.command().end()),
              ::testing::ElementsAre("/bin/server", "--port", "80"));
  // The created guest is printed with clickable endpoints.
  EXPECT_THAT(result.out, HasSubstr("Name:"));
  EXPECT_THAT(result.out, HasSubstr("http://127.0.0.1:8080 -> guest port 80"));
  EXPECT_THAT(result.out, HasSubstr("http://127.0.0.1:49090 -> guest port 9090"));
}

TEST(GuestRunTest, MemoryTakesAUnit) {
  FakeAgent agent;
  auto result =
      RunCli(RunGuestGroup, agent.endpoint(), {"run", "web", "--image", "demo", "--memory", "2G"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(agent.run_requests().at(0).spec().memory_mib(), 2048u);
}

TEST(GuestRunTest, MinimalSpecLeavesDefaultsToTheAgent) {
  FakeAgent agent;
  auto result = RunCli(
      RunGuestGroup, agent.endpoint(),
      {"run", "db", "--image", "demo", "--publish", "5432", "--health-tcp", "5432", "-o", "json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  auto requests = agent.run_requests();
  ASSERT_EQ(requests.size(), 1u);
  const v1::GuestSpec& spec = requests[0].spec();
  EXPECT_EQ(spec.runtime(), v1::RUNTIME_UNSPECIFIED);
  EXPECT_EQ(spec.vcpus(), 0u);
  EXPECT_EQ(spec.boot_mode(), v1::BOOT_MODE_UNSPECIFIED);
  EXPECT_EQ(spec.health().tcp().port(), 5432u);
  EXPECT_EQ(spec.health().interval_ms(), 0u);
  EXPECT_THAT(result.out, HasSubstr("\"name\": \"db\""));
}

TEST(GuestRunTest, ServerInvalidArgumentPrintsTheFieldMessageAndExits1) {
  FakeAgent agent;
  agent.FailNext("RunGuest", grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                          "spec.image: no image \"nope\" on this node"));
  auto result =
      RunCli(RunGuestGroup, agent.endpoint(), {"run", "web", "--image", "nope", "--memory", "128"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.err, "error: spec.image: no image \"nope\" on this node (INVALID_ARGUMENT)\n");
  EXPECT_EQ(result.out, "");
}

TEST(GuestRunTest, ASpecTheAgentWouldRefuseIsRefusedBeforeSending) {
  FakeAgent agent;
  auto result =
      RunCli(RunGuestGroup, agent.endpoint(), {"run", "web", "--image", "demo", "--memory", "16"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.err, HasSubstr("spec.memory_mib: must be 64-1048576 MiB (got 16)"));
  EXPECT_TRUE(agent.run_requests().empty());
}

TEST(GuestRunTest, UsageErrorsExit2WithoutCallingTheAgent) {
  FakeAgent agent;
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {{"run", "web"}, "--image is required"},
           {{"run", "--image", "demo"}, "missing guest NAME"},
           {{"run", "a", "b", "--image", "demo"}, "exactly one guest NAME"},
           {{"run", "web", "--image", "demo", "--publish", "80:"}, "--publish 80:"},
           {{"run", "web", "--image", "demo", "--health-http", "x"}, "--health-http x"},
           {{"run", "web", "--image", "demo", "--health-http", "80", "--health-tcp", "80"},
            "exclude each other"},
           {{"run", "web", "--image", "demo", "--health-interval", "1s"}, "needs --health-http"},
           {{"run", "web", "--image", "demo", "--health-restart-after", "5s"},
            "--health-restart-after needs --health-http"},
           {{"run", "web", "--image", "demo", "--health-tcp", "80", "--health-restart-after", "2h"},
            "at most 1h"},
           {{"run", "web", "--image", "demo", "--env", "NOVALUE"}, "expects KEY=VALUE"},
           {{"run", "web", "--image", "demo", "--runtime", "docker"}, "vm, microvm or container"},
           {{"run", "web", "--image", "demo", "--restart", "sometimes"}, "always, on-failure"},
           {{"run", "web", "--image", "demo", "--cpu", "2"}, "did you mean --cpus?"},
       }) {
    auto result = RunCli(RunGuestGroup, agent.endpoint(), c.args);
    EXPECT_EQ(result.exit_code, 2) << c.message;
    EXPECT_THAT(result.err, HasSubstr(c.message));
  }
  EXPECT_TRUE(agent.run_requests().empty());
}

v1::Guest MakeGuest(std::string name, v1::GuestState state, bool healthy, uint32_t host_port) {
  v1::Guest guest;
  guest.mutable_spec()->set_name(std::move(name));
  guest.mutable_spec()->set_image("demo");
  guest.mutable_spec()->set_runtime(v1::RUNTIME_VM);
  guest.mutable_spec()->mutable_health()->mutable_http()->set_port(80);
  guest.set_state(state);
  guest.set_healthy(healthy);
  guest.set_restart_count(3);
  // Three hours and a bit ago: the AGE column reads "3h" however slowly the test runs.
  *guest.mutable_created_at() = google::protobuf::util::TimeUtil::GetCurrentTime() -
                                google::protobuf::util::TimeUtil::SecondsToDuration(3 * 3600 + 600);
  if (host_port != 0) {
    v1::Endpoint* endpoint = guest.add_endpoints();
    endpoint->set_guest_port(80);
    endpoint->set_host_ip("127.0.0.1");
    endpoint->set_host_port(host_port);
  }
  return guest;
}

TEST(GuestLsTest, PrintsAnAlignedTableSortedByName) {
  FakeAgent agent;
  agent.AddGuest(MakeGuest("web", v1::GUEST_STATE_RUNNING, true, 8080));
  agent.AddGuest(MakeGuest("api-backend", v1::GUEST_STATE_RESTARTING, false, 0));
  auto result = RunCli(RunGuestGroup, agent.endpoint(), {"ls"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out,
            "NAME          RUNTIME   STATE        HEALTH    RESTARTS   ENDPOINT                "
            "IMAGE   AGE\n"
            "api-backend   vm        restarting   -         3          -                       "
            "demo    3h\n"
            "web           vm        running      healthy   3          http://127.0.0.1:8080   "
            "demo    3h\n");
}

TEST(GuestLsTest, JsonIsOneDocument) {
  FakeAgent agent;
  agent.AddGuest(MakeGuest("web", v1::GUEST_STATE_RUNNING, true, 8080));
  auto result = RunCli(RunGuestGroup, agent.endpoint(), {"ls", "-o", "json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  v1::ListGuestsResponse parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(result.out, &parsed).ok()) << result.out;
  ASSERT_EQ(parsed.guests_size(), 1);
  EXPECT_EQ(parsed.guests(0).endpoints(0).host_port(), 8080u);
}

TEST(GuestShowTest, PrintsDetailsOrNotFound) {
  FakeAgent agent;
  v1::Guest guest = MakeGuest("web", v1::GUEST_STATE_RUNNING, false, 8080);
  guest.set_last_boot(v1::BOOT_MODE_SNAPSHOT);
  guest.set_last_boot_ms(120);
  guest.set_last_exit_reason("killed by signal 9");
  guest.set_accelerator("kvm");
  guest.mutable_spec()->mutable_health()->set_restart_after_unhealthy_ms(10000);
  agent.AddGuest(guest);
  auto result = RunCli(RunGuestGroup, agent.endpoint(), {"show", "web"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("Health:         unhealthy\n"));
  EXPECT_THAT(result.out, HasSubstr("Runtime:        vm (kvm)\n"));
  EXPECT_THAT(result.out, HasSubstr("Last exit:      killed by signal 9\n"));
  EXPECT_THAT(result.out, HasSubstr("Boot:           wanted auto, last snapshot in 120 ms\n"));
  EXPECT_THAT(
      result.out,
      HasSubstr("Health check:   http GET :80/health every 1s, restart after 10s unhealthy\n"));

  auto missing = RunCli(RunGuestGroup, agent.endpoint(), {"show", "nope"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.err, "error: guest nope not found (NOT_FOUND)\n");
}

TEST(GuestShowTest, PrintsMetricsAndNeverShowsMissingAsZero) {
  FakeAgent agent;
  v1::Guest web = MakeGuest("web", v1::GUEST_STATE_RUNNING, true, 8080);
  web.mutable_spec()->set_vcpus(2);
  v1::GuestMetrics* m = web.mutable_metrics();
  m->set_window_ms(1000);
  m->set_cpu_valid(true);
  m->set_cpu_percent(37.25);
  m->set_memory_bytes(48 * 1048576);
  m->set_requests_valid(true);
  m->set_requests_per_second(123.4);
  m->set_latency_p50_ms(1.5);
  m->set_latency_p99_ms(9.75);
  m->set_requests_total(5678);
  m->set_connection_errors_total(2);
  agent.AddGuest(web);
  v1::Guest idle = MakeGuest("idle", v1::GUEST_STATE_RUNNING, true, 8081);
  idle.mutable_metrics()->set_cpu_valid(false);  // first sample: no window yet
  agent.AddGuest(idle);

  auto result = RunCli(RunGuestGroup, agent.endpoint(), {"show", "web"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("CPU:            37.2% of 2 vCPUs (over 1.0 s)\n"));
  EXPECT_THAT(result.out, HasSubstr("Memory used:    48.0 MiB\n"));
  EXPECT_THAT(result.out,
              HasSubstr("Requests:       123.4/s (over 1.0 s), 5678 since start, 2 connection "
                        "errors\n"));
  EXPECT_THAT(result.out,
              HasSubstr("Latency:        p50 1.50 ms, p99 9.75 ms (to the first reply byte)\n"));

  auto first = RunCli(RunGuestGroup, agent.endpoint(), {"show", "idle"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_THAT(first.out, HasSubstr("CPU:            not measured\n"));
  EXPECT_THAT(first.out, HasSubstr("Memory used:    not measured\n"));
  EXPECT_THAT(first.out, HasSubstr("Requests:       not measured"));
}

TEST(GuestCommandsTest, StartStopRmKillAndLogs) {
  FakeAgent agent;
  agent.AddGuest(MakeGuest("web", v1::GUEST_STATE_RUNNING, true, 8080));
  agent.SetLogs("booting\nready\n");

  auto stop = RunCli(RunGuestGroup, agent.endpoint(), {"stop", "web", "--timeout", "3s"});
  ASSERT_EQ(stop.exit_code, 0) << stop.err;
  EXPECT_EQ(stop.out, "web: stopped\n");
  EXPECT_EQ(agent.stop_requests().at(0).timeout_ms(), 3000u);

  auto start = RunCli(RunGuestGroup, agent.endpoint(), {"start", "web"});
  ASSERT_EQ(start.exit_code, 0) << start.err;
  EXPECT_EQ(start.out, "web: starting\n");

  auto kill = RunCli(RunGuestGroup, agent.endpoint(), {"kill", "web"});
  ASSERT_EQ(kill.exit_code, 0) << kill.err;
  EXPECT_THAT(kill.out, HasSubstr("pid 4242"));
  EXPECT_EQ(agent.killed(), std::vector<std::string>{"web"});

  auto logs = RunCli(RunGuestGroup, agent.endpoint(), {"logs", "web", "--tail", "6"});
  ASSERT_EQ(logs.exit_code, 0) << logs.err;
  EXPECT_EQ(logs.out, "ready\n");
  EXPECT_EQ(agent.log_requests().at(0).tail_bytes(), 6u);
  EXPECT_FALSE(agent.log_requests().at(0).follow());

  auto rm = RunCli(RunGuestGroup, agent.endpoint(), {"rm", "web"});
  ASSERT_EQ(rm.exit_code, 0) << rm.err;
  EXPECT_EQ(rm.out, "web: deleted\n");
  auto rm_again = RunCli(RunGuestGroup, agent.endpoint(), {"rm", "web"});
  EXPECT_EQ(rm_again.exit_code, 1);
  EXPECT_THAT(rm_again.err, HasSubstr("(NOT_FOUND)"));
}

TEST(GuestCommandsTest, HelpTeachesAndUnknownSubcommandsAreUsageErrors) {
  FakeAgent agent;
  auto group = RunCli(RunGuestGroup, agent.endpoint(), {"--help"});
  EXPECT_EQ(group.exit_code, 0);
  EXPECT_THAT(group.out, HasSubstr("Examples:"));
  auto run = RunCli(RunGuestGroup, agent.endpoint(), {"run", "--help"});
  EXPECT_EQ(run.exit_code, 0);
  for (const char* flag :
       {"--image", "--runtime", "--cpus", "--memory", "--publish", "--health-http", "--health-tcp",
        "--health-interval", "--restart", "--boot", "--env", "default 256", "Examples:"}) {
    EXPECT_THAT(run.out, HasSubstr(flag));
  }
  auto unknown = RunCli(RunGuestGroup, agent.endpoint(), {"launch"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("unknown command 'launch'"));
  auto none = RunCli(RunGuestGroup, agent.endpoint(), {});
  EXPECT_EQ(none.exit_code, 2);
}

TEST(GuestCommandsTest, UnreachableAgentHintsAtStartingIt) {
  // Port 1 on loopback: nothing listens there, the connection is refused at once.
  auto result = RunCli(RunGuestGroup, "127.0.0.1:1", {"ls", "--timeout", "5s", "--insecure"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr("(UNAVAILABLE)"));
  EXPECT_THAT(result.err, HasSubstr("is phoenix-agent running at 127.0.0.1:1?"));
  EXPECT_THAT(result.out, Not(HasSubstr("NAME")));
}

TEST(GuestCommandsTest, ATcpAgentNeedsItsCaOrAnExplicitInsecureToLoopback) {
  auto no_ca = RunCli(RunGuestGroup, "127.0.0.1:1", {"ls"});
  EXPECT_EQ(no_ca.exit_code, 2) << no_ca.err;
  EXPECT_THAT(no_ca.err, HasSubstr("--agent-ca-file"));
  auto remote = RunCli(RunGuestGroup, "192.0.2.1:7070", {"ls", "--insecure"});
  EXPECT_EQ(remote.exit_code, 2) << remote.err;
  EXPECT_THAT(remote.err, HasSubstr("only allowed to a loopback address"));
}

}  // namespace
}  // namespace phoenix::ctl
