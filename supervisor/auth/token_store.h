// TokenStore: the supervisor's bearer tokens (roles viewer/operator/admin) and agent join tokens,
// kept as SHA-256 hashes in one text file (DIR/tokens).
//
// File format, one token per line, '#' starts a comment line:
//   <sha256 hex of the token> <kind> <expiry, unix seconds, 0 = never> <description...>
// kind is viewer, operator, admin or join. Plaintext tokens exist only in Mint's return value.
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
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/support/error.h"

namespace phoenix::supervisor::auth {

enum class Role { kViewer = 1, kOperator = 2, kAdmin = 3 };  // each includes the ones below
std::string_view RoleName(Role role);                        // "viewer", "operator", "admin"
std::optional<Role> ParseRole(std::string_view name);        // inverse of RoleName

struct JoinToken {
  std::string token;
  std::chrono::system_clock::time_point expires_at;
};

class TokenStore {
 public:
  // Creates an empty tokens file (0600) when none exists.
  [[nodiscard]] static Result<std::unique_ptr<TokenStore>> Open(const std::filesystem::path& file);

  TokenStore(const TokenStore&) = delete;
  TokenStore& operator=(const TokenStore&) = delete;

  // A new bearer token that never expires; returns its plaintext (shown once).
  [[nodiscard]] Result<std::string> Mint(Role role, const std::string& description);
  // Reusable until it expires.
  [[nodiscard]] Result<JoinToken> MintJoinToken(std::chrono::seconds ttl);
  // kUnauthenticated if unknown or expired (join tokens are not bearer tokens).
  [[nodiscard]] Result<Role> Authenticate(std::string_view bearer_token);
  // kUnauthenticated if unknown or expired (bearer tokens are not join tokens).
  [[nodiscard]] Result<void> CheckJoinToken(std::string_view token);

  const std::filesystem::path& path() const { return file_; }

 private:
  enum class Kind { kViewer = 1, kOperator = 2, kAdmin = 3, kJoin = 4 };
  using Hash = std::array<unsigned char, 32>;
  struct Entry {
    Hash hash{};
    Kind kind = Kind::kViewer;
    int64_t expires_unix = 0;  // 0 = never
    std::string description;
  };
  struct FileId {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = -1;
    timespec mtime{};
    bool exists = false;
    bool operator==(const FileId& o) const;
  };

  explicit TokenStore(std::filesystem::path file);

  Result<void> ReloadIfChangedLocked();
  Result<void> LoadLocked();
  // Adds entry under the cross-process lock and rewrites the file.
  Result<void> AddLocked(Entry entry);
  // The unexpired entry whose hash is the token's: a join token when join, else a bearer token.
  // Every entry is compared, in constant time.
  Result<const Entry*> FindLocked(std::string_view token, bool join);

  const std::filesystem::path file_;
  std::mutex mu_;
  std::vector<Entry> entries_;
  FileId loaded_;
};

}  // namespace phoenix::supervisor::auth
