#include "agent/vmm/cli/control.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

namespace phoenix::vmm {
namespace {

using Clock = std::chrono::steady_clock;

Result<sockaddr_un> UnixAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path)
    return Fail("control socket path \"" + path + "\" must be 1.." +
                std::to_string(sizeof addr.sun_path - 1) + " bytes");
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::clamp<int64_t>(left.count(), 0, 1'000'000));
}

}  // namespace

std::string OkReply(const std::map<std::string, std::string>& values) {
  std::string line = "ok";
  for (const auto& [k, v] : values) line += " " + k + "=" + v;
  return line;
}

std::string ErrorReply(std::string_view message) {
  std::string line = "error ";
  // A reply is one line: a multi-line message (from a library) must not split it.
  for (char c : message) line += (c == '\n' || c == '\r') ? ' ' : c;
  return line;
}

Result<std::map<std::string, std::string>> ParseReply(std::string_view line) {
  if (line.starts_with("error ")) return Fail(std::string(line.substr(6)));
  if (line == "error") return Fail("monitor replied error without a message");
  if (line != "ok" && !line.starts_with("ok "))
    return Fail("malformed control reply \"" + std::string(line.substr(0, 200)) + "\"");
  std::map<std::string, std::string> values;
  std::string_view rest = line.substr(2);
  while (!rest.empty()) {
    if (rest.front() == ' ') {
      rest.remove_prefix(1);
      continue;
    }
    const size_t end = std::min(rest.find(' '), rest.size());
    std::string_view item = rest.substr(0, end);
    rest.remove_prefix(end);
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0)
      return Fail("malformed control reply item \"" + std::string(item) + "\"");
    values[std::string(item.substr(0, eq))] = std::string(item.substr(eq + 1));
  }
  return values;
}

Result<std::unique_ptr<ControlServer>> ControlServer::Listen(
    const std::string& path, std::chrono::milliseconds client_timeout) {
  auto addr = UnixAddress(path);
  if (!addr) return std::unexpected(addr.error());
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return Fail("control socket path " + path + " exists and is not a socket");
    // Someone listening means another monitor owns this path: never steal it.
    int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0) return Errno("socket");
    const int rc = ::connect(probe, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr);
    ::close(probe);
    if (rc == 0) return Fail("control socket " + path + " is in use by another process");
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Errno("unlink stale " + path);
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  // bind creates the file with the umask applied; 0177 makes it 0600 from the first instant
  // (a chmod afterwards would leave a window). Called before the vCPU threads exist.
  const mode_t old_mask = ::umask(0177);
  const int bind_rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr);
  const int bind_errno = errno;
  ::umask(old_mask);
  if (bind_rc != 0) {
    ::close(fd);
    return ErrnoValue("bind " + path, bind_errno);
  }
  if (::listen(fd, 16) != 0) {
    auto e = Errno("listen " + path);
    ::close(fd);
    ::unlink(path.c_str());
    return e;
  }
  return std::unique_ptr<ControlServer>(new ControlServer(path, fd, client_timeout));
}

ControlServer::~ControlServer() {
  for (Client& c : clients_) ::close(c.fd);
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    ::unlink(path_.c_str());
  }
}

void ControlServer::Accept() {
  // Bounded: at most one backlog's worth per round, so a connect flood cannot starve the loop.
  for (int i = 0; i < 16; ++i) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or a transient error (ECONNABORTED, EMFILE): retry next round
    if (clients_.size() >= kMaxControlClients) {
      const std::string reply = ErrorReply("too many control connections") + "\n";
      (void)!::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      ::close(fd);
      continue;
    }
    clients_.push_back(Client{fd, {}, {}, false, Clock::now() + client_timeout_});
  }
}

