#include "supervisor/api/enrollment_service.h"
#include "supervisor/api/token_review_service.h"

#include <fstream>
#include <mutex>

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include "proto/support/pki.h"
#include "supervisor/auth/authorizer.h"
#include "supervisor/auth/testing/secure_server.h"

namespace phoenix::supervisor::api {
namespace {

namespace v1 = phoenix::v1;
using auth::testing::CallContext;

class RecordingLink final : public v1::AgentLink::Service {
 public:
  std::mutex mu;
  std::vector<std::string> common_names;
  grpc::Status Connect(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<v1::SupervisorMessage, v1::AgentMessage>*) override {
    std::lock_guard lock(mu);
    common_names.push_back(auth::PeerCommonName(*ctx).value_or("<none>"));
    return grpc::Status::OK;
  }
};

class EnrollmentServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ca = auth::LoadCa(server_.dir());
    ASSERT_TRUE(ca.has_value());
    auto nodes = auth::EnrolledNodes::Open(server_.dir() / "nodes");
    ASSERT_TRUE(nodes.has_value()) << nodes.error().message;
    nodes_ = std::move(*nodes);
    enrollment_ = std::make_unique<EnrollmentService>(server_.tokens(), nodes_, *ca, 30);
    review_ = std::make_unique<TokenReviewService>(server_.tokens(), nodes_);
    server_.Start({enrollment_.get(), &link_, review_.get()});
    auto join = server_.tokens()->MintJoinToken(std::chrono::seconds(600));
    ASSERT_TRUE(join.has_value());
    join_token_ = join->token;
  }

  grpc::Status Enroll(const std::string& token, const std::string& node, const std::string& csr_pem,
                      v1::EnrollResponse* response) {
    auto stub = v1::Enrollment::NewStub(server_.Channel());  // no client certificate yet
    auto ctx = CallContext();
    v1::EnrollRequest request;
    request.set_join_token(token);
    request.set_node(node);
    request.set_csr_pem(csr_pem);
    return stub->Enroll(ctx.get(), request, response);
  }

  std::string Csr(const std::string& cn) {
    auto csr = pki::CreateKeyAndCsr(cn);
    PHX_CHECK(csr.has_value());
    key_pem_ = csr->key_pem;
    return csr->csr_pem;
  }

  RecordingLink link_;
  auth::testing::SecureServer server_;
  std::shared_ptr<auth::EnrolledNodes> nodes_;
  std::unique_ptr<EnrollmentService> enrollment_;
  std::unique_ptr<TokenReviewService> review_;
  std::string join_token_;
  std::string key_pem_;
};

TEST(NodeNameTest, Table) {
  for (std::string good : {std::string("a"), std::string("node-1"), std::string("n1.zone-a"),
                           std::string("0abc"), std::string(63, 'a')}) {
    EXPECT_TRUE(IsValidNodeName(good)) << good;
  }
  for (std::string bad :
       {std::string(), std::string("-a"), std::string(".a"), std::string("Node"),
        std::string("a_b"), std::string("a b"), std::string(64, 'a'), std::string("a/b")}) {
    EXPECT_FALSE(IsValidNodeName(bad)) << bad;
  }
}

TEST_F(EnrollmentServiceTest, GoodJoinTokenGetsACertificateThatWorksForAgentLink) {
  v1::EnrollResponse response;
  grpc::Status status = Enroll(join_token_, "node-a", Csr("node-a"), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.ca_pem(), server_.server_tls().ca_pem);
  EXPECT_TRUE(
      pki::VerifyCertificate(response.ca_pem(), response.certificate_pem(), pki::Purpose::kClient)
          .has_value());

  auto stub = v1::AgentLink::NewStub(server_.Channel(response.certificate_pem(), key_pem_));
  auto ctx = CallContext();
  auto stream = stub->Connect(ctx.get());
  stream->WritesDone();
  v1::SupervisorMessage msg;
  while (stream->Read(&msg)) {
  }
  grpc::Status link = stream->Finish();
  EXPECT_TRUE(link.ok()) << link.error_message();
  std::lock_guard lock(link_.mu);
  EXPECT_EQ(link_.common_names, std::vector<std::string>{"node-a"});
}

