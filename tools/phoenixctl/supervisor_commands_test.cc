// The supervisor-facing commands other than `service`: node ls/show/drain/undrain, events from the
// supervisor, token and join-token minting, and what every supervisor command shares (connection
// settings, the bearer token, error hints, help texts).
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "proto/support/pki.h"
#include "proto/support/tls.h"
#include "tools/phoenixctl/events_command.h"
#include "tools/phoenixctl/node_command.h"
#include "tools/phoenixctl/service_commands.h"
#include "tools/phoenixctl/testing/fake_agent.h"
#include "tools/phoenixctl/testing/fake_supervisor.h"
#include "tools/phoenixctl/token_commands.h"

namespace phoenix::ctl {
namespace {

using testing::CliResult;
using testing::FakeAgent;
using testing::FakeSupervisor;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::RunSupervisorCli;
using namespace std::chrono_literals;

// protobuf's TimeUtil::GetCurrentTime() has whole seconds only; heartbeat ages need better.
google::protobuf::Timestamp Ago(std::chrono::milliseconds age) {
  auto then = std::chrono::system_clock::now() - age;
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
      std::chrono::duration_cast<std::chrono::nanoseconds>(then.time_since_epoch()).count());
}

v1::Node MakeNode(std::string name, std::string zone, v1::NodeState state) {
  v1::Node node;
  node.set_name(std::move(name));
  node.set_zone(std::move(zone));
  node.set_state(state);
  node.mutable_capacity()->set_vcpus(8);
  node.mutable_capacity()->set_memory_mib(16384);
  node.mutable_allocated()->set_vcpus(2);
  node.mutable_allocated()->set_memory_mib(512);
  node.set_replicas(2);
  return node;
}

TEST(NodeLsTest, TableOfNodesByZone) {
  FakeSupervisor supervisor;
  v1::Node a = MakeNode("host-1", "a", v1::NODE_STATE_READY);
  // Well inside the 0.xs range however slowly the test runs; the age is checked loosely below.
  *a.mutable_last_heartbeat() = Ago(200ms);
  v1::Node b = MakeNode("host-2", "b", v1::NODE_STATE_DOWN);
  b.set_drained(true);
  b.mutable_allocated()->set_memory_mib(1536);
  *b.mutable_last_heartbeat() = Ago(std::chrono::minutes(5) + 10s);
  supervisor.AddNode(b);
  supervisor.AddNode(a);
  auto result = RunSupervisorCli(RunNodeGroup, supervisor, {"ls"}, "tok");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("NAME     ZONE   STATE   DRAINED   CPU   MEM          "
                                    "REPLICAS   HEARTBEAT-AGE\n"
                                    "host-1   a      ready   no        2/8   512Mi/16Gi   2"));
  EXPECT_THAT(result.out,
              HasSubstr("host-2   b      down    yes       2/8   1.5Gi/16Gi   2          5m\n"));
  // Tenths of a second for fresh heartbeats: 0.2s unless the machine stalls for seconds.
  EXPECT_THAT(result.out, ::testing::ContainsRegex("host-1 .*   2          [0-9]\\.[0-9]s\n"));
  EXPECT_EQ(supervisor.authorization("ListNodes"), std::vector<std::string>{"Bearer tok"});
}

