#include "tools/phoenixctl/guest_commands.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>

#include "proto/support/guest_spec.h"

namespace phoenix::ctl {

namespace {

constexpr std::string_view kGroupHelp =
    R"(phoenixctl guest: run guests (VMs, micro-VMs, containers) from golden images and manage them.
The agent keeps each guest running: it restarts crashed or unhealthy guests per their restart policy.

Usage:
  phoenixctl guest COMMAND [flags] [args]

Commands:
  run NAME --image IMG ...  create a guest and start it (see 'phoenixctl guest run --help')
  ls                        list guests: NAME RUNTIME STATE HEALTH RESTARTS ENDPOINT IMAGE AGE
  show NAME                 everything the agent knows about one guest
  start NAME                start a stopped guest
  stop NAME [--timeout 10s] shut a guest down (graceful, then hard after the timeout); it stays stopped
  rm NAME                   stop and delete a guest
  logs NAME [--follow] [--tail BYTES]
                            print the guest's console (serial) log; --follow keeps streaming
  kill NAME                 chaos drill: SIGKILL the guest's hypervisor (or container init) process;
                            the agent notices the crash and restarts it

Global flags: --endpoint ADDR (default $PHOENIX_ENDPOINT, else unix:/run/phoenix/agent.sock),
  --timeout DURATION (request deadline, default 30s), -o json (machine-readable output).

Examples:
  phoenixctl guest run web --image demo --publish 8080:80 --health-http 80/health
  phoenixctl guest ls
  phoenixctl guest kill web && phoenixctl events --follow --guest web
)";

constexpr std::string_view kRunHelpHead =
    R"(phoenixctl guest run: create a guest from a golden image and start it.

Usage:
  phoenixctl guest run NAME --image IMG [flags] [-- COMMAND...]

NAME is 1-63 characters of a-z, 0-9 and '-'. The call returns once the agent has accepted the
guest (state pending/starting); watch it come up with 'phoenixctl events --follow --guest NAME'.

Flags:
)";

constexpr std::string_view kRunHelpTail =
    R"(  -o json                      print the created guest as JSON

Examples:
  # the demo web app on http://127.0.0.1:8080, health-checked every 500ms
  phoenixctl guest run web --image demo --publish 8080:80 --health-http 80/health --health-interval 500ms
  # a micro-VM restored from the golden snapshot, agent-picked host port
  phoenixctl guest run fast --image demo --runtime microvm --boot snapshot --publish 80 --health-http 80
  # a container with its own command and environment
  phoenixctl guest run job --image demo --runtime container --restart on-failure --env MODE=batch -- /bin/sh -c 'echo hi'
)";

std::string RunHelp() {
  return std::string(kRunHelpHead) + std::string(GuestSpecFlags::kHelp) + std::string(kRunHelpTail);
}

constexpr std::string_view kLsHelp = R"(phoenixctl guest ls: list the agent's guests.

Usage:
  phoenixctl guest ls [-o json]

Columns: NAME RUNTIME STATE HEALTH RESTARTS ENDPOINT IMAGE AGE. HEALTH is healthy/unhealthy for a
running guest with a health check, else '-'. ENDPOINT is the published address (http://HOST:PORT),
ready to click or curl.

Examples:
  phoenixctl guest ls
  phoenixctl guest ls -o json | jq -r '.guests[].spec.name'
)";

constexpr std::string_view kShowHelp =
    R"(phoenixctl guest show: print everything the agent knows about one guest:
spec, state, health, restarts, last exit reason, how the current instance booted and how long it took.

Usage:
  phoenixctl guest show NAME [-o json]

Examples:
  phoenixctl guest show web
  phoenixctl guest show web -o json
)";

constexpr std::string_view kStartHelp = R"(phoenixctl guest start: start a stopped guest again.

Usage:
  phoenixctl guest start NAME

Example:
  phoenixctl guest start web
)";

constexpr std::string_view kStopHelp =
    R"(phoenixctl guest stop: shut a guest down; it stays stopped (no restart) until 'guest start'.

Usage:
  phoenixctl guest stop NAME [--timeout DURATION]

Flags:
  --timeout DURATION   graceful shutdown time before the agent stops it hard (default 10s).
                       The request deadline is this plus --rpc-timeout (default 30s).

