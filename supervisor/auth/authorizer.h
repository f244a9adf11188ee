// The supervisor's call authorization: its method -> requirement table, applied to every call by
// the shared CallAuthorizer (proto/support/call_auth.h), with bearer tokens checked against the
// supervisor's TokenStore.
//   /phoenix.v1.Supervisor/*   reads viewer, changes operator, CreateToken/CreateJoinToken/
//                              ListTokens/RevokeToken/RemoveNode admin; a method missing from the
//                              table needs admin (fail closed).
//   /phoenix.v1.AgentLink/*, /phoenix.v1.TokenReview/*  an agent's client certificate verified
//                              against the supervisor's CA (handlers read the node name from it).
//   /phoenix.v1.Enrollment/Enroll, Renew  open: the join token or the current certificate is in
//                              the call, checked by the handler. Other Enrollment methods admin.
//   anything else (reflection, health)  viewer.
//
// A token lookup is one stat, a mutex and in-memory hash compares (the small tokens file is
// re-read only after it changed): cheaper inline on gRPC's thread than a hop to its executor.
// Only TLS servers run it: an --insecure (loopback-only) server has no processor and no auth.
#pragma once

#include <memory>
#include <span>

#include <grpcpp/security/server_credentials.h>

#include "proto/support/call_auth.h"
#include "supervisor/auth/enrolled_nodes.h"
#include "supervisor/auth/token_store.h"

namespace phoenix::supervisor::auth {

using phoenix::call_auth::CallerToken;
using phoenix::call_auth::kAuthorizationMetadataKey;
using phoenix::call_auth::kBearerPrefix;
using phoenix::call_auth::kCommonNameProperty;
using phoenix::call_auth::MethodRule;
using phoenix::call_auth::PeerCertificatePem;
using phoenix::call_auth::PeerCommonName;
using phoenix::call_auth::Requirement;
using phoenix::call_auth::RequirementName;

// The explicit table (tests check that every rpc of supervisor.proto is in it).
std::span<const MethodRule> MethodRules();
// The table's answer for a method path, including the per-service fail-closed defaults.
Requirement RequirementFor(std::string_view method);

// A node's call (AgentLink, Renew, TokenReview): its verified client certificate, admitted as the
// node's current one (AdmitCertificate). kUnauthenticated without one or for any other (logged
// with `what` and the peer).
struct AdmittedPeer {
  std::string node;      // the certificate's common name
  std::string cert_pem;  // the certificate itself
};
[[nodiscard]] Result<AdmittedPeer> AdmitPeer(EnrolledNodes& nodes,
                                             const grpc::ServerContextBase& context,
                                             std::string_view what);

// creds.SetAuthMetadataProcessor with the supervisor's table and tokens.
void InstallAuthorizer(grpc::ServerCredentials& creds, std::shared_ptr<TokenStore> tokens);

}  // namespace phoenix::supervisor::auth
