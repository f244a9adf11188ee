#include "supervisor/api/enrollment_service.h"

#include <spdlog/spdlog.h>

#include "proto/support/grpc_status.h"

namespace phoenix::supervisor::api {

bool IsValidNodeName(std::string_view node) {
  if (node.empty() || node.size() > 63) return false;
  auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!lower_or_digit(node.front())) return false;
  for (char c : node.substr(1)) {
    if (!lower_or_digit(c) && c != '.' && c != '-') return false;
  }
  return true;
}

EnrollmentService::EnrollmentService(std::shared_ptr<auth::TokenStore> tokens, pki::KeyAndCert ca,
                                     int cert_days)
    : tokens_(std::move(tokens)), ca_(std::move(ca)), cert_days_(cert_days) {
  PHX_CHECK(tokens_ != nullptr);
}

grpc::Status EnrollmentService::Enroll(grpc::ServerContext* context,
                                       const phoenix::v1::EnrollRequest* request,
                                       phoenix::v1::EnrollResponse* response) {
  return GuardHandler([&]() -> grpc::Status {
    if (auto ok = tokens_->CheckJoinToken(request->join_token()); !ok) {
      spdlog::warn("enrollment of '{}' from {} refused: {}", request->node().substr(0, 64),
                   context->peer(), ok.error().message);
      return ToGrpcStatus(ok.error());
    }
    if (!IsValidNodeName(request->node())) {
      return ToGrpcStatus(InvalidArgument("node", "must match [a-z0-9][a-z0-9.-]{0,62}").error());
    }
    auto cert = pki::SignClientCsr(ca_, request->csr_pem(), request->node(), cert_days_);
    if (!cert) {
      if (cert.error().field == "csr_pem") return ToGrpcStatus(cert.error());
      // Anything else is the supervisor's own CA failing: not the caller's business.
      spdlog::error("signing the certificate of '{}': {}", request->node(),
                    cert.error().ToString());
      return ToGrpcStatus(Internal("the supervisor could not sign the certificate").error());
    }
    // The use is taken only now, so a malformed request does not burn it; of two enrollments
    // racing for the last use, one is refused here.
    if (auto used = tokens_->ConsumeJoinToken(request->join_token()); !used) {
      spdlog::warn("enrollment of '{}' from {} refused: {}", request->node(), context->peer(),
                   used.error().message);
      return ToGrpcStatus(used.error());
    }
    response->set_certificate_pem(std::move(*cert));
    response->set_ca_pem(ca_.cert_pem);
    spdlog::info("enrolled node '{}' from {}", request->node(), context->peer());
    return grpc::Status::OK;
  });
}

}  // namespace phoenix::supervisor::api
