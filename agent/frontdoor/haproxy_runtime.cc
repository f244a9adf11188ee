#include "agent/frontdoor/haproxy_runtime.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <map>

#include "proto/support/ip_address.h"
#include "proto/support/unique_fd.h"

namespace phoenix::agent::frontdoor {
namespace {

using Clock = std::chrono::steady_clock;

// Answers beyond this are refused rather than buffered without bound (a "show servers state" of
// thousands of servers is well under it).
constexpr size_t kMaxAnswer = 4 << 20;

// srv_admin_state bits of HAProxy 2.6 (include/haproxy/server-t.h): forced, inherited, config,
// resolution and health-check maintenance; forced and inherited drain.
constexpr unsigned kMaintBits = 0x01 | 0x02 | 0x04 | 0x20 | 0x40;
constexpr unsigned kDrainBits = 0x08 | 0x10;

std::string Trimmed(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  while (!text.empty() && (text.front() == '\n' || text.front() == ' ')) text.remove_prefix(1);
  return std::string(text);
}

Result<void> CheckName(std::string_view field, std::string_view name) {
  if (!HaproxyRuntime::IsValidName(name)) {
    return InvalidArgument(std::string(field), "must be 1-64 of [A-Za-z0-9._-], got \"" +
                                                   std::string(name.substr(0, 80)) + "\"");
  }
  return {};
}

std::string ServerPath(std::string_view backend, std::string_view server) {
  return std::string(backend) + "/" + std::string(server);
}

// Waits for `events` on fd until `deadline`; kDeadlineExceeded naming `what` when it passes.
Result<void> WaitFor(int fd, short events, Clock::time_point deadline, const std::string& what) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return MakeError(ErrorCode::kDeadlineExceeded, what + ": timed out");
    pollfd p{.fd = fd, .events = events, .revents = 0};
    const int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n > 0) return {};
    if (n < 0 && errno != EINTR) return ErrnoError(what + ": poll");
  }
}

template <typename T>
bool ParseNumber(std::string_view text, T& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::string HaproxyAddress(std::string_view address, uint16_t port) {
  return (IsIpv4Literal(address) ? "" : "ipv6@") + std::string(address) + ":" +
         std::to_string(port);
}

std::string_view ServerAdminName(ServerAdmin state) {
  switch (state) {
    case ServerAdmin::kReady:
      return "ready";
    case ServerAdmin::kDrain:
      return "drain";
    case ServerAdmin::kMaint:
      return "maint";
  }
  return "maint";
}

HaproxyRuntime::HaproxyRuntime(std::filesystem::path socket, std::chrono::milliseconds timeout)
    : socket_(std::move(socket)), timeout_(timeout) {}

bool HaproxyRuntime::IsValidName(std::string_view name) {
  if (name.empty() || name.size() > kMaxName) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Result<std::string> HaproxyRuntime::Execute(std::string_view command) const {
  const std::string what =
      "HAProxy runtime API at " + socket_.string() + ", \"" + std::string(command) + "\"";
  if (command.find('\n') != std::string_view::npos || command.find(';') != std::string_view::npos) {
    return InvalidArgument("command", "one command, without ';' or newlines");
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_.native().size() >= sizeof(addr.sun_path)) {
    return InvalidArgument("socket", "path too long for a Unix socket: " + socket_.string());
  }
  std::memcpy(addr.sun_path, socket_.c_str(), socket_.native().size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return ErrnoError(what + ": socket");
  const auto deadline = Clock::now() + timeout_;
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EAGAIN && errno != EINPROGRESS) {
      const int err = errno;
      Error e = ErrnoError(what + ": connect", err).error();
      // Nobody listening: HAProxy is not running (yet, or any more).
      if (err == ENOENT || err == ECONNREFUSED) e.code = ErrorCode::kUnavailable;
      return std::unexpected(e);
    }
    PHX_TRY(WaitFor(fd.get(), POLLOUT, deadline, what));
  }
  const std::string line = std::string(command) + "\n";
  for (size_t sent = 0; sent < line.size();) {
    const ssize_t n = ::send(fd.get(), line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      PHX_TRY(WaitFor(fd.get(), POLLOUT, deadline, what));
    } else {
      return ErrnoError(what + ": send");
    }
  }
  // The master CLI answers only once the client has finished sending; the admin socket does not
  // mind either way.
  if (::shutdown(fd.get(), SHUT_WR) != 0) return ErrnoError(what + ": shutdown");
  std::string answer;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n == 0) break;  // HAProxy closes after answering one command
    if (n > 0) {
      answer.append(buf, static_cast<size_t>(n));
      if (answer.size() > kMaxAnswer) {
        return MakeError(ErrorCode::kResourceExhausted, what + ": answer larger than 4 MiB");
      }
    } else if (errno == EAGAIN || errno == EINTR) {
      PHX_TRY(WaitFor(fd.get(), POLLIN, deadline, what));
    } else {
      return ErrnoError(what + ": recv");
    }
  }
  return answer;
}

