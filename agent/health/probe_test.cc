#include "agent/health/probe.h"

#include <filesystem>
#include <functional>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/executor_work_guard.hpp>

#include "agent/health/testing/test_http_server.h"
#include "agent/net/port_allocator.h"
#include "agent/net/testing/test_netns.h"
#include "agent/testing/asio_run.h"
#include "agent/testing/fd_count.h"

namespace phoenix::agent::health {
namespace {

using ::phoenix::agent::testing::OpenFdCount;

using ::phoenix::agent::testing::RunFor;
using ::phoenix::agent::testing::RunUntil;

namespace asio = boost::asio;
using namespace std::chrono_literals;
using testing::HttpResponse;
using testing::TestHttpServer;

ProbeTarget Http(uint16_t port, std::chrono::milliseconds timeout = 2s) {
  return ProbeTarget{.kind = ProbeTarget::Kind::kHttp, .port = port, .timeout = timeout};
}
ProbeTarget Tcp(uint16_t port) {
  return ProbeTarget{.kind = ProbeTarget::Kind::kTcp, .port = port, .timeout = 2s};
}

// Runs one probe to completion; fails the test if `done` is not called exactly once.
ProbeResult Probe(asio::io_context& io, const ProbeTarget& target) {
  std::vector<ProbeResult> results;
  RunProbe(io, target, [&](ProbeResult r) { results.push_back(std::move(r)); });
  EXPECT_TRUE(results.empty()) << "done ran inside RunProbe";
  EXPECT_TRUE(RunUntil(io, [&] { return !results.empty(); }));
  RunFor(io, 20ms);  // a second call would show up here
  EXPECT_EQ(results.size(), 1u);
  return results.empty() ? ProbeResult{false, "<no result>", {}} : results.front();
}

// A port with nothing listening: bound by a server that is then shut down.
uint16_t ClosedPort(asio::io_context& io) {
  TestHttpServer server(io);
  return server.port();
}

TEST(ProbeTest, Http200IsHealthy) {
  asio::io_context io;
  TestHttpServer server(io);
  server.Respond(HttpResponse(200));
  ProbeResult result = Probe(io, Http(server.port()));
  EXPECT_TRUE(result.ok);
  EXPECT_EQ(result.detail, "HTTP 200");
  EXPECT_GT(result.latency.count(), 0);

  const std::string& request = server.last_request();
  EXPECT_EQ(request.rfind("GET /health HTTP/1.0\r\n", 0), 0u) << request;
  EXPECT_NE(request.find("\r\nHost: 127.0.0.1:" + std::to_string(server.port()) + "\r\n"),
            std::string::npos)
      << request;
  EXPECT_NE(request.find("\r\nConnection: close\r\n"), std::string::npos) << request;
}

TEST(ProbeTest, RedirectIsHealthyAndPathIsSent) {
  asio::io_context io;
  TestHttpServer server(io);
  server.Respond("HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n");
  ProbeTarget target = Http(server.port());
  target.path = "/ready?full=1";
  ProbeResult result = Probe(io, target);
  EXPECT_TRUE(result.ok);
  EXPECT_EQ(result.detail, "HTTP 302");
  EXPECT_EQ(server.last_request().rfind("GET /ready?full=1 HTTP/1.0\r\n", 0), 0u);
}

TEST(ProbeTest, Http503IsUnhealthy) {
  asio::io_context io;
  TestHttpServer server(io);
  server.Respond(HttpResponse(503));
  ProbeResult result = Probe(io, Http(server.port()));
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.detail, "HTTP 503");
}

TEST(ProbeTest, GarbageResponseIsUnhealthy) {
  asio::io_context io;
  TestHttpServer server(io);
  server.Respond("SSH-2.0-OpenSSH_9.2\r\n");
  ProbeResult result = Probe(io, Http(server.port()));
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.detail, "invalid HTTP response: \"SSH-2.0-OpenSSH_9.2\"");
}

TEST(ProbeTest, EmptyResponseIsUnhealthy) {
  asio::io_context io;
  TestHttpServer server(io);
  server.Respond("");
  ProbeResult result = Probe(io, Http(server.port()));
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.detail, "HTTP: connection closed without a response");
}

TEST(ProbeTest, EndlessStatusLineIsBounded) {
  asio::io_context io;
  TestHttpServer server(io);
  server.Respond(std::string(64 * 1024, 'x'));
  ProbeResult result = Probe(io, Http(server.port()));
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.detail, "invalid HTTP response: no status line in the first 4096 bytes");
}

