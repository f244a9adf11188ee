#include "agent/runtime/microvm/control_client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include <fmt/format.h>

#include "agent/runtime/microvm/guest_netns.h"

namespace phoenix::agent::microvm {

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kMaxReply = 16 * 1024;

int LeftMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<int64_t>(left.count(), 0));
}

// Waits for `events` on fd; false on timeout.
Result<bool> WaitFor(int fd, short events, Clock::time_point deadline, const std::string& what) {
  for (;;) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, LeftMs(deadline));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return ErrnoError("poll " + what);
  }
}

}  // namespace

Result<ControlReply> ParseControlReply(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.starts_with("error")) {
    std::string_view msg = line.substr(5);
    while (!msg.empty() && msg.front() == ' ') msg.remove_prefix(1);
    return MakeError(ErrorCode::kFailedPrecondition,
                     "phoenix-vmm: " + std::string(msg.empty() ? "error" : msg));
  }
  if (line != "ok" && !line.starts_with("ok ")) {
    return Internal("phoenix-vmm control: unexpected reply \"" + std::string(line) + "\"");
  }
  ControlReply reply;
  std::string_view rest = line.substr(2);
  while (!rest.empty()) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    size_t end = rest.find(' ');
    std::string_view field = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
    if (field.empty()) continue;
    size_t eq = field.find('=');
    if (eq == std::string_view::npos) {
      reply[std::string(field)] = "";
    } else {
      reply[std::string(field.substr(0, eq))] = std::string(field.substr(eq + 1));
    }
  }
  return reply;
}

Result<ControlReply> ControlCall(const std::filesystem::path& socket_path, std::string_view request,
                                 std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const std::string where = "control socket " + socket_path.string();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.string().size() >= sizeof addr.sun_path) {
    return InvalidArgument("socket", "path too long for a Unix socket: " + socket_path.string());
  }
  std::strcpy(addr.sun_path, socket_path.c_str());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return ErrnoError("socket for " + where);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) {
      return Unavailable(fmt::format("connect {}: {}", where, std::strerror(errno)));
    }
    auto ready = WaitFor(fd.get(), POLLOUT, deadline, where);
    if (!ready) return std::unexpected(ready.error());
    if (!*ready) return Unavailable(fmt::format("connect {}: timed out", where));
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return Unavailable(fmt::format("connect {}: {}", where, std::strerror(err)));
  }
  std::string line = std::string(request) + "\n";
  size_t sent = 0;
  while (sent < line.size()) {
    ssize_t n = ::send(fd.get(), line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return ErrnoError("sending to " + where);
    auto ready = WaitFor(fd.get(), POLLOUT, deadline, where);
    if (!ready) return std::unexpected(ready.error());
    if (!*ready) return Unavailable(fmt::format("{}: timed out sending", where));
  }
  std::string reply;
  for (;;) {
    if (auto nl = reply.find('\n'); nl != std::string::npos) {
      return ParseControlReply(std::string_view(reply).substr(0, nl));
    }
    if (reply.size() > kMaxReply) return Internal(where + ": reply line too long");
    char buf[1024];
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n > 0) {
      reply.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) {
      if (reply.empty()) return Unavailable(where + ": closed without a reply");
      return ParseControlReply(reply);
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return ErrnoError("reading from " + where);
    auto ready = WaitFor(fd.get(), POLLIN, deadline, where);
    if (!ready) return std::unexpected(ready.error());
    if (!*ready) {
      return Unavailable(
          fmt::format("{}: no reply to \"{}\" within {} ms", where, request, timeout.count()));
    }
  }
}

}  // namespace phoenix::agent::microvm