Examples:
  phoenixctl guest stop web
  phoenixctl guest stop web --timeout 1m
)";

constexpr std::string_view kRmHelp =
    R"(phoenixctl guest rm: stop a guest (hard) and delete it with its writable disk layer.

Usage:
  phoenixctl guest rm NAME

Example:
  phoenixctl guest rm web
)";

constexpr std::string_view kLogsHelp =
    R"(phoenixctl guest logs: print the guest's console log (serial console for VMs, stdout/stderr for
containers) as the agent kept it.

Usage:
  phoenixctl guest logs NAME [--follow] [--tail BYTES]

Flags:
  --follow       keep streaming new output until interrupted (default: print and exit)
  --tail BYTES   only the last BYTES bytes (default 0: everything kept)

Examples:
  phoenixctl guest logs web --tail 4096
  phoenixctl guest logs web --follow
)";

constexpr std::string_view kKillHelp =
    R"(phoenixctl guest kill: chaos drill. The agent sends SIGKILL to the guest's hypervisor process
(QEMU, phoenix-vmm) or container init, exactly like a crash. The agent then notices the crash and
restarts the guest per its restart policy. Prints the killed pid.

Usage:
  phoenixctl guest kill NAME

Examples:
  phoenixctl guest kill web
  # watch the crash and the restart as they happen (run in a second terminal first)
  phoenixctl events --follow --guest web
  # measure restart latency over many kills
  phoenixctl bench restart --guest web --count 10
)";

// Positional NAME for commands that take exactly one guest.
std::optional<std::string> OneName(Context& ctx, std::string_view command,
                                   const FlagSet::Parsed& parsed, int* exit_code) {
  if (parsed.positionals.size() != 1) {
    *exit_code = ctx.UsageError(command, parsed.positionals.empty()
                                             ? "missing guest NAME"
                                             : "expects exactly one guest NAME, got " +
                                                   std::to_string(parsed.positionals.size()));
    return std::nullopt;
  }
  return parsed.positionals[0];
}

int PrintGuest(Context& ctx, const v1::Guest& guest) {
  if (ctx.json()) return PrintJson(ctx, guest);
  RenderGuestDetail(guest, ctx.out());
  return kExitOk;
}

int GuestRun(Context& ctx, std::span<const std::string> args) {
  constexpr std::string_view kCommand = "guest run";
  GuestSpecFlags spec_flags;
  FlagSet flags{std::string(kCommand)};
  spec_flags.Register(flags);
  flags.AllowTrailing();
  int exit_code = kExitOk;
  auto parsed = ParseCommandLine(ctx, flags, args, RunHelp(), &exit_code);
  if (!parsed) return exit_code;
  if (DialAgent(ctx, "guest run", &exit_code) == nullptr) return exit_code;

  auto name = OneName(ctx, kCommand, *parsed, &exit_code);
  if (!name) return exit_code;
  v1::GuestSpec spec;
  if (auto applied = spec_flags.Apply(*parsed, &spec); !applied) {
    return ctx.UsageError(kCommand, applied.error().message);
  }
  spec.set_name(*name);
  // The agent's own rules (proto/support/guest_spec.h): a spec it would refuse never leaves here.
  if (auto valid = spec::ParseGuestSpec(spec); !valid) {
    return ctx.UsageError(kCommand, valid.error().ToString());
  }

  v1::RunGuestRequest request;
  *request.mutable_spec() = spec;
  v1::Guest guest;
  auto context = ctx.UnaryContext();
  grpc::Status status = ctx.Stub().RunGuest(context.get(), request, &guest);
  if (!status.ok()) return ctx.RpcError(status);
  return PrintGuest(ctx, guest);
}

int GuestLs(Context& ctx, std::span<const std::string> args) {
  FlagSet flags{"guest ls"};
  int exit_code = kExitOk;
  auto parsed = ParseCommandLine(ctx, flags, args, kLsHelp, &exit_code);
  if (!parsed) return exit_code;
  if (DialAgent(ctx, "guest ls", &exit_code) == nullptr) return exit_code;
  if (!parsed->positionals.empty()) {
    return ctx.UsageError("guest ls", "takes no arguments (got '" + parsed->positionals[0] + "')");
  }
  v1::ListGuestsResponse response;
  auto context = ctx.UnaryContext();
  grpc::Status status = ctx.Stub().ListGuests(context.get(), v1::ListGuestsRequest(), &response);
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) return PrintJson(ctx, response);
  std::vector<v1::Guest> guests(response.guests().begin(), response.guests().end());
  std::ranges::sort(guests, {}, [](const v1::Guest& g) { return g.spec().name(); });
  RenderGuestTable(guests, std::chrono::system_clock::now(), ctx.out());
  return kExitOk;
}

