#include "tools/phoenixctl/service_commands.h"

#include <algorithm>
#include <map>
#include <optional>
#include <vector>

#include "tools/phoenixctl/guest_commands.h"

namespace phoenix::ctl {

namespace {

constexpr std::string_view kGroupHelp =
    R"(phoenixctl service: the supervisor's services: N replicas of one guest spec that the supervisor
places across the cluster's nodes (spread over zones if asked), replaces when a node dies, and keeps
at N.

Usage:
  phoenixctl service COMMAND [flags] [args]

Commands:
  create NAME --image IMG --replicas N ...
                           create a service (see 'phoenixctl service create --help')
  ls                       list services: NAME RUNTIME IMAGE REPLICAS(running/desired) SPREAD AGE
  show NAME                the spec and every replica: node, zone, state, health, restarts,
                           endpoints, and why a pending replica cannot be placed
  scale NAME N             change the number of replicas
  rm NAME                  delete the service; its replicas are stopped and removed

Supervisor flags (before the command or among its flags):
  --supervisor HOST:PORT   supervisor address (default: $PHOENIX_SUPERVISOR, else 127.0.0.1:7400)
  --token TOKEN            bearer token (default: $PHOENIX_TOKEN); or --token-file FILE
  --ca-file FILE           the supervisor's CA certificate, <state-dir>/pki/ca.pem (default: $PHOENIX_CA)
  --insecure               plaintext to a supervisor on a loopback address (development only)
  --timeout DURATION       request deadline (default 30s); -o json for machine-readable output

Examples:
  export PHOENIX_SUPERVISOR=127.0.0.1:7400 PHOENIX_CA=/var/lib/phoenix/supervisor/pki/ca.pem
  export PHOENIX_TOKEN=$(sudo cat /var/lib/phoenix/supervisor/admin.token)
  phoenixctl service create web --image demo --runtime container --replicas 3 --spread zone \
      --publish 80 --health-http 80/health
  phoenixctl service show web
  phoenixctl service scale web 6
)";

constexpr std::string_view kCreateHelpHead =
    R"(phoenixctl service create: create a service: REPLICAS copies of one guest spec, placed by the
supervisor on nodes that can run them.

Usage:
  phoenixctl service create NAME --image IMG --replicas N [flags] [-- COMMAND...]

NAME is 1-40 characters of a-z, 0-9 and '-', starting with a letter or digit. Each replica runs as
guest "<NAME>-<index>-<generation>" on its node. The call returns once the supervisor has stored the
service; replicas that no node can take stay pending, and 'phoenixctl service show NAME' says why.

Placement flags:
  --replicas N                 number of replicas (required; 0 keeps the service without replicas)
  --spread zone                spread replicas evenly over the nodes' zones
  --max-skew N                 with --spread: the largest allowed difference in replicas between
                               two zones (default 1)
  --strategy spread|binpack    among feasible nodes prefer the least loaded (spread, default) or
                               the fullest that fits (binpack)
  --selector KEY=VALUE         only nodes carrying this label; repeatable (all must match)
  --distinct-hosts             at most one replica of this service per node

Guest flags (what every replica runs). --publish takes GUESTPORT or HOSTIP:0:GUESTPORT: each
node picks the host port of its replica, shown under ENDPOINTS by 'service show'. HOSTIP defaults
to 127.0.0.1 (reachable on the node only); use 0.0.0.0 to serve other hosts.
)";

constexpr std::string_view kCreateHelpTail =
    R"(  -o json                      print the created service as JSON

Examples:
  # the demo web app, three replicas spread over three zones, health-checked
  phoenixctl service create web --image demo --runtime container --replicas 3 --spread zone \
      --publish 80 --health-http 80/health
  # six micro-VMs packed tightly on SSD nodes, never two on one host
  phoenixctl service create cache --image demo --runtime microvm --replicas 6 --strategy binpack \
      --selector disk=ssd --distinct-hosts --memory 512M
  # a container service with its own command
  phoenixctl service create worker --image demo --runtime container --replicas 2 --env MODE=batch \
      -- /bin/worker --queue jobs
)";

