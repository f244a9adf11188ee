#include "tools/loadgen/load_runner.h"

#include <iostream>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace phoenix::loadgen {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using asio::ip::tcp;
using boost::system::error_code;
using namespace std::chrono_literals;

// A tiny HTTP/1.1 keep-alive server on 127.0.0.1: "/" answers 200, "/fail" 503, "/close" 200 with
// Connection: close, "/slow" after 300 ms, "/eof" a CGI-style HTTP/1.1 reply without a length whose
// end is the server closing the connection (busybox httpd's CGI replies look like this).
class TinyHttpServer {
 public:
  explicit TinyHttpServer(asio::io_context& io) : acceptor_(io, tcp::endpoint(tcp::v4(), 0)) {
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    Accept();
  }
  ~TinyHttpServer() {
    error_code ignored;
    acceptor_.close(ignored);
  }
  Target target(std::string path = "/") const {
    return Target{"127.0.0.1", acceptor_.local_endpoint().port(), std::move(path)};
  }
  int requests() const { return *requests_; }
  int connections() const { return *connections_; }

 private:
  struct Conn : std::enable_shared_from_this<Conn> {
    Conn(tcp::socket s, std::shared_ptr<int> requests)
        : socket(std::move(s)), timer(socket.get_executor()), requests(std::move(requests)) {}
    void Next() {
      req = {};
      http::async_read(
          socket, buffer, req, [self = shared_from_this()](const error_code& ec, size_t) {
            if (ec) return;
            ++*self->requests;
            const std::string target(self->req.target());
            auto delay = target == "/slow" ? 300ms : 0ms;
            self->timer.expires_after(delay);
            self->timer.async_wait([self, target](const error_code&) { self->Reply(target); });
          });
    }
    void Reply(const std::string& target) {
      if (target == "/eof") {
        auto text =
            std::make_shared<std::string>("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nok");
        asio::async_write(socket, asio::buffer(*text),
                          [self = shared_from_this(), text](const error_code&, size_t) {
                            error_code ignored;
                            self->socket.shutdown(tcp::socket::shutdown_send, ignored);
                          });
        return;
      }
      res = {};
      res.version(11);
      res.result(target == "/fail" ? http::status::service_unavailable : http::status::ok);
      res.body() = "ok";
      res.keep_alive(target != "/close");
      res.prepare_payload();
      http::async_write(socket, res, [self = shared_from_this()](const error_code& ec, size_t) {
        if (ec || !self->res.keep_alive()) return;
        self->Next();
      });
    }
    tcp::socket socket;
    asio::steady_timer timer;
    std::shared_ptr<int> requests;
    boost::beast::flat_buffer buffer;
    http::request<http::string_body> req;
    http::response<http::string_body> res;
  };

  void Accept() {
    acceptor_.async_accept([this](const error_code& ec, tcp::socket socket) {
      if (ec) return;
      ++*connections_;
      std::make_shared<Conn>(std::move(socket), requests_)->Next();
      Accept();
    });
  }

  tcp::acceptor acceptor_;
  std::shared_ptr<int> requests_ = std::make_shared<int>(0);
  std::shared_ptr<int> connections_ = std::make_shared<int>(0);
};

RunOptions Options(const std::string& profile, uint64_t max_requests = 10000) {
  RunOptions o;
  o.profile = *Profile::Parse(profile);
  o.duration = std::chrono::milliseconds(static_cast<int64_t>(o.profile.seconds() * 1000));
  o.max_requests = max_requests;
  o.request_timeout = 1s;
  return o;
}

// Runs the load to its end (bounded: the runner is) and returns its report.
Report RunToEnd(asio::io_context& io, LoadRunner& runner) {
  std::optional<Report> report;
  runner.Start([&](const Report& r) { report = r; });
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!report && std::chrono::steady_clock::now() < deadline) io.run_for(10ms);
  EXPECT_TRUE(report.has_value()) << "the run did not end";
  return report.value_or(Report{});
}

TEST(LoadRunnerTest, SendsTheProfilesRequestsAndMeasuresThem) {
  asio::io_context io;
  TinyHttpServer server(io);
  std::vector<SecondReport> seconds;
  LoadRunner runner(io, Options("step:100@1,200@1"),
                    [&](const SecondReport& s) { seconds.push_back(s); });
  runner.SetTargets({server.target()});
  Report r = RunToEnd(io, runner);
  EXPECT_EQ(r.totals.sent, 300u);
  EXPECT_EQ(r.totals.ok, 300u);
  EXPECT_EQ(r.totals.error_count(), 0u);
  EXPECT_EQ(server.requests(), 300);
  EXPECT_LT(server.connections(), 300);  // keep-alive reused connections
  EXPECT_FALSE(r.hit_max_requests);
  EXPECT_NEAR(r.achieved_rate, 150.0, 30.0);
  ASSERT_TRUE(r.p50_ms && r.p90_ms && r.p99_ms && r.max_ms);
  EXPECT_LE(*r.p50_ms, *r.p90_ms);
  EXPECT_LE(*r.p99_ms, *r.max_ms);
  ASSERT_GE(seconds.size(), 2u);
  EXPECT_EQ(seconds[0].second, 1);
  EXPECT_NEAR(static_cast<double>(seconds[0].sent), 100.0, 10.0);
  EXPECT_DOUBLE_EQ(seconds[0].wanted_rate, 100);
  EXPECT_NEAR(static_cast<double>(seconds[1].sent), 200.0, 20.0);
}

