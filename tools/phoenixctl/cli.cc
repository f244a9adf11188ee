#include "tools/phoenixctl/cli.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <limits>

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include "proto/support/tls.h"

namespace phoenix::ctl {

namespace {

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c == '_') c = '-';
  }
  return out;
}

// "GUEST_STATE_RUNNING" -> "running".
std::string EnumSuffix(const std::string& full, std::string_view prefix) {
  std::string_view rest = full;
  if (rest.starts_with(prefix)) rest.remove_prefix(prefix.size());
  return Lower(rest);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Context

std::string Context::Endpoint() const {
  if (!options_.endpoint.empty()) return options_.endpoint;
  if (!env_endpoint_.empty()) return env_endpoint_;
  return std::string(kDefaultEndpoint);
}

v1::AgentService::StubInterface& Context::Stub() {
  if (!stub_) {
    auto stub = AgentStub();
    PHX_CHECK(stub.has_value());  // commands dial through DialAgent, which reports errors
  }
  return *stub_;
}

std::string Context::SupervisorAddress() const {
  if (!options_.supervisor.empty()) return options_.supervisor;
  if (!supervisor_env_.supervisor.empty()) return supervisor_env_.supervisor;
  return std::string(kDefaultSupervisor);
}

bool Context::SupervisorConfigured() const {
  return !options_.supervisor.empty() || !supervisor_env_.supervisor.empty();
}

namespace {

// tls::ReadFile's error with the flag that named the file in front.
Result<std::string> ReadFlagFile(const std::string& path, std::string_view flag) {
  auto content = tls::ReadFile(path);
  if (!content) {
    Error error = content.error();
    error.message = std::string(flag) + ": " + error.message;
    return std::unexpected(error);
  }
  return content;
}

// A CA certificate named by `flag`: the file's PEM, refused when it holds no certificate.
Result<std::string> ReadCaFlag(const std::string& file, std::string_view flag) {
  auto pem = ReadFlagFile(file, flag);
  if (!pem) return std::unexpected(pem.error());
  if (pem->find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    return InvalidArgument("", std::string(flag) + " " + file + " holds no PEM certificate");
  }
  return pem;
}

std::string Trim(std::string text) {
  auto blank = [](char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; };
  while (!text.empty() && blank(text.back())) text.pop_back();
  size_t start = 0;
  while (start < text.size() && blank(text[start])) ++start;
  return text.substr(start);
}

}  // namespace

Result<std::string> Context::ResolveToken() const {
  if (!options_.token.empty() && !options_.token_file.empty()) {
    return InvalidArgument("", "--token and --token-file exclude each other");
  }
  if (!options_.token.empty()) return options_.token;
  if (!options_.token_file.empty()) {
    auto content = ReadFlagFile(options_.token_file, "--token-file");
    if (!content) return std::unexpected(content.error());
    std::string token = Trim(*content);
    if (token.empty()) {
      return InvalidArgument("", "--token-file " + options_.token_file + " is empty");
    }
    return token;
  }
  return Trim(supervisor_env_.token);
}

Result<v1::AgentService::StubInterface*> Context::AgentStub() {
  if (stub_) return stub_.get();
  const std::string address = Endpoint();
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (address.starts_with("unix:")) {
    // Only who may open the socket (root, by default) can call: nothing to present.
    credentials = grpc::InsecureChannelCredentials();
  } else if (options_.insecure) {
    if (!tls::IsLoopbackAddress(address)) {
      return InvalidArgument("",
                             "--insecure (plaintext) is only allowed to a loopback address, "
                             "not the agent at " +
                                 address + "; pass --agent-ca-file instead");
    }
    credentials = grpc::InsecureChannelCredentials();
  } else {
    std::string ca_file =
        options_.agent_ca_file.empty() ? supervisor_env_.agent_ca_file : options_.agent_ca_file;
    if (ca_file.empty()) {
      return InvalidArgument(
          "", "talking to the agent at " + address +
                  " over TCP needs its API's CA certificate for TLS: pass --agent-ca-file FILE "
                  "or set PHOENIX_AGENT_CA (the agent's <state-dir>/pki/api-ca.pem), or "
                  "--insecure for an agent started with --insecure-tcp on loopback");
    }
    auto ca_pem = ReadCaFlag(ca_file, "--agent-ca-file");
    if (!ca_pem) return std::unexpected(ca_pem.error());
    auto token = ResolveToken();
    if (!token) return std::unexpected(token.error());
    if (token->empty()) {
      return InvalidArgument("", "the agent at " + address +
                                     " needs a bearer token of its supervisor: --token, "
                                     "--token-file or $PHOENIX_TOKEN");
    }
    agent_token_ = std::move(*token);
    credentials = tls::MakeChannelCredentials(tls::ClientTls{.ca_pem = *ca_pem});
  }
  stub_ = v1::AgentService::NewStub(grpc::CreateChannel(address, credentials));
  return stub_.get();
}

Result<v1::Supervisor::StubInterface*> Context::SupervisorStub() {
  if (supervisor_stub_) return supervisor_stub_.get();
  const std::string address = SupervisorAddress();
  auto token = ResolveToken();
  if (!token) return std::unexpected(token.error());
  token_ = std::move(*token);
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options_.insecure) {
    // Plaintext would expose the bearer token to anyone on the path.
    if (!tls::IsLoopbackAddress(address)) {
      return InvalidArgument("",
                             "--insecure (plaintext) is only allowed to a loopback address "
                             "(127.0.0.0/8, [::1], localhost), not " +
                                 address + "; pass --ca-file with the supervisor's CA instead");
    }
    credentials = grpc::InsecureChannelCredentials();
  } else {
    std::string ca_file = options_.ca_file.empty() ? supervisor_env_.ca_file : options_.ca_file;
    if (ca_file.empty()) {
      return InvalidArgument(
          "", "talking to the supervisor at " + address +
                  " needs its CA certificate for TLS: pass --ca-file FILE or set PHOENIX_CA "
                  "(the supervisor's <state-dir>/pki/ca.pem), or --insecure for a plaintext "
                  "supervisor on loopback");
    }
    auto ca_pem = ReadCaFlag(ca_file, "--ca-file");
    if (!ca_pem) return std::unexpected(ca_pem.error());
    // No client certificate: admins authenticate with the bearer token.
    credentials = tls::MakeChannelCredentials(tls::ClientTls{.ca_pem = *ca_pem});
  }
  supervisor_stub_ = v1::Supervisor::NewStub(grpc::CreateChannel(address, credentials));
  return supervisor_stub_.get();
}

