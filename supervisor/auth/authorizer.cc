#include "supervisor/auth/authorizer.h"

#include <spdlog/spdlog.h>

namespace phoenix::supervisor::auth {
namespace {

using R = Requirement;

// THE table. Reads need viewer, changes operator, minting credentials admin.
constexpr MethodRule kMethodRules[] = {
    {"/phoenix.v1.Supervisor/GetService", R::kViewer},
    {"/phoenix.v1.Supervisor/ListServices", R::kViewer},
    {"/phoenix.v1.Supervisor/ListNodes", R::kViewer},
    {"/phoenix.v1.Supervisor/GetNode", R::kViewer},
    {"/phoenix.v1.Supervisor/WatchEvents", R::kViewer},
    {"/phoenix.v1.Supervisor/CreateService", R::kOperator},
    {"/phoenix.v1.Supervisor/ScaleService", R::kOperator},
    {"/phoenix.v1.Supervisor/SetAutoscale", R::kOperator},
    {"/phoenix.v1.Supervisor/DeleteService", R::kOperator},
    {"/phoenix.v1.Supervisor/DrainNode", R::kOperator},
    {"/phoenix.v1.Supervisor/UndrainNode", R::kOperator},
    {"/phoenix.v1.Supervisor/CreateToken", R::kAdmin},
    {"/phoenix.v1.Supervisor/CreateJoinToken", R::kAdmin},
    {"/phoenix.v1.Supervisor/ListTokens", R::kAdmin},
    {"/phoenix.v1.Supervisor/RevokeToken", R::kAdmin},
    {"/phoenix.v1.Supervisor/RemoveNode", R::kAdmin},
    {"/phoenix.v1.AgentLink/Connect", R::kClientCertificate},
    {"/phoenix.v1.TokenReview/Review", R::kClientCertificate},
    {"/phoenix.v1.Enrollment/Enroll", R::kNone},
    {"/phoenix.v1.Enrollment/Renew", R::kNone},  // the client certificate, checked by the handler
};

// Methods of our services missing from the table: fail closed.
constexpr MethodRule kServiceDefaults[] = {
    {"/phoenix.v1.Supervisor/", R::kAdmin},
    {"/phoenix.v1.AgentLink/", R::kClientCertificate},
    {"/phoenix.v1.TokenReview/", R::kClientCertificate},
    {"/phoenix.v1.Enrollment/", R::kAdmin},
};

constexpr phoenix::call_auth::MethodTable kTable{
    .rules = kMethodRules,
    .service_defaults = kServiceDefaults,
    .other = R::kViewer,  // reflection, health
};

}  // namespace

std::span<const MethodRule> MethodRules() { return kMethodRules; }

Requirement RequirementFor(std::string_view method) { return kTable.For(method); }

Result<AdmittedPeer> AdmitPeer(EnrolledNodes& nodes, const grpc::ServerContextBase& context,
                               std::string_view what) {
  AdmittedPeer peer{.node = PeerCommonName(context).value_or(""),
                    .cert_pem = PeerCertificatePem(context).value_or("")};
  if (peer.node.empty() || peer.cert_pem.empty()) {
    return MakeError(ErrorCode::kUnauthenticated,
                     std::string(what) + " needs an enrolled node's client certificate");
  }
  if (auto ok = AdmitCertificate(nodes, peer.node, peer.cert_pem); !ok) {
    spdlog::warn("{} for '{}' from {} refused: {}", what, peer.node, context.peer(),
                 ok.error().message);
    return std::unexpected(ok.error());
  }
  return peer;
}

void InstallAuthorizer(grpc::ServerCredentials& creds, std::shared_ptr<TokenStore> tokens) {
  PHX_CHECK(tokens != nullptr);
  auto check = [tokens = std::move(tokens)](
                   std::string_view token) -> Result<phoenix::call_auth::TokenHolder> {
    auto role = tokens->Authenticate(token);
    if (!role) return std::unexpected(role.error());
    auto id = TokenStore::IdOf(token);
    if (!id) return std::unexpected(id.error());
    return phoenix::call_auth::TokenHolder{.role = *role, .token_id = *id};
  };
  creds.SetAuthMetadataProcessor(
      std::make_shared<phoenix::call_auth::CallAuthorizer>(kTable, std::move(check), false));
}

}  // namespace phoenix::supervisor::auth
