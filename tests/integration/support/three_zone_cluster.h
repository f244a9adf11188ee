// A three-zone cluster for end-to-end tests: a real phoenix-supervisor (TLS, admin token, join
// token) and three real phoenix-agent processes (nodes e2e-a/b/c in zones a/b/c, 8 vCPUs and
// 2 GiB each) on ephemeral loopback ports, each with the demo image imported. The supervisor and
// e2e tests of issues 4 and 6 derive their fixtures from it. Binaries and the image come from the
// environment ctest sets (PHOENIX_SUPERVISOR_BIN, PHOENIX_AGENT_BIN, PHOENIX_DEMO_IMAGE_DIR,
// PHOENIX_DEMO_RECIPE, PHOENIX_TEST_TMP).
//
// Threading: the test's thread only.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "phoenix/v1/agent.grpc.pb.h"
#include "phoenix/v1/supervisor.grpc.pb.h"
#include "tests/integration/support/process.h"

namespace phoenix::testing::cluster {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

inline std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

inline bool WaitFor(const std::function<bool()>& pred, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(200ms);
  }
  return pred();
}

inline std::string ReadAll(const fs::path& path) {
  std::ifstream in(path);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

struct Agent {
  std::string node, zone;
  fs::path state_dir;
  ChildProcess process;
  std::unique_ptr<v1::AgentService::Stub> stub;
};

class ThreeZoneCluster : public ::testing::Test {
 protected:
  // service: the one service the test creates (deleted in TearDown); name: its scratch dir's
  // prefix; down_after: the supervisor's --down-after.
  ThreeZoneCluster(std::string service, std::string name, std::chrono::seconds down_after)
      : service_(std::move(service)), name_(std::move(name)), down_after_(down_after) {}

  void SetUp() override {
    image_dir_ = Env("PHOENIX_DEMO_IMAGE_DIR");
    ASSERT_FALSE(image_dir_.empty()) << "PHOENIX_DEMO_IMAGE_DIR is not set (run through ctest)";
    if (!fs::exists(fs::path(image_dir_) / "manifest.env")) {
      auto built = RunCommand({Env("PHOENIX_DEMO_RECIPE"), image_dir_});
      ASSERT_EQ(built.exit_code, 0) << "building the demo image failed:\n" << built.output;
    }
    root_ = fs::path(Env("PHOENIX_TEST_TMP")) / (name_ + "-" + std::to_string(getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    sup_dir_ = root_ / "supervisor";
    std::vector<std::string> init_argv = {Env("PHOENIX_SUPERVISOR_BIN"), "init", "--state-dir",
                                          sup_dir_.string()};
    if (SupervisorAddress() != "127.0.0.1") {
      init_argv.insert(init_argv.end(), {"--san", SupervisorAddress()});
    }
    auto init = RunCommand(init_argv);
    ASSERT_EQ(init.exit_code, 0) << init.output;
    admin_token_ = ReadAll(sup_dir_ / "admin.token");
    ASSERT_FALSE(admin_token_.empty());
    ca_pem_ = ReadAll(sup_dir_ / "pki" / "ca.pem");
    ASSERT_NO_FATAL_FAILURE(StartSupervisor());
    auto join = RunCommand({Env("PHOENIX_SUPERVISOR_BIN"), "join-token", "--state-dir",
                            sup_dir_.string(), "--uses", "3"});
    ASSERT_EQ(join.exit_code, 0) << join.output;
    join_token_ = join.output.substr(0, join.output.find('\n'));

    for (auto [node, zone] : {std::pair{"e2e-a", "a"}, {"e2e-b", "b"}, {"e2e-c", "c"}}) {
      agents_[node] = Agent{.node = node, .zone = zone, .state_dir = root_ / node};
      ASSERT_NO_FATAL_FAILURE(StartAgent(agents_[node]));
      v1::ImportImageRequest req;
      req.set_directory(image_dir_);
      req.set_name("demo");
      v1::Image image;
      grpc::ClientContext ctx;
      grpc::Status s = agents_[node].stub->ImportImage(&ctx, req, &image);
      ASSERT_TRUE(s.ok()) << node << ": " << s.error_message();
    }
  }

  void TearDown() override {
    // Leave no container behind, even after a failure midway.
    if (supervisor_.Running()) {
      grpc::ClientContext ctx;
      Authorize(ctx);
      v1::DeleteServiceRequest req;
      req.set_name(service_);
      v1::DeleteServiceResponse resp;
      (void)sup_->DeleteService(&ctx, req, &resp);
      WaitFor([&] { return TotalGuests() == 0; }, 30s);
    }
    for (auto& [node, agent] : agents_) {
      if (!agent.process.Running()) continue;
      for (const v1::Guest& g : Guests(agent)) {
        grpc::ClientContext ctx;
        v1::DeleteGuestRequest req;
        req.set_name(g.spec().name());
        v1::DeleteGuestResponse resp;
        (void)agent.stub->DeleteGuest(&ctx, req, &resp);
      }
      agent.process.KillAndWait(SIGTERM, 10s);
    }
    // An agent's HAProxy outlives it by design: stop it here.
    for (auto& [node, agent] : agents_) {
      const std::string pid = ReadAll(agent.state_dir / "frontdoor" / "haproxy.pid");
      if (!pid.empty() && std::atoi(pid.c_str()) > 1) ::kill(std::atoi(pid.c_str()), SIGTERM);
    }
    supervisor_.KillAndWait(SIGTERM, 10s);
    if (!HasFailure()) fs::remove_all(root_);
  }

  void StartSupervisor() {
    const fs::path port_file = sup_dir_ / "port";
    fs::remove(port_file);
    auto child = ChildProcess::Spawn(
        {Env("PHOENIX_SUPERVISOR_BIN"), "serve", "--state-dir", sup_dir_.string(), "--listen",
         SupervisorAddress() + ":" + std::to_string(sup_port_), "--port-file", port_file.string(),
         "--heartbeat-interval", "500ms", "--suspect-after", "1500ms", "--down-after",
         std::to_string(down_after_.count()) + "s", "--log-level", "debug"},
        (sup_dir_ / "supervisor.log").string());
    ASSERT_TRUE(child) << child.error().ToString();
    supervisor_ = std::move(*child);
    auto port = testing::WaitForIntFile(port_file.string(), 30s);
    ASSERT_TRUE(port) << "supervisor did not start; see " << (sup_dir_ / "supervisor.log");
    sup_port_ = *port;  // a restart listens on the same port, so agents find it again
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = ca_pem_;
    sup_ = v1::Supervisor::NewStub(grpc::CreateChannel(
        SupervisorAddress() + ":" + std::to_string(sup_port_), grpc::SslCredentials(tls)));
  }

  void StartAgent(Agent& agent) {
    const fs::path port_file = agent.state_dir / "agent.port";
    fs::create_directories(agent.state_dir);
    fs::remove(port_file);
    std::vector<std::string> argv = AgentCommandPrefix(agent);
    argv.insert(argv.end(), {Env("PHOENIX_AGENT_BIN"),
                             "--listen",
                             "unix:" + (agent.state_dir / "agent.sock").string(),
                             "--state-dir",
                             agent.state_dir.string(),
                             "--port-file",
                             port_file.string(),
                             "--node",
                             agent.node,
                             "--zone",
                             agent.zone,
                             "--vcpus",
                             "8",
                             "--memory-mib",
                             "2048",
                             "--supervisor",
                             SupervisorAddress() + ":" + std::to_string(sup_port_),
                             "--supervisor-ca",
                             (sup_dir_ / "pki" / "ca.pem").string(),
                             "--join-token",
                             join_token_,
                             "--log-level",
                             "debug"});
    for (std::string& arg : AgentArgs(agent)) argv.push_back(std::move(arg));
    auto child = ChildProcess::Spawn(argv, agent.state_dir.string() + ".log");
    ASSERT_TRUE(child) << child.error().ToString();
    agent.process = std::move(*child);
    // The port file is written once the API serves (0: it is a Unix socket).
    auto serving = testing::WaitForIntFile(port_file.string(), 60s);
    ASSERT_TRUE(serving) << "agent did not start; see " << agent.state_dir.string() << ".log";
    agent.stub = v1::AgentService::NewStub(grpc::CreateChannel(
        "unix:" + (agent.state_dir / "agent.sock").string(), grpc::InsecureChannelCredentials()));
  }

  // Further flags for an agent (a derived fixture's --advertise-address, say).
  virtual std::vector<std::string> AgentArgs(const Agent&) { return {}; }
  // What runs the agent (a derived fixture's `ip netns exec NS`, say); empty: run it directly.
  virtual std::vector<std::string> AgentCommandPrefix(const Agent&) { return {}; }
  // Where the supervisor listens and agents find it.
  virtual std::string SupervisorAddress() const { return "127.0.0.1"; }

  void Authorize(grpc::ClientContext& ctx) {
    ctx.AddMetadata("authorization", "Bearer " + admin_token_);
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  }

  std::optional<v1::Service> GetService() {
    grpc::ClientContext ctx;
    Authorize(ctx);
    v1::GetServiceRequest req;
    req.set_name(service_);
    v1::Service out;
    if (!sup_->GetService(&ctx, req, &out).ok()) return std::nullopt;
    return out;
  }

  std::map<std::string, v1::Node> Nodes() {
    grpc::ClientContext ctx;
    Authorize(ctx);
    v1::ListNodesResponse resp;
    std::map<std::string, v1::Node> out;
    if (!sup_->ListNodes(&ctx, v1::ListNodesRequest(), &resp).ok()) return out;
    for (const v1::Node& n : resp.nodes()) out[n.name()] = n;
    return out;
  }

  std::vector<v1::Guest> Guests(Agent& agent) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    v1::ListGuestsResponse resp;
    if (!agent.stub->ListGuests(&ctx, v1::ListGuestsRequest(), &resp).ok()) return {};
    return {resp.guests().begin(), resp.guests().end()};
  }

  size_t TotalGuests() {
    size_t n = 0;
    for (auto& [_, agent] : agents_) {
      if (agent.process.Running()) n += Guests(agent).size();
    }
    return n;
  }

  // Replicas running per zone, or nullopt unless exactly `want` run and all are RUNNING.
  std::optional<std::map<std::string, int>> RunningByZone(uint32_t want) {
    auto s = GetService();
    if (!s || s->running() != want || static_cast<uint32_t>(s->replicas_size()) != want) {
      return std::nullopt;
    }
    std::map<std::string, int> zones;
    for (const v1::Replica& r : s->replicas()) zones[r.zone()]++;
    return zones;
  }

  std::string Describe() {
    std::string out;
    if (auto s = GetService()) out += s->DebugString();
    for (auto& [name, n] : Nodes()) {
      out += name + " " + v1::NodeState_Name(n.state()) + " " + n.state_reason() + "\n";
    }
    return out;
  }

  const std::string service_, name_;
  const std::chrono::seconds down_after_;
  std::string image_dir_;
  fs::path root_, sup_dir_;
  std::string admin_token_, ca_pem_, join_token_;
  int sup_port_ = 0;
  ChildProcess supervisor_;
  std::unique_ptr<v1::Supervisor::Stub> sup_;
  std::map<std::string, Agent> agents_;
};

}  // namespace phoenix::testing::cluster