TEST(NodeShowTest, DetailAndJson) {
  FakeSupervisor supervisor;
  v1::Node node = MakeNode("host-1", "a", v1::NODE_STATE_SUSPECT);
  node.set_state_reason("no heartbeat for 3.2 s");
  (*node.mutable_labels())["disk"] = "ssd";
  node.set_assignment_version(12);
  node.set_applied_version(11);
  v1::Accelerator* vm = node.add_runtimes();
  vm->set_runtime(v1::RUNTIME_VM);
  vm->set_available(true);
  vm->set_detail("kvm");
  supervisor.AddNode(node);
  auto result = RunSupervisorCli(RunNodeGroup, supervisor, {"show", "host-1"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("State:          suspect (no heartbeat for 3.2 s)\n"));
  EXPECT_THAT(result.out, HasSubstr("Labels:         disk=ssd\n"));
  EXPECT_THAT(result.out, HasSubstr("Assignment:     version 12 made, 11 applied\n"));
  EXPECT_THAT(result.out, HasSubstr("Last heartbeat: -\n"));
  EXPECT_THAT(result.out, HasSubstr("vm        yes         kvm\n"));
  auto json = RunSupervisorCli(RunNodeGroup, supervisor, {"show", "host-1", "-o", "json"});
  ASSERT_EQ(json.exit_code, 0);
  EXPECT_THAT(json.out, HasSubstr("\"state\": \"NODE_STATE_SUSPECT\""));
  auto missing = RunSupervisorCli(RunNodeGroup, supervisor, {"show", "host-9"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.err, "error: node host-9 not found (NOT_FOUND)\n");
  EXPECT_EQ(RunSupervisorCli(RunNodeGroup, supervisor, {"show"}).exit_code, 2);
}

TEST(NodeDrainTest, DrainAndUndrainNameTheNode) {
  FakeSupervisor supervisor;
  supervisor.AddNode(MakeNode("host-1", "a", v1::NODE_STATE_READY));
  auto drain = RunSupervisorCli(RunNodeGroup, supervisor, {"drain", "host-1"}, "op");
  ASSERT_EQ(drain.exit_code, 0) << drain.err;
  EXPECT_THAT(drain.out, HasSubstr("host-1: drained; its 2 replicas move to other nodes"));
  auto undrain = RunSupervisorCli(RunNodeGroup, supervisor, {"undrain", "host-1"}, "op");
  ASSERT_EQ(undrain.exit_code, 0) << undrain.err;
  EXPECT_THAT(undrain.out, HasSubstr("host-1: undrained"));
  EXPECT_EQ(supervisor.drained(), std::vector<std::string>{"host-1"});
  EXPECT_EQ(supervisor.undrained(), std::vector<std::string>{"host-1"});
  EXPECT_EQ(supervisor.authorization("DrainNode"), std::vector<std::string>{"Bearer op"});
}

TEST(NodeRmTest, SaysWhatWasRevokedAndWhatHappensNext) {
  FakeSupervisor supervisor;
  supervisor.AddNode(MakeNode("host-1", "a", v1::NODE_STATE_READY));
  auto rm = RunSupervisorCli(RunNodeGroup, supervisor, {"rm", "host-1"}, "adm");
  ASSERT_EQ(rm.exit_code, 0) << rm.err;
  EXPECT_THAT(rm.out, HasSubstr("host-1: removed; certificate 5e1a1 revoked"));
  EXPECT_THAT(rm.out, HasSubstr("enroll it again with a join token"));
  EXPECT_EQ(supervisor.authorization("RemoveNode"), std::vector<std::string>{"Bearer adm"});
  auto again = RunSupervisorCli(RunNodeGroup, supervisor, {"rm", "host-1"}, "adm");
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("not found"));
  EXPECT_EQ(RunSupervisorCli(RunNodeGroup, supervisor, {"rm"}).exit_code, 2);
}

TEST(NodeInfoTest, StillAsksTheAgent) {
  FakeAgent agent;
  v1::NodeInfo info;
  info.set_name("local");
  agent.SetNodeInfo(info);
  auto result = testing::RunCli(RunNodeGroup, agent.endpoint(), {"info"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("Name:       local\n"));
}

TEST(SupervisorAuthTest, TokenComesFromFlagThenFileThenEnvironment) {
  FakeSupervisor supervisor;
  char path[] = "/tmp/phoenixctl-token-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "from-file\n", 10), 10);
  close(fd);

  SupervisorEnv env{"", "from-env", ""};
  EXPECT_EQ(RunSupervisorCli(RunServiceGroup, supervisor, {"ls"}, "", env).exit_code, 0);
  EXPECT_EQ(RunSupervisorCli(RunServiceGroup, supervisor, {"ls", "--token-file", path}, "", env)
                .exit_code,
            0);
  EXPECT_EQ(RunSupervisorCli(RunServiceGroup, supervisor, {"ls"}, "from-flag", env).exit_code, 0);
  EXPECT_EQ(supervisor.authorization("ListServices"),
            (std::vector<std::string>{"Bearer from-env", "Bearer from-file", "Bearer from-flag"}));

  auto both = RunSupervisorCli(RunServiceGroup, supervisor, {"ls", "--token-file", path}, "x");
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_THAT(both.err, HasSubstr("--token and --token-file exclude each other"));
  auto missing =
      RunSupervisorCli(RunServiceGroup, supervisor, {"ls", "--token-file", "/nonexistent/token"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("--token-file: "));
  EXPECT_THAT(missing.err, HasSubstr("/nonexistent/token"));
  unlink(path);
  EXPECT_EQ(supervisor.authorization("ListServices").size(), 3u);
}

CliResult RunRaw(std::vector<std::string> args, SupervisorEnv env = {}) {
  std::ostringstream out, err;
  Context ctx(out, err, "", std::move(env));
  CliResult result;
  result.exit_code = RunServiceGroup(ctx, std::span<const std::string>(args));
  result.out = out.str();
  result.err = err.str();
  return result;
}

TEST(SupervisorConnectionTest, InsecureIsRefusedForNonLoopbackAddresses) {
  for (const char* address : {"10.0.0.1:7400", "192.168.1.5:7400", "example.com:7400",
                              "[2001:db8::1]:7400", "0.0.0.0:7400"}) {
    auto result = RunRaw({"ls", "--supervisor", address, "--insecure"});
    EXPECT_EQ(result.exit_code, 2) << address;
    EXPECT_THAT(result.err, HasSubstr("--insecure (plaintext) is only allowed to a loopback"))
        << address;
  }
  // The environment's address is held to the same rule.
  auto from_env = RunRaw({"ls", "--insecure"}, SupervisorEnv{"10.1.2.3:7400", "", ""});
  EXPECT_EQ(from_env.exit_code, 2);
  EXPECT_THAT(from_env.err, HasSubstr("not 10.1.2.3:7400"));
}

TEST(SupervisorConnectionTest, TlsNeedsACaFileThatHoldsACertificate) {
  auto none = RunRaw({"ls", "--supervisor", "127.0.0.1:1"});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_THAT(none.err, HasSubstr("pass --ca-file FILE or set PHOENIX_CA"));
  auto unreadable = RunRaw({"ls"}, SupervisorEnv{"127.0.0.1:1", "", "/nonexistent/ca.pem"});
  EXPECT_EQ(unreadable.exit_code, 1);
  EXPECT_THAT(unreadable.err, HasSubstr("--ca-file: "));
  EXPECT_THAT(unreadable.err, HasSubstr("/nonexistent/ca.pem"));
  auto not_pem = RunRaw({"ls", "--supervisor", "127.0.0.1:1", "--ca-file", "/proc/self/status"});
  EXPECT_EQ(not_pem.exit_code, 2);
  EXPECT_THAT(not_pem.err, HasSubstr("holds no PEM certificate"));
}

// A file under /tmp removed at the end of the test.
class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    char path[] = "/tmp/phoenixctl-test-XXXXXX";
    int fd = mkstemp(path);
    PHX_CHECK(fd >= 0);
    PHX_CHECK(write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
    close(fd);
    path_ = path;
  }
  ~TempFile() { unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(SupervisorConnectionTest, TlsWithTheSupervisorsCaCarriesTheToken) {
  auto ca = pki::CreateCa("phoenix test ca", 1);
  ASSERT_TRUE(ca) << ca.error().message;
  auto server = pki::IssueServerCert(*ca, "phoenix-supervisor", {"127.0.0.1", "localhost"}, 1);
  ASSERT_TRUE(server) << server.error().message;
  auto credentials = tls::MakeServerCredentials({ca->cert_pem, server->cert_pem, server->key_pem});
  ASSERT_TRUE(credentials) << credentials.error().message;
  FakeSupervisor supervisor(*credentials);
  supervisor.AddService(v1::Service());
  TempFile ca_file(ca->cert_pem);

  auto ok = RunRaw({"ls", "--supervisor", supervisor.address(), "--ca-file", ca_file.path(),
                    "--token", "tls-token"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(supervisor.authorization("ListServices"), std::vector<std::string>{"Bearer tls-token"});

  // Another CA: the handshake fails and the call never reaches the service.
  auto other_ca = pki::CreateCa("someone else", 1);
  ASSERT_TRUE(other_ca);
  TempFile other_ca_file(other_ca->cert_pem);
  auto wrong = RunRaw({"ls", "--supervisor", supervisor.address(), "--ca-file",
                       other_ca_file.path(), "--timeout", "3s"});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_THAT(wrong.err, HasSubstr("(UNAVAILABLE)"));
  EXPECT_THAT(wrong.err, HasSubstr("--ca-file must be"));
  // Plaintext to a TLS port fails as well.
  auto plaintext =
      RunRaw({"ls", "--supervisor", supervisor.address(), "--insecure", "--timeout", "3s"});
  EXPECT_EQ(plaintext.exit_code, 1);
  EXPECT_EQ(supervisor.authorization("ListServices").size(), 1u);
}

TEST(SupervisorErrorsTest, UnauthenticatedAndPermissionDeniedGetHints) {
  FakeSupervisor supervisor;
  supervisor.FailNext("ListServices",
                      grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing bearer token"));
  auto unauthenticated = RunSupervisorCli(RunServiceGroup, supervisor, {"ls"});
  EXPECT_EQ(unauthenticated.exit_code, 1);
  EXPECT_THAT(unauthenticated.err, HasSubstr("error: missing bearer token (UNAUTHENTICATED)\n"));
  EXPECT_THAT(unauthenticated.err, HasSubstr("pass --token"));
  EXPECT_THAT(unauthenticated.err, HasSubstr("PHOENIX_TOKEN"));
  EXPECT_THAT(unauthenticated.err, HasSubstr("<supervisor-state>/admin.token"));

  supervisor.FailNext("CreateToken",
                      grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "needs role admin"));
  auto denied = RunSupervisorCli(RunTokenGroup, supervisor, {"create", "--role", "viewer"}, "v");
  EXPECT_EQ(denied.exit_code, 1);
  EXPECT_THAT(denied.err, HasSubstr("error: needs role admin (PERMISSION_DENIED)\n"));
  EXPECT_THAT(denied.err, HasSubstr("role is too low"));
  EXPECT_EQ(denied.out, "");

  // Other codes: message and code, no auth hint.
  supervisor.FailNext("DrainNode", grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "busy"));
  auto other = RunSupervisorCli(RunNodeGroup, supervisor, {"drain", "n1"});
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_EQ(other.err, "error: busy (FAILED_PRECONDITION)\n");
}

TEST(SupervisorErrorsTest, UnreachableSupervisorNamesItsAddress) {
  std::ostringstream out, err;
  Context ctx(out, err, "", SupervisorEnv{"127.0.0.1:7400", "", ""});
  EXPECT_EQ(ctx.RpcError(grpc::Status(grpc::StatusCode::UNAVAILABLE, "refused"), Peer::kSupervisor),
            1);
  EXPECT_THAT(err.str(), HasSubstr("is phoenix-supervisor running at 127.0.0.1:7400?"));
  EXPECT_THAT(err.str(), Not(HasSubstr("phoenix-agent")));
}

TEST(TokenCommandsTest, TokenCreatePrintsOnlyTheTokenOnStdout) {
  FakeSupervisor supervisor;
  supervisor.SetMintedToken("phx_abc123");
  auto result = RunSupervisorCli(RunTokenGroup, supervisor,
                                 {"create", "--role", "operator", "--description", "ci deploys"},
                                 "admin-token");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "phx_abc123\n");
  EXPECT_THAT(result.err, HasSubstr("shown only once"));
  auto requests = supervisor.token_requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].role(), v1::ROLE_OPERATOR);
  EXPECT_EQ(requests[0].description(), "ci deploys");
  EXPECT_EQ(supervisor.authorization("CreateToken"),
            std::vector<std::string>{"Bearer admin-token"});

  EXPECT_EQ(RunSupervisorCli(RunTokenGroup, supervisor, {"create"}).exit_code, 2);
  EXPECT_EQ(RunSupervisorCli(RunTokenGroup, supervisor, {"create", "--role", "root"}).exit_code, 2);
  EXPECT_EQ(supervisor.token_requests().size(), 1u);
}

TEST(TokenCommandsTest, TokenCreateSendsItsTtlOrNone) {
  FakeSupervisor supervisor;
  ASSERT_EQ(RunSupervisorCli(RunTokenGroup, supervisor,
                             {"create", "--role", "viewer", "--ttl", "168h"}, "t")
                .exit_code,
            0);
  ASSERT_EQ(
      RunSupervisorCli(RunTokenGroup, supervisor, {"create", "--role", "viewer"}, "t").exit_code,
      0);
  auto requests = supervisor.token_requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].ttl_seconds(), 168u * 3600);
  EXPECT_EQ(requests[1].ttl_seconds(), 0u) << "no --ttl: until revoked";
  EXPECT_EQ(RunSupervisorCli(RunTokenGroup, supervisor,
                             {"create", "--role", "viewer", "--ttl", "500ms"}, "t")
                .exit_code,
            2);
}