std::string CreateHelp() {
  return std::string(kCreateHelpHead) + std::string(GuestSpecFlags::kHelp) +
         std::string(kCreateHelpTail);
}

constexpr std::string_view kLsHelp = R"help(phoenixctl service ls: list the supervisor's services.

Usage:
  phoenixctl service ls [-o json]

Columns: NAME RUNTIME IMAGE REPLICAS SPREAD AGE. REPLICAS is running/desired: replicas whose node
reports the guest running, of those asked for. SPREAD is "zone (max skew N)" or "-".

Examples:
  phoenixctl service ls
  phoenixctl service ls -o json | jq -r '.services[] | "\(.spec.name) \(.running)/\(.spec.replicas)"'
)help";

constexpr std::string_view kShowHelp =
    R"(phoenixctl service show: one service: its spec, then one row per replica, then why any
pending replica cannot be placed (every node's rejection, in full).

Usage:
  phoenixctl service show NAME [-o json]

Replica columns: INDEX GUEST NODE ZONE STATE GUEST-STATE HEALTHY RESTARTS ENDPOINTS.
STATE is the supervisor's view: pending (no node fits), assigned (sent to its node, not running
yet), running, lost (its node is suspect). GUEST-STATE is what the node last reported.

Examples:
  phoenixctl service show web
  phoenixctl service show web -o json | jq '.replicas[] | {node, zone, state}'
)";

constexpr std::string_view kScaleHelp =
    R"(phoenixctl service scale: change a service's number of replicas. New replicas are placed like
the first ones; when scaling down the highest indexes are removed.

Usage:
  phoenixctl service scale NAME N [--expected-version V]

Flags:
  --expected-version V   only scale if the service is still at version V (as 'service show'
                         prints it); otherwise the supervisor refuses with ABORTED. Guards against
                         two admins scaling at once. Default: scale unconditionally.

Examples:
  phoenixctl service scale web 6
  phoenixctl service scale web 2 --expected-version 7
)";

constexpr std::string_view kRmHelp =
    R"(phoenixctl service rm: delete a service. The supervisor removes it from every node's
assignment, and the agents stop and delete its guests.

Usage:
  phoenixctl service rm NAME

Example:
  phoenixctl service rm web
)";

std::optional<std::string> OneServiceName(Context& ctx, std::string_view command,
                                          const std::vector<std::string>& positionals,
                                          int* exit_code) {
  if (positionals.size() != 1) {
    *exit_code =
        ctx.UsageError(command, positionals.empty() ? "missing service NAME"
                                                    : "expects exactly one service NAME, got " +
                                                          std::to_string(positionals.size()));
    return std::nullopt;
  }
  return positionals[0];
}

int PrintService(Context& ctx, const v1::Service& service) {
  if (ctx.json()) return PrintJson(ctx, service);
  RenderServiceDetail(service, ctx.out());
  return kExitOk;
}

