#include "tools/phoenixctl/service_commands.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <map>
#include <optional>
#include <vector>

#include "proto/support/guest_spec.h"
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
  autoscale NAME --min N --max M --target cpu=60%|rps=200
                           let the supervisor scale the service with its load (--off: stop)
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
  phoenixctl service autoscale web --min 1 --max 6 --target rps=200
)";

// The autoscale flags, shared by `service create` and `service autoscale`.
constexpr std::string_view kAutoscaleFlagsHelp =
    R"(Autoscaling flags (the supervisor evaluates every second: desired = ceil(current * observed /
target) over the replicas reporting the metric, within [min, max]):
  --min N                      fewest replicas (>= 1)
  --max M                      most replicas (>= --min)
  --target cpu=P%|rps=R        per-replica target: CPU use as a percentage of each replica's
                               allowance (cpu=60%), or requests per second through the published
                               port (rps=200)
  --tolerance P%               no change while observed/target is within ±P (default 10%;
                               0% reacts to any difference)
  --scale-down-window D        shrink only to the highest count wanted during the last D
                               (default 60s; 0s shrinks on the first low reading; growing is
                               immediate)
  --scale-up-window D          grow only to the lowest count wanted during the last D (default 0s)
  --scale-up-max-step N        at most max(N, current) replicas added per --scale-up-period
                               (default 4 per 10s)
  --scale-up-period D
A replica whose metric is missing never lets the service shrink; with no data nothing changes.
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

Front door (one stable address for the service):
  --port PORT:GUESTPORT[/tcp]  every node's HAProxy listens on PORT at the node's advertise
                               address and balances requests over all ready replicas cluster-wide
                               (preferring its own zone), reaching each at GUESTPORT (published on
                               every replica). HTTP by default: per request, failed connections
                               retried on another replica, a leaving replica drained; /tcp balances
                               connections. PORT must be unique across services.

Guest flags (what every replica runs). --publish takes GUESTPORT or HOSTIP:0:GUESTPORT: each
node picks the host port of its replica, shown under ENDPOINTS by 'service show'. HOSTIP defaults
to 127.0.0.1 (reachable on the node only); use 0.0.0.0 to serve other hosts.
)";

constexpr std::string_view kCreateHelpTail =
    R"(  -o json                      print the created service as JSON

Examples:
  # the demo web app, three replicas spread over three zones, health-checked, behind the front
  # door on port 8080 of every node
  phoenixctl service create web --image demo --runtime container --replicas 3 --spread zone \
      --port 8080:80 --health-http 80/health
  # six micro-VMs packed tightly on SSD nodes, never two on one host
  phoenixctl service create cache --image demo --runtime microvm --replicas 6 --strategy binpack \
      --selector disk=ssd --distinct-hosts --memory 512M
  # a container service with its own command
  phoenixctl service create worker --image demo --runtime container --replicas 2 --env MODE=batch \
      -- /bin/worker --queue jobs
)";

std::string CreateHelp() {
  return std::string(kCreateHelpHead) + std::string(GuestSpecFlags::kHelp) + "\n" +
         std::string(kAutoscaleFlagsHelp) + "\n" + std::string(kCreateHelpTail);
}

constexpr std::string_view kAutoscaleHelpHead =
    R"(phoenixctl service autoscale: set, change or turn off a live service's autoscale policy. The
service's replica count moves into [--min, --max] at once; then the supervisor follows the load.
While a policy is set, 'phoenixctl service scale' is refused.

Usage:
  phoenixctl service autoscale NAME --min N --max M --target cpu=P%|rps=R [flags]
  phoenixctl service autoscale NAME --off       (keeps the current replica count)

)";

constexpr std::string_view kAutoscaleHelpTail =
    R"(  --expected-version V         only change the policy if the service is at version V
  -o json                      print the service as JSON

Examples:
  phoenixctl service autoscale web --min 1 --max 6 --target rps=200
  phoenixctl service autoscale web --min 2 --max 10 --target cpu=60% --scale-down-window 5m
  phoenixctl service autoscale web --min 1 --max 6 --target rps=50 --scale-down-window 10s
  phoenixctl service autoscale web --off
  phoenixctl service show web     # current/desired replicas, the metric, the last decisions
)";

// Collects the autoscale flags; Policy() says whether any was given and builds the message.
struct AutoscaleFlags {
  std::optional<uint64_t> min;
  std::optional<uint64_t> max;
  std::string metric;
  double target = 0;
  std::optional<double> tolerance;
  std::optional<std::chrono::milliseconds> down_window;
  std::optional<std::chrono::milliseconds> up_window;
  std::optional<uint64_t> up_step;
  std::optional<std::chrono::milliseconds> up_period;

