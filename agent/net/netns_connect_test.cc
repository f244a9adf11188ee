#include "agent/net/netns_connect.h"

#include <unistd.h>

#include <array>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/read.hpp>
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
using testing::TestNetns;
using namespace std::chrono_literals;

const asio::ip::address kLoopback = asio::ip::make_address_v4("127.0.0.1");

std::string ThreadNetns() {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/thread-self/ns/net", ec).string();
}

// Runs one AsyncConnect to completion; fails the test unless `done` ran exactly once, later.
Result<tcp::socket> Connect(asio::io_context& io, const Backend& backend) {
  std::vector<Result<tcp::socket>> results;
  AsyncConnect(io, backend, [&](Result<tcp::socket> r) { results.push_back(std::move(r)); });
  EXPECT_TRUE(results.empty()) << "done ran inside AsyncConnect";
  EXPECT_TRUE(RunUntil(io, [&] { return !results.empty(); }));
  RunFor(io, 10ms);  // a second call would show up here
  EXPECT_EQ(results.size(), 1u);
  if (results.empty()) {
    return std::unexpected(Error{ErrorCode::kInternal, "<no result>"});
  }
  return std::move(results.front());
}

// Accepts connections on a listening fd (made inside a namespace, or on the host) and answers
// each with `greeting`, then closes it.
class Greeter {
 public:
  Greeter(asio::io_context& io, int listening_fd, std::string greeting)
      : state_(std::make_shared<State>(io, std::move(greeting))) {
    state_->acceptor.assign(tcp::v4(), listening_fd);
    Accept(state_);
  }
  ~Greeter() {
    error_code ignored;
    state_->acceptor.close(ignored);
  }
  int connections() const { return state_->connections; }

 private:
  struct State {
    State(asio::io_context& io, std::string greeting) : acceptor(io), greeting(greeting) {}
    tcp::acceptor acceptor;
    std::string greeting;
    int connections = 0;
  };
  static void Accept(std::shared_ptr<State> state) {
    state->acceptor.async_accept([state](const error_code& ec, tcp::socket s) {
      if (ec) {
        return;
      }
      ++state->connections;
      auto socket = std::make_shared<tcp::socket>(std::move(s));
      asio::async_write(*socket, asio::buffer(state->greeting),
                        [socket](const error_code&, size_t) {});
      Accept(state);
    });
  }
  std::shared_ptr<State> state_;
};

// Reads until EOF on a connected socket.
std::string ReadAll(asio::io_context& io, tcp::socket& socket) {
  std::string data;
  bool done = false;
  asio::async_read(socket, asio::dynamic_buffer(data),
                   [&](const error_code&, size_t) { done = true; });
  EXPECT_TRUE(RunUntil(io, [&] { return done; }));
  return data;
}

class NetnsConnectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = testing::NetnsSkipReason(); !why.empty()) {
      GTEST_SKIP() << why;
    }
    Result<std::unique_ptr<TestNetns>> netns = TestNetns::Create();
    ASSERT_TRUE(netns.has_value()) << netns.error().ToString();
    netns_ = std::move(*netns);
    // A port that is free on the host: the server inside the namespace takes the same number,
    // so reaching it proves the connect happened inside.
    Result<uint16_t> port = PickFreeLoopbackPort();
    ASSERT_TRUE(port.has_value()) << port.error().ToString();
    port_ = *port;
  }

  // Starts a greeter inside the namespace on port_.
  void ServeInside(std::string greeting = "hello from inside") {
    Result<int> fd = netns_->Listen(port_);
    ASSERT_TRUE(fd.has_value()) << fd.error().ToString();
    greeter_.emplace(io_, *fd, std::move(greeting));
  }

  Backend Inside() const { return Backend{tcp::endpoint(kLoopback, port_), netns_->path()}; }

  asio::io_context io_;
  std::unique_ptr<TestNetns> netns_;
  uint16_t port_ = 0;
  std::optional<Greeter> greeter_;  // destroyed before netns_
};