Result<std::pair<std::string, std::string>> ParseLabel(std::string_view text) {
  size_t eq = text.find('=');
  if (eq == 0 || eq == std::string_view::npos) return InvalidArgument("", "expects KEY=VALUE");
  return std::pair(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
}

int ServiceCreate(Context& ctx, std::span<const std::string> args) {
  constexpr std::string_view kCommand = "service create";
  GuestSpecFlags spec_flags;
  std::optional<uint64_t> replicas;
  std::string spread;
  std::optional<uint64_t> max_skew;
  std::optional<v1::PlacementStrategy> strategy;
  std::vector<std::string> selectors;
  bool distinct_hosts = false;

  FlagSet flags{std::string(kCommand)};
  spec_flags.Register(flags);
  flags.UInt("replicas", 10000, &replicas);
  flags.Value("spread", [&spread](std::string_view value) -> Result<void> {
    if (value != "zone") return InvalidArgument("", "expects zone (the only spread attribute)");
    spread = std::string(value);
    return {};
  });
  flags.UInt("max-skew", 1000, &max_skew);
  flags.Value("strategy", [&strategy](std::string_view value) -> Result<void> {
    if (value == "spread") {
      strategy = v1::PLACEMENT_STRATEGY_SPREAD;
    } else if (value == "binpack") {
      strategy = v1::PLACEMENT_STRATEGY_BINPACK;
    } else {
      return InvalidArgument("", "expects spread or binpack");
    }
    return {};
  });
  flags.Strings("selector", &selectors);
  flags.Bool("distinct-hosts", &distinct_hosts);
  flags.AllowTrailing();
  int exit_code = kExitOk;
  auto parsed = ParseCommandLine(ctx, flags, args, CreateHelp(), &exit_code);
  if (!parsed) return exit_code;

  auto name = OneServiceName(ctx, kCommand, parsed->positionals, &exit_code);
  if (!name) return exit_code;
  if (!IsValidServiceName(*name)) {
    return ctx.UsageError(kCommand, "service NAME '" + *name +
                                        "' must be 1-40 characters of a-z, 0-9 and '-', "
                                        "starting with a letter or digit");
  }
  v1::ServiceSpec spec;
  spec.set_name(*name);
  if (auto applied = spec_flags.Apply(*parsed, spec.mutable_template_()); !applied) {
    return ctx.UsageError(kCommand, applied.error().message);
  }
  for (const v1::PortMapping& port : spec.template_().ports()) {
    if (port.host_port() != 0) {
      return ctx.UsageError(kCommand, "--publish " + std::to_string(port.host_port()) + ":" +
                                          std::to_string(port.guest_port()) +
                                          ": a service's host ports are picked on each node; "
                                          "give GUESTPORT (or HOSTIP:0:GUESTPORT)");
    }
  }
  if (!replicas) return ctx.UsageError(kCommand, "--replicas is required, e.g. --replicas 3");
  spec.set_replicas(static_cast<uint32_t>(*replicas));
  if (max_skew && spread.empty()) {
    return ctx.UsageError(kCommand, "--max-skew needs --spread zone");
  }
  if (!spread.empty()) {
    if (max_skew == 0u) return ctx.UsageError(kCommand, "--max-skew must be at least 1");
    spec.mutable_spread()->set_attribute(spread);
    spec.mutable_spread()->set_max_skew(static_cast<uint32_t>(max_skew.value_or(1)));
  }
  if (strategy) spec.set_strategy(*strategy);
  for (const std::string& text : selectors) {
    auto label = ParseLabel(text);
    if (!label) return ctx.UsageError(kCommand, "--selector " + text + ": expects KEY=VALUE");
    (*spec.mutable_node_selector())[label->first] = label->second;
  }
  spec.set_distinct_hosts(distinct_hosts);

  auto* stub = DialSupervisor(ctx, kCommand, &exit_code);
  if (stub == nullptr) return exit_code;
  v1::CreateServiceRequest request;
  *request.mutable_spec() = spec;
  v1::Service service;
  auto context = ctx.SupervisorContext();
  grpc::Status status = stub->CreateService(context.get(), request, &service);
  if (!status.ok()) return ctx.RpcError(status, Peer::kSupervisor);
  if (ctx.json()) return PrintJson(ctx, service);
  ctx.out() << *name << ": created (version " << service.version() << "); watch it with "
            << "'phoenixctl service show " << *name << "'\n\n";
  RenderServiceDetail(service, ctx.out());
  return kExitOk;
}

int ServiceLs(Context& ctx, std::span<const std::string> args) {
  constexpr std::string_view kCommand = "service ls";
  FlagSet flags{std::string(kCommand)};
  int exit_code = kExitOk;
  auto parsed = ParseCommandLine(ctx, flags, args, kLsHelp, &exit_code);
  if (!parsed) return exit_code;
  if (!parsed->positionals.empty()) {
    return ctx.UsageError(kCommand, "takes no arguments (got '" + parsed->positionals[0] + "')");
  }
  auto* stub = DialSupervisor(ctx, kCommand, &exit_code);
  if (stub == nullptr) return exit_code;
  v1::ListServicesResponse response;
  auto context = ctx.SupervisorContext();
  grpc::Status status = stub->ListServices(context.get(), v1::ListServicesRequest(), &response);
  if (!status.ok()) return ctx.RpcError(status, Peer::kSupervisor);
  if (ctx.json()) return PrintJson(ctx, response);
  std::vector<v1::Service> services(response.services().begin(), response.services().end());
  std::ranges::sort(services, {}, [](const v1::Service& s) { return s.spec().name(); });
  RenderServiceTable(services, std::chrono::system_clock::now(), ctx.out());
  return kExitOk;
}

int ServiceShow(Context& ctx, std::span<const std::string> args) {
  constexpr std::string_view kCommand = "service show";
  FlagSet flags{std::string(kCommand)};
  int exit_code = kExitOk;
  auto parsed = ParseCommandLine(ctx, flags, args, kShowHelp, &exit_code);
  if (!parsed) return exit_code;
  auto name = OneServiceName(ctx, kCommand, parsed->positionals, &exit_code);
  if (!name) return exit_code;
  auto* stub = DialSupervisor(ctx, kCommand, &exit_code);
  if (stub == nullptr) return exit_code;
  v1::GetServiceRequest request;
  request.set_name(*name);
  v1::Service service;
  auto context = ctx.SupervisorContext();
  grpc::Status status = stub->GetService(context.get(), request, &service);
  if (!status.ok()) return ctx.RpcError(status, Peer::kSupervisor);
  return PrintService(ctx, service);
}

int ServiceScale(Context& ctx, std::span<const std::string> args) {
  constexpr std::string_view kCommand = "service scale";
  std::optional<uint64_t> expected_version;
  FlagSet flags{std::string(kCommand)};
  flags.UInt("expected-version", std::numeric_limits<uint64_t>::max(), &expected_version);
  int exit_code = kExitOk;
  auto parsed = ParseCommandLine(ctx, flags, args, kScaleHelp, &exit_code);
  if (!parsed) return exit_code;
  if (parsed->positionals.size() != 2) {
    return ctx.UsageError(kCommand,
                          "expects NAME and the number of replicas, e.g. "
                          "'phoenixctl service scale web 3'");
  }
  const std::string& name = parsed->positionals[0];
  auto replicas = ParseUInt(parsed->positionals[1], 10000);
  if (!replicas) {
    return ctx.UsageError(kCommand,
                          "replicas '" + parsed->positionals[1] + "': " + replicas.error().message);
  }
  if (expected_version == 0u) {
    return ctx.UsageError(kCommand, "--expected-version must be at least 1 (versions start at 1)");
  }
  auto* stub = DialSupervisor(ctx, kCommand, &exit_code);
  if (stub == nullptr) return exit_code;
  v1::ScaleServiceRequest request;
  request.set_name(name);
  request.set_replicas(static_cast<uint32_t>(*replicas));
  request.set_expected_version(expected_version.value_or(0));
  v1::Service service;
  auto context = ctx.SupervisorContext();
  grpc::Status status = stub->ScaleService(context.get(), request, &service);
  if (!status.ok()) {
    int rc = ctx.RpcError(status, Peer::kSupervisor);
    if (status.error_code() == grpc::StatusCode::ABORTED && expected_version) {
      ctx.err() << "hint: the service changed since version " << *expected_version
                << "; read the current one with 'phoenixctl service show " << name << "'\n";
    }
    return rc;
  }
  if (ctx.json()) return PrintJson(ctx, service);
  ctx.out() << name << ": scaled to " << service.spec().replicas() << " replicas (version "
            << service.version() << ", " << service.running() << " running)\n";
  return kExitOk;
}

int ServiceRm(Context& ctx, std::span<const std::string> args) {
  constexpr std::string_view kCommand = "service rm";
  FlagSet flags{std::string(kCommand)};
  int exit_code = kExitOk;
  auto parsed = ParseCommandLine(ctx, flags, args, kRmHelp, &exit_code);
  if (!parsed) return exit_code;
  auto name = OneServiceName(ctx, kCommand, parsed->positionals, &exit_code);
  if (!name) return exit_code;
  auto* stub = DialSupervisor(ctx, kCommand, &exit_code);
  if (stub == nullptr) return exit_code;
  v1::DeleteServiceRequest request;
  request.set_name(*name);
  v1::DeleteServiceResponse response;
  auto context = ctx.SupervisorContext();
  grpc::Status status = stub->DeleteService(context.get(), request, &response);
  if (!status.ok()) return ctx.RpcError(status, Peer::kSupervisor);
  if (ctx.json()) return PrintJson(ctx, response);
  ctx.out() << *name << ": deleted; its replicas are being stopped\n";
  return kExitOk;
}

std::string YesNo(bool value) { return value ? "yes" : "no"; }

std::string ReplicaHealth(const v1::Replica& replica, bool has_health_check) {
  if (!has_health_check || replica.guest_state() != v1::GUEST_STATE_RUNNING) return "-";
  return YesNo(replica.healthy());
}

std::string ReplicaEndpoints(const v1::Replica& replica) {
  std::string text;
  for (const v1::Endpoint& endpoint : replica.endpoints()) {
    if (!text.empty()) text += ",";
    text += EndpointUrl(endpoint);
  }
  return text.empty() ? "-" : text;
}

std::string OrDash(const std::string& text) { return text.empty() ? "-" : text; }

}  // namespace

