#include "agent/health/health_monitor.h"

#include <functional>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/executor_work_guard.hpp>

#include "agent/health/testing/test_http_server.h"
#include "agent/net/port_allocator.h"
#include "agent/net/testing/test_netns.h"
#include "agent/testing/asio_run.h"

namespace phoenix::agent::health {
namespace {

using ::phoenix::agent::testing::RunFor;
using ::phoenix::agent::testing::RunUntil;

namespace asio = boost::asio;
using namespace std::chrono_literals;
using testing::HttpResponse;
using testing::TestHttpServer;

constexpr auto kInterval = 20ms;

// A verdict and how many requests the server had seen when it was reported.
struct Seen {
  bool healthy;
  std::string detail;
  int requests;
};

class HealthMonitorTest : public ::testing::Test {
 protected:
  ProbeTarget Target(ProbeTarget::Kind kind = ProbeTarget::Kind::kHttp) {
    return ProbeTarget{.kind = kind, .port = server_.port(), .timeout = 1s};
  }
  std::function<void(Verdict)> Record() {
    return [this](Verdict v) { seen_.push_back({v.healthy, v.detail, server_.requests()}); };
  }

  asio::io_context io_;
  TestHttpServer server_{io_};
  HealthMonitor monitor_{io_};
  std::vector<Seen> seen_;
};

TEST_F(HealthMonitorTest, FirstSuccessIsReportedOnce) {
  server_.Respond(HttpResponse(200));
  ASSERT_TRUE(monitor_.Start(Target(), kInterval, 3, 0ms, Record()).has_value());
  ASSERT_TRUE(RunUntil(io_, [&] { return server_.requests() >= 5; }));
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_TRUE(seen_[0].healthy);
  EXPECT_EQ(seen_[0].detail, "HTTP 200");
  EXPECT_EQ(seen_[0].requests, 1);
}

TEST_F(HealthMonitorTest, UnhealthyAfterThresholdConsecutiveFailures) {
  server_.Respond(HttpResponse(503));
  ASSERT_TRUE(monitor_.Start(Target(), kInterval, 3, 0ms, Record()).has_value());
  ASSERT_TRUE(RunUntil(io_, [&] { return server_.requests() >= 6; }));
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_FALSE(seen_[0].healthy);
  EXPECT_EQ(seen_[0].detail, "HTTP 503 (3 consecutive failures)");
  EXPECT_EQ(seen_[0].requests, 3);
}

TEST_F(HealthMonitorTest, SuccessResetsTheFailureCount) {
  server_.Script({HttpResponse(503), HttpResponse(503), HttpResponse(200), HttpResponse(503),
                  HttpResponse(503), HttpResponse(200), HttpResponse(503), HttpResponse(503),
                  HttpResponse(503)});
  ASSERT_TRUE(monitor_.Start(Target(), kInterval, 3, 0ms, Record()).has_value());
  ASSERT_TRUE(RunUntil(io_, [&] { return seen_.size() == 2; }));
  EXPECT_TRUE(seen_[0].healthy);
  EXPECT_EQ(seen_[0].requests, 3);
  EXPECT_FALSE(seen_[1].healthy);
  EXPECT_EQ(seen_[1].requests, 9);
}

TEST_F(HealthMonitorTest, FailuresDuringStartPeriodDoNotCount) {
  server_.Respond(HttpResponse(503));
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(monitor_.Start(Target(), kInterval, 2, 200ms, Record()).has_value());
  ASSERT_TRUE(RunUntil(io_, [&] { return !seen_.empty(); }));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 200ms);
  EXPECT_FALSE(seen_[0].healthy);
  EXPECT_EQ(seen_[0].detail, "HTTP 503 (2 consecutive failures)");
  EXPECT_GT(seen_[0].requests, 3);  // the start period's failures were ignored
}

TEST_F(HealthMonitorTest, SuccessEndsStartPeriod) {
  server_.Script({HttpResponse(200), HttpResponse(503)});
  ASSERT_TRUE(monitor_.Start(Target(), kInterval, 2, 60s, Record()).has_value());
  ASSERT_TRUE(RunUntil(io_, [&] { return seen_.size() == 2; }));
  EXPECT_TRUE(seen_[0].healthy);
  EXPECT_FALSE(seen_[1].healthy);
  EXPECT_EQ(seen_[1].requests, 3);
}

TEST_F(HealthMonitorTest, RecoversAfterUnhealthy) {
  server_.Script({HttpResponse(503), HttpResponse(503), HttpResponse(200)});
  ASSERT_TRUE(monitor_.Start(Target(), kInterval, 2, 0ms, Record()).has_value());
  ASSERT_TRUE(RunUntil(io_, [&] { return seen_.size() == 2; }));
  EXPECT_FALSE(seen_[0].healthy);
  EXPECT_TRUE(seen_[1].healthy);
  EXPECT_EQ(seen_[1].detail, "HTTP 200");
  EXPECT_EQ(seen_[1].requests, 3);
}

TEST_F(HealthMonitorTest, TcpTargetGoesUnhealthyWhenPortCloses) {
  ASSERT_TRUE(
      monitor_.Start(Target(ProbeTarget::Kind::kTcp), kInterval, 2, 0ms, Record()).has_value());
  ASSERT_TRUE(RunUntil(io_, [&] { return seen_.size() == 1; }));
  EXPECT_TRUE(seen_[0].healthy);
  uint16_t port = server_.port();
  server_.Shutdown();
  ASSERT_TRUE(RunUntil(io_, [&] { return seen_.size() == 2; }));
  EXPECT_FALSE(seen_[1].healthy);
  EXPECT_EQ(seen_[1].detail, "connect 127.0.0.1:" + std::to_string(port) +
                                 ": connection refused (2 consecutive failures)");
}

TEST_F(HealthMonitorTest, StopCancelsEverything) {
  server_.Respond(HttpResponse(503));
  ASSERT_TRUE(monitor_.Start(Target(), kInterval, 1, 0ms, Record()).has_value());
  EXPECT_TRUE(monitor_.running());
  monitor_.Stop();  // the first probe is already connecting
  EXPECT_FALSE(monitor_.running());
  RunFor(io_, 150ms);
  EXPECT_TRUE(seen_.empty());
  EXPECT_LE(server_.requests(), 1);
}

TEST_F(HealthMonitorTest, StopCancelsInFlightProbe) {
  server_.SetSilent(true);
  int calls = 0;
  ASSERT_TRUE(monitor_.Start(Target(), kInterval, 1, 0ms, [&](Verdict) { ++calls; }).has_value());
  ASSERT_TRUE(RunUntil(io_, [&] { return server_.requests() == 1; }));
  monitor_.Stop();
  RunFor(io_, 1200ms);  // past the probe timeout
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(server_.requests(), 1);
}

TEST_F(HealthMonitorTest, StopFromCallback) {
  server_.Respond(HttpResponse(503));
  ASSERT_TRUE(monitor_
                  .Start(Target(), kInterval, 1, 0ms,
                         [&](Verdict v) {
                           seen_.push_back({v.healthy, v.detail, server_.requests()});
                           monitor_.Stop();
                         })
                  .has_value());
  ASSERT_TRUE(RunUntil(io_, [&] { return !seen_.empty(); }));
  RunFor(io_, 100ms);
  EXPECT_EQ(seen_.size(), 1u);
  EXPECT_EQ(server_.requests(), 1);
}

TEST_F(HealthMonitorTest, DestroyFromCallback) {
  server_.Respond(HttpResponse(200));
  auto monitor = std::make_unique<HealthMonitor>(io_);
  int calls = 0;
  ASSERT_TRUE(monitor
                  ->Start(Target(), kInterval, 1, 0ms,
                          [&](Verdict) {
                            ++calls;
                            monitor.reset();
                          })
                  .has_value());
  ASSERT_TRUE(RunUntil(io_, [&] { return calls == 1; }));
  RunFor(io_, 100ms);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(server_.requests(), 1);
}

TEST_F(HealthMonitorTest, RestartDropsHistory) {
  server_.Respond(HttpResponse(200));
  ASSERT_TRUE(monitor_.Start(Target(), kInterval, 1, 0ms, Record()).has_value());
  ASSERT_TRUE(RunUntil(io_, [&] { return seen_.size() == 1; }));
  ASSERT_TRUE(monitor_.Start(Target(), kInterval, 1, 0ms, Record()).has_value());
  ASSERT_TRUE(RunUntil(io_, [&] { return seen_.size() == 2; }));
  EXPECT_TRUE(seen_[1].healthy);  // reported again: a new run starts from "unknown"
}

TEST_F(HealthMonitorTest, StartRejectsBadParameters) {
  auto field_of = [&](Result<void> r) { return r.has_value() ? "<ok>" : r.error().field; };
  EXPECT_EQ(field_of(monitor_.Start(Target(), 0ms, 1, 0ms, Record())), "interval");
  EXPECT_EQ(field_of(monitor_.Start(Target(), kInterval, 0, 0ms, Record())), "unhealthy_threshold");
  EXPECT_EQ(field_of(monitor_.Start(Target(), kInterval, 1, -1ms, Record())), "start_period");
  ProbeTarget no_port = Target();
  no_port.port = 0;
  EXPECT_EQ(field_of(monitor_.Start(no_port, kInterval, 1, 0ms, Record())), "target.port");
  EXPECT_EQ(field_of(monitor_.Start(Target(), kInterval, 1, 0ms, nullptr)), "on_change");
  EXPECT_FALSE(monitor_.running());
}

TEST(HealthMonitorNetnsTest, ProbesInsideTheGuestsNamespace) {
  if (std::string why = net::testing::NetnsSkipReason(); !why.empty()) {
    GTEST_SKIP() << why;
  }
  asio::io_context io;
  Result<std::unique_ptr<net::testing::TestNetns>> netns = net::testing::TestNetns::Create();
  ASSERT_TRUE(netns.has_value()) << netns.error().ToString();
  Result<uint16_t> port = net::PickFreeLoopbackPort();  // nothing on the host's loopback
  ASSERT_TRUE(port.has_value()) << port.error().ToString();
  Result<int> fd = (*netns)->Listen(*port);
  ASSERT_TRUE(fd.has_value()) << fd.error().ToString();
  TestHttpServer server(io, *fd);
  server.Respond(HttpResponse(200));

  std::vector<Verdict> seen;
  HealthMonitor monitor(io);
  ProbeTarget target{.kind = ProbeTarget::Kind::kHttp, .port = *port, .timeout = 1s};
  target.netns = (*netns)->path();
  ASSERT_TRUE(
      monitor.Start(target, kInterval, 2, 0ms, [&](Verdict v) { seen.push_back(v); }).has_value());
  ASSERT_TRUE(RunUntil(io, [&] { return seen.size() == 1; }));
  EXPECT_TRUE(seen[0].healthy);
  EXPECT_EQ(seen[0].detail, "HTTP 200");

  server.Shutdown();
  ASSERT_TRUE(RunUntil(io, [&] { return seen.size() == 2; }));
  EXPECT_FALSE(seen[1].healthy);
  EXPECT_EQ(seen[1].detail, "connect 127.0.0.1:" + std::to_string(*port) + " in netns " +
                                (*netns)->path().string() +
                                ": connection refused (2 consecutive failures)");
  monitor.Stop();
}

}  // namespace
}  // namespace phoenix::agent::health
