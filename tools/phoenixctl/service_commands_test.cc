#include "tools/phoenixctl/service_commands.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tools/phoenixctl/testing/fake_supervisor.h"

namespace phoenix::ctl {
namespace {

using testing::FakeSupervisor;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::RunSupervisorCli;

TEST(ServiceCreateTest, BuildsTheServiceSpecFromFlags) {
  FakeSupervisor supervisor;
  auto result = RunSupervisorCli(RunServiceGroup, supervisor,
                                 {"create",
                                  "web",
                                  "--image",
                                  "demo:v2",
                                  "--runtime",
                                  "container",
                                  "--replicas",
                                  "6",
                                  "--spread",
                                  "zone",
                                  "--max-skew",
                                  "2",
                                  "--strategy",
                                  "binpack",
                                  "--cpus",
                                  "2",
                                  "--memory",
                                  "1G",
                                  "--publish",
                                  "0.0.0.0:0:80",
                                  "--health-http",
                                  "80/healthz",
                                  "--selector",
                                  "disk=ssd",
                                  "--selector",
                                  "arch=x86",
                                  "--distinct-hosts",
                                  "--boot",
                                  "cold",
                                  "--env",
                                  "MODE=web",
                                  "--",
                                  "/bin/server",
                                  "--port",
                                  "80"},
                                 "secret-token");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  auto requests = supervisor.create_requests();
  ASSERT_EQ(requests.size(), 1u);
  const v1::ServiceSpec& spec = requests[0].spec();
  EXPECT_EQ(spec.name(), "web");
  EXPECT_EQ(spec.replicas(), 6u);
  EXPECT_EQ(spec.spread().attribute(), "zone");
  EXPECT_EQ(spec.spread().max_skew(), 2u);
  EXPECT_EQ(spec.strategy(), v1::PLACEMENT_STRATEGY_BINPACK);
  EXPECT_EQ(spec.node_selector().size(), 2u);
  EXPECT_EQ(spec.node_selector().at("disk"), "ssd");
  EXPECT_EQ(spec.node_selector().at("arch"), "x86");
  EXPECT_TRUE(spec.distinct_hosts());
  const v1::GuestSpec& guest = spec.template_();
  EXPECT_EQ(guest.name(), "");  // the supervisor names each replica
  EXPECT_EQ(guest.image(), "demo:v2");
  EXPECT_EQ(guest.runtime(), v1::RUNTIME_CONTAINER);
  EXPECT_EQ(guest.vcpus(), 2u);
  EXPECT_EQ(guest.memory_mib(), 1024u);
  ASSERT_EQ(guest.ports_size(), 1);
  EXPECT_EQ(guest.ports(0).guest_port(), 80u);
  EXPECT_EQ(guest.ports(0).host_port(), 0u);
  EXPECT_EQ(guest.ports(0).host_ip(), "0.0.0.0");
  EXPECT_EQ(guest.health().http().port(), 80u);
  EXPECT_EQ(guest.health().http().path(), "/healthz");
  EXPECT_EQ(guest.boot_mode(), v1::BOOT_MODE_COLD);
  EXPECT_EQ(guest.env().at("MODE"), "web");
  EXPECT_THAT(std::vector<std::string>(guest.command().begin(), guest.command().end()),
              ::testing::ElementsAre("/bin/server", "--port", "80"));
  EXPECT_EQ(supervisor.authorization("CreateService"),
            std::vector<std::string>{"Bearer secret-token"});
  // The created service is shown with its pending replicas and why they are pending.
  EXPECT_THAT(result.out, HasSubstr("web: created (version 1)"));
  EXPECT_THAT(result.out, HasSubstr("Spread:"));
  EXPECT_THAT(result.out, HasSubstr("zone (max skew 2)"));
  EXPECT_THAT(result.out, HasSubstr("  5: no nodes\n"));
}

TEST(ServiceCreateTest, MinimalSpreadDefaultsToSkewOneAndLeavesTheRestToTheSupervisor) {
  FakeSupervisor supervisor;
  auto result = RunSupervisorCli(
      RunServiceGroup, supervisor,
      {"create", "web", "--image", "demo", "--replicas", "3", "--spread", "zone", "-o", "json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  auto requests = supervisor.create_requests();
  ASSERT_EQ(requests.size(), 1u);
  const v1::ServiceSpec& spec = requests[0].spec();
  EXPECT_EQ(spec.spread().max_skew(), 1u);
  EXPECT_EQ(spec.strategy(), v1::PLACEMENT_STRATEGY_UNSPECIFIED);
  EXPECT_FALSE(spec.distinct_hosts());
  EXPECT_EQ(spec.template_().runtime(), v1::RUNTIME_UNSPECIFIED);
  EXPECT_EQ(spec.template_().memory_mib(), 0u);
  EXPECT_THAT(result.out, HasSubstr("\"name\": \"web\""));
  EXPECT_THAT(result.out, HasSubstr("\"attribute\": \"zone\""));
  // No token configured: no authorization metadata at all.
  EXPECT_EQ(supervisor.authorization("CreateService"), std::vector<std::string>{""});
}

TEST(ServiceCreateTest, UsageErrorsExit2WithoutCallingTheSupervisor) {
  FakeSupervisor supervisor;
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {{"create", "web", "--replicas", "3"}, "--image is required"},
           {{"create", "web", "--image", "demo"}, "--replicas is required"},
           {{"create", "--image", "demo", "--replicas", "1"}, "missing service NAME"},
           {{"create", "Web", "--image", "demo", "--replicas", "1"}, "must be 1-40 characters"},
           {{"create", "web", "--image", "demo", "--replicas", "1", "--spread", "rack"},
            "expects zone"},
           {{"create", "web", "--image", "demo", "--replicas", "1", "--max-skew", "2"},
            "--max-skew needs --spread zone"},
           {{"create", "web", "--image", "demo", "--replicas", "1", "--strategy", "random"},
            "spread or binpack"},
           {{"create", "web", "--image", "demo", "--replicas", "1", "--selector", "ssd"},
            "--selector ssd: expects KEY=VALUE"},
           {{"create", "web", "--image", "demo", "--replicas", "1", "--memory", "1T"},
            "256M or 1G"},
           {{"create", "web", "--image", "demo", "--replicas", "1", "--publish", "80:"},
            "--publish 80:"},
           {{"create", "web", "--image", "demo", "--replicas", "1", "--port", "8080:0"},
            "expects PORT:GUESTPORT"},
           {{"create", "web", "--image", "demo", "--replicas", "1", "--port", "8080:80/udp"},
            "protocol must be http or tcp"},
           {{"create", "web", "--image", "demo", "--replicas", "1", "--publish", "8080:80"},
            "host ports are picked on each node"},
           {{"create", "web", "--image", "demo", "--replicas", "1", "--health-tcp", "80",
             "--health-http", "80"},
            "exclude each other"},
           {{"create", "web", "--image", "demo", "--replica", "1"}, "did you mean --replicas?"},
       }) {
    auto result = RunSupervisorCli(RunServiceGroup, supervisor, c.args);
    EXPECT_EQ(result.exit_code, 2) << c.message << ": " << result.err;
    EXPECT_THAT(result.err, HasSubstr(c.message));
  }
  EXPECT_EQ(supervisor.calls(), 0);
}

v1::Service MakeService() {
  v1::Service service;
  v1::ServiceSpec* spec = service.mutable_spec();
  spec->set_name("web");
  spec->set_replicas(3);
  spec->mutable_spread()->set_attribute("zone");
  spec->mutable_spread()->set_max_skew(1);
  spec->mutable_template_()->set_image("demo");
  spec->mutable_template_()->set_runtime(v1::RUNTIME_CONTAINER);
  spec->mutable_template_()->mutable_health()->mutable_http()->set_port(80);
  service.set_version(7);
  service.set_running(2);
  *service.mutable_created_at() =
      google::protobuf::util::TimeUtil::GetCurrentTime() -
      google::protobuf::util::TimeUtil::SecondsToDuration(3 * 3600 + 60);
  const char* zones[] = {"a", "b", ""};
  for (uint32_t i = 0; i < 3; ++i) {
    v1::Replica* replica = service.add_replicas();
    replica->set_index(i);
    replica->set_generation(1);
    if (i < 2) {
      replica->set_guest("web-" + std::to_string(i) + "-1");
      replica->set_node("host-" + std::to_string(i + 1));
      replica->set_zone(zones[i]);
      replica->set_state(v1::REPLICA_STATE_RUNNING);
      replica->set_guest_state(v1::GUEST_STATE_RUNNING);
      replica->set_healthy(i == 0);
      replica->set_restart_count(i * 2);
      v1::Endpoint* endpoint = replica->add_endpoints();
      endpoint->set_guest_port(80);
      endpoint->set_host_ip("10.0.0." + std::to_string(i + 1));
      endpoint->set_host_port(31000 + i);
    } else {
      replica->set_state(v1::REPLICA_STATE_PENDING);
      replica->set_pending_reason(
          "3 nodes: 2 zone a/b (max skew 1 reached), 1 memory (needs 256 MiB, 128 MiB free)");
    }
  }
  service.mutable_replicas(1)->set_last_exit_reason("killed by signal 9");
  return service;
}

TEST(ServiceShowTest, PrintsSpecReplicaRowsAndPendingReasonsInFull) {
  FakeSupervisor supervisor;
  supervisor.AddService(MakeService());
  auto result = RunSupervisorCli(RunServiceGroup, supervisor, {"show", "web"}, "t0k");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("Version:        7\n"));
  EXPECT_THAT(result.out, HasSubstr("Replicas:       2 running of 3 desired\n"));
  EXPECT_THAT(result.out, HasSubstr("Health check:   http GET :80/health\n"));
  EXPECT_THAT(
      result.out,
      HasSubstr("INDEX   GUEST     NODE     ZONE   STATE     GUEST-STATE   HEALTHY   RESTARTS   "
                "LOAD   ENDPOINTS\n"
                "0       web-0-1   host-1   a      running   running       yes       0          "
                "-      http://10.0.0.1:31000\n"
                "1       web-1-1   host-2   b      running   running       no        2          "
                "-      http://10.0.0.2:31001\n"
                "2       -         -        -      pending   -             -         0          "
                "-      -\n"));
  EXPECT_THAT(result.out,
              HasSubstr("Pending replicas (why no node fits):\n"
                        "  2: 3 nodes: 2 zone a/b (max skew 1 reached), 1 memory (needs 256 MiB, "
                        "128 MiB free)\n"));
  EXPECT_THAT(result.out, HasSubstr("Last exits and refusals:\n  1: killed by signal 9\n"));
  EXPECT_EQ(supervisor.authorization("GetService"), std::vector<std::string>{"Bearer t0k"});

