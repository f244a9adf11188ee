// phoenixctl: the admins' CLI for the Phoenix agent's and supervisor's gRPC APIs. This file only
// parses the global flags that precede the command and dispatches to the command groups.
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "tools/phoenixctl/bench_command.h"
#include "tools/phoenixctl/cli.h"
#include "tools/phoenixctl/events_command.h"
#include "tools/phoenixctl/guest_commands.h"
#include "tools/phoenixctl/image_commands.h"
#include "tools/phoenixctl/node_command.h"
#include "tools/phoenixctl/service_commands.h"
#include "tools/phoenixctl/token_commands.h"

namespace phoenix::ctl {
namespace {

constexpr std::string_view kHelp =
    R"(phoenixctl: control Phoenix. Talk to one agent to run guests (VMs, micro-VMs, containers) from
golden images, watch it restart them when they crash, and measure how fast it does; talk to the
supervisor to run services of N replicas spread over a cluster's zones.

Usage:
  phoenixctl [global flags] COMMAND [SUBCOMMAND] [flags] [args]

Agent commands (--endpoint):
  guest        run, list, show, start, stop, remove and kill guests; read their console logs
  image        list, build and import golden images
  node info    this host: capacity, allocations, runtimes and their accelerators (kvm/tcg)
  bench        measure restart latency: kill -> running -> healthy, per boot mode

Supervisor commands (--supervisor):
  service      create, list, show, scale and remove services (replicas placed across nodes)
  node         ls, show, drain, undrain, rm the cluster's nodes
  token        mint bearer tokens (viewer, operator, admin) for this API
  join-token   mint join tokens that let agents enroll

Either:
  events       the supervisor's cluster events when a supervisor is configured, else the agent's
               (--agent forces the agent); --follow to watch

Global flags (before the command or among its flags):
  --endpoint ADDR           agent API: unix:/path/to/agent.sock, or HOST:PORT of an agent started
                            with --tls-listen (TLS; needs --agent-ca-file and a --token of its
                            supervisor) or --insecure-tcp (needs --insecure) (default:
                            $PHOENIX_ENDPOINT, else unix:/run/phoenix/agent.sock)
  --agent-ca-file FILE      the TCP agent API's CA certificate, <agent-state>/pki/api-ca.pem
                            (default: $PHOENIX_AGENT_CA)
  --supervisor HOST:PORT    supervisor gRPC address (default: $PHOENIX_SUPERVISOR, else 127.0.0.1:7400)
  --token TOKEN             bearer token for the supervisor and TCP agents (default: $PHOENIX_TOKEN)
  --token-file FILE         read the token from FILE, e.g. <supervisor-state>/admin.token
  --ca-file FILE            the supervisor's CA certificate for TLS, <supervisor-state>/pki/ca.pem
                            (default: $PHOENIX_CA); required unless --insecure
  --insecure                plaintext to the supervisor or a TCP agent; only to loopback addresses
                            (development)
  --timeout DURATION        deadline of each request, e.g. 500ms, 10s, 2m (default 30s)
  --rpc-timeout DURATION    the same, for commands whose own --timeout means something else
                            (guest stop, bench restart)
  -o, --output table|json   table (default), or json: one document (streams: one object per line)
  -h, --help                help for any command, e.g. 'phoenixctl guest run --help'

Examples:
  # run the demo web app on http://127.0.0.1:8080 with an HTTP health check
  phoenixctl guest run web --image demo --publish 8080:80 --health-http 80/health
  curl http://127.0.0.1:8080/
  # chaos drill: kill its hypervisor, then watch the agent bring it back
  phoenixctl guest kill web
  phoenixctl events --agent --follow --guest web
  # how long does a restart take, cold boot vs golden snapshot?
  phoenixctl bench restart --runtime vm --count 10
  # the same app as a 3-replica service spread over zones, through the supervisor
  export PHOENIX_SUPERVISOR=127.0.0.1:7400 PHOENIX_CA=/var/lib/phoenix/supervisor/pki/ca.pem
  export PHOENIX_TOKEN=$(sudo cat /var/lib/phoenix/supervisor/admin.token)
  phoenixctl service create web --image demo --runtime container --replicas 3 --spread zone \
      --publish 80 --health-http 80/health
  phoenixctl service show web
  phoenixctl node ls

Exit status: 0 ok, 1 the agent or supervisor returned an error or could not be reached, 2 usage
error.
)";

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto env = [](std::string_view name) {
    const char* value = std::getenv(std::string(name).c_str());
    return std::string(value == nullptr ? "" : value);
  };
  Context ctx(std::cout, std::cerr, env(kEndpointEnv),
              SupervisorEnv{env(kSupervisorEnv), env(kTokenEnv), env(kCaEnv), env(kAgentCaEnv)});

  FlagSet globals{""};
  globals.StopAtPositional();
  AddGlobalFlags(globals, ctx.options());
  auto parsed = globals.Parse(args);
  if (!parsed) {
    std::cerr << "error: " << parsed.error().message << "\n";
    return kExitUsage;
  }
  if (parsed->help) {
    std::cout << kHelp;
    return kExitOk;
  }
  if (parsed->positionals.empty()) {
    std::cerr << kHelp;
    return kExitUsage;
  }
  static const std::map<std::string, CommandFn, std::less<>> kGroups = {
      {"guest", RunGuestGroup}, {"image", RunImageGroup},          {"events", RunEventsCommand},
      {"node", RunNodeGroup},   {"bench", RunBenchGroup},          {"service", RunServiceGroup},
      {"token", RunTokenGroup}, {"join-token", RunJoinTokenGroup},
  };
  const std::string& group = parsed->positionals[0];
  if (group == "help") {
    std::cout << kHelp;
    return kExitOk;
  }
  auto it = kGroups.find(group);
  if (it == kGroups.end()) {
    std::cerr << "error: unknown command '" << group
              << "' (commands: guest, image, events, node, bench, service, token, join-token)\n"
                 "see 'phoenixctl --help'\n";
    return kExitUsage;
  }
  std::span<const std::string> rest(parsed->positionals);
  return it->second(ctx, rest.subspan(1));
}

}  // namespace
}  // namespace phoenix::ctl

int main(int argc, char** argv) { return phoenix::ctl::Main(argc, argv); }
