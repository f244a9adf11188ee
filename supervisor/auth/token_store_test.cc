#include "supervisor/auth/token_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include "agent/testing/temp_dir.h"
#include "proto/support/tls.h"

namespace phoenix::supervisor::auth {
namespace {

std::string Sha256Hex(const std::string& text) {
  unsigned char md[32];
  unsigned int len = 0;
  PHX_CHECK(EVP_Digest(text.data(), text.size(), md, &len, EVP_sha256(), nullptr) == 1);
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    char buf[3];
    std::snprintf(buf, sizeof(buf), "%02x", md[i]);
    out += buf;
  }
  return out;
}

int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class TokenStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<TokenStore> Open() {
    auto store = TokenStore::Open(file_);
    EXPECT_TRUE(store.has_value()) << store.error().ToString();
    return store ? std::move(*store) : nullptr;
  }
  void Append(const std::string& line) {
    std::ofstream out(file_, std::ios::app);
    out << line << "\n";
  }

  agent::testing::TempDir dir_{"phoenix-tokens-test"};
  std::filesystem::path file_ = dir_.path() / "tokens";
};

TEST_F(TokenStoreTest, MintedTokensAuthenticateWithTheirRole) {
  auto store = Open();
  for (Role role : {Role::kViewer, Role::kOperator, Role::kAdmin}) {
    auto token = store->Mint(role, "for a test");
    ASSERT_TRUE(token.has_value()) << token.error().ToString();
    std::string prefix = "phx_" + std::string(RoleName(role)) + "_";
    EXPECT_TRUE(token->starts_with(prefix)) << *token;
    EXPECT_EQ(token->size(), prefix.size() + 64);
    auto got = store->Authenticate(*token);
    ASSERT_TRUE(got.has_value()) << got.error().ToString();
    EXPECT_EQ(*got, role);
  }
}

TEST_F(TokenStoreTest, UnknownTokensAreUnauthenticated) {
  auto store = Open();
  auto token = store->Mint(Role::kAdmin, "x");
  ASSERT_TRUE(token.has_value());
  for (std::string bad : {std::string(), std::string("phx_admin_"), token->substr(0, 70),
                          *token + "0", std::string(1000, 'a')}) {
    auto got = store->Authenticate(bad);
    ASSERT_FALSE(got.has_value()) << bad;
    EXPECT_EQ(got.error().code, ErrorCode::kUnauthenticated);
  }
}

