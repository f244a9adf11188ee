// phoenix-vmm's control socket: a Unix SOCK_STREAM socket (created 0600) speaking one request line
// -> one reply line. Requests: `ping`, `pause`, `resume`, `snapshot DIR`, `stop`, `stats`.
// Replies: `ok[ key=value]...` or `error MESSAGE`. Values never contain spaces or newlines.
//
// ControlServer is the monitor's half: it owns the listening socket and its connections, and is
// driven by the monitor's control loop through Poll(), which waits (bounded) on the socket, the
// connections and the caller's own wake-up fds, reads request lines (at most kMaxRequestBytes),
// calls the handler synchronously on the calling thread and writes the reply without blocking.
// A client that stays silent or does not read its reply is dropped after kClientTimeout; a line
// that is too long is answered with an error and the connection closed.
// ControlCall is the client's half (the agent, phoenix-vmm-bench, tests).
//
// Ownership: ControlServer owns its fds and unlinks the socket path on destruction.
// Threading: a ControlServer is used from one thread. ControlCall is thread-safe.
#pragma once

#include <poll.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agent/vmm/result.h"

namespace phoenix::vmm {

inline constexpr size_t kMaxRequestBytes = 4096;
inline constexpr std::chrono::milliseconds kClientTimeout{5000};
inline constexpr size_t kMaxControlClients = 16;

// Formats `ok k=v ...` (keys in map order). Values must not contain spaces or newlines.
std::string OkReply(const std::map<std::string, std::string>& values = {});
std::string ErrorReply(std::string_view message);
// Parses a reply line (without its newline): ok -> the key/value pairs; error -> an Error carrying
// the message; anything else -> an Error saying the reply is malformed.
Result<std::map<std::string, std::string>> ParseReply(std::string_view line);

class ControlServer {
 public:
  // The reply line (without newline) to one request line (without newline or CR).
  using Handler = std::function<std::string(std::string_view request)>;

  // Creates the socket at `path` (mode 0600). A stale socket file nobody listens on is replaced;
  // a live one (another monitor) is refused.
  // `client_timeout`: how long a connection may stay silent or leave its reply unread.
  static Result<std::unique_ptr<ControlServer>> Listen(
      const std::string& path, std::chrono::milliseconds client_timeout = kClientTimeout);

  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;
  ~ControlServer();

  const std::string& path() const { return path_; }

  // Waits up to `timeout` for activity on the socket, the connections or `wake_fds`, then serves
  // whatever is ready (accepts, reads, handler calls, writes, timeouts). Returns the wake fds that
  // are readable (the caller drains them); an empty vector after a timeout or pure socket work.
  Result<std::vector<int>> Poll(std::chrono::milliseconds timeout, std::span<const int> wake_fds,
                                const Handler& handler);

  size_t client_count() const { return clients_.size(); }

 private:
  struct Client {
    int fd = -1;
    std::string in;
    std::string out;
    bool close_after_write = false;
    std::chrono::steady_clock::time_point deadline;
  };

  ControlServer(std::string path, int listen_fd, std::chrono::milliseconds client_timeout)
      : path_(std::move(path)), listen_fd_(listen_fd), client_timeout_(client_timeout) {}
  void Accept();
  // Returns false when the client is to be dropped.
  bool ReadFrom(Client& client, const Handler& handler);
  bool Flush(Client& client);

  std::string path_;
  int listen_fd_ = -1;
  std::chrono::milliseconds client_timeout_;
  std::vector<Client> clients_;
};

// Connects to `socket_path`, sends `request` plus a newline and reads one reply line, all within
// `timeout`. "error MESSAGE" replies become an Error with that message.
Result<std::map<std::string, std::string>> ControlCall(const std::string& socket_path,
                                                       std::string_view request,
                                                       std::chrono::milliseconds timeout);

}  // namespace phoenix::vmm