TEST(NetnsConnectHostTest, ConnectsAndReportsRefusedWithoutNetns) {
  asio::io_context io;
  tcp::acceptor listener(io, tcp::endpoint(kLoopback, 0));
  const uint16_t port = listener.local_endpoint().port();
  Greeter greeter(io, listener.release(), "hi");

  Result<tcp::socket> socket = Connect(io, Backend{tcp::endpoint(kLoopback, port), {}});
  ASSERT_TRUE(socket.has_value()) << socket.error().ToString();
  EXPECT_EQ(socket->remote_endpoint().port(), port);
  EXPECT_EQ(ReadAll(io, *socket), "hi");

  Result<uint16_t> dead = PickFreeLoopbackPort();
  ASSERT_TRUE(dead.has_value()) << dead.error().ToString();
  Result<tcp::socket> refused = Connect(io, Backend{tcp::endpoint(kLoopback, *dead), {}});
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(refused.error().message,
            "connect 127.0.0.1:" + std::to_string(*dead) + ": connection refused");
}

TEST(NetnsConnectHostTest, RelativeNamespacePathIsRejected) {
  asio::io_context io;
  Result<tcp::socket> socket = Connect(io, Backend{tcp::endpoint(kLoopback, 80), "netns/x"});
  ASSERT_FALSE(socket.has_value());
  EXPECT_EQ(socket.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(socket.error().field, "netns");
  EXPECT_EQ(socket.error().message, "namespace file \"netns/x\" is not an absolute path");
}

TEST_F(NetnsConnectTest, ConnectsInsideTheNamespaceNotOnTheHost) {
  ServeInside();
  const std::string loop_netns = ThreadNetns();

  Result<tcp::socket> socket = Connect(io_, Inside());
  ASSERT_TRUE(socket.has_value()) << socket.error().ToString();
  EXPECT_EQ(ReadAll(io_, *socket), "hello from inside");
  EXPECT_EQ(greeter_->connections(), 1);

  // The same address without the namespace is the host's loopback, where nothing listens.
  Result<tcp::socket> host = Connect(io_, Backend{tcp::endpoint(kLoopback, port_), {}});
  ASSERT_FALSE(host.has_value());
  EXPECT_EQ(host.error().message,
            "connect 127.0.0.1:" + std::to_string(port_) + ": connection refused");
  EXPECT_EQ(greeter_->connections(), 1);

  EXPECT_EQ(ThreadNetns(), loop_netns) << "the loop thread must never change namespace";
}

TEST_F(NetnsConnectTest, RefusedInsideTheNamespaceNamesIt) {
  Result<tcp::socket> socket = Connect(io_, Inside());
  ASSERT_FALSE(socket.has_value());
  EXPECT_EQ(socket.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(socket.error().message, "connect 127.0.0.1:" + std::to_string(port_) + " in netns " +
                                        netns_->path().string() + ": connection refused");
}

TEST_F(NetnsConnectTest, MissingNamespaceFileIsNotFound) {
  const std::filesystem::path missing = testing::MissingNetnsPath();
  Result<tcp::socket> socket = Connect(io_, Backend{tcp::endpoint(kLoopback, port_), missing});
  ASSERT_FALSE(socket.has_value());
  EXPECT_EQ(socket.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(socket.error().message, "no such namespace file " + missing.string());
}

TEST_F(NetnsConnectTest, FileThatIsNotANamespaceIsInvalidArgument) {
  const std::filesystem::path plain = "/dev/null";
  Result<tcp::socket> socket = Connect(io_, Backend{tcp::endpoint(kLoopback, port_), plain});
  ASSERT_FALSE(socket.has_value());
  EXPECT_EQ(socket.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(socket.error().message,
            "enter netns " + plain.string() + ": Invalid argument (not a network namespace file)");
}

TEST_F(NetnsConnectTest, ManyConcurrentConnects) {
  ServeInside("x");
  constexpr int kCount = 32;
  std::vector<std::optional<Result<tcp::socket>>> results(kCount);
  for (int i = 0; i < kCount; ++i) {
    AsyncConnect(io_, Inside(),
                 [&results, i](Result<tcp::socket> r) { results[i] = std::move(r); });
  }
  ASSERT_TRUE(RunUntil(io_, [&] {
    return std::ranges::all_of(results, [](const auto& r) { return r.has_value(); });
  }));
  for (auto& result : results) {
    EXPECT_TRUE(result->has_value()) << result->error().ToString();
  }
  ASSERT_TRUE(RunUntil(io_, [&] { return greeter_->connections() == kCount; }));
}

TEST_F(NetnsConnectTest, CancelBeforeTheHelperAnswers) {
  ServeInside();
  ASSERT_TRUE(Connect(io_, Inside()).has_value());  // the helper thread and its fd exist now
  const size_t baseline = OpenFdCount();

  int calls = 0;
  ConnectCanceller inside = AsyncConnect(io_, Inside(), [&](Result<tcp::socket>) { ++calls; });
  inside.Cancel();
  inside.Cancel();
  ConnectCanceller host = AsyncConnect(io_, Backend{tcp::endpoint(kLoopback, port_), {}},
                                       [&](Result<tcp::socket>) { ++calls; });
  host.Cancel();
  RunFor(io_, 100ms);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(greeter_->connections(), 1);  // the first Connect only
  EXPECT_TRUE(RunUntil(io_, [&] { return OpenFdCount() == baseline; }))
      << OpenFdCount() << " fds open, " << baseline << " before";
}

TEST_F(NetnsConnectTest, CancelWhileConnectingInsideTheNamespace) {
  Result<int> listener = netns_->Listen(port_, /*backlog=*/0);  // never accepts
  ASSERT_TRUE(listener.has_value()) << listener.error().ToString();
  tcp::acceptor keep(io_, tcp::v4(), *listener);

  // Fill the accept queue until a connect stays in flight.
  std::vector<tcp::socket> queued;
  int calls = 0;
  ConnectCanceller hanging;
  size_t baseline = 0;
  bool found = false;
  for (int i = 0; i < 8 && !found; ++i) {
    baseline = OpenFdCount();
    const int before = calls;
    ConnectCanceller c = AsyncConnect(io_, Inside(), [&](Result<tcp::socket> r) {
      ++calls;
      if (r) {
        queued.push_back(std::move(*r));
      }
    });
    if (!RunUntil(
            io_, [&] { return calls > before; }, 300ms)) {
      hanging = c;
      found = true;
    }
  }
  ASSERT_TRUE(found) << "every connect completed; the accept queue never filled";
  const int completed = calls;
  hanging.Cancel();
  RunFor(io_, 100ms);
  EXPECT_EQ(calls, completed);
  EXPECT_TRUE(RunUntil(io_, [&] { return OpenFdCount() == baseline; }))
      << OpenFdCount() << " fds open, " << baseline << " before";
}

TEST_F(NetnsConnectTest, NoFdLeaks) {
  ServeInside();
  ASSERT_TRUE(Connect(io_, Inside()).has_value());  // the helper thread and its fd exist now
  const size_t baseline = OpenFdCount();
  const Backend missing{tcp::endpoint(kLoopback, port_), testing::MissingNetnsPath()};
  const Backend refused{tcp::endpoint(kLoopback, static_cast<uint16_t>(port_ == 1 ? 2 : port_ - 1)),
                        netns_->path()};
  for (int i = 0; i < 20; ++i) {
    Result<tcp::socket> ok = Connect(io_, Inside());
    ASSERT_TRUE(ok.has_value()) << ok.error().ToString();
    EXPECT_FALSE(Connect(io_, missing).has_value());
    EXPECT_FALSE(Connect(io_, refused).has_value());
  }
  EXPECT_TRUE(RunUntil(io_, [&] { return OpenFdCount() == baseline; }))
      << OpenFdCount() << " fds open, " << baseline << " before";
}

TEST_F(NetnsConnectTest, AbandonedOperationsAreDestroyedWithTheLoop) {
  ServeInside();
  auto io = std::make_unique<asio::io_context>();
  int calls = 0;
  for (int i = 0; i < 4; ++i) {
    AsyncConnect(*io, Inside(), [&](Result<tcp::socket>) { ++calls; });
  }
  io.reset();  // pending completions are destroyed, not run; the helper's replies go nowhere
  EXPECT_EQ(calls, 0);
  // The helper still serves others afterwards.
  EXPECT_TRUE(Connect(io_, Inside()).has_value());
}

}  // namespace
}  // namespace phoenix::agent::net
