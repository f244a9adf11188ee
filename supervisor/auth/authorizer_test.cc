#include "supervisor/auth/authorizer.h"

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>

#include <google/protobuf/descriptor.h>
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>

#include "phoenix/v1/supervisor.grpc.pb.h"
#include "proto/support/pki.h"
#include "supervisor/auth/testing/secure_server.h"

namespace phoenix::supervisor::auth {
namespace {

namespace v1 = phoenix::v1;
using testing::CallContext;
using testing::SecureServer;

// Answers OK to everything and records the role the Authorizer granted.
class OkSupervisor final : public v1::Supervisor::Service {
 public:
  std::atomic<int> calls{0};
  std::mutex mu;
  std::optional<std::string> last_token;

#define PHX_OK_METHOD(Name, Req, Resp)                                              \
  grpc::Status Name(grpc::ServerContext* ctx, const v1::Req*, v1::Resp*) override { \
    Record(*ctx);                                                                   \
    return grpc::Status::OK;                                                        \
  }
  PHX_OK_METHOD(CreateService, CreateServiceRequest, Service)
  PHX_OK_METHOD(GetService, GetServiceRequest, Service)
  PHX_OK_METHOD(ListServices, ListServicesRequest, ListServicesResponse)
  PHX_OK_METHOD(ScaleService, ScaleServiceRequest, Service)
  PHX_OK_METHOD(SetAutoscale, SetAutoscaleRequest, Service)
  PHX_OK_METHOD(DeleteService, DeleteServiceRequest, DeleteServiceResponse)
  PHX_OK_METHOD(ListNodes, ListNodesRequest, ListNodesResponse)
  PHX_OK_METHOD(GetNode, GetNodeRequest, Node)
  PHX_OK_METHOD(DrainNode, DrainNodeRequest, Node)
  PHX_OK_METHOD(UndrainNode, UndrainNodeRequest, Node)
  PHX_OK_METHOD(CreateToken, CreateTokenRequest, CreateTokenResponse)
  PHX_OK_METHOD(CreateJoinToken, CreateJoinTokenRequest, CreateJoinTokenResponse)
  PHX_OK_METHOD(ListTokens, ListTokensRequest, ListTokensResponse)
  PHX_OK_METHOD(RevokeToken, RevokeTokenRequest, RevokeTokenResponse)
  PHX_OK_METHOD(RemoveNode, RemoveNodeRequest, RemoveNodeResponse)
#undef PHX_OK_METHOD
  grpc::Status WatchEvents(grpc::ServerContext* ctx, const v1::WatchClusterEventsRequest*,
                           grpc::ServerWriter<v1::ClusterEvent>*) override {
    Record(*ctx);
    return grpc::Status::OK;
  }

 private:
  void Record(const grpc::ServerContext& ctx) {
    std::lock_guard lock(mu);
    ++calls;
    last_token = CallerToken(ctx);
  }
};

// Records the client certificate's CN the handler sees.
class RecordingLink final : public v1::AgentLink::Service {
 public:
  std::mutex mu;
  std::vector<std::string> common_names;
  grpc::Status Connect(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<v1::SupervisorMessage, v1::AgentMessage>*) override {
    std::lock_guard lock(mu);
    common_names.push_back(PeerCommonName(*ctx).value_or("<none>"));
    return grpc::Status::OK;
  }
};

const google::protobuf::ServiceDescriptor* ServiceDescriptor(const std::string& name) {
  const auto* service = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(name);
  PHX_CHECK(service != nullptr);
  return service;
}

// Every unary Supervisor method, called through the generated stub.
using Call = std::function<grpc::Status(v1::Supervisor::Stub&, grpc::ClientContext*)>;
std::map<std::string, Call> SupervisorCalls() {
  std::map<std::string, Call> calls;
#define PHX_CALL(Name, Req, Resp)                                      \
  calls[#Name] = [](v1::Supervisor::Stub& s, grpc::ClientContext* c) { \
    v1::Req req;                                                       \
    v1::Resp resp;                                                     \
    return s.Name(c, req, &resp);                                      \
  };
  PHX_CALL(CreateService, CreateServiceRequest, Service)
  PHX_CALL(GetService, GetServiceRequest, Service)
  PHX_CALL(ListServices, ListServicesRequest, ListServicesResponse)
  PHX_CALL(ScaleService, ScaleServiceRequest, Service)
  PHX_CALL(SetAutoscale, SetAutoscaleRequest, Service)
  PHX_CALL(DeleteService, DeleteServiceRequest, DeleteServiceResponse)
  PHX_CALL(ListNodes, ListNodesRequest, ListNodesResponse)
  PHX_CALL(GetNode, GetNodeRequest, Node)
  PHX_CALL(DrainNode, DrainNodeRequest, Node)
  PHX_CALL(UndrainNode, UndrainNodeRequest, Node)
  PHX_CALL(CreateToken, CreateTokenRequest, CreateTokenResponse)
  PHX_CALL(CreateJoinToken, CreateJoinTokenRequest, CreateJoinTokenResponse)
  PHX_CALL(ListTokens, ListTokensRequest, ListTokensResponse)
  PHX_CALL(RevokeToken, RevokeTokenRequest, RevokeTokenResponse)
  PHX_CALL(RemoveNode, RemoveNodeRequest, RemoveNodeResponse)
#undef PHX_CALL
  calls["WatchEvents"] = [](v1::Supervisor::Stub& s, grpc::ClientContext* c) {
    v1::WatchClusterEventsRequest req;
    auto reader = s.WatchEvents(c, req);
    v1::ClusterEvent event;
    while (reader->Read(&event)) {
    }
    return reader->Finish();
  };
  return calls;
}

class AuthorizerTest : public ::testing::Test {
 protected:
  void SetUp() override { server_.Start({&supervisor_, &link_}); }