int Context::ReportSetupError(std::string_view command, const Error& error) {
  if (error.code == ErrorCode::kInvalidArgument) return UsageError(command, error.message);
  err_ << "error: " << error.message << "\n";
  return kExitRpcError;
}

void Context::AddSupervisorAuth(grpc::ClientContext& context) const {
  if (!token_.empty()) context.AddMetadata("authorization", "Bearer " + token_);
}

std::unique_ptr<grpc::ClientContext> Context::SupervisorContext() const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + options_.rpc_timeout);
  AddSupervisorAuth(*context);
  return context;
}

std::unique_ptr<grpc::ClientContext> Context::SupervisorStreamContext() const {
  auto context = std::make_unique<grpc::ClientContext>();
  AddSupervisorAuth(*context);
  return context;
}

std::unique_ptr<grpc::ClientContext> Context::UnaryContext() const {
  return ContextWithDeadline(options_.rpc_timeout);
}

std::unique_ptr<grpc::ClientContext> Context::ContextWithDeadline(
    std::chrono::milliseconds timeout) const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + timeout);
  AddAgentAuth(*context);
  return context;
}

void Context::AddAgentAuth(grpc::ClientContext& context) const {
  if (!agent_token_.empty()) context.AddMetadata("authorization", "Bearer " + agent_token_);
}