  void Register(FlagSet& flags) {
    flags.UInt("min", 1000, &min);
    flags.UInt("max", 1000, &max);
    flags.Value("target", [this](std::string_view value) -> Result<void> {
      size_t eq = value.find('=');
      std::string_view name = value.substr(0, eq);
      if (eq == std::string_view::npos || (name != "cpu" && name != "rps")) {
        return InvalidArgument("", "expects cpu=P% or rps=R (e.g. cpu=60% or rps=200)");
      }
      std::string_view number = value.substr(eq + 1);
      if (name == "cpu" && number.ends_with('%')) number.remove_suffix(1);
      auto parsed = ParseNumber(number);
      if (!parsed || *parsed <= 0) {
        return InvalidArgument("", "the target must be a number > 0 (got '" +
                                       std::string(value.substr(eq + 1)) + "')");
      }
      metric = std::string(name);
      target = *parsed;
      return {};
    });
    flags.Value("tolerance", [this](std::string_view value) -> Result<void> {
      const bool percent = value.ends_with('%');
      if (percent) value.remove_suffix(1);
      auto parsed = ParseNumber(value);
      if (!parsed) return InvalidArgument("", "expects a percentage like 10% (or 0.1)");
      tolerance = percent ? *parsed / 100 : *parsed;
      if (!(*tolerance >= 0 && *tolerance < 1)) {
        return InvalidArgument("", "must be at least 0% and below 100%");
      }
      return {};
    });
    flags.Duration("scale-down-window", &down_window);
    flags.Duration("scale-up-window", &up_window);
    flags.UInt("scale-up-max-step", 1000, &up_step);
    flags.Duration("scale-up-period", &up_period);
  }

  bool Any() const {
    return min || max || !metric.empty() || tolerance || down_window || up_window || up_step ||
           up_period;
  }

  static Result<double> ParseNumber(std::string_view text) {
    double v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
      return InvalidArgument("", "not a number");
    }
    return v;
  }

  static Result<uint32_t> Seconds(std::string_view flag, std::chrono::milliseconds d,
                                  bool allow_zero) {
    if (d.count() % 1000 != 0) {
      return InvalidArgument("", std::string(flag) + " must be whole seconds");
    }
    if (!allow_zero && d.count() == 0) {
      return InvalidArgument("", std::string(flag) + " must be at least 1s");
    }
    return static_cast<uint32_t>(d.count() / 1000);
  }

  // Every required flag present; the supervisor validates the rest (min <= max, ...).
  Result<v1::AutoscalePolicy> Policy() const {
    if (!min) return InvalidArgument("", "--min is required with autoscaling, e.g. --min 1");
    if (!max) return InvalidArgument("", "--max is required with autoscaling, e.g. --max 6");
    if (metric.empty()) {
      return InvalidArgument("", "--target is required with autoscaling, e.g. --target rps=200");
    }
    v1::AutoscalePolicy p;
    p.set_min_replicas(static_cast<uint32_t>(*min));
    p.set_max_replicas(static_cast<uint32_t>(*max));
    p.set_metric(metric);
    p.set_target(target);
    if (tolerance) p.set_tolerance(*tolerance);
    if (down_window) {
      auto s = Seconds("--scale-down-window", *down_window, true);
      if (!s) return std::unexpected(s.error());
      p.set_scale_down_stabilization_s(*s);
    }
    if (up_window) {
      auto s = Seconds("--scale-up-window", *up_window, true);
      if (!s) return std::unexpected(s.error());
      p.set_scale_up_stabilization_s(*s);
    }
    if (up_step) {
      if (*up_step == 0) return InvalidArgument("", "--scale-up-max-step must be at least 1");
      p.set_scale_up_max_step(static_cast<uint32_t>(*up_step));
    }
    if (up_period) {
      auto s = Seconds("--scale-up-period", *up_period, false);
      if (!s) return std::unexpected(s.error());
      p.set_scale_up_period_s(*s);
    }
    return p;
  }
};

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

}  // namespace

Result<v1::FrontDoor> ParseFrontDoor(std::string_view text) {
  v1::FrontDoor door;
  std::string_view ports = text;
  if (const size_t slash = text.find('/'); slash != std::string_view::npos) {
    ports = text.substr(0, slash);
    const std::string_view protocol = text.substr(slash + 1);
    if (protocol == "tcp") {
      door.set_protocol(v1::FRONT_DOOR_PROTOCOL_TCP);
    } else if (protocol == "http") {
      door.set_protocol(v1::FRONT_DOOR_PROTOCOL_HTTP);
    } else {
      return InvalidArgument("",
                             "protocol must be http or tcp, got \"" + std::string(protocol) + "\"");
    }
  }
  const size_t colon = ports.find(':');
  auto port = [](std::string_view p) -> std::optional<uint32_t> {
    uint32_t n = 0;
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), n);
    if (ec != std::errc() || end != p.data() + p.size() || n == 0 || n > 65535) return std::nullopt;
    return n;
  };
  const auto front = port(ports.substr(0, colon));
  const auto guest = colon == std::string_view::npos ? front : port(ports.substr(colon + 1));
  if (!front || !guest) {
    return InvalidArgument("",
                           "expects PORT:GUESTPORT[/http|/tcp] with ports 1-65535, e.g. 8080:80");
  }
  door.set_port(*front);
  door.set_guest_port(*guest);
  return door;
}

