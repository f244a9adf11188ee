#include "supervisor/auth/token_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <unistd.h>

#include <charconv>
#include <sstream>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include "proto/support/pki.h"

namespace phoenix::supervisor::auth {
namespace {

constexpr size_t kSecretBytes = 32;
constexpr size_t kMaxTokenLength = 256;  // longer input cannot be one of ours; skip hashing it
constexpr size_t kMaxDescription = 200;

std::string_view KindName(int kind) {
  switch (kind) {
    case 1:
      return "viewer";
    case 2:
      return "operator";
    case 3:
      return "admin";
    case 4:
      return "join";
  }
  return "unknown";
}

std::string Hex(const unsigned char* data, size_t len) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (size_t i = 0; i < len; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 0xf]);
  }
  return out;
}

bool ParseHex(std::string_view hex, unsigned char* out, size_t len) {
  if (hex.size() != len * 2) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < len; ++i) {
    int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<unsigned char>(hi << 4 | lo);
  }
  return true;
}

Result<std::array<unsigned char, 32>> Sha256(std::string_view data) {
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr) != 1 ||
      len != out.size()) {
    return Internal("EVP_Digest(sha256) failed");
  }
  return out;
}

Result<std::string> RandomSecret() {
  unsigned char bytes[kSecretBytes];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    ssize_t n = getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("getrandom");
    }
    got += static_cast<size_t>(n);
  }
  return Hex(bytes, sizeof(bytes));
}

int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string CleanDescription(std::string_view text) {
  // Never cut a UTF-8 sequence in two: the description goes back out in a proto3 string
  // (ListTokens), which must be valid UTF-8 or the response cannot be encoded.
  size_t n = std::min(text.size(), kMaxDescription);
  while (n > 0 && n < text.size() && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  std::string out(text.substr(0, n));
  for (char& c : out) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return out;
}

}  // namespace

namespace {
constexpr char kHeader[] =
    "# phoenix tokens: sha256(token) kind expiry(unix s, 0=never) description\n";
}  // namespace

TokenStore::TokenStore(std::filesystem::path file) : file_(std::move(file)) {}

Result<std::unique_ptr<TokenStore>> TokenStore::Open(const std::filesystem::path& file) {
  std::unique_ptr<TokenStore> store(new TokenStore(file));
  std::lock_guard lock(store->mu_);
  PHX_TRY(store->file_.CreateIfMissing(kHeader));
  PHX_TRY(store->LoadLocked());
  return store;
}

std::vector<TokenStore::Entry> TokenStore::ParseEntries(const std::string& text) const {
  std::vector<Entry> entries;
  std::istringstream lines(text);
  std::string line;
  int number = 0;
  while (std::getline(lines, line)) {
    ++number;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string hash, kind, expiry;
    fields >> hash >> kind >> expiry;
    Entry entry;
    bool ok = ParseHex(hash, entry.hash.data(), entry.hash.size());
    if (kind == "join") {
      entry.kind = Kind::kJoin;
    } else if (kind.starts_with("join/")) {
      entry.kind = Kind::kJoin;
      const char* first = kind.data() + 5;
      auto [uses_end, uses_ec] = std::from_chars(first, kind.data() + kind.size(), entry.uses_left);
      ok = ok && uses_ec == std::errc() && uses_end == kind.data() + kind.size() &&
           entry.uses_left > 0;
    } else if (auto role = ParseRole(kind)) {
      entry.kind = static_cast<Kind>(*role);
    } else {
      ok = false;
    }
    auto [end, ec] =
        std::from_chars(expiry.data(), expiry.data() + expiry.size(), entry.expires_unix);
    ok = ok && ec == std::errc() && end == expiry.data() + expiry.size() && entry.expires_unix >= 0;
    if (!ok) {
      spdlog::warn("{}:{}: malformed token line skipped", file_.path().string(), number);
      continue;
    }
    std::getline(fields >> std::ws, entry.description);
    entries.push_back(std::move(entry));
  }
  return entries;
}

Result<void> TokenStore::LoadLocked() {
  auto text = file_.Read();
  if (!text) return std::unexpected(text.error());
  if (!*text) {
    if (!entries_.empty()) {
      spdlog::warn("tokens file {} is gone: no token is valid until it returns",
                   file_.path().string());
    }
    entries_.clear();
    return {};
  }
  entries_ = ParseEntries(**text);
  return {};
}