  auto json = RunSupervisorCli(RunServiceGroup, supervisor, {"show", "web", "-o", "json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_THAT(json.out, HasSubstr("\"state\": \"REPLICA_STATE_PENDING\""));

  auto missing = RunSupervisorCli(RunServiceGroup, supervisor, {"show", "nope"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.err, "error: service nope not found (NOT_FOUND)\n");
}

TEST(ServiceCreateTest, PortGivesTheServiceAFrontDoor) {
  struct Case {
    const char* text;
    uint32_t port, guest_port;
    v1::FrontDoorProtocol protocol;
  };
  for (const Case& c : {Case{"8080:80", 8080, 80, v1::FRONT_DOOR_PROTOCOL_UNSPECIFIED},
                        Case{"8080", 8080, 8080, v1::FRONT_DOOR_PROTOCOL_UNSPECIFIED},
                        Case{"5432:5432/tcp", 5432, 5432, v1::FRONT_DOOR_PROTOCOL_TCP},
                        Case{"80:8000/http", 80, 8000, v1::FRONT_DOOR_PROTOCOL_HTTP}}) {
    auto door = ParseFrontDoor(c.text);
    ASSERT_TRUE(door.has_value()) << c.text;
    EXPECT_EQ(door->port(), c.port) << c.text;
    EXPECT_EQ(door->guest_port(), c.guest_port) << c.text;
    EXPECT_EQ(door->protocol(), c.protocol) << c.text;
  }
  for (const char* bad : {"", ":80", "8080:", "0:80", "65536:80", "80:80/udp", "a:b", "80:80:80"}) {
    EXPECT_FALSE(ParseFrontDoor(bad).has_value()) << bad;
  }

  FakeSupervisor supervisor;
  auto result = RunSupervisorCli(RunServiceGroup, supervisor,
                                 {"create", "web", "--image", "demo", "--replicas", "3", "--port",
                                  "8080:80", "--health-http", "80/health"});
  ASSERT_EQ(result.exit_code, 0) << result.err << " (the front door publishes guest port 80)";
  ASSERT_EQ(supervisor.create_requests().size(), 1u);
  ASSERT_EQ(supervisor.create_requests()[0].spec().template_().ports_size(), 1);
  EXPECT_EQ(supervisor.create_requests()[0].spec().template_().ports(0).guest_port(), 80u);
  EXPECT_EQ(supervisor.create_requests()[0].spec().front_door().port(), 8080u);
  EXPECT_EQ(supervisor.create_requests()[0].spec().front_door().guest_port(), 80u);
}

TEST(ServiceShowTest, PrintsTheFrontDoorAndItsAddresses) {
  FakeSupervisor supervisor;
  v1::Service service = MakeService();
  service.mutable_spec()->mutable_front_door()->set_port(8080);
  service.mutable_spec()->mutable_front_door()->set_guest_port(80);
  service.add_front_door_addresses("10.0.0.1:8080");
  service.add_front_door_addresses("[fd00::2]:8080");
  service.add_front_door_problems("node-c: port 8080 on 10.0.0.3 is taken by another process");
  supervisor.AddService(service);
  auto result = RunSupervisorCli(RunServiceGroup, supervisor, {"show", "web"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out,
              HasSubstr("Front door:     port 8080 -> guest port 80 (http)\n"
                        "  Addresses:    http://10.0.0.1:8080/ http://[fd00::2]:8080/\n"
                        "  Not served:   node-c: port 8080 on 10.0.0.3 is taken by another "
                        "process (no replica is placed there)\n"));
}

TEST(ServiceLsTest, TableShowsRunningOfDesiredSpreadAndAge) {
  FakeSupervisor supervisor;
  supervisor.AddService(MakeService());
  v1::Service plain;
  plain.mutable_spec()->set_name("batch");
  plain.mutable_spec()->set_replicas(1);
  plain.mutable_spec()->mutable_template_()->set_image("demo:v2");
  plain.mutable_spec()->mutable_template_()->set_runtime(v1::RUNTIME_MICROVM);
  supervisor.AddService(plain);
  auto result = RunSupervisorCli(RunServiceGroup, supervisor, {"ls"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out,
            "NAME    RUNTIME     IMAGE     REPLICAS   SPREAD              AGE\n"
            "batch   microvm     demo:v2   0/1        -                   -\n"
            "web     container   demo      2/3        zone (max skew 1)   3h\n");
  auto json = RunSupervisorCli(RunServiceGroup, supervisor, {"ls", "-o", "json"});
  ASSERT_EQ(json.exit_code, 0);
  EXPECT_THAT(json.out, HasSubstr("\"services\""));
  auto extra = RunSupervisorCli(RunServiceGroup, supervisor, {"ls", "x"});
  EXPECT_EQ(extra.exit_code, 2);
}

TEST(ServiceScaleTest, PassesReplicasAndExpectedVersion) {
  FakeSupervisor supervisor;
  supervisor.AddService(MakeService());
  auto result = RunSupervisorCli(RunServiceGroup, supervisor,
                                 {"scale", "web", "5", "--expected-version", "7"}, "tok");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  auto requests = supervisor.scale_requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].name(), "web");
  EXPECT_EQ(requests[0].replicas(), 5u);
  EXPECT_EQ(requests[0].expected_version(), 7u);
  EXPECT_EQ(result.out, "web: scaled to 5 replicas (version 8, 2 running)\n");

  // The service moved on to version 8: a second checked scale at 7 is refused.
  auto stale = RunSupervisorCli(RunServiceGroup, supervisor,
                                {"scale", "web", "1", "--expected-version", "7"});
  EXPECT_EQ(stale.exit_code, 1);
  EXPECT_THAT(stale.err, HasSubstr("(ABORTED)"));
  EXPECT_THAT(stale.err, HasSubstr("changed since version 7"));

  auto unconditional = RunSupervisorCli(RunServiceGroup, supervisor, {"scale", "web", "0"});
  ASSERT_EQ(unconditional.exit_code, 0) << unconditional.err;
  EXPECT_EQ(supervisor.scale_requests().back().expected_version(), 0u);
  EXPECT_EQ(supervisor.scale_requests().back().replicas(), 0u);

  for (const std::vector<std::string>& bad : {std::vector<std::string>{"scale", "web"},
                                              {"scale", "web", "three"},
                                              {"scale", "web", "3", "--expected-version", "0"}}) {
    EXPECT_EQ(RunSupervisorCli(RunServiceGroup, supervisor, bad).exit_code, 2);
  }
  EXPECT_EQ(supervisor.scale_requests().size(), 3u);
}

TEST(ServiceAutoscaleTest, SendsThePolicyAndOff) {
  FakeSupervisor supervisor;
  supervisor.AddService(MakeService());
  auto result = RunSupervisorCli(RunServiceGroup, supervisor,
                                 {"autoscale", "web", "--min", "1", "--max", "6", "--target",
                                  "cpu=60%", "--tolerance", "5%", "--scale-down-window", "10s"},
                                 "tok");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  auto requests = supervisor.autoscale_requests();
  ASSERT_EQ(requests.size(), 1u);
  const v1::AutoscalePolicy& p = requests[0].policy();
  EXPECT_EQ(p.min_replicas(), 1u);
  EXPECT_EQ(p.max_replicas(), 6u);
  EXPECT_EQ(p.metric(), "cpu");
  EXPECT_DOUBLE_EQ(p.target(), 60);
  EXPECT_DOUBLE_EQ(p.tolerance(), 0.05);
  EXPECT_EQ(p.scale_down_stabilization_s(), 10u);
  EXPECT_THAT(result.out, HasSubstr("web: autoscaling min 1, max 6, target cpu 60%"));

  // 0% and 0s are sent as set values, not left out (which would mean the defaults).
  auto zero = RunSupervisorCli(RunServiceGroup, supervisor,
                               {"autoscale", "web", "--min", "1", "--max", "6", "--target", "rps=5",
                                "--tolerance", "0%", "--scale-down-window", "0s"},
                               "tok");
  ASSERT_EQ(zero.exit_code, 0) << zero.err;
  // A copy: autoscale_requests() returns the list by value.
  const v1::AutoscalePolicy z = supervisor.autoscale_requests().back().policy();
  EXPECT_TRUE(z.has_tolerance());
  EXPECT_DOUBLE_EQ(z.tolerance(), 0);
  EXPECT_TRUE(z.has_scale_down_stabilization_s());
  EXPECT_EQ(z.scale_down_stabilization_s(), 0u);
  auto unset = RunSupervisorCli(
      RunServiceGroup, supervisor,
      {"autoscale", "web", "--min", "1", "--max", "6", "--target", "rps=5"}, "tok");
  ASSERT_EQ(unset.exit_code, 0) << unset.err;
  EXPECT_FALSE(supervisor.autoscale_requests().back().policy().has_tolerance());
  EXPECT_FALSE(supervisor.autoscale_requests().back().policy().has_scale_down_stabilization_s());

  auto off = RunSupervisorCli(RunServiceGroup, supervisor, {"autoscale", "web", "--off"});
  ASSERT_EQ(off.exit_code, 0) << off.err;
  EXPECT_FALSE(supervisor.autoscale_requests().back().has_policy());
  EXPECT_THAT(off.out, HasSubstr("web: autoscaling off"));

  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"autoscale", "web"},
        {"autoscale", "web", "--min", "1", "--max", "2"},
        {"autoscale", "web", "--min", "1", "--max", "2", "--target", "mem=5"},
        {"autoscale", "web", "--min", "1", "--max", "2", "--target", "rps=0"},
        {"autoscale", "web", "--off", "--min", "1"},
        {"autoscale", "web", "--min", "1", "--max", "2", "--target", "rps=5", "--scale-down-window",
         "1500ms"},
        {"autoscale", "web", "--min", "1", "--max", "2", "--target", "rps=5", "--tolerance",
         "100%"}}) {
    auto r = RunSupervisorCli(RunServiceGroup, supervisor, bad);
    EXPECT_EQ(r.exit_code, 2) << bad.back() << ": " << r.err;
  }
  EXPECT_EQ(supervisor.autoscale_requests().size(), 4u);
}