namespace {

int ServiceCreate(Context& ctx, std::span<const std::string> args) {
  constexpr std::string_view kCommand = "service create";
  GuestSpecFlags spec_flags;
  std::optional<uint64_t> replicas;
  std::string spread;
  std::optional<uint64_t> max_skew;
  std::optional<v1::PlacementStrategy> strategy;
  std::vector<std::string> selectors;
  bool distinct_hosts = false;
  AutoscaleFlags autoscale;
  std::optional<v1::FrontDoor> front_door;

  FlagSet flags{std::string(kCommand)};
  spec_flags.Register(flags);
  autoscale.Register(flags);
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
  flags.Value("port", [&front_door](std::string_view value) -> Result<void> {
    auto door = ParseFrontDoor(value);
    if (!door) return std::unexpected(door.error());
    front_door = *door;
    return {};
  });
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
  if (front_door) spec::EnsurePublished(*spec.mutable_template_(), front_door->guest_port());
  // The supervisor checks templates by the agents' rules (proto/support/guest_spec.h): so does
  // this.
  if (auto valid =
          spec::ParseGuestSpec(spec.template_(), "spec.template", spec::SpecUse::kTemplate);
      !valid) {
    return ctx.UsageError(kCommand, valid.error().ToString());
  }
  if (autoscale.Any()) {
    auto policy = autoscale.Policy();
    if (!policy) return ctx.UsageError(kCommand, policy.error().message);
    *spec.mutable_autoscale() = *policy;
    // The supervisor starts an autoscaled service at --replicas clamped to [min, max].
    if (!replicas) replicas = policy->min_replicas();
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
  if (front_door) *spec.mutable_front_door() = *front_door;
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

int ServiceAutoscale(Context& ctx, std::span<const std::string> args) {
  constexpr std::string_view kCommand = "service autoscale";
  AutoscaleFlags autoscale;
  bool off = false;
  std::optional<uint64_t> expected_version;
  FlagSet flags{std::string(kCommand)};
  autoscale.Register(flags);
  flags.Bool("off", &off);
  flags.UInt("expected-version", std::numeric_limits<uint64_t>::max(), &expected_version);
  int exit_code = kExitOk;
  const std::string help = std::string(kAutoscaleHelpHead) + std::string(kAutoscaleFlagsHelp) +
                           std::string(kAutoscaleHelpTail);
  auto parsed = ParseCommandLine(ctx, flags, args, help, &exit_code);
  if (!parsed) return exit_code;
  auto name = OneServiceName(ctx, kCommand, parsed->positionals, &exit_code);
  if (!name) return exit_code;
  if (expected_version == 0u) {
    return ctx.UsageError(kCommand, "--expected-version must be at least 1 (versions start at 1)");
  }
  v1::SetAutoscaleRequest request;
  request.set_name(*name);
  request.set_expected_version(expected_version.value_or(0));
  if (off) {
    if (autoscale.Any()) return ctx.UsageError(kCommand, "--off takes no policy flags");
  } else {
    if (!autoscale.Any()) {
      return ctx.UsageError(kCommand,
                            "give a policy (--min N --max M --target cpu=60%|rps=200) or --off");
    }
    auto policy = autoscale.Policy();
    if (!policy) return ctx.UsageError(kCommand, policy.error().message);
    *request.mutable_policy() = *policy;
  }
  auto* stub = DialSupervisor(ctx, kCommand, &exit_code);
  if (stub == nullptr) return exit_code;
  v1::Service service;
  auto context = ctx.SupervisorContext();
  grpc::Status status = stub->SetAutoscale(context.get(), request, &service);
  if (!status.ok()) return ctx.RpcError(status, Peer::kSupervisor);
  if (ctx.json()) return PrintJson(ctx, service);
  if (off) {
    ctx.out() << *name << ": autoscaling off; it keeps " << service.spec().replicas()
              << " replicas (version " << service.version() << ")\n";
  } else {
    ctx.out() << *name << ": autoscaling " << AutoscalePolicyText(service.spec().autoscale())
              << "; now " << service.spec().replicas() << " replicas (version " << service.version()
              << ")\n";
  }
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

}  // namespace

int RunServiceGroup(Context& ctx, std::span<const std::string> args) {
  static const std::map<std::string, CommandFn, std::less<>> kCommands = {
      {"create", ServiceCreate}, {"ls", ServiceLs}, {"show", ServiceShow},
      {"scale", ServiceScale},   {"rm", ServiceRm}, {"autoscale", ServiceAutoscale},
  };
  return DispatchGroup(ctx, "service", kGroupHelp, kCommands, args);
}

bool IsValidServiceName(std::string_view name) {
  if (name.empty() || name.size() > 40) return false;
  auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!lower_or_digit(name[0])) return false;
  return std::ranges::all_of(name, [&](char c) { return lower_or_digit(c) || c == '-'; });
}

}  // namespace phoenix::ctl
