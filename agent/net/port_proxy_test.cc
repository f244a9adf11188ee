#include "agent/net/port_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include "agent/net/port_allocator.h"
#include "agent/net/testing/test_netns.h"
#include "agent/testing/asio_run.h"
#include "agent/testing/fd_count.h"

namespace phoenix::agent::net {
namespace {

using ::phoenix::agent::testing::OpenFdCount;

using ::phoenix::agent::testing::RunFor;
using ::phoenix::agent::testing::RunUntil;

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using namespace std::chrono_literals;

const asio::ip::address kLoopback = asio::ip::make_address_v4("127.0.0.1");

// A backend for the tests: accepts on 127.0.0.1 and runs `serve` on each connection.
class TestServer {
 public:
  using Serve = std::function<void(std::shared_ptr<tcp::socket>)>;

  TestServer(asio::io_context& io, Serve serve, uint16_t port = 0)
      : state_(std::make_shared<State>(io, std::move(serve))) {
    tcp::endpoint endpoint(kLoopback, port);
    state_->acceptor.open(endpoint.protocol());
    state_->acceptor.set_option(tcp::acceptor::reuse_address(true));
    state_->acceptor.bind(endpoint);
    state_->acceptor.listen();
    Accept(state_);
  }
  // Serves on an already listening socket (e.g. one made inside a test network namespace).
  TestServer(asio::io_context& io, Serve serve, int listening_fd)
      : state_(std::make_shared<State>(io, std::move(serve))) {
    state_->acceptor.assign(tcp::v4(), listening_fd);
    Accept(state_);
  }
  ~TestServer() {
    error_code ignored;
    state_->acceptor.close(ignored);
  }

  tcp::endpoint endpoint() const { return state_->acceptor.local_endpoint(); }
  int connections() const { return state_->connections; }

 private:
  struct State {
    State(asio::io_context& io, Serve serve) : acceptor(io), serve(std::move(serve)) {}
    tcp::acceptor acceptor;
    Serve serve;
    int connections = 0;
  };

  static void Accept(std::shared_ptr<State> state) {
    state->acceptor.async_accept([state](const error_code& ec, tcp::socket socket) {
      if (ec) {
        return;
      }
      ++state->connections;
      state->serve(std::make_shared<tcp::socket>(std::move(socket)));
      Accept(state);
    });
  }

  std::shared_ptr<State> state_;
};

// Echoes everything; closes after the client's EOF (all echoes are written by then).
void ServeEcho(std::shared_ptr<tcp::socket> socket) {
  auto buffer = std::make_shared<std::array<char, 8192>>();
  socket->async_read_some(asio::buffer(*buffer), [socket, buffer](const error_code& ec, size_t n) {
    if (ec) {
      return;  // EOF or error: dropping the last reference closes the socket
    }
    asio::async_write(*socket, asio::buffer(buffer->data(), n),
                      [socket](const error_code& write_ec, size_t) {
                        if (!write_ec) {
                          ServeEcho(socket);
                        }
                      });
  });
}

// HTTP/1.0-ish: reads the whole request until the client's EOF (half-close), then answers
// "<name> got <n> bytes" and closes.
TestServer::Serve ReplyAfterEof(std::string name) {
  return [name](std::shared_ptr<tcp::socket> socket) {
    auto request = std::make_shared<std::string>();
    asio::async_read(*socket, asio::dynamic_buffer(*request),
                     [socket, request, name](const error_code& ec, size_t) {
                       if (ec != asio::error::eof) {
                         return;
                       }
                       auto reply = std::make_shared<std::string>(
                           name + " got " + std::to_string(request->size()) + " bytes");
                       asio::async_write(*socket, asio::buffer(*reply),
                                         [socket, reply](const error_code&, size_t) {});
                     });
  };
}

// A test client: reads everything into `received` until EOF or error.
struct Client {
  explicit Client(asio::io_context& io) : socket(io) {}

