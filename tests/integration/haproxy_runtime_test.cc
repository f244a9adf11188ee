// HaproxyRuntime against a real HAProxy (Debian 12's 2.6) with the front door's shape: one HTTP
// frontend on loopback, one backend that starts empty, the Runtime API on an admin socket in a
// private directory. Servers come and go without a reload: added (in maintenance), made ready,
// drained, reweighted, put in maintenance and deleted, each step checked by HTTP through the
// frontend and by reading the servers back. Two tiny HTTP servers stand for replicas.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "agent/frontdoor/haproxy_runtime.h"
#include "tests/integration/support/http.h"
#include "tests/integration/support/named_http_server.h"
#include "tests/integration/support/process.h"

namespace phoenix::agent::frontdoor {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

using testing::FreeLoopbackPort;
using NamedServer = testing::NamedHttpServer;

class HaproxyRuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path haproxy = "/usr/sbin/haproxy";
    if (!fs::exists(haproxy)) GTEST_SKIP() << "haproxy is not installed (tools/install-deps)";
    dir_ = fs::absolute(Env("PHOENIX_TEST_TMP").empty() ? "/tmp" : Env("PHOENIX_TEST_TMP")) /
           ("haproxy_runtime_test." + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    fs::permissions(dir_, fs::perms::owner_all);
    socket_ = dir_ / "api.sock";
    frontend_port_ = FreeLoopbackPort();
    std::ofstream(dir_ / "haproxy.cfg") << "global\n"
                                           "  stats socket "
                                        << socket_.string()
                                        << " mode 600 level admin\n"
                                           "defaults\n"
                                           "  mode http\n"
                                           "  timeout connect 1s\n"
                                           "  timeout client 10s\n"
                                           "  timeout server 10s\n"
                                           "  retries 2\n"
                                           "  option redispatch\n"
                                           "  retry-on conn-failure empty-response\n"
                                           "frontend web\n"
                                           "  bind 127.0.0.1:"
                                        << frontend_port_
                                        << "\n"
                                           "  default_backend web\n"
                                           "backend web\n"
                                           "  balance leastconn\n";
    auto child = testing::ChildProcess::Spawn(
        {haproxy.string(), "-db", "-f", (dir_ / "haproxy.cfg").string()},
        (dir_ / "haproxy.log").string());
    ASSERT_TRUE(child.has_value()) << child.error().ToString();
    process_ = std::move(*child);
    runtime_ = HaproxyRuntime(socket_);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!runtime_.Execute("show info").has_value()) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline)
          << "haproxy did not start; see " << (dir_ / "haproxy.log");
      std::this_thread::sleep_for(50ms);
    }
  }
  void TearDown() override {
    process_.KillAndWait(SIGTERM, 5s);
    if (!HasFailure()) fs::remove_all(dir_);
  }

  // Who answers n requests through the frontend: name -> count ("503" for none).
  std::map<std::string, int> Answers(int n) { return testing::WhoAnswers(frontend_port_, n); }

  std::map<std::string, ServerState> Servers() {
    auto servers = runtime_.Servers("web");
    EXPECT_TRUE(servers.has_value()) << servers.error().ToString();
    std::map<std::string, ServerState> out;
    if (servers) {
      for (ServerState& s : *servers) out[s.name] = std::move(s);
    }
    return out;
  }

  fs::path dir_;
  fs::path socket_;
  uint16_t frontend_port_ = 0;
  testing::ChildProcess process_;
  HaproxyRuntime runtime_{"/nonexistent"};  // pointed at the socket in SetUp
};

TEST_F(HaproxyRuntimeTest, ServersComeAndGoWithoutAReload) {
  EXPECT_TRUE(Servers().empty());
  EXPECT_EQ(Answers(1), (std::map<std::string, int>{{"503", 1}})) << "no server yet";

  NamedServer a("A"), b("B");
  ASSERT_TRUE(runtime_.AddServer("web", "r1", "127.0.0.1", a.port(), 100).has_value());
  EXPECT_TRUE(Servers().at("r1").in_maintenance) << "a dynamic server starts in maintenance";
  EXPECT_EQ(Answers(1), (std::map<std::string, int>{{"503", 1}}));
  ASSERT_TRUE(runtime_.SetAdmin("web", "r1", ServerAdmin::kReady).has_value());
  EXPECT_EQ(Answers(4), (std::map<std::string, int>{{"A", 4}}));

  ASSERT_TRUE(runtime_.AddServer("web", "r2", "127.0.0.1", b.port(), 100).has_value());
  ASSERT_TRUE(runtime_.SetAdmin("web", "r2", ServerAdmin::kReady).has_value());
  auto both = Answers(10);
  EXPECT_GT(both["A"], 0);
  EXPECT_GT(both["B"], 0);
  EXPECT_EQ(both["A"] + both["B"], 10);

  auto again = runtime_.AddServer("web", "r2", "127.0.0.1", b.port(), 100);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kAlreadyExists) << again.error().message;

  // Draining: no new requests for r1.
  ASSERT_TRUE(runtime_.SetAdmin("web", "r1", ServerAdmin::kDrain).has_value());
  EXPECT_TRUE(Servers().at("r1").draining);
  EXPECT_EQ(Answers(6), (std::map<std::string, int>{{"B", 6}}));

  ASSERT_TRUE(runtime_.SetWeight("web", "r2", 37).has_value());
  EXPECT_EQ(Servers().at("r2").weight, 37u);

  // Deleting needs maintenance first.
  auto early = runtime_.DeleteServer("web", "r1");
  ASSERT_FALSE(early.has_value());
  EXPECT_EQ(early.error().code, ErrorCode::kFailedPrecondition) << early.error().message;
  ASSERT_TRUE(runtime_.SetAdmin("web", "r1", ServerAdmin::kMaint).has_value());
  ASSERT_TRUE(runtime_.DeleteServer("web", "r1").has_value());
  auto left = Servers();
  EXPECT_EQ(left.size(), 1u);
  EXPECT_TRUE(left.contains("r2"));
  EXPECT_EQ(left.at("r2").port, b.port());
  EXPECT_EQ(Answers(3), (std::map<std::string, int>{{"B", 3}}));

  auto gone = runtime_.SetAdmin("web", "r1", ServerAdmin::kReady);
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error().code, ErrorCode::kNotFound) << gone.error().message;
  auto no_backend = runtime_.Servers("nope");
  ASSERT_FALSE(no_backend.has_value());
  EXPECT_EQ(no_backend.error().code, ErrorCode::kNotFound) << no_backend.error().message;
}

TEST_F(HaproxyRuntimeTest, AnIpv6ServerIsAccepted) {
  ASSERT_TRUE(runtime_.AddServer("web", "v6", "::1", 8080, 1).has_value());
  EXPECT_EQ(Servers().at("v6").address, "::1");
}

}  // namespace
}  // namespace phoenix::agent::frontdoor
