#include "tools/phoenixctl/events_command.h"

#include <cstdio>

namespace phoenix::ctl {

namespace {

constexpr std::string_view kHelp =
    R"(phoenixctl events: print an event log, once or followed.

Which log: when a supervisor is configured (--supervisor or $PHOENIX_SUPERVISOR), the supervisor's
cluster events: services created, scaled, deleted; replicas placed, pending, running, replaced,
removed; nodes joined, ready, suspect, down, drained, undrained; stale guests stopped. Otherwise, or
with --agent, the agent's events: guests created, starting, running, healthy, unhealthy, crashed,
restarting, stopped, failed, deleted; images added; snapshots; runtime links.

Usage:
  phoenixctl events [--follow] [--from SEQ] [--service NAME] [--node NAME] [-o json]
  phoenixctl events --agent [--follow] [--from SEQ] [--guest NAME] [-o json]

Without --follow it prints the events the server kept and exits once the stream goes quiet
(bounded by --timeout, default 30s). With --follow it then keeps printing new events until
interrupted (Ctrl-C).

Flags:
  --follow         keep watching for new events (default: print and exit)
  --from SEQ       first event sequence number to print (default 1: everything the server kept;
                   0: only events that happen from now on)
  --service NAME   supervisor: only this service's events (default: all)
  --node NAME      supervisor: only this node's events (default: all)
  --agent          read the agent's log (--endpoint) even when a supervisor is configured
  --guest NAME     agent: only this guest's events (default: all)
  -o json          one JSON object per event and line

Columns: supervisor SEQ TIME TYPE SERVICE NODE MESSAGE; agent SEQ TIME TYPE GUEST MESSAGE (time in
local time). A supervisor event an admin caused ends with who: [by token ID (ROLE)], the id
`phoenixctl token ls` shows; the supervisor's own decisions name nobody.

Examples:
  # watch the supervisor replace the replicas of a node that died (run in a second terminal)
  phoenixctl --supervisor 127.0.0.1:7400 events --follow --service web
  phoenixctl events --follow --node host-2
  # watch a guest come back after a chaos kill, on the agent
  phoenixctl events --agent --follow --guest web
  phoenixctl guest kill web
  # everything since event 120, as JSON for jq
  phoenixctl events --agent --from 120 -o json | jq -r 'select(.type=="EVENT_TYPE_GUEST_CRASHED") | .guest'
)";

// How long the stream must stay silent before a one-shot `events` decides it has the backlog.
// The proto has no end-of-backlog marker; the agent sends the backlog at once, so a quiet gap
// this long means it is done.
constexpr std::chrono::milliseconds kQuietGap{500};

}  // namespace

std::string EventHeaderLine() {
  char line[128];
  std::snprintf(line, sizeof(line), "%6s  %-23s  %-20s  %-16s  %s", "SEQ", "TIME", "TYPE", "GUEST",
                "MESSAGE");
  return line;
}

std::string ClusterEventHeaderLine() {
  char line[128];
  std::snprintf(line, sizeof(line), "%6s  %-23s  %-19s  %-16s  %-12s  %s", "SEQ", "TIME", "TYPE",
                "SERVICE", "NODE", "MESSAGE");
  return line;
}