// show/start/rm/kill: one NAME, one unary call.
template <typename Call>
int SimpleNameCommand(Context& ctx, std::span<const std::string> args, std::string_view command,
                      std::string_view help, Call call) {
  FlagSet flags{std::string(command)};
  int exit_code = kExitOk;
  auto parsed = ParseCommandLine(ctx, flags, args, help, &exit_code);
  if (!parsed) return exit_code;
  if (DialAgent(ctx, command, &exit_code) == nullptr) return exit_code;
  auto name = OneName(ctx, command, *parsed, &exit_code);
  if (!name) return exit_code;
  return call(*name);
}

int GuestShow(Context& ctx, std::span<const std::string> args) {
  return SimpleNameCommand(ctx, args, "guest show", kShowHelp, [&ctx](const std::string& name) {
    v1::GetGuestRequest request;
    request.set_name(name);
    v1::Guest guest;
    auto context = ctx.UnaryContext();
    grpc::Status status = ctx.Stub().GetGuest(context.get(), request, &guest);
    if (!status.ok()) return ctx.RpcError(status);
    return PrintGuest(ctx, guest);
  });
}

int GuestStart(Context& ctx, std::span<const std::string> args) {
  return SimpleNameCommand(ctx, args, "guest start", kStartHelp, [&ctx](const std::string& name) {
    v1::StartGuestRequest request;
    request.set_name(name);
    v1::Guest guest;
    auto context = ctx.UnaryContext();
    grpc::Status status = ctx.Stub().StartGuest(context.get(), request, &guest);
    if (!status.ok()) return ctx.RpcError(status);
    if (ctx.json()) return PrintJson(ctx, guest);
    ctx.out() << name << ": " << GuestStateName(guest.state()) << "\n";
    return kExitOk;
  });
}

int GuestRm(Context& ctx, std::span<const std::string> args) {
  return SimpleNameCommand(ctx, args, "guest rm", kRmHelp, [&ctx](const std::string& name) {
    v1::DeleteGuestRequest request;
    request.set_name(name);
    v1::DeleteGuestResponse response;
    auto context = ctx.UnaryContext();
    grpc::Status status = ctx.Stub().DeleteGuest(context.get(), request, &response);
    if (!status.ok()) return ctx.RpcError(status);
    if (ctx.json()) return PrintJson(ctx, response);
    ctx.out() << name << ": deleted\n";
    return kExitOk;
  });
}

int GuestKill(Context& ctx, std::span<const std::string> args) {
  return SimpleNameCommand(ctx, args, "guest kill", kKillHelp, [&ctx](const std::string& name) {
    v1::KillGuestRequest request;
    request.set_name(name);
    v1::KillGuestResponse response;
    auto context = ctx.UnaryContext();
    grpc::Status status = ctx.Stub().KillGuest(context.get(), request, &response);
    if (!status.ok()) return ctx.RpcError(status);
    if (ctx.json()) return PrintJson(ctx, response);
    ctx.out() << name << ": sent SIGKILL to pid " << response.pid()
              << "; watch the restart with 'phoenixctl events --follow --guest " << name << "'\n";
    return kExitOk;
  });
}