TEST(ProbeTest, SilentServerTimesOut) {
  asio::io_context io;
  TestHttpServer server(io);
  server.SetSilent(true);
  auto start = std::chrono::steady_clock::now();
  ProbeResult result = Probe(io, Http(server.port(), 100ms));
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.detail, "timed out after 100 ms");
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
  EXPECT_GE(result.latency, 100ms);
  EXPECT_EQ(server.requests(), 1);
}

TEST(ProbeTest, ClosedPortIsRefused) {
  asio::io_context io;
  uint16_t port = ClosedPort(io);
  ProbeResult result = Probe(io, Http(port));
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.detail, "connect 127.0.0.1:" + std::to_string(port) + ": connection refused");
}

TEST(ProbeTest, TcpProbe) {
  asio::io_context io;
  TestHttpServer server(io);
  ProbeResult up = Probe(io, Tcp(server.port()));
  EXPECT_TRUE(up.ok);
  EXPECT_EQ(up.detail, "connected to 127.0.0.1:" + std::to_string(server.port()));

  uint16_t port = ClosedPort(io);
  ProbeResult down = Probe(io, Tcp(port));
  EXPECT_FALSE(down.ok);
  EXPECT_EQ(down.detail, "connect 127.0.0.1:" + std::to_string(port) + ": connection refused");
}

TEST(ProbeTest, InvalidTargetsFailAsynchronously) {
  asio::io_context io;
  ProbeTarget bad_host = Http(80);
  bad_host.host = "example.com";
  EXPECT_EQ(Probe(io, bad_host).detail, "invalid probe host \"example.com\": not an IP address");

  ProbeTarget bad_path = Http(80);
  bad_path.path = "health\r\nX: y";
  ProbeResult result = Probe(io, bad_path);
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.detail.rfind("invalid probe path", 0), 0u) << result.detail;

  ProbeTarget bad_timeout = Http(80, 0ms);
  EXPECT_EQ(Probe(io, bad_timeout).detail, "invalid probe timeout: must be positive");
}

TEST(ProbeTest, CancelSuppressesDone) {
  asio::io_context io;
  TestHttpServer server(io);
  server.SetSilent(true);
  int calls = 0;
  ProbeCanceller canceller =
      RunProbe(io, Http(server.port(), 200ms), [&](ProbeResult) { ++calls; });
  ASSERT_TRUE(RunUntil(io, [&] { return server.requests() == 1; }));
  canceller.Cancel();
  canceller.Cancel();
  RunFor(io, 300ms);  // past the probe's own timeout
  EXPECT_EQ(calls, 0);
}

TEST(ProbeTest, ParseHttpStatusLine) {
  struct Case {
    std::string_view line;
    std::optional<int> status;
  };
  const Case cases[] = {
      {"HTTP/1.1 200 OK", 200}, {"HTTP/1.0 503 Service Unavailable", 503},
      {"HTTP/1.1 204", 204},    {"HTTP/2.0 399 x", 399},
      {"HTTP/1.1 2000 OK", {}}, {"HTTP/1.1 20 OK", {}},
      {"HTTP/1.1 OK 200", {}},  {"HTTP/1.1  200 OK", {}},
      {"http/1.1 200 OK", {}},  {"HTTP/1.1 099 x", {}},
      {"ICY 200 OK", {}},       {"", {}},
      {"HTTP/1.1 2x0 OK", {}},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ParseHttpStatusLine(c.line), c.status) << c.line;
  }
}

// Guests with their own network namespace: the probe connects to 127.0.0.1 *inside* it.
class ProbeNetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = net::testing::NetnsSkipReason(); !why.empty()) {
      GTEST_SKIP() << why;
    }
    Result<std::unique_ptr<net::testing::TestNetns>> netns = net::testing::TestNetns::Create();
    ASSERT_TRUE(netns.has_value()) << netns.error().ToString();
    netns_ = std::move(*netns);
    // Free on the host too: the host's loopback refuses it while the namespace serves it.
    Result<uint16_t> port = net::PickFreeLoopbackPort();
    ASSERT_TRUE(port.has_value()) << port.error().ToString();
    port_ = *port;
  }

  void ServeInside() {
    Result<int> fd = netns_->Listen(port_);
    ASSERT_TRUE(fd.has_value()) << fd.error().ToString();
    server_ = std::make_unique<TestHttpServer>(io_, *fd);
  }

  ProbeTarget Inside(ProbeTarget target) const {
    target.netns = netns_->path();
    return target;
  }

  asio::io_context io_;
  std::unique_ptr<net::testing::TestNetns> netns_;
  uint16_t port_ = 0;
  std::unique_ptr<TestHttpServer> server_;  // declared after netns_: closes first
};