TEST(ServiceCreateTest, AutoscaleFlagsMakeAPolicyAndDefaultReplicasToMin) {
  FakeSupervisor supervisor;
  auto result =
      RunSupervisorCli(RunServiceGroup, supervisor,
                       {"create", "web", "--image", "demo", "--runtime", "container", "--min", "2",
                        "--max", "6", "--target", "rps=200", "--publish", "80"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  auto requests = supervisor.create_requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].spec().replicas(), 2u);
  EXPECT_EQ(requests[0].spec().autoscale().metric(), "rps");
  EXPECT_DOUBLE_EQ(requests[0].spec().autoscale().target(), 200);
}

TEST(ServiceShowTest, PrintsTheAutoscaleStateAndDecisions) {
  FakeSupervisor supervisor;
  v1::Service service = MakeService();
  v1::AutoscalePolicy* p = service.mutable_spec()->mutable_autoscale();
  p->set_min_replicas(1);
  p->set_max_replicas(6);
  p->set_metric("rps");
  p->set_target(200);
  p->set_tolerance(0.1);
  p->set_scale_down_stabilization_s(60);
  v1::AutoscaleStatus* a = service.mutable_autoscale();
  a->set_observed(412.34);
  a->set_reporting_replicas(2);
  a->set_desired_replicas(5);
  a->set_state("scaling up");
  v1::ScalingDecision* d = a->add_recent();
  d->set_from_replicas(1);
  d->set_to_replicas(3);
  d->set_reason("rps 412.3 > target 200 (±10%) over 1 replica: want 3");
  service.mutable_replicas(0)->mutable_metrics()->set_requests_valid(true);
  service.mutable_replicas(0)->mutable_metrics()->set_requests_per_second(35.25);
  service.mutable_replicas(0)->mutable_metrics()->set_cpu_valid(true);
  service.mutable_replicas(0)->mutable_metrics()->set_cpu_percent(12.4);
  supervisor.AddService(service);
  auto result = RunSupervisorCli(RunServiceGroup, supervisor, {"show", "web"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("Autoscale:         min 1, max 6, target rps 200 rps per "
                                    "replica (±10%), scale-down window 60s\n"));
  EXPECT_THAT(result.out, HasSubstr("  Current/desired: 3 / 5 (scaling up)\n"));
  EXPECT_THAT(result.out,
              HasSubstr("  Observed:        412.3 rps per replica vs 200 rps target, over 2 "
                        "reporting\n"));
  EXPECT_THAT(result.out, HasSubstr("cpu 12% 35.2 rps"));
  EXPECT_THAT(result.out, HasSubstr("Last scaling decisions (newest first):\n"));
  EXPECT_THAT(result.out,
              HasSubstr("1 -> 3: rps 412.3 > target 200 (±10%) over 1 replica: want 3\n"));
}

TEST(ServiceRmTest, DeletesAndReportsNotFound) {
  FakeSupervisor supervisor;
  supervisor.AddService(MakeService());
  auto result = RunSupervisorCli(RunServiceGroup, supervisor, {"rm", "web"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("web: deleted"));
  EXPECT_EQ(supervisor.deleted(), std::vector<std::string>{"web"});
  auto again = RunSupervisorCli(RunServiceGroup, supervisor, {"rm", "web"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("(NOT_FOUND)"));
}

TEST(ServiceNameTest, FollowsTheSupervisorsRule) {
  EXPECT_TRUE(IsValidServiceName("web"));
  EXPECT_TRUE(IsValidServiceName("0-a"));
  EXPECT_TRUE(IsValidServiceName(std::string(40, 'a')));
  EXPECT_FALSE(IsValidServiceName(std::string(41, 'a')));
  EXPECT_FALSE(IsValidServiceName(""));
  EXPECT_FALSE(IsValidServiceName("-web"));
  EXPECT_FALSE(IsValidServiceName("we_b"));
  EXPECT_FALSE(IsValidServiceName("Web"));
}

}  // namespace
}  // namespace phoenix::ctl
