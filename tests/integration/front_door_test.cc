// FrontDoor against a real HAProxy (Debian 12's 2.6), as the agent runs it: started as a daemon
// from a private directory, tables applied (servers through the Runtime API with no reload, new
// services through a seamless reload that refuses no request), HAProxy outliving a FrontDoor (the
// agent's death) and adopted by the next, restarted after it is killed, and a reload HAProxy
// rejects leaving the last good state serving. Tiny HTTP servers stand for replicas.
#include "agent/frontdoor/front_door.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "agent/frontdoor/haproxy_runtime.h"
#include "tests/integration/support/http.h"
#include "tests/integration/support/named_http_server.h"
#include "tests/integration/support/process.h"
#include "tests/integration/support/tcp_listener.h"

namespace phoenix::agent::frontdoor {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::FreeLoopbackPort;
using testing::NamedHttpServer;

bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return done();
}

class FrontDoorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists("/usr/sbin/haproxy")) {
      GTEST_SKIP() << "haproxy is not installed (tools/install-deps)";
    }
    const char* tmp = std::getenv("PHOENIX_TEST_TMP");
    dir_ = fs::absolute(tmp != nullptr ? tmp : "/tmp") /
           ("front_door_test." + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    files_.dir = dir_ / "frontdoor";
  }

  void TearDown() override {
    door_.reset();
    KillHaproxy();
    if (!HasFailure()) fs::remove_all(dir_);
  }

  std::unique_ptr<FrontDoor> StartDoor() {
    FrontDoorOptions options{.files = files_,
                             .settings = {.bind_address = "127.0.0.1", .zone = "a"},
                             .tick = 100ms,
                             .on_event = [this](const std::string& m) {
                               std::lock_guard lock(mu_);
                               events_.push_back(m);
                             }};
    auto door = FrontDoor::Start(std::move(options));
    PHX_CHECK(door.has_value());
    return std::move(*door);
  }

  // Waits until HAProxy runs (a pid that answers) and returns the master's pid.
  int WaitForHaproxy(FrontDoor& door, int not_pid = -1) {
    const auto deadline = std::chrono::steady_clock::now() + 15s;
    while (std::chrono::steady_clock::now() < deadline) {
      const int pid = door.status().haproxy_pid;
      if (pid > 0 && pid != not_pid) return pid;
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << "HAProxy did not come up; last error: " << door.status().last_error;
    return -1;
  }

  // The worker's pid, from the admin socket: it changes on every reload.
  int WorkerPid() {
    auto info = HaproxyRuntime(files_.api_socket()).Execute("show info");
    if (!info) return -1;
    const size_t at = info->find("\nPid: ");
    return at == std::string::npos ? -1 : std::atoi(info->c_str() + at + 6);
  }

  static std::map<std::string, int> Answers(uint16_t port, int n) {
    return testing::WhoAnswers(port, n);
  }

  std::vector<std::string> Events() {
    std::lock_guard lock(mu_);
    return events_;
  }

  void KillHaproxy() {
    std::ifstream in(files_.pid_file());
    int master = 0;
    if (!(in >> master) || master <= 1) return;
    ::kill(master, SIGTERM);
    for (int i = 0; i < 100 && testing::ProcessAlive(master); ++i)
      std::this_thread::sleep_for(50ms);
  }

  static FrontDoorService Web(uint16_t port, std::vector<FrontDoorServer> servers) {
    return FrontDoorService{.name = "web", .port = port, .servers = std::move(servers)};
  }
  static FrontDoorServer Server(const std::string& name, const NamedHttpServer& s,
                                bool draining = false) {
    return FrontDoorServer{
        .name = name, .address = "127.0.0.1", .port = s.port(), .zone = "a", .draining = draining};
  }

  fs::path dir_;
  HaproxyFiles files_;
  std::unique_ptr<FrontDoor> door_;
  std::mutex mu_;
  std::vector<std::string> events_;
};

