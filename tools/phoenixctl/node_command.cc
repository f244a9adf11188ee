#include "tools/phoenixctl/node_command.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <vector>

namespace phoenix::ctl {

namespace {

constexpr std::string_view kGroupHelp =
    R"(phoenixctl node: hosts. 'info' asks one agent about its own host; the other commands ask the
supervisor about every node of the cluster.

Usage:
  phoenixctl node COMMAND [flags] [args]

Commands:
  info           (agent) this host: name, zone, labels, capacity and allocations, guests, and
                 which runtimes work here with which accelerator (kvm, or tcg)
  ls             (supervisor) every node: NAME ZONE STATE DRAINED CPU MEM REPLICAS HEARTBEAT-AGE
  show NAME      (supervisor) one node: labels, state and why, capacity, runtimes, assignment
                 versions, last heartbeat
  drain NAME     (supervisor) place no new replicas on NAME and move its replicas elsewhere
  undrain NAME   (supervisor) let NAME take replicas again
  rm NAME        (supervisor, admin) forget NAME and revoke its certificate (before re-enrolling
                 a reinstalled host under the same name)

Agent flags: --endpoint ADDR (default $PHOENIX_ENDPOINT, else unix:/run/phoenix/agent.sock).
Supervisor flags: --supervisor HOST:PORT ($PHOENIX_SUPERVISOR, default 127.0.0.1:7400),
  --token TOKEN ($PHOENIX_TOKEN) or --token-file FILE, --ca-file FILE ($PHOENIX_CA),
  --insecure (plaintext, loopback only). See 'phoenixctl --help'.

Examples:
  phoenixctl node info
  phoenixctl node ls
  phoenixctl node drain host-2 && phoenixctl service show web
)";

constexpr std::string_view kInfoHelp =
    R"(phoenixctl node info: the host the agent runs on, as the agent sees it.

Usage:
  phoenixctl node info [-o json]

Prints name, zone, labels, capacity and what guests have allocated, the number of guests, and which
runtimes work here with which accelerator (kvm, or tcg software emulation when /dev/kvm is
unusable). Talks to the agent (--endpoint), not the supervisor.

Examples:
  phoenixctl node info
  phoenixctl node info -o json | jq '.runtimes'
)";

constexpr std::string_view kLsHelp =
    R"(phoenixctl node ls: the cluster's nodes, as the supervisor sees them.

Usage:
  phoenixctl node ls [-o json]

Columns: NAME ZONE STATE DRAINED CPU MEM REPLICAS HEARTBEAT-AGE. STATE is ready (heartbeating on
time), suspect (heartbeats late or link lost: its replicas are left in place) or down (presumed dead:
its replicas were placed elsewhere). CPU and MEM are allocated/capacity. HEARTBEAT-AGE is the time
since the node's last heartbeat.

Examples:
  phoenixctl node ls
  phoenixctl node ls -o json | jq -r '.nodes[] | select(.state != "NODE_STATE_READY") | .name'
)";

constexpr std::string_view kShowHelp =
    R"(phoenixctl node show: one node as the supervisor sees it: zone, labels, state and why,
drained, capacity and allocations, runtimes, replicas, assignment versions (made by the supervisor
vs applied by the agent) and the last heartbeat.

Usage:
  phoenixctl node show NAME [-o json]

Examples:
  phoenixctl node show host-1
  phoenixctl node show host-1 -o json | jq .labels
)";

constexpr std::string_view kDrainHelp =
    R"(phoenixctl node drain: take a node out of service for maintenance. The supervisor places no
new replicas on it and moves its replicas to other nodes (keeping the zone spread when it can).

Usage:
  phoenixctl node drain NAME

Examples:
  phoenixctl node drain host-2
  phoenixctl events --follow --node host-2
)";

constexpr std::string_view kUndrainHelp =
    R"(phoenixctl node undrain: let a drained node take replicas again. Replicas that were moved away
stay where they are; new placements may use the node.

Usage:
  phoenixctl node undrain NAME

Example:
  phoenixctl node undrain host-2
)";

