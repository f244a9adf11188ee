// phoenix-supervisor: the cluster's control plane. This file parses the command line and wires the
// modules together: the StateStore, the Controller on its own loop thread, and one gRPC server
// carrying the admin API (Supervisor), the agents' link (AgentLink) and Enrollment.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "proto/support/exclusive_lock.h"
#include "proto/support/logging.h"
#include "proto/support/server_limits.h"
#include "proto/support/tls.h"
#include "supervisor/agents/link_service.h"
#include "supervisor/api/enrollment_service.h"
#include "supervisor/api/supervisor_service.h"
#include "supervisor/api/token_review_service.h"
#include "supervisor/auth/authorizer.h"
#include "supervisor/auth/init.h"
#include "supervisor/auth/token_store.h"
#include "supervisor/reconcile/controller.h"
#include "supervisor/state/sqlite_state_store.h"

namespace {

using namespace phoenix;
using namespace phoenix::supervisor;
namespace fs = std::filesystem;

constexpr char kVersion[] = "0.1.0";

constexpr char kUsage[] =
    R"usage(phoenix-supervisor: keeps a Phoenix cluster's desired state, places service replicas across
nodes and availability zones, and replaces what a failed node took down.

Usage:
  phoenix-supervisor init [--state-dir DIR] [--san NAME]... [--force]
      Create the supervisor's CA, its server certificate (SANs: localhost, 127.0.0.1, ::1, this
      host's name, plus every --san) and an admin token, written to DIR/admin.token (0600).
  phoenix-supervisor serve [flags]
      Run the supervisor.
  phoenix-supervisor join-token [--state-dir DIR] [--ttl 1h] [--uses 1]
      Print a join token an agent trades for its client certificate: good for --uses agents
      (default 1, at most 10000) until it expires.
  phoenix-supervisor token create --role viewer|operator|admin [--description TEXT] [--state-dir DIR]
      Print a new bearer token for phoenixctl (only its hash is kept).

Flags of serve:
  --state-dir DIR            state (supervisor.db, pki/, tokens); default /var/lib/phoenix/supervisor
  --listen HOST:PORT         gRPC address (default 0.0.0.0:7400; port 0 picks one, see --port-file)
  --insecure                 plaintext and no authentication: loopback development only
  --heartbeat-interval DUR   how often agents report (default 1s)
  --suspect-after DUR        no heartbeat this long (or the link closed): SUSPECT (default 2500ms)
  --down-after DUR           no heartbeat this long: DOWN, its replicas are placed elsewhere
                             (default 4s)
  --drain-deadline DUR       a replica leaving a front-door service (scale-in, autoscale-in)
                             drains: no new requests, and it stops once no front door has a
                             request in flight to it, or after this long (default 30s)
  --port-file FILE           write the port once serving
  --max-streams N            `events --follow` streams open at once (default 32; each holds a
                             server thread); more get RESOURCE_EXHAUSTED. Agent links do not count.
  --log-level LEVEL          trace, debug, info (default), warn, error

Example (one machine):
  phoenix-supervisor init --state-dir /tmp/sup
  phoenix-supervisor serve --state-dir /tmp/sup --listen 127.0.0.1:7400 &
  phoenix-agent --supervisor 127.0.0.1:7400 --supervisor-ca /tmp/sup/pki/ca.pem \
      --join-token "$(phoenix-supervisor join-token --state-dir /tmp/sup)" --zone a ...
  PHOENIX_TOKEN=$(cat /tmp/sup/admin.token) PHOENIX_CA=/tmp/sup/pki/ca.pem phoenixctl node ls
)usage";

[[noreturn]] void UsageError(const std::string& message) {
  std::fprintf(stderr, "phoenix-supervisor: %s\nRun phoenix-supervisor --help for usage.\n",
               message.c_str());
  std::exit(2);
}

int Fatal(const std::string& what, const Error& e) {
  spdlog::critical("{}: {}", what, e.ToString());
  return 1;
}