TEST(TokenCommandsTest, LsShowsIdsNeverTokensAndRevokeTakesAnId) {
  FakeSupervisor supervisor;
  v1::TokenInfo ci;
  ci.set_id("3f9a1c0e7b2d");
  ci.set_kind("operator");
  ci.set_description("ci deploys");
  supervisor.AddToken(ci);
  v1::TokenInfo join;
  join.set_id("77aa00bb11cc");
  join.set_kind("join");
  join.set_uses_left(2);
  *join.mutable_expires_at() = google::protobuf::util::TimeUtil::SecondsToTimestamp(1700000000);
  supervisor.AddToken(join);

  auto ls = RunSupervisorCli(RunTokenGroup, supervisor, {"ls"}, "admin-token");
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_THAT(ls.out, HasSubstr("ID"));
  EXPECT_THAT(ls.out, HasSubstr("3f9a1c0e7b2d   operator   never"));
  EXPECT_THAT(ls.out, HasSubstr("ci deploys"));
  EXPECT_THAT(ls.out, HasSubstr("77aa00bb11cc   join"));
  EXPECT_EQ(supervisor.authorization("ListTokens"), std::vector<std::string>{"Bearer admin-token"});

  auto revoked = RunSupervisorCli(RunTokenGroup, supervisor, {"revoke", "3f9a1c0e"}, "t");
  ASSERT_EQ(revoked.exit_code, 0) << revoked.err;
  EXPECT_EQ(revoked.out, "revoked operator token 3f9a1c0e7b2d (ci deploys)\n");
  auto again = RunSupervisorCli(RunTokenGroup, supervisor, {"revoke", "3f9a1c0e"}, "t");
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("no live token has id"));
  EXPECT_EQ(RunSupervisorCli(RunTokenGroup, supervisor, {"revoke"}, "t").exit_code, 2);
}

