// The admin API over a real in-process gRPC server (127.0.0.1, port 0, insecure) in front of a
// real Controller on a MemoryStateStore.
#include "supervisor/api/supervisor_service.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <stdlib.h>
#include <set>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

#include "supervisor/state/memory_state_store.h"

namespace phoenix::supervisor::api {
namespace {

using namespace std::chrono_literals;
using google::protobuf::util::TimeUtil;
using ::testing::HasSubstr;
namespace asio = boost::asio;

// An agent's session as the controller sees it; the API tests only need the node to exist.
class QuietSession : public AgentSession {
 public:
  void SendAssignment(const NodeAssignment&) override {}
  void SendFrontDoor(const FrontDoorTable&) override {}
  void Close(const Error&) override {}
};

class SupervisorServiceTest : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/phx-supervisor-api-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto tokens = auth::TokenStore::Open(dir_ / "tokens");
    ASSERT_TRUE(tokens.has_value()) << tokens.error().ToString();
    tokens_ = std::move(*tokens);
    auto nodes = auth::EnrolledNodes::Open(dir_ / "nodes");
    ASSERT_TRUE(nodes.has_value()) << nodes.error().ToString();
    nodes_ = std::move(*nodes);

    Controller::Options options;
    options.call_timeout = 10s;
    controller_ = std::make_unique<Controller>(loop_, store_, hub_, options);
    ASSERT_TRUE(controller_->Recover());
    loop_thread_ = std::thread([this] { loop_.run(); });
    StartServer(tokens_.get());
  }

  void StartServer(auth::TokenStore* tokens) {
    // A supervisor without tokens (--insecure) enrolls no nodes either.
    service_ = std::make_unique<SupervisorServiceImpl>(*controller_, store_, hub_, tokens,
                                                       ServerLimits{}.max_streams,
                                                       tokens ? nodes_.get() : nullptr);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port, 0);
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                       grpc::InsecureChannelCredentials());
    stub_ = v1::Supervisor::NewStub(channel);
  }

  void StopServer() {
    // A deadline so that open WatchEvents streams are cancelled rather than waited for.
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + 2s);
    server_.reset();
    service_.reset();
  }

  void TearDown() override {
    StopServer();
    for (auto& session : sessions_) controller_->AgentGone(session.get());
    work_.reset();
    loop_.stop();
    if (loop_thread_.joinable()) loop_thread_.join();
    controller_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Waits until everything posted to the controller's loop so far has run.
  void Sync() {
    std::promise<void> done;
    asio::post(loop_, [&] { done.set_value(); });
    ASSERT_EQ(done.get_future().wait_for(5s), std::future_status::ready);
  }

  void ConnectNode(const std::string& name, const std::string& zone) {
    sessions_.push_back(std::make_unique<QuietSession>());
    AgentHello hello;
    hello.node.name = name;
    hello.node.zone = zone;
    hello.node.capacity = {8, 8192};
    hello.node.runtimes = {RuntimeKind::kContainer};
    hello.agent_version = "test";
    controller_->AgentConnected(sessions_.back().get(), hello);
    Sync();
  }

  static v1::ServiceSpec Spec(const std::string& name, uint32_t replicas) {
    v1::ServiceSpec spec;
    spec.set_name(name);
    spec.set_replicas(replicas);
    spec.mutable_template_()->set_runtime(v1::RUNTIME_CONTAINER);
    spec.mutable_template_()->set_image("demo:latest");
    spec.mutable_spread()->set_attribute("zone");
    return spec;
  }

  grpc::Status Create(const v1::ServiceSpec& spec, v1::Service* out) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    v1::CreateServiceRequest req;
    *req.mutable_spec() = spec;
    return stub_->CreateService(&ctx, req, out);
  }

  grpc::Status Get(const std::string& name, v1::Service* out) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    v1::GetServiceRequest req;
    req.set_name(name);
    return stub_->GetService(&ctx, req, out);
  }

  grpc::Status Scale(const std::string& name, uint32_t replicas, uint64_t expected,
                     v1::Service* out) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    v1::ScaleServiceRequest req;
    req.set_name(name);
    req.set_replicas(replicas);
    req.set_expected_version(expected);
    return stub_->ScaleService(&ctx, req, out);
  }

  grpc::Status Delete(const std::string& name) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    v1::DeleteServiceRequest req;
    req.set_name(name);
    v1::DeleteServiceResponse resp;
    return stub_->DeleteService(&ctx, req, &resp);
  }

  std::filesystem::path dir_;
  std::unique_ptr<auth::TokenStore> tokens_;
  std::unique_ptr<auth::EnrolledNodes> nodes_;
  MemoryStateStore store_;
  EventHub hub_;
  asio::io_context loop_;
  std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>> work_ =
      std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
          loop_.get_executor());
  std::thread loop_thread_;
  std::unique_ptr<Controller> controller_;
  std::vector<std::unique_ptr<QuietSession>> sessions_;
  std::unique_ptr<SupervisorServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Supervisor::Stub> stub_;
};

