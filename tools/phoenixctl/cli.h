// Shared plumbing of phoenixctl: strict flag parsing, the global options and the connections to the
// agent and the supervisor (Context), output helpers (aligned tables, JSON, names of proto enums,
// ages, endpoints) and the one place that turns failures into messages and exit codes.
//
// Every command is a function `int Command(Context&, std::span<const std::string> args)` that
// writes only to ctx.out()/ctx.err() and talks only through ctx.Stub() (agent) or
// ctx.SupervisorStub() (supervisor), so tests run commands against in-process servers and capture
// their output.
//
// Threading: a Context belongs to the thread running the command. Stub() is thread-safe once
// created (gRPC stubs are), which the bench's event reader relies on.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/message.h>
#include <google/protobuf/timestamp.pb.h>
#include <grpcpp/grpcpp.h>

#include "phoenix/v1/agent.grpc.pb.h"
#include "phoenix/v1/supervisor.grpc.pb.h"
#include "proto/support/error.h"
#include "proto/support/grpc_status.h"
#include "proto/support/unix_socket.h"

namespace phoenix::ctl {

namespace v1 = ::phoenix::v1;

inline constexpr std::string_view kDefaultEndpoint = kDefaultAgentEndpoint;
inline constexpr std::string_view kEndpointEnv = "PHOENIX_ENDPOINT";
inline constexpr std::chrono::milliseconds kDefaultRpcTimeout{30000};
inline constexpr std::string_view kDefaultSupervisor = "127.0.0.1:7400";
inline constexpr std::string_view kSupervisorEnv = "PHOENIX_SUPERVISOR";
inline constexpr std::string_view kTokenEnv = "PHOENIX_TOKEN";
inline constexpr std::string_view kCaEnv = "PHOENIX_CA";
inline constexpr std::string_view kAgentCaEnv = "PHOENIX_AGENT_CA";

inline constexpr int kExitOk = 0;
inline constexpr int kExitRpcError = 1;  // the agent or supervisor said no, or could not be reached
inline constexpr int kExitUsage = 2;     // the command line is wrong

enum class OutputFormat { kTable, kJson };

struct GlobalOptions {
  std::string endpoint;  // --endpoint; empty means $PHOENIX_ENDPOINT, else kDefaultEndpoint
  std::chrono::milliseconds rpc_timeout = kDefaultRpcTimeout;
  bool rpc_timeout_set = false;  // lets long calls (image build) pick a larger default
  OutputFormat output = OutputFormat::kTable;
  // The supervisor's connection; empty strings mean "from the environment" (see Context).
  std::string supervisor;  // --supervisor HOST:PORT
  std::string token;       // --token
  std::string token_file;  // --token-file
  std::string ca_file;     // --ca-file
  bool insecure = false;   // --insecure: plaintext, loopback only (supervisor or TCP agent)
  // The TCP agent API's CA (--agent-ca-file); the token is the supervisor's (--token ...).
  std::string agent_ca_file;
};

// The connection settings taken from the environment ($PHOENIX_SUPERVISOR, $PHOENIX_TOKEN,
// $PHOENIX_CA, $PHOENIX_AGENT_CA); main() reads them, tests set them directly.
struct SupervisorEnv {
  std::string supervisor;
  std::string token;
  std::string ca_file;
  std::string agent_ca_file;
};

// Which server a failed call went to: picks the hint printed under the error.
enum class Peer { kAgent, kSupervisor };

// ---------------------------------------------------------------------------------------------
// Flags

// A strict parser for one command's flags: `--name value`, `--name=value`, boolean `--name`,
// registered short aliases (`-o json`), positionals, and everything after `--` as trailing
// arguments when the command allows it. Unknown flags, missing values and repeated single-valued
// flags are errors (code kInvalidArgument) naming the flag and suggesting the closest known one.
class FlagSet {
 public:
  using Setter = std::function<Result<void>(std::string_view value)>;

  explicit FlagSet(std::string command) : command_(std::move(command)) {}

  // name without dashes ("image"); short_name is one letter or empty.
  void Value(std::string name, Setter setter, std::string short_name = {}, bool repeated = false);
  void Bool(std::string name, bool* target);
  void String(std::string name, std::string* target, std::string short_name = {});
  void Strings(std::string name, std::vector<std::string>* target);  // repeatable
  void UInt(std::string name, uint64_t max, std::optional<uint64_t>* target);
  void Duration(std::string name, std::optional<std::chrono::milliseconds>* target);
  bool Has(std::string_view name) const { return flags_.contains(std::string(name)); }

  void AllowTrailing() { allow_trailing_ = true; }
  // Stop at the first positional and hand it and the rest back untouched (the global flags that
  // precede a command).
  void StopAtPositional() { stop_at_positional_ = true; }