Result<void> HaproxyRuntime::AddServer(std::string_view backend, std::string_view server,
                                       std::string_view address, uint16_t port, uint32_t weight,
                                       std::string_view options) const {
  PHX_TRY(CheckName("backend", backend));
  PHX_TRY(CheckName("server", server));
  if (!IsIpLiteral(address)) {
    return InvalidArgument(
        "address", "not an IPv4 or IPv6 address: \"" + std::string(address.substr(0, 80)) + "\"");
  }
  const std::string target = HaproxyAddress(address, port);
  if (port == 0) return InvalidArgument("port", "must be 1-65535");
  if (weight > 256) return InvalidArgument("weight", "must be 0-256");
  const std::string command = "add server " + ServerPath(backend, server) + " " + target +
                              " weight " + std::to_string(weight) +
                              (options.empty() ? "" : " " + std::string(options));
  auto answer = Execute(command);
  if (!answer) return std::unexpected(answer.error());
  if (answer->find("New server registered.") != std::string::npos) return {};
  const std::string said = Trimmed(*answer);
  if (said.find("Already exists") != std::string::npos ||
      said.find("already exists") != std::string::npos) {
    return AlreadyExists("HAProxy \"" + command + "\": " + said);
  }
  if (said.find("No such backend") != std::string::npos) {
    return NotFound("HAProxy \"" + command + "\": " + said);
  }
  return Internal("HAProxy \"" + command + "\": " + said);
}

Result<void> HaproxyRuntime::SetServer(std::string_view backend, std::string_view server,
                                       const std::string& setting) const {
  PHX_TRY(CheckName("backend", backend));
  PHX_TRY(CheckName("server", server));
  const std::string command = "set server " + ServerPath(backend, server) + " " + setting;
  auto answer = Execute(command);
  if (!answer) return std::unexpected(answer.error());
  const std::string said = Trimmed(*answer);
  if (said.empty()) return {};  // HAProxy says nothing when a setting took
  if (said.find("No such") != std::string::npos) {
    return NotFound("HAProxy \"" + command + "\": " + said);
  }
  return Internal("HAProxy \"" + command + "\": " + said);
}

Result<void> HaproxyRuntime::SetAdmin(std::string_view backend, std::string_view server,
                                      ServerAdmin state) const {
  return SetServer(backend, server, "state " + std::string(ServerAdminName(state)));
}

Result<void> HaproxyRuntime::SetWeight(std::string_view backend, std::string_view server,
                                       uint32_t weight) const {
  PHX_TRY(CheckName("backend", backend));  // names first, as every other call reports them
  PHX_TRY(CheckName("server", server));
  if (weight > 256) return InvalidArgument("weight", "must be 0-256");
  return SetServer(backend, server, "weight " + std::to_string(weight));
}

Result<void> HaproxyRuntime::EnableHealth(std::string_view backend, std::string_view server) const {
  PHX_TRY(CheckName("backend", backend));
  PHX_TRY(CheckName("server", server));
  const std::string command = "enable health " + ServerPath(backend, server);
  auto answer = Execute(command);
  if (!answer) return std::unexpected(answer.error());
  const std::string said = Trimmed(*answer);
  if (said.empty()) return {};
  if (said.find("No such") != std::string::npos) {
    return NotFound("HAProxy \"" + command + "\": " + said);
  }
  return Internal("HAProxy \"" + command + "\": " + said);
}

