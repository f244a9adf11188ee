#include "supervisor/auth/authorizer.h"

#include <algorithm>
#include <cctype>

#include <spdlog/spdlog.h>

#include "proto/support/grpc_status.h"

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
    {"/phoenix.v1.Enrollment/Enroll", R::kNone},
    {"/phoenix.v1.Enrollment/Renew", R::kNone},  // the client certificate, checked by the handler
};

// Methods of our services missing from the table: fail closed.
constexpr MethodRule kServiceDefaults[] = {
    {"/phoenix.v1.Supervisor/", R::kAdmin},
    {"/phoenix.v1.AgentLink/", R::kClientCertificate},
    {"/phoenix.v1.Enrollment/", R::kAdmin},
};

// Everything else the server may expose (reflection, health).
constexpr Requirement kOtherMethods = R::kViewer;

std::string_view ToView(const grpc::string_ref& s) { return {s.data(), s.size()}; }

grpc::Status Unauthenticated(std::string message) {
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, std::move(message));
}

}  // namespace

std::string_view RequirementName(Requirement requirement) {
  switch (requirement) {
    case R::kNone:
      return "none";
    case R::kClientCertificate:
      return "client certificate";
    case R::kViewer:
      return "viewer";
    case R::kOperator:
      return "operator";
    case R::kAdmin:
      return "admin";
  }
  return "admin";
}

std::span<const MethodRule> MethodRules() { return kMethodRules; }

Requirement RequirementFor(std::string_view method) {
  for (const MethodRule& rule : kMethodRules) {
    if (rule.method == method) return rule.requirement;
  }
  for (const MethodRule& rule : kServiceDefaults) {
    if (method.starts_with(rule.method)) return rule.requirement;
  }
  return kOtherMethods;
}

Authorizer::Authorizer(std::shared_ptr<TokenStore> tokens) : tokens_(std::move(tokens)) {
  PHX_CHECK(tokens_ != nullptr);
}

grpc::Status Authorizer::Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                                 OutputMetadata* consumed_auth_metadata,
                                 OutputMetadata* /*response_metadata*/) {
  auto path_it = auth_metadata.find(":path");
  if (path_it == auth_metadata.end()) {
    // Never seen with gRPC 1.51; refuse rather than guess which method this is.
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "call without a method path");
  }
  const std::string_view method = ToView(path_it->second);
  const Requirement requirement = RequirementFor(method);

  switch (requirement) {
    case R::kNone:
      return grpc::Status::OK;
    case R::kClientCertificate: {
      // gRPC sets this property only from a peer certificate that verified against our CA
      // (GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY fails the handshake otherwise).
      auto cn = context->FindPropertyValues(std::string(kCommonNameProperty));
      if (cn.empty() || cn.front().empty()) {
        return Unauthenticated(std::string(method) +
                               " needs a client certificate issued by the supervisor's CA "
                               "(enroll the agent with a join token first)");
      }
      return grpc::Status::OK;
    }
    case R::kViewer:
    case R::kOperator:
    case R::kAdmin:
      break;
  }

  auto range = auth_metadata.equal_range(std::string(kAuthorizationMetadataKey));
  if (range.first == range.second) {
    return Unauthenticated(std::string(method) +
                           " needs a bearer token: metadata 'authorization: Bearer <token>' "
                           "(phoenixctl --token / --token-file / $PHOENIX_TOKEN)");
  }
  if (std::next(range.first) != range.second) {
    return Unauthenticated("more than one authorization header");
  }
  std::string_view header = ToView(range.first->second);
  if (header.size() < kBearerPrefix.size() ||
      !std::equal(kBearerPrefix.begin(), kBearerPrefix.end(), header.begin(),
                  [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
    return Unauthenticated("authorization header is not 'Bearer <token>'");
  }
  std::string_view token = header.substr(kBearerPrefix.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);

  auto role = tokens_->Authenticate(token);
  if (!role) {
    if (role.error().code != ErrorCode::kUnauthenticated) {
      spdlog::error("authorizing {}: {}", method, role.error().ToString());
    }
    return ToGrpcStatus(role.error());
  }
  const Role needed = requirement == R::kViewer     ? Role::kViewer
                      : requirement == R::kOperator ? Role::kOperator
                                                    : Role::kAdmin;
  // Role values are ordered: each includes the ones below.
  if (static_cast<int>(*role) < static_cast<int>(needed)) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        std::string(method) + " needs role " +
                            std::string(RequirementName(requirement)) + "; the token has role " +
                            std::string(RoleName(*role)));
  }
  context->AddProperty(std::string(kRoleProperty), std::string(RoleName(*role)));
  consumed_auth_metadata->insert({std::string(kAuthorizationMetadataKey), std::string(header)});
  return grpc::Status::OK;
}

void InstallAuthorizer(grpc::ServerCredentials& creds, std::shared_ptr<TokenStore> tokens) {
  creds.SetAuthMetadataProcessor(std::make_shared<Authorizer>(std::move(tokens)));
}

namespace {

std::optional<std::string> PeerProperty(const grpc::ServerContextBase& context,
                                        const std::string& name) {
  auto auth = context.auth_context();
  if (!auth) return std::nullopt;
  auto values = auth->FindPropertyValues(name);
  if (values.empty() || values.front().empty()) return std::nullopt;
  return std::string(values.front().data(), values.front().size());
}

}  // namespace

std::optional<std::string> PeerCommonName(const grpc::ServerContextBase& context) {
  return PeerProperty(context, std::string(kCommonNameProperty));
}

std::optional<std::string> PeerCertificatePem(const grpc::ServerContextBase& context) {
  return PeerProperty(context, GRPC_X509_PEM_CERT_PROPERTY_NAME);
}

std::optional<Role> CallerRole(const grpc::ServerContext& context) {
  auto auth = context.auth_context();
  if (!auth) return std::nullopt;
  auto values = auth->FindPropertyValues(std::string(kRoleProperty));
  if (values.empty()) return std::nullopt;
  return ParseRole(ToView(values.front()));
}

}  // namespace phoenix::supervisor::auth
