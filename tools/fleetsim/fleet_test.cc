// The simulated fleet against the supervisor's real link service (insecure mode) in-process.
#include "tools/fleetsim/fleet.h"

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "supervisor/agents/link_service.h"
#include "tools/fleetsim/options.h"

namespace phoenix::fleetsim {
namespace {

using namespace std::chrono_literals;
using supervisor::AgentHello;
using supervisor::AgentLinkHandler;
using supervisor::AgentReport;
using supervisor::AgentSession;

constexpr uint64_t kAssignmentVersion = 5;

// Answers every hello with an assignment and remembers what each node said.
class RecordingHandler : public AgentLinkHandler {
 public:
  struct Node {
    std::string zone;
    uint32_t vcpus = 0;
    uint64_t reports = 0;
    uint64_t applied_version = 0;
    bool gone = false;
  };

  void AgentConnected(AgentSession* session, AgentHello hello) override {
    std::lock_guard lock(mu_);
    names_[session] = hello.node.name;
    nodes_[hello.node.name] = Node{.zone = hello.node.zone, .vcpus = hello.node.capacity.vcpus};
    session->SendAssignment({kAssignmentVersion, {}});
    cv_.notify_all();
  }
  void AgentReported(AgentSession* session, AgentReport report) override {
    std::lock_guard lock(mu_);
    Node& node = nodes_[names_.at(session)];
    ++node.reports;
    node.applied_version = report.applied_version;
    cv_.notify_all();
  }
  void AgentGone(AgentSession* session) override {
    std::lock_guard lock(mu_);
    nodes_[names_.at(session)].gone = true;
    cv_.notify_all();
  }
  std::chrono::milliseconds HeartbeatInterval() const override { return 100ms; }

  bool WaitFor(const std::function<bool(const std::map<std::string, Node>&)>& done) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 20s, [&] { return done(nodes_); });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<AgentSession*, std::string> names_;
  std::map<std::string, Node> nodes_;
};

TEST(FleetsimFleetTest, AgentsHelloHeartbeatAndAcknowledgeAssignments) {
  RecordingHandler handler;
  supervisor::agents::AgentLinkService service(handler, supervisor::agents::LinkSecurity::kInsecure,
                                               "test");
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  ASSERT_TRUE(server != nullptr);

  constexpr uint32_t kAgents = 12;
  {
    Fleet fleet("127.0.0.1:" + std::to_string(port), 3);
    for (uint32_t i = 0; i < kAgents; ++i) fleet.Add(i, grpc::InsecureChannelCredentials());

    // Every node acknowledges the assignment and keeps heartbeating at the Welcome's 100 ms.
    ASSERT_TRUE(handler.WaitFor([&](const auto& nodes) {
      if (nodes.size() != kAgents) return false;
      for (const auto& [name, node] : nodes) {
        if (node.applied_version != kAssignmentVersion || node.reports < 5) return false;
      }
      return true;
    }));
    Fleet::Counts counts = fleet.Read();
    EXPECT_EQ(counts.started, kAgents);
    EXPECT_EQ(counts.up, kAgents);
    EXPECT_EQ(counts.ended, 0u);
    EXPECT_EQ(counts.assignments, kAgents);
    EXPECT_GE(counts.heartbeats, 5u * kAgents);
    EXPECT_EQ(service.OpenStreams(), kAgents);

    EXPECT_TRUE(fleet.Stop(10s));
    counts = fleet.Read();
    EXPECT_EQ(counts.up, 0u);
    EXPECT_EQ(counts.ended, kAgents);
    EXPECT_TRUE(counts.first_error.empty()) << counts.first_error;
  }
  ASSERT_TRUE(handler.WaitFor([&](const auto& nodes) {
    for (const auto& [name, node] : nodes) {
      if (!node.gone) return false;
    }
    return true;
  }));
  handler.WaitFor([&](const auto& nodes) {
    EXPECT_EQ(nodes.at(NodeName(0)).zone, "sim-a");
    EXPECT_EQ(nodes.at(NodeName(1)).zone, "sim-b");
    EXPECT_EQ(nodes.at(NodeName(11)).zone, "sim-c");
    EXPECT_EQ(nodes.at(NodeName(0)).vcpus, 16u);
    return true;
  });
  server->Shutdown(std::chrono::system_clock::now());
}

TEST(FleetsimFleetTest, StreamsRefusedByTheSupervisorCountAsEndedWithTheReason) {
  RecordingHandler handler;
  // Mutual TLS expected, none offered: the link refuses every stream.
  supervisor::agents::AgentLinkService service(
      handler, supervisor::agents::LinkSecurity::kMutualTls, "test");
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  ASSERT_TRUE(server != nullptr);

  Fleet fleet("127.0.0.1:" + std::to_string(port), 3);
  for (uint32_t i = 0; i < 3; ++i) fleet.Add(i, grpc::InsecureChannelCredentials());
  for (int i = 0; i < 200 && fleet.Read().ended < 3; ++i) std::this_thread::sleep_for(10ms);
  Fleet::Counts counts = fleet.Read();
  EXPECT_EQ(counts.ended, 3u);
  EXPECT_EQ(counts.up, 0u);
  EXPECT_NE(counts.first_error.find("client certificate"), std::string::npos) << counts.first_error;
  EXPECT_TRUE(fleet.Stop(5s));
  server->Shutdown(std::chrono::system_clock::now());
}

}  // namespace
}  // namespace phoenix::fleetsim
