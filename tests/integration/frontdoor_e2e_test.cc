// End to end: a service behind the front door, on three "hosts". Each phoenix-agent (zones a, b,
// c) runs in its own network namespace, joined to the others by a bridge the test creates
// (phx-lab, 10.199.0.0/24: node a is 10.199.0.1, ...; the supervisor listens on the bridge's
// 10.199.0.254 on the host). Each node has its own instance network (10.200.N.0/24): its
// containers get their own addresses there, and the nodes route to each other's instance subnets
// via their lab addresses, as hosts on one link would. The demo image runs as three containers with
// `--port P:80`; every node's HAProxy listens on P at its lab address and reaches every replica at
// the replica's own address, with no agent in the path. The test drives node a's front door with
// GET /health at a steady rate and, phase by phase:
//   1. SIGKILLs one replica's guest (it restarts from its golden image; HAProxy retries the
//      requests that hit it on another replica);
//   2. SIGKILLs agent b and starts it again: nothing of the data path runs in the agent;
//   3. kills host c: its agent SIGKILLed and its link cut (its guests and HAProxy keep running,
//      unreachable, like a host that lost power); the supervisor replaces the replica elsewhere;
//   4. scales the service 3 -> 1 (the leaving replicas drain first).
// It prints each phase's requests and failures and requires none lost in phases 1, 2 and 4 and at
// most 0.1 % in phase 3. Needs root (namespaces, bridges), iproute2 and HAProxy.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "agent/frontdoor/haproxy_runtime.h"
#include "tests/integration/support/http.h"
#include "tests/integration/support/named_http_server.h"
#include "tests/integration/support/three_zone_cluster.h"

namespace phoenix {
namespace {

using namespace std::chrono_literals;
using testing::cluster::Agent;
using testing::cluster::WaitFor;

constexpr char kService[] = "e2e-door";

// Requests through one front door at a steady pace, counted per phase.
class Prober {
 public:
  Prober(std::string ip, uint16_t port) : ip_(std::move(ip)), port_(port) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Prober() {
    stop_ = true;
    thread_.join();
  }
  struct Counts {
    uint64_t sent = 0, failed = 0;
    std::chrono::milliseconds slowest{0};
    std::map<std::string, int> errors;
  };
  // Ends the current phase and returns its counts.
  Counts Take() {
    std::lock_guard lock(mu_);
    return std::exchange(counts_, Counts{});
  }

 private:
  void Run() {
    // At most 20 minutes of probing, one request every 20 ms.
    for (int i = 0; i < 60000 && !stop_; ++i) {
      const auto start = std::chrono::steady_clock::now();
      const auto next = start + 20ms;
      auto r = testing::HttpGetAt(ip_, port_, "/health", 5s);
      const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - start);
      {
        std::lock_guard lock(mu_);
        ++counts_.sent;
        counts_.slowest = std::max(counts_.slowest, took);
        if (!r || r->status != 200) {
          ++counts_.failed;
          ++counts_.errors[r ? "HTTP " + std::to_string(r->status) : r.error().message];
        }
      }
      std::this_thread::sleep_until(next);
    }
  }

  const std::string ip_;
  const uint16_t port_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  Counts counts_;
  std::thread thread_;
};

// Runs a command of the lab's set-up; its output on failure.
std::string Lab(std::vector<std::string> argv) {
  auto r = testing::RunCommand(argv);
  if (r.exit_code == 0) return "";
  std::string command;
  for (const std::string& a : argv) command += a + " ";
  return command + "-> exit " + std::to_string(r.exit_code) + ": " + r.output;
}

class FrontDoorE2eTest : public testing::cluster::ThreeZoneCluster {
 protected:
  static constexpr char kLabBridge[] = "phx-lab";
  static constexpr char kSupervisorAddress[] = "10.199.0.254";

  FrontDoorE2eTest() : ThreeZoneCluster(kService, "frontdoor-e2e", 3s) {}