int RunServiceGroup(Context& ctx, std::span<const std::string> args) {
  static const std::map<std::string, CommandFn, std::less<>> kCommands = {
      {"create", ServiceCreate}, {"ls", ServiceLs}, {"show", ServiceShow},
      {"scale", ServiceScale},   {"rm", ServiceRm},
  };
  return DispatchGroup(ctx, "service", kGroupHelp, kCommands, args);
}

bool IsValidServiceName(std::string_view name) {
  if (name.empty() || name.size() > 40) return false;
  auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!lower_or_digit(name[0])) return false;
  return std::ranges::all_of(name, [&](char c) { return lower_or_digit(c) || c == '-'; });
}

std::string ReplicaStateName(v1::ReplicaState state) {
  switch (state) {
    case v1::REPLICA_STATE_PENDING:
      return "pending";
    case v1::REPLICA_STATE_ASSIGNED:
      return "assigned";
    case v1::REPLICA_STATE_RUNNING:
      return "running";
    case v1::REPLICA_STATE_LOST:
      return "lost";
    default:
      return "-";
  }
}

std::string SpreadText(const v1::Spread& spread) {
  if (spread.attribute().empty()) return "-";
  return spread.attribute() + " (max skew " +
         std::to_string(spread.max_skew() == 0 ? 1 : spread.max_skew()) + ")";
}