  void Connect(uint16_t port) {
    socket.async_connect(tcp::endpoint(kLoopback, port), [this](const error_code& ec) {
      connect_error = ec;
      connected = !ec;
      if (connected) {
        ReadAll();
      }
    });
  }
  // Connects and runs the loop until connected (within RunUntil's bound).
  bool ConnectAndWait(asio::io_context& io, uint16_t port) {
    Connect(port);
    return RunUntil(io, [this] { return connected; });
  }
  void ReadAll() {
    socket.async_read_some(asio::buffer(buffer), [this](const error_code& ec, size_t n) {
      if (ec) {
        closed = true;
        read_error = ec;
        return;
      }
      received.append(buffer.data(), n);
      ReadAll();
    });
  }
  void Write(std::string data) {
    auto payload = std::make_shared<std::string>(std::move(data));
    asio::async_write(socket, asio::buffer(*payload),
                      [this, payload](const error_code& ec, size_t n) {
                        write_error = ec;
                        written += n;
                      });
  }
  void ShutdownSend() { socket.shutdown(tcp::socket::shutdown_send); }

  tcp::socket socket;
  std::array<char, 16384> buffer;
  std::string received;
  size_t written = 0;
  bool connected = false;
  bool closed = false;
  error_code connect_error, read_error, write_error;
};

std::string Payload(size_t size) {
  std::string s(size, '\0');
  uint32_t x = 12345;
  for (char& c : s) {
    x = x * 1103515245 + 12345;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

std::unique_ptr<PortProxy> MustListen(asio::io_context& io, ProxyOptions options = {}) {
  Result<std::unique_ptr<PortProxy>> proxy = PortProxy::Listen(io, "127.0.0.1", 0, options);
  EXPECT_TRUE(proxy.has_value()) << proxy.error().ToString();
  return proxy.has_value() ? std::move(*proxy) : nullptr;
}

// A proxy already forwarding to `backend` (nullptr if it could not listen).
std::unique_ptr<PortProxy> MustListenTo(asio::io_context& io, const tcp::endpoint& backend) {
  auto proxy = MustListen(io);
  if (proxy) proxy->SetBackend(backend);
  return proxy;
}

TEST(PortProxyTest, ListenPicksAPortWhenGivenZero) {
  asio::io_context io;
  auto proxy = MustListen(io);
  ASSERT_NE(proxy, nullptr);
  EXPECT_NE(proxy->port(), 0);
}

TEST(PortProxyTest, ListenRejectsMalformedAddress) {
  asio::io_context io;
  auto proxy = PortProxy::Listen(io, "localhost:80", 0);
  ASSERT_FALSE(proxy.has_value());
  EXPECT_EQ(proxy.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(proxy.error().field, "host_ip");
}

TEST(PortProxyTest, ListenOnTakenPortIsAlreadyExists) {
  asio::io_context io;
  auto first = MustListen(io);
  ASSERT_NE(first, nullptr);
  auto second = PortProxy::Listen(io, "127.0.0.1", first->port());
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(second.error().field, "");
  EXPECT_NE(second.error().message.find("127.0.0.1:" + std::to_string(first->port())),
            std::string::npos)
      << second.error().message;
}

TEST(PortProxyTest, ForwardsMegabytesBothWaysAndHalfCloses) {
  asio::io_context io;
  TestServer echo(io, ServeEcho);
  auto proxy = MustListenTo(io, echo.endpoint());
  ASSERT_NE(proxy, nullptr);

  const std::string payload = Payload(4 * 1024 * 1024);
  Client client(io);
  ASSERT_TRUE(client.ConnectAndWait(io, proxy->port()));
  client.Write(payload);
  ASSERT_TRUE(RunUntil(
      io, [&] { return client.received.size() >= payload.size(); }, 20s))
      << "received " << client.received.size();
  EXPECT_TRUE(client.received == payload);
  EXPECT_FALSE(client.closed);

  // Our EOF reaches the echo server, which closes; its EOF comes back to us.
  client.ShutdownSend();
  ASSERT_TRUE(RunUntil(io, [&] { return client.closed; }));
  EXPECT_EQ(client.read_error, asio::error::eof);
  ASSERT_TRUE(RunUntil(io, [&] { return proxy->stats().active == 0; }));

  ProxyStats stats = proxy->stats();
  EXPECT_EQ(stats.accepted, 1u);
  EXPECT_EQ(stats.failed, 0u);
  EXPECT_EQ(stats.bytes_in, payload.size());
  EXPECT_EQ(stats.bytes_out, payload.size());
}

// Answers each read with "ok" after `delay`: a request/response server with a known latency.
struct DelayedReplier : std::enable_shared_from_this<DelayedReplier> {
  DelayedReplier(std::shared_ptr<tcp::socket> s, std::chrono::milliseconds d)
      : socket(std::move(s)), timer(socket->get_executor()), delay(d) {}
  void Next() {
    socket->async_read_some(
        asio::buffer(buffer), [self = shared_from_this()](const error_code& ec, size_t) {
          if (ec) return;
          self->timer.expires_after(self->delay);
          self->timer.async_wait([self](const error_code& timer_ec) {
            if (timer_ec) return;
            asio::async_write(*self->socket, asio::buffer(std::string_view("ok")),
                              [self](const error_code& write_ec, size_t) {
                                if (!write_ec) self->Next();
                              });
          });
        });
  }
  std::shared_ptr<tcp::socket> socket;
  asio::steady_timer timer;
  std::chrono::milliseconds delay;
  std::array<char, 4096> buffer;
};

TestServer::Serve ReplyAfterDelay(std::chrono::milliseconds delay) {
  return [delay](std::shared_ptr<tcp::socket> socket) {
    std::make_shared<DelayedReplier>(std::move(socket), delay)->Next();
  };
}

TEST(PortProxyTest, CountsClientTurnsAsRequestsAndTimesTheFirstReplyByte) {
  asio::io_context io;
  TestServer server(io, ReplyAfterDelay(30ms));
  auto proxy = MustListenTo(io, server.endpoint());
  ASSERT_NE(proxy, nullptr);

  Client client(io);
  ASSERT_TRUE(client.ConnectAndWait(io, proxy->port()));
  // Three turns on one connection: each waits for the reply before the next request.
  for (int i = 1; i <= 3; ++i) {
    client.Write("GET / HTTP/1.1\r\n\r\n");
    ASSERT_TRUE(RunUntil(io, [&] { return client.received.size() == 2u * i; }));
  }
  // A second connection with one turn.
  Client other(io);
  ASSERT_TRUE(other.ConnectAndWait(io, proxy->port()));
  other.Write("GET / HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(RunUntil(io, [&] { return other.received == "ok"; }));

  ProxyStats stats = proxy->stats();
  EXPECT_EQ(stats.requests, 4u);
  EXPECT_EQ(stats.latency.count(), 4u);
  auto p50 = stats.latency.QuantileMs(0.5);
  ASSERT_TRUE(p50.has_value());
  // At least the server's delay; well under a second on loopback (one bucket is <= 20 % wide).
  EXPECT_GE(*p50, 30.0 * 0.8);
  EXPECT_LT(*p50, 1000.0);
  EXPECT_GE(stats.latency.max(), 30ms);
}

TEST(PortProxyTest, ARequestWithoutReplyIsCountedButNotTimed) {
  asio::io_context io;
  std::vector<std::shared_ptr<tcp::socket>> held;  // destroyed before `io`
  // Never answers; keeps the connection open for the test's duration.
  TestServer server(io, [&held](std::shared_ptr<tcp::socket> socket) { held.push_back(socket); });
  auto proxy = MustListenTo(io, server.endpoint());
  ASSERT_NE(proxy, nullptr);

  Client client(io);
  ASSERT_TRUE(client.ConnectAndWait(io, proxy->port()));
  client.Write("GET / HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(RunUntil(io, [&] { return proxy->stats().requests == 1; }));
  client.Write("more bytes of the same turn");
  ASSERT_TRUE(RunUntil(io, [&] { return proxy->stats().bytes_in == 45; }));
  EXPECT_EQ(proxy->stats().requests, 1u);  // still the same client turn
  EXPECT_EQ(proxy->stats().latency.count(), 0u);
}

TEST(PortProxyTest, ClientHalfCloseStillGetsTheResponse) {
  asio::io_context io;
  TestServer server(io, ReplyAfterEof("A"));
  auto proxy = MustListenTo(io, server.endpoint());
  ASSERT_NE(proxy, nullptr);

  Client client(io);
  ASSERT_TRUE(client.ConnectAndWait(io, proxy->port()));
  client.Write("GET / HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(RunUntil(io, [&] { return client.written == 18; }));
  client.ShutdownSend();
  ASSERT_TRUE(RunUntil(io, [&] { return client.closed; }));
  EXPECT_EQ(client.received, "A got 18 bytes");
  EXPECT_EQ(client.read_error, asio::error::eof);
}

// Like a busybox CGI: reads one request, answers without a length and closes (the reply ends
// with EOF).
void ServeOneReplyThenClose(std::shared_ptr<tcp::socket> socket) {
  auto buffer = std::make_shared<std::array<char, 4096>>();
  socket->async_read_some(asio::buffer(*buffer), [socket, buffer](const error_code& ec, size_t) {
    if (ec) {
      return;
    }
    asio::async_write(*socket, asio::buffer(std::string_view("HTTP/1.1 200 OK\r\n\r\nhello")),
                      [socket](const error_code&, size_t) {
                        error_code ignored;
                        socket->close(ignored);
                      });
  });
}

TEST(PortProxyTest, KeepAliveClientSendingAfterTheGuestsEofIsClosedAtOnce) {
  asio::io_context io;
  TestServer server(io, ServeOneReplyThenClose);
  auto proxy = MustListenTo(io, server.endpoint());
  ASSERT_NE(proxy, nullptr);

  // A keep-alive client: it reads exactly the reply it expects and nothing more, so it has not
  // seen the EOF when it sends its next request on the same connection.
  tcp::socket client(io);
  bool connected = false;
  client.async_connect(tcp::endpoint(kLoopback, proxy->port()),
                       [&](const error_code& ec) { connected = !ec; });
  ASSERT_TRUE(RunUntil(io, [&] { return connected; }));
  const std::string_view kRequest = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string_view kReply = "HTTP/1.1 200 OK\r\n\r\nhello";
  asio::write(client, asio::buffer(kRequest));
  std::string reply(kReply.size(), '\0');
  bool replied = false;
  asio::async_read(client, asio::buffer(reply),
                   [&](const error_code& ec, size_t) { replied = !ec; });
  ASSERT_TRUE(RunUntil(io, [&] { return replied; }));
  EXPECT_EQ(reply, kReply);
  RunFor(io, 100ms);                     // the guest's EOF reaches the proxy
  EXPECT_EQ(proxy->stats().active, 1u);  // the client's half still stands

  asio::write(client, asio::buffer(kRequest));
  std::array<char, 64> more{};
  bool read_done = false;
  error_code read_error;
  size_t read_bytes = 0;
  client.async_read_some(asio::buffer(more), [&](const error_code& ec, size_t n) {
    read_done = true;
    read_error = ec;
    read_bytes = n;
  });
  // The client still holds its socket open: the proxy closes the pair at once all the same.
  ASSERT_TRUE(RunUntil(
      io, [&] { return proxy->stats().active == 0; }, 2s));
  ASSERT_TRUE(RunUntil(
      io, [&] { return read_done; }, 2s));
  EXPECT_EQ(read_bytes, 0u);
  EXPECT_TRUE(read_error == asio::error::eof || read_error == asio::error::connection_reset)
      << read_error.message();

  ProxyStats stats = proxy->stats();
  EXPECT_EQ(stats.requests, 1u);  // the unanswerable second turn is not a request
  EXPECT_EQ(stats.latency.count(), 1u);
  EXPECT_EQ(stats.failed, 0u);
  EXPECT_EQ(server.connections(), 1);
}

TEST(PortProxyTest, ClientClosingAfterTheGuestsEofClosesThePair) {
  asio::io_context io;
  TestServer server(io, ServeOneReplyThenClose);
  auto proxy = MustListenTo(io, server.endpoint());
  ASSERT_NE(proxy, nullptr);

  Client client(io);
  ASSERT_TRUE(client.ConnectAndWait(io, proxy->port()));
  client.Write("GET / HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(RunUntil(io, [&] { return client.closed; }));  // the guest's EOF, passed on
  EXPECT_EQ(client.received, "HTTP/1.1 200 OK\r\n\r\nhello");
  EXPECT_EQ(client.read_error, asio::error::eof);
  EXPECT_EQ(proxy->stats().active, 1u);
  client.socket.close();
  ASSERT_TRUE(RunUntil(
      io, [&] { return proxy->stats().active == 0; }, 2s));
}

TEST(PortProxyTest, HeldConnectionIsForwardedOnceABackendIsSet) {
  asio::io_context io;
  TestServer echo(io, ServeEcho);
  auto proxy = MustListen(io);
  ASSERT_NE(proxy, nullptr);

  Client client(io);
  ASSERT_TRUE(client.ConnectAndWait(io, proxy->port()));
  client.Write("hello");
  RunFor(io, 100ms);
  EXPECT_EQ(client.received, "");
  EXPECT_FALSE(client.closed);
  EXPECT_EQ(proxy->stats().active, 1u);
  EXPECT_EQ(echo.connections(), 0);

  proxy->SetBackend(echo.endpoint());
  ASSERT_TRUE(RunUntil(io, [&] { return client.received == "hello"; }));
  EXPECT_EQ(proxy->stats().failed, 0u);
}

TEST(PortProxyTest, HeldConnectionIsClosedAfterHoldTimeout) {
  asio::io_context io;
  auto proxy = MustListen(io, {.hold_timeout = 150ms});
  ASSERT_NE(proxy, nullptr);

  Client client(io);
  auto start = std::chrono::steady_clock::now();
  client.Connect(proxy->port());
  ASSERT_TRUE(RunUntil(io, [&] { return client.closed; }));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms);
  ProxyStats stats = proxy->stats();
  EXPECT_EQ(stats.accepted, 1u);
  EXPECT_EQ(stats.failed, 1u);
  EXPECT_EQ(stats.active, 0u);
}

TEST(PortProxyTest, NewConnectionsGoToTheNewBackend) {
  asio::io_context io;
  TestServer a(io, ReplyAfterEof("A"));
  TestServer b(io, ReplyAfterEof("B"));
  auto proxy = MustListen(io);
  ASSERT_NE(proxy, nullptr);

  auto ask = [&](const char* expected) {
    Client client(io);
    ASSERT_TRUE(client.ConnectAndWait(io, proxy->port()));
    client.ShutdownSend();
    ASSERT_TRUE(RunUntil(io, [&] { return client.closed; }));
    EXPECT_EQ(client.received, std::string(expected) + " got 0 bytes");
  };
  proxy->SetBackend(a.endpoint());
  ask("A");
  proxy->SetBackend(b.endpoint());
  ask("B");
  EXPECT_EQ(a.connections(), 1);
  EXPECT_EQ(b.connections(), 1);
}

TEST(PortProxyTest, UnreachableBackendClosesClientAndCountsFailure) {
  asio::io_context io;
  Result<uint16_t> dead_port = PickFreeLoopbackPort();  // nothing listens there
  ASSERT_TRUE(dead_port.has_value()) << dead_port.error().ToString();
  auto proxy = MustListen(io, {.connect_attempts = 3, .retry_backoff = 10ms});
  ASSERT_NE(proxy, nullptr);
  proxy->SetBackend(tcp::endpoint(kLoopback, *dead_port));

  Client client(io);
  client.Connect(proxy->port());
  ASSERT_TRUE(RunUntil(io, [&] { return client.closed; }));
  EXPECT_EQ(client.received, "");
  ProxyStats stats = proxy->stats();
  EXPECT_EQ(stats.failed, 1u);
  EXPECT_EQ(stats.active, 0u);
  EXPECT_EQ(stats.bytes_in, 0u);
}

TEST(PortProxyTest, RetriesUntilTheBackendPortOpens) {
  asio::io_context io;
  // The backend's port is held from the start, bound but not listening (connects are refused), so
  // no other socket of this machine's parallel tests can take it before the "guest" opens it.
  const int backend = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(backend, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ASSERT_EQ(::bind(backend, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::getsockname(backend, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const uint16_t port = ntohs(address.sin_port);
  auto proxy = MustListen(io, {.connect_attempts = 20, .retry_backoff = 10ms});
  ASSERT_NE(proxy, nullptr);
  proxy->SetBackend(tcp::endpoint(kLoopback, port));

  Client client(io);
  ASSERT_TRUE(client.ConnectAndWait(io, proxy->port()));
  client.Write("late");
  RunFor(io, 50ms);  // at least one refused attempt
  EXPECT_FALSE(client.closed);

  ASSERT_EQ(::listen(backend, 16), 0);  // the "restored guest" opens its port
  TestServer echo(io, ServeEcho, backend);
  ASSERT_TRUE(RunUntil(io, [&] { return client.received == "late"; }));
  EXPECT_EQ(proxy->stats().failed, 0u);
}

TEST(PortProxyTest, ConnectionsBeyondTheLimitAreClosed) {
  asio::io_context io;
  auto proxy = MustListen(io, {.max_connections = 2});
  ASSERT_NE(proxy, nullptr);
  std::vector<std::unique_ptr<Client>> held;
  for (int i = 0; i < 2; ++i) {
    held.push_back(std::make_unique<Client>(io));
    held.back()->Connect(proxy->port());
  }
  ASSERT_TRUE(RunUntil(io, [&] { return proxy->stats().active == 2; }));
  Client extra(io);
  extra.Connect(proxy->port());
  ASSERT_TRUE(RunUntil(io, [&] { return extra.closed; }));
  ProxyStats stats = proxy->stats();
  EXPECT_EQ(stats.accepted, 3u);
  EXPECT_EQ(stats.rejected, 1u);
  EXPECT_EQ(stats.active, 2u);
  EXPECT_FALSE(held[0]->closed);
  EXPECT_FALSE(held[1]->closed);
}

TEST(PortProxyTest, IdleConnectionsAreClosedActiveOnesKept) {
  asio::io_context io;
  TestServer echo(io, ServeEcho);
  auto proxy = MustListen(io, {.idle_timeout = 300ms});
  ASSERT_NE(proxy, nullptr);
  proxy->SetBackend(echo.endpoint());

  Client idle(io), chatty(io);
  ASSERT_TRUE(idle.ConnectAndWait(io, proxy->port()));
  ASSERT_TRUE(chatty.ConnectAndWait(io, proxy->port()));
  idle.Write("once");
  ASSERT_TRUE(RunUntil(io, [&] { return idle.received == "once"; }));
  // The chatty client sends every 100 ms for 900 ms, three idle windows: it must stay open.
  std::string sent;
  for (int i = 0; i < 9; ++i) {
    chatty.Write("c");
    sent += "c";
    RunFor(io, 100ms);
  }
  EXPECT_TRUE(idle.closed);
  EXPECT_FALSE(chatty.closed);
  EXPECT_TRUE(RunUntil(io, [&] { return chatty.received == sent; }));
  EXPECT_EQ(proxy->stats().idle_closed, 1u);
}

TEST(PortProxyTest, SurvivesClientReset) {
  asio::io_context io;
  TestServer echo(io, ServeEcho);
  auto proxy = MustListenTo(io, echo.endpoint());
  ASSERT_NE(proxy, nullptr);

  Client client(io);
  ASSERT_TRUE(client.ConnectAndWait(io, proxy->port()));
  client.Write("x");
  ASSERT_TRUE(RunUntil(io, [&] { return client.received == "x"; }));
  client.socket.set_option(asio::socket_base::linger(true, 0));  // close() sends RST
  client.Write(Payload(1 << 20));
  client.socket.close();
  ASSERT_TRUE(RunUntil(io, [&] { return proxy->stats().active == 0; }));

  // Still serving.
  Client next(io);
  ASSERT_TRUE(next.ConnectAndWait(io, proxy->port()));
  next.Write("y");
  EXPECT_TRUE(RunUntil(io, [&] { return next.received == "y"; }));
}

TEST(PortProxyTest, SurvivesBackendReset) {
  asio::io_context io;
  TestServer resetter(io, [](std::shared_ptr<tcp::socket> socket) {
    socket->set_option(asio::socket_base::linger(true, 0));
    socket->close();
  });
  auto proxy = MustListenTo(io, resetter.endpoint());
  ASSERT_NE(proxy, nullptr);

  Client client(io);
  ASSERT_TRUE(client.ConnectAndWait(io, proxy->port()));
  client.Write(Payload(1 << 20));
  ASSERT_TRUE(RunUntil(io, [&] { return client.closed; }));
  ASSERT_TRUE(RunUntil(io, [&] { return proxy->stats().active == 0; }));
}

TEST(PortProxyTest, CloseWithActiveConnectionsReleasesEveryFd) {
  asio::io_context io;
  TestServer echo(io, ServeEcho);
  const size_t baseline = OpenFdCount();

  auto proxy = MustListenTo(io, echo.endpoint());
  ASSERT_NE(proxy, nullptr);
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<Client>(io));
    clients.back()->Connect(proxy->port());
  }
  ASSERT_TRUE(RunUntil(
      io, [&] { return std::ranges::all_of(clients, [](auto& c) { return c->connected; }); }));
  for (auto& c : clients) {
    c->Write("ping");
  }
  ASSERT_TRUE(RunUntil(io, [&] {
    return std::ranges::all_of(clients, [](auto& c) { return c->received == "ping"; });
  }));
  // One held connection too (no backend).
  proxy->SetBackend(std::nullopt);
  clients.push_back(std::make_unique<Client>(io));
  clients.back()->Connect(proxy->port());
  ASSERT_TRUE(RunUntil(io, [&] { return proxy->stats().active == 4; }));

  proxy->Close();
  EXPECT_EQ(proxy->stats().active, 0u);
  proxy.reset();  // queued completions must not touch it (ASan would catch it)
  ASSERT_TRUE(RunUntil(
      io, [&] { return std::ranges::all_of(clients, [](auto& c) { return c->closed; }); }));
  clients.clear();
  EXPECT_TRUE(RunUntil(io, [&] { return OpenFdCount() == baseline; }))
      << OpenFdCount() << " fds open, " << baseline << " before";
}

TEST(PortProxyTest, DestroyWithoutRunningTheLoopAgain) {
  // Completions still queued when both the proxy and the loop go away are destroyed, not run.
  auto io = std::make_unique<asio::io_context>();
  TestServer echo(*io, ServeEcho);
  auto proxy = MustListen(*io, {.hold_timeout = 10s});
  ASSERT_NE(proxy, nullptr);
  Client client(*io);
  client.Connect(proxy->port());
  ASSERT_TRUE(RunUntil(*io, [&] { return proxy->stats().active == 1; }));
  proxy.reset();
}

// Guests with their own network namespace: the backend is 127.0.0.1 *inside* it.
class PortProxyNetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = testing::NetnsSkipReason(); !why.empty()) {
      GTEST_SKIP() << why;
    }
    Result<std::unique_ptr<testing::TestNetns>> netns = testing::TestNetns::Create();
    ASSERT_TRUE(netns.has_value()) << netns.error().ToString();
    netns_ = std::move(*netns);
    // Free on the host too, so a connect on the host's loopback is refused.
    Result<uint16_t> port = PickFreeLoopbackPort();
    ASSERT_TRUE(port.has_value()) << port.error().ToString();
    port_ = *port;
  }

  void ServeInside(TestServer::Serve serve) {
    Result<int> fd = netns_->Listen(port_);
    ASSERT_TRUE(fd.has_value()) << fd.error().ToString();
    server_ = std::make_unique<TestServer>(io_, std::move(serve), *fd);
  }

  Backend Inside() const { return Backend{tcp::endpoint(kLoopback, port_), netns_->path()}; }

  asio::io_context io_;
  std::unique_ptr<testing::TestNetns> netns_;
  uint16_t port_ = 0;
  std::unique_ptr<TestServer> server_;  // declared after netns_: closes first
};

TEST_F(PortProxyNetnsTest, ForwardsToTheServerInsideTheNamespace) {
  ServeInside(ServeEcho);
  auto proxy = MustListen(io_);
  ASSERT_NE(proxy, nullptr);
  proxy->SetBackend(Inside());

  const std::string payload = Payload(256 * 1024);
  Client client(io_);
  client.Connect(proxy->port());
  ASSERT_TRUE(RunUntil(io_, [&] { return client.connected; }));
  client.Write(payload);
  ASSERT_TRUE(RunUntil(io_, [&] { return client.received.size() >= payload.size(); }))
      << "received " << client.received.size();
  EXPECT_TRUE(client.received == payload);
  client.ShutdownSend();
  ASSERT_TRUE(RunUntil(io_, [&] { return client.closed; }));
  EXPECT_EQ(client.read_error, asio::error::eof);
  ASSERT_TRUE(RunUntil(io_, [&] { return proxy->stats().active == 0; }));
  EXPECT_EQ(proxy->stats().failed, 0u);
  EXPECT_EQ(proxy->stats().bytes_in, payload.size());
  EXPECT_EQ(server_->connections(), 1);
}

TEST_F(PortProxyNetnsTest, SameEndpointWithoutTheNamespaceIsTheHostsLoopback) {
  ServeInside(ServeEcho);
  auto proxy = MustListen(io_, {.connect_attempts = 2, .retry_backoff = 10ms});
  ASSERT_NE(proxy, nullptr);
  proxy->SetBackend(tcp::endpoint(kLoopback, port_));

  Client client(io_);
  client.Connect(proxy->port());
  ASSERT_TRUE(RunUntil(io_, [&] { return client.closed; }));
  EXPECT_EQ(proxy->stats().failed, 1u);
  EXPECT_EQ(server_->connections(), 0);
}

TEST_F(PortProxyNetnsTest, HeldConnectionFollowsTheBackendIntoTheNamespace) {
  ServeInside(ReplyAfterEof("inside"));
  auto proxy = MustListen(io_);
  ASSERT_NE(proxy, nullptr);

  Client client(io_);
  client.Connect(proxy->port());
  ASSERT_TRUE(RunUntil(io_, [&] { return client.connected; }));
  client.Write("abc");
  RunFor(io_, 50ms);
  EXPECT_EQ(server_->connections(), 0);

  proxy->SetBackend(Inside());
  ASSERT_TRUE(RunUntil(io_, [&] { return client.written == 3; }));
  client.ShutdownSend();
  ASSERT_TRUE(RunUntil(io_, [&] { return client.closed; }));
  EXPECT_EQ(client.received, "inside got 3 bytes");
}

TEST_F(PortProxyNetnsTest, RetriesUntilThePortOpensInsideTheNamespace) {
  auto proxy = MustListen(io_, {.connect_attempts = 20, .retry_backoff = 10ms});
  ASSERT_NE(proxy, nullptr);
  proxy->SetBackend(Inside());

  Client client(io_);
  client.Connect(proxy->port());
  ASSERT_TRUE(RunUntil(io_, [&] { return client.connected; }));
  client.Write("late");
  RunFor(io_, 50ms);  // at least one refused attempt
  EXPECT_FALSE(client.closed);

  ServeInside(ServeEcho);
  ASSERT_TRUE(RunUntil(io_, [&] { return client.received == "late"; }));
  EXPECT_EQ(proxy->stats().failed, 0u);
}

TEST_F(PortProxyNetnsTest, MissingNamespaceFileClosesTheClient) {
  auto proxy = MustListen(io_, {.connect_attempts = 2, .retry_backoff = 10ms});
  ASSERT_NE(proxy, nullptr);
  proxy->SetBackend(Backend{tcp::endpoint(kLoopback, port_), testing::MissingNetnsPath()});

  Client client(io_);
  client.Connect(proxy->port());
  ASSERT_TRUE(RunUntil(io_, [&] { return client.closed; }));
  EXPECT_EQ(client.received, "");
  ProxyStats stats = proxy->stats();
  EXPECT_EQ(stats.failed, 1u);
  EXPECT_EQ(stats.active, 0u);
}

TEST_F(PortProxyNetnsTest, CloseReleasesEveryFd) {
  ServeInside(ServeEcho);
  {
    // Starts the netns helper thread (it keeps one fd for good) before the baseline.
    auto warm = MustListen(io_);
    ASSERT_NE(warm, nullptr);
    warm->SetBackend(Inside());
    Client client(io_);
    client.Connect(warm->port());
    ASSERT_TRUE(RunUntil(io_, [&] { return client.connected; }));
    client.Write("w");
    ASSERT_TRUE(RunUntil(io_, [&] { return client.received == "w"; }));
    warm->Close();
    ASSERT_TRUE(RunUntil(io_, [&] { return client.closed; }));  // no read pending on `client`
  }
  RunFor(io_, 20ms);
  const size_t baseline = OpenFdCount();

  auto proxy = MustListen(io_);
  ASSERT_NE(proxy, nullptr);
  proxy->SetBackend(Inside());
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<Client>(io_));
    clients.back()->Connect(proxy->port());
  }
  ASSERT_TRUE(RunUntil(
      io_, [&] { return std::ranges::all_of(clients, [](auto& c) { return c->connected; }); }));
  for (auto& c : clients) {
    c->Write("ping");
  }
  ASSERT_TRUE(RunUntil(io_, [&] {
    return std::ranges::all_of(clients, [](auto& c) { return c->received == "ping"; });
  }));
  // One more, perhaps still connecting when the proxy closes.
  clients.push_back(std::make_unique<Client>(io_));
  clients.back()->Connect(proxy->port());
  ASSERT_TRUE(RunUntil(io_, [&] { return proxy->stats().accepted == 4; }));

  proxy->Close();
  EXPECT_EQ(proxy->stats().active, 0u);
  proxy.reset();
  ASSERT_TRUE(RunUntil(
      io_, [&] { return std::ranges::all_of(clients, [](auto& c) { return c->closed; }); }));
  clients.clear();
  EXPECT_TRUE(RunUntil(io_, [&] { return OpenFdCount() == baseline; }))
      << OpenFdCount() << " fds open, " << baseline << " before";
}

}  // namespace
}  // namespace phoenix::agent::net
