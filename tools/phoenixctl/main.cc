// phoenixctl: the admins' CLI for a Phoenix agent's gRPC API. This file only parses the global
// flags that precede the command and dispatches to the command groups.
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

namespace phoenix::ctl {
namespace {

constexpr std::string_view kHelp =
    R"(phoenixctl: control a Phoenix agent over its gRPC API: run guests (VMs, micro-VMs, containers)
from golden images, watch the agent restart them when they crash, and measure how fast it does.

Usage:
  phoenixctl [global flags] COMMAND [SUBCOMMAND] [flags] [args]

Commands:
  guest    run, list, show, start, stop, remove and kill guests; read their console logs
  image    list, build and import golden images
  events   print the agent's event log (crashes, restarts, health changes); --follow to watch
  node     show this host: capacity, allocations, runtimes and their accelerators (kvm/tcg)
  bench    measure restart latency: kill -> running -> healthy, per boot mode

Global flags (before the command or among its flags):
  --endpoint HOST:PORT      agent gRPC address (default: $PHOENIX_ENDPOINT, else 127.0.0.1:7070)
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
  phoenixctl events --follow --guest web
  # how long does a restart take, cold boot vs golden snapshot?
  phoenixctl bench restart --runtime vm --count 10

Exit status: 0 ok, 1 the agent returned an error or could not be reached, 2 usage error.
)";

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const char* env_endpoint = std::getenv(std::string(kEndpointEnv).c_str());
  Context ctx(std::cout, std::cerr, env_endpoint == nullptr ? "" : env_endpoint);

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
      {"guest", RunGuestGroup}, {"image", RunImageGroup}, {"events", RunEventsCommand},
      {"node", RunNodeGroup},   {"bench", RunBenchGroup},
  };
  const std::string& group = parsed->positionals[0];
  if (group == "help") {
    std::cout << kHelp;
    return kExitOk;
  }
  auto it = kGroups.find(group);
  if (it == kGroups.end()) {
    std::cerr << "error: unknown command '" << group
              << "' (commands: guest, image, events, node, bench)\nsee 'phoenixctl --help'\n";
    return kExitUsage;
  }
  std::span<const std::string> rest(parsed->positionals);
  return it->second(ctx, rest.subspan(1));
}

}  // namespace
}  // namespace phoenix::ctl

int main(int argc, char** argv) { return phoenix::ctl::Main(argc, argv); }
