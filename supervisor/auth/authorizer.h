// Authorizer: the single place that decides, for every call the supervisor receives, whether its
// caller may make it. One grpc::AuthMetadataProcessor installed on the server credentials; it runs
// before any handler (and for unknown methods too), reads the method from the ":path"
// pseudo-header and applies the method -> requirement table in authorizer.cc (kMethodRules):
//   /phoenix.v1.Supervisor/*   "authorization: Bearer <token>" with the method's role: reads
//                              viewer, changes operator,
//                              CreateToken/CreateJoinToken/ListTokens/RevokeToken admin; a method
//                              missing from the table needs admin (fail closed).
//   /phoenix.v1.AgentLink/*    a client certificate verified against the supervisor's CA (the TLS
//                              layer verifies any presented certificate; the handler reads the
//                              node name from the auth context property "x509_common_name").
//   /phoenix.v1.Enrollment/Enroll  open: the join token is in the request, checked by the handler.
//                              Other Enrollment methods need admin (fail closed).
//   anything else (reflection, health)  viewer.
// Missing/unknown/expired token or missing certificate -> UNAUTHENTICATED; a token whose role is
// too low -> PERMISSION_DENIED. Both reach the client with exactly that code.
//
// Verified on Debian's gRPC 1.51 (experiment, then authorizer_test): the processor's metadata
// holds ":path", and the grpc::Status it returns is the status the client sees; the handler never
// runs. On success the token's role is added to the call's AuthContext as "phoenix_role" and the
// authorization header is consumed (handlers never see tokens).
//
// Only TLS servers run it: an --insecure (loopback-only) server has no processor and no auth.
// Thread-safety: Process runs concurrently on gRPC's threads; it shares ownership of the
// thread-safe TokenStore.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_context.h>

#include "supervisor/auth/token_store.h"

namespace phoenix::supervisor::auth {

// Metadata and auth-context names others rely on.
inline constexpr std::string_view kAuthorizationMetadataKey = "authorization";  // "Bearer <t>"
inline constexpr std::string_view kBearerPrefix = "Bearer ";
inline constexpr std::string_view kRoleProperty = "phoenix_role";  // RoleName of the caller
inline constexpr std::string_view kCommonNameProperty = "x509_common_name";  // client cert CN

// What a call must present.
enum class Requirement { kNone, kClientCertificate, kViewer, kOperator, kAdmin };
std::string_view RequirementName(Requirement requirement);

struct MethodRule {
  std::string_view method;  // full path, "/phoenix.v1.Supervisor/ListServices"
  Requirement requirement;
};
// The explicit table (tests check that every rpc of supervisor.proto is in it).
std::span<const MethodRule> MethodRules();
// The table's answer for a method path, including the per-service fail-closed defaults.
Requirement RequirementFor(std::string_view method);

class Authorizer final : public grpc::AuthMetadataProcessor {
 public:
  explicit Authorizer(std::shared_ptr<TokenStore> tokens);

  // Runs inline on gRPC's thread: a lookup is one stat, a mutex and in-memory hash compares (the
  // small tokens file is re-read only after it changed), cheaper than gRPC's hop to a thread pool.
  bool IsBlocking() const override { return false; }

  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata,
                       OutputMetadata* response_metadata) override;

 private:
  std::shared_ptr<TokenStore> tokens_;
};

// creds->SetAuthMetadataProcessor(std::make_shared<Authorizer>(tokens)).
void InstallAuthorizer(grpc::ServerCredentials& creds, std::shared_ptr<TokenStore> tokens);

// For handlers (sync and callback): the verified client certificate's common name (the node name)
// and the certificate itself (PEM), if the caller presented one.
std::optional<std::string> PeerCommonName(const grpc::ServerContextBase& context);
std::optional<std::string> PeerCertificatePem(const grpc::ServerContextBase& context);
// For handlers: the role the Authorizer granted the caller's token, if the call carried one.
std::optional<Role> CallerRole(const grpc::ServerContext& context);

}  // namespace phoenix::supervisor::auth
