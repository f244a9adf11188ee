// TokenReviewService (phoenix.v1.TokenReview): an enrolled agent asks who a bearer token presented
// to its TCP API is, so one set of tokens (the supervisor's, with their roles, TTLs and
// revocations) guards both APIs; agents keep no tokens (Kubernetes' kubelet does the same with
// TokenReview).
//
// The Authorizer admits only callers with a client certificate from the supervisor's CA; this
// handler also requires it to be its node's current, unrevoked certificate (UNAUTHENTICATED
// otherwise: a removed node learns nothing). An unknown, expired or revoked token is
// UNAUTHENTICATED; an empty or oversized one INVALID_ARGUMENT naming "token". A good answer carries
// the role, the token's id and how long the agent may cache it (kCacheFor: the bound on how long a
// revoked token still works on an agent).
//
// Thread-safety: Review runs concurrently; TokenStore and EnrolledNodes are thread-safe.
#pragma once

#include <chrono>
#include <memory>

#include <grpcpp/grpcpp.h>

#include "phoenix/v1/supervisor.grpc.pb.h"
#include "supervisor/auth/enrolled_nodes.h"
#include "supervisor/auth/token_store.h"

namespace phoenix::supervisor::api {

class TokenReviewService final : public phoenix::v1::TokenReview::Service {
 public:
  static constexpr std::chrono::milliseconds kCacheFor{30'000};
  static constexpr size_t kMaxTokenBytes = 256;

  TokenReviewService(std::shared_ptr<auth::TokenStore> tokens,
                     std::shared_ptr<auth::EnrolledNodes> nodes);

  grpc::Status Review(grpc::ServerContext* context, const phoenix::v1::ReviewTokenRequest* request,
                      phoenix::v1::ReviewTokenResponse* response) override;

 private:
  std::shared_ptr<auth::TokenStore> tokens_;
  std::shared_ptr<auth::EnrolledNodes> nodes_;
};

}  // namespace phoenix::supervisor::api
