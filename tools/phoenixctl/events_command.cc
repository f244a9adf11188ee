#include "tools/phoenixctl/events_command.h"

#include <cstdio>

namespace phoenix::ctl {

namespace {

constexpr std::string_view kHelp =
    R"(phoenixctl events: print the agent's event log: guests created, starting, running, healthy,
unhealthy, crashed, restarting, stopped, failed, deleted; images added; snapshots; runtime links.

Usage:
  phoenixctl events [--follow] [--from SEQ] [--guest NAME] [-o json]

Without --follow it prints the events the agent kept and exits once the stream goes quiet
(bounded by --timeout, default 30s). With --follow it then keeps printing new events until
interrupted (Ctrl-C).

Flags:
  --follow       keep watching for new events (default: print and exit)
  --from SEQ     first event sequence number to print (default 1: everything the agent kept;
                 0: only events that happen from now on)
  --guest NAME   only this guest's events (default: all)
  -o json        one JSON object per event and line

Columns: SEQ TIME TYPE GUEST MESSAGE (time in local time).

Examples:
  # watch a guest come back after a chaos kill (run in a second terminal)
  phoenixctl events --follow --guest web
  phoenixctl guest kill web
  # everything since event 120, as JSON for jq
  phoenixctl events --from 120 -o json | jq -r 'select(.type=="EVENT_TYPE_GUEST_CRASHED") | .guest'
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

EventFeed::EventFeed(v1::AgentService::StubInterface& stub, v1::WatchEventsRequest request) {
  reader_ = stub.WatchEvents(&context_, request);
  thread_ = std::thread([this] { ReadLoop(); });
}

EventFeed::~EventFeed() {
  context_.TryCancel();
  thread_.join();
}

void EventFeed::ReadLoop() {
  v1::Event event;
  while (reader_->Read(&event)) {
    std::lock_guard lock(mu_);
    queue_.push_back(event);
    cv_.notify_all();
  }
  grpc::Status status = reader_->Finish();
  std::lock_guard lock(mu_);
  done_ = true;
  status_ = status;
  cv_.notify_all();
}

Result<v1::Event> EventFeed::Next(Clock::time_point deadline) {
  std::unique_lock lock(mu_);
  // Waits in short slices so that an interrupted command (Ctrl-C) still gets to clean up.
  while (queue_.empty() && !done_ && Clock::now() < deadline) {
    if (Interrupted()) return MakeError(ErrorCode::kCancelled, "interrupted");
    cv_.wait_until(lock, std::min(deadline, Clock::now() + std::chrono::milliseconds(100)),
                   [this] { return !queue_.empty() || done_; });
  }
  if (!queue_.empty()) {
    v1::Event event = std::move(queue_.front());
    queue_.pop_front();
    return event;
  }
  if (done_) {
    if (!status_.ok()) return std::unexpected(FromGrpcStatus(status_));
    return Unavailable("the agent ended the event stream");
  }
  return MakeError(ErrorCode::kDeadlineExceeded, "no event in time");
}

int RunEventsCommand(Context& ctx, std::span<const std::string> args) {
  constexpr std::string_view kCommand = "events";
  bool follow = false;
  std::optional<uint64_t> from;
  std::string guest;
  FlagSet flags{std::string(kCommand)};
  flags.Bool("follow", &follow);
  flags.UInt("from", std::numeric_limits<uint64_t>::max(), &from);
  flags.String("guest", &guest);
  int exit_code = kExitOk;
  auto parsed = ParseCommandLine(ctx, flags, args, kHelp, &exit_code);
  if (!parsed) return exit_code;
  if (!parsed->positionals.empty()) {
    return ctx.UsageError(kCommand, "takes no arguments (got '" + parsed->positionals[0] +
                                        "'); use --guest NAME to filter");
  }
  if (!follow && from == 0u) {
    return ctx.UsageError(kCommand, "--from 0 (only new events) needs --follow");
  }
  v1::WatchEventsRequest request;
  request.set_from_sequence(from.value_or(1));
  request.set_guest(guest);

  EventFeed feed(ctx.Stub(), request);
  const auto overall = EventFeed::Clock::now() + ctx.options().rpc_timeout;
  if (!ctx.json()) ctx.out() << EventHeaderLine() << "\n";
  ctx.out().flush();
  while (true) {
    // Following waits in long slices rather than until time_point::max(), which condition
    // variables do not handle reliably.
    auto deadline = follow ? EventFeed::Clock::now() + std::chrono::hours(1)
                           : std::min(overall, EventFeed::Clock::now() + kQuietGap);
    auto event = feed.Next(deadline);
    if (!event) {
      if (event.error().code == ErrorCode::kDeadlineExceeded && follow) continue;
      if (event.error().code == ErrorCode::kDeadlineExceeded) {
        if (EventFeed::Clock::now() >= overall) {
          ctx.err() << "warning: events still arriving after "
                    << FormatMillis(ctx.options().rpc_timeout)
                    << "; use --follow to keep watching\n";
        }
        return kExitOk;
      }
      return ctx.Failure(event.error());
    }
    if (ctx.json()) {
      if (int rc = PrintJson(ctx, *event, /*multiline=*/false); rc != kExitOk) return rc;
    } else {
      ctx.out() << FormatEventLine(*event) << "\n";
    }
    ctx.out().flush();
  }
}

}  // namespace phoenix::ctl