int GuestStop(Context& ctx, std::span<const std::string> args) {
  constexpr std::string_view kCommand = "guest stop";
  std::optional<std::chrono::milliseconds> grace;
  FlagSet flags{std::string(kCommand)};
  flags.Duration("timeout", &grace);
  int exit_code = kExitOk;
  auto parsed = ParseCommandLine(ctx, flags, args, kStopHelp, &exit_code);
  if (!parsed) return exit_code;
  if (DialAgent(ctx, "guest stop", &exit_code) == nullptr) return exit_code;
  auto name = OneName(ctx, kCommand, *parsed, &exit_code);
  if (!name) return exit_code;
  v1::StopGuestRequest request;
  request.set_name(*name);
  std::chrono::milliseconds shutdown = grace.value_or(std::chrono::seconds(10));
  request.set_timeout_ms(static_cast<uint32_t>(shutdown.count()));
  v1::Guest guest;
  // The agent may use the whole grace period before it answers.
  auto context = ctx.ContextWithDeadline(shutdown + ctx.options().rpc_timeout);
  grpc::Status status = ctx.Stub().StopGuest(context.get(), request, &guest);
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) return PrintJson(ctx, guest);
  ctx.out() << *name << ": " << GuestStateName(guest.state()) << "\n";
  return kExitOk;
}

int GuestLogs(Context& ctx, std::span<const std::string> args) {
  constexpr std::string_view kCommand = "guest logs";
  bool follow = false;
  std::optional<uint64_t> tail;
  FlagSet flags{std::string(kCommand)};
  flags.Bool("follow", &follow);
  flags.UInt("tail", std::numeric_limits<uint64_t>::max(), &tail);
  int exit_code = kExitOk;
  auto parsed = ParseCommandLine(ctx, flags, args, kLogsHelp, &exit_code);
  if (!parsed) return exit_code;
  if (DialAgent(ctx, "guest logs", &exit_code) == nullptr) return exit_code;
  auto name = OneName(ctx, kCommand, *parsed, &exit_code);
  if (!name) return exit_code;
  v1::GuestLogsRequest request;
  request.set_name(*name);
  request.set_follow(follow);
  request.set_tail_bytes(tail.value_or(0));
  // Following has no deadline: the user ends it. A one-shot read is a unary call in spirit.
  auto context = follow ? std::make_unique<grpc::ClientContext>() : ctx.UnaryContext();
  if (follow) ctx.AddAgentAuth(*context);
  auto reader = ctx.Stub().GuestLogs(context.get(), request);
  v1::LogChunk chunk;
  while (reader->Read(&chunk)) {
    if (ctx.json()) {
      if (int rc = PrintJson(ctx, chunk, /*multiline=*/false); rc != kExitOk) {
        context->TryCancel();
        reader->Finish();
        return rc;
      }
    } else {
      ctx.out() << chunk.data();
    }
    ctx.out().flush();
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return ctx.RpcError(status);
  return kExitOk;
}

}  // namespace

int RunGuestGroup(Context& ctx, std::span<const std::string> args) {
  static const std::map<std::string, CommandFn, std::less<>> kCommands = {
      {"run", GuestRun},   {"ls", GuestLs}, {"show", GuestShow}, {"start", GuestStart},
      {"stop", GuestStop}, {"rm", GuestRm}, {"logs", GuestLogs}, {"kill", GuestKill},
  };
  return DispatchGroup(ctx, "guest", kGroupHelp, kCommands, args);
}

void GuestSpecFlags::Register(FlagSet& flags) {
  flags.String("image", &image_);
  flags.Value("runtime", [this](std::string_view value) -> Result<void> {
    auto runtime = ParseRuntime(value);
    if (!runtime) return std::unexpected(runtime.error());
    runtime_ = *runtime;
    return {};
  });
  flags.UInt("cpus", 1024, &cpus_);
  flags.Value("memory", [this](std::string_view value) -> Result<void> {
    auto mib = ParseMemoryMib(value);
    if (!mib) return std::unexpected(mib.error());
    if (*mib > std::numeric_limits<uint32_t>::max()) return InvalidArgument("", "is too large");
    memory_mib_ = *mib;
    return {};
  });
  flags.Strings("publish", &publish_);
  flags.String("health-http", &health_http_);
  flags.UInt("health-tcp", 65535, &health_tcp_);
  flags.Duration("health-interval", &health_interval_);
  flags.Duration("health-restart-after", &health_restart_after_);
  flags.Value("restart", [this](std::string_view value) -> Result<void> {
    auto policy = ParseRestartPolicy(value);
    if (!policy) return std::unexpected(policy.error());
    restart_ = *policy;
    return {};
  });
  flags.Value("boot", [this](std::string_view value) -> Result<void> {
    auto mode = ParseBootMode(value);
    if (!mode) return std::unexpected(mode.error());
    boot_ = *mode;
    return {};
  });
  flags.Strings("env", &env_);
}