std::string ClusterEventTypeName(v1::ClusterEventType type) {
  if (type == v1::CLUSTER_EVENT_TYPE_UNSPECIFIED) return "-";
  std::string name = v1::ClusterEventType_Name(type);
  constexpr std::string_view kPrefix = "CLUSTER_EVENT_TYPE_";
  if (name.starts_with(kPrefix)) name.erase(0, kPrefix.size());
  for (char& c : name) {
    if (c == '_') {
      c = '-';
    } else if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return name;
}

std::string FormatClusterEventLine(const v1::ClusterEvent& event) {
  char prefix[160];
  std::snprintf(prefix, sizeof(prefix), "%6llu  %-23s  %-19s  %-16s  %-12s  ",
                static_cast<unsigned long long>(event.sequence()), FormatTime(event.time()).c_str(),
                ClusterEventTypeName(event.type()).c_str(),
                event.service().empty() ? "-" : event.service().c_str(),
                event.node().empty() ? "-" : event.node().c_str());
  std::string line = prefix + event.message();
  if (!event.actor().empty()) line += " [by " + event.actor() + "]";
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line;
}

std::string FormatEventLine(const v1::Event& event) {
  char prefix[128];
  std::snprintf(prefix, sizeof(prefix), "%6llu  %-23s  %-20s  %-16s  ",
                static_cast<unsigned long long>(event.sequence()), FormatTime(event.time()).c_str(),
                EventTypeName(event.type()).c_str(),
                event.guest().empty() ? "-" : event.guest().c_str());
  std::string line = prefix + event.message();
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line;
}

namespace {

// Prints a feed's events until it goes quiet (one-shot) or forever (follow).
template <typename Message>
int PrintFeed(Context& ctx, StreamFeed<Message>& feed, bool follow, Peer peer,
              std::string (*format)(const Message&)) {
  using Clock = typename StreamFeed<Message>::Clock;
  const auto overall = Clock::now() + ctx.options().rpc_timeout;
  while (true) {
    // Following waits in long slices rather than until time_point::max(), which condition
    // variables do not handle reliably.
    auto deadline =
        follow ? Clock::now() + std::chrono::hours(1) : std::min(overall, Clock::now() + kQuietGap);
    auto event = feed.Next(deadline);
    if (!event) {
      if (event.error().code == ErrorCode::kDeadlineExceeded && follow) continue;
      if (event.error().code == ErrorCode::kDeadlineExceeded) {
        if (Clock::now() >= overall) {
          ctx.err() << "warning: events still arriving after "
                    << FormatMillis(ctx.options().rpc_timeout)
                    << "; use --follow to keep watching\n";
        }
        return kExitOk;
      }
      return ctx.Failure(event.error(), peer);
    }
    if (ctx.json()) {
      if (int rc = PrintJson(ctx, *event, /*multiline=*/false); rc != kExitOk) return rc;
    } else {
      ctx.out() << format(*event) << "\n";
    }
    ctx.out().flush();
  }
}

}  // namespace

int RunEventsCommand(Context& ctx, std::span<const std::string> args) {
  constexpr std::string_view kCommand = "events";
  bool follow = false;
  bool agent = false;
  std::optional<uint64_t> from;
  std::string guest;
  std::string service;
  std::string node;
  FlagSet flags{std::string(kCommand)};
  flags.Bool("follow", &follow);
  flags.Bool("agent", &agent);
  flags.UInt("from", std::numeric_limits<uint64_t>::max(), &from);
  flags.String("guest", &guest);
  flags.String("service", &service);
  flags.String("node", &node);
  int exit_code = kExitOk;
  auto parsed = ParseCommandLine(ctx, flags, args, kHelp, &exit_code);
  if (!parsed) return exit_code;
  if (!parsed->positionals.empty()) {
    return ctx.UsageError(kCommand, "takes no arguments (got '" + parsed->positionals[0] +
                                        "'); use --service, --node or --guest to filter");
  }
  if (!follow && from == 0u) {
    return ctx.UsageError(kCommand, "--from 0 (only new events) needs --follow");
  }
  const bool from_supervisor = !agent && ctx.SupervisorConfigured();
  if (from_supervisor && !guest.empty()) {
    return ctx.UsageError(kCommand,
                          "--guest filters the agent's events; add --agent, or use --service / "
                          "--node for the supervisor's");
  }
  if (!from_supervisor && (!service.empty() || !node.empty())) {
    return ctx.UsageError(kCommand,
                          std::string(agent ? "--agent reads"
                                            : "no supervisor is configured, so "
                                              "this reads") +
                              " the agent's events, which --service / --node do not filter; name "
                              "the supervisor with --supervisor or $PHOENIX_SUPERVISOR");
  }

  if (from_supervisor) {
    auto* stub = DialSupervisor(ctx, kCommand, &exit_code);
    if (stub == nullptr) return exit_code;
    v1::WatchClusterEventsRequest request;
    request.set_from_sequence(from.value_or(1));
    request.set_service(service);
    request.set_node(node);
    StreamFeed<v1::ClusterEvent> feed([&](grpc::ClientContext* context) {
      ctx.AddSupervisorAuth(*context);
      return stub->WatchEvents(context, request);
    });
    if (!ctx.json()) ctx.out() << ClusterEventHeaderLine() << "\n";
    ctx.out().flush();
    return PrintFeed(ctx, feed, follow, Peer::kSupervisor, &FormatClusterEventLine);
  }

  if (DialAgent(ctx, kCommand, &exit_code) == nullptr) return exit_code;
  v1::WatchEventsRequest request;
  request.set_from_sequence(from.value_or(1));
  request.set_guest(guest);
  EventFeed feed(ctx, request);
  if (!ctx.json()) ctx.out() << EventHeaderLine() << "\n";
  ctx.out().flush();
  return PrintFeed<v1::Event>(ctx, feed, follow, Peer::kAgent, &FormatEventLine);
}

}  // namespace phoenix::ctl