TEST_F(FrontDoorTest, NothingToServeStartsNoHaproxy) {
  door_ = StartDoor();
  ASSERT_TRUE(door_->Apply({.version = 1, .services = {}}));
  ASSERT_TRUE(door_->WaitApplied(1, 15s));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(door_->status().haproxy_pid, -1);
  EXPECT_FALSE(fs::exists(files_.pid_file()));
}

TEST_F(FrontDoorTest, ServerChangesNeedNoReload) {
  door_ = StartDoor();
  NamedHttpServer a("A"), b("B"), c("C");
  const uint16_t port = FreeLoopbackPort();

  ASSERT_TRUE(
      door_->Apply({.version = 1, .services = {Web(port, {Server("a", a), Server("b", b)})}}));
  ASSERT_TRUE(door_->WaitApplied(1, 15s)) << door_->status().last_error;
  auto both = Answers(port, 10);
  EXPECT_EQ(both["A"] + both["B"], 10) << ::testing::PrintToString(both);
  EXPECT_GT(both["A"], 0);
  EXPECT_GT(both["B"], 0);
  EXPECT_EQ(door_->status().reloads, 1u) << "a new service is a reload";
  const int worker = WorkerPid();
  ASSERT_GT(worker, 0);

  // a leaves, c arrives: Runtime API only.
  ASSERT_TRUE(
      door_->Apply({.version = 2, .services = {Web(port, {Server("b", b), Server("c", c)})}}));
  ASSERT_TRUE(door_->WaitApplied(2, 15s)) << door_->status().last_error;
  auto moved = Answers(port, 10);
  EXPECT_EQ(moved["B"] + moved["C"], 10) << ::testing::PrintToString(moved);
  EXPECT_GT(moved["C"], 0);
  // c drains: no new requests.
  ASSERT_TRUE(door_->Apply(
      {.version = 3, .services = {Web(port, {Server("b", b), Server("c", c, true)})}}));
  ASSERT_TRUE(door_->WaitApplied(3, 15s)) << door_->status().last_error;
  EXPECT_EQ(Answers(port, 6), (std::map<std::string, int>{{"B", 6}}));

  EXPECT_EQ(WorkerPid(), worker) << "servers changed without a reload";
  EXPECT_EQ(door_->status().reloads, 1u);
  auto servers = HaproxyRuntime(files_.api_socket()).Servers("web");
  ASSERT_TRUE(servers.has_value()) << servers.error().ToString();
  std::vector<std::string> names;
  for (const ServerState& s : *servers) names.push_back(s.name);
  EXPECT_EQ(names, (std::vector<std::string>{"b", "c"})) << "a was deleted";

  // An older table (a reconnect's stale copy) changes nothing.
  ASSERT_TRUE(door_->Apply({.version = 2, .services = {}}));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(door_->status().applied_version, 3u);
  EXPECT_EQ(Answers(port, 2), (std::map<std::string, int>{{"B", 2}}));

  // A table that is not valid is refused before it reaches HAProxy.
  auto bad = door_->Apply({.version = 4, .services = {Web(port, {}), Web(port + 1, {})}});
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().field, "services[1].name");
}

TEST_F(FrontDoorTest, LoadCountsTheRequestsHaproxySentEachServer) {
  door_ = StartDoor();
  NamedHttpServer a("A"), b("B");
  const uint16_t port = FreeLoopbackPort();
  ASSERT_TRUE(
      door_->Apply({.version = 1, .services = {Web(port, {Server("a", a), Server("b", b)})}}));
  ASSERT_TRUE(door_->WaitApplied(1, 15s)) << door_->status().last_error;
  // The first sample is the baseline; requests after it count.
  ASSERT_TRUE(WaitUntil([&] { return door_->load().servers.size() == 2; }, 10s));
  const auto answered = Answers(port, 20);
  FrontDoor::Load load;
  ASSERT_TRUE(WaitUntil(
      [&] {
        load = door_->load();
        uint64_t total = 0;
        for (const ServerLoad& s : load.servers) total += s.requests_total;
        return load.window.count() > 0 && total == 20;
      },
      10s))
      << ::testing::PrintToString(answered);
  for (const ServerLoad& s : load.servers) {
    EXPECT_EQ(s.service, "web");
    EXPECT_EQ(static_cast<int>(s.requests_total), answered.at(s.server == "a" ? "A" : "B"))
        << s.server;
    EXPECT_EQ(s.in_flight, 0u);
  }
}