// UNAVAILABLE means two things: gRPC could not reach the server, or the server answered that
// something behind it is unavailable (libvirtd down, no KVM for micro-VMs). Only the first earns
// the "is it running?" hint; the second's message already says what is wrong.
static bool IsTransportFailure(const grpc::Status& status) {
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE) return false;
  std::string message = status.error_message();
  std::transform(message.begin(), message.end(), message.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (std::string_view needle :
       {"connect", "refused", "socket closed", "broken pipe", "dns resolution", "handshake",
        "connection reset", "endpoint", "transport"}) {
    if (message.find(needle) != std::string::npos) return true;
  }
  return false;
}

int Context::RpcError(const grpc::Status& status, Peer peer) {
  err_ << "error: " << status.error_message() << " (" << StatusCodeName(status.error_code())
       << ")\n";
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE && !IsTransportFailure(status)) {
    return kExitRpcError;
  }
  if (peer == Peer::kSupervisor) {
    switch (status.error_code()) {
      case grpc::StatusCode::UNAVAILABLE:
        err_ << "hint: is phoenix-supervisor running at " << SupervisorAddress()
             << "? point --supervisor / $PHOENIX_SUPERVISOR at it; over TLS --ca-file must be "
                "its <state-dir>/pki/ca.pem and the address must be in its certificate\n";
        break;
      case grpc::StatusCode::DEADLINE_EXCEEDED:
        err_ << "hint: the supervisor did not answer within " << FormatMillis(options_.rpc_timeout)
             << "; raise it with --rpc-timeout\n";
        break;
      case grpc::StatusCode::UNAUTHENTICATED:
        err_ << "hint: pass --token TOKEN (or --token-file FILE) or set PHOENIX_TOKEN; the admin "
                "token is in <supervisor-state>/admin.token (default "
                "/var/lib/phoenix/supervisor/admin.token)\n";
        break;
      case grpc::StatusCode::PERMISSION_DENIED:
        err_ << "hint: your token's role is too low for this command (reads need viewer, "
                "changes operator, token and join-token minting admin); ask an admin for one "
                "with 'phoenixctl token create --role operator'\n";
        break;
      default:
        break;
    }
    return kExitRpcError;
  }
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    err_ << "hint: is phoenix-agent running at " << Endpoint()
         << "? start it with tools/quickstart, or point --endpoint / $PHOENIX_ENDPOINT at it\n";
    if (UnixSocketPath(Endpoint()) && ::geteuid() != 0) {
      err_ << "hint: the agent's socket is root-only (0600): run phoenixctl as root\n";
    }
  } else if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    err_ << "hint: the agent did not answer within " << FormatMillis(options_.rpc_timeout)
         << "; raise it with --rpc-timeout\n";
  }
  return kExitRpcError;
}

int Context::Failure(const Error& error, Peer peer) {
  return RpcError(grpc::Status(static_cast<grpc::StatusCode>(error.code), error.ToString()), peer);
}

int Context::UsageError(std::string_view command, std::string_view message) {
  err_ << "error: " << message << "\n";
  err_ << "see 'phoenixctl " << command << " --help'\n";
  return kExitUsage;
}

std::optional<FlagSet::Parsed> ParseCommandLine(Context& ctx, FlagSet& flags,
                                                std::span<const std::string> args,
                                                std::string_view help_text, int* exit_code) {
  AddGlobalFlags(flags, ctx.options());
  auto parsed = flags.Parse(args);
  if (!parsed) {
    ctx.err() << "error: " << parsed.error().message << "\n";
    *exit_code = kExitUsage;
    return std::nullopt;
  }
  if (parsed->help) {
    ctx.out() << help_text;
    *exit_code = kExitOk;
    return std::nullopt;
  }
  return std::move(*parsed);
}

v1::AgentService::StubInterface* DialAgent(Context& ctx, std::string_view command, int* exit_code) {
  auto stub = ctx.AgentStub();
  if (!stub) {
    *exit_code = ctx.ReportSetupError(command, stub.error());
    return nullptr;
  }
  return *stub;
}

