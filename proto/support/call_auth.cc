#include "proto/support/call_auth.h"

#include <algorithm>
#include <cctype>

#include <spdlog/spdlog.h>

#include "proto/support/grpc_status.h"

namespace phoenix::call_auth {
namespace {

using R = Requirement;

std::string_view ToView(const grpc::string_ref& s) { return {s.data(), s.size()}; }

grpc::Status Unauthenticated(std::string message) {
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, std::move(message));
}

std::optional<std::string> Property(const grpc::ServerContextBase& context,
                                    const std::string& name) {
  auto auth = context.auth_context();
  if (!auth) return std::nullopt;
  auto values = auth->FindPropertyValues(name);
  if (values.empty() || values.front().empty()) return std::nullopt;
  return std::string(values.front().data(), values.front().size());
}

// The token of an "authorization" header value "Bearer <token>" (scheme case-insensitive, spaces
// around the token dropped), or nullopt.
std::optional<std::string_view> BearerOf(std::string_view header) {
  if (header.size() < kBearerPrefix.size() ||
      !std::equal(kBearerPrefix.begin(), kBearerPrefix.end(), header.begin(),
                  [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
    return std::nullopt;
  }
  std::string_view token = header.substr(kBearerPrefix.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  return token;
}

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kViewer:
      return "viewer";
    case Role::kOperator:
      return "operator";
    case Role::kAdmin:
      return "admin";
  }
  return "admin";
}

std::optional<Role> ParseRole(std::string_view name) {
  for (Role role : {Role::kViewer, Role::kOperator, Role::kAdmin}) {
    if (RoleName(role) == name) return role;
  }
  return std::nullopt;
}

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

Requirement MethodTable::For(std::string_view method) const {
  for (const MethodRule& rule : rules) {
    if (rule.method == method) return rule.requirement;
  }
  for (const MethodRule& rule : service_defaults) {
    if (method.starts_with(rule.method)) return rule.requirement;
  }
  return other;
}

CallAuthorizer::CallAuthorizer(MethodTable table, TokenCheck check, bool blocking)
    : table_(table), check_(std::move(check)), blocking_(blocking) {
  PHX_CHECK(check_ != nullptr);
}

grpc::Status CallAuthorizer::Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                                     OutputMetadata* /*consumed_auth_metadata*/,
                                     OutputMetadata* /*response_metadata*/) {
  auto path_it = auth_metadata.find(":path");
  if (path_it == auth_metadata.end()) {
    // Never seen with gRPC 1.51; refuse rather than guess which method this is.
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "call without a method path");
  }
  const std::string_view method = ToView(path_it->second);
  const Requirement requirement = table_.For(method);

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
  std::optional<std::string_view> token = BearerOf(ToView(range.first->second));
  if (!token) return Unauthenticated("authorization header is not 'Bearer <token>'");

  auto holder = check_(*token);
  if (!holder) {
    if (holder.error().code != ErrorCode::kUnauthenticated) {
      spdlog::error("authorizing {}: {}", method, holder.error().ToString());
    }
    return ToGrpcStatus(holder.error());
  }
  const Role needed = requirement == R::kViewer     ? Role::kViewer
                      : requirement == R::kOperator ? Role::kOperator
                                                    : Role::kAdmin;
  // Role values are ordered: each includes the ones below.
  if (static_cast<int>(holder->role) < static_cast<int>(needed)) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        std::string(method) + " needs role " +
                            std::string(RequirementName(requirement)) + "; the token has role " +
                            std::string(RoleName(holder->role)));
  }
  return grpc::Status::OK;
}

std::optional<std::string> PeerCommonName(const grpc::ServerContextBase& context) {
  return Property(context, std::string(kCommonNameProperty));
}

std::optional<std::string> PeerCertificatePem(const grpc::ServerContextBase& context) {
  return Property(context, GRPC_X509_PEM_CERT_PROPERTY_NAME);
}

std::optional<std::string> CallerToken(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  auto range = metadata.equal_range(
      grpc::string_ref(kAuthorizationMetadataKey.data(), kAuthorizationMetadataKey.size()));
  if (range.first == range.second || std::next(range.first) != range.second) return std::nullopt;
  std::optional<std::string_view> token = BearerOf(ToView(range.first->second));
  if (!token) return std::nullopt;
  if (token->empty()) return std::nullopt;
  return std::string(*token);
}

std::string ActorName(const TokenHolder& holder) {
  return "token " + holder.token_id + " (" + std::string(RoleName(holder.role)) + ")";
}

}  // namespace phoenix::call_auth
