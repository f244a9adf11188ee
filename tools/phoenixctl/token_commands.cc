#include "tools/phoenixctl/token_commands.h"

#include <limits>
#include <map>
#include <optional>

namespace phoenix::ctl {

namespace {

constexpr std::string_view kTokenGroupHelp =
    R"(phoenixctl token: bearer tokens for the supervisor's admin API.

Usage:
  phoenixctl token create --role viewer|operator|admin [--description TEXT] [--ttl DURATION]
  phoenixctl token ls
  phoenixctl token revoke ID

Commands:
  create   mint a token (needs an admin token). It is printed once on stdout; the supervisor
           keeps only its hash, so a lost token cannot be shown again: mint a new one.
  ls       the live tokens (bearer and join): id, kind, expiry, description; never the tokens
  revoke   remove a token by the id 'token ls' shows: it authenticates nothing from then on

Roles: viewer reads (service ls/show, node ls/show, events); operator also changes services and
nodes (create, scale, rm, drain); admin also mints tokens and join tokens.

Supervisor flags: --supervisor HOST:PORT ($PHOENIX_SUPERVISOR, default 127.0.0.1:7400),
  --token TOKEN ($PHOENIX_TOKEN) or --token-file FILE, --ca-file FILE ($PHOENIX_CA),
  --insecure (plaintext, loopback only). See 'phoenixctl --help'.

Examples:
  # a read-only token for a dashboard, using the admin token the supervisor wrote at init
  phoenixctl --token-file /var/lib/phoenix/supervisor/admin.token token create --role viewer \
      --description grafana
  # a laptop's token that lapses by itself, and the way to end it sooner
  phoenixctl token create --role operator --description laptop --ttl 168h
  phoenixctl token ls
  phoenixctl token revoke 3f9a1c0e7b2d
)";

constexpr std::string_view kTokenLsHelp =
    R"(phoenixctl token ls: the supervisor's live tokens (needs admin).

Usage:
  phoenixctl token ls [-o json]

Shows each token's id (the first 12 hex digits of its hash: enough to revoke it, useless to
authenticate), kind (viewer, operator, admin or join), expiry, enrollments left (join tokens) and
description. The tokens themselves are never stored, so they cannot be shown.
)";

constexpr std::string_view kTokenRevokeHelp =
    R"(phoenixctl token revoke: remove a token (needs admin).

Usage:
  phoenixctl token revoke ID [-o json]

ID is what 'phoenixctl token ls' shows (or at least its first 8 digits). From the next call on
the token authenticates nothing; revoking a join token stops further enrollments with it.

Examples:
  phoenixctl token revoke 3f9a1c0e7b2d
)";

constexpr std::string_view kTokenCreateHelp =
    R"(phoenixctl token create: mint a bearer token for the supervisor's admin API (needs admin).

Usage:
  phoenixctl token create --role viewer|operator|admin [--description TEXT] [--ttl DURATION]
                          [-o json]

The token is printed once on stdout (nothing else goes to stdout, so it can be captured); the
supervisor keeps only its hash. Pass it as --token, --token-file or $PHOENIX_TOKEN.

Flags:
  --role viewer|operator|admin   what the token may do (required): viewer reads, operator also
                                 changes services and nodes, admin also mints tokens
  --description TEXT             who or what the token is for, kept with its hash
  --ttl DURATION                 how long it is good for, e.g. 8h or 168h, at most a week
                                 (default: until 'phoenixctl token revoke')

Examples:
  phoenixctl token create --role operator --description "ci deploys"
  export PHOENIX_TOKEN=$(phoenixctl token create --role viewer --description laptop)
)";

constexpr std::string_view kJoinGroupHelp =
    R"(phoenixctl join-token: tokens that let an agent enroll with the supervisor (trade the token
and a certificate request for its client certificate).

Usage:
  phoenixctl join-token create [--ttl DURATION]

Commands:
  create   mint a join token (needs an admin token), printed once on stdout. It enrolls --uses
           agents (default 1) until it expires.

Supervisor flags: --supervisor HOST:PORT ($PHOENIX_SUPERVISOR, default 127.0.0.1:7400),
  --token TOKEN ($PHOENIX_TOKEN) or --token-file FILE, --ca-file FILE ($PHOENIX_CA),
  --insecure (plaintext, loopback only). See 'phoenixctl --help'.

Examples:
  phoenixctl join-token create --ttl 15m
)";