TEST_F(TokenStoreTest, FileHoldsOnlyHashesAndIsPrivate) {
  auto store = Open();
  auto token = store->Mint(Role::kAdmin, "initial\nadmin");
  ASSERT_TRUE(token.has_value());
  auto text = tls::ReadFile(file_);
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(text->find(*token), std::string::npos);
  EXPECT_NE(text->find(Sha256Hex(*token) + " admin 0 initial admin\n"), std::string::npos) << *text;
  struct stat st {};
  ASSERT_EQ(stat(file_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(TokenStoreTest, ReloadsAfterAnExternalAppend) {
  auto store = Open();
  ASSERT_TRUE(store->Mint(Role::kAdmin, "first").has_value());
  const std::string token = "phx_viewer_appended-by-hand";
  EXPECT_FALSE(store->Authenticate(token).has_value());
  Append(Sha256Hex(token) + " viewer 0 added with an editor");
  auto got = store->Authenticate(token);
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(*got, Role::kViewer);
}

TEST_F(TokenStoreTest, MintingStopsAtTheLimitOfLiveTokens) {
  auto store = Open();
  // Written by hand: minting 4096 tokens one by one would rewrite the file 4096 times.
  std::string lines;
  for (size_t i = 0; i + 1 < TokenStore::kMaxTokens; ++i) {
    lines += Sha256Hex("phx_viewer_bulk-" + std::to_string(i)) + " viewer 0 bulk\n";
  }
  Append(lines.substr(0, lines.size() - 1));
  ASSERT_TRUE(store->Mint(Role::kViewer, "the last one").has_value());
  auto refused = store->Mint(Role::kViewer, "one too many");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kResourceExhausted);
  EXPECT_NE(refused.error().message.find("4096 live tokens"), std::string::npos);
  auto join = store->MintJoinToken(std::chrono::seconds(60));
  ASSERT_FALSE(join.has_value());
  EXPECT_EQ(join.error().code, ErrorCode::kResourceExhausted);
  // Every token minted before the limit still works.
  EXPECT_TRUE(store->Authenticate("phx_viewer_bulk-7").has_value());
}

TEST_F(TokenStoreTest, TokensWithATtlExpireAndAnyTokenCanBeListedAndRevoked) {
  auto store = Open();
  auto forever = store->Mint(Role::kOperator, "ci deploys");
  auto lapsing = store->Mint(Role::kViewer, "laptop", std::chrono::hours(24));
  auto join = store->MintJoinToken(std::chrono::seconds(600), 3);
  ASSERT_TRUE(forever && lapsing && join);

  auto listed = store->List();
  ASSERT_TRUE(listed.has_value());
  ASSERT_EQ(listed->size(), 3u);
  EXPECT_EQ((*listed)[0].id, *TokenStore::IdOf(*forever));
  EXPECT_EQ((*listed)[0].id.size(), 12u);
  EXPECT_EQ((*listed)[0].kind, "operator");
  EXPECT_FALSE((*listed)[0].expires_at.has_value());
  EXPECT_EQ((*listed)[1].kind, "viewer");
  ASSERT_TRUE((*listed)[1].expires_at.has_value());
  const auto left = *(*listed)[1].expires_at - std::chrono::system_clock::now();
  EXPECT_GT(left, std::chrono::hours(23));
  EXPECT_LE(left, std::chrono::hours(24));
  EXPECT_EQ((*listed)[2].kind, "join");
  EXPECT_EQ((*listed)[2].uses_left, 3u);
  for (const TokenInfo& t : *listed) {
    EXPECT_EQ(forever->find(t.id), std::string::npos) << "an id is a hash prefix, not the token";
  }

  // Revoked by (a prefix of) its id: it authenticates nothing from then on.
  auto revoked = store->Revoke((*listed)[0].id.substr(0, 8));
  ASSERT_TRUE(revoked.has_value()) << revoked.error().ToString();
  EXPECT_EQ(revoked->description, "ci deploys");
  EXPECT_EQ(store->Authenticate(*forever).error().code, ErrorCode::kUnauthenticated);
  EXPECT_TRUE(store->Authenticate(*lapsing).has_value());
  EXPECT_EQ(store->Revoke((*listed)[0].id).error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(store->Revoke((*listed)[2].id).has_value());
  EXPECT_FALSE(store->CheckJoinToken(join->token).has_value());
  for (const char* bad : {"", "3f9a", "XYZXYZXYZ", "../../etc"}) {
    auto r = store->Revoke(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().field, "id") << bad;
  }
  EXPECT_FALSE(store->Mint(Role::kViewer, "x", std::chrono::seconds(-1)).has_value());
}

TEST_F(TokenStoreTest, ALongDescriptionIsCutBetweenCharactersNeverInsideOne) {
  auto store = Open();
  // 'é' is two bytes: at any odd length the byte limit falls inside one of them.
  std::string description;
  for (int i = 0; i < 400; ++i) description += "\xc3\xa9";
  for (const std::string& text : {description, "a" + description}) {
    ASSERT_TRUE(store->Mint(Role::kViewer, text).has_value());
  }
  auto listed = store->List();
  ASSERT_TRUE(listed.has_value());
  ASSERT_EQ(listed->size(), 2u);
  for (const TokenInfo& t : *listed) {
    ASSERT_FALSE(t.description.empty());
    EXPECT_LT(t.description.size(), description.size()) << "still bounded";
    const auto last = static_cast<unsigned char>(t.description.back());
    EXPECT_EQ(last, 0xa9) << "ends with a whole 'é', not its first byte";
  }
}

TEST_F(TokenStoreTest, SecondStoreOnTheSameFileSeesAndKeepsEveryToken) {
  auto live = Open();
  auto offline = Open();
  auto a = live->Mint(Role::kAdmin, "live");
  auto join = offline->MintJoinToken(std::chrono::seconds(600));
  auto b = live->Mint(Role::kViewer, "live again");
  ASSERT_TRUE(a && join && b);
  EXPECT_TRUE(live->CheckJoinToken(join->token).has_value());
  EXPECT_TRUE(offline->Authenticate(*a).has_value());
  EXPECT_TRUE(offline->Authenticate(*b).has_value());
  EXPECT_TRUE(live->Authenticate(*a).has_value());
}

TEST_F(TokenStoreTest, ExpiredEntriesAreRefused) {
  auto store = Open();
  const std::string old_join = "phx_join_old", fresh_join = "phx_join_fresh";
  const std::string old_bearer = "phx_admin_old";
  Append(Sha256Hex(old_join) + " join " + std::to_string(UnixNow() - 10) + " expired");
  Append(Sha256Hex(fresh_join) + " join " + std::to_string(UnixNow() + 600) + " fresh");
  Append(Sha256Hex(old_bearer) + " admin " + std::to_string(UnixNow() - 1) + " expired");
  auto old_result = store->CheckJoinToken(old_join);
  ASSERT_FALSE(old_result.has_value());
  EXPECT_EQ(old_result.error().code, ErrorCode::kUnauthenticated);
  EXPECT_TRUE(store->CheckJoinToken(fresh_join).has_value());
  EXPECT_FALSE(store->Authenticate(old_bearer).has_value());
}

TEST_F(TokenStoreTest, MintedJoinTokenExpiresAfterItsTtl) {
  auto store = Open();
  auto join = store->MintJoinToken(std::chrono::seconds(3600));
  ASSERT_TRUE(join.has_value());
  EXPECT_TRUE(join->token.starts_with("phx_join_"));
  auto expires = std::chrono::system_clock::to_time_t(join->expires_at);
  EXPECT_NEAR(static_cast<double>(expires), static_cast<double>(UnixNow() + 3600), 2.0);
  EXPECT_TRUE(store->CheckJoinToken(join->token).has_value());
  EXPECT_TRUE(store->CheckJoinToken(join->token).has_value()) << "checking takes no use";
  EXPECT_FALSE(store->MintJoinToken(std::chrono::seconds(0)).has_value());
}

TEST_F(TokenStoreTest, AJoinTokenEnrollsAtMostItsUses) {
  auto live = Open();
  auto offline = Open();  // `phoenix-supervisor join-token` next to a live supervisor
  auto single = live->MintJoinToken(std::chrono::seconds(600));
  auto triple = offline->MintJoinToken(std::chrono::seconds(600), 3);
  ASSERT_TRUE(single && triple);
  EXPECT_TRUE(live->ConsumeJoinToken(single->token).has_value());
  auto again = live->ConsumeJoinToken(single->token);
  ASSERT_FALSE(again.has_value()) << "the default is one enrollment";
  EXPECT_EQ(again.error().code, ErrorCode::kUnauthenticated);
  EXPECT_FALSE(live->CheckJoinToken(single->token).has_value());
  // Uses are counted in the file, so both processes see each other's.
  EXPECT_TRUE(live->ConsumeJoinToken(triple->token).has_value());
  EXPECT_TRUE(offline->ConsumeJoinToken(triple->token).has_value());
  EXPECT_TRUE(live->ConsumeJoinToken(triple->token).has_value());
  EXPECT_FALSE(offline->ConsumeJoinToken(triple->token).has_value());
  EXPECT_FALSE(Open()->CheckJoinToken(triple->token).has_value()) << "gone from the file";
  for (uint32_t bad : {0u, TokenStore::kMaxJoinTokenUses + 1}) {
    auto r = live->MintJoinToken(std::chrono::seconds(60), bad);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().field, "uses");
  }
}

TEST_F(TokenStoreTest, JoinTokensWithoutAUseCountStayUnlimited) {
  auto store = Open();
  const std::string legacy = "phx_join_legacy";
  Append(Sha256Hex(legacy) + " join " + std::to_string(UnixNow() + 600) + " older file");
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(store->ConsumeJoinToken(legacy).has_value());
  const std::string two = "phx_join_two";
  Append(Sha256Hex(two) + " join/2 " + std::to_string(UnixNow() + 600) + " two left");
  EXPECT_TRUE(store->ConsumeJoinToken(two).has_value());
  EXPECT_TRUE(store->ConsumeJoinToken(two).has_value());
  EXPECT_FALSE(store->ConsumeJoinToken(two).has_value());
  Append(Sha256Hex("phx_join_zero") + " join/0 " + std::to_string(UnixNow() + 600) + " bad");
  EXPECT_FALSE(store->CheckJoinToken("phx_join_zero").has_value()) << "join/0 is malformed";
}

TEST_F(TokenStoreTest, JoinAndBearerTokensAreNotInterchangeable) {
  auto store = Open();
  auto join = store->MintJoinToken(std::chrono::seconds(60));
  auto admin = store->Mint(Role::kAdmin, "a");
  ASSERT_TRUE(join && admin);
  EXPECT_FALSE(store->Authenticate(join->token).has_value());
  EXPECT_FALSE(store->CheckJoinToken(*admin).has_value());
}

TEST_F(TokenStoreTest, MalformedLinesAreSkippedNotFatal) {
  auto store = Open();
  auto admin = store->Mint(Role::kAdmin, "a");
  ASSERT_TRUE(admin.has_value());
  Append("not a token line");
  Append(Sha256Hex("phx_root_x") + " root 0 unknown kind");
  Append(Sha256Hex("phx_viewer_x") + " viewer soon bad expiry");
  EXPECT_TRUE(store->Authenticate(*admin).has_value());
  EXPECT_FALSE(store->Authenticate("phx_root_x").has_value());
  EXPECT_FALSE(store->Authenticate("phx_viewer_x").has_value());
}

TEST_F(TokenStoreTest, DeletedFileRevokesEverything) {
  auto store = Open();
  auto admin = store->Mint(Role::kAdmin, "a");
  ASSERT_TRUE(admin.has_value());
  ASSERT_EQ(unlink(file_.c_str()), 0);
  auto got = store->Authenticate(*admin);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code, ErrorCode::kUnauthenticated);
}

TEST_F(TokenStoreTest, ConcurrentMintAndAuthenticateLoseNothing) {
  auto a = Open();
  auto b = Open();  // a second "process" writing the same file
  std::vector<std::string> tokens[4];
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      TokenStore* store = (t % 2 == 0) ? a.get() : b.get();
      for (int i = 0; i < 10; ++i) {
        auto token = store->Mint(Role::kOperator, "thread " + std::to_string(t));
        ASSERT_TRUE(token.has_value()) << token.error().ToString();
        ASSERT_TRUE(store->Authenticate(*token).has_value());
        tokens[t].push_back(*token);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  std::set<std::string> all;
  for (auto& list : tokens) {
    for (auto& token : list) {
      all.insert(token);
      EXPECT_TRUE(a->Authenticate(token).has_value());
      EXPECT_TRUE(b->Authenticate(token).has_value());
    }
  }
  EXPECT_EQ(all.size(), 40u);
}

}  // namespace
}  // namespace phoenix::supervisor::auth
