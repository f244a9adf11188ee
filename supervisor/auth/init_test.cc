#include "supervisor/auth/init.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "agent/testing/temp_dir.h"
#include "proto/support/pki.h"
#include "supervisor/auth/token_store.h"

namespace phoenix::supervisor::auth {
namespace {

mode_t ModeOf(const std::filesystem::path& path) {
  struct stat st {};
  PHX_CHECK(stat(path.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

TEST(InitTest, CreatesPkiTokensAndAdminToken) {
  agent::testing::TempDir dir("phoenix-init-test");
  auto init = InitSupervisorState(dir.path() / "state", {"sup.example.com", "10.1.2.3"}, false);
  ASSERT_TRUE(init.has_value()) << init.error().ToString();
  const StatePaths& p = init->paths;
  EXPECT_EQ(ModeOf(p.pki_dir), 0700u);
  EXPECT_EQ(ModeOf(p.ca_key), 0600u);
  EXPECT_EQ(ModeOf(p.server_key), 0600u);
  EXPECT_EQ(ModeOf(p.tokens), 0600u);
  EXPECT_EQ(ModeOf(p.admin_token), 0600u);
  EXPECT_EQ(ModeOf(p.ca_cert), 0644u);

  auto admin_file = tls::ReadFile(p.admin_token);
  ASSERT_TRUE(admin_file.has_value());
  EXPECT_EQ(*admin_file, init->admin_token + "\n");
  auto tokens = TokenStore::Open(p.tokens);
  ASSERT_TRUE(tokens.has_value());
  auto role = (*tokens)->Authenticate(init->admin_token);
  ASSERT_TRUE(role.has_value());
  EXPECT_EQ(*role, Role::kAdmin);

  for (const char* san : {"localhost", "127.0.0.1", "::1", "sup.example.com", "10.1.2.3"}) {
    EXPECT_NE(std::find(init->sans.begin(), init->sans.end(), san), init->sans.end()) << san;
  }
  auto server_tls = LoadServerTls(dir.path() / "state");
  ASSERT_TRUE(server_tls.has_value()) << server_tls.error().ToString();
  EXPECT_TRUE(
      pki::VerifyCertificate(server_tls->ca_pem, server_tls->cert_pem, pki::Purpose::kServer)
          .has_value());
  EXPECT_TRUE(pki::CheckKeyMatchesCertificate(server_tls->key_pem, server_tls->cert_pem));
  auto ca = LoadCa(dir.path() / "state");
  ASSERT_TRUE(ca.has_value());
  EXPECT_TRUE(pki::CheckKeyMatchesCertificate(ca->key_pem, ca->cert_pem));
}

TEST(InitTest, RefusesToReinitializeUnlessForced) {
  agent::testing::TempDir dir("phoenix-init-test");
  auto first = InitSupervisorState(dir.path(), {}, false);
  ASSERT_TRUE(first.has_value());
  auto again = InitSupervisorState(dir.path(), {}, false);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kAlreadyExists);
  auto ca_before = LoadCa(dir.path());

  auto forced = InitSupervisorState(dir.path(), {}, true);
  ASSERT_TRUE(forced.has_value()) << forced.error().ToString();
  auto ca_after = LoadCa(dir.path());
  ASSERT_TRUE(ca_before && ca_after);
  EXPECT_NE(ca_before->cert_pem, ca_after->cert_pem);
  auto tokens = TokenStore::Open(forced->paths.tokens);
  ASSERT_TRUE(tokens.has_value());
  EXPECT_FALSE((*tokens)->Authenticate(first->admin_token).has_value()) << "old token revoked";
  EXPECT_TRUE((*tokens)->Authenticate(forced->admin_token).has_value());
}

TEST(InitTest, BadExtraSanIsRefusedBeforeWritingAnything) {
  agent::testing::TempDir dir("phoenix-init-test");
  auto init = InitSupervisorState(dir.path(), {"bad,name"}, false);
  ASSERT_FALSE(init.has_value());
  EXPECT_EQ(init.error().code, ErrorCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(PathsFor(dir.path()).ca_key));
}

TEST(InitTest, LoadServerTlsOfAnEmptyDirSaysWhatIsMissing) {
  agent::testing::TempDir dir("phoenix-init-test");
  auto tls = LoadServerTls(dir.path());
  ASSERT_FALSE(tls.has_value());
  EXPECT_EQ(tls.error().code, ErrorCode::kNotFound);
  EXPECT_NE(tls.error().message.find("ca.pem"), std::string::npos) << tls.error().message;
}

}  // namespace
}  // namespace phoenix::supervisor::auth