TEST(LoadRunnerTest, CountsEachPhaseApart) {
  asio::io_context io;
  TinyHttpServer server(io);
  LoadRunner runner(io, Options("step:40@0.5,0@0.5,20@0.5"), nullptr);
  runner.SetTargets({server.target("/"), server.target("/fail")});
  Report r = RunToEnd(io, runner);
  ASSERT_EQ(r.phases.size(), 3u);
  EXPECT_EQ(r.phases[0].sent, 20u);
  EXPECT_EQ(r.phases[1].sent, 0u);
  EXPECT_EQ(r.phases[2].sent, 10u);
  EXPECT_EQ(r.phases[0].ok + r.phases[0].error_count(), 20u);
  EXPECT_EQ(r.phases[2].ok + r.phases[2].error_count(), 10u);
  // Round-robin over "/" and "/fail": half of each phase failed with 503.
  EXPECT_EQ(r.phases[0].errors["http 503"], 10u);
  EXPECT_EQ(r.phases[2].errors["http 503"], 5u);
  EXPECT_EQ(r.phases[0].error_count() + r.phases[2].error_count(), r.totals.error_count());
}

TEST(LoadRunnerTest, StopsAtMaxRequests) {
  asio::io_context io;
  TinyHttpServer server(io);
  LoadRunner runner(io, Options("step:1000@2", 50), nullptr);
  runner.SetTargets({server.target()});
  Report r = RunToEnd(io, runner);
  EXPECT_EQ(r.totals.sent, 50u);
  EXPECT_EQ(r.totals.ok, 50u);
  EXPECT_TRUE(r.hit_max_requests);
  EXPECT_LT(r.seconds, 1.0);
}

TEST(LoadRunnerTest, CountsErrorsByKind) {
  asio::io_context io;
  TinyHttpServer server(io);
  // A port nobody listens on: take one from a socket we close again.
  uint16_t closed_port = 0;
  {
    tcp::acceptor a(io, tcp::endpoint(tcp::v4(), 0));
    closed_port = a.local_endpoint().port();
  }
  LoadRunner runner(io, Options("step:50@1"), nullptr);
  runner.SetTargets(
      {server.target("/fail"), Target{"127.0.0.1", closed_port, "/"}, server.target("/slow")});
  Report r = RunToEnd(io, runner);
  EXPECT_EQ(r.totals.sent, 50u);
  EXPECT_EQ(r.totals.errors["http 503"], 17u);
  EXPECT_EQ(r.totals.errors["connect refused"], 17u);
  EXPECT_EQ(r.totals.ok, 16u);  // /slow answers in 300 ms, within the 1 s timeout
  EXPECT_GE(*r.p50_ms, 250.0);
}

TEST(LoadRunnerTest, TimeoutAndNoTarget) {
  asio::io_context io;
  TinyHttpServer server(io);
  RunOptions o = Options("step:10@1");
  o.request_timeout = 100ms;
  LoadRunner runner(io, o, nullptr);
  runner.SetTargets({server.target("/slow")});
  Report r = RunToEnd(io, runner);
  EXPECT_EQ(r.totals.errors["timeout"], 10u);

  LoadRunner none(io, Options("step:10@1"), nullptr);
  Report n = RunToEnd(io, none);
  EXPECT_EQ(n.totals.errors["no target (service has no healthy endpoint)"], 10u);
}

TEST(LoadRunnerTest, RepliesEndedByEofAreNotReused) {
  asio::io_context io;
  TinyHttpServer server(io);
  LoadRunner runner(io, Options("step:50@1"), nullptr);
  runner.SetTargets({server.target("/eof")});
  Report r = RunToEnd(io, runner);
  EXPECT_EQ(r.totals.ok, 50u);
  EXPECT_EQ(r.totals.error_count(), 0u);
  EXPECT_EQ(server.connections(), 50);
  EXPECT_EQ(r.totals.stale_retries, 0u);  // never sent on a connection the reply had ended
}

TEST(LoadRunnerTest, ConnectionCloseRepliesAreFineAndNewTargetsTakeOver) {
  asio::io_context io;
  TinyHttpServer a(io), b(io);
  LoadRunner runner(io, Options("step:100@2"), nullptr);
  runner.SetTargets({a.target("/close")});
  asio::steady_timer swap(io);
  swap.expires_after(1s);
  int a_at_swap = -1;
  swap.async_wait([&](const error_code&) {
    runner.SetTargets({b.target()});
    a_at_swap = a.requests();
  });
  Report r = RunToEnd(io, runner);
  EXPECT_EQ(r.totals.error_count(), 0u);
  EXPECT_EQ(r.totals.ok, 200u);
  EXPECT_EQ(a.connections(), a.requests());  // every reply closed its connection
  ASSERT_GT(a_at_swap, 50);
  EXPECT_LE(a.requests(), a_at_swap + 2);  // at most those already in flight
  EXPECT_GT(b.requests(), 80);
}

}  // namespace
}  // namespace phoenix::loadgen