TEST(TokenCommandsTest, JoinTokenCreateSendsTheTtl) {
  FakeSupervisor supervisor;
  supervisor.SetMintedToken("join-xyz");
  auto result = RunSupervisorCli(RunJoinTokenGroup, supervisor, {"create", "--ttl", "15m"}, "adm");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "join-xyz\n");
  EXPECT_THAT(result.err, HasSubstr("valid until"));
  auto defaulted = RunSupervisorCli(RunJoinTokenGroup, supervisor, {"create", "-o", "json"});
  ASSERT_EQ(defaulted.exit_code, 0) << defaulted.err;
  EXPECT_THAT(defaulted.out, HasSubstr("\"token\": \"join-xyz\""));
  auto requests = supervisor.join_token_requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].ttl_seconds(), 900u);
  EXPECT_EQ(requests[1].ttl_seconds(), 3600u);
  EXPECT_EQ(RunSupervisorCli(RunJoinTokenGroup, supervisor, {"create", "--ttl", "500ms"}).exit_code,
            2);
}

TEST(TokenCommandsTest, JoinTokenCreateSendsItsUsesOneByDefault) {
  FakeSupervisor supervisor;
  supervisor.SetMintedToken("join-xyz");
  auto three = RunSupervisorCli(RunJoinTokenGroup, supervisor, {"create", "--uses", "3"}, "adm");
  ASSERT_EQ(three.exit_code, 0) << three.err;
  EXPECT_THAT(three.err, HasSubstr("for 3 agents"));
  auto one = RunSupervisorCli(RunJoinTokenGroup, supervisor, {"create"}, "adm");
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_THAT(one.err, HasSubstr("for 1 agent;"));
  auto requests = supervisor.join_token_requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].uses(), 3u);
  EXPECT_EQ(requests[1].uses(), 1u);
  EXPECT_EQ(RunSupervisorCli(RunJoinTokenGroup, supervisor, {"create", "--uses", "0"}).exit_code,
            2);
  EXPECT_EQ(
      RunSupervisorCli(RunJoinTokenGroup, supervisor, {"create", "--uses", "10001"}).exit_code, 2);
}