Result<void> TokenStore::ReloadIfChangedLocked() {
  auto changed = file_.Changed();
  if (!changed) return std::unexpected(changed.error());
  if (!*changed) return {};
  return LoadLocked();
}

Result<void> TokenStore::RewriteLocked(
    const std::function<Result<void>(std::vector<Entry>&)>& change) {
  auto written =
      file_.Rewrite([&](const std::optional<std::string>& current) -> Result<std::string> {
        const int64_t now = NowUnix();
        std::vector<Entry> kept;
        for (Entry& e : ParseEntries(current.value_or(""))) {
          if (e.expires_unix != 0 && e.expires_unix <= now) continue;  // expired: drop for good
          kept.push_back(std::move(e));
        }
        PHX_TRY(change(kept));
        std::string text = kHeader;
        for (const Entry& e : kept) {
          std::string kind(KindName(static_cast<int>(e.kind)));
          if (e.kind == Kind::kJoin && e.uses_left > 0) kind += "/" + std::to_string(e.uses_left);
          text += Hex(e.hash.data(), e.hash.size()) + " " + kind + " " +
                  std::to_string(e.expires_unix) + " " + e.description + "\n";
        }
        return text;
      });
  if (!written) {
    PHX_TRY(LoadLocked());  // the file as it is now
    return std::unexpected(written.error());
  }
  entries_ = ParseEntries(*written);
  return {};
}

Result<TokenStore::Entry*> TokenStore::FindIn(std::vector<Entry>& entries, std::string_view token,
                                              bool join) {
  auto unauthenticated = [&] {
    return MakeError(ErrorCode::kUnauthenticated,
                     join ? "unknown, expired or used-up join token" : "unknown or expired token");
  };
  if (token.empty() || token.size() > kMaxTokenLength) return unauthenticated();
  auto hash = Sha256(token);
  if (!hash) return std::unexpected(hash.error());
  const int64_t now = NowUnix();
  Entry* found = nullptr;
  // No early exit and CRYPTO_memcmp: the time taken says nothing about how close a guess was.
  for (Entry& e : entries) {
    bool same = CRYPTO_memcmp(e.hash.data(), hash->data(), hash->size()) == 0;
    if (same && (e.kind == Kind::kJoin) == join && found == nullptr) found = &e;
  }
  if (found == nullptr) return unauthenticated();
  if (found->expires_unix != 0 && found->expires_unix <= now) return unauthenticated();
  return found;
}

namespace {
constexpr size_t kIdDigits = 12;
}  // namespace

Result<std::string> TokenStore::IdOf(std::string_view token) {
  auto hash = Sha256(token);
  if (!hash) return std::unexpected(hash.error());
  return Hex(hash->data(), hash->size()).substr(0, kIdDigits);
}

TokenInfo TokenStore::InfoOf(const Entry& e) {
  TokenInfo info;
  info.id = Hex(e.hash.data(), e.hash.size()).substr(0, kIdDigits);
  info.kind = std::string(KindName(static_cast<int>(e.kind)));
  if (e.expires_unix != 0) {
    info.expires_at = std::chrono::system_clock::time_point(std::chrono::seconds(e.expires_unix));
  }
  info.uses_left = e.uses_left;
  info.description = e.description;
  return info;
}

Result<std::vector<TokenInfo>> TokenStore::List() {
  std::lock_guard lock(mu_);
  PHX_TRY(ReloadIfChangedLocked());
  const int64_t now = NowUnix();
  std::vector<TokenInfo> out;
  for (const Entry& e : entries_) {
    if (e.expires_unix != 0 && e.expires_unix <= now) continue;
    out.push_back(InfoOf(e));
  }
  return out;
}

