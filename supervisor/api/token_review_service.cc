#include "supervisor/api/token_review_service.h"

#include <spdlog/spdlog.h>

#include "proto/support/grpc_status.h"
#include "supervisor/auth/authorizer.h"

namespace phoenix::supervisor::api {

namespace v1 = phoenix::v1;

// The wire enum and the roles share their numbers (and their order: each includes the ones below).
static_assert(static_cast<int>(auth::Role::kViewer) == v1::ROLE_VIEWER &&
              static_cast<int>(auth::Role::kOperator) == v1::ROLE_OPERATOR &&
              static_cast<int>(auth::Role::kAdmin) == v1::ROLE_ADMIN);

TokenReviewService::TokenReviewService(std::shared_ptr<auth::TokenStore> tokens,
                                       std::shared_ptr<auth::EnrolledNodes> nodes)
    : tokens_(std::move(tokens)), nodes_(std::move(nodes)) {
  PHX_CHECK(tokens_ != nullptr);
  PHX_CHECK(nodes_ != nullptr);
}

grpc::Status TokenReviewService::Review(grpc::ServerContext* context,
                                        const v1::ReviewTokenRequest* request,
                                        v1::ReviewTokenResponse* response) {
  return GuardHandler([&]() -> grpc::Status {
    if (auto peer = auth::AdmitPeer(*nodes_, *context, "token review"); !peer) {
      return ToGrpcStatus(peer.error());
    }
    if (request->token().empty() || request->token().size() > kMaxTokenBytes) {
      return ToGrpcStatus(
          InvalidArgument("token", "must be 1 to " + std::to_string(kMaxTokenBytes) + " bytes")
              .error());
    }
    auto role = tokens_->Authenticate(request->token());
    if (!role) return ToGrpcStatus(role.error());
    auto id = auth::TokenStore::IdOf(request->token());
    if (!id) return ToGrpcStatus(id.error());
    response->set_role(static_cast<v1::Role>(static_cast<int>(*role)));
    response->set_token_id(*id);
    response->set_cache_for_ms(static_cast<uint32_t>(kCacheFor.count()));
    return grpc::Status::OK;
  });
}

}  // namespace phoenix::supervisor::api
