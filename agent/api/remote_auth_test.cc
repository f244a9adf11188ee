#include "agent/api/remote_auth.h"

#include <sys/stat.h>

#include <fstream>
#include <set>

#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include "agent/api/serving_tls.h"
#include "agent/testing/temp_dir.h"
#include "phoenix/v1/agent.pb.h"
#include "proto/support/pki.h"

namespace phoenix::agent::api {
namespace {

using phoenix::call_auth::Requirement;
using phoenix::call_auth::Role;
using namespace std::chrono_literals;

TEST(AgentMethodTableTest, EveryAgentRpcIsListedExplicitly) {
  const auto* service = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
      "phoenix.v1.AgentService");
  ASSERT_NE(service, nullptr);
  const auto table = AgentMethodTable();
  std::set<std::string> listed;
  for (const auto& rule : table.rules) listed.emplace(rule.method);
  for (int i = 0; i < service->method_count(); ++i) {
    const std::string path = "/" + service->full_name() + "/" + service->method(i)->name();
    EXPECT_TRUE(listed.contains(path)) << path << " is missing from the agent's table";
  }
}

TEST(AgentMethodTableTest, ReadsNeedViewerChangesOperatorHostFilesAdmin) {
  const auto table = AgentMethodTable();
  EXPECT_EQ(table.For("/phoenix.v1.AgentService/ListGuests"), Requirement::kViewer);
  EXPECT_EQ(table.For("/phoenix.v1.AgentService/GuestLogs"), Requirement::kViewer);
  EXPECT_EQ(table.For("/phoenix.v1.AgentService/RunGuest"), Requirement::kOperator);
  EXPECT_EQ(table.For("/phoenix.v1.AgentService/KillGuest"), Requirement::kOperator);
  EXPECT_EQ(table.For("/phoenix.v1.AgentService/ImportImage"), Requirement::kAdmin);
  EXPECT_EQ(table.For("/phoenix.v1.AgentService/BuildImage"), Requirement::kAdmin);
  EXPECT_EQ(table.For("/phoenix.v1.AgentService/SomethingNew"), Requirement::kAdmin)
      << "a method missing from the table fails closed";
}

// A supervisor whose answers the test scripts, on a clock the test moves.
class TokenReviewerTest : public ::testing::Test {
 protected:
  TokenReviewer::Clock::time_point now_ = TokenReviewer::Clock::time_point(1h);
  int asked_ = 0;
  Result<TokenReviewer::Answer> answer_ = TokenReviewer::Answer{
      .holder = {.role = Role::kOperator, .token_id = "0123456789ab"}, .cache_for = 30s};
  TokenReviewer reviewer_{[this](std::string_view) {
                            ++asked_;
                            return answer_;
                          },
                          [this] { return now_; }};
};

TEST_F(TokenReviewerTest, AGoodAnswerIsCachedForAsLongAsTheSupervisorSays) {
  auto first = reviewer_.Check("phx_operator_x");
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  EXPECT_EQ(first->role, Role::kOperator);
  EXPECT_EQ(first->token_id, "0123456789ab");
  now_ += 29s;
  ASSERT_TRUE(reviewer_.Check("phx_operator_x").has_value());
  EXPECT_EQ(asked_, 1);
  now_ += 2s;
  ASSERT_TRUE(reviewer_.Check("phx_operator_x").has_value());
  EXPECT_EQ(asked_, 2) << "after 30 s the supervisor is asked again";
}

TEST_F(TokenReviewerTest, ARevokedTokenStopsWorkingOnceItsAnswerExpires) {
  ASSERT_TRUE(reviewer_.Check("phx_operator_x").has_value());
  answer_ = MakeError(ErrorCode::kUnauthenticated, "unknown or expired token");
  now_ += 31s;
  auto after = reviewer_.Check("phx_operator_x");
  ASSERT_FALSE(after.has_value());
  EXPECT_EQ(after.error().code, ErrorCode::kUnauthenticated);
}

TEST_F(TokenReviewerTest, ASupervisorCannotMakeAnAnswerLiveLongerThanAMinute) {
  answer_->cache_for = 24h;
  ASSERT_TRUE(reviewer_.Check("t").has_value());
  now_ += TokenReviewer::kMaxPositiveCacheFor + 1ms;
  ASSERT_TRUE(reviewer_.Check("t").has_value());
  EXPECT_EQ(asked_, 2);
}

TEST_F(TokenReviewerTest, ANoIsCachedBriefly) {
  answer_ = MakeError(ErrorCode::kUnauthenticated, "unknown or expired token");
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(reviewer_.Check("bad").has_value());
  EXPECT_EQ(asked_, 1);
  now_ += TokenReviewer::kNegativeCacheFor + 1ms;
  EXPECT_FALSE(reviewer_.Check("bad").has_value());
  EXPECT_EQ(asked_, 2);
}

TEST_F(TokenReviewerTest, AnUnreachableSupervisorLeavesUnknownTokensUnavailable) {
  answer_ = MakeError(ErrorCode::kUnavailable, "connection refused");
  auto r = reviewer_.Check("never-seen");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("cannot check the bearer token"), std::string::npos);
}

