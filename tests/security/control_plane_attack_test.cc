// Attacks on the control plane, against a real TLS phoenix-supervisor and a real phoenix-agent
// enrolled with it (docs/security.md): the agent's TCP API (--tls-listen), tokens, enrollment and
// the spec contract.
//  - plaintext to the TLS port, no token, a made-up token, a revoked token: refused;
//  - a viewer reads but cannot kill guests; an operator kills but cannot import host files as an
//    image; an admin may;
//  - phoenixctl reaches it only with the agent's CA and a token;
//  - every change made through the supervisor is logged with the token that made it;
//  - a fresh join token cannot enroll the live node's name and take over its link;
//  - the supervisor refuses at create a template every agent would refuse.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>

#include "phoenix/v1/agent.grpc.pb.h"
#include "phoenix/v1/supervisor.grpc.pb.h"
#include "proto/support/pki.h"
#include "tests/integration/support/process.h"
#include "tests/integration/support/three_zone_cluster.h"

namespace phoenix::security {
namespace {

namespace fs = std::filesystem;
namespace v1 = phoenix::v1;
using namespace std::chrono_literals;
using testing::ChildProcess;
using ::testing::HasSubstr;
using testing::RunCommand;
using testing::cluster::Env;
using testing::cluster::ReadAll;

class ControlPlaneAttackTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::path(Env("PHOENIX_TEST_TMP").empty() ? "/tmp" : Env("PHOENIX_TEST_TMP")) /
            ("control-plane-attack-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    const fs::path sup = root_ / "supervisor";
    const std::string sup_bin = Env("PHOENIX_SUPERVISOR_BIN");
    auto init = RunCommand({sup_bin, "init", "--state-dir", sup.string()});
    PHX_CHECK(init.exit_code == 0);
    admin_ = ReadAll(sup / "admin.token");
    for (auto [role, target] : {std::pair{"viewer", &viewer_}, std::pair{"operator", &operator_},
                                std::pair{"viewer", &revoked_}}) {
      auto minted = RunCommand({sup_bin, "token", "create", "--state-dir", sup.string(), "--role",
                                role, "--description", "agent-tcp-test"});
      PHX_CHECK(minted.exit_code == 0);
      *target = minted.output.substr(0, minted.output.find('\n'));
    }
    auto child = ChildProcess::Spawn({sup_bin, "serve", "--state-dir", sup.string(), "--listen",
                                      "127.0.0.1:0", "--port-file", (sup / "port").string()},
                                     (root_ / "supervisor.log").string());
    PHX_CHECK(child.has_value());
    supervisor_ = std::move(*child);
    auto sup_port = testing::WaitForIntFile((sup / "port").string(), 30s);
    PHX_CHECK(sup_port.has_value());
    auto join = RunCommand({sup_bin, "join-token", "--state-dir", sup.string()});
    PHX_CHECK(join.exit_code == 0);

    const fs::path state = root_ / "agent";
    fs::create_directories(state);
    auto agent = ChildProcess::Spawn(
        {Env("PHOENIX_AGENT_BIN"), "--listen", "unix:" + (state / "agent.sock").string(),
         "--state-dir", state.string(), "--node", "tcp-node", "--tls-listen", "127.0.0.1:0",
         "--tls-port-file", (state / "tls.port").string(), "--supervisor",
         "127.0.0.1:" + std::to_string(*sup_port), "--supervisor-ca",
         (sup / "pki" / "ca.pem").string(), "--join-token",
         join.output.substr(0, join.output.find('\n'))},
        (root_ / "agent.log").string());
    PHX_CHECK(agent.has_value());
    agent_ = std::move(*agent);
    auto tls_port = testing::WaitForIntFile((state / "tls.port").string(), 60s);
    PHX_CHECK(tls_port.has_value());
    endpoint_ = "127.0.0.1:" + std::to_string(*tls_port);
    // Until it has enrolled, the agent cannot ask who a token is (UNAVAILABLE, saying so).
    PHX_CHECK(
        testing::cluster::WaitFor([&] { return fs::exists(state / "pki" / "agent.pem"); }, 60s));
    agent_ca_ = state / "pki" / "api-ca.pem";
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = ReadAll(agent_ca_);
    stub_ = v1::AgentService::NewStub(grpc::CreateChannel(endpoint_, grpc::SslCredentials(tls)));
    grpc::SslCredentialsOptions sup_tls;
    sup_tls.pem_root_certs = ReadAll(sup / "pki" / "ca.pem");
    supervisor_address_ = "127.0.0.1:" + std::to_string(*sup_port);
    supervisor_stub_ = v1::Supervisor::NewStub(
        grpc::CreateChannel(supervisor_address_, grpc::SslCredentials(sup_tls)));
  }