TEST_F(FrontDoorTest, ANewServiceIsASeamlessReloadThatRefusesNoRequest) {
  door_ = StartDoor();
  NamedHttpServer a("A"), b("B");
  const uint16_t web = FreeLoopbackPort(), api = FreeLoopbackPort();
  ASSERT_TRUE(door_->Apply({.version = 1, .services = {Web(web, {Server("a", a)})}}));
  ASSERT_TRUE(door_->WaitApplied(1, 15s)) << door_->status().last_error;
  const int worker = WorkerPid();

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0};
  std::mutex failures_mu;
  std::map<std::string, int> failures;
  std::thread load([&] {
    for (int i = 0; i < 100000 && !stop; ++i) {
      auto r = testing::HttpGet(web, "/", 5s);
      if (r && r->status == 200 && r->body == "A") {
        ++ok;
      } else {
        std::lock_guard lock(failures_mu);
        ++failures[r ? std::to_string(r->status) : r.error().message];
      }
    }
  });
  std::this_thread::sleep_for(200ms);
  FrontDoorService second{.name = "api", .port = api, .servers = {Server("b", b)}};
  ASSERT_TRUE(door_->Apply({.version = 2, .services = {Web(web, {Server("a", a)}), second}}));
  const bool applied = door_->WaitApplied(2, 15s);
  std::this_thread::sleep_for(300ms);
  stop = true;
  load.join();
  ASSERT_TRUE(applied) << door_->status().last_error;

  std::printf("requests during the reload: %d answered, %zu kinds of failure\n", ok.load(),
              failures.size());
  EXPECT_GT(ok.load(), 10);
  EXPECT_TRUE(failures.empty()) << ::testing::PrintToString(failures);
  EXPECT_NE(WorkerPid(), worker) << "the frontend came with a new worker";
  EXPECT_EQ(door_->status().reloads, 2u);
  EXPECT_EQ(Answers(api, 3), (std::map<std::string, int>{{"B", 3}}));
}

TEST_F(FrontDoorTest, HaproxyOutlivesTheAgentIsAdoptedAndRisesAgainWhenKilled) {
  NamedHttpServer a("A"), b("B");
  const uint16_t port = FreeLoopbackPort();
  door_ = StartDoor();
  ASSERT_TRUE(door_->Apply({.version = 5, .services = {Web(port, {Server("a", a)})}}));
  ASSERT_TRUE(door_->WaitApplied(5, 15s)) << door_->status().last_error;
  const int master = WaitForHaproxy(*door_);

  door_.reset();  // the agent dies
  EXPECT_TRUE(testing::ProcessAlive(master));
  EXPECT_EQ(Answers(port, 3), (std::map<std::string, int>{{"A", 3}})) << "serving without agent";

  door_ = StartDoor();  // the agent is back
  EXPECT_EQ(WaitForHaproxy(*door_), master);
  EXPECT_TRUE(door_->status().adopted);
  EXPECT_EQ(door_->status().starts, 0u);
  // Same frontends: the new agent's first table needs no reload.
  ASSERT_TRUE(
      door_->Apply({.version = 6, .services = {Web(port, {Server("a", a), Server("b", b)})}}));
  ASSERT_TRUE(door_->WaitApplied(6, 15s)) << door_->status().last_error;
  EXPECT_EQ(door_->status().reloads, 0u);
  auto both = Answers(port, 10);
  EXPECT_EQ(both["A"] + both["B"], 10) << ::testing::PrintToString(both);

  // HAProxy dies (master and worker): the FrontDoor starts it again with the last table.
  const int worker = WorkerPid();
  ::kill(master, SIGKILL);
  ::kill(worker, SIGKILL);
  const int restarted = WaitForHaproxy(*door_, master);
  EXPECT_NE(restarted, master);
  EXPECT_EQ(door_->status().starts, 1u);
  auto again = Answers(port, 10);
  EXPECT_EQ(again["A"] + again["B"], 10) << ::testing::PrintToString(again);
  bool told = false;
  for (const std::string& e : Events())
    told = told || e.find("exited; restarting") != std::string::npos;
  EXPECT_TRUE(told) << "the restart is an event";
}