TEST_F(TokenReviewerTest, AnUnreachableSupervisorKeepsARecentYesForTheGraceOnly) {
  ASSERT_TRUE(reviewer_.Check("t").has_value());
  answer_ = MakeError(ErrorCode::kUnavailable, "connection refused");
  now_ += 30s + TokenReviewer::kStaleGrace - 1s;
  EXPECT_TRUE(reviewer_.Check("t").has_value()) << "within the grace";
  now_ += 2s;
  auto r = reviewer_.Check("t");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
}

TEST_F(TokenReviewerTest, OtherFailuresAreNotTurnedIntoYes) {
  ASSERT_TRUE(reviewer_.Check("t").has_value());
  answer_ = MakeError(ErrorCode::kPermissionDenied, "node removed");
  now_ += 31s;
  auto r = reviewer_.Check("t");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kPermissionDenied);
}

TEST_F(TokenReviewerTest, EmptyAndOversizedTokensAreRefusedWithoutAsking) {
  EXPECT_FALSE(reviewer_.Check("").has_value());
  EXPECT_FALSE(reviewer_.Check(std::string(TokenReviewer::kMaxTokenBytes + 1, 'x')).has_value());
  EXPECT_EQ(asked_, 0);
}

TEST_F(TokenReviewerTest, TheCacheIsBounded) {
  for (size_t i = 0; i < TokenReviewer::kMaxCached + 10; ++i) {
    now_ += 1ms;
    ASSERT_TRUE(reviewer_.Check("t" + std::to_string(i)).has_value());
  }
  const int asked = asked_;
  ASSERT_TRUE(reviewer_.Check("t0").has_value());
  EXPECT_EQ(asked_, asked + 1) << "the oldest answer was dropped";
  ASSERT_TRUE(reviewer_.Check("t" + std::to_string(TokenReviewer::kMaxCached + 9)).has_value());
  EXPECT_EQ(asked_, asked + 1) << "the newest is still cached";
}

TEST(ServingTlsTest, AMadeIdentityIsKeptAndRemadeWhenTheSansChange) {
  testing::TempDir dir("serving-tls");
  auto first = LoadOrMakeServingTls({.pki_dir = dir.path(), .extra_sans = {"10.1.2.3"}});
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  EXPECT_TRUE(
      pki::VerifyCertificate(first->ca_pem, first->cert_pem, pki::Purpose::kServer).has_value());
  struct stat key {};
  ASSERT_EQ(::stat((dir.path() / "api.key").c_str(), &key), 0);
  EXPECT_EQ(key.st_mode & 07777, 0600u);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "api-ca.key")) << "the CA key is thrown away";

  auto again = LoadOrMakeServingTls({.pki_dir = dir.path(), .extra_sans = {"10.1.2.3"}});
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->cert_pem, first->cert_pem) << "a restart keeps what clients trust";

  auto other = LoadOrMakeServingTls({.pki_dir = dir.path(), .extra_sans = {"10.9.9.9"}});
  ASSERT_TRUE(other.has_value());
  EXPECT_NE(other->ca_pem, first->ca_pem);
}

TEST(ServingTlsTest, AGivenCertificateIsUsedAndAForeignKeyRefused) {
  testing::TempDir dir("serving-tls-given");
  auto ca = pki::CreateCa("test CA", 30);
  ASSERT_TRUE(ca.has_value());
  auto server = pki::IssueServerCert(*ca, "node", {"node.example"}, 30);
  auto stranger = pki::IssueServerCert(*ca, "other", {"other.example"}, 30);
  ASSERT_TRUE(server.has_value() && stranger.has_value());
  std::ofstream(dir.path() / "c.pem") << server->cert_pem;
  std::ofstream(dir.path() / "k.pem") << server->key_pem;
  std::ofstream(dir.path() / "x.pem") << stranger->key_pem;
  auto given = LoadOrMakeServingTls({.pki_dir = dir.path() / "pki",
                                     .cert_file = dir.path() / "c.pem",
                                     .key_file = dir.path() / "k.pem"});
  ASSERT_TRUE(given.has_value()) << given.error().ToString();
  EXPECT_EQ(given->cert_pem, server->cert_pem);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "pki" / "api.pem"));
  auto foreign = LoadOrMakeServingTls({.pki_dir = dir.path() / "pki",
                                       .cert_file = dir.path() / "c.pem",
                                       .key_file = dir.path() / "x.pem"});
  EXPECT_FALSE(foreign.has_value());
}

TEST(ServingTlsTest, ListenHostIsASanOnlyWhenItNamesOneAddress) {
  EXPECT_EQ(ListenHost("10.0.0.5:7443"), "10.0.0.5");
  EXPECT_EQ(ListenHost("[fd00::5]:7443"), "fd00::5");
  EXPECT_EQ(ListenHost("node-a.lab:7443"), "node-a.lab");
  EXPECT_EQ(ListenHost("0.0.0.0:7443"), "");
  EXPECT_EQ(ListenHost("[::]:7443"), "");
}

}  // namespace
}  // namespace phoenix::agent::api
