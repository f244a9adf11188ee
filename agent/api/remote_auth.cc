#include "agent/api/remote_auth.h"

#include <sys/stat.h>

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include "agent/link/enrollment.h"
#include "phoenix/v1/supervisor.grpc.pb.h"
#include "proto/support/grpc_status.h"

namespace phoenix::agent::api {
namespace {

using phoenix::call_auth::MethodRule;
using R = phoenix::call_auth::Requirement;

constexpr MethodRule kMethodRules[] = {
    {"/phoenix.v1.AgentService/GetGuest", R::kViewer},
    {"/phoenix.v1.AgentService/ListGuests", R::kViewer},
    {"/phoenix.v1.AgentService/GuestLogs", R::kViewer},
    {"/phoenix.v1.AgentService/WatchEvents", R::kViewer},
    {"/phoenix.v1.AgentService/ListImages", R::kViewer},
    {"/phoenix.v1.AgentService/GetNodeInfo", R::kViewer},
    {"/phoenix.v1.AgentService/RunGuest", R::kOperator},
    {"/phoenix.v1.AgentService/StartGuest", R::kOperator},
    {"/phoenix.v1.AgentService/StopGuest", R::kOperator},
    {"/phoenix.v1.AgentService/KillGuest", R::kOperator},
    {"/phoenix.v1.AgentService/DeleteGuest", R::kOperator},
    // They read the node's own files and run recipes as root: more than operating guests.
    {"/phoenix.v1.AgentService/ImportImage", R::kAdmin},
    {"/phoenix.v1.AgentService/BuildImage", R::kAdmin},
};

constexpr MethodRule kServiceDefaults[] = {
    {"/phoenix.v1.AgentService/", R::kAdmin},
};

bool CannotAsk(ErrorCode code) {
  return code == ErrorCode::kUnavailable || code == ErrorCode::kDeadlineExceeded ||
         code == ErrorCode::kFailedPrecondition;
}

// The supervisor's TokenReview over a channel made from the link's current certificate; a new
// channel when agent.pem changed (renewal) or the last one could not be made.
class SupervisorAsker {
 public:
  SupervisorAsker(std::string target, std::filesystem::path pki_dir)
      : target_(std::move(target)), pki_dir_(std::move(pki_dir)) {}

  Result<TokenReviewer::Answer> operator()(std::string_view token) {
    auto stub = Stub();
    if (!stub) return std::unexpected(stub.error());
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + TokenReviewer::kReviewDeadline);
    v1::ReviewTokenRequest request;
    request.set_token(std::string(token));
    v1::ReviewTokenResponse response;
    grpc::Status status = (*stub)->Review(&context, request, &response);
    if (!status.ok()) {
      Error error = FromGrpcStatus(status);
      if (error.code != ErrorCode::kUnauthenticated) {
        error.message =
            "asking the supervisor at " + target_ + " who the token is: " + error.message;
      }
      return std::unexpected(error);
    }
    std::optional<phoenix::call_auth::Role> role;
    switch (response.role()) {
      case v1::ROLE_VIEWER:
        role = phoenix::call_auth::Role::kViewer;
        break;
      case v1::ROLE_OPERATOR:
        role = phoenix::call_auth::Role::kOperator;
        break;
      case v1::ROLE_ADMIN:
        role = phoenix::call_auth::Role::kAdmin;
        break;
      default:
        break;
    }
    if (!role) {
      return Internal("the supervisor's token review named no role (" +
                      std::to_string(response.role()) + ")");
    }
    return TokenReviewer::Answer{.holder = {.role = *role, .token_id = response.token_id()},
                                 .cache_for = std::chrono::milliseconds(response.cache_for_ms())};
  }

 private:
  Result<std::shared_ptr<v1::TokenReview::Stub>> Stub() {
    struct stat st {};
    const std::filesystem::path cert = pki_dir_ / "agent.pem";
    std::lock_guard lock(mu_);
    const bool have = stat(cert.c_str(), &st) == 0;
    const auto mtime = have ? st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec : 0;
    if (stub_ && have && mtime == cert_mtime_ && st.st_ino == cert_inode_) return stub_;
    auto credentials = link::EnrolledCredentials(pki_dir_);
    if (!credentials) return std::unexpected(credentials.error());
    stub_ = std::make_shared<v1::TokenReview::Stub>(grpc::CreateChannel(target_, *credentials));
    cert_mtime_ = mtime;
    cert_inode_ = st.st_ino;
    return stub_;
  }

