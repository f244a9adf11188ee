// TokenStore: the supervisor's bearer tokens (roles viewer/operator/admin) and agent join tokens,
// kept as SHA-256 hashes in one text file (DIR/tokens).
//
// File format, one token per line, '#' starts a comment line:
//   <sha256 hex of the token> <kind> <expiry, unix seconds, 0 = never> <description...>
// kind is viewer, operator, admin, join/N (a join token with N enrollments left; the line goes
// with the last) or join (no use limit: files written before limits existed). Plaintext tokens
// exist only in Mint's return value.
// Tokens look like "phx_admin_<64 hex>" / "phx_join_<64 hex>": the prefix tells a human what a
// leaked string is; the 32 random bytes (getrandom) are the secret.
//
// Writes rewrite the whole file atomically (temp + fsync + rename, mode 0600) while holding an
// flock on "<file>.lock", so `phoenix-supervisor join-token` run offline next to a live supervisor
// loses nothing; readers notice such external changes because every lookup compares the file's
// inode, size and mtime with those it last loaded and reloads when they differ. A deleted file
// means no tokens (fail closed); malformed lines are skipped with a warning.
//
// Thread-safety: every method is safe to call concurrently (one internal mutex).
#pragma once

#include <sys/stat.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/support/call_auth.h"
#include "proto/support/error.h"
#include "supervisor/auth/locked_text_file.h"

namespace phoenix::supervisor::auth {

// Roles are shared with the agent's TCP API: they live beside the wire contract.
using phoenix::call_auth::ParseRole;
using phoenix::call_auth::Role;
using phoenix::call_auth::RoleName;

struct JoinToken {
  std::string token;
  std::chrono::system_clock::time_point expires_at;
};

// What `token ls` shows of a live token: never the token, nor its whole hash.
struct TokenInfo {
  std::string id;    // the first 12 hex digits of sha256(token): names it for RevokeToken
  std::string kind;  // "viewer", "operator", "admin" or "join"
  std::optional<std::chrono::system_clock::time_point> expires_at;  // nullopt: never
  uint32_t uses_left = 0;  // join tokens: enrollments left (0: no limit)
  std::string description;
};

class TokenStore {
 public:
  // Creates an empty tokens file (0600) when none exists.
  [[nodiscard]] static Result<std::unique_ptr<TokenStore>> Open(const std::filesystem::path& file);

  TokenStore(const TokenStore&) = delete;
  TokenStore& operator=(const TokenStore&) = delete;

  // A new bearer token, good for `ttl` (0: until revoked); returns its plaintext (shown once).
  // kResourceExhausted when the file holds kMaxTokens.
  [[nodiscard]] Result<std::string> Mint(Role role, const std::string& description,
                                         std::chrono::seconds ttl = std::chrono::seconds(0));
  // Every live token (bearer and join), oldest first.
  [[nodiscard]] Result<std::vector<TokenInfo>> List();
  // Removes the one live token whose id starts with `id` (8-64 hex digits): it authenticates
  // nothing from the next call on. kNotFound when none matches, kInvalidArgument naming "id" when
  // it is malformed or matches several.
  [[nodiscard]] Result<TokenInfo> Revoke(std::string_view id);
  // The id List shows for a token.
  [[nodiscard]] static Result<std::string> IdOf(std::string_view token);
  // Good for `uses` enrollments (1..kMaxJoinTokenUses) until it expires.
  [[nodiscard]] Result<JoinToken> MintJoinToken(std::chrono::seconds ttl, uint32_t uses = 1);
  // kUnauthenticated if unknown or expired (join tokens are not bearer tokens).
  [[nodiscard]] Result<Role> Authenticate(std::string_view bearer_token);
  // kUnauthenticated if unknown, expired or used up (bearer tokens are not join tokens).
  [[nodiscard]] Result<void> CheckJoinToken(std::string_view token);
  // Like CheckJoinToken, and takes one use, atomically across processes: of two enrollments
  // racing for the last use, one gets kUnauthenticated.
  [[nodiscard]] Result<void> ConsumeJoinToken(std::string_view token);

  static constexpr uint32_t kMaxJoinTokenUses = 10000;
  // Live tokens (bearer and join) the file holds at most: every mint and use rewrites the whole
  // file, so an unbounded one would make each slower than the last. Minting beyond it is
  // kResourceExhausted; expired join tokens are dropped on every rewrite.
  static constexpr size_t kMaxTokens = 4096;

  const std::filesystem::path& path() const { return file_.path(); }

 private:
  enum class Kind { kViewer = 1, kOperator = 2, kAdmin = 3, kJoin = 4 };
  using Hash = std::array<unsigned char, 32>;
  struct Entry {
    Hash hash{};
    Kind kind = Kind::kViewer;
    int64_t expires_unix = 0;  // 0 = never
    uint32_t uses_left = 0;    // join tokens: enrollments left; 0 = no limit (older files)
    std::string description;
  };
  explicit TokenStore(std::filesystem::path file);

  Result<void> ReloadIfChangedLocked();
  Result<void> LoadLocked();
  // Malformed lines are skipped with a warning naming the line.
  std::vector<Entry> ParseEntries(const std::string& text) const;
  // Under the cross-process lock: reloads, drops expired entries, applies `change` and rewrites
  // the file; nothing is written when `change` fails.
  Result<void> RewriteLocked(const std::function<Result<void>(std::vector<Entry>&)>& change);
  Result<void> RoomForOneMore(size_t live) const;
  static TokenInfo InfoOf(const Entry& e);
  // The unexpired entry of `entries` whose hash is the token's: a join token when join, else a
  // bearer token. Every entry is compared, in constant time.
  Result<Entry*> FindIn(std::vector<Entry>& entries, std::string_view token, bool join);

  LockedTextFile file_;  // under mu_
  std::mutex mu_;
  std::vector<Entry> entries_;
};

}  // namespace phoenix::supervisor::auth