bool ControlServer::ReadFrom(Client& client, const Handler& handler) {
  char buf[1024];
  for (;;) {
    ssize_t n = ::recv(client.fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
    if (n == 0) return !client.out.empty();  // peer done writing; finish sending the reply
    client.in.append(buf, static_cast<size_t>(n));
    size_t nl;
    while ((nl = client.in.find('\n')) != std::string::npos) {
      if (nl > kMaxRequestBytes) break;
      std::string line = client.in.substr(0, nl);
      client.in.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      client.out += handler(line) + "\n";
      client.deadline = Clock::now() + client_timeout_;
    }
    if (client.in.size() > kMaxRequestBytes) {
      client.in.clear();
      client.out +=
          ErrorReply("request line longer than " + std::to_string(kMaxRequestBytes) + " bytes") +
          "\n";
      client.close_after_write = true;
      return true;
    }
    if (static_cast<size_t>(n) < sizeof buf) return true;
  }
}

bool ControlServer::Flush(Client& client) {
  while (!client.out.empty()) {
    ssize_t n =
        ::send(client.fd, client.out.data(), client.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
    client.out.erase(0, static_cast<size_t>(n));
  }
  return !client.close_after_write;
}

Result<std::vector<int>> ControlServer::Poll(std::chrono::milliseconds timeout,
                                             std::span<const int> wake_fds,
                                             const Handler& handler) {
  std::vector<pollfd> fds;
  fds.reserve(1 + wake_fds.size() + clients_.size());
  fds.push_back({listen_fd_, POLLIN, 0});
  for (int fd : wake_fds) fds.push_back({fd, POLLIN, 0});
  const size_t first_client = fds.size();
  auto wait_until = Clock::now() + timeout;
  for (const Client& c : clients_) {
    fds.push_back({c.fd, static_cast<short>(c.out.empty() ? POLLIN : (POLLIN | POLLOUT)), 0});
    wait_until = std::min(wait_until, c.deadline);
  }
  int rc = ::poll(fds.data(), fds.size(), RemainingMs(wait_until));
  if (rc < 0 && errno != EINTR) return Errno("poll");

  std::vector<int> ready;
  if (rc > 0) {
    for (size_t i = 1; i < first_client; ++i) {
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) ready.push_back(fds[i].fd);
    }
  }
  const auto now = Clock::now();
  std::vector<Client> kept;
  kept.reserve(clients_.size());
  for (size_t i = 0; i < clients_.size(); ++i) {
    Client& c = clients_[i];
    const short revents = rc > 0 ? fds[first_client + i].revents : 0;
    bool keep = true;
    if (revents & (POLLIN | POLLHUP | POLLERR)) keep = ReadFrom(c, handler);
    if (keep && !c.out.empty()) keep = Flush(c);
    if (keep && (revents & (POLLERR | POLLHUP)) && c.out.empty()) keep = false;
    if (keep && c.deadline <= now) keep = false;  // silent or not reading its reply
    if (keep) {
      kept.push_back(std::move(c));
    } else {
      ::close(c.fd);
    }
  }
  clients_ = std::move(kept);
  if (rc > 0 && (fds[0].revents & POLLIN)) Accept();
  return ready;
}

Result<std::map<std::string, std::string>> ControlCall(const std::string& socket_path,
                                                       std::string_view request,
                                                       std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  auto fail = [&](Error e) { return std::unexpected(Context("control " + socket_path, e)); };
  if (request.find('\n') != std::string_view::npos)
    return Fail("control request contains a newline");
  auto addr = UnixAddress(socket_path);
  if (!addr) return std::unexpected(addr.error());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};

  if (::connect(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0) {
    if (errno != EAGAIN && errno != EINPROGRESS) return fail(Errno("connect").error());
    // Unix sockets report EAGAIN when the backlog is full: wait for room until the deadline.
    for (;;) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, RemainingMs(deadline)) == 0)
        return fail(Error{ETIMEDOUT, "connect timed out"});
      if (::connect(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) == 0 ||
          errno == EISCONN)
        break;
      if (errno != EAGAIN && errno != EINPROGRESS && errno != EALREADY)
        return fail(Errno("connect").error());
      if (Clock::now() >= deadline) return fail(Error{ETIMEDOUT, "connect timed out"});
    }
  }
  std::string out(request);
  out += '\n';
  size_t sent = 0;
  // A monitor that turns the connection away (too many clients) answers and closes before it
  // reads the request, so the send can fail with EPIPE while its answer waits to be read.
  std::optional<Error> send_error;
  while (sent < out.size()) {
    ssize_t n = ::send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
    if (n >= 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EPIPE || errno == ECONNRESET) {
      send_error = Errno("send").error();
      break;
    }
    if (errno != EAGAIN) return fail(Errno("send").error());
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, RemainingMs(deadline)) == 0)
      return fail(Error{ETIMEDOUT, "sending the request timed out"});
  }
  std::string in;
  for (;;) {
    const size_t nl = in.find('\n');
    if (nl != std::string::npos) return ParseReply(std::string_view(in).substr(0, nl));
    if (in.size() > 1 << 20) return fail(Error{0, "reply longer than 1 MiB"});
    pollfd p{fd, POLLIN, 0};
    const int rc = ::poll(&p, 1, RemainingMs(deadline));
    if (rc < 0 && errno != EINTR) return fail(Errno("poll").error());
    if (rc == 0)
      return fail(Error{ETIMEDOUT, "no reply to \"" + std::string(request) + "\" within " +
                                       std::to_string(timeout.count()) + " ms"});
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return fail(send_error ? *send_error : Errno("recv").error());
    }
    if (n == 0) {
      return fail(send_error ? *send_error
                             : Error{0, "monitor closed the connection without a reply"});
    }
    in.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace phoenix::vmm
