// EnrollmentService (phoenix.v1.Enrollment): an agent without a certificate trades a join token and
// a CSR for its client certificate. The Authorizer lets Enroll through unauthenticated (the caller
// has no credential yet but the join token in the request); this handler is where that token is
// checked, before anything else is looked at.
//
// Order of checks: join token (UNAUTHENTICATED), node name [a-z0-9][a-z0-9.-]{0,62}
// (INVALID_ARGUMENT, field "node"), CSR signature, key type and CN == node (INVALID_ARGUMENT,
// field "csr_pem"), the name not enrolled with a valid certificate (ALREADY_EXISTS, field "node":
// a reinstalled host is removed first with `phoenixctl node rm`, which revokes the old
// certificate). The certificate is signed by the supervisor's CA with the clientAuth EKU and
// recorded as the node's (auth/enrolled_nodes.h) before the join token's use is taken; the agent's
// key never leaves the agent. Certificates last auth::kAgentCertDays; Renew replaces one before
// it expires.
//
// Thread-safety: Enroll runs concurrently; the CA is immutable, the TokenStore thread-safe.
#pragma once

#include <memory>
#include <string_view>

#include <grpcpp/grpcpp.h>

#include "phoenix/v1/supervisor.grpc.pb.h"
#include "proto/support/pki.h"
#include "supervisor/auth/enrolled_nodes.h"
#include "supervisor/auth/init.h"
#include "supervisor/auth/token_store.h"

namespace phoenix::supervisor::api {

using auth::IsValidNodeName;

class EnrollmentService final : public phoenix::v1::Enrollment::Service {
 public:
  EnrollmentService(std::shared_ptr<auth::TokenStore> tokens,
                    std::shared_ptr<auth::EnrolledNodes> nodes, pki::KeyAndCert ca,
                    int cert_days = auth::kAgentCertDays);

  grpc::Status Enroll(grpc::ServerContext* context, const phoenix::v1::EnrollRequest* request,
                      phoenix::v1::EnrollResponse* response) override;
  // The caller's verified client certificate must be its node's current one (UNAUTHENTICATED
  // otherwise); the CSR must name the same node (INVALID_ARGUMENT, field "csr_pem"). The new
  // certificate replaces the old, which is revoked.
  grpc::Status Renew(grpc::ServerContext* context, const phoenix::v1::RenewRequest* request,
                     phoenix::v1::EnrollResponse* response) override;

 private:
  std::shared_ptr<auth::TokenStore> tokens_;
  std::shared_ptr<auth::EnrolledNodes> nodes_;
  const pki::KeyAndCert ca_;
  const int cert_days_;
};

}  // namespace phoenix::supervisor::api
