// The link over real mutual TLS: the node name comes from the verified client certificate.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "proto/support/pki.h"
#include "proto/support/tls.h"
#include "supervisor/agents/link_service.h"
#include "supervisor/auth/enrolled_nodes.h"

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

    service_ = std::make_unique<AgentLinkService>(
        handler_, LinkSecurity::kMutualTls, "test",
        [this](const std::string& node, const std::string& cert_pem) -> Result<void> {
          if (!nodes_) return {};
          return auth::AdmitCertificate(*nodes_, node, cert_pem);
        });
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", *credentials, &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_TRUE(server_ != nullptr);
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }

  // A client certificate for `node` from the test CA.
  pki::KeyAndCert Issue(const std::string& node) {
    auto csr = pki::CreateKeyAndCsr(node);
    EXPECT_TRUE(csr.has_value());
    auto cert = pki::SignClientCsr(ca_, csr->csr_pem, node, 1);
    EXPECT_TRUE(cert.has_value());
    return {.key_pem = csr->key_pem, .cert_pem = cert.value_or("")};
  }
  std::unique_ptr<v1::AgentLink::Stub> StubWith(const pki::KeyAndCert& client) {
    auto channel = grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(port_),
        tls::MakeChannelCredentials(
            {.ca_pem = ca_.cert_pem, .cert_pem = client.cert_pem, .key_pem = client.key_pem}));
    return v1::AgentLink::NewStub(channel);
  }
  // A stub whose channel presents a client certificate for `node`.
  std::unique_ptr<v1::AgentLink::Stub> StubFor(const std::string& node) {
    return StubWith(Issue(node));
  }
  // Connects, says hello as `node`, returns the final status (OK once welcomed).
  grpc::Status HelloWith(const pki::KeyAndCert& client, const std::string& node) {
    auto stub = StubWith(client);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 20s);
    auto stream = stub->Connect(&context);
    stream->Write(Hello(node));  // may fail: the server can finish before reading
    v1::SupervisorMessage message;
    if (stream->Read(&message) && message.has_welcome()) {
      context.TryCancel();
      return grpc::Status::OK;
    }
    return stream->Finish();
  }

  static v1::AgentMessage Hello(const std::string& name) {
    v1::AgentMessage message;
    message.mutable_hello()->mutable_node()->set_name(name);
    return message;
  }

  pki::KeyAndCert ca_;
  std::shared_ptr<auth::EnrolledNodes> nodes_;  // null: every certificate of the CA is admitted
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

// A certificate the CA signed is not enough: only the node's enrolled one is admitted, and a
// removed node's certificate never again (issue 11, item 7).
TEST_F(LinkServiceTlsTest, OnlyTheNodesCurrentCertificateIsAdmittedAndRevokedOnesNever) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("link-tls-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto opened = auth::EnrolledNodes::Open(dir / "nodes");
  ASSERT_TRUE(opened.has_value());
  nodes_ = std::move(*opened);
  const pki::KeyAndCert enrolled = Issue("n1");
  ASSERT_TRUE(nodes_->Enroll({.node = "n1",
                              .serial = *pki::CertificateSerial(enrolled.cert_pem),
                              .not_after = *pki::CertificateNotAfter(enrolled.cert_pem)}));
  EXPECT_TRUE(HelloWith(enrolled, "n1").ok());

  // Another certificate for n1 from the same CA (as a second enrollment of the name would have
  // been, before enrollment refused taken names).
  grpc::Status other = HelloWith(Issue("n1"), "n1");
  EXPECT_EQ(other.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(other.error_message(), HasSubstr("not the node's current certificate"));

  ASSERT_TRUE(nodes_->Remove("n1"));
  grpc::Status revoked = HelloWith(enrolled, "n1");
  EXPECT_EQ(revoked.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(revoked.error_message(), HasSubstr("revoked"));
  EXPECT_EQ(handler_.Connected(), std::vector<std::string>{"n1"});
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace phoenix::supervisor::agents