TEST_F(SupervisorServiceTest, CreatedServiceWithoutNodesIsPendingWithAReason) {
  v1::Service created;
  grpc::Status s = Create(Spec("web", 3), &created);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(created.spec().name(), "web");
  EXPECT_EQ(created.spec().replicas(), 3u);
  EXPECT_EQ(created.spec().template_().memory_mib(), 256u);
  EXPECT_EQ(created.spec().spread().attribute(), "zone");
  EXPECT_GT(created.version(), 0u);
  EXPECT_TRUE(created.has_created_at());

  v1::Service got;
  s = Get("web", &got);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(got.spec().template_().image(), "demo:latest");
  EXPECT_EQ(got.running(), 0u);
  ASSERT_EQ(got.replicas_size(), 3);
  for (const v1::Replica& r : got.replicas()) {
    EXPECT_EQ(r.state(), v1::REPLICA_STATE_PENDING) << r.index();
    EXPECT_EQ(r.node(), "");
    EXPECT_FALSE(r.pending_reason().empty()) << r.index();
  }

  grpc::ClientContext ctx;
  v1::ListServicesResponse list;
  ASSERT_TRUE(stub_->ListServices(&ctx, v1::ListServicesRequest{}, &list).ok());
  ASSERT_EQ(list.services_size(), 1);
  EXPECT_EQ(list.services(0).spec().name(), "web");
}

TEST_F(SupervisorServiceTest, ServiceOnAReadyNodeIsAssignedThere) {
  ConnectNode("n1", "z1");
  v1::Service created;
  ASSERT_TRUE(Create(Spec("web", 1), &created).ok());
  ASSERT_EQ(created.replicas_size(), 1);
  EXPECT_EQ(created.replicas(0).state(), v1::REPLICA_STATE_ASSIGNED);
  EXPECT_EQ(created.replicas(0).node(), "n1");
  EXPECT_EQ(created.replicas(0).zone(), "z1");
  EXPECT_EQ(created.replicas(0).guest(),
            "web-0-" + std::to_string(created.replicas(0).generation()));
  EXPECT_EQ(created.replicas(0).pending_reason(), "");
}