TEST_F(FrontDoorTest, AStartNeverLeavesTwoHaproxysOnOneConfig) {
  NamedHttpServer a("A");
  const uint16_t port = FreeLoopbackPort();
  door_ = StartDoor();
  ASSERT_TRUE(door_->Apply({.version = 1, .services = {Web(port, {Server("a", a)})}}));
  ASSERT_TRUE(door_->WaitApplied(1, 15s)) << door_->status().last_error;
  const int master = WaitForHaproxy(*door_);
  door_.reset();
  // An HAProxy that no longer answers (stopped, as a wedged one would be): the next agent cannot
  // adopt it, kills it and starts one of its own, never a second beside it (SO_REUSEPORT would
  // let both take connections).
  ASSERT_EQ(::kill(master, SIGSTOP), 0);
  door_ = StartDoor();
  const int fresh = WaitForHaproxy(*door_, master);
  EXPECT_NE(fresh, master);
  const std::vector<int> serving = HaproxyProcesses(files_.config());
  EXPECT_NE(std::ranges::find(serving, fresh), serving.end());
  EXPECT_EQ(std::ranges::find(serving, master), serving.end()) << "the stopped one was killed";
  EXPECT_EQ(Answers(port, 2), (std::map<std::string, int>{{"A", 2}}));
}

TEST_F(FrontDoorTest, APortTakenOnThisNodeLeavesOnlyThatServiceOutUntilItIsFree) {
  NamedHttpServer a("A"), b("B");
  const uint16_t web = FreeLoopbackPort();
  auto squatter = std::make_unique<testing::TcpListener>("127.0.0.1");  // holds api's port
  const uint16_t api_port = squatter->port();
  door_ = StartDoor();
  ASSERT_TRUE(door_->Apply({.version = 1, .services = {Web(web, {Server("a", a)})}}));
  ASSERT_TRUE(door_->WaitApplied(1, 15s)) << door_->status().last_error;
  const int worker = WorkerPid();

  FrontDoorService api{.name = "api", .port = api_port, .servers = {Server("b", b)}};
  ASSERT_TRUE(door_->Apply({.version = 2, .services = {Web(web, {Server("a", a)}), api}}));
  ASSERT_TRUE(door_->WaitApplied(2, 15s)) << "the rest of the table is served";
  FrontDoorStatus status = door_->status();
  EXPECT_TRUE(status.last_error.empty()) << status.last_error;
  const std::vector<BlockedFrontend> want = {
      {.service = "api",
       .port = api_port,
       .reason = "port " + std::to_string(api_port) + " on 127.0.0.1 is taken by another process"}};
  EXPECT_EQ(status.blocked, want);
  EXPECT_EQ(Answers(web, 3), (std::map<std::string, int>{{"A", 3}}));
  EXPECT_EQ(WorkerPid(), worker) << "nothing to reload: the config did not change";
  bool told = false;
  for (const std::string& e : Events()) {
    told = told || e.find("service api not served here: port") != std::string::npos;
  }
  EXPECT_TRUE(told) << "the conflict is an event";
  std::ifstream cfg(files_.config());
  const std::string text((std::istreambuf_iterator<char>(cfg)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.find("frontend api"), std::string::npos) << "never a half-configured HAProxy";

  // The squatter leaves: the next ticks find the port free and serve api.
  squatter.reset();
  ASSERT_TRUE(WaitUntil([&] { return door_->status().blocked.empty(); }, 5s));
  ASSERT_TRUE(WaitUntil([&] { return Answers(api_port, 1)["B"] == 1; }, 5s));
  EXPECT_TRUE(door_->status().last_error.empty());
}

}  // namespace
}  // namespace phoenix::agent::frontdoor