// "500ms", "4s", "2m", "1h".
std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  uint64_t value = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || p == text.data()) return std::nullopt;
  std::string_view unit(p, text.data() + text.size() - p);
  if (unit == "ms") return std::chrono::milliseconds(value);
  if (unit == "s") return std::chrono::seconds(value);
  if (unit == "m") return std::chrono::minutes(value);
  if (unit == "h") return std::chrono::hours(value);
  return std::nullopt;
}

struct Flags {
  std::string command;
  fs::path state_dir = "/var/lib/phoenix/supervisor";
  std::string listen = "0.0.0.0:7400";
  bool insecure = false;
  bool force = false;
  std::vector<std::string> sans;
  std::chrono::milliseconds heartbeat{1000}, suspect_after{2500}, down_after{4000};
  std::chrono::milliseconds drain_deadline{30000};
  std::chrono::milliseconds ttl{std::chrono::hours(1)};
  uint32_t uses = 1;
  std::string role, description;
  fs::path port_file;
  std::string log_level = "info";
  int max_streams = ServerLimits{}.max_streams;
};

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  int i = 1;
  if (i < argc && !std::string_view(argv[i]).starts_with("-")) f.command = argv[i++];
  if (f.command == "token") {
    if (i >= argc || std::string_view(argv[i]) != "create") UsageError("usage: token create ...");
    f.command = "token create";
    ++i;
  }
  for (; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (arg == "--insecure") {
      f.insecure = true;
      continue;
    }
    if (arg == "--force") {
      f.force = true;
      continue;
    }
    std::string value;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      UsageError("flag " + arg + " needs a value");
    }
    auto duration = [&](std::chrono::milliseconds* out) {
      auto d = ParseDuration(value);
      if (!d || d->count() == 0) UsageError(arg + ": not a duration like 500ms, 4s, 1h: " + value);
      *out = *d;
    };
    if (arg == "--state-dir")
      f.state_dir = fs::absolute(value);
    else if (arg == "--listen")
      f.listen = value;
    else if (arg == "--san")
      f.sans.push_back(value);
    else if (arg == "--heartbeat-interval")
      duration(&f.heartbeat);
    else if (arg == "--suspect-after")
      duration(&f.suspect_after);
    else if (arg == "--down-after")
      duration(&f.down_after);
    else if (arg == "--drain-deadline")
      duration(&f.drain_deadline);
    else if (arg == "--ttl")
      duration(&f.ttl);
    else if (arg == "--uses") {
      uint32_t n = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || p != value.data() + value.size() || n < 1 ||
          n > auth::TokenStore::kMaxJoinTokenUses) {
        UsageError("--uses: want 1-" + std::to_string(auth::TokenStore::kMaxJoinTokenUses) +
                   ", got \"" + value + "\"");
      }
      f.uses = n;
    } else if (arg == "--role")
      f.role = value;
    else if (arg == "--description")
      f.description = value;
    else if (arg == "--port-file")
      f.port_file = value;
    else if (arg == "--log-level")
      f.log_level = value;
    else if (arg == "--max-streams") {
      int n = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || p != value.data() + value.size() || n < 1 || n > 4096) {
        UsageError("--max-streams: want 1-4096, got \"" + value + "\"");
      }
      f.max_streams = n;
    } else
      UsageError("unknown flag " + arg);
  }
  if (f.command.empty()) UsageError("which command? init, serve, join-token or token create");
  if (f.suspect_after >= f.down_after) UsageError("--suspect-after must be below --down-after");
  if (f.heartbeat >= f.suspect_after)
    UsageError("--heartbeat-interval must be below --suspect-after");
  return f;
}

