// phoenix-agent: runs guests on this host and serves the AgentService gRPC API.
//
// Threads: the main thread runs the event loop (Boost.Asio io_context) that owns all guest state
// and carries libvirt's events; a small worker pool runs blocking runtime calls; gRPC runs its own
// threads and hands work to the loop. Guests keep running when the agent stops: a restarted agent
// re-adopts them.
#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "agent/api/agent_service.h"
#include "agent/api/remote_auth.h"
#include "agent/api/serving_tls.h"
#include "agent/frontdoor/front_door.h"
#include "agent/image/image_store.h"
#include "agent/link/enrollment.h"
#include "agent/link/supervisor_link.h"
#include "agent/node/node_info.h"
#include "agent/reconcile/guest_manager.h"
#include "agent/runtime/console_log.h"
#include "agent/runtime/libvirt/libvirt_runtime.h"
#include "agent/runtime/microvm/microvm_runtime.h"
#include "agent/runtime/oci/oci_runtime.h"
#include "agent/state/agent_store.h"
#include "proto/support/ip_address.h"
#include "proto/support/logging.h"
#include "proto/support/server_limits.h"
#include "proto/support/tls.h"
#include "proto/support/unix_socket.h"

namespace {

constexpr char kVersion[] = "0.1.0";

constexpr char kUsage[] =
    R"(phoenix-agent: runs guests (VMs, micro-VMs and OCI containers) on this host,
restarts them from their golden image when they crash, and serves the Phoenix agent API over gRPC.

Usage: phoenix-agent [flags]

Flags:
  --listen ADDR        where the agent API listens (default unix:/run/phoenix/agent.sock). A Unix
                       socket, made 0600 (its directory 0700 when the agent creates it): only
                       root can control the node's guests, and no guest can reach the API.
                       Several agents on one host each need their own unix:PATH.
  --insecure-tcp       allow --listen on loopback TCP (127.0.0.1:PORT, [::1]:PORT; port 0 picks
                       one, see --port-file), without TLS or authentication: every local user and
                       process can then run, kill and delete this node's guests. Development
                       only; the agent logs a warning.
  --tls-listen HOST:PORT
                       also serve the agent API on TCP with TLS (port 0 picks one, see
                       --tls-port-file). Callers present a bearer token of the supervisor this
                       agent enrolled with (phoenixctl --token), checked by that supervisor
                       (cached 30 s): viewer reads, operator runs and stops guests, admin imports
                       and builds images. Needs --supervisor with mutual TLS.
  --tls-cert FILE, --tls-key FILE
                       the TCP API's certificate and key; without them the agent makes its own
                       CA and certificate in <state-dir>/pki (clients trust api-ca.pem there)
  --tls-san NAME       a DNS name or IP the made certificate also covers (repeatable; localhost,
                       127.0.0.1, ::1, the host name and the --tls-listen host always are)
  --tls-port-file FILE write the --tls-listen port to FILE once it serves
  --console-log-max BYTES
                       each guest's console log is rotated past this size, keeping one previous
                       generation (console.log.1): at most twice this on disk (default 8388608)
  --max-streams N      API streams open at once (default 32): `events --follow`, `logs
                       --follow` and image builds each hold a server thread for their whole
                       life; more get RESOURCE_EXHAUSTED, so other calls always find a thread
  --state-dir DIR      everything the agent keeps: guest records, event log, image store, golden
                       snapshots, guest overlays and logs (default /var/lib/phoenix/agent)
  --recipes DIR        image recipes for `phoenixctl image build` (default: images/ next to the
                       agent binary's source tree, or PHOENIX_RECIPES)
  --node NAME          node name (default: host name)
  --zone ZONE          availability zone (default "default")
  --labels K=V,...     node labels
  --advertise-address IP
                       where other nodes and clients reach this node: services' front doors
                       (HAProxy, started and owned by the agent, state in <state-dir>/frontdoor)
                       listen here, and the supervisor hands it to every other node (default:
                       the host's primary address, or 127.0.0.1 without one; several agents on
                       one host in development each take their own, e.g. 127.0.2.1, 127.0.2.2)
  --instance-subnet CIDR
                       give every container its own address in this IPv4 subnet (e.g.
                       10.88.1.0/24, /8 to /29) on a node bridge (phx-<subnet in hex>, holding
                       the first address): the front door (HAProxy) then reaches containers
                       there directly, so a killed or restarted agent drops no request. Each node
                       of a cluster needs its own subnet; the supervisor routes between them via
                       the nodes' advertise addresses (they must share a link, as flannel's
                       host-gw needs). Turns on IPv4 forwarding. Default: none (containers are
                       reached through the agent's port proxy)
  --vcpus N            vCPUs this node offers (default: the host's); with --memory-mib, lets
                       several agents share one host, each offering a slice of it
  --memory-mib N       memory this node offers in MiB (default: the host's)
  --libvirt-uri URI    libvirt connection (default qemu:///system)
  --vmm PATH           the phoenix-vmm executable for micro-VMs (default: $PHOENIX_VMM, else
                       next to phoenix-agent)
  --port-file FILE     write the TCP port the agent listens on to FILE once it serves (0 for a
                       Unix socket)
  --supervisor HOST:PORT
                       join a phoenix-supervisor: hold a link to it, run the guests it assigns to
                       this node, keep them running while it is away. Without this flag the agent
                       runs on its own.
  --join-token TOKEN   enroll with the supervisor (once: the certificate is kept in
                       <state-dir>/pki and renewed before its 30 days end); from
                       `phoenix-supervisor join-token`
  --join-token-file F  the same, read from a file
  --supervisor-ca FILE the supervisor's CA certificate, trusted while enrolling
  --insecure-supervisor
                       plaintext link without certificates; only to a loopback supervisor started
                       with --insecure (development only)
  --log-level LEVEL    trace, debug, info, warn, error (default info)
  --help               this text

Examples:
  phoenix-agent --state-dir /var/lib/phoenix/agent
  phoenix-agent --listen unix:/tmp/phx/agent.sock --state-dir /tmp/phx
Then (with --endpoint unix:/tmp/phx/agent.sock or $PHOENIX_ENDPOINT):
  phoenixctl node info; phoenixctl image build demo; phoenixctl guest run web --image demo ...
)";

struct Flags {
  std::string listen = std::string(phoenix::kDefaultAgentEndpoint);
  bool insecure_tcp = false;
  int max_streams = phoenix::ServerLimits{}.max_streams;
  uint64_t console_log_max = phoenix::agent::ConsoleLogRotator::Options{}.max_bytes;
  std::filesystem::path state_dir = "/var/lib/phoenix/agent";
  std::filesystem::path recipes;
  std::string node;
  std::string zone = "default";
  std::string labels;
  std::string advertise_address;  // empty = PrimaryAddress()
  std::string instance_subnet;    // empty = no node network
  std::string libvirt_uri = "qemu:///system";
  std::filesystem::path vmm;
  std::filesystem::path port_file;
  std::string tls_listen;
  std::filesystem::path tls_cert, tls_key, tls_port_file;
  std::vector<std::string> tls_sans;
  std::string log_level = "info";
  std::string supervisor;
  std::string join_token;
  std::filesystem::path join_token_file;
  std::filesystem::path supervisor_ca;
  bool insecure_supervisor = false;
  uint32_t vcpus = 0;       // 0 = the host's
  uint64_t memory_mib = 0;  // 0 = the host's
};

[[noreturn]] void UsageError(const std::string& message) {
  std::fprintf(stderr, "phoenix-agent: %s\nRun phoenix-agent --help for usage.\n", message.c_str());
  std::exit(2);
}

uint64_t ParseCount(const std::string& flag, const std::string& value) {
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (ec != std::errc() || p != value.data() + value.size() || n == 0 || n > (1ull << 32)) {
    UsageError(flag + ": want a positive number, got \"" + value + "\"");
  }
  return n;
}

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (arg == "--insecure-supervisor") {
      f.insecure_supervisor = true;
      continue;
    }
    if (arg == "--insecure-tcp") {
      f.insecure_tcp = true;
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
    if (arg == "--listen")
      f.listen = value;
    else if (arg == "--state-dir")
      f.state_dir = value;
    else if (arg == "--recipes")
      f.recipes = value;
    else if (arg == "--node")
      f.node = value;
    else if (arg == "--zone")
      f.zone = value;
    else if (arg == "--labels")
      f.labels = value;
    else if (arg == "--advertise-address")
      f.advertise_address = value;
    else if (arg == "--instance-subnet")
      f.instance_subnet = value;
    else if (arg == "--libvirt-uri")
      f.libvirt_uri = value;
    else if (arg == "--vmm")
      f.vmm = value;
    else if (arg == "--port-file")
      f.port_file = value;
    else if (arg == "--tls-listen")
      f.tls_listen = value;
    else if (arg == "--tls-cert")
      f.tls_cert = value;
    else if (arg == "--tls-key")
      f.tls_key = value;
    else if (arg == "--tls-san")
      f.tls_sans.push_back(value);
    else if (arg == "--tls-port-file")
      f.tls_port_file = value;
    else if (arg == "--log-level")
      f.log_level = value;
    else if (arg == "--supervisor")
      f.supervisor = value;
    else if (arg == "--join-token")
      f.join_token = value;
    else if (arg == "--join-token-file")
      f.join_token_file = value;
    else if (arg == "--supervisor-ca")
      f.supervisor_ca = value;
    else if (arg == "--vcpus")
      f.vcpus = static_cast<uint32_t>(ParseCount(arg, value));
    else if (arg == "--memory-mib")
      f.memory_mib = ParseCount(arg, value);
    else if (arg == "--console-log-max")
      f.console_log_max = std::max<uint64_t>(ParseCount(arg, value), 4096);
    else if (arg == "--max-streams")
      f.max_streams = static_cast<int>(std::min<uint64_t>(ParseCount(arg, value), 4096));
    else
      UsageError("unknown flag " + arg);
  }
  return f;
}

int Fatal(const std::string& what, const phoenix::Error& e) {
  spdlog::critical("{}: {}", what, e.ToString());
  return 1;
}

// Checks the supervisor flags and builds what the link calls before every dial: plaintext for
// --insecure-supervisor, else mutual TLS, enrolling first while <state-dir>/pki has no certificate.
std::function<phoenix::Result<std::shared_ptr<grpc::ChannelCredentials>>()> SupervisorCredentials(
    Flags& flags, const std::string& node) {
  namespace link = phoenix::agent::link;
  if (flags.insecure_supervisor) {
    if (!phoenix::tls::IsLoopbackAddress(flags.supervisor)) {
      UsageError(
          "--insecure-supervisor needs a loopback --supervisor (127.0.0.1:PORT, [::1]:PORT), "
          "not " +
          flags.supervisor + ": a plaintext link would expose the node");
    }
    spdlog::warn(
        "*** INSECURE supervisor link to {}: plaintext, no certificates; anyone on this "
        "host can impersonate either side. Development only. ***",
        flags.supervisor);
    return [] {
      return phoenix::Result<std::shared_ptr<grpc::ChannelCredentials>>(
          grpc::InsecureChannelCredentials());
    };
  }
  if (!flags.join_token.empty() && !flags.join_token_file.empty()) {
    UsageError("--join-token and --join-token-file are mutually exclusive");
  }
  if (!flags.join_token_file.empty()) {
    auto token = phoenix::tls::ReadFile(flags.join_token_file);
    if (!token) UsageError("--join-token-file: " + token.error().ToString());
    flags.join_token = *token;
    while (!flags.join_token.empty() &&
           std::isspace(static_cast<unsigned char>(flags.join_token.back()))) {
      flags.join_token.pop_back();
    }
  }
  link::EnrollmentOptions enroll;
  enroll.target = flags.supervisor;
  enroll.node = node;
  enroll.pki_dir = flags.state_dir / "pki";
  enroll.join_token = flags.join_token;
  enroll.supervisor_ca = flags.supervisor_ca;
  if (!link::IsEnrolled(enroll.pki_dir) &&
      (enroll.join_token.empty() || enroll.supervisor_ca.empty())) {
    UsageError("--supervisor: this agent is not enrolled yet (no " +
               (enroll.pki_dir / "agent.pem").string() +
               "): pass --join-token (or --join-token-file) and --supervisor-ca, or "
               "--insecure-supervisor for a loopback development supervisor");
  }
  return [enroll] { return link::LinkCredentials(enroll); };
}

}  // namespace

int main(int argc, char** argv) {
  using namespace phoenix;
  using namespace phoenix::agent;
  Flags flags = ParseFlags(argc, argv);
  InitLogging("phoenix-agent", flags.log_level);
  const std::optional<std::filesystem::path> socket_path = UnixSocketPath(flags.listen);
  if (!socket_path && flags.listen.starts_with("unix")) {
    UsageError("--listen " + flags.listen +
               ": a Unix socket must be unix:/absolute/path (abstract sockets have no "
               "permissions: every local process could connect)");
  }
  if (!socket_path) {
    if (!flags.insecure_tcp) {
      UsageError("--listen " + flags.listen +
                 ": the agent API listens on a Unix socket (unix:/absolute/path); plaintext TCP "
                 "needs --insecure-tcp (development only)");
    }
    if (!tls::IsLoopbackAddress(flags.listen)) {
      UsageError("--listen " + flags.listen +
                 " is not a loopback address: --insecure-tcp serves without authentication, so "
                 "only on 127.0.0.0/8 or [::1]");
    }
  } else if (flags.insecure_tcp) {
    UsageError("--insecure-tcp goes with a TCP --listen, not " + flags.listen);
  }
  const bool has_supervisor_flags = flags.insecure_supervisor || !flags.join_token.empty() ||
                                    !flags.join_token_file.empty() || !flags.supervisor_ca.empty();
  if (flags.supervisor.empty() && has_supervisor_flags) {
    UsageError(
        "--join-token, --join-token-file, --supervisor-ca and --insecure-supervisor need "
        "--supervisor");
  }
  const bool has_tls_flags = !flags.tls_cert.empty() || !flags.tls_key.empty() ||
                             !flags.tls_sans.empty() || !flags.tls_port_file.empty();
  if (flags.tls_listen.empty() && has_tls_flags) {
    UsageError("--tls-cert, --tls-key, --tls-san and --tls-port-file need --tls-listen");
  }
  if (!flags.tls_listen.empty()) {
    if (flags.tls_listen.starts_with("unix")) {
      UsageError("--tls-listen " + flags.tls_listen +
                 ": wants HOST:PORT (the Unix socket is --listen)");
    }
    if (flags.supervisor.empty() || flags.insecure_supervisor) {
      UsageError(
          "--tls-listen needs --supervisor with mutual TLS (not --insecure-supervisor): the "
          "supervisor checks the bearer tokens TCP callers present");
    }
    if (flags.tls_cert.empty() != flags.tls_key.empty()) {
      UsageError("--tls-cert and --tls-key go together");
    }
  }
  if (flags.recipes.empty()) {
    const char* env = std::getenv("PHOENIX_RECIPES");
    flags.recipes = env != nullptr ? std::filesystem::path(env)
                                   : std::filesystem::path(PHOENIX_SOURCE_DIR) / "images";
  }
  NodeIdentity identity;
  identity.name = flags.node.empty() ? HostName() : flags.node;
  identity.zone = flags.zone;
  auto labels = ParseLabels(flags.labels);
  if (!labels) UsageError("--labels: " + labels.error().message);
  identity.labels = *labels;
  identity.advertise_address =
      flags.advertise_address.empty() ? PrimaryAddress() : flags.advertise_address;
  if (!phoenix::IsIpLiteral(identity.advertise_address)) {
    UsageError("--advertise-address: want an IP address, got \"" + flags.advertise_address + "\"");
  }
  std::optional<phoenix::Ipv4Subnet> instance_subnet;
  if (!flags.instance_subnet.empty()) {
    instance_subnet = phoenix::ParseIpv4Subnet(flags.instance_subnet);
    if (!instance_subnet) {
      UsageError(
          "--instance-subnet: want an IPv4 network with a /8 to /29 prefix and no host bits, "
          "e.g. 10.88.1.0/24; got \"" +
          flags.instance_subnet + "\"");
    }
    identity.instance_subnet = phoenix::FormatSubnet(*instance_subnet);
  }
  auto capacity = ReadHostCapacity();
  if (!capacity) return Fatal("reading host capacity", capacity.error());
  // Several agents sharing one host (a lab, the quickstart) each offer a slice of it.
  if (flags.vcpus != 0) capacity->vcpus = flags.vcpus;
  if (flags.memory_mib != 0) capacity->memory_mib = flags.memory_mib;

  std::error_code ec;
  // Runtimes hand these paths to other processes (libvirtd, crun, mount options): make them
  // independent of our working directory.
  flags.state_dir = std::filesystem::absolute(flags.state_dir);
  flags.recipes = std::filesystem::absolute(flags.recipes);
  std::filesystem::create_directories(flags.state_dir, ec);
  if (ec) {
    spdlog::critical("creating state dir {}: {}", flags.state_dir.string(), ec.message());
    return 1;
  }
  auto store = AgentStore::Open(flags.state_dir / "agent.db");
  if (!store) return Fatal("opening the agent's database", store.error());
  auto images = ImageStore::Open(flags.state_dir / "images");
  if (!images) return Fatal("opening the image store", images.error());

  boost::asio::io_context loop;
  auto work = boost::asio::make_work_guard(loop);
  boost::asio::thread_pool pool(4);

  libvirt::LibvirtRuntimeOptions libvirt_options;
  libvirt_options.uri = flags.libvirt_uri;
  libvirt_options.state_dir = flags.state_dir / "vm";
  libvirt::LibvirtRuntime libvirt(loop, libvirt_options);
  std::shared_ptr<net::NodeNetwork> node_network;
  if (instance_subnet) {
    auto opened = net::NodeNetwork::Open(*instance_subnet, flags.state_dir / "ipam");
    if (!opened) return Fatal("setting up the node network", opened.error());
    node_network = *opened;
  }
  oci::OciRuntimeOptions oci_options;
  oci_options.state_dir = flags.state_dir / "container";
  oci_options.node_network = node_network;
  oci::OciRuntime containers(loop, oci_options);
  microvm::MicroVmRuntimeOptions microvm_options;
  microvm_options.state_dir = flags.state_dir / "microvm";
  if (!flags.vmm.empty()) microvm_options.vmm_binary = std::filesystem::absolute(flags.vmm);
  microvm::MicroVmRuntime microvms(loop, microvm_options);
  std::map<RuntimeKind, Runtime*> runtimes = {{RuntimeKind::kVm, &libvirt},
                                              {RuntimeKind::kMicroVm, &microvms},
                                              {RuntimeKind::kContainer, &containers}};
  for (auto& [kind, runtime] : runtimes) {
    spdlog::info("{} runtime: {}", RuntimeKindName(kind), runtime->Describe());
  }

  EventHub hub((*store)->LastSequence());
  GuestManager::Options manager_options;
  manager_options.guests_dir = flags.state_dir / "guests";
  manager_options.capacity = {capacity->vcpus, capacity->memory_mib};
  GuestManager manager(loop, pool, **store, **images, runtimes, hub, manager_options);
  if (auto r = manager.Recover(); !r) return Fatal("recovering guests", r.error());
  ConsoleLogRotator console_logs(
      loop, pool, {.guests_dir = manager_options.guests_dir, .max_bytes = flags.console_log_max});
  console_logs.Start();

  const ServerLimits limits{.max_streams = flags.max_streams};
  api::AgentServiceImpl::Options api_options{identity,      *capacity, flags.state_dir,
                                             flags.recipes, kVersion,  limits.max_streams};
  api::AgentServiceImpl service(manager, **images, **store, hub, runtimes, api_options);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  if (socket_path) {
    if (auto r = PrepareUnixSocket(*socket_path); !r) return Fatal("--listen", r.error());
  }
  grpc::ServerBuilder builder;
  int port = 0;
  // Unix sockets rely on file permissions; the plaintext TCP of --insecure-tcp on nothing at all.
  builder.AddListeningPort(flags.listen, grpc::InsecureServerCredentials(), &port);
  int tls_port = 0;
  if (!flags.tls_listen.empty()) {
    std::vector<std::string> sans = flags.tls_sans;
    if (std::string host = api::ListenHost(flags.tls_listen); !host.empty()) sans.push_back(host);
    auto serving = api::LoadOrMakeServingTls({.pki_dir = flags.state_dir / "pki",
                                              .extra_sans = sans,
                                              .cert_file = flags.tls_cert,
                                              .key_file = flags.tls_key});
    if (!serving) return Fatal("--tls-listen", serving.error());
    auto credentials = tls::MakeServerCredentials(*serving);
    if (!credentials) return Fatal("--tls-listen", credentials.error());
    api::InstallAgentAuthorizer(**credentials, api::TokenReviewer::ForSupervisor(
                                                   flags.supervisor, flags.state_dir / "pki"));
    builder.AddListeningPort(flags.tls_listen, *credentials, &tls_port);
  }
  builder.RegisterService(&service);
  ApplyServerLimits(builder, limits);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    spdlog::critical("cannot listen on {} (in use, or not a valid address)", flags.listen);
    return 1;
  }
  if (!flags.tls_listen.empty()) {
    if (tls_port == 0) {
      spdlog::critical("cannot listen on --tls-listen {} (in use, or not a valid address)",
                       flags.tls_listen);
      return 1;
    }
    spdlog::info("agent API also on {} (TLS, port {}; bearer tokens checked by the supervisor)",
                 flags.tls_listen, tls_port);
  }
  if (socket_path) {
    if (auto r = RestrictUnixSocket(*socket_path); !r) return Fatal("--listen", r.error());
    port = 0;
  } else {
    spdlog::warn(
        "*** INSECURE agent API on {}: plaintext TCP without authentication; every local user "
        "and process can run, kill and delete this node's guests (--insecure-tcp). Development "
        "only. ***",
        flags.listen);
  }
  spdlog::info("phoenix-agent {} serving on {} (node {}, zone {}, state {})", kVersion,
               socket_path ? flags.listen : flags.listen + " (port " + std::to_string(port) + ")",
               identity.name, identity.zone, flags.state_dir.string());
  if (!flags.port_file.empty()) {
    std::ofstream out(flags.port_file.string() + ".tmp");
    out << port << "\n";
    out.close();
    std::filesystem::rename(flags.port_file.string() + ".tmp", flags.port_file, ec);
  }
  if (!flags.tls_port_file.empty()) {
    std::ofstream out(flags.tls_port_file.string() + ".tmp");
    out << tls_port << "\n";
    out.close();
    std::filesystem::rename(flags.tls_port_file.string() + ".tmp", flags.tls_port_file, ec);
  }

  // The node's front door: HAProxy only once a table with a service arrives, or at once when an
  // HAProxy of an earlier run is there to adopt.
  auto front_door = frontdoor::FrontDoor::Start(
      {.files = {.dir = flags.state_dir / "frontdoor"},
       .settings = {.bind_address = identity.advertise_address, .zone = identity.zone}});
  if (!front_door) return Fatal("starting the front door", front_door.error());
  std::unique_ptr<link::SupervisorLink> supervisor_link;
  if (!flags.supervisor.empty()) {
    link::SupervisorLink::Options link_options;
    link_options.target = flags.supervisor;
    link_options.credentials = SupervisorCredentials(flags, identity.name);
    if (!flags.insecure_supervisor) {
      link_options.renewal_due = [pki_dir = flags.state_dir / "pki"] {
        return phoenix::agent::link::RenewalDueAt(pki_dir);
      };
    }
    // Hello carries exactly what `phoenixctl node info` shows: the API's own GetNodeInfo.
    link_options.node_info = [&service] {
      v1::NodeInfo info;
      grpc::Status s = service.GetNodeInfo(nullptr, nullptr, &info);
      if (!s.ok()) spdlog::error("building node info for the supervisor: {}", s.error_message());
      return info;
    };
    link_options.node_name = identity.name;
    link_options.front_door_load = [door = front_door->get()] { return door->load(); };
    link_options.front_door_blocked = [door = front_door->get()] { return door->status().blocked; };
    link_options.on_front_door = [door = front_door->get()](frontdoor::FrontDoorTable table) {
      const uint64_t version = table.version;
      if (auto r = door->Apply(std::move(table)); !r) {
        spdlog::error("front door table {} refused: {}", version, r.error().ToString());
      }
    };
    if (node_network) {
      link_options.on_node_routes = [node_network](std::vector<net::PeerRoute> routes) {
        if (auto r = node_network->SyncPeerRoutes(routes); !r) {
          spdlog::error("routes to other nodes' instances: {}", r.error().ToString());
        }
      };
    }
    supervisor_link = std::make_unique<link::SupervisorLink>(manager, **store, **images, hub,
                                                             std::move(link_options));
    if (auto r = supervisor_link->Start(); !r)
      return Fatal("starting the supervisor link", r.error());
  }

  boost::asio::signal_set signals(loop, SIGINT, SIGTERM);
  std::thread shutdown_thread;
  signals.async_wait([&](const boost::system::error_code& error, int signo) {
    if (error) return;
    spdlog::info("signal {}: shutting down (guests keep running)", signo);
    // gRPC's Shutdown waits for handlers, and handlers wait for the loop: never call it here.
    shutdown_thread = std::thread([&] {
      server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
      // Before the loop stops: the link's apply thread may be waiting for the loop.
      if (supervisor_link) supervisor_link->Stop();
      work.reset();
      loop.stop();
    });
  });
  loop.run();
  if (shutdown_thread.joinable()) shutdown_thread.join();
  pool.join();
  spdlog::info("phoenix-agent stopped");
  return 0;
}