TEST_F(SupervisorServiceTest, BadSpecIsInvalidArgumentNamingTheField) {
  struct Case {
    std::function<void(v1::ServiceSpec&)> mutate;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](v1::ServiceSpec& s) { s.set_name("Bad_Name"); }, "spec.name"},
      {[](v1::ServiceSpec& s) { s.set_replicas(1001); }, "spec.replicas"},
      {[](v1::ServiceSpec& s) { s.mutable_template_()->set_runtime(static_cast<v1::Runtime>(9)); },
       "spec.template.runtime"},
      // What an agent would refuse is refused at create (proto/support/guest_spec.h).
      {[](v1::ServiceSpec& s) { s.mutable_template_()->set_memory_mib(32); },
       "spec.template.memory_mib"},
      {[](v1::ServiceSpec& s) {
         s.mutable_template_()->add_ports()->set_guest_port(80);
         s.mutable_template_()->mutable_health()->mutable_http()->set_port(80);
         s.mutable_template_()->mutable_health()->mutable_http()->set_path("/h\r\nX: y");
       },
       "spec.template.health.http.path"},
      {[](v1::ServiceSpec& s) { s.mutable_template_()->clear_image(); }, "spec.template.image"},
      {[](v1::ServiceSpec& s) { s.mutable_template_()->set_memory_mib(8); },
       "spec.template.memory_mib"},
      {[](v1::ServiceSpec& s) { s.mutable_spread()->set_attribute("rack"); },
       "spec.spread.attribute"},
      {[](v1::ServiceSpec& s) {
         s.mutable_autoscale()->set_min_replicas(3);
         s.mutable_autoscale()->set_max_replicas(2);
         s.mutable_autoscale()->set_metric("cpu");
         s.mutable_autoscale()->set_target(60);
       },
       "spec.autoscale.max_replicas"},
      {[](v1::ServiceSpec& s) {
         s.mutable_autoscale()->set_max_replicas(2);
         s.mutable_autoscale()->set_metric("cpu");
         s.mutable_autoscale()->set_target(60);
       },
       "spec.autoscale.min_replicas"},
      {[](v1::ServiceSpec& s) {
         s.mutable_autoscale()->set_min_replicas(1);
         s.mutable_autoscale()->set_max_replicas(2);
         s.mutable_autoscale()->set_metric("rps");
       },
       "spec.autoscale.target"},
      {[](v1::ServiceSpec& s) {
         s.mutable_autoscale()->set_min_replicas(1);
         s.mutable_autoscale()->set_max_replicas(2);
         s.mutable_autoscale()->set_metric("memory");
         s.mutable_autoscale()->set_target(60);
       },
       "spec.autoscale.metric"},
  };
  for (const Case& c : cases) {
    v1::ServiceSpec spec = Spec("web", 1);
    c.mutate(spec);
    v1::Service out;
    grpc::Status s = Create(spec, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_THAT(s.error_message(), HasSubstr(c.field + ":"));
  }
  grpc::ClientContext ctx;
  v1::ListServicesResponse list;
  ASSERT_TRUE(stub_->ListServices(&ctx, v1::ListServicesRequest{}, &list).ok());
  EXPECT_EQ(list.services_size(), 0);
}

TEST_F(SupervisorServiceTest, DuplicateNameIsAlreadyExists) {
  v1::Service out;
  ASSERT_TRUE(Create(Spec("web", 1), &out).ok());
  grpc::Status s = Create(Spec("web", 2), &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS) << s.error_message();
  v1::Service got;
  ASSERT_TRUE(Get("web", &got).ok());
  EXPECT_EQ(got.spec().replicas(), 1u);
}

TEST_F(SupervisorServiceTest, ScaleChecksTheExpectedVersion) {
  v1::Service created;
  ASSERT_TRUE(Create(Spec("web", 1), &created).ok());
  const uint64_t v1_version = created.version();

  v1::Service scaled;
  grpc::Status s = Scale("web", 2, v1_version, &scaled);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(scaled.spec().replicas(), 2u);
  EXPECT_GT(scaled.version(), v1_version);
  EXPECT_EQ(scaled.replicas_size(), 2);

  // The version the first scale consumed is stale now.
  v1::Service stale;
  s = Scale("web", 5, v1_version, &stale);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED) << s.error_message();
  v1::Service got;
  ASSERT_TRUE(Get("web", &got).ok());
  EXPECT_EQ(got.spec().replicas(), 2u);

  // 0 = unconditional.
  s = Scale("web", 0, 0, &scaled);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(scaled.spec().replicas(), 0u);
  EXPECT_EQ(scaled.replicas_size(), 0);

  EXPECT_EQ(Scale("nope", 1, 0, &scaled).error_code(), grpc::StatusCode::NOT_FOUND);
  s = Scale("web", 1001, 0, &scaled);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("replicas:"));
  s = Scale("", 1, 0, &scaled);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("name:"));
}

