#include "agent/net/port_proxy.h"

#include <fcntl.h>

#include <cstring>

#include <algorithm>
#include <array>
#include <unordered_map>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include "agent/net/netns_connect.h"

namespace phoenix::agent::net {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr size_t kBufferSize = 16 * 1024;
// After an accept error that is not about one connection (EMFILE, ENOBUFS), wait before accepting
// again instead of spinning on the same error.
constexpr auto kAcceptErrorBackoff = std::chrono::milliseconds(100);

std::string EndpointString(const asio::ip::address& address, uint16_t port) {
  std::string ip = address.to_string();
  if (address.is_v6()) {
    ip = "[" + ip + "]";
  }
  return ip + ":" + std::to_string(port);
}

}  // namespace

namespace detail {

class Session;

// Everything completions may touch after the PortProxy object is gone.
class ProxyCore : public std::enable_shared_from_this<ProxyCore> {
 public:
  ProxyCore(asio::io_context& io, ProxyOptions options)
      : io_(io), acceptor_(io), accept_retry_timer_(io), options_(options) {}

  void Accept();
  void SetBackend(std::optional<Backend> backend);
  void Close();
  void Forget(Session* session) { sessions_.erase(session); }

  asio::io_context& io() { return io_; }
  tcp::acceptor& acceptor() { return acceptor_; }
  const ProxyOptions& options() const { return options_; }
  const std::optional<Backend>& backend() const { return backend_; }
  ProxyStats& stats() { return stats_; }
  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }

 private:
  void OnAccept(const error_code& ec, tcp::socket socket);

  asio::io_context& io_;
  tcp::acceptor acceptor_;
  asio::steady_timer accept_retry_timer_;
  ProxyOptions options_;
  std::optional<Backend> backend_;
  // Sessions are owned here until they close; completions hold extra references while pending.
  std::unordered_map<Session*, std::shared_ptr<Session>> sessions_;
  ProxyStats stats_;
  std::string name_;  // "127.0.0.1:8080", for logs
  bool closed_ = false;
};