constexpr std::string_view kRmHelp =
    R"(phoenixctl node rm: forget an enrolled node and revoke its certificate (admin).

Its agent link is closed at once and refused from then on, whoever presents that certificate; the
node turns down and its replicas are placed elsewhere. The name is free again: a join token can
enroll it (a reinstalled host), which it cannot while the node holds a valid certificate.

Usage:
  phoenixctl node rm NAME

Example:
  phoenixctl node rm host-2
  phoenix-supervisor join-token   # then enroll host-2 again with it
)";

int NodeInfo(Context& ctx, std::span<const std::string> args) {
  FlagSet flags{"node info"};
  int exit_code = kExitOk;
  auto parsed = ParseCommandLine(ctx, flags, args, kInfoHelp, &exit_code);
  if (!parsed) return exit_code;
  if (DialAgent(ctx, "node info", &exit_code) == nullptr) return exit_code;
  if (!parsed->positionals.empty()) {
    return ctx.UsageError("node info", "takes no arguments (got '" + parsed->positionals[0] + "')");
  }
  v1::NodeInfo info;
  auto context = ctx.UnaryContext();
  grpc::Status status = ctx.Stub().GetNodeInfo(context.get(), v1::GetNodeInfoRequest(), &info);
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) return PrintJson(ctx, info);
  RenderNodeInfo(info, ctx.out());
  return kExitOk;
}

int NodeLs(Context& ctx, std::span<const std::string> args) {
  constexpr std::string_view kCommand = "node ls";
  FlagSet flags{std::string(kCommand)};
  int exit_code = kExitOk;
  auto parsed = ParseCommandLine(ctx, flags, args, kLsHelp, &exit_code);
  if (!parsed) return exit_code;
  if (!parsed->positionals.empty()) {
    return ctx.UsageError(kCommand, "takes no arguments (got '" + parsed->positionals[0] + "')");
  }
  auto* stub = DialSupervisor(ctx, kCommand, &exit_code);
  if (stub == nullptr) return exit_code;
  v1::ListNodesResponse response;
  auto context = ctx.SupervisorContext();
  grpc::Status status = stub->ListNodes(context.get(), v1::ListNodesRequest(), &response);
  if (!status.ok()) return ctx.RpcError(status, Peer::kSupervisor);
  if (ctx.json()) return PrintJson(ctx, response);
  std::vector<v1::Node> nodes(response.nodes().begin(), response.nodes().end());
  std::ranges::sort(nodes, {}, [](const v1::Node& n) { return std::pair(n.zone(), n.name()); });
  RenderNodeTable(nodes, std::chrono::system_clock::now(), ctx.out());
  return kExitOk;
}

// show/drain/undrain/rm: one NAME, one unary call answering with a Response, then `print`.
template <typename Response = v1::Node, typename Call, typename Print>
int NodeNameCommand(Context& ctx, std::span<const std::string> args, std::string_view command,
                    std::string_view help, Call call, Print print) {
  FlagSet flags{std::string(command)};
  int exit_code = kExitOk;
  auto parsed = ParseCommandLine(ctx, flags, args, help, &exit_code);
  if (!parsed) return exit_code;
  if (parsed->positionals.size() != 1) {
    return ctx.UsageError(command, parsed->positionals.empty()
                                       ? "missing node NAME"
                                       : "expects exactly one node NAME, got " +
                                             std::to_string(parsed->positionals.size()));
  }
  auto* stub = DialSupervisor(ctx, command, &exit_code);
  if (stub == nullptr) return exit_code;
  Response response;
  auto context = ctx.SupervisorContext();
  grpc::Status status = call(*stub, context.get(), parsed->positionals[0], &response);
  if (!status.ok()) return ctx.RpcError(status, Peer::kSupervisor);
  if (ctx.json()) return PrintJson(ctx, response);
  return print(response);
}

int NodeShow(Context& ctx, std::span<const std::string> args) {
  return NodeNameCommand(
      ctx, args, "node show", kShowHelp,
      [](v1::Supervisor::StubInterface& stub, grpc::ClientContext* context, const std::string& name,
         v1::Node* node) {
        v1::GetNodeRequest request;
        request.set_name(name);
        return stub.GetNode(context, request, node);
      },
      [&ctx](const v1::Node& node) {
        RenderNodeDetail(node, std::chrono::system_clock::now(), ctx.out());
        return kExitOk;
      });
}