TEST_F(ProbeNetnsTest, HttpProbeInsideTheNamespaceWhileTheHostRefuses) {
  ServeInside();
  server_->Respond(HttpResponse(204));
  ProbeResult inside = Probe(io_, Inside(Http(port_)));
  EXPECT_TRUE(inside.ok) << inside.detail;
  EXPECT_EQ(inside.detail, "HTTP 204");
  EXPECT_EQ(server_->requests(), 1);
  EXPECT_NE(server_->last_request().find("\r\nHost: 127.0.0.1:" + std::to_string(port_) + "\r\n"),
            std::string::npos)
      << server_->last_request();

  ProbeResult host = Probe(io_, Http(port_));
  EXPECT_FALSE(host.ok);
  EXPECT_EQ(host.detail, "connect 127.0.0.1:" + std::to_string(port_) + ": connection refused");
  EXPECT_EQ(server_->requests(), 1);
}

TEST_F(ProbeNetnsTest, TcpProbeInsideTheNamespace) {
  ProbeResult down = Probe(io_, Inside(Tcp(port_)));
  EXPECT_FALSE(down.ok);
  EXPECT_EQ(down.detail, "connect 127.0.0.1:" + std::to_string(port_) + " in netns " +
                             netns_->path().string() + ": connection refused");
  ServeInside();
  ProbeResult up = Probe(io_, Inside(Tcp(port_)));
  EXPECT_TRUE(up.ok) << up.detail;
  EXPECT_EQ(up.detail, "connected to 127.0.0.1:" + std::to_string(port_));
}

TEST_F(ProbeNetnsTest, MissingNamespaceFileFailsClearly) {
  ProbeTarget target = Http(port_);
  target.netns = net::testing::MissingNetnsPath();
  ProbeResult result = Probe(io_, target);
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.detail, "no such namespace file " + target.netns.string());
}

TEST_F(ProbeNetnsTest, SilentServerInsideTimesOutAndCancelLeavesNoFds) {
  ServeInside();
  ASSERT_TRUE(Probe(io_, Inside(Tcp(port_))).ok);  // the netns helper's own fd exists from here on
  server_->SetSilent(true);
  const size_t baseline = OpenFdCount();

  ProbeResult result = Probe(io_, Inside(Http(port_, 100ms)));
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.detail, "timed out after 100 ms");

  int calls = 0;
  ProbeCanceller early = RunProbe(io_, Inside(Http(port_)), [&](ProbeResult) { ++calls; });
  early.Cancel();  // before the netns helper answered
  ProbeCanceller late = RunProbe(io_, Inside(Http(port_)), [&](ProbeResult) { ++calls; });
  ASSERT_TRUE(
      RunUntil(io_, [&] { return server_->requests() == 2; }));  // the timed-out one and `late`
  late.Cancel();                                                 // waiting for the status line
  RunFor(io_, 50ms);
  EXPECT_EQ(calls, 0);
  server_->Shutdown();  // drops the silent connections it held
  EXPECT_TRUE(RunUntil(io_, [&] { return OpenFdCount() == baseline - 1; }))
      << OpenFdCount() << " fds open, " << baseline << " before (the listener is gone)";
}

TEST_F(ProbeNetnsTest, RepeatedProbesLeakNoFds) {
  ServeInside();
  ASSERT_TRUE(Probe(io_, Inside(Http(port_))).ok);
  const size_t baseline = OpenFdCount();
  ProbeTarget missing = Http(port_);
  missing.netns = net::testing::MissingNetnsPath();
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(Probe(io_, Inside(Http(port_))).ok);
    EXPECT_FALSE(Probe(io_, missing).ok);
    EXPECT_FALSE(Probe(io_, Http(port_)).ok);  // the host's loopback
  }
  EXPECT_TRUE(RunUntil(io_, [&] { return OpenFdCount() == baseline; }))
      << OpenFdCount() << " fds open, " << baseline << " before";
}

}  // namespace
}  // namespace phoenix::agent::health
