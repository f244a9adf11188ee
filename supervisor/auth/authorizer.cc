#include "supervisor/auth/authorizer.h"

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