int NodeDrain(Context& ctx, std::span<const std::string> args) {
  return NodeNameCommand(
      ctx, args, "node drain", kDrainHelp,
      [](v1::Supervisor::StubInterface& stub, grpc::ClientContext* context, const std::string& name,
         v1::Node* node) {
        v1::DrainNodeRequest request;
        request.set_name(name);
        return stub.DrainNode(context, request, node);
      },
      [&ctx](const v1::Node& node) {
        ctx.out() << node.name() << ": drained; its " << node.replicas()
                  << " replicas move to other nodes (watch with 'phoenixctl events --follow "
                     "--node "
                  << node.name() << "')\n";
        return kExitOk;
      });
}

int NodeUndrain(Context& ctx, std::span<const std::string> args) {
  return NodeNameCommand(
      ctx, args, "node undrain", kUndrainHelp,
      [](v1::Supervisor::StubInterface& stub, grpc::ClientContext* context, const std::string& name,
         v1::Node* node) {
        v1::UndrainNodeRequest request;
        request.set_name(name);
        return stub.UndrainNode(context, request, node);
      },
      [&ctx](const v1::Node& node) {
        ctx.out() << node.name() << ": undrained; new replicas may be placed on it\n";
        return kExitOk;
      });
}

int NodeRm(Context& ctx, std::span<const std::string> args) {
  return NodeNameCommand<v1::RemoveNodeResponse>(
      ctx, args, "node rm", kRmHelp,
      [](v1::Supervisor::StubInterface& stub, grpc::ClientContext* context, const std::string& name,
         v1::RemoveNodeResponse* response) {
        v1::RemoveNodeRequest request;
        request.set_name(name);
        return stub.RemoveNode(context, request, response);
      },
      [&ctx](const v1::RemoveNodeResponse& response) {
        ctx.out() << response.name() << ": removed; certificate " << response.revoked_serial()
                  << " revoked, its agent link closed. Its replicas move elsewhere once it is "
                     "down; to bring the host back, enroll it again with a join token.\n";
        return kExitOk;
      });
}

}  // namespace

int RunNodeGroup(Context& ctx, std::span<const std::string> args) {
  static const std::map<std::string, CommandFn, std::less<>> kCommands = {
      {"info", NodeInfo},   {"ls", NodeLs},           {"show", NodeShow},
      {"drain", NodeDrain}, {"undrain", NodeUndrain}, {"rm", NodeRm},
  };
  return DispatchGroup(ctx, "node", kGroupHelp, kCommands, args);
}

void RenderNodeInfo(const v1::NodeInfo& info, std::ostream& out) {
  auto or_dash = [](const std::string& s) { return s.empty() ? std::string("-") : s; };
  std::map<std::string, std::string> labels(info.labels().begin(), info.labels().end());
  std::string label_text;
  for (const auto& [key, value] : labels) {
    label_text += (label_text.empty() ? "" : " ") + key + "=" + value;
  }
  out << "Name:       " << or_dash(info.name()) << "\n";
  out << "Zone:       " << or_dash(info.zone()) << "\n";
  out << "Labels:     " << or_dash(label_text) << "\n";
  out << "Version:    " << or_dash(info.version()) << "\n";
  out << "State dir:  " << or_dash(info.state_dir()) << "\n";
  out << "Guests:     " << info.guests() << "\n";
  out << "CPUs:       " << info.allocated().vcpus() << " of " << info.capacity().vcpus()
      << " allocated\n";
  out << "Memory:     " << info.allocated().memory_mib() << " of " << info.capacity().memory_mib()
      << " MiB allocated\n";
  out << "\n";
  Table table({"RUNTIME", "AVAILABLE", "DETAIL"});
  for (const v1::Accelerator& runtime : info.runtimes()) {
    table.AddRow({RuntimeName(runtime.runtime()), runtime.available() ? "yes" : "no",
                  or_dash(runtime.detail())});
  }
  table.Render(out);
}

}  // namespace phoenix::ctl