  static void TearDownTestSuite() {
    agent_.KillAndWait(SIGTERM, 10s);
    supervisor_.KillAndWait(SIGTERM, 10s);
    stub_.reset();
    supervisor_stub_.reset();
    fs::remove_all(root_);
  }

  static std::unique_ptr<grpc::ClientContext> As(const std::string& token) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + 20s);
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
    return ctx;
  }
  static grpc::StatusCode NodeInfoAs(const std::string& token) {
    v1::NodeInfo info;
    return stub_->GetNodeInfo(As(token).get(), {}, &info).error_code();
  }
  static grpc::Status KillAs(const std::string& token) {
    v1::KillGuestRequest request;
    request.set_name("nobody-here");
    v1::KillGuestResponse response;
    return stub_->KillGuest(As(token).get(), request, &response);
  }
  static grpc::Status ImportAs(const std::string& token) {
    v1::ImportImageRequest request;
    request.set_name("etc");
    request.set_directory("/nonexistent-dir");
    v1::Image image;
    return stub_->ImportImage(As(token).get(), request, &image);
  }
  static testing::CommandResult Ctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {Env("PHOENIXCTL_BIN"), "--endpoint", endpoint_};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }

  static inline fs::path root_;
  static inline ChildProcess supervisor_, agent_;
  static inline std::string admin_, viewer_, operator_, revoked_, endpoint_, supervisor_address_;
  static inline fs::path agent_ca_;
  static inline std::unique_ptr<v1::AgentService::Stub> stub_;
  static inline std::unique_ptr<v1::Supervisor::Stub> supervisor_stub_;
};

TEST_F(ControlPlaneAttackTest, PlaintextToTheTlsPortGetsNothing) {
  auto plain =
      v1::AgentService::NewStub(grpc::CreateChannel(endpoint_, grpc::InsecureChannelCredentials()));
  v1::NodeInfo info;
  grpc::Status s = plain->GetNodeInfo(As(admin_).get(), {}, &info);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
}