constexpr std::string_view kJoinCreateHelp =
    R"(phoenixctl join-token create: mint a join token for enrolling agents (needs admin).

Usage:
  phoenixctl join-token create [--ttl DURATION] [--uses N] [-o json]

The token goes to stdout alone (so it can be captured); its expiry goes to stderr. It enrolls at
most --uses agents until it expires: a leaked token cannot enroll more nodes than you meant.

Flags:
  --ttl DURATION   how long the token is valid, e.g. 15m, 1h, 24h (default 1h; at most a week)
  --uses N         how many agents it may enroll (default 1, at most 10000)

Examples:
  phoenixctl join-token create
  JOIN=$(phoenixctl join-token create --ttl 10m --uses 3)
)";

Result<v1::Role> ParseRole(std::string_view text) {
  if (text == "viewer") return v1::ROLE_VIEWER;
  if (text == "operator") return v1::ROLE_OPERATOR;
  if (text == "admin") return v1::ROLE_ADMIN;
  return InvalidArgument("", "expects viewer, operator or admin");
}

int TokenCreate(Context& ctx, std::span<const std::string> args) {
  constexpr std::string_view kCommand = "token create";
  std::optional<v1::Role> role;
  std::string description;
  std::optional<std::chrono::milliseconds> ttl;
  FlagSet flags{std::string(kCommand)};
  flags.Duration("ttl", &ttl);
  flags.Value("role", [&role](std::string_view value) -> Result<void> {
    auto parsed = ParseRole(value);
    if (!parsed) return std::unexpected(parsed.error());
    role = *parsed;
    return {};
  });
  flags.String("description", &description);
  int exit_code = kExitOk;
  auto parsed = ParseCommandLine(ctx, flags, args, kTokenCreateHelp, &exit_code);
  if (!parsed) return exit_code;
  if (!parsed->positionals.empty()) {
    return ctx.UsageError(kCommand, "takes no arguments (got '" + parsed->positionals[0] +
                                        "'); use --description TEXT");
  }
  if (!role) return ctx.UsageError(kCommand, "--role is required (viewer, operator or admin)");
  v1::CreateTokenRequest request;
  if (ttl) {
    if (*ttl < std::chrono::seconds(1) || ttl->count() % 1000 != 0 ||
        ttl->count() / 1000 > std::numeric_limits<uint32_t>::max()) {
      return ctx.UsageError(kCommand, "--ttl must be whole seconds, at least 1s");
    }
    request.set_ttl_seconds(static_cast<uint32_t>(ttl->count() / 1000));
  }
  auto* stub = DialSupervisor(ctx, kCommand, &exit_code);
  if (stub == nullptr) return exit_code;
  request.set_role(*role);
  request.set_description(description);
  v1::CreateTokenResponse response;
  auto context = ctx.SupervisorContext();
  grpc::Status status = stub->CreateToken(context.get(), request, &response);
  if (!status.ok()) return ctx.RpcError(status, Peer::kSupervisor);
  if (ctx.json()) return PrintJson(ctx, response);
  ctx.out() << response.token() << "\n";
  ctx.err() << "note: token " << response.id() << " is shown only once; the supervisor keeps only "
            << "its hash"
            << (response.has_expires_at() ? "; valid until " + FormatTime(response.expires_at())
                                          : std::string())
            << "\n";
  return kExitOk;
}

int TokenLs(Context& ctx, std::span<const std::string> args) {
  constexpr std::string_view kCommand = "token ls";
  FlagSet flags{std::string(kCommand)};
  int exit_code = kExitOk;
  auto parsed = ParseCommandLine(ctx, flags, args, kTokenLsHelp, &exit_code);
  if (!parsed) return exit_code;
  if (!parsed->positionals.empty()) {
    return ctx.UsageError(kCommand, "takes no arguments (got '" + parsed->positionals[0] + "')");
  }
  auto* stub = DialSupervisor(ctx, kCommand, &exit_code);
  if (stub == nullptr) return exit_code;
  v1::ListTokensResponse response;
  auto context = ctx.SupervisorContext();
  grpc::Status status = stub->ListTokens(context.get(), v1::ListTokensRequest{}, &response);
  if (!status.ok()) return ctx.RpcError(status, Peer::kSupervisor);
  if (ctx.json()) return PrintJson(ctx, response);
  Table table({"ID", "KIND", "EXPIRES", "USES-LEFT", "DESCRIPTION"});
  for (const v1::TokenInfo& t : response.tokens()) {
    table.AddRow({t.id(), t.kind(), t.has_expires_at() ? FormatTime(t.expires_at()) : "never",
                  t.kind() == "join" && t.uses_left() != 0 ? std::to_string(t.uses_left()) : "-",
                  t.description().empty() ? "-" : t.description()});
  }
  table.Render(ctx.out());
  return kExitOk;
}