namespace phoenix::ctl {

std::string NodeStateName(v1::NodeState state) {
  switch (state) {
    case v1::NODE_STATE_READY:
      return "ready";
    case v1::NODE_STATE_SUSPECT:
      return "suspect";
    case v1::NODE_STATE_DOWN:
      return "down";
    default:
      return "-";
  }
}

std::string HeartbeatAge(const google::protobuf::Timestamp& last,
                         std::chrono::system_clock::time_point now) {
  if (last.seconds() == 0 && last.nanos() == 0) return "-";
  // Heartbeats come every second, so the first minute needs tenths to tell late from on time.
  int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  int64_t last_ms = last.seconds() * 1000 + last.nanos() / 1'000'000;
  int64_t age_ms = std::max<int64_t>(0, now_ms - last_ms);
  if (age_ms >= 60'000) return FormatAge(last, now);
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%lld.%llds", static_cast<long long>(age_ms / 1000),
                static_cast<long long>((age_ms % 1000) / 100));
  return buffer;
}

void RenderNodeTable(std::span<const v1::Node> nodes, std::chrono::system_clock::time_point now,
                     std::ostream& out) {
  Table table({"NAME", "ZONE", "STATE", "DRAINED", "CPU", "MEM", "REPLICAS", "HEARTBEAT-AGE"});
  for (const v1::Node& node : nodes) {
    table.AddRow(
        {node.name(), node.zone().empty() ? "-" : node.zone(), NodeStateName(node.state()),
         node.drained() ? "yes" : "no",
         std::to_string(node.allocated().vcpus()) + "/" + std::to_string(node.capacity().vcpus()),
         FormatMib(node.allocated().memory_mib()) + "/" + FormatMib(node.capacity().memory_mib()),
         std::to_string(node.replicas()), HeartbeatAge(node.last_heartbeat(), now)});
  }
  table.Render(out);
}

void RenderNodeDetail(const v1::Node& node, std::chrono::system_clock::time_point now,
                      std::ostream& out) {
  auto or_dash = [](const std::string& s) { return s.empty() ? std::string("-") : s; };
  std::map<std::string, std::string> labels(node.labels().begin(), node.labels().end());
  std::string label_text;
  for (const auto& [key, value] : labels) {
    label_text += (label_text.empty() ? "" : " ") + key + "=" + value;
  }
  std::string state = NodeStateName(node.state());
  if (!node.state_reason().empty()) state += " (" + node.state_reason() + ")";
  out << "Name:           " << or_dash(node.name()) << "\n";
  out << "Zone:           " << or_dash(node.zone()) << "\n";
  out << "Labels:         " << or_dash(label_text) << "\n";
  out << "State:          " << state << "\n";
  out << "Drained:        " << (node.drained() ? "yes" : "no") << "\n";
  out << "Agent version:  " << or_dash(node.agent_version()) << "\n";
  out << "Replicas:       " << node.replicas() << "\n";
  out << "CPUs:           " << node.allocated().vcpus() << " of " << node.capacity().vcpus()
      << " allocated\n";
  out << "Memory:         " << node.allocated().memory_mib() << " of "
      << node.capacity().memory_mib() << " MiB allocated\n";
  out << "Assignment:     version " << node.assignment_version() << " made, "
      << node.applied_version() << " applied\n";
  std::string heartbeat = FormatTime(node.last_heartbeat());
  if (heartbeat != "-") heartbeat += " (" + HeartbeatAge(node.last_heartbeat(), now) + " ago)";
  out << "Last heartbeat: " << heartbeat << "\n";
  out << "\n";
  Table table({"RUNTIME", "AVAILABLE", "DETAIL"});
  for (const v1::Accelerator& runtime : node.runtimes()) {
    table.AddRow({RuntimeName(runtime.runtime()), runtime.available() ? "yes" : "no",
                  or_dash(runtime.detail())});
  }
  table.Render(out);
}

}  // namespace phoenix::ctl