TEST_F(EnrollmentServiceTest, AJoinTokenEnrollsAsManyNodesAsItsUsesAndNoMore) {
  v1::EnrollResponse response;
  EXPECT_TRUE(Enroll(join_token_, "node-a", Csr("node-a"), &response).ok());
  grpc::Status reused = Enroll(join_token_, "node-b", Csr("node-b"), &response);
  EXPECT_EQ(reused.error_code(), grpc::StatusCode::UNAUTHENTICATED)
      << "a single-use token (the default) enrolled a second node";

  auto two = server_.tokens()->MintJoinToken(std::chrono::seconds(600), 2);
  ASSERT_TRUE(two.has_value());
  EXPECT_TRUE(Enroll(two->token, "node-c", Csr("node-c"), &response).ok());
  EXPECT_TRUE(Enroll(two->token, "node-d", Csr("node-d"), &response).ok());
  EXPECT_EQ(Enroll(two->token, "node-e", Csr("node-e"), &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

// A join token must not take over a live node by enrolling its name (issue 11, item 7).
TEST_F(EnrollmentServiceTest, AnEnrolledNameIsNotEnrolledAgainUntilRemoved) {
  v1::EnrollResponse response;
  ASSERT_TRUE(Enroll(join_token_, "node-a", Csr("node-a"), &response).ok());
  auto thief = server_.tokens()->MintJoinToken(std::chrono::seconds(600));
  ASSERT_TRUE(thief.has_value());
  grpc::Status taken = Enroll(thief->token, "node-a", Csr("node-a"), &response);
  EXPECT_EQ(taken.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_NE(taken.error_message().find("node rm node-a"), std::string::npos)
      << taken.error_message();
  // The refusal took no use: the token still enrolls a new name.
  EXPECT_TRUE(Enroll(thief->token, "node-b", Csr("node-b"), &response).ok());
  // After `node rm`, the name can be enrolled again (a reinstalled host).
  ASSERT_TRUE(nodes_->Remove("node-a"));
  auto again = server_.tokens()->MintJoinToken(std::chrono::seconds(600));
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(Enroll(again->token, "node-a", Csr("node-a"), &response).ok());
  auto serial = pki::CertificateSerial(response.certificate_pem());
  ASSERT_TRUE(serial.has_value());
  auto listed = nodes_->List();
  ASSERT_TRUE(listed.has_value());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ(listed->at(0).node, "node-a");
  EXPECT_EQ(listed->at(0).serial, *serial);
}

// Certificates are short-lived and renewed with the current one (issue 11, item 7).
TEST_F(EnrollmentServiceTest, ANodeRenewsWithItsCurrentCertificateAndTheOldOneIsRevoked) {
  v1::EnrollResponse enrolled;
  ASSERT_TRUE(Enroll(join_token_, "node-a", Csr("node-a"), &enrolled).ok());
  const std::string key = key_pem_;
  auto not_after = pki::CertificateNotAfter(enrolled.certificate_pem());
  ASSERT_TRUE(not_after.has_value());
  EXPECT_LE(*not_after - std::chrono::system_clock::now(), std::chrono::hours(24 * 30));

  auto renew = [&](const std::string& cert_pem, const std::string& csr_pem,
                   v1::EnrollResponse* response) {
    auto stub = v1::Enrollment::NewStub(server_.Channel(cert_pem, key));
    auto ctx = CallContext();
    v1::RenewRequest request;
    request.set_csr_pem(csr_pem);
    return stub->Renew(ctx.get(), request, response);
  };
  auto csr = pki::CreateCsr(key, "node-a");
  ASSERT_TRUE(csr.has_value());
  v1::EnrollResponse renewed;
  grpc::Status ok = renew(enrolled.certificate_pem(), *csr, &renewed);
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_NE(*pki::CertificateSerial(renewed.certificate_pem()),
            *pki::CertificateSerial(enrolled.certificate_pem()));
  EXPECT_TRUE(pki::CheckKeyMatchesCertificate(key, renewed.certificate_pem()).has_value());
  EXPECT_TRUE(auth::AdmitCertificate(*nodes_, "node-a", renewed.certificate_pem()).has_value());
  EXPECT_FALSE(auth::AdmitCertificate(*nodes_, "node-a", enrolled.certificate_pem()).has_value());

  // The old certificate renews nothing any more; nor does a caller without one.
  v1::EnrollResponse again;
  EXPECT_EQ(renew(enrolled.certificate_pem(), *csr, &again).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  auto anonymous = v1::Enrollment::NewStub(server_.Channel());
  auto ctx = CallContext();
  v1::RenewRequest request;
  request.set_csr_pem(*csr);
  EXPECT_EQ(anonymous->Renew(ctx.get(), request, &again).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // A CSR for another name is refused, naming the field.
  auto other = pki::CreateCsr(key, "node-b");
  ASSERT_TRUE(other.has_value());
  grpc::Status wrong = renew(renewed.certificate_pem(), *other, &again);
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(EnrollmentServiceTest, ARefusedRequestTakesNoUse) {
  v1::EnrollResponse response;
  EXPECT_EQ(Enroll(join_token_, "node-a", "garbage", &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Enroll(join_token_, "Bad_Name", Csr("node-a"), &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(Enroll(join_token_, "node-a", Csr("node-a"), &response).ok());
}

TEST_F(EnrollmentServiceTest, BadJoinTokensAreUnauthenticated) {
  v1::EnrollResponse response;
  for (const std::string& token :
       {std::string(), std::string("phx_join_nope"), server_.init().admin_token}) {
    grpc::Status status = Enroll(token, "node-a", Csr("node-a"), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << token;
  }
  // The token is checked first: a bad token with a bad node name says nothing about the name.
  EXPECT_EQ(Enroll("phx_join_nope", "BAD NAME", "", &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(response.certificate_pem().empty());
}

TEST_F(EnrollmentServiceTest, ExpiredJoinTokenIsUnauthenticated) {
  const std::string expired = "phx_join_expired-for-the-test";
  unsigned char md[32];
  unsigned int len = 0;
  ASSERT_EQ(EVP_Digest(expired.data(), expired.size(), md, &len, EVP_sha256(), nullptr), 1);
  std::string hex;
  for (unsigned i = 0; i < len; ++i) {
    char buf[3];
    std::snprintf(buf, sizeof(buf), "%02x", md[i]);
    hex += buf;
  }
  auto past = std::chrono::duration_cast<std::chrono::seconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count() -
              5;
  std::ofstream(server_.init().paths.tokens, std::ios::app)
      << hex << " join " << past << " expired\n";
  v1::EnrollResponse response;
  EXPECT_EQ(Enroll(expired, "node-a", Csr("node-a"), &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(EnrollmentServiceTest, InvalidNodeNameNamesTheField) {
  v1::EnrollResponse response;
  grpc::Status status = Enroll(join_token_, "Node_A", Csr("node-a"), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(status.error_message().starts_with("node: ")) << status.error_message();
}

TEST_F(EnrollmentServiceTest, CsrMustBeForTheNodeAndWellFormed) {
  v1::EnrollResponse response;
  grpc::Status other_cn = Enroll(join_token_, "node-a", Csr("node-b"), &response);
  EXPECT_EQ(other_cn.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(other_cn.error_message().starts_with("csr_pem: ")) << other_cn.error_message();
  grpc::Status garbage = Enroll(join_token_, "node-a", "garbage", &response);
  EXPECT_EQ(garbage.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(garbage.error_message().starts_with("csr_pem: ")) << garbage.error_message();
}

// An agent asks who a bearer token presented to its TCP API is (issue 11, item 2).
TEST_F(EnrollmentServiceTest, AnEnrolledNodeLearnsWhoATokenIsAndNobodyElseDoes) {
  v1::EnrollResponse enrolled;
  ASSERT_TRUE(Enroll(join_token_, "node-a", Csr("node-a"), &enrolled).ok());
  auto viewer = server_.tokens()->Mint(auth::Role::kViewer, "reader");
  ASSERT_TRUE(viewer.has_value());
  auto review = [&](const std::shared_ptr<grpc::Channel>& channel, const std::string& token,
                    v1::ReviewTokenResponse* response) {
    auto ctx = CallContext();
    v1::ReviewTokenRequest request;
    request.set_token(token);
    return v1::TokenReview::NewStub(channel)->Review(ctx.get(), request, response);
  };
  const auto node = server_.Channel(enrolled.certificate_pem(), key_pem_);

  v1::ReviewTokenResponse answer;
  grpc::Status good = review(node, *viewer, &answer);
  ASSERT_TRUE(good.ok()) << good.error_message();
  EXPECT_EQ(answer.role(), v1::ROLE_VIEWER);
  EXPECT_EQ(answer.token_id(), *auth::TokenStore::IdOf(*viewer));
  EXPECT_EQ(answer.cache_for_ms(), 30'000u);

  EXPECT_EQ(review(node, "phx_admin_" + std::string(64, '0'), &answer).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(review(node, join_token_, &answer).error_code(), grpc::StatusCode::UNAUTHENTICATED)
      << "a join token is not a bearer token";
  EXPECT_EQ(review(node, std::string(300, 'x'), &answer).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(review(server_.Channel(), *viewer, &answer).error_code(),
            grpc::StatusCode::UNAUTHENTICATED)
      << "without a client certificate nobody may probe tokens";

  ASSERT_TRUE(nodes_->Remove("node-a"));
  grpc::Status removed = review(node, *viewer, &answer);
  EXPECT_NE(removed.error_code(), grpc::StatusCode::OK) << "a removed node learns nothing";
}

}  // namespace
}  // namespace phoenix::supervisor::api
