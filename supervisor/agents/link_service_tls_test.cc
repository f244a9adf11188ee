// The link over real mutual TLS: the node name comes from the verified client certificate.
#include <chrono>
#include <memory>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "proto/support/pki.h"
#include "proto/support/tls.h"
#include "supervisor/agents/link_service.h"

namespace phoenix::supervisor::agents {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

class CountingHandler : public AgentLinkHandler {
 public:
  void AgentConnected(AgentSession*, AgentHello hello) override {
    std::lock_guard lock(mu_);
    connected_.push_back(hello.node.name);
  }
  void AgentReported(AgentSession*, AgentReport) override {}
  void AgentGone(AgentSession*) override {}
  std::chrono::milliseconds HeartbeatInterval() const override { return 1000ms; }
  std::vector<std::string> Connected() {
    std::lock_guard lock(mu_);
    return connected_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> connected_;
};

class LinkServiceTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ca = pki::CreateCa("phoenix-test-ca", 1);
    ASSERT_TRUE(ca.has_value()) << ca.error().ToString();
    ca_ = *ca;
    auto server_cert = pki::IssueServerCert(ca_, "supervisor", {"127.0.0.1"}, 1);
    ASSERT_TRUE(server_cert.has_value()) << server_cert.error().ToString();
    auto credentials = tls::MakeServerCredentials({.ca_pem = ca_.cert_pem,
                                                   .cert_pem = server_cert->cert_pem,
                                                   .key_pem = server_cert->key_pem});
    ASSERT_TRUE(credentials.has_value()) << credentials.error().ToString();

    service_ = std::make_unique<AgentLinkService>(handler_, LinkSecurity::kMutualTls, "test");
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", *credentials, &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_TRUE(server_ != nullptr);
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }

  // A stub whose channel presents a client certificate for `node`.
  std::unique_ptr<v1::AgentLink::Stub> StubFor(const std::string& node) {
    auto csr = pki::CreateKeyAndCsr(node);
    EXPECT_TRUE(csr.has_value());
    auto cert = pki::SignClientCsr(ca_, csr->csr_pem, node, 1);
    EXPECT_TRUE(cert.has_value());
    auto channel = grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(port_),
        tls::MakeChannelCredentials(
            {.ca_pem = ca_.cert_pem, .cert_pem = *cert, .key_pem = csr->key_pem}));
    return v1::AgentLink::NewStub(channel);
  }

  static v1::AgentMessage Hello(const std::string& name) {
    v1::AgentMessage message;
    message.mutable_hello()->mutable_node()->set_name(name);
    return message;
  }

  pki::KeyAndCert ca_;
  int port_ = 0;
  CountingHandler handler_;
  std::unique_ptr<AgentLinkService> service_;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(LinkServiceTlsTest, HelloMatchingTheCertificateIsWelcomed) {
  auto stub = StubFor("n1");
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 20s);
  auto stream = stub->Connect(&context);
  ASSERT_TRUE(stream->Write(Hello("n1")));
  v1::SupervisorMessage welcome;
  ASSERT_TRUE(stream->Read(&welcome));
  EXPECT_TRUE(welcome.has_welcome());
  EXPECT_EQ(handler_.Connected(), std::vector<std::string>{"n1"});
  context.TryCancel();
}

TEST_F(LinkServiceTlsTest, HelloNamingAnotherNodeIsPermissionDenied) {
  auto stub = StubFor("n1");
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 20s);
  auto stream = stub->Connect(&context);
  ASSERT_TRUE(stream->Write(Hello("n2")));
  v1::SupervisorMessage message;
  EXPECT_FALSE(stream->Read(&message));
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("\"n2\""));
  EXPECT_THAT(status.error_message(), HasSubstr("\"n1\""));
  EXPECT_TRUE(handler_.Connected().empty());
}

TEST_F(LinkServiceTlsTest, ServerAuthenticatedOnlyIsUnauthenticated) {
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                     tls::MakeChannelCredentials({.ca_pem = ca_.cert_pem}));
  auto stub = v1::AgentLink::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 20s);
  auto stream = stub->Connect(&context);
  stream->Write(Hello("n1"));  // may fail: the server can finish before reading
  v1::SupervisorMessage message;
  EXPECT_FALSE(stream->Read(&message));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(handler_.Connected().empty());
}

}  // namespace
}  // namespace phoenix::supervisor::agents