TEST(ClusterEventsTest, ReadsTheSupervisorWhenOneIsConfigured) {
  setenv("TZ", "UTC", 1);
  tzset();
  FakeSupervisor supervisor;
  supervisor.Emit(v1::CLUSTER_EVENT_TYPE_SERVICE_CREATED, "web", "", "3 replicas");
  supervisor.Emit(v1::CLUSTER_EVENT_TYPE_REPLICA_PLACED, "web", "host-1", "replica 0 in zone a");
  supervisor.Emit(v1::CLUSTER_EVENT_TYPE_NODE_DOWN, "", "host-2", "no heartbeat for 5.0 s");
  auto result =
      RunSupervisorCli(RunEventsCommand, supervisor, {"--service", "web"}, "viewer-token");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  auto watches = supervisor.watch_requests();
  ASSERT_EQ(watches.size(), 1u);
  EXPECT_EQ(watches[0].from_sequence(), 1u);
  EXPECT_EQ(watches[0].service(), "web");
  EXPECT_EQ(watches[0].node(), "");
  EXPECT_EQ(supervisor.authorization("WatchEvents"),
            std::vector<std::string>{"Bearer viewer-token"});
  EXPECT_THAT(result.out, HasSubstr("SERVICE"));
  EXPECT_THAT(result.out, HasSubstr("service-created"));
  EXPECT_THAT(result.out, HasSubstr("replica-placed"));
  EXPECT_THAT(result.out, HasSubstr("replica 0 in zone a"));
  EXPECT_THAT(result.out, Not(HasSubstr("node-down")));

  auto by_node = RunSupervisorCli(RunEventsCommand, supervisor,
                                  {"--node", "host-2", "--from", "2", "-o", "json"});
  ASSERT_EQ(by_node.exit_code, 0) << by_node.err;
  EXPECT_EQ(supervisor.watch_requests().back().node(), "host-2");
  EXPECT_EQ(supervisor.watch_requests().back().from_sequence(), 2u);
  ASSERT_EQ(std::count(by_node.out.begin(), by_node.out.end(), '\n'), 1) << by_node.out;
  EXPECT_THAT(by_node.out, HasSubstr("\"type\":\"CLUSTER_EVENT_TYPE_NODE_DOWN\""));

  v1::ClusterEvent event;
  event.set_sequence(9);
  event.mutable_time()->set_seconds(1714557600);
  event.set_type(v1::CLUSTER_EVENT_TYPE_STALE_GUEST_STOPPED);
  event.set_node("host-2");
  event.set_message("web-1-1 (assignment 4 < 6)");
  EXPECT_EQ(FormatClusterEventLine(event),
            "     9  2024-05-01 10:00:00.000  stale-guest-stopped  -                 host-2        "
            "web-1-1 (assignment 4 < 6)");
  event.set_type(v1::CLUSTER_EVENT_TYPE_NODE_DRAINED);
  event.set_message("node host-2 drained");
  event.set_actor("token 0123456789ab (operator)");
  EXPECT_THAT(FormatClusterEventLine(event),
              HasSubstr("node host-2 drained [by token 0123456789ab (operator)]"));
}

