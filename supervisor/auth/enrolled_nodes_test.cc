#include "supervisor/auth/enrolled_nodes.h"

#include "proto/support/pki.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

namespace phoenix::supervisor::auth {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::system_clock;
using namespace std::chrono_literals;

class EnrolledNodesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("enrolled-nodes-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::unique_ptr<EnrolledNodes> Open() {
    auto nodes = EnrolledNodes::Open(dir_ / "nodes");
    EXPECT_TRUE(nodes) << nodes.error().message;
    return nodes ? std::move(*nodes) : nullptr;
  }
  static NodeCertificate Cert(std::string node, std::string serial,
                              Clock::time_point not_before = Clock::now()) {
    return {std::move(node), std::move(serial), not_before, Clock::now() + 24h};
  }
  fs::path dir_;
};

TEST_F(EnrolledNodesTest, ANameWithAValidCertificateIsNotEnrolledTwice) {
  auto nodes = Open();
  ASSERT_TRUE(nodes->Enroll(Cert("web-1", "aa01")));
  auto again = nodes->Enroll(Cert("web-1", "bb02"));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(again.error().field, "node");
  EXPECT_NE(again.error().message.find("phoenixctl node rm web-1"), std::string::npos);
  EXPECT_TRUE(nodes->Admit(Cert("web-1", "aa01")));
  EXPECT_EQ(nodes->Admit(Cert("web-1", "bb02")).error().code, ErrorCode::kUnauthenticated);
  // Another name is fine.
  EXPECT_TRUE(nodes->Enroll(Cert("web-2", "cc03")));
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "nodes").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(EnrolledNodesTest, RemoveRevokesSoTheOldCertificateIsRefusedAndTheNameIsFree) {
  auto nodes = Open();
  ASSERT_TRUE(nodes->Enroll(Cert("web-1", "aa01")));
  auto removed = nodes->Remove("web-1");
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_EQ(removed->serial, "aa01");
  auto refused = nodes->Admit(Cert("web-1", "aa01"));
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("revoked"), std::string::npos);
  EXPECT_EQ(nodes->Remove("web-1").error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(nodes->Enroll(Cert("web-1", "dd04")));
  EXPECT_TRUE(nodes->Admit(Cert("web-1", "dd04")));
  // A second process (the file) sees all of it.
  auto other = Open();
  EXPECT_FALSE(other->Admit(Cert("web-1", "aa01")));
  EXPECT_TRUE(other->Admit(Cert("web-1", "dd04")));
  auto list = other->List();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ(list->at(0).serial, "dd04");
}

TEST_F(EnrolledNodesTest, RenewReplacesTheCurrentCertificateAndRevokesTheOld) {
  auto nodes = Open();
  ASSERT_TRUE(nodes->Enroll(Cert("web-1", "aa01")));
  ASSERT_TRUE(nodes->Renew("aa01", Cert("web-1", "bb02")));
  EXPECT_TRUE(nodes->Admit(Cert("web-1", "bb02")));
  auto old = nodes->Admit(Cert("web-1", "aa01"));
  ASSERT_FALSE(old);
  EXPECT_NE(old.error().message.find("revoked"), std::string::npos);
  // Only from the current one.
  EXPECT_EQ(nodes->Renew("aa01", Cert("web-1", "cc03")).error().code, ErrorCode::kUnauthenticated);
  EXPECT_EQ(nodes->Renew("0f0f", Cert("web-9", "cc03")).error().code, ErrorCode::kUnauthenticated);
}

TEST_F(EnrolledNodesTest, CertificatesFromBeforeTheFileAreAdoptedOnceNewOnesAreNot) {
  auto nodes = Open();
  // Issued by an older supervisor, a day before this file existed.
  EXPECT_TRUE(nodes->Admit(Cert("old-1", "ee05", Clock::now() - 24h)));
  // Adopted: now it is old-1's certificate, and no other is.
  EXPECT_FALSE(nodes->Admit(Cert("old-1", "ff06", Clock::now() - 24h)));
  // A certificate issued since (by this CA, but never enrolled here) is refused.
  // (notBefore is backdated by pki::kCertificateBackdate at issue.)
  auto fresh = nodes->Admit(Cert("new-1", "0707", Clock::now() - pki::kCertificateBackdate));
  ASSERT_FALSE(fresh);
  EXPECT_NE(fresh.error().message.find("not enrolled"), std::string::npos);
  // Removed, an adopted certificate is not adopted again.
  ASSERT_TRUE(nodes->Remove("old-1"));
  EXPECT_FALSE(nodes->Admit(Cert("old-1", "ee05", Clock::now() - 24h)));
}

TEST_F(EnrolledNodesTest, ExpiredCertificatesFreeTheNameAndLeaveTheRevocationList) {
  auto nodes = Open();
  NodeCertificate old = Cert("web-1", "aa01");
  old.not_after = Clock::now() - 1s;
  ASSERT_TRUE(nodes->Enroll(old));
  EXPECT_TRUE(nodes->Enroll(Cert("web-1", "bb02")));  // the old one expired
  ASSERT_TRUE(nodes->Remove("web-1"));
  ASSERT_TRUE(nodes->Enroll(Cert("web-2", "cc03")));
  std::ifstream in(dir_ / "nodes");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("- bb02 "), std::string::npos) << text;
}

TEST_F(EnrolledNodesTest, ADeletedFileAdmitsNothing) {
  auto nodes = Open();
  ASSERT_TRUE(nodes->Enroll(Cert("web-1", "aa01")));
  fs::remove(dir_ / "nodes");
  EXPECT_FALSE(nodes->Admit(Cert("web-1", "aa01")));
  EXPECT_FALSE(nodes->Admit(Cert("old-1", "ee05", Clock::now() - 24h)));
}

}  // namespace
}  // namespace phoenix::supervisor::auth