int TokenRevoke(Context& ctx, std::span<const std::string> args) {
  constexpr std::string_view kCommand = "token revoke";
  FlagSet flags{std::string(kCommand)};
  int exit_code = kExitOk;
  auto parsed = ParseCommandLine(ctx, flags, args, kTokenRevokeHelp, &exit_code);
  if (!parsed) return exit_code;
  if (parsed->positionals.size() != 1) {
    return ctx.UsageError(kCommand, "takes one token ID, as 'phoenixctl token ls' shows it");
  }
  auto* stub = DialSupervisor(ctx, kCommand, &exit_code);
  if (stub == nullptr) return exit_code;
  v1::RevokeTokenRequest request;
  request.set_id(parsed->positionals[0]);
  v1::RevokeTokenResponse response;
  auto context = ctx.SupervisorContext();
  grpc::Status status = stub->RevokeToken(context.get(), request, &response);
  if (!status.ok()) return ctx.RpcError(status, Peer::kSupervisor);
  if (ctx.json()) return PrintJson(ctx, response);
  ctx.out() << "revoked " << response.revoked().kind() << " token " << response.revoked().id()
            << (response.revoked().description().empty()
                    ? std::string()
                    : " (" + response.revoked().description() + ")")
            << "\n";
  return kExitOk;
}

int JoinTokenCreate(Context& ctx, std::span<const std::string> args) {
  constexpr std::string_view kCommand = "join-token create";
  std::optional<std::chrono::milliseconds> ttl;
  std::optional<uint64_t> uses;
  FlagSet flags{std::string(kCommand)};
  flags.Duration("ttl", &ttl);
  flags.UInt("uses", 10000, &uses);
  int exit_code = kExitOk;
  auto parsed = ParseCommandLine(ctx, flags, args, kJoinCreateHelp, &exit_code);
  if (!parsed) return exit_code;
  if (!parsed->positionals.empty()) {
    return ctx.UsageError(kCommand, "takes no arguments (got '" + parsed->positionals[0] + "')");
  }
  v1::CreateJoinTokenRequest request;
  if (ttl) {
    if (*ttl < std::chrono::seconds(1) || ttl->count() % 1000 != 0) {
      return ctx.UsageError(kCommand, "--ttl must be whole seconds, at least 1s");
    }
    request.set_ttl_seconds(static_cast<uint32_t>(ttl->count() / 1000));
  } else {
    request.set_ttl_seconds(3600);
  }
  if (uses && *uses == 0) return ctx.UsageError(kCommand, "--uses must be 1-10000");
  request.set_uses(static_cast<uint32_t>(uses.value_or(1)));
  auto* stub = DialSupervisor(ctx, kCommand, &exit_code);
  if (stub == nullptr) return exit_code;
  v1::CreateJoinTokenResponse response;
  auto context = ctx.SupervisorContext();
  grpc::Status status = stub->CreateJoinToken(context.get(), request, &response);
  if (!status.ok()) return ctx.RpcError(status, Peer::kSupervisor);
  if (ctx.json()) return PrintJson(ctx, response);
  ctx.out() << response.token() << "\n";
  ctx.err() << "note: valid until " << FormatTime(response.expires_at()) << " for "
            << request.uses() << (request.uses() == 1 ? " agent" : " agents")
            << "; shown only once\n";
  return kExitOk;
}

}  // namespace

int RunTokenGroup(Context& ctx, std::span<const std::string> args) {
  static const std::map<std::string, CommandFn, std::less<>> kCommands = {
      {"create", TokenCreate}, {"ls", TokenLs}, {"revoke", TokenRevoke}};
  return DispatchGroup(ctx, "token", kTokenGroupHelp, kCommands, args);
}

int RunJoinTokenGroup(Context& ctx, std::span<const std::string> args) {
  static const std::map<std::string, CommandFn, std::less<>> kCommands = {
      {"create", JoinTokenCreate}};
  return DispatchGroup(ctx, "join-token", kJoinGroupHelp, kCommands, args);
}

}  // namespace phoenix::ctl