// One client connection: waits for a backend, connects (with retries), then pumps both directions.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<ProxyCore> core, tcp::socket client)
      : core_(std::move(core)),
        client_(std::move(client)),
        backend_(core_->io()),
        hold_timer_(core_->io()),
        retry_timer_(core_->io()),
        upstream_(client_, backend_, core_->stats().bytes_in),
        downstream_(backend_, client_, core_->stats().bytes_out) {}

  void Start() {
    hold_timer_.expires_after(core_->options().hold_timeout);
    hold_timer_.async_wait([this, self = shared_from_this()](const error_code& ec) {
      if (ec || phase_ == Phase::kForwarding || phase_ == Phase::kClosed) {
        return;
      }
      Fail(core_->backend() ? "backend not reachable within the hold timeout"
                            : "no backend set within the hold timeout");
    });
    Connect();
  }

  // A backend was (re)set: connections that were waiting for one proceed now with fresh attempts.
  void OnBackendSet() {
    if (phase_ == Phase::kWaiting) {
      attempts_ = 0;
      Connect();
    }
  }

  void Close() {
    if (phase_ == Phase::kClosed) {
      return;
    }
    auto self = shared_from_this();  // Forget() may drop the owning reference
    phase_ = Phase::kClosed;
    error_code ignored;
    connect_.Cancel();
    client_.close(ignored);
    backend_.close(ignored);
    hold_timer_.cancel();
    retry_timer_.cancel();
    --core_->stats().active;
    core_->Forget(this);
  }

 private:
  enum class Phase { kWaiting, kConnecting, kBackoff, kForwarding, kClosed };

  // One direction of the stream. The buffer is reused: read, write it all, read again.
  struct Pipe {
    Pipe(tcp::socket& from, tcp::socket& to, uint64_t& bytes) : from(from), to(to), bytes(bytes) {}
    tcp::socket& from;
    tcp::socket& to;
    uint64_t& bytes;
    std::array<char, kBufferSize> buffer;
    bool eof = false;
  };

  void Connect() {
    if (!core_->backend()) {
      phase_ = Phase::kWaiting;
      return;
    }
    phase_ = Phase::kConnecting;
    ++attempts_;
    connect_.Cancel();
    connect_ = AsyncConnect(core_->io(), *core_->backend(),
                            [this, self = shared_from_this()](Result<tcp::socket> socket) {
                              if (phase_ != Phase::kConnecting) {
                                return;
                              }
                              if (socket) {
                                backend_ = std::move(*socket);
                                StartForwarding();
                                return;
                              }
                              const std::string& why = socket.error().message;
                              if (attempts_ >= core_->options().connect_attempts) {
                                Fail(why);
                                return;
                              }
                              spdlog::debug("proxy {}: {} (attempt {}), retrying", core_->name(),
                                            why, attempts_);
                              phase_ = Phase::kBackoff;
                              retry_timer_.expires_after(core_->options().retry_backoff *
                                                         (1 << std::min(attempts_ - 1, 10)));
                              retry_timer_.async_wait([this, self](const error_code& timer_ec) {
                                if (!timer_ec && phase_ == Phase::kBackoff) {
                                  Connect();
                                }
                              });
                            });
  }

  void StartForwarding() {
    phase_ = Phase::kForwarding;
    hold_timer_.cancel();
    last_activity_ = std::chrono::steady_clock::now();
    WatchIdle(core_->options().idle_timeout);
    error_code ignored;  // latency only; forwarding works without it
    client_.set_option(tcp::no_delay(true), ignored);
    backend_.set_option(tcp::no_delay(true), ignored);
    Read(upstream_);
    Read(downstream_);
  }

  void Read(Pipe& pipe) {
    pipe.from.async_read_some(asio::buffer(pipe.buffer), [this, self = shared_from_this(), &pipe](
                                                             const error_code& ec, size_t n) {
      if (phase_ == Phase::kClosed) {
        return;
      }
      if (ec == asio::error::eof) {
        // Half-close: pass the EOF on, keep the other direction running.
        pipe.eof = true;
        error_code ignored;
        pipe.to.shutdown(tcp::socket::shutdown_send, ignored);
        if (upstream_.eof && downstream_.eof) {
          Close();
        }
        return;
      }
      if (ec) {  // reset or other error: the stream is broken both ways
        Close();
        return;
      }
      if (&pipe == &upstream_ && downstream_.eof) {
        // The guest closed its side after replying (a busybox CGI reply ends with EOF) and the
        // client, keeping the connection, sent again: nothing will answer, and a client that has
        // not read our forwarded EOF yet would wait on this pair forever. Close it now.
        Close();
        return;
      }
      last_activity_ = std::chrono::steady_clock::now();
      CountTurn(pipe);
      asio::async_write(pipe.to, asio::buffer(pipe.buffer.data(), n),
                        [this, self, &pipe](const error_code& write_ec, size_t written) {
                          if (phase_ == Phase::kClosed) {
                            return;
                          }
                          if (write_ec) {
                            Close();
                            return;
                          }
                          pipe.bytes += written;
                          Read(pipe);
                        });
    });
  }

  // Closes the pair once neither side has sent anything for idle_timeout. The timer is re-armed
  // only when it fires, for what is left of the window, so traffic costs a clock read, not a timer.
  void WatchIdle(std::chrono::steady_clock::duration wait) {
    hold_timer_.expires_after(wait);
    hold_timer_.async_wait([this, self = shared_from_this()](const error_code& ec) {
      if (ec || phase_ != Phase::kForwarding) {
        return;
      }
      const auto idle = std::chrono::steady_clock::now() - last_activity_;
      const auto limit = core_->options().idle_timeout;
      if (idle < limit) {
        WatchIdle(limit - idle);
        return;
      }
      spdlog::debug("proxy {}: closing a connection idle for {} ms", core_->name(),
                    std::chrono::duration_cast<std::chrono::milliseconds>(idle).count());
      ++core_->stats().idle_closed;
      Close();
    });
  }

  // Request accounting (see the header): client bytes open a turn unless one is open; the guest's
  // first bytes after that answer it and close it.
  void CountTurn(const Pipe& pipe) {
    if (&pipe == &upstream_) {
      if (!client_turn_) {
        client_turn_ = true;
        awaiting_reply_ = true;
        request_started_ = std::chrono::steady_clock::now();
        ++core_->stats().requests;
      }
      return;
    }
    if (awaiting_reply_) {
      core_->stats().latency.Record(std::chrono::steady_clock::now() - request_started_);
      awaiting_reply_ = false;
    }
    client_turn_ = false;
  }

  void Fail(const std::string& why) {
    spdlog::debug("proxy {}: closing client connection: {}", core_->name(), why);
    ++core_->stats().failed;
    Close();
  }

  std::shared_ptr<ProxyCore> core_;
  tcp::socket client_;
  tcp::socket backend_;  // connected by connect_, then forwarded to
  ConnectCanceller connect_;
  asio::steady_timer hold_timer_;
  asio::steady_timer retry_timer_;
  Pipe upstream_;    // client -> backend
  Pipe downstream_;  // backend -> client
  Phase phase_ = Phase::kWaiting;
  int attempts_ = 0;
  bool client_turn_ = false;     // the client has sent since the guest last replied
  bool awaiting_reply_ = false;  // that turn's first reply byte has not arrived yet
  std::chrono::steady_clock::time_point request_started_{};
  std::chrono::steady_clock::time_point last_activity_{};  // last bytes read, either direction
};

void ProxyCore::Accept() {
  acceptor_.async_accept([self = shared_from_this()](const error_code& ec, tcp::socket socket) {
    self->OnAccept(ec, std::move(socket));
  });
}