v1::Supervisor::StubInterface* DialSupervisor(Context& ctx, std::string_view command,
                                              int* exit_code) {
  auto stub = ctx.SupervisorStub();
  if (!stub) {
    *exit_code = ctx.ReportSetupError(command, stub.error());
    return nullptr;
  }
  return *stub;
}

int DispatchGroup(Context& ctx, std::string_view group, std::string_view group_help,
                  const std::map<std::string, CommandFn, std::less<>>& commands,
                  std::span<const std::string> args) {
  if (args.empty()) {
    ctx.err() << group_help;
    return kExitUsage;
  }
  if (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    ctx.out() << group_help;
    return kExitOk;
  }
  auto it = commands.find(args[0]);
  if (it == commands.end()) {
    std::string known;
    for (const auto& [name, fn] : commands) known += (known.empty() ? "" : ", ") + name;
    return ctx.UsageError(group, "unknown command '" + args[0] + "' for 'phoenixctl " +
                                     std::string(group) + "' (commands: " + known + ")");
  }
  return it->second(ctx, args.subspan(1));
}

namespace {
std::atomic<bool> interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the SIGINT handler needs a lock-free flag");
void OnInterrupt(int) { interrupted.store(true); }
}  // namespace

void InstallInterruptHandler() {
  struct sigaction action {};
  action.sa_handler = OnInterrupt;
  action.sa_flags = SA_RESETHAND;  // a second Ctrl-C is not ignored
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);  // only fails for invalid arguments
}

bool Interrupted() { return interrupted.load(); }
void SetInterruptedForTest(bool value) { interrupted.store(value); }

// ---------------------------------------------------------------------------------------------
// Output

void Table::AddRow(std::vector<std::string> cells) {
  PHX_CHECK(cells.size() == headers_.size());
  rows_.push_back(std::move(cells));
}

void Table::Render(std::ostream& out) const {
  std::vector<size_t> widths(headers_.size());
  auto measure = [&widths](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  };
  measure(headers_);
  for (const auto& row : rows_) measure(row);
  auto print = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 3, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  };
  print(headers_);
  for (const auto& row : rows_) print(row);
}

Result<std::string> ToJson(const google::protobuf::Message& message, bool multiline) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = multiline;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) return Internal("converting the answer to JSON: " + status.ToString());
  while (!json.empty() && json.back() == '\n') json.pop_back();
  return json;
}

int PrintJson(Context& ctx, const google::protobuf::Message& message, bool multiline) {
  auto json = ToJson(message, multiline);
  if (!json) return ctx.Failure(json.error());
  ctx.out() << *json << "\n";
  return kExitOk;
}

std::string_view StatusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

std::string RuntimeName(v1::Runtime runtime) {
  if (runtime == v1::RUNTIME_UNSPECIFIED) return "-";
  return EnumSuffix(v1::Runtime_Name(runtime), "RUNTIME_");
}

std::string GuestStateName(v1::GuestState state) {
  if (state == v1::GUEST_STATE_UNSPECIFIED) return "-";
  return EnumSuffix(v1::GuestState_Name(state), "GUEST_STATE_");
}

std::string BootModeName(v1::BootMode mode) {
  if (mode == v1::BOOT_MODE_UNSPECIFIED) return "auto";
  return EnumSuffix(v1::BootMode_Name(mode), "BOOT_MODE_");
}

std::string RestartPolicyName(v1::RestartPolicy policy) {
  if (policy == v1::RESTART_POLICY_UNSPECIFIED) return "always";
  return EnumSuffix(v1::RestartPolicy_Name(policy), "RESTART_POLICY_");
}

std::string EventTypeName(v1::EventType type) {
  std::string name = EnumSuffix(v1::EventType_Name(type), "EVENT_TYPE_");
  if (name.starts_with("guest-")) name.erase(0, 6);
  return name;
}

Result<v1::Runtime> ParseRuntime(std::string_view text) {
  if (text == "vm") return v1::RUNTIME_VM;
  if (text == "microvm") return v1::RUNTIME_MICROVM;
  if (text == "container") return v1::RUNTIME_CONTAINER;
  return InvalidArgument("", "expects vm, microvm or container");
}

