// Call authorization shared by every Phoenix gRPC server that serves over TLS (the supervisor, and
// an agent's optional TCP API): roles, the method -> requirement table type, and CallAuthorizer,
// the grpc::AuthMetadataProcessor that applies such a table to every call before any handler runs
// (and for unknown methods too).
//
// A call's method comes from the ":path" pseudo-header; its requirement from the server's table:
//   kNone               open (the handler checks what the request carries)
//   kClientCertificate  a client certificate verified against the server's CA (the TLS layer
//                       verifies any presented certificate; handlers read the common name)
//   kViewer/kOperator/kAdmin  "authorization: Bearer <token>" whose role is at least that; the
//                       server's TokenCheck says what a token is.
// Missing/unknown/expired token or missing certificate -> UNAUTHENTICATED; a role too low ->
// PERMISSION_DENIED; both reach the client with exactly that code (verified on Debian's gRPC 1.51:
// the processor's metadata holds ":path", the status it returns is the one the client sees, and
// the handler never runs).
//
// Nothing is written into the AuthContext: gRPC 1.51 hands the processor the *connection's*
// context, so a property added for one call is seen by every later call on that connection (a
// later operator call read the role of an earlier admin call) and piles up for as long as the
// connection lives. A handler that must know its caller reads the token again (CallerToken) and
// asks its store; the authorization header is therefore left in the call's metadata.
//
// Thread-safety: Process runs concurrently on gRPC's threads; the TokenCheck must be thread-safe.
// It runs inline on gRPC's thread unless `blocking` (gRPC then hops to its executor): say blocking
// when the check can wait on I/O, as a check that asks another server does.
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/server_context.h>

#include "proto/support/error.h"

namespace phoenix::call_auth {

enum class Role { kViewer = 1, kOperator = 2, kAdmin = 3 };  // each includes the ones below
std::string_view RoleName(Role role);                        // "viewer", "operator", "admin"
std::optional<Role> ParseRole(std::string_view name);        // inverse of RoleName

// Metadata and auth-context names others rely on.
inline constexpr std::string_view kAuthorizationMetadataKey = "authorization";  // "Bearer <t>"
inline constexpr std::string_view kBearerPrefix = "Bearer ";
inline constexpr std::string_view kCommonNameProperty = "x509_common_name";  // client cert CN

// What a call must present.
enum class Requirement { kNone, kClientCertificate, kViewer, kOperator, kAdmin };
std::string_view RequirementName(Requirement requirement);

struct MethodRule {
  std::string_view method;  // a full path, "/phoenix.v1.Supervisor/ListServices", or for
                            // service_defaults a prefix, "/phoenix.v1.Supervisor/"
  Requirement requirement;
};

// One server's table: explicit rules first, then per-service defaults for methods missing from
// them (fail closed), then `other` for everything else the server exposes (reflection, health).
struct MethodTable {
  std::span<const MethodRule> rules;
  std::span<const MethodRule> service_defaults;
  Requirement other = Requirement::kAdmin;

  Requirement For(std::string_view method) const;
};

// Who a bearer token is: its role, and the id that names it in `token ls` and the event log.
struct TokenHolder {
  Role role = Role::kViewer;
  std::string token_id;
};
// "token <id> (<role>)": how the event log names the caller.
std::string ActorName(const TokenHolder& holder);
// kUnauthenticated for an unknown/expired token; other codes (kUnavailable when the authority
// cannot be asked) reach the client as they are.
using TokenCheck = std::function<Result<TokenHolder>(std::string_view token)>;

class CallAuthorizer final : public grpc::AuthMetadataProcessor {
 public:
  CallAuthorizer(MethodTable table, TokenCheck check, bool blocking);

  bool IsBlocking() const override { return blocking_; }

  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata,
                       OutputMetadata* response_metadata) override;

 private:
  const MethodTable table_;
  const TokenCheck check_;
  const bool blocking_;
};

// For handlers (sync and callback): the verified client certificate's common name and the
// certificate itself (PEM), if the caller presented one.
std::optional<std::string> PeerCommonName(const grpc::ServerContextBase& context);
std::optional<std::string> PeerCertificatePem(const grpc::ServerContextBase& context);
// For handlers: the bearer token this call presented (the CallAuthorizer admitted it), if any.
std::optional<std::string> CallerToken(const grpc::ServerContextBase& context);

}  // namespace phoenix::call_auth
