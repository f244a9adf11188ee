// Authorization of the agent's optional TCP API (--tls-listen): who may call which method, and who
// a bearer token is. The Unix socket needs neither (only root can open it); a TCP caller presents
// one of the supervisor's bearer tokens, and the agent asks the supervisor that enrolled it who
// that is (phoenix.v1.TokenReview, over the link's mutual TLS), the way a kubelet asks its API
// server. One set of tokens, roles, TTLs and revocations guards both APIs; agents store none.
//
// The table (AgentMethodTable): reads (GetGuest, ListGuests, GuestLogs, WatchEvents, ListImages,
// GetNodeInfo) need viewer; guest changes (Run, Start, Stop, Kill, Delete) operator; ImportImage
// and BuildImage admin, because they read the node's files and run recipes as root. Methods
// missing from it need admin (fail closed).
//
// TokenReviewer caches answers, keyed by the token's SHA-256 (plaintext tokens are not kept):
//   - a yes for as long as the supervisor allows (30 s there): a revoked token works on an agent
//     for at most that long;
//   - a no for kNegativeCacheFor, so a client retrying a bad token does not make each retry a
//     round trip;
//   - while the supervisor cannot be reached, a yes that expired less than kStaleGrace ago is
//     still honoured (logged): an admin can still operate a node whose control plane is down, for
//     a bounded time, with a token that was good moments before. A token never seen gets
//     UNAVAILABLE naming the supervisor.
// At most kMaxCached answers; beyond that the oldest go first.
//
// Thread-safety: Check is safe to call concurrently (one mutex; the review call runs outside it).
// It blocks for up to kReviewDeadline: install it as a blocking processor.
#pragma once

#include <array>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <grpcpp/grpcpp.h>

#include "proto/support/call_auth.h"
#include "proto/support/error.h"

namespace phoenix::agent::api {

phoenix::call_auth::MethodTable AgentMethodTable();

class TokenReviewer {
 public:
  using Clock = std::chrono::steady_clock;
  // The supervisor's answer: who the token is and for how long that may be trusted.
  struct Answer {
    phoenix::call_auth::TokenHolder holder;
    std::chrono::milliseconds cache_for{0};
  };
  // Asks the supervisor. kUnauthenticated: the supervisor said no; kUnavailable/kDeadlineExceeded/
  // kFailedPrecondition: it could not be asked.
  using Ask = std::function<Result<Answer>(std::string_view token)>;

  static constexpr std::chrono::milliseconds kMaxPositiveCacheFor{60'000};
  static constexpr std::chrono::milliseconds kNegativeCacheFor{5'000};
  static constexpr std::chrono::milliseconds kStaleGrace{5 * 60'000};
  static constexpr std::chrono::milliseconds kReviewDeadline{5'000};
  static constexpr size_t kMaxCached = 1024;
  static constexpr size_t kMaxTokenBytes = 256;

  // Asks the supervisor at `target` over mutual TLS with the certificate in pki_dir (re-read
  // whenever agent.pem changes, so renewals are picked up).
  static std::unique_ptr<TokenReviewer> ForSupervisor(std::string target,
                                                      std::filesystem::path pki_dir);
  explicit TokenReviewer(Ask ask, std::function<Clock::time_point()> now = Clock::now);

  [[nodiscard]] Result<phoenix::call_auth::TokenHolder> Check(std::string_view token);

 private:
  using Key = std::array<unsigned char, 32>;
  struct Cached {
    bool good = false;
    phoenix::call_auth::TokenHolder holder;
    Clock::time_point fresh_until;
    Clock::time_point stored_at;
  };
  void StoreLocked(const Key& key, Cached cached);

  const Ask ask_;
  const std::function<Clock::time_point()> now_;
  std::mutex mu_;
  std::map<Key, Cached> cache_;  // under mu_
};

// Installs the table and the reviewer on the TLS port's credentials.
void InstallAgentAuthorizer(grpc::ServerCredentials& creds,
                            std::shared_ptr<TokenReviewer> reviewer);

}  // namespace phoenix::agent::api