TEST(ClusterEventsTest, AgentFlagAndFiltersPickTheRightLog) {
  FakeSupervisor supervisor;
  FakeAgent agent;
  agent.Emit(v1::EVENT_TYPE_GUEST_CREATED, "web");
  // --agent reads the agent even with a supervisor configured.
  std::vector<std::string> args = {"--agent", "--endpoint", agent.endpoint(), "--guest", "web"};
  std::ostringstream out, err;
  Context ctx(out, err, "", SupervisorEnv{supervisor.address(), "", ""});
  ASSERT_EQ(RunEventsCommand(ctx, args), 0) << err.str();
  EXPECT_THAT(out.str(), HasSubstr("GUEST"));
  EXPECT_THAT(out.str(), HasSubstr("created"));
  EXPECT_EQ(agent.watch_requests().size(), 1u);
  EXPECT_TRUE(supervisor.watch_requests().empty());

  // Filters of the other log are usage errors.
  auto guest_on_supervisor = RunSupervisorCli(RunEventsCommand, supervisor, {"--guest", "web"});
  EXPECT_EQ(guest_on_supervisor.exit_code, 2);
  EXPECT_THAT(guest_on_supervisor.err, HasSubstr("add --agent"));
  auto service_on_agent = testing::RunCli(RunEventsCommand, agent.endpoint(), {"--service", "web"});
  EXPECT_EQ(service_on_agent.exit_code, 2);
  EXPECT_THAT(service_on_agent.err, HasSubstr("no supervisor is configured"));

  // A refused stream maps like any supervisor error.
  supervisor.FailNext("WatchEvents", grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no token"));
  auto refused = RunSupervisorCli(RunEventsCommand, supervisor, {"--follow"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, HasSubstr("error: no token (UNAUTHENTICATED)"));
  EXPECT_THAT(refused.err, HasSubstr("pass --token"));
}

TEST(HelpTest, EveryNewCommandHasHelpWithUsageAndExamples) {
  struct Case {
    int (*group)(Context&, std::span<const std::string>);
    std::vector<std::string> args;
    std::string mentions;
  };
  for (const Case& c : std::vector<Case>{
           {RunServiceGroup, {"--help"}, "phoenixctl service create"},
           {RunServiceGroup, {"create", "--help"}, "--spread zone"},
           {RunServiceGroup, {"create", "--help"}, "--health-http PORT[/PATH]"},
           {RunServiceGroup, {"ls", "--help"}, "running/desired"},
           {RunServiceGroup, {"show", "--help"}, "GUEST-STATE"},
           {RunServiceGroup, {"scale", "--help"}, "--expected-version"},
           {RunServiceGroup, {"rm", "--help"}, "phoenixctl service rm web"},
           {RunNodeGroup, {"--help"}, "undrain"},
           {RunNodeGroup, {"info", "--help"}, "accelerator"},
           {RunNodeGroup, {"ls", "--help"}, "HEARTBEAT-AGE"},
           {RunNodeGroup, {"show", "--help"}, "assignment versions"},
           {RunNodeGroup, {"drain", "--help"}, "moves its replicas"},
           {RunNodeGroup, {"undrain", "--help"}, "phoenixctl node undrain"},
           {RunTokenGroup, {"--help"}, "viewer"},
           {RunTokenGroup, {"create", "--help"}, "--role viewer|operator|admin"},
           {RunJoinTokenGroup, {"--help"}, "enroll"},
           {RunJoinTokenGroup, {"create", "--help"}, "--ttl DURATION"},
           {RunEventsCommand, {"--help"}, "--agent"},
       }) {
    auto result = testing::RunCli(c.group, "127.0.0.1:1", c.args);
    EXPECT_EQ(result.exit_code, 0) << c.mentions;
    EXPECT_THAT(result.out, HasSubstr("Usage:")) << c.mentions;
    EXPECT_THAT(result.out, HasSubstr("Example")) << c.mentions;
    EXPECT_THAT(result.out, HasSubstr(c.mentions));
  }
}

}  // namespace
}  // namespace phoenix::ctl