Result<TokenInfo> TokenStore::Revoke(std::string_view id) {
  const bool hex = std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
  if (id.size() < 8 || id.size() > 64 || !hex) {
    return InvalidArgument("id", "must be 8-64 lowercase hex digits, as 'token ls' shows them");
  }
  std::lock_guard lock(mu_);
  TokenInfo revoked;
  PHX_TRY(RewriteLocked([&](std::vector<Entry>& entries) -> Result<void> {
    auto matches = [&](const Entry& e) {
      return Hex(e.hash.data(), e.hash.size()).starts_with(id);
    };
    const auto n = std::count_if(entries.begin(), entries.end(), matches);
    if (n == 0) return NotFound("no live token has id " + std::string(id));
    if (n > 1) {
      return InvalidArgument(
          "id", std::string(id) + " matches " + std::to_string(n) + " tokens; give more digits");
    }
    auto it = std::find_if(entries.begin(), entries.end(), matches);
    revoked = InfoOf(*it);
    entries.erase(it);
    return {};
  }));
  return revoked;
}

Result<void> TokenStore::RoomForOneMore(size_t live) const {
  if (live < kMaxTokens) return {};
  return MakeError(ErrorCode::kResourceExhausted,
                   file_.path().string() + " holds " + std::to_string(kMaxTokens) +
                       " live tokens, its limit; remove the lines of tokens no longer used (or "
                       "let join tokens expire) first");
}

Result<std::string> TokenStore::Mint(Role role, const std::string& description,
                                     std::chrono::seconds ttl) {
  if (ttl.count() < 0) return InvalidArgument("ttl", "must not be negative");
  auto secret = RandomSecret();
  if (!secret) return std::unexpected(secret.error());
  std::string token = "phx_" + std::string(RoleName(role)) + "_" + *secret;
  auto hash = Sha256(token);
  if (!hash) return std::unexpected(hash.error());
  std::lock_guard lock(mu_);
  PHX_TRY(RewriteLocked([&](std::vector<Entry>& entries) -> Result<void> {
    PHX_TRY(RoomForOneMore(entries.size()));
    const int64_t expires = ttl.count() == 0 ? 0 : NowUnix() + ttl.count();
    entries.push_back(
        Entry{*hash, static_cast<Kind>(role), expires, 0, CleanDescription(description)});
    return {};
  }));
  return token;
}

Result<JoinToken> TokenStore::MintJoinToken(std::chrono::seconds ttl, uint32_t uses) {
  if (ttl.count() <= 0) return InvalidArgument("ttl", "must be positive");
  if (uses == 0 || uses > kMaxJoinTokenUses) {
    return InvalidArgument("uses", "must be 1-" + std::to_string(kMaxJoinTokenUses));
  }
  auto secret = RandomSecret();
  if (!secret) return std::unexpected(secret.error());
  std::string token = "phx_join_" + *secret;
  auto hash = Sha256(token);
  if (!hash) return std::unexpected(hash.error());
  const int64_t expires = NowUnix() + ttl.count();
  std::lock_guard lock(mu_);
  PHX_TRY(RewriteLocked([&](std::vector<Entry>& entries) -> Result<void> {
    PHX_TRY(RoomForOneMore(entries.size()));
    entries.push_back(Entry{*hash, Kind::kJoin, expires, uses, "join token"});
    return {};
  }));
  return JoinToken{std::move(token),
                   std::chrono::system_clock::time_point(std::chrono::seconds(expires))};
}

Result<Role> TokenStore::Authenticate(std::string_view bearer_token) {
  std::lock_guard lock(mu_);
  PHX_TRY(ReloadIfChangedLocked());
  auto entry = FindIn(entries_, bearer_token, /*join=*/false);
  if (!entry) return std::unexpected(entry.error());
  return static_cast<Role>((*entry)->kind);
}

Result<void> TokenStore::CheckJoinToken(std::string_view token) {
  std::lock_guard lock(mu_);
  PHX_TRY(ReloadIfChangedLocked());
  auto entry = FindIn(entries_, token, /*join=*/true);
  if (!entry) return std::unexpected(entry.error());
  return {};
}

Result<void> TokenStore::ConsumeJoinToken(std::string_view token) {
  std::lock_guard lock(mu_);
  return RewriteLocked([&](std::vector<Entry>& entries) -> Result<void> {
    auto entry = FindIn(entries, token, /*join=*/true);
    if (!entry) return std::unexpected(entry.error());
    Entry* e = *entry;
    if (e->uses_left == 0) return {};  // no limit (written before limits existed)
    if (--e->uses_left == 0) entries.erase(entries.begin() + (e - entries.data()));
    return {};
  });
}

}  // namespace phoenix::supervisor::auth