void RenderServiceTable(std::span<const v1::Service> services,
                        std::chrono::system_clock::time_point now, std::ostream& out) {
  Table table({"NAME", "RUNTIME", "IMAGE", "REPLICAS", "SPREAD", "AGE"});
  for (const v1::Service& service : services) {
    const v1::ServiceSpec& spec = service.spec();
    table.AddRow({spec.name(), RuntimeName(spec.template_().runtime()), spec.template_().image(),
                  std::to_string(service.running()) + "/" + std::to_string(spec.replicas()),
                  SpreadText(spec.spread()), FormatAge(service.created_at(), now)});
  }
  table.Render(out);
}

void RenderServiceDetail(const v1::Service& service, std::ostream& out) {
  const v1::ServiceSpec& spec = service.spec();
  const v1::GuestSpec& guest = spec.template_();
  std::vector<std::pair<std::string, std::string>> rows;
  auto add = [&rows](std::string key, std::string value) {
    rows.emplace_back(std::move(key), value.empty() ? "-" : std::move(value));
  };
  add("Name", spec.name());
  add("Version", std::to_string(service.version()));
  add("Image", guest.image());
  add("Runtime", RuntimeName(guest.runtime()));
  add("Replicas", std::to_string(service.running()) + " running of " +
                      std::to_string(spec.replicas()) + " desired");
  add("Spread", SpreadText(spec.spread()));
  add("Strategy", spec.strategy() == v1::PLACEMENT_STRATEGY_BINPACK ? "binpack" : "spread");
  std::map<std::string, std::string> selector(spec.node_selector().begin(),
                                              spec.node_selector().end());
  std::string selector_text;
  for (const auto& [key, value] : selector) {
    selector_text += (selector_text.empty() ? "" : " ") + key + "=" + value;
  }
  add("Node selector", selector_text);
  add("Distinct hosts", YesNo(spec.distinct_hosts()));
  add("CPUs", guest.vcpus() == 0 ? "1 (default)" : std::to_string(guest.vcpus()));
  add("Memory",
      guest.memory_mib() == 0 ? "256 MiB (default)" : std::to_string(guest.memory_mib()) + " MiB");
  std::string ports;
  for (const v1::PortMapping& port : guest.ports()) {
    ports += (ports.empty() ? "" : ", ") + std::to_string(port.guest_port());
  }
  add("Published", ports.empty() ? "" : "guest ports " + ports);
  std::string health;
  if (guest.health().has_http()) {
    health = "http GET :" + std::to_string(guest.health().http().port()) +
             (guest.health().http().path().empty() ? "/health" : guest.health().http().path());
  } else if (guest.health().has_tcp()) {
    health = "tcp :" + std::to_string(guest.health().tcp().port());
  }
  add("Health check", health);
  add("Boot", BootModeName(guest.boot_mode()));
  if (!guest.command().empty()) {
    std::string command;
    for (const std::string& word : guest.command()) command += (command.empty() ? "" : " ") + word;
    add("Command", command);
  }
  add("Created", FormatTime(service.created_at()));
  size_t width = 0;
  for (const auto& [key, value] : rows) width = std::max(width, key.size());
  for (const auto& [key, value] : rows) {
    out << key << ":" << std::string(width - key.size() + 1, ' ') << value << "\n";
  }

  std::vector<v1::Replica> replicas(service.replicas().begin(), service.replicas().end());
  std::ranges::sort(replicas, {}, &v1::Replica::index);
  const bool has_health_check = guest.health().probe_case() != v1::HealthCheck::PROBE_NOT_SET;
  out << "\n";
  Table table({"INDEX", "GUEST", "NODE", "ZONE", "STATE", "GUEST-STATE", "HEALTHY", "RESTARTS",
               "ENDPOINTS"});
  for (const v1::Replica& replica : replicas) {
    table.AddRow({std::to_string(replica.index()), OrDash(replica.guest()), OrDash(replica.node()),
                  OrDash(replica.zone()), ReplicaStateName(replica.state()),
                  GuestStateName(replica.guest_state()), ReplicaHealth(replica, has_health_check),
                  std::to_string(replica.restart_count()), ReplicaEndpoints(replica)});
  }
  table.Render(out);

  bool pending_header = false;
  for (const v1::Replica& replica : replicas) {
    if (replica.state() != v1::REPLICA_STATE_PENDING) continue;
    if (!pending_header) {
      out << "\nPending replicas (why no node fits):\n";
      pending_header = true;
    }
    out << "  " << replica.index() << ": "
        << (replica.pending_reason().empty() ? "no reason given" : replica.pending_reason())
        << "\n";
  }
  bool exit_header = false;
  for (const v1::Replica& replica : replicas) {
    if (replica.last_exit_reason().empty()) continue;
    if (!exit_header) {
      out << "\nLast exits:\n";
      exit_header = true;
    }
    out << "  " << replica.index() << ": " << replica.last_exit_reason() << "\n";
  }
}

}  // namespace phoenix::ctl