  const std::string target_;
  const std::filesystem::path pki_dir_;
  std::mutex mu_;
  std::shared_ptr<v1::TokenReview::Stub> stub_;  // under mu_
  long long cert_mtime_ = 0;                     // under mu_
  ino_t cert_inode_ = 0;                         // under mu_
};

}  // namespace

phoenix::call_auth::MethodTable AgentMethodTable() {
  return {.rules = kMethodRules, .service_defaults = kServiceDefaults, .other = R::kViewer};
}

std::unique_ptr<TokenReviewer> TokenReviewer::ForSupervisor(std::string target,
                                                            std::filesystem::path pki_dir) {
  auto asker = std::make_shared<SupervisorAsker>(std::move(target), std::move(pki_dir));
  return std::make_unique<TokenReviewer>(
      [asker](std::string_view token) { return (*asker)(token); });
}

TokenReviewer::TokenReviewer(Ask ask, std::function<Clock::time_point()> now)
    : ask_(std::move(ask)), now_(std::move(now)) {
  PHX_CHECK(ask_ != nullptr && now_ != nullptr);
}

Result<phoenix::call_auth::TokenHolder> TokenReviewer::Check(std::string_view token) {
  if (token.empty() || token.size() > kMaxTokenBytes) {
    return MakeError(ErrorCode::kUnauthenticated, "the bearer token is empty or too long");
  }
  Key key{};
  unsigned int len = 0;
  if (EVP_Digest(token.data(), token.size(), key.data(), &len, EVP_sha256(), nullptr) != 1 ||
      len != key.size()) {
    return Internal("EVP_Digest(sha256) failed");
  }
  std::optional<Cached> known;
  {
    std::lock_guard lock(mu_);
    if (auto it = cache_.find(key); it != cache_.end()) known = it->second;
  }
  const Clock::time_point now = now_();
  if (known && now < known->fresh_until) {
    if (known->good) return known->holder;
    return MakeError(ErrorCode::kUnauthenticated, "the supervisor does not know this token");
  }

  auto answer = ask_(token);
  std::lock_guard lock(mu_);
  if (answer) {
    const auto cache_for = std::min(answer->cache_for, kMaxPositiveCacheFor);
    StoreLocked(
        key,
        {.good = true, .holder = answer->holder, .fresh_until = now + cache_for, .stored_at = now});
    return answer->holder;
  }
  if (answer.error().code == ErrorCode::kUnauthenticated) {
    StoreLocked(key, {.good = false, .fresh_until = now + kNegativeCacheFor, .stored_at = now});
    return MakeError(ErrorCode::kUnauthenticated,
                     "the supervisor does not know this token: " + answer.error().message);
  }
  if (CannotAsk(answer.error().code) && known && known->good &&
      now < known->fresh_until + kStaleGrace) {
    spdlog::warn("token {} accepted from a stale review: {}", known->holder.token_id,
                 answer.error().message);
    return known->holder;
  }
  Error error = answer.error();
  if (CannotAsk(error.code)) {
    error.code = ErrorCode::kUnavailable;
    error.message = "cannot check the bearer token: " + error.message;
  }
  return std::unexpected(error);
}

void TokenReviewer::StoreLocked(const Key& key, Cached cached) {
  if (cache_.size() >= kMaxCached && !cache_.contains(key)) {
    auto oldest = cache_.begin();
    for (auto it = cache_.begin(); it != cache_.end(); ++it) {
      if (it->second.stored_at < oldest->second.stored_at) oldest = it;
    }
    cache_.erase(oldest);
  }
  cache_[key] = std::move(cached);
}

void InstallAgentAuthorizer(grpc::ServerCredentials& creds,
                            std::shared_ptr<TokenReviewer> reviewer) {
  PHX_CHECK(reviewer != nullptr);
  creds.SetAuthMetadataProcessor(std::make_shared<phoenix::call_auth::CallAuthorizer>(
      AgentMethodTable(),
      [reviewer = std::move(reviewer)](std::string_view token) { return reviewer->Check(token); },
      /*blocking=*/true));
}

}  // namespace phoenix::agent::api