Result<void> GuestSpecFlags::Apply(const FlagSet::Parsed& parsed, v1::GuestSpec* spec) const {
  if (image_.empty()) return InvalidArgument("", "--image is required (see 'phoenixctl image ls')");
  spec->set_image(image_);
  if (runtime_) spec->set_runtime(*runtime_);
  if (cpus_) {
    if (*cpus_ == 0) return InvalidArgument("", "--cpus must be at least 1");
    spec->set_vcpus(static_cast<uint32_t>(*cpus_));
  }
  if (memory_mib_) spec->set_memory_mib(static_cast<uint32_t>(*memory_mib_));
  for (const std::string& text : publish_) {
    auto mapping = ParsePublish(text);
    if (!mapping) return InvalidArgument("", "--publish " + text + ": " + mapping.error().message);
    *spec->add_ports() = *mapping;
  }
  if (!health_http_.empty() && health_tcp_) {
    return InvalidArgument("", "--health-http and --health-tcp exclude each other");
  }
  if (!health_http_.empty()) {
    auto probe = ParseHttpProbe(health_http_);
    if (!probe) {
      return InvalidArgument("", "--health-http " + health_http_ + ": " + probe.error().message);
    }
    *spec->mutable_health()->mutable_http() = *probe;
  } else if (health_tcp_) {
    if (*health_tcp_ == 0) return InvalidArgument("", "--health-tcp must be a port 1-65535");
    spec->mutable_health()->mutable_tcp()->set_port(static_cast<uint32_t>(*health_tcp_));
  }
  if (health_interval_) {
    if (!spec->has_health()) {
      return InvalidArgument("", "--health-interval needs --health-http or --health-tcp");
    }
    auto interval_ms = static_cast<uint32_t>(health_interval_->count());
    spec->mutable_health()->set_interval_ms(interval_ms);
    // A probe may not outlive its interval; the default probe timeout is 1s.
    if (interval_ms < 1000) spec->mutable_health()->set_timeout_ms(interval_ms);
  }
  if (health_restart_after_) {
    if (!spec->has_health()) {
      return InvalidArgument("", "--health-restart-after needs --health-http or --health-tcp");
    }
    if (*health_restart_after_ > std::chrono::hours(1)) {
      return InvalidArgument("", "--health-restart-after must be at most 1h");
    }
    spec->mutable_health()->set_restart_after_unhealthy_ms(
        static_cast<uint32_t>(health_restart_after_->count()));
  }
  if (restart_) spec->mutable_restart()->set_policy(*restart_);
  if (boot_) spec->set_boot_mode(*boot_);
  for (const std::string& pair : env_) {
    size_t eq = pair.find('=');
    if (eq == 0 || eq == std::string::npos) {
      return InvalidArgument("", "--env " + pair + ": expects KEY=VALUE");
    }
    (*spec->mutable_env())[pair.substr(0, eq)] = pair.substr(eq + 1);
  }
  for (const std::string& word : parsed.trailing) spec->add_command(word);
  return {};
}

Result<v1::PortMapping> ParsePublish(std::string_view text) {
  std::vector<std::string_view> parts;
  // The host IP may be IPv6 in brackets: "[::1]:8080:80".
  std::string_view rest = text;
  std::string host_ip;
  if (rest.starts_with("[")) {
    size_t close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      return InvalidArgument("", "expects [HOSTIP]:HOSTPORT:GUESTPORT");
    }
    host_ip = std::string(rest.substr(1, close - 1));
    rest.remove_prefix(close + 2);
  }
  size_t start = 0;
  while (true) {
    size_t colon = rest.find(':', start);
    parts.push_back(rest.substr(start, colon - start));
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  if (!host_ip.empty() && parts.size() != 2) {
    return InvalidArgument("", "expects [HOSTIP]:HOSTPORT:GUESTPORT");
  }
  if (parts.size() > 3) {
    return InvalidArgument("", "expects [[HOSTIP:]HOSTPORT:]GUESTPORT, e.g. 8080:80");
  }
  if (parts.size() == 3) {
    if (parts[0].empty()) return InvalidArgument("", "host IP is empty");
    host_ip = std::string(parts[0]);
    parts.erase(parts.begin());
  }
  auto port = [](std::string_view value, std::string_view what, bool zero_ok) -> Result<uint32_t> {
    auto parsed = ParseUInt(value, 65535);
    if (!parsed || (*parsed == 0 && !zero_ok)) {
      return InvalidArgument(
          "", std::string(what) + " '" + std::string(value) + "' is not a port 1-65535");
    }
    return static_cast<uint32_t>(*parsed);
  };
  v1::PortMapping mapping;
  auto guest_port = port(parts.back(), "guest port", false);
  if (!guest_port) return std::unexpected(guest_port.error());
  mapping.set_guest_port(*guest_port);
  if (parts.size() == 2) {
    auto host_port = port(parts[0], "host port", true);
    if (!host_port) return std::unexpected(host_port.error());
    mapping.set_host_port(*host_port);
  }
  mapping.set_host_ip(host_ip.empty() ? "127.0.0.1" : host_ip);
  return mapping;
}