  void SetUp() override {
    if (!std::filesystem::exists("/usr/sbin/haproxy")) {
      GTEST_SKIP() << "haproxy is not installed (tools/install-deps)";
    }
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: network namespaces and bridges";
    ASSERT_NO_FATAL_FAILURE(BuildLab());
    ThreeZoneCluster::SetUp();
  }

  void TearDown() override {
    for (const std::string node : {"e2e-a", "e2e-b", "e2e-c"}) (void)SetLink(node, true);
    ThreeZoneCluster::TearDown();
    RemoveLab();
  }

  static std::string Namespace(const std::string& node) { return "phx-lab-" + node.substr(4); }
  static int Index(const std::string& node) { return node.back() - 'a' + 1; }
  static std::string Address(const std::string& node) {
    return "10.199.0." + std::to_string(Index(node));
  }

  // The lab: a bridge on the host and a namespace per node, each with eth0 on the bridge. Left
  // overs of an earlier run that died are removed first.
  void BuildLab() {
    RemoveLab();
    for (const auto& step : std::vector<std::vector<std::string>>{
             {"ip", "link", "add", kLabBridge, "type", "bridge"},
             {"ip", "addr", "add", std::string(kSupervisorAddress) + "/24", "dev", kLabBridge},
             {"ip", "link", "set", kLabBridge, "up"}}) {
      const std::string failed = Lab(step);
      ASSERT_TRUE(failed.empty()) << failed;
    }
    for (const std::string node : {"e2e-a", "e2e-b", "e2e-c"}) {
      const std::string ns = Namespace(node);
      for (const auto& step : std::vector<std::vector<std::string>>{
               {"ip", "netns", "add", ns},
               {"ip", "link", "add", ns, "type", "veth", "peer", "name", "eth0", "netns", ns},
               {"ip", "link", "set", ns, "master", kLabBridge, "up"},
               {"ip", "-n", ns, "addr", "add", Address(node) + "/24", "dev", "eth0"},
               {"ip", "-n", ns, "link", "set", "eth0", "up"},
               {"ip", "-n", ns, "link", "set", "lo", "up"}}) {
        const std::string failed = Lab(step);
        ASSERT_TRUE(failed.empty()) << failed;
      }
    }
  }

  static void RemoveLab() {
    for (const std::string node : {"e2e-a", "e2e-b", "e2e-c"}) {
      (void)Lab({"ip", "netns", "del", Namespace(node)});
    }
    (void)Lab({"ip", "link", "del", kLabBridge});
  }

  // Cuts (or restores) a node's only link, as a host that lost power or its network.
  static std::string SetLink(const std::string& node, bool up) {
    return Lab({"ip", "link", "set", Namespace(node), up ? "up" : "down"});
  }

  std::string SupervisorAddress() const override { return kSupervisorAddress; }
  std::vector<std::string> AgentCommandPrefix(const Agent& agent) override {
    // nsenter, not `ip netns exec`: that would also give the agent a mount namespace of its own,
    // hiding its guests' mounts from the agent that adopts them after a restart.
    return {"/usr/bin/nsenter", "--net=/run/netns/" + Namespace(agent.node), "--"};
  }
  std::vector<std::string> AgentArgs(const Agent& agent) override {
    return {"--advertise-address", Address(agent.node), "--instance-subnet",
            "10.200." + std::to_string(Index(agent.node)) + ".0/24"};
  }