  struct Parsed {
    bool help = false;
    std::vector<std::string> positionals;
    std::vector<std::string> trailing;  // after "--"
  };
  [[nodiscard]] Result<Parsed> Parse(std::span<const std::string> args) const;

  bool WasSet(std::string_view name) const;

 private:
  struct Flag {
    bool is_bool = false;
    bool repeated = false;
    Setter setter;
  };
  std::string Suggest(std::string_view unknown) const;

  std::string command_;
  std::map<std::string, Flag> flags_;
  std::map<std::string, std::string> short_names_;  // "o" -> "output"
  mutable std::map<std::string, int> seen_;
  bool allow_trailing_ = false;
  bool stop_at_positional_ = false;
};

// Registers --endpoint, --timeout (unless the command has its own), --rpc-timeout, -o/--output and
// the supervisor's --supervisor, --token, --token-file, --ca-file and --insecure.
void AddGlobalFlags(FlagSet& flags, GlobalOptions& options);

[[nodiscard]] Result<std::chrono::milliseconds> ParseDuration(std::string_view text);
[[nodiscard]] Result<uint64_t> ParseUInt(std::string_view text, uint64_t max);

// ---------------------------------------------------------------------------------------------
// Context: output streams, options, connection

class Context {
 public:
  Context(std::ostream& out, std::ostream& err, std::string env_endpoint,
          SupervisorEnv supervisor_env = {})
      : out_(out),
        err_(err),
        env_endpoint_(std::move(env_endpoint)),
        supervisor_env_(std::move(supervisor_env)) {}

  std::ostream& out() { return out_; }
  std::ostream& err() { return err_; }
  GlobalOptions& options() { return options_; }
  bool json() const { return options_.output == OutputFormat::kJson; }

  // --endpoint, else $PHOENIX_ENDPOINT, else kDefaultEndpoint.
  std::string Endpoint() const;
  // Dials the agent (after the flags are parsed): a unix: endpoint in plaintext (the socket's
  // permissions are the authentication); a TCP one over TLS verified against --agent-ca-file
  // ($PHOENIX_AGENT_CA, the agent's <state-dir>/pki/api-ca.pem) with the supervisor's bearer token
  // (--token, --token-file, $PHOENIX_TOKEN), or in plaintext with --insecure, to loopback only.
  // Errors as SupervisorStub's; commands call it through DialAgent.
  [[nodiscard]] Result<v1::AgentService::StubInterface*> AgentStub();
  // The stub AgentStub made (dialing now if it was not called; a configuration error then aborts,
  // so commands call DialAgent first).
  v1::AgentService::StubInterface& Stub();

  // --supervisor, else $PHOENIX_SUPERVISOR, else kDefaultSupervisor.
  std::string SupervisorAddress() const;
  // Whether the user named a supervisor (flag or environment), as opposed to the default address.
  bool SupervisorConfigured() const;
  // Dials lazily: TLS verified against --ca-file ($PHOENIX_CA), or plaintext with --insecure, which
  // is refused for anything but a loopback address. Reads the token (--token, --token-file, else
  // $PHOENIX_TOKEN). Errors: kInvalidArgument for a configuration the user must change (usage,
  // exit 2), others (an unreadable file) exit 1; ReportSetupError prints either.
  [[nodiscard]] Result<v1::Supervisor::StubInterface*> SupervisorStub();
  int ReportSetupError(std::string_view command, const Error& error);
  // A client context with the unary deadline and "authorization: Bearer <token>" when a token is
  // configured. Call after SupervisorStub() succeeded (which resolves the token).
  std::unique_ptr<grpc::ClientContext> SupervisorContext() const;
  // The same without a deadline, for followed streams.
  std::unique_ptr<grpc::ClientContext> SupervisorStreamContext() const;
  void AddSupervisorAuth(grpc::ClientContext& context) const;

  // Agent calls: a client context carrying the unary deadline (or the given one) and, for a TCP
  // agent, the bearer token.
  std::unique_ptr<grpc::ClientContext> UnaryContext() const;
  std::unique_ptr<grpc::ClientContext> ContextWithDeadline(std::chrono::milliseconds timeout) const;
  void AddAgentAuth(grpc::ClientContext& context) const;

  // "error: <message> (<CODE>)" plus a hint for UNAVAILABLE / DEADLINE_EXCEEDED and, for the
  // supervisor, UNAUTHENTICATED / PERMISSION_DENIED; returns 1.
  int RpcError(const grpc::Status& status, Peer peer = Peer::kAgent);
  int Failure(const Error& error, Peer peer = Peer::kAgent);
  // "error: <message>" and where to read help; returns 2.
  int UsageError(std::string_view command, std::string_view message);