Result<v1::BootMode> ParseBootMode(std::string_view text) {
  if (text == "auto") return v1::BOOT_MODE_AUTO;
  if (text == "cold") return v1::BOOT_MODE_COLD;
  if (text == "snapshot") return v1::BOOT_MODE_SNAPSHOT;
  return InvalidArgument("", "expects auto, cold or snapshot");
}

Result<v1::RestartPolicy> ParseRestartPolicy(std::string_view text) {
  if (text == "always") return v1::RESTART_POLICY_ALWAYS;
  if (text == "on-failure") return v1::RESTART_POLICY_ON_FAILURE;
  if (text == "never") return v1::RESTART_POLICY_NEVER;
  return InvalidArgument("", "expects always, on-failure or never");
}

Result<uint64_t> ParseMemoryMib(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  std::string_view unit = text.substr(digits);
  uint64_t scale = 0;
  if (unit.empty() || unit == "M" || unit == "Mi" || unit == "MiB" || unit == "m") {
    scale = 1;
  } else if (unit == "G" || unit == "Gi" || unit == "GiB" || unit == "g") {
    scale = 1024;
  }
  constexpr uint64_t kMaxMib = 1ULL << 30;  // 1 PiB: beyond any host, still fits the proto
  auto number = ParseUInt(text.substr(0, digits), kMaxMib);
  if (digits == 0 || scale == 0 || !number) {
    return InvalidArgument("", "expects a size in MiB such as 256, 256M or 1G");
  }
  if (*number == 0) return InvalidArgument("", "must be at least 1 MiB");
  if (*number > kMaxMib / scale) return InvalidArgument("", "is too large");
  return *number * scale;
}

std::string EndpointUrl(const v1::Endpoint& endpoint) {
  std::string host = endpoint.host_ip().empty() ? "127.0.0.1" : endpoint.host_ip();
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(endpoint.host_port());
}

std::string FormatAge(const google::protobuf::Timestamp& then,
                      std::chrono::system_clock::time_point now) {
  if (then.seconds() == 0 && then.nanos() == 0) return "-";
  int64_t seconds =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count() -
      then.seconds();
  if (seconds < 0) seconds = 0;  // clocks of agent and client disagree slightly
  if (seconds < 120) return std::to_string(seconds) + "s";
  if (seconds < 120 * 60) return std::to_string(seconds / 60) + "m";
  if (seconds < 48 * 3600) return std::to_string(seconds / 3600) + "h";
  return std::to_string(seconds / 86400) + "d";
}

std::string FormatTime(const google::protobuf::Timestamp& time) {
  if (time.seconds() == 0 && time.nanos() == 0) return "-";
  std::time_t seconds = static_cast<std::time_t>(time.seconds());
  std::tm local{};
  if (localtime_r(&seconds, &local) == nullptr) return std::to_string(time.seconds());
  char buffer[64];
  size_t n = std::strftime(buffer, sizeof(buffer), "%Y-%m-%d %H:%M:%S", &local);
  std::snprintf(buffer + n, sizeof(buffer) - n, ".%03d", time.nanos() / 1'000'000);
  return buffer;
}

std::string FormatBytes(uint64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + " B";
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = -1;
  while (value >= 1024 && unit < 3) {
    value /= 1024;
    ++unit;
  }
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.1f %s", value, units[unit]);
  return buffer;
}

std::string FormatMib(uint64_t mib) {
  if (mib < 1024) return std::to_string(mib) + "Mi";
  if (mib % 1024 == 0) return std::to_string(mib / 1024) + "Gi";
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.1fGi", static_cast<double>(mib) / 1024);
  return buffer;
}

std::string FormatMillis(std::chrono::milliseconds duration) {
  auto ms = duration.count();
  if (ms % 1000 != 0) return std::to_string(ms) + "ms";
  return std::to_string(ms / 1000) + "s";
}

}  // namespace phoenix::ctl