Result<v1::HttpProbe> ParseHttpProbe(std::string_view text) {
  size_t slash = text.find('/');
  std::string_view port_text = text.substr(0, slash);
  auto port = ParseUInt(port_text, 65535);
  if (!port || *port == 0) {
    return InvalidArgument("", "expects PORT[/PATH] with a guest port 1-65535, e.g. 80/health");
  }
  v1::HttpProbe probe;
  probe.set_port(static_cast<uint32_t>(*port));
  if (slash != std::string_view::npos) probe.set_path(std::string(text.substr(slash)));
  return probe;
}

std::string HealthColumn(const v1::Guest& guest) {
  if (guest.state() != v1::GUEST_STATE_RUNNING) return "-";
  if (!guest.spec().has_health() ||
      guest.spec().health().probe_case() == v1::HealthCheck::PROBE_NOT_SET) {
    return "-";
  }
  return guest.healthy() ? "healthy" : "unhealthy";
}

namespace {

std::string Endpoints(const v1::Guest& guest) {
  std::string text;
  for (const v1::Endpoint& endpoint : guest.endpoints()) {
    if (!text.empty()) text += ",";
    text += EndpointUrl(endpoint);
  }
  return text.empty() ? "-" : text;
}

}  // namespace

void RenderGuestTable(std::span<const v1::Guest> guests, std::chrono::system_clock::time_point now,
                      std::ostream& out) {
  Table table({"NAME", "RUNTIME", "STATE", "HEALTH", "RESTARTS", "ENDPOINT", "IMAGE", "AGE"});
  for (const v1::Guest& guest : guests) {
    table.AddRow({guest.spec().name(), RuntimeName(guest.spec().runtime()),
                  GuestStateName(guest.state()), HealthColumn(guest),
                  std::to_string(guest.restart_count()), Endpoints(guest), guest.spec().image(),
                  FormatAge(guest.created_at(), now)});
  }
  table.Render(out);
}

std::vector<std::pair<std::string, std::string>> MetricsRows(const v1::GuestMetrics& m,
                                                             uint32_t vcpus) {
  auto fixed = [](double v, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return std::string(buf);
  };
  if (vcpus == 0) vcpus = 1;
  std::vector<std::pair<std::string, std::string>> rows;
  const std::string window =
      m.window_ms() == 0 ? "" : " (over " + fixed(m.window_ms() / 1000.0, 1) + " s)";
  rows.emplace_back("CPU", m.cpu_valid()
                               ? fixed(m.cpu_percent(), 1) + "% of " + std::to_string(vcpus) +
                                     " vCPU" + (vcpus == 1 ? "" : "s") + window
                               : "not measured");
  rows.emplace_back("Memory used", m.memory_bytes() == 0
                                       ? "not measured"
                                       : fixed(m.memory_bytes() / 1048576.0, 1) + " MiB");
  if (m.requests_valid()) {
    rows.emplace_back("Requests", fixed(m.requests_per_second(), 1) + "/s" + window + ", " +
                                      std::to_string(m.requests_total()) + " since start, " +
                                      std::to_string(m.connection_errors_total()) +
                                      " connection errors");
    rows.emplace_back("Latency", "p50 " + fixed(m.latency_p50_ms(), 2) + " ms, p99 " +
                                     fixed(m.latency_p99_ms(), 2) +
                                     " ms (to the first reply byte)");
  } else {
    rows.emplace_back("Requests", "not measured (no published port, or no sample yet)");
  }
  return rows;
}