 private:
  std::ostream& out_;
  std::ostream& err_;
  std::string env_endpoint_;
  SupervisorEnv supervisor_env_;
  GlobalOptions options_;
  std::unique_ptr<v1::AgentService::StubInterface> stub_;
  std::unique_ptr<v1::Supervisor::StubInterface> supervisor_stub_;
  std::string token_;        // resolved by SupervisorStub()
  std::string agent_token_;  // resolved by AgentStub() for a TCP agent
  // --token, else --token-file, else $PHOENIX_TOKEN.
  [[nodiscard]] Result<std::string> ResolveToken() const;
};

// Parses a command's flags with the global flags added; on `--help` prints help_text and returns
// kExitOk through *exit_code, on a bad flag reports it and returns kExitUsage. Returns the parse
// result only when the command should go on.
std::optional<FlagSet::Parsed> ParseCommandLine(Context& ctx, FlagSet& flags,
                                                std::span<const std::string> args,
                                                std::string_view help_text, int* exit_code);

// ctx.AgentStub(), or, when the configuration is unusable, the error reported (exit 2 for a flag
// to change, 1 otherwise) through *exit_code and nullptr.
v1::AgentService::StubInterface* DialAgent(Context& ctx, std::string_view command, int* exit_code);

// ctx.SupervisorStub(), or, when the configuration is unusable, the error reported (exit 2 for a
// flag to change, 1 otherwise) through *exit_code and nullptr.
v1::Supervisor::StubInterface* DialSupervisor(Context& ctx, std::string_view command,
                                              int* exit_code);

// Runs a subcommand from a table; `group` is "guest" etc. Prints the group help on --help, on a
// missing or unknown subcommand (then exit 2).
using CommandFn = std::function<int(Context&, std::span<const std::string>)>;
int DispatchGroup(Context& ctx, std::string_view group, std::string_view group_help,
                  const std::map<std::string, CommandFn, std::less<>>& commands,
                  std::span<const std::string> args);

// Ctrl-C for commands that must clean up (bench restart deletes the guests it created): after
// InstallInterruptHandler the first SIGINT only raises a flag that their waits check; a second one
// ends the process as usual.
void InstallInterruptHandler();
bool Interrupted();
void SetInterruptedForTest(bool interrupted);

// ---------------------------------------------------------------------------------------------
// Output

// Columns aligned on their widest cell, separated by three spaces, no trailing blanks.
class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void AddRow(std::vector<std::string> cells);
  void Render(std::ostream& out) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// Proto field names, enums by name, zero values included. multiline=false gives one line.
[[nodiscard]] Result<std::string> ToJson(const google::protobuf::Message& message, bool multiline);
// Writes the JSON and a newline; on a conversion error reports it and returns 1.
int PrintJson(Context& ctx, const google::protobuf::Message& message, bool multiline = true);

std::string_view StatusCodeName(grpc::StatusCode code);
std::string RuntimeName(v1::Runtime runtime);             // "vm", "microvm", "container", "-"
std::string GuestStateName(v1::GuestState state);         // "running", ...
std::string BootModeName(v1::BootMode mode);              // "auto", "cold", "snapshot"
std::string RestartPolicyName(v1::RestartPolicy policy);  // "always", "on-failure", "never"
std::string EventTypeName(v1::EventType type);            // "running", "image-added", ...
[[nodiscard]] Result<v1::Runtime> ParseRuntime(std::string_view text);
[[nodiscard]] Result<v1::BootMode> ParseBootMode(std::string_view text);
[[nodiscard]] Result<v1::RestartPolicy> ParseRestartPolicy(std::string_view text);
// "256" (MiB), "256M", "256MiB", "1G", "1GiB" -> MiB; at least 1.
[[nodiscard]] Result<uint64_t> ParseMemoryMib(std::string_view text);

// "http://127.0.0.1:8080" (empty host = 127.0.0.1; IPv6 bracketed).
std::string EndpointUrl(const v1::Endpoint& endpoint);
// "42s", "7m", "3h", "5d"; "-" for an unset timestamp.
std::string FormatAge(const google::protobuf::Timestamp& then,
                      std::chrono::system_clock::time_point now);
// Local time "2024-05-01 10:00:00.123"; "-" when unset.
std::string FormatTime(const google::protobuf::Timestamp& time);
std::string FormatBytes(uint64_t bytes);                       // "512 B", "3.2 MiB"
std::string FormatMillis(std::chrono::milliseconds duration);  // "10s", "1500ms"
std::string FormatMib(uint64_t mib);                           // "512Mi", "16Gi", "1.5Gi"

}  // namespace phoenix::ctl
