#include "agent/link/enrollment.h"

#include <sys/stat.h>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "agent/testing/temp_dir.h"
#include "phoenix/v1/supervisor.grpc.pb.h"
#include "proto/support/pki.h"
#include "proto/support/tls.h"

namespace phoenix::agent::link {
namespace {

using ::testing::HasSubstr;

// Enrollment and an AgentLink that answers Welcome with the caller's certificate CN as the
// supervisor version, both on one TLS port like the real supervisor.
class FakeEnrollment final : public v1::Enrollment::Service {
 public:
  FakeEnrollment(pki::KeyAndCert ca, std::string token) : ca_(std::move(ca)), token_(token) {}
  grpc::Status Enroll(grpc::ServerContext*, const v1::EnrollRequest* req,
                      v1::EnrollResponse* resp) override {
    ++calls;
    if (req->join_token() != token_) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown join token");
    }
    auto cert = pki::SignClientCsr(ca_, req->csr_pem(), req->node(), 30);
    if (!cert) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, cert.error().ToString());
    resp->set_certificate_pem(*cert);
    resp->set_ca_pem(ca_.cert_pem);
    return grpc::Status::OK;
  }
  // Signs the CSR for the common name of the caller's verified client certificate.
  grpc::Status Renew(grpc::ServerContext* ctx, const v1::RenewRequest* req,
                     v1::EnrollResponse* resp) override {
    ++renewals;
    auto names = ctx->auth_context()->FindPropertyValues("x509_common_name");
    if (names.empty()) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no certificate");
    auto cert =
        pki::SignClientCsr(ca_, req->csr_pem(), std::string(names[0].data(), names[0].size()), 30);
    if (!cert) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, cert.error().ToString());
    resp->set_certificate_pem(*cert);
    resp->set_ca_pem(ca_.cert_pem);
    return grpc::Status::OK;
  }
  int calls = 0;
  int renewals = 0;

 private:
  pki::KeyAndCert ca_;
  std::string token_;
};

class EchoLink final : public v1::AgentLink::Service {
 public:
  grpc::Status Connect(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<v1::SupervisorMessage, v1::AgentMessage>* stream) override {
    auto cn = ctx->auth_context()->FindPropertyValues("x509_common_name");
    v1::SupervisorMessage m;
    m.mutable_welcome()->set_supervisor_version(
        cn.empty() ? "" : std::string(cn[0].data(), cn[0].size()));
    stream->Write(m);
    return grpc::Status::OK;
  }
};

class AgentEnrollmentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ca = pki::CreateCa("test-ca", 30);
    ASSERT_TRUE(ca) << ca.error().ToString();
    ca_ = *ca;
    auto server_cert = pki::IssueServerCert(ca_, "supervisor", {"127.0.0.1", "localhost"}, 30);
    ASSERT_TRUE(server_cert) << server_cert.error().ToString();
    auto creds =
        tls::MakeServerCredentials({ca_.cert_pem, server_cert->cert_pem, server_cert->key_pem});
    ASSERT_TRUE(creds) << creds.error().ToString();
    enrollment_ = std::make_unique<FakeEnrollment>(ca_, "join-123");
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", *creds, &port_);
    builder.RegisterService(enrollment_.get());
    builder.RegisterService(&link_);
    server_ = builder.BuildAndStart();
    ASSERT_TRUE(server_ && port_ != 0);
    ca_file_ = dir_.path() / "supervisor-ca.pem";
    ASSERT_TRUE(pki::WriteFileAtomic(ca_file_, ca_.cert_pem, 0644));
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }

  EnrollmentOptions Options(std::string token = "join-123") {
    EnrollmentOptions o;
    o.target = "127.0.0.1:" + std::to_string(port_);
    o.node = "node-7";
    o.pki_dir = dir_.path() / "state" / "pki";
    o.join_token = std::move(token);
    o.supervisor_ca = ca_file_;
    return o;
  }

  std::string WelcomeVersion(const std::shared_ptr<grpc::ChannelCredentials>& creds) {
    auto stub = v1::AgentLink::NewStub(grpc::CreateChannel(Options().target, creds));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto stream = stub->Connect(&ctx);
    v1::SupervisorMessage m;
    if (!stream->Read(&m)) return "<no welcome: " + stream->Finish().error_message() + ">";
    stream->Finish();
    return m.welcome().supervisor_version();
  }

  testing::TempDir dir_;
  pki::KeyAndCert ca_;
  std::filesystem::path ca_file_;
  std::unique_ptr<FakeEnrollment> enrollment_;
  EchoLink link_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(AgentEnrollmentTest, EnrollsOnceStoresThePkiAndConnectsWithMutualTls) {
  auto o = Options();
  EXPECT_FALSE(IsEnrolled(o.pki_dir));
  auto creds = LinkCredentials(o);
  ASSERT_TRUE(creds) << creds.error().ToString();
  EXPECT_TRUE(IsEnrolled(o.pki_dir));
  EXPECT_EQ(enrollment_->calls, 1);
  struct stat st {};
  ASSERT_EQ(::stat((o.pki_dir / "agent.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto cn = pki::CertificateCommonName(tls::ReadFile(o.pki_dir / "agent.pem").value());
  EXPECT_EQ(cn.value_or(""), "node-7");
  EXPECT_EQ(tls::ReadFile(o.pki_dir / "ca.pem").value(), ca_.cert_pem);
  EXPECT_EQ(WelcomeVersion(*creds), "node-7") << "the server saw our client certificate";

  // Enrolled: later dials need neither the token nor the enrollment service.
  auto again = LinkCredentials(Options(""));
  ASSERT_TRUE(again) << again.error().ToString();
  EXPECT_EQ(enrollment_->calls, 1);
  EXPECT_EQ(WelcomeVersion(*again), "node-7");
}

TEST(RenewalDueTest, InTheLastThirdOfTheLifetime) {
  auto ca = pki::CreateCa("test-ca", 30);
  ASSERT_TRUE(ca);
  auto csr = pki::CreateKeyAndCsr("node-7");
  ASSERT_TRUE(csr);
  auto cert = pki::SignClientCsr(*ca, csr->csr_pem, "node-7", 30);
  ASSERT_TRUE(cert);
  const auto now = std::chrono::system_clock::now();
  using Days = std::chrono::days;
  EXPECT_FALSE(RenewalDue(*cert, now));
  EXPECT_FALSE(RenewalDue(*cert, now + Days(19)));
  EXPECT_TRUE(RenewalDue(*cert, now + Days(21)));
  EXPECT_TRUE(RenewalDue(*cert, now + Days(31)));  // expired
  EXPECT_TRUE(RenewalDue("not a certificate", now));
}

TEST_F(AgentEnrollmentTest, ADueCertificateIsRenewedForTheSameKeyBeforeTheDial) {
  auto o = Options();
  ASSERT_TRUE(LinkCredentials(o));
  const std::string key = tls::ReadFile(o.pki_dir / "agent.key").value();
  const std::string first = tls::ReadFile(o.pki_dir / "agent.pem").value();
  EXPECT_EQ(enrollment_->renewals, 0);
  o.now = [] { return std::chrono::system_clock::now() + std::chrono::days(25); };
  auto creds = LinkCredentials(o);
  ASSERT_TRUE(creds) << creds.error().ToString();
  EXPECT_EQ(enrollment_->renewals, 1);
  const std::string second = tls::ReadFile(o.pki_dir / "agent.pem").value();
  EXPECT_NE(pki::CertificateSerial(second).value(), pki::CertificateSerial(first).value());
  EXPECT_EQ(tls::ReadFile(o.pki_dir / "agent.key").value(), key);  // same key
  EXPECT_EQ(WelcomeVersion(*creds), "node-7");
  EXPECT_TRUE(RenewalDueAt(o.pki_dir) == false);

  // A supervisor that cannot renew: the dial goes on with the current certificate.
  server_->Shutdown(std::chrono::system_clock::now());
  server_.reset();
  o.target = "127.0.0.1:1";
  auto fallback = LinkCredentials(o);
  EXPECT_TRUE(fallback) << fallback.error().ToString();
  EXPECT_EQ(tls::ReadFile(o.pki_dir / "agent.pem").value(), second);
}

TEST_F(AgentEnrollmentTest, RejectedJoinTokenLeavesNothingBehind) {
  auto o = Options("wrong");
  auto creds = LinkCredentials(o);
  ASSERT_FALSE(creds);
  EXPECT_EQ(creds.error().code, ErrorCode::kUnauthenticated);
  EXPECT_THAT(creds.error().message, HasSubstr("unknown join token"));
  EXPECT_FALSE(IsEnrolled(o.pki_dir));
}

TEST_F(AgentEnrollmentTest, NotEnrolledWithoutATokenIsAClearError) {
  auto creds = LinkCredentials(Options(""));
  ASSERT_FALSE(creds);
  EXPECT_THAT(creds.error().message, HasSubstr("--join-token"));
  EXPECT_EQ(enrollment_->calls, 0);
}

}  // namespace
}  // namespace phoenix::agent::link