Result<void> HaproxyRuntime::DeleteServer(std::string_view backend, std::string_view server) const {
  PHX_TRY(CheckName("backend", backend));
  PHX_TRY(CheckName("server", server));
  const std::string command = "del server " + ServerPath(backend, server);
  auto answer = Execute(command);
  if (!answer) return std::unexpected(answer.error());
  if (answer->find("Server deleted.") != std::string::npos) return {};
  const std::string said = Trimmed(*answer);
  if (said.find("No such") != std::string::npos)
    return NotFound("HAProxy \"" + command + "\": " + said);
  if (said.find("maintenance") != std::string::npos ||
      said.find("connections") != std::string::npos || said.find("still") != std::string::npos) {
    return FailedPrecondition("HAProxy \"" + command + "\": " + said);
  }
  return Internal("HAProxy \"" + command + "\": " + said);
}

Result<std::vector<ServerState>> HaproxyRuntime::Servers(std::string_view backend) const {
  PHX_TRY(CheckName("backend", backend));
  const std::string command = "show servers state " + std::string(backend);
  auto answer = Execute(command);
  if (!answer) return std::unexpected(answer.error());
  if (answer->find("Can't find backend") != std::string::npos) {
    return NotFound("HAProxy \"" + command + "\": " + Trimmed(*answer));
  }
  auto parsed = ParseServersState(*answer);
  if (!parsed) return std::unexpected(parsed.error().Wrap("HAProxy \"" + command + "\""));
  return parsed;
}

Result<std::vector<ServerState>> ParseServersState(std::string_view text) {
  std::vector<std::string_view> lines;
  for (size_t pos = 0; pos < text.size();) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    if (!line.empty()) lines.push_back(line);
    pos = nl + 1;
  }
  if (lines.empty() || Trimmed(lines[0]) != "1") {
    return InvalidArgument("servers_state", "not format version 1: \"" +
                                                std::string(lines.empty() ? "" : lines[0]) + "\"");
  }
  auto split = [](std::string_view line) {
    std::vector<std::string_view> out;
    for (size_t pos = 0; pos < line.size();) {
      size_t sp = line.find(' ', pos);
      if (sp == std::string_view::npos) sp = line.size();
      if (sp > pos) out.push_back(line.substr(pos, sp - pos));
      pos = sp + 1;
    }
    return out;
  };
  std::map<std::string_view, size_t> column;
  std::vector<ServerState> out;
  for (size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].starts_with("# ")) {
      auto names = split(lines[i].substr(2));
      for (size_t c = 0; c < names.size(); ++c) column[names[c]] = c;
      continue;
    }
    for (const char* needed : {"be_name", "srv_name", "srv_addr", "srv_op_state", "srv_admin_state",
                               "srv_uweight", "srv_port"}) {
      if (!column.contains(needed)) {
        return InvalidArgument("servers_state", std::string("no column ") + needed);
      }
    }
    auto fields = split(lines[i]);
    auto at = [&](std::string_view name) -> std::string_view {
      const size_t c = column.at(name);
      return c < fields.size() ? fields[c] : std::string_view();
    };
    ServerState s{.backend = std::string(at("be_name")),
                  .name = std::string(at("srv_name")),
                  .address = std::string(at("srv_addr"))};
    unsigned op = 0, admin = 0;
    if (!ParseNumber(at("srv_op_state"), op) || !ParseNumber(at("srv_admin_state"), admin) ||
        !ParseNumber(at("srv_uweight"), s.weight) || !ParseNumber(at("srv_port"), s.port)) {
      return InvalidArgument("servers_state", "malformed line \"" + std::string(lines[i]) + "\"");
    }
    s.running = op == 2;
    s.in_maintenance = (admin & kMaintBits) != 0;
    s.draining = (admin & kDrainBits) != 0;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace phoenix::agent::frontdoor