void RenderGuestDetail(const v1::Guest& guest, std::ostream& out) {
  const v1::GuestSpec& spec = guest.spec();
  std::vector<std::pair<std::string, std::string>> rows;
  auto add = [&rows](std::string key, std::string value) {
    rows.emplace_back(std::move(key), value.empty() ? "-" : std::move(value));
  };
  add("Name", spec.name());
  add("ID", guest.id());
  add("State", GuestStateName(guest.state()));
  add("Health", HealthColumn(guest));
  add("Restarts", std::to_string(guest.restart_count()));
  add("Last exit", guest.last_exit_reason());
  add("Runtime", RuntimeName(spec.runtime()) +
                     (guest.accelerator().empty() ? "" : " (" + guest.accelerator() + ")"));
  add("Image", spec.image() + (guest.image_id().empty() ? "" : " (" + guest.image_id() + ")"));
  add("CPUs", spec.vcpus() == 0 ? "1 (default)" : std::to_string(spec.vcpus()));
  add("Memory",
      spec.memory_mib() == 0 ? "256 MiB (default)" : std::to_string(spec.memory_mib()) + " MiB");
  std::string endpoints;
  for (const v1::Endpoint& endpoint : guest.endpoints()) {
    if (!endpoints.empty()) endpoints += ", ";
    endpoints += EndpointUrl(endpoint) + " -> guest port " + std::to_string(endpoint.guest_port());
  }
  add("Endpoints", endpoints);
  std::string health;
  if (spec.has_health()) {
    const v1::HealthCheck& h = spec.health();
    if (h.has_http()) {
      health = "http GET :" + std::to_string(h.http().port()) +
               (h.http().path().empty() ? "/health" : h.http().path());
    } else if (h.has_tcp()) {
      health = "tcp :" + std::to_string(h.tcp().port());
    }
    if (!health.empty()) {
      health +=
          " every " +
          FormatMillis(std::chrono::milliseconds(h.interval_ms() == 0 ? 1000 : h.interval_ms()));
      if (h.has_restart_after_unhealthy_ms()) {
        health +=
            h.restart_after_unhealthy_ms() == 0
                ? ", restart when unhealthy"
                : ", restart after " +
                      FormatMillis(std::chrono::milliseconds(h.restart_after_unhealthy_ms())) +
                      " unhealthy";
      }
    }
  }
  add("Health check", health);
  add("Restart policy", RestartPolicyName(spec.restart().policy()));
  std::string boot = "wanted " + BootModeName(spec.boot_mode());
  if (guest.last_boot() != v1::BOOT_MODE_UNSPECIFIED) {
    boot += ", last " + BootModeName(guest.last_boot()) + " in " +
            std::to_string(guest.last_boot_ms()) + " ms";
  }
  add("Boot", boot);
  add("Instance", guest.instance());
  add("Node", guest.node());
  if (guest.has_metrics()) {
    for (auto& [key, value] : MetricsRows(guest.metrics(), spec.vcpus())) add(key, value);
  } else if (guest.state() == v1::GUEST_STATE_RUNNING) {
    add("Load", "not sampled yet");
  }
  if (!spec.command().empty()) {
    std::string command;
    for (const std::string& word : spec.command()) command += (command.empty() ? "" : " ") + word;
    add("Command", command);
  }
  if (!spec.env().empty()) {
    std::map<std::string, std::string> sorted(spec.env().begin(), spec.env().end());
    std::string env;
    for (const auto& [key, value] : sorted) env += (env.empty() ? "" : " ") + key + "=" + value;
    add("Env", env);
  }
  add("Created", FormatTime(guest.created_at()));
  add("Started", FormatTime(guest.started_at()));
  add("Updated", FormatTime(guest.updated_at()));
  size_t width = 0;
  for (const auto& [key, value] : rows) width = std::max(width, key.size());
  for (const auto& [key, value] : rows) {
    out << key << ":" << std::string(width - key.size() + 1, ' ') << value << "\n";
  }
}

}  // namespace phoenix::ctl