TEST_F(ControlPlaneAttackTest, NoTokenOrAMadeUpOneIsUnauthenticated) {
  EXPECT_EQ(NodeInfoAs(""), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(NodeInfoAs("phx_admin_" + std::string(64, 'a')), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(KillAs("").error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(ControlPlaneAttackTest, TheSupervisorsRolesHoldOnTheAgent) {
  EXPECT_EQ(NodeInfoAs(viewer_), grpc::StatusCode::OK) << "a viewer reads";
  grpc::Status viewer_kill = KillAs(viewer_);
  EXPECT_EQ(viewer_kill.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(viewer_kill.error_message(), HasSubstr("needs role operator"));
  EXPECT_EQ(KillAs(operator_).error_code(), grpc::StatusCode::NOT_FOUND)
      << "an operator's kill reaches the handler (no such guest)";
  EXPECT_EQ(ImportAs(operator_).error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << "importing the node's own files is for admins";
  grpc::Status admin_import = ImportAs(admin_);
  EXPECT_NE(admin_import.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(admin_import.error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(ControlPlaneAttackTest, ARevokedTokenIsRefused) {
  v1::ListTokensResponse tokens;
  ASSERT_TRUE(supervisor_stub_->ListTokens(As(admin_).get(), {}, &tokens).ok());
  // The third "agent-tcp-test" token is revoked_ (minted last, listed oldest first).
  std::vector<std::string> ids;
  for (const auto& t : tokens.tokens()) {
    if (t.description() == "agent-tcp-test") ids.push_back(t.id());
  }
  ASSERT_EQ(ids.size(), 3u);
  v1::RevokeTokenRequest revoke;
  revoke.set_id(ids.back());
  v1::RevokeTokenResponse revoked;
  ASSERT_TRUE(supervisor_stub_->RevokeToken(As(admin_).get(), revoke, &revoked).ok());
  EXPECT_EQ(NodeInfoAs(revoked_), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(ControlPlaneAttackTest, PhoenixctlNeedsTheAgentsCaAndAToken) {
  auto no_ca = Ctl({"--token", viewer_, "node", "info"});
  EXPECT_EQ(no_ca.exit_code, 2) << no_ca.output;
  EXPECT_THAT(no_ca.output, HasSubstr("--agent-ca-file"));
  auto no_token = Ctl({"--agent-ca-file", agent_ca_.string(), "node", "info"});
  EXPECT_EQ(no_token.exit_code, 2) << no_token.output;
  auto ok = Ctl({"--agent-ca-file", agent_ca_.string(), "--token", viewer_, "node", "info"});
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_THAT(ok.output, HasSubstr("tcp-node"));
  auto denied = Ctl(
      {"--agent-ca-file", agent_ca_.string(), "--token", viewer_, "guest", "kill", "nobody-here"});
  EXPECT_EQ(denied.exit_code, 1) << denied.output;
  EXPECT_THAT(denied.output, HasSubstr("PERMISSION_DENIED"));
}

TEST_F(ControlPlaneAttackTest, EveryChangeNamesTheTokenThatMadeIt) {
  ASSERT_TRUE(testing::cluster::WaitFor(
      [&] {
        v1::GetNodeRequest request;
        request.set_name("tcp-node");
        v1::Node node;
        return supervisor_stub_->GetNode(As(viewer_).get(), request, &node).ok();
      },
      30s));
  v1::DrainNodeRequest drain;
  drain.set_name("tcp-node");
  v1::Node node;
  ASSERT_TRUE(supervisor_stub_->DrainNode(As(operator_).get(), drain, &node).ok());
  v1::UndrainNodeRequest undrain;
  undrain.set_name("tcp-node");
  ASSERT_TRUE(supervisor_stub_->UndrainNode(As(operator_).get(), undrain, &node).ok());
  v1::ListTokensResponse tokens;
  ASSERT_TRUE(supervisor_stub_->ListTokens(As(admin_).get(), {}, &tokens).ok());
  std::string operator_id;
  for (const auto& t : tokens.tokens()) {
    if (t.kind() == "operator") operator_id = t.id();
  }
  ASSERT_FALSE(operator_id.empty());

  v1::WatchClusterEventsRequest watch;
  watch.set_from_sequence(1);
  watch.set_node("tcp-node");
  auto ctx = As(viewer_);
  ctx->set_deadline(std::chrono::system_clock::now() + 3s);
  auto reader = supervisor_stub_->WatchEvents(ctx.get(), watch);
  std::map<v1::ClusterEventType, std::string> actors;
  v1::ClusterEvent event;
  while (reader->Read(&event)) actors[event.type()] = event.actor();
  (void)reader->Finish();
  const std::string expected = "token " + operator_id + " (operator)";
  EXPECT_EQ(actors[v1::CLUSTER_EVENT_TYPE_NODE_DRAINED], expected);
  EXPECT_EQ(actors[v1::CLUSTER_EVENT_TYPE_NODE_UNDRAINED], expected);
  EXPECT_EQ(actors[v1::CLUSTER_EVENT_TYPE_NODE_JOINED], "") << "the supervisor's own";
}

TEST_F(ControlPlaneAttackTest, AFreshJoinTokenCannotTakeOverTheLiveNodesName) {
  const fs::path sup = root_ / "supervisor";
  auto join =
      RunCommand({Env("PHOENIX_SUPERVISOR_BIN"), "join-token", "--state-dir", sup.string()});
  ASSERT_EQ(join.exit_code, 0) << join.output;
  auto csr = pki::CreateKeyAndCsr("tcp-node");
  ASSERT_TRUE(csr.has_value());
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ReadAll(sup / "pki" / "ca.pem");
  auto enrollment =
      v1::Enrollment::NewStub(grpc::CreateChannel(supervisor_address_, grpc::SslCredentials(tls)));
  v1::EnrollRequest request;
  request.set_join_token(join.output.substr(0, join.output.find('\n')));
  request.set_node("tcp-node");
  request.set_csr_pem(csr->csr_pem);
  v1::EnrollResponse response;
  grpc::Status taken = enrollment->Enroll(As("").get(), request, &response);
  EXPECT_EQ(taken.error_code(), grpc::StatusCode::ALREADY_EXISTS) << taken.error_message();
  EXPECT_THAT(taken.error_message(), HasSubstr("node rm tcp-node"));
  EXPECT_TRUE(response.certificate_pem().empty());
}

TEST_F(ControlPlaneAttackTest, TheSupervisorRefusesATemplateEveryAgentWouldRefuse) {
  v1::CreateServiceRequest request;
  request.mutable_spec()->set_name("tiny");
  request.mutable_spec()->set_replicas(1);
  request.mutable_spec()->mutable_template_()->set_image("demo");
  request.mutable_spec()->mutable_template_()->set_runtime(v1::RUNTIME_CONTAINER);
  request.mutable_spec()->mutable_template_()->set_memory_mib(16);
  v1::Service service;
  grpc::Status refused = supervisor_stub_->CreateService(As(operator_).get(), request, &service);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(refused.error_message(), HasSubstr("memory_mib")) << refused.error_message();
}

}  // namespace
}  // namespace phoenix::security