TEST_F(SupervisorServiceTest, AutoscalePolicyRoundTripsAndSetAutoscaleChangesIt) {
  v1::ServiceSpec spec = Spec("web", 0);
  v1::AutoscalePolicy* policy = spec.mutable_autoscale();
  policy->set_min_replicas(2);
  policy->set_max_replicas(6);
  policy->set_metric("rps");
  policy->set_target(200);
  v1::Service created;
  grpc::Status s = Create(spec, &created);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(created.spec().replicas(), 2u);  // into [min, max]
  ASSERT_TRUE(created.spec().has_autoscale());
  EXPECT_EQ(created.spec().autoscale().scale_down_stabilization_s(), 60u);  // defaults applied
  EXPECT_DOUBLE_EQ(created.spec().autoscale().tolerance(), 0.1);
  EXPECT_EQ(created.spec().autoscale().scale_up_max_step(), 4u);
  ASSERT_TRUE(created.has_autoscale());
  EXPECT_EQ(created.autoscale().desired_replicas(), 2u);

  auto set = [&](const v1::SetAutoscaleRequest& req, v1::Service* out) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    return stub_->SetAutoscale(&ctx, req, out);
  };
  v1::SetAutoscaleRequest req;
  req.set_name("web");
  req.mutable_policy()->set_min_replicas(1);
  req.mutable_policy()->set_max_replicas(0);
  req.mutable_policy()->set_metric("cpu");
  req.mutable_policy()->set_target(60);
  v1::Service out;
  s = set(req, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "policy.max_replicas: must be >= min_replicas (1)");

  req.mutable_policy()->set_max_replicas(1);
  req.set_expected_version(created.version() + 5);
  EXPECT_EQ(set(req, &out).error_code(), grpc::StatusCode::ABORTED);
  req.set_expected_version(created.version());
  s = set(req, &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(out.spec().replicas(), 1u);
  EXPECT_EQ(out.spec().autoscale().metric(), "cpu");
  // 0 is a choice, not "unset": no tolerance band, no scale-down window.
  req.mutable_policy()->set_tolerance(0);
  req.mutable_policy()->set_scale_down_stabilization_s(0);
  req.set_expected_version(out.version());
  s = set(req, &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_DOUBLE_EQ(out.spec().autoscale().tolerance(), 0);
  EXPECT_EQ(out.spec().autoscale().scale_down_stabilization_s(), 0u);
  v1::Service read_back;
  ASSERT_TRUE(Get("web", &read_back).ok());
  EXPECT_TRUE(read_back.spec().autoscale().has_tolerance());
  EXPECT_DOUBLE_EQ(read_back.spec().autoscale().tolerance(), 0);
  EXPECT_EQ(read_back.spec().autoscale().scale_down_stabilization_s(), 0u);
  v1::Service scaled;
  EXPECT_EQ(Scale("web", 3, 0, &scaled).error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  v1::SetAutoscaleRequest off;
  off.set_name("web");
  s = set(off, &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(out.spec().has_autoscale());
  EXPECT_FALSE(out.has_autoscale());
  EXPECT_TRUE(Scale("web", 3, 0, &scaled).ok());
  off.set_name("nope");
  EXPECT_EQ(set(off, &out).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(SupervisorServiceTest, DeletedServiceIsNotFound) {
  v1::Service out;
  ASSERT_TRUE(Create(Spec("web", 2), &out).ok());
  grpc::Status s = Delete("web");
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(Get("web", &out).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Delete("web").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Get("", &out).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(SupervisorServiceTest, WatchEventsDeliversNewEvents) {
  // Start after everything so far: only the create below is new.
  v1::WatchClusterEventsRequest req;
  req.set_from_sequence(hub_.last() + 1);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  auto reader = stub_->WatchEvents(&ctx, req);

  v1::Service out;
  ASSERT_TRUE(Create(Spec("web", 1), &out).ok());

  v1::ClusterEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.type(), v1::CLUSTER_EVENT_TYPE_SERVICE_CREATED);
  EXPECT_EQ(event.service(), "web");
  EXPECT_GT(event.sequence(), 0u);
  EXPECT_TRUE(event.has_time());
  EXPECT_THAT(event.message(), HasSubstr("web"));
  ctx.TryCancel();
  reader->Finish();
}

TEST_F(SupervisorServiceTest, WatchEventsReplaysTheBacklogAndFilters) {
  ConnectNode("n1", "z1");
  v1::Service out;
  ASSERT_TRUE(Create(Spec("alpha", 1), &out).ok());
  ASSERT_TRUE(Create(Spec("beta", 1), &out).ok());
  ASSERT_TRUE(Delete("alpha").ok());

  {  // Only beta's events, from the start of the log.
    v1::WatchClusterEventsRequest req;
    req.set_from_sequence(1);
    req.set_service("beta");
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    auto reader = stub_->WatchEvents(&ctx, req);
    v1::ClusterEvent event;
    ASSERT_TRUE(reader->Read(&event));
    EXPECT_EQ(event.type(), v1::CLUSTER_EVENT_TYPE_SERVICE_CREATED);
    EXPECT_EQ(event.service(), "beta");
    ASSERT_TRUE(reader->Read(&event));
    EXPECT_EQ(event.type(), v1::CLUSTER_EVENT_TYPE_REPLICA_PLACED);
    EXPECT_EQ(event.service(), "beta");
    EXPECT_EQ(event.node(), "n1");
    ctx.TryCancel();
    reader->Finish();
  }
  {  // Only n1's events: the node's own, then the placements on it, in sequence order.
    v1::WatchClusterEventsRequest req;
    req.set_from_sequence(1);
    req.set_node("n1");
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    auto reader = stub_->WatchEvents(&ctx, req);
    v1::ClusterEvent event;
    uint64_t last_sequence = 0;
    int placed = 0;
    while (placed < 2 && reader->Read(&event)) {
      EXPECT_EQ(event.node(), "n1");
      EXPECT_GT(event.sequence(), last_sequence);
      last_sequence = event.sequence();
      if (event.type() == v1::CLUSTER_EVENT_TYPE_REPLICA_PLACED) placed++;
    }
    EXPECT_EQ(placed, 2);
    ctx.TryCancel();
    reader->Finish();
  }
}

TEST_F(SupervisorServiceTest, NodesListDrainAndUndrain) {
  ConnectNode("n1", "z1");
  ConnectNode("n2", "z2");

  grpc::ClientContext list_ctx;
  v1::ListNodesResponse list;
  ASSERT_TRUE(stub_->ListNodes(&list_ctx, v1::ListNodesRequest{}, &list).ok());
  ASSERT_EQ(list.nodes_size(), 2);
  EXPECT_EQ(list.nodes(0).name(), "n1");
  EXPECT_EQ(list.nodes(0).zone(), "z1");
  EXPECT_EQ(list.nodes(0).state(), v1::NODE_STATE_READY);
  EXPECT_EQ(list.nodes(0).capacity().memory_mib(), 8192u);
  EXPECT_EQ(list.nodes(0).agent_version(), "test");
  ASSERT_EQ(list.nodes(0).runtimes_size(), 1);
  EXPECT_EQ(list.nodes(0).runtimes(0).runtime(), v1::RUNTIME_CONTAINER);

  v1::Node node;
  {
    grpc::ClientContext ctx;
    v1::DrainNodeRequest req;
    req.set_name("n1");
    ASSERT_TRUE(stub_->DrainNode(&ctx, req, &node).ok());
    EXPECT_TRUE(node.drained());
  }
  {  // A drained node gets no new replicas.
    v1::Service out;
    ASSERT_TRUE(Create(Spec("web", 1), &out).ok());
    ASSERT_EQ(out.replicas_size(), 1);
    EXPECT_EQ(out.replicas(0).node(), "n2");
  }
  {
    grpc::ClientContext ctx;
    v1::GetNodeRequest req;
    req.set_name("n1");
    ASSERT_TRUE(stub_->GetNode(&ctx, req, &node).ok());
    EXPECT_TRUE(node.drained());
    EXPECT_EQ(node.replicas(), 0u);
  }
  {
    grpc::ClientContext ctx;
    v1::UndrainNodeRequest req;
    req.set_name("n1");
    ASSERT_TRUE(stub_->UndrainNode(&ctx, req, &node).ok());
    EXPECT_FALSE(node.drained());
  }
  {
    grpc::ClientContext ctx;
    v1::GetNodeRequest req;
    req.set_name("n9");
    EXPECT_EQ(stub_->GetNode(&ctx, req, &node).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext ctx;
    v1::DrainNodeRequest req;
    grpc::Status s = stub_->DrainNode(&ctx, req, &node);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("name:"));
  }
}

TEST_F(SupervisorServiceTest, CreateTokenMintsATokenOfThatRole) {
  grpc::ClientContext ctx;
  v1::CreateTokenRequest req;
  req.set_role(v1::ROLE_OPERATOR);
  req.set_description("ci");
  v1::CreateTokenResponse resp;
  grpc::Status s = stub_->CreateToken(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  auto role = tokens_->Authenticate(resp.token());
  ASSERT_TRUE(role.has_value()) << role.error().ToString();
  EXPECT_EQ(*role, auth::Role::kOperator);

  grpc::ClientContext bad_ctx;
  req.set_role(v1::ROLE_UNSPECIFIED);
  s = stub_->CreateToken(&bad_ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("role:"));
}

TEST_F(SupervisorServiceTest, TokensHaveATtlAreListedByIdAndRevoked) {
  v1::CreateTokenRequest req;
  req.set_role(v1::ROLE_VIEWER);
  req.set_description("dashboard");
  req.set_ttl_seconds(3600);
  v1::CreateTokenResponse minted;
  {
    grpc::ClientContext ctx;
    grpc::Status s = stub_->CreateToken(&ctx, req, &minted);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(minted.id().size(), 12u);
  ASSERT_TRUE(minted.has_expires_at());
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  EXPECT_NEAR(static_cast<double>(TimeUtil::TimestampToSeconds(minted.expires_at())),
              static_cast<double>(now + 3600), 5);

  v1::ListTokensResponse listed;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->ListTokens(&ctx, v1::ListTokensRequest{}, &listed).ok());
  }
  ASSERT_EQ(listed.tokens_size(), 1);
  EXPECT_EQ(listed.tokens(0).id(), minted.id());
  EXPECT_EQ(listed.tokens(0).kind(), "viewer");
  EXPECT_EQ(listed.tokens(0).description(), "dashboard");
  EXPECT_EQ(listed.tokens(0).expires_at().seconds(), minted.expires_at().seconds());

  v1::RevokeTokenRequest revoke;
  revoke.set_id(minted.id());
  v1::RevokeTokenResponse revoked;
  {
    grpc::ClientContext ctx;
    grpc::Status s = stub_->RevokeToken(&ctx, revoke, &revoked);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(revoked.revoked().id(), minted.id());
  EXPECT_FALSE(tokens_->Authenticate(minted.token()).has_value());
  {
    grpc::ClientContext ctx;
    EXPECT_EQ(stub_->RevokeToken(&ctx, revoke, &revoked).error_code(), grpc::NOT_FOUND);
  }
  {
    grpc::ClientContext ctx;
    revoke.set_id("not-hex!");
    grpc::Status s = stub_->RevokeToken(&ctx, revoke, &revoked);
    EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("id:"));
  }
}

TEST_F(SupervisorServiceTest, CreateJoinTokenDefaultsToAnHour) {
  grpc::ClientContext ctx;
  v1::CreateJoinTokenResponse resp;
  const auto before = std::chrono::system_clock::now();
  grpc::Status s = stub_->CreateJoinToken(&ctx, v1::CreateJoinTokenRequest{}, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(tokens_->CheckJoinToken(resp.token()).has_value());
  EXPECT_FALSE(tokens_->Authenticate(resp.token()).has_value());
  const int64_t expires = TimeUtil::TimestampToSeconds(resp.expires_at());
  const int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(before.time_since_epoch()).count();
  EXPECT_GE(expires, now + 3600 - 1);
  EXPECT_LE(expires, now + 3600 + 60);

  grpc::ClientContext short_ctx;
  v1::CreateJoinTokenRequest req;
  req.set_ttl_seconds(60);
  ASSERT_TRUE(stub_->CreateJoinToken(&short_ctx, req, &resp).ok());
  EXPECT_LE(TimeUtil::TimestampToSeconds(resp.expires_at()), now + 60 + 60);
}

TEST_F(SupervisorServiceTest, RemoveNodeRevokesItsCertificateAndFreesTheName) {
  const auto not_after = std::chrono::system_clock::now() + 24h;
  ASSERT_TRUE(nodes_->Enroll({.node = "node-a", .serial = "abc123", .not_after = not_after}));
  v1::RemoveNodeRequest req;
  req.set_name("node-a");
  v1::RemoveNodeResponse resp;
  {
    grpc::ClientContext ctx;
    grpc::Status s = stub_->RemoveNode(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(resp.name(), "node-a");
  EXPECT_EQ(resp.revoked_serial(), "abc123");
  EXPECT_FALSE(nodes_->Admit({.node = "node-a", .serial = "abc123", .not_after = not_after}));
  EXPECT_TRUE(nodes_->Enroll({.node = "node-a", .serial = "def456", .not_after = not_after}));
  {
    grpc::ClientContext ctx;
    req.set_name("node-z");
    EXPECT_EQ(stub_->RemoveNode(&ctx, req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext ctx;
    req.set_name("Bad Name");
    EXPECT_EQ(stub_->RemoveNode(&ctx, req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  StopServer();
  StartServer(nullptr);
  {
    grpc::ClientContext ctx;
    req.set_name("node-a");
    EXPECT_EQ(stub_->RemoveNode(&ctx, req, &resp).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
  }
}

// Every change an admin makes through the API is in the event log with who made it (here a
// server without authentication, so nobody can be named and the log says so).
TEST_F(SupervisorServiceTest, EveryChangeIsLoggedWithItsActor) {
  ConnectNode("node-a", "a");
  ASSERT_TRUE(nodes_->Enroll(
      {.node = "node-a", .serial = "abc123", .not_after = std::chrono::system_clock::now() + 24h}));
  auto call = [&](auto method, const auto& request, auto* response) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    grpc::Status s = ((*stub_).*method)(&ctx, request, response);
    EXPECT_TRUE(s.ok()) << s.error_message();
  };
  v1::Service service;
  ASSERT_TRUE(Create(Spec("web", 1), &service).ok());
  v1::ScaleServiceRequest scale;
  scale.set_name("web");
  scale.set_replicas(2);
  call(&v1::Supervisor::Stub::ScaleService, scale, &service);
  v1::SetAutoscaleRequest autoscale;
  autoscale.set_name("web");
  autoscale.mutable_policy()->set_metric("cpu");
  autoscale.mutable_policy()->set_min_replicas(1);
  autoscale.mutable_policy()->set_max_replicas(3);
  autoscale.mutable_policy()->set_target(50);
  call(&v1::Supervisor::Stub::SetAutoscale, autoscale, &service);
  v1::DeleteServiceRequest remove;
  remove.set_name("web");
  v1::DeleteServiceResponse removed;
  call(&v1::Supervisor::Stub::DeleteService, remove, &removed);
  v1::DrainNodeRequest drain;
  drain.set_name("node-a");
  v1::Node node;
  call(&v1::Supervisor::Stub::DrainNode, drain, &node);
  v1::UndrainNodeRequest undrain;
  undrain.set_name("node-a");
  call(&v1::Supervisor::Stub::UndrainNode, undrain, &node);
  v1::CreateTokenRequest mint;
  mint.set_role(v1::ROLE_VIEWER);
  v1::CreateTokenResponse minted;
  call(&v1::Supervisor::Stub::CreateToken, mint, &minted);
  v1::RevokeTokenRequest revoke;
  revoke.set_id(minted.id());
  v1::RevokeTokenResponse revoked;
  call(&v1::Supervisor::Stub::RevokeToken, revoke, &revoked);
  v1::CreateJoinTokenResponse join;
  call(&v1::Supervisor::Stub::CreateJoinToken, v1::CreateJoinTokenRequest(), &join);
  v1::RemoveNodeRequest rm;
  rm.set_name("node-a");
  v1::RemoveNodeResponse rm_response;
  call(&v1::Supervisor::Stub::RemoveNode, rm, &rm_response);

  auto events = store_.EventsSince(0, 1000);
  ASSERT_TRUE(events.has_value());
  std::set<ClusterEventType> logged;
  for (const ClusterEvent& e : *events) {
    if (e.actor.empty()) continue;  // the supervisor's own: placement, the node joining
    EXPECT_EQ(e.actor, "unauthenticated (--insecure)") << e.message;
    logged.insert(e.type);
  }
  EXPECT_EQ(logged, (std::set<ClusterEventType>{
                        ClusterEventType::kServiceCreated, ClusterEventType::kServiceScaled,
                        ClusterEventType::kServiceDeleted, ClusterEventType::kNodeDrained,
                        ClusterEventType::kNodeUndrained, ClusterEventType::kTokenCreated,
                        ClusterEventType::kTokenRevoked, ClusterEventType::kJoinTokenCreated,
                        ClusterEventType::kNodeRemoved}));
  for (const ClusterEvent& e : *events) {
    if (e.type == ClusterEventType::kTokenCreated) {
      EXPECT_NE(e.message.find(minted.id()), std::string::npos) << e.message;
    }
  }
}

TEST_F(SupervisorServiceTest, WithoutATokenStoreMintingIsAFailedPrecondition) {
  StopServer();
  StartServer(nullptr);
  {
    grpc::ClientContext ctx;
    v1::CreateTokenRequest req;
    req.set_role(v1::ROLE_ADMIN);
    v1::CreateTokenResponse resp;
    EXPECT_EQ(stub_->CreateToken(&ctx, req, &resp).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
  }
  {
    grpc::ClientContext ctx;
    v1::CreateJoinTokenResponse resp;
    EXPECT_EQ(stub_->CreateJoinToken(&ctx, v1::CreateJoinTokenRequest{}, &resp).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
  }
}

}  // namespace
}  // namespace phoenix::supervisor::api