int Init(const Flags& flags) {
  auto r = auth::InitSupervisorState(flags.state_dir, flags.sans, flags.force);
  if (!r) {
    std::fprintf(stderr, "phoenix-supervisor init: %s\n", r.error().ToString().c_str());
    return 1;
  }
  std::printf("initialized %s\n  CA:           %s\n  server cert:  %s (", flags.state_dir.c_str(),
              r->paths.ca_cert.c_str(), r->paths.server_cert.c_str());
  for (size_t i = 0; i < r->sans.size(); ++i)
    std::printf("%s%s", i ? ", " : "", r->sans[i].c_str());
  std::printf(")\n  admin token:  %s (0600)\n", r->paths.admin_token.c_str());
  return 0;
}

Result<std::shared_ptr<auth::TokenStore>> OpenTokens(const fs::path& state_dir) {
  auto tokens = auth::TokenStore::Open(auth::PathsFor(state_dir).tokens);
  if (!tokens) {
    return std::unexpected(
        tokens.error().Wrap("opening the tokens (run phoenix-supervisor init?)"));
  }
  return std::shared_ptr<auth::TokenStore>(std::move(*tokens));
}

int JoinToken(const Flags& flags) {
  auto tokens = OpenTokens(flags.state_dir);
  if (!tokens) return Fatal("join-token", tokens.error());
  auto token = (*tokens)->MintJoinToken(std::chrono::duration_cast<std::chrono::seconds>(flags.ttl),
                                        flags.uses);
  if (!token) return Fatal("join-token", token.error());
  std::printf("%s\n", token->token.c_str());
  return 0;
}

int CreateToken(const Flags& flags) {
  std::optional<auth::Role> role;
  for (auth::Role r : {auth::Role::kViewer, auth::Role::kOperator, auth::Role::kAdmin}) {
    if (auth::RoleName(r) == flags.role) role = r;
  }
  if (!role) UsageError("--role must be viewer, operator or admin");
  auto tokens = OpenTokens(flags.state_dir);
  if (!tokens) return Fatal("token create", tokens.error());
  auto token = (*tokens)->Mint(*role, flags.description);
  if (!token) return Fatal("token create", token.error());
  std::printf("%s\n", token->c_str());
  return 0;
}