  void CreateService(uint16_t port) {
    v1::ServiceSpec spec;
    spec.set_name(kService);
    spec.set_replicas(3);
    spec.mutable_spread()->set_attribute("zone");
    spec.mutable_front_door()->set_port(port);
    spec.mutable_front_door()->set_guest_port(80);
    v1::GuestSpec* t = spec.mutable_template_();
    t->set_runtime(v1::RUNTIME_CONTAINER);
    t->set_image("demo");
    t->set_memory_mib(64);
    t->mutable_health()->mutable_http()->set_port(80);
    t->mutable_health()->mutable_http()->set_path("/health");
    t->mutable_health()->set_interval_ms(500);
    t->mutable_health()->set_start_period_ms(1000);
    grpc::ClientContext ctx;
    Authorize(ctx);
    v1::CreateServiceRequest req;
    *req.mutable_spec() = spec;
    v1::Service created;
    grpc::Status s = sup_->CreateService(&ctx, req, &created);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  // The replica (guest name and node) of the service on `node`.
  std::optional<v1::Replica> ReplicaOn(const std::string& node) {
    auto s = GetService();
    if (!s) return std::nullopt;
    for (const v1::Replica& r : s->replicas()) {
      if (r.node() == node) return r;
    }
    return std::nullopt;
  }

  bool AllHealthy(uint32_t want) {
    auto s = GetService();
    if (!s || static_cast<uint32_t>(s->replicas_size()) != want) return false;
    for (const v1::Replica& r : s->replicas()) {
      if (r.guest_state() != v1::GUEST_STATE_RUNNING || !r.healthy()) return false;
    }
    return true;
  }

  // Node a's HAProxy's view of the service's servers (for failure messages).
  std::string DoorStats() {
    agent::frontdoor::HaproxyRuntime api(agents_["e2e-a"].state_dir / "frontdoor" / "api.sock");
    auto stat = api.Execute(std::string("show stat ") + kService + " 4 -1");
    return stat ? *stat : stat.error().message;
  }

  // Where node a's HAProxy sends the service's requests: "name address:port" per server.
  std::vector<std::string> DoorServers() {
    agent::frontdoor::HaproxyRuntime api(agents_["e2e-a"].state_dir / "frontdoor" / "api.sock");
    auto state = api.Execute(std::string("show servers state ") + kService);
    std::vector<std::string> out;
    if (!state) return out;
    std::istringstream lines(*state);
    for (std::string line; std::getline(lines, line);) {
      // be_id be_name srv_id srv_name srv_addr srv_op_state ... srv_port is field 19.
      std::istringstream fields(line);
      std::vector<std::string> f;
      for (std::string x; fields >> x;) f.push_back(x);
      if (f.size() > 18 && f[1] == kService) out.push_back(f[3] + " " + f[4] + ":" + f[18]);
    }
    return out;
  }

  static void Print(const char* phase, const Prober::Counts& c) {
    std::printf("front door, %s: %llu requests, %llu failed (%.3f%%), slowest %lld ms\n", phase,
                static_cast<unsigned long long>(c.sent), static_cast<unsigned long long>(c.failed),
                c.sent == 0 ? 0.0 : 100.0 * static_cast<double>(c.failed) / c.sent,
                static_cast<long long>(c.slowest.count()));
    for (const auto& [kind, n] : c.errors) std::printf("  %d x %s\n", n, kind.c_str());
  }
};

TEST_F(FrontDoorE2eTest, OneAddressKeepsAnsweringThroughReplicaAndHostDeathAndScaleIn) {
  const uint16_t port = testing::FreeLoopbackPort();
  ASSERT_NO_FATAL_FAILURE(CreateService(port));
  ASSERT_TRUE(WaitFor([&] { return AllHealthy(3); }, 120s)) << Describe();
  // Every node's front door serves once its table arrived.
  for (const char* node : {"e2e-a", "e2e-b", "e2e-c"}) {
    ASSERT_TRUE(WaitFor(
        [&] {
          auto r = testing::HttpGetAt(Address(node), port, "/health", 2s);
          return r && r->status == 200;
        },
        30s))
        << node << "'s front door at " << Address(node) << ":" << port << " does not answer\n"
        << Describe();
  }
  auto service = GetService();
  ASSERT_TRUE(service.has_value());
  EXPECT_EQ(service->front_door_addresses_size(), 3) << service->DebugString();
  // Every replica is reached at its own address on its node's instance network.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto servers = DoorServers();
        return servers.size() == 3 && std::ranges::all_of(servers, [](const std::string& s) {
                 return s.find(" 10.200.") != std::string::npos && s.ends_with(":80");
               });
      },
      10s))
      << "node a's HAProxy servers:\n"
      << DoorStats();
  for (const std::string& s : DoorServers()) std::printf("front door server %s\n", s.c_str());

  Prober prober(Address("e2e-a"), port);
  std::this_thread::sleep_for(3s);
  const Prober::Counts warm = prober.Take();
  Print("steady", warm);
  EXPECT_EQ(warm.failed, 0u);

  // 1. A replica's guest dies (on node b) and rises again.
  auto victim = ReplicaOn("e2e-b");
  ASSERT_TRUE(victim.has_value());
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    v1::KillGuestRequest req;
    req.set_name(victim->guest());
    v1::KillGuestResponse resp;
    grpc::Status s = agents_["e2e-b"].stub->KillGuest(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  std::this_thread::sleep_for(1s);
  ASSERT_TRUE(WaitFor([&] { return AllHealthy(3); }, 60s)) << Describe();
  std::this_thread::sleep_for(2s);
  const Prober::Counts replica_death = prober.Take();
  Print("a replica's guest SIGKILLed", replica_death);
  EXPECT_EQ(replica_death.failed, 0u);

  // 2. Agent b is SIGKILLed and started again: the data path does not run through it.
  agents_["e2e-b"].process.KillAndWait(SIGKILL, 10s);
  std::this_thread::sleep_for(1s);
  ASSERT_NO_FATAL_FAILURE(StartAgent(agents_["e2e-b"]));
  ASSERT_TRUE(WaitFor([&] { return AllHealthy(3); }, 60s)) << Describe();
  std::this_thread::sleep_for(2s);
  const Prober::Counts agent_restart = prober.Take();
  Print("agent b SIGKILLed and restarted", agent_restart);
  EXPECT_EQ(agent_restart.failed, 0u) << DoorStats();

  // 3. Host c dies: its agent is SIGKILLed and its link cut; its guest and HAProxy keep running
  // where nobody can reach them, until the host comes back and its guest is fenced.
  agents_["e2e-c"].process.KillAndWait(SIGKILL, 10s);
  ASSERT_TRUE(SetLink("e2e-c", false).empty());
  ASSERT_TRUE(WaitFor(
      [&] {
        auto s = GetService();
        if (!s || !AllHealthy(3)) return false;
        for (const v1::Replica& r : s->replicas()) {
          if (r.node() == "e2e-c") return false;
        }
        return true;
      },
      60s))
      << Describe();
  std::this_thread::sleep_for(2s);
  const Prober::Counts host_death = prober.Take();
  Print("host c lost (agent SIGKILLed, link cut)", host_death);
  EXPECT_LE(static_cast<double>(host_death.failed), 0.001 * static_cast<double>(host_death.sent))
      << DoorStats();

  // 4. Scale in: 3 -> 1, the leaving replicas drain.
  {
    grpc::ClientContext ctx;
    Authorize(ctx);
    v1::ScaleServiceRequest req;
    req.set_name(kService);
    req.set_replicas(1);
    v1::Service scaled;
    grpc::Status s = sup_->ScaleService(&ctx, req, &scaled);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  ASSERT_TRUE(WaitFor([&] { return AllHealthy(1); }, 60s)) << Describe();
  std::this_thread::sleep_for(8s);  // past the drain grace: the removed guests are gone
  const Prober::Counts scale_in = prober.Take();
  Print("scaled 3 -> 1", scale_in);
  EXPECT_EQ(scale_in.failed, 0u);

  // Host c comes back: its stale guest is fenced (stopped), so nothing is left behind.
  ASSERT_TRUE(SetLink("e2e-c", true).empty());
  ASSERT_NO_FATAL_FAILURE(StartAgent(agents_["e2e-c"]));
  EXPECT_TRUE(WaitFor([&] { return Guests(agents_["e2e-c"]).empty(); }, 60s)) << Describe();
}

}  // namespace
}  // namespace phoenix
