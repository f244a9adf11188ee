#include "supervisor/api/enrollment_service.h"

#include <spdlog/spdlog.h>

#include "proto/support/grpc_status.h"
#include "supervisor/auth/authorizer.h"

namespace phoenix::supervisor::api {

EnrollmentService::EnrollmentService(std::shared_ptr<auth::TokenStore> tokens,
                                     std::shared_ptr<auth::EnrolledNodes> nodes, pki::KeyAndCert ca,
                                     int cert_days)
    : tokens_(std::move(tokens)),
      nodes_(std::move(nodes)),
      ca_(std::move(ca)),
      cert_days_(cert_days) {
  PHX_CHECK(tokens_ != nullptr);
  PHX_CHECK(nodes_ != nullptr);
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
    auto serial = pki::CertificateSerial(*cert);
    auto not_after = pki::CertificateNotAfter(*cert);
    if (!serial || !not_after) {
      spdlog::error("reading the certificate just signed for '{}': {}", request->node(),
                    (serial ? not_after.error() : serial.error()).ToString());
      return ToGrpcStatus(Internal("the supervisor could not sign the certificate").error());
    }
    // Recorded before the use is taken: of two enrollments of one name, one is refused here.
    if (auto enrolled =
            nodes_->Enroll({.node = request->node(), .serial = *serial, .not_after = *not_after});
        !enrolled) {
      spdlog::warn("enrollment of '{}' from {} refused: {}", request->node(), context->peer(),
                   enrolled.error().message);
      return ToGrpcStatus(enrolled.error());
    }
    // The use is taken only now, so a malformed request does not burn it; of two enrollments
    // racing for the last use, one is refused here, and its certificate never leaves.
    if (auto used = tokens_->ConsumeJoinToken(request->join_token()); !used) {
      spdlog::warn("enrollment of '{}' from {} refused: {}", request->node(), context->peer(),
                   used.error().message);
      if (auto undone = nodes_->Remove(request->node()); !undone) {
        spdlog::error("enrollment of '{}': undoing its record: {}", request->node(),
                      undone.error().message);
      }
      return ToGrpcStatus(used.error());
    }
    response->set_certificate_pem(std::move(*cert));
    response->set_ca_pem(ca_.cert_pem);
    spdlog::info("enrolled node '{}' from {}", request->node(), context->peer());
    return grpc::Status::OK;
  });
}

grpc::Status EnrollmentService::Renew(grpc::ServerContext* context,
                                      const phoenix::v1::RenewRequest* request,
                                      phoenix::v1::EnrollResponse* response) {
  return GuardHandler([&]() -> grpc::Status {
    // A node without a certificate enrolls with a join token instead.
    auto peer = auth::AdmitPeer(*nodes_, *context, "certificate renewal");
    if (!peer) return ToGrpcStatus(peer.error());
    const std::string& node = peer->node;
    const std::string& current = peer->cert_pem;
    auto cert = pki::SignClientCsr(ca_, request->csr_pem(), node, cert_days_);
    if (!cert) {
      if (cert.error().field == "csr_pem") return ToGrpcStatus(cert.error());
      spdlog::error("signing the renewed certificate of '{}': {}", node, cert.error().ToString());
      return ToGrpcStatus(Internal("the supervisor could not sign the certificate").error());
    }
    auto old_serial = pki::CertificateSerial(current);
    auto serial = pki::CertificateSerial(*cert);
    auto not_after = pki::CertificateNotAfter(*cert);
    if (!old_serial || !serial || !not_after) {
      return ToGrpcStatus(Internal("the supervisor could not read the certificates").error());
    }
    if (auto renewed =
            nodes_->Renew(*old_serial, {.node = node, .serial = *serial, .not_after = *not_after});
        !renewed) {
      return ToGrpcStatus(renewed.error());
    }
    response->set_certificate_pem(std::move(*cert));
    response->set_ca_pem(ca_.cert_pem);
    spdlog::info("renewed the certificate of node '{}' ({} -> {})", node, *old_serial, *serial);
    return grpc::Status::OK;
  });
}

}  // namespace phoenix::supervisor::api