int Serve(const Flags& flags) {
  if (flags.insecure && !tls::IsLoopbackAddress(flags.listen)) {
    UsageError("--insecure only on a loopback address (127.0.0.1:PORT, [::1]:PORT), not " +
               flags.listen);
  }
  std::error_code ec;
  fs::create_directories(flags.state_dir, ec);
  if (ec) {
    return Fatal("creating " + flags.state_dir.string(), Error{ErrorCode::kInternal, ec.message()});
  }
  // One supervisor per state dir: gRPC would not stop a second one (each listener refuses a taken
  // port now, but a second one on another port would still write the same desired state).
  auto owner = LockExclusively(flags.state_dir / "serve.lock", "supervisor state dir");
  if (!owner) return Fatal("locking the state dir", owner.error());
  auto store = SqliteStateStore::Open(flags.state_dir / "supervisor.db");
  if (!store) return Fatal("opening the state store", store.error());
  auto snapshot = (*store)->Load();
  if (!snapshot) return Fatal("reading the state store", snapshot.error());
  EventHub hub(snapshot->last_event_sequence);

  std::shared_ptr<grpc::ServerCredentials> credentials;
  std::shared_ptr<auth::TokenStore> tokens;
  std::shared_ptr<auth::EnrolledNodes> enrolled_nodes;
  std::optional<pki::KeyAndCert> ca;
  if (flags.insecure) {
    credentials = grpc::InsecureServerCredentials();
  } else {
    auto server_tls = auth::LoadServerTls(flags.state_dir);
    if (!server_tls) return Fatal("loading TLS (run phoenix-supervisor init)", server_tls.error());
    auto loaded_ca = auth::LoadCa(flags.state_dir);
    if (!loaded_ca) return Fatal("loading the CA", loaded_ca.error());
    ca = std::move(*loaded_ca);
    auto opened = OpenTokens(flags.state_dir);
    if (!opened) return Fatal("tokens", opened.error());
    tokens = std::move(*opened);
    auto nodes = auth::EnrolledNodes::Open(auth::PathsFor(flags.state_dir).enrolled_nodes);
    if (!nodes) return Fatal("enrolled nodes", nodes.error());
    enrolled_nodes = std::move(*nodes);
    auto made = tls::MakeServerCredentials(*server_tls);
    if (!made) return Fatal("TLS credentials", made.error());
    credentials = std::move(*made);
    auth::InstallAuthorizer(*credentials, tokens);
  }

  boost::asio::io_context loop;
  auto work = boost::asio::make_work_guard(loop);
  Controller::Options options;
  options.heartbeat_interval = flags.heartbeat;
  options.suspect_after = flags.suspect_after;
  options.down_after = flags.down_after;
  options.drain_deadline = flags.drain_deadline;
  Controller controller(loop, **store, hub, options);
  if (auto r = controller.Recover(); !r) return Fatal("recovering", r.error());

  const ServerLimits limits{.max_streams = flags.max_streams};
  api::SupervisorServiceImpl admin(controller, **store, hub, tokens.get(), limits.max_streams,
                                   enrolled_nodes.get());
  agents::CertificateCheck admit;
  if (enrolled_nodes) {
    admit = [nodes = enrolled_nodes](const std::string& node, const std::string& cert_pem) {
      return auth::AdmitCertificate(*nodes, node, cert_pem);
    };
  }
  agents::AgentLinkService link(
      controller,
      flags.insecure ? agents::LinkSecurity::kInsecure : agents::LinkSecurity::kMutualTls, kVersion,
      std::move(admit));
  std::unique_ptr<api::EnrollmentService> enrollment;
  std::unique_ptr<api::TokenReviewService> token_review;
  if (!flags.insecure) {
    enrollment = std::make_unique<api::EnrollmentService>(tokens, enrolled_nodes, *ca);
    token_review = std::make_unique<api::TokenReviewService>(tokens, enrolled_nodes);
  }

  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(flags.listen, credentials, &port);
  builder.RegisterService(&admin);
  builder.RegisterService(&link);
  if (enrollment) builder.RegisterService(enrollment.get());
  if (token_review) builder.RegisterService(token_review.get());
  ApplyServerLimits(builder, limits);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    spdlog::critical("cannot listen on {} (in use, or not a valid address)", flags.listen);
    return 1;
  }
  if (flags.insecure) {
    spdlog::warn(
        "*** INSECURE DEVELOPMENT MODE: plaintext gRPC, no authentication, no agent "
        "certificates. Anyone on this machine can control the cluster. ***");
  }
  spdlog::info(
      "phoenix-supervisor {} serving on port {} (state {}, heartbeat {} ms, suspect "
      "after {} ms, down after {} ms)",
      kVersion, port, flags.state_dir.string(), flags.heartbeat.count(),
      flags.suspect_after.count(), flags.down_after.count());
  if (!flags.port_file.empty()) {
    std::ofstream out(flags.port_file.string() + ".tmp");
    out << port << "\n";
    out.close();
    fs::rename(flags.port_file.string() + ".tmp", flags.port_file, ec);
  }

  boost::asio::signal_set signals(loop, SIGINT, SIGTERM);
  std::thread shutdown_thread;
  signals.async_wait([&](const boost::system::error_code& error, int signo) {
    if (error) return;
    spdlog::info("signal {}: shutting down", signo);
    // Shutdown waits for handlers and streams, which wait for the loop: never call it on the loop.
    shutdown_thread = std::thread([&] {
      server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
      work.reset();
      loop.stop();
    });
  });
  loop.run();
  if (shutdown_thread.joinable()) shutdown_thread.join();
  spdlog::info("phoenix-supervisor stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags = ParseFlags(argc, argv);
  phoenix::InitLogging("phoenix-supervisor", flags.log_level);
  if (flags.command == "init") return Init(flags);
  if (flags.command == "join-token") return JoinToken(flags);
  if (flags.command == "token create") return CreateToken(flags);
  if (flags.command == "serve") return Serve(flags);
  UsageError("unknown command " + flags.command);
}
