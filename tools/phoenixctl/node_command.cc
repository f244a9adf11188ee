#include "tools/phoenixctl/node_command.h"

#include <map>

namespace phoenix::ctl {

namespace {

constexpr std::string_view kGroupHelp = R"(phoenixctl node: the host the agent runs on.

Usage:
  phoenixctl node info [-o json]

Commands:
  info   name, zone, labels, capacity and what guests have allocated, the number of guests, and
         which runtimes work here with which accelerator (kvm, or tcg software emulation when
         /dev/kvm is unusable)

Examples:
  phoenixctl node info
  phoenixctl node info -o json | jq '.runtimes'
)";

int NodeInfo(Context& ctx, std::span<const std::string> args) {
  FlagSet flags{"node info"};
  int exit_code = kExitOk;
  auto parsed = ParseCommandLine(ctx, flags, args, kGroupHelp, &exit_code);
  if (!parsed) return exit_code;
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

}  // namespace

int RunNodeGroup(Context& ctx, std::span<const std::string> args) {
  static const std::map<std::string, CommandFn, std::less<>> kCommands = {{"info", NodeInfo}};
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