void ProxyCore::OnAccept(const error_code& ec, tcp::socket socket) {
  if (closed_) {
    return;  // `socket` closes as it goes out of scope
  }
  if (ec) {
    if (ec == asio::error::operation_aborted) {
      return;
    }
    if (ec == asio::error::connection_aborted) {  // the client gave up before we accepted
      Accept();
      return;
    }
    spdlog::warn("proxy {}: accept: {}; retrying in {} ms", name_, ec.message(),
                 kAcceptErrorBackoff.count());
    accept_retry_timer_.expires_after(kAcceptErrorBackoff);
    accept_retry_timer_.async_wait([self = shared_from_this()](const error_code& timer_ec) {
      if (!timer_ec && !self->closed_) {
        self->Accept();
      }
    });
    return;
  }
  ++stats_.accepted;
  if (sessions_.size() >= options_.max_connections) {
    ++stats_.rejected;  // `socket` closes as it goes out of scope
    spdlog::warn("proxy {}: {} connections open, closing a new one", name_, sessions_.size());
    Accept();
    return;
  }
  ++stats_.active;
  auto session = std::make_shared<Session>(shared_from_this(), std::move(socket));
  sessions_.emplace(session.get(), session);
  session->Start();
  Accept();
}

void ProxyCore::SetBackend(std::optional<Backend> backend) {
  backend_ = std::move(backend);
  if (!backend_ || closed_) {
    return;
  }
  // Copy first: a session may close (and leave the map) while we iterate.
  std::vector<std::shared_ptr<Session>> sessions;
  sessions.reserve(sessions_.size());
  for (auto& [ptr, session] : sessions_) {
    sessions.push_back(session);
  }
  for (auto& session : sessions) {
    session->OnBackendSet();
  }
}

void ProxyCore::Close() {
  if (closed_) {
    return;
  }
  closed_ = true;
  error_code ignored;
  acceptor_.close(ignored);
  accept_retry_timer_.cancel();
  std::vector<std::shared_ptr<Session>> sessions;
  sessions.reserve(sessions_.size());
  for (auto& [ptr, session] : sessions_) {
    sessions.push_back(session);
  }
  for (auto& session : sessions) {
    session->Close();
  }
}

}  // namespace detail

Result<std::unique_ptr<PortProxy>> PortProxy::Listen(asio::io_context& io,
                                                     const std::string& host_ip, uint16_t port,
                                                     ProxyOptions options) {
  error_code ec;
  asio::ip::address address = asio::ip::make_address(host_ip, ec);
  if (ec) {
    return InvalidArgument("host_ip", "\"" + host_ip + "\" is not an IP address");
  }
  if (options.hold_timeout.count() <= 0) {
    return InvalidArgument("hold_timeout", "must be positive");
  }
  if (options.connect_attempts < 1) {
    return InvalidArgument("connect_attempts", "must be at least 1");
  }
  if (options.idle_timeout.count() <= 0) {
    return InvalidArgument("idle_timeout", "must be positive");
  }
  if (options.max_connections < 1) {
    return InvalidArgument("max_connections", "must be at least 1");
  }
  const std::string where = EndpointString(address, port);
  tcp::endpoint endpoint(address, port);

  auto core = std::make_shared<detail::ProxyCore>(io, options);
  tcp::acceptor& acceptor = core->acceptor();
  if (acceptor.open(endpoint.protocol(), ec); ec) {
    return Unavailable("listen on " + where + ": socket: " + ec.message());
  }
  // Asio opens sockets without O_CLOEXEC; a listener inherited by a process the agent starts would
  // keep accepting after the agent died.
  if (::fcntl(acceptor.native_handle(), F_SETFD, FD_CLOEXEC) != 0) {
    return Unavailable("listen on " + where + ": FD_CLOEXEC: " + std::strerror(errno));
  }
  // Lets a restarted agent rebind while old connections sit in TIME_WAIT; Linux still refuses a
  // port another socket is listening on.
  if (acceptor.set_option(tcp::acceptor::reuse_address(true), ec); ec) {
    return Unavailable("listen on " + where + ": SO_REUSEADDR: " + ec.message());
  }
  if (acceptor.bind(endpoint, ec); ec) {
    if (ec == asio::error::address_in_use) {
      return AlreadyExists(where + " is already in use");
    }
    return Unavailable("bind " + where + ": " + ec.message());
  }
  if (acceptor.listen(asio::socket_base::max_listen_connections, ec); ec) {
    if (ec == asio::error::address_in_use) {
      return AlreadyExists(where + " is already in use");
    }
    return Unavailable("listen on " + where + ": " + ec.message());
  }
  tcp::endpoint bound = acceptor.local_endpoint(ec);
  if (ec) {
    return Unavailable("listen on " + where + ": getsockname: " + ec.message());
  }
  core->set_name(EndpointString(bound.address(), bound.port()));
  core->Accept();
  return std::unique_ptr<PortProxy>(new PortProxy(std::move(core), bound.port()));
}

PortProxy::PortProxy(std::shared_ptr<detail::ProxyCore> core, uint16_t port)
    : core_(std::move(core)), port_(port) {}

PortProxy::~PortProxy() { Close(); }

void PortProxy::SetBackend(std::optional<Backend> backend) {
  core_->SetBackend(std::move(backend));
}

ProxyStats PortProxy::stats() const { return core_->stats(); }

void PortProxy::Close() { core_->Close(); }

}  // namespace phoenix::agent::net