  std::string Mint(Role role) {
    auto token = server_.tokens()->Mint(role, "test");
    EXPECT_TRUE(token.has_value());
    return token.value_or("");
  }

  grpc::StatusCode CallAs(const std::string& method, const std::string& token) {
    auto stub = v1::Supervisor::NewStub(server_.Channel());
    auto ctx = CallContext(token);
    return SupervisorCalls().at(method)(*stub, ctx.get()).error_code();
  }

  grpc::Status ConnectLink(const std::string& cert_pem, const std::string& key_pem) {
    auto stub = v1::AgentLink::NewStub(server_.Channel(cert_pem, key_pem));
    auto ctx = CallContext();
    auto stream = stub->Connect(ctx.get());
    stream->WritesDone();
    v1::SupervisorMessage msg;
    while (stream->Read(&msg)) {
    }
    return stream->Finish();
  }

  OkSupervisor supervisor_;
  RecordingLink link_;
  SecureServer server_;
};

TEST(MethodRulesTest, EveryRpcOfSupervisorProtoIsInTheTable) {
  const auto* file = google::protobuf::DescriptorPool::generated_pool()->FindFileByName(
      "phoenix/v1/supervisor.proto");
  ASSERT_NE(file, nullptr);
  ASSERT_GE(file->service_count(), 4);
  for (int s = 0; s < file->service_count(); ++s) {
    const auto* service = file->service(s);
    for (int i = 0; i < service->method_count(); ++i) {
      std::string path = "/" + service->full_name() + "/" + service->method(i)->name();
      bool listed = false;
      for (const MethodRule& rule : MethodRules()) listed = listed || rule.method == path;
      EXPECT_TRUE(listed) << path << " has no explicit rule in kMethodRules";
    }
  }
}

TEST(MethodRulesTest, UnknownMethodsFailClosed) {
  EXPECT_EQ(RequirementFor("/phoenix.v1.Supervisor/SomethingNew"), Requirement::kAdmin);
  EXPECT_EQ(RequirementFor("/phoenix.v1.Enrollment/SomethingNew"), Requirement::kAdmin);
  EXPECT_EQ(RequirementFor("/phoenix.v1.AgentLink/SomethingNew"), Requirement::kClientCertificate);
  EXPECT_EQ(RequirementFor("/grpc.health.v1.Health/Check"), Requirement::kViewer);
  EXPECT_EQ(RequirementFor("/phoenix.v1.Supervisor/ListServices"), Requirement::kViewer);
  EXPECT_EQ(RequirementFor("/phoenix.v1.Supervisor/DeleteService"), Requirement::kOperator);
  EXPECT_EQ(RequirementFor("/phoenix.v1.Supervisor/CreateJoinToken"), Requirement::kAdmin);
  EXPECT_EQ(RequirementFor("/phoenix.v1.Enrollment/Enroll"), Requirement::kNone);
}

TEST_F(AuthorizerTest, NoTokenIsUnauthenticated) {
  EXPECT_EQ(CallAs("ListServices", ""), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(supervisor_.calls, 0);
}

TEST_F(AuthorizerTest, UnknownTokenIsUnauthenticated) {
  EXPECT_EQ(CallAs("ListServices", "phx_admin_0000"), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(supervisor_.calls, 0);
}

TEST_F(AuthorizerTest, MalformedAuthorizationHeaderIsUnauthenticated) {
  auto stub = v1::Supervisor::NewStub(server_.Channel());
  auto ctx = CallContext();
  ctx->AddMetadata("authorization", "Basic " + server_.init().admin_token);
  v1::ListServicesResponse resp;
  EXPECT_EQ(stub->ListServices(ctx.get(), {}, &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(AuthorizerTest, JoinTokenIsNotABearerToken) {
  auto join = server_.tokens()->MintJoinToken(std::chrono::seconds(60));
  ASSERT_TRUE(join.has_value());
  EXPECT_EQ(CallAs("ListServices", join->token), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(AuthorizerTest, ViewerReadsButCannotChange) {
  std::string viewer = Mint(Role::kViewer);
  for (const char* read : {"ListServices", "GetService", "ListNodes", "GetNode", "WatchEvents"}) {
    EXPECT_EQ(CallAs(read, viewer), grpc::StatusCode::OK) << read;
  }
  for (const char* change : {"CreateService", "ScaleService", "SetAutoscale", "DeleteService",
                             "DrainNode", "UndrainNode", "CreateToken", "CreateJoinToken"}) {
    EXPECT_EQ(CallAs(change, viewer), grpc::StatusCode::PERMISSION_DENIED) << change;
  }
  EXPECT_EQ(supervisor_.calls, 5);
  std::lock_guard lock(supervisor_.mu);
  EXPECT_EQ(supervisor_.last_token, viewer);
}

TEST_F(AuthorizerTest, PermissionDeniedNamesTheRoles) {
  auto stub = v1::Supervisor::NewStub(server_.Channel());
  auto ctx = CallContext(Mint(Role::kViewer));
  v1::Node node;
  grpc::Status status = stub->DrainNode(ctx.get(), {}, &node);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(status.error_message().find("needs role operator"), std::string::npos)
      << status.error_message();
}

TEST_F(AuthorizerTest, OperatorChangesButCannotMintTokens) {
  std::string op = Mint(Role::kOperator);
  for (const char* method : {"ListServices", "CreateService", "ScaleService", "SetAutoscale",
                             "DeleteService", "DrainNode", "UndrainNode"}) {
    EXPECT_EQ(CallAs(method, op), grpc::StatusCode::OK) << method;
  }
  EXPECT_EQ(CallAs("CreateToken", op), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(CallAs("CreateJoinToken", op), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(CallAs("ListTokens", op), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(CallAs("RevokeToken", op), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(CallAs("RemoveNode", op), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(AuthorizerTest, AdminFromInitMayCallEverything) {
  const std::string& admin = server_.init().admin_token;
  auto calls = SupervisorCalls();
  ASSERT_EQ(static_cast<int>(calls.size()),
            ServiceDescriptor("phoenix.v1.Supervisor")->method_count());
  for (const auto& [method, call] : calls) {
    EXPECT_EQ(CallAs(method, admin), grpc::StatusCode::OK) << method;
  }
  std::lock_guard lock(supervisor_.mu);
  EXPECT_EQ(supervisor_.last_token, admin);
}

// gRPC gives the processor the connection's AuthContext: what one call wrote there, every later
// call on that connection read (an operator's change was logged as an earlier admin's). Each call
// must be its own caller.
TEST_F(AuthorizerTest, EachCallOnOneConnectionIsItsOwnCaller) {
  auto stub = v1::Supervisor::NewStub(server_.Channel());
  const std::string& admin = server_.init().admin_token;
  const std::string op = Mint(Role::kOperator);
  for (const std::string* token : {&admin, &op, &admin, &op}) {
    auto ctx = CallContext(*token);
    v1::ListServicesResponse response;
    ASSERT_TRUE(stub->ListServices(ctx.get(), {}, &response).ok());
    std::lock_guard lock(supervisor_.mu);
    EXPECT_EQ(supervisor_.last_token, *token);
  }
  auto ctx = CallContext(op);
  v1::Node node;
  EXPECT_EQ(stub->DrainNode(ctx.get(), {}, &node).error_code(), grpc::StatusCode::OK);
  auto viewer_ctx = CallContext(Mint(Role::kViewer));
  EXPECT_EQ(stub->DrainNode(viewer_ctx.get(), {}, &node).error_code(),
            grpc::StatusCode::PERMISSION_DENIED)
      << "after an operator's call on the same connection";
}

TEST_F(AuthorizerTest, UnknownSupervisorMethodNeedsAdmin) {
  grpc::GenericStub stub(server_.Channel());
  auto call = [&](const std::string& token) {
    auto ctx = CallContext(token);
    grpc::Slice empty("");  // an empty message; a ByteBuffer without slices is invalid
    grpc::ByteBuffer request(&empty, 1), response;
    std::mutex mu;
    std::condition_variable cv;
    std::optional<grpc::Status> result;
    stub.UnaryCall(ctx.get(), "/phoenix.v1.Supervisor/NotYetInvented", grpc::StubOptions(),
                   &request, &response, [&](grpc::Status s) {
                     std::lock_guard lock(mu);
                     result = s;
                     cv.notify_one();
                   });
    std::unique_lock lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(15), [&] { return result.has_value(); }));
    return result.value_or(grpc::Status(grpc::StatusCode::UNKNOWN, "no answer")).error_code();
  };
  EXPECT_EQ(call(Mint(Role::kOperator)), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(call(server_.init().admin_token), grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(AuthorizerTest, AgentLinkWithoutClientCertificateIsRefused) {
  grpc::Status status = ConnectLink("", "");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  std::lock_guard lock(link_.mu);
  EXPECT_TRUE(link_.common_names.empty());
}

TEST_F(AuthorizerTest, AgentLinkIgnoresBearerTokens) {
  auto stub = v1::AgentLink::NewStub(server_.Channel());
  auto ctx = CallContext(server_.init().admin_token);
  auto stream = stub->Connect(ctx.get());
  stream->WritesDone();
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(AuthorizerTest, AgentLinkWithCertificateFromAnotherCaIsRefusedAtTls) {
  auto other_ca = pki::CreateCa("someone else's CA", 1);
  ASSERT_TRUE(other_ca.has_value());
  auto csr = pki::CreateKeyAndCsr("node-a");
  ASSERT_TRUE(csr.has_value());
  auto cert = pki::SignClientCsr(*other_ca, csr->csr_pem, "node-a", 1);
  ASSERT_TRUE(cert.has_value()) << cert.error().ToString();
  grpc::Status status = ConnectLink(*cert, csr->key_pem);
  // The handshake fails, so the call never becomes an RPC the Authorizer could answer.
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  std::lock_guard lock(link_.mu);
  EXPECT_TRUE(link_.common_names.empty());
}

TEST_F(AuthorizerTest, AgentLinkWithOurCertificateIsAcceptedAndSeesTheNodeName) {
  auto ca = LoadCa(server_.dir());
  ASSERT_TRUE(ca.has_value());
  auto csr = pki::CreateKeyAndCsr("node-a");
  ASSERT_TRUE(csr.has_value());
  auto cert = pki::SignClientCsr(*ca, csr->csr_pem, "node-a", 1);
  ASSERT_TRUE(cert.has_value()) << cert.error().ToString();
  grpc::Status status = ConnectLink(*cert, csr->key_pem);
  EXPECT_TRUE(status.ok()) << status.error_message();
  std::lock_guard lock(link_.mu);
  EXPECT_EQ(link_.common_names, std::vector<std::string>{"node-a"});
}

TEST_F(AuthorizerTest, TheServerCertificateIsNoClientCertificate) {
  // Same CA, but serverAuth only: the TLS layer checks the clientAuth purpose.
  const tls::ServerTls& tls = server_.server_tls();
  grpc::Status status = ConnectLink(tls.cert_pem, tls.key_pem);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  std::lock_guard lock(link_.mu);
  EXPECT_TRUE(link_.common_names.empty());
}

TEST_F(AuthorizerTest, ClientCertificateIsNoSubstituteForAToken) {
  auto ca = LoadCa(server_.dir());
  ASSERT_TRUE(ca.has_value());
  auto csr = pki::CreateKeyAndCsr("node-a");
  ASSERT_TRUE(csr.has_value());
  auto cert = pki::SignClientCsr(*ca, csr->csr_pem, "node-a", 1);
  ASSERT_TRUE(cert.has_value());
  auto stub = v1::Supervisor::NewStub(server_.Channel(*cert, csr->key_pem));
  auto ctx = CallContext();
  v1::ListServicesResponse resp;
  EXPECT_EQ(stub->ListServices(ctx.get(), {}, &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(AuthorizerTest, TokenMintedByAnotherProcessWorksWithoutRestart) {
  // What `phoenix-supervisor join-token` / a second store on the same file does offline.
  auto offline = TokenStore::Open(server_.init().paths.tokens);
  ASSERT_TRUE(offline.has_value());
  auto token = (*offline)->Mint(Role::kOperator, "minted offline");
  ASSERT_TRUE(token.has_value());
  EXPECT_EQ(CallAs("CreateService", *token), grpc::StatusCode::OK);
}

}  // namespace
}  // namespace phoenix::supervisor::auth
