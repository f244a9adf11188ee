// The controller's test fixture: a Controller on its own loop thread over a MemoryStateStore, fake
// agent sessions that record what the controller sends them, and helpers to connect nodes and
// report guests and load. Shared by controller_test.cc and controller_front_door_test.cc.
// Test-only.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "supervisor/reconcile/controller.h"
#include "supervisor/state/memory_state_store.h"

namespace phoenix::supervisor {

using namespace std::chrono_literals;
namespace asio = boost::asio;

// An agent's session as the controller sees it: records what it is sent.
class FakeSession : public AgentSession {
 public:
  void SendAssignment(const NodeAssignment& assignment) override {
    std::lock_guard lock(mu_);
    assignments_.push_back(assignment);
  }
  void SendFrontDoor(const FrontDoorTable& table) override {
    std::lock_guard lock(mu_);
    front_doors_.push_back(table);
  }
  std::optional<FrontDoorTable> LastFrontDoor() {
    std::lock_guard lock(mu_);
    if (front_doors_.empty()) return std::nullopt;
    return front_doors_.back();
  }
  void Close(const Error& error) override {
    std::lock_guard lock(mu_);
    closed_ = error.message;
  }
  std::optional<NodeAssignment> Last() {
    std::lock_guard lock(mu_);
    if (assignments_.empty()) return std::nullopt;
    return assignments_.back();
  }
  std::string closed() {
    std::lock_guard lock(mu_);
    return closed_;
  }

 private:
  std::mutex mu_;
  std::vector<NodeAssignment> assignments_;
  std::vector<FrontDoorTable> front_doors_;
  std::string closed_;
};

// A store that refuses every commit once told to, to prove nothing changes without a commit.
class FlakyStore : public StateStore {
 public:
  explicit FlakyStore(StateStore& inner) : inner_(inner) {}
  Result<ClusterSnapshotRecord> Load() override { return inner_.Load(); }
  Result<CommitResult> Commit(const CommitBatch& batch) override {
    if (refuse_) return Unavailable("disk on fire");
    return inner_.Commit(batch);
  }
  Result<std::vector<ClusterEvent>> EventsSince(uint64_t from, size_t limit) override {
    return inner_.EventsSince(from, limit);
  }
  std::atomic<bool> refuse_{false};

 private:
  StateStore& inner_;
};

class ControllerTest : public testing::Test {
 protected:
  void SetUp() override { Start(); }
  void TearDown() override { Stop(); }

  void Start() {
    loop_ = std::make_unique<asio::io_context>();
    Controller::Options options;
    options.suspect_after = 150ms;
    options.down_after = 300ms;
    options.tick = 20ms;
    options.autoscale_interval = 50ms;
    options.drain_grace = 300ms;
    options.drain_deadline = drain_deadline_;
    controller_ = std::make_unique<Controller>(*loop_, store_, hub_, options);
    ASSERT_TRUE(controller_->Recover());
    work_ = std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
        loop_->get_executor());
    thread_ = std::thread([this] { loop_->run(); });
  }

  void Stop() {
    if (!loop_) return;
    work_.reset();
    loop_->stop();
    thread_.join();
    controller_.reset();
    loop_.reset();
  }

  // Waits until everything posted so far has run on the loop.
  void Sync() {
    std::promise<void> done;
    asio::post(*loop_, [&] { done.set_value(); });
    done.get_future().wait();
  }

  AgentHello Hello(const std::string& name, const std::string& zone, uint64_t applied = 0) {
    AgentHello hello;
    hello.node.name = name;
    hello.node.zone = zone;
    hello.node.capacity = {8, 8192};
    hello.node.runtimes = {RuntimeKind::kContainer};
    hello.applied_version = applied;
    return hello;
  }

  void Connect(const std::string& name, const std::string& zone, uint64_t applied = 0) {
    sessions_[name] = std::make_unique<FakeSession>();
    controller_->AgentConnected(sessions_[name].get(), Hello(name, zone, applied));
    Sync();
  }

  // Reports every assigned guest as running (what a healthy agent does).
  void ReportAssigned(const std::string& name, std::vector<std::string> extra_guests = {}) {
    AgentReport report;
    std::optional<NodeAssignment> a = sessions_.at(name)->Last();
    if (a) {
      report.applied_version = a->version;
      for (const AssignedReplica& r : a->replicas) {
        report.guests.push_back({r.guest, ReplicaObservation{.guest_state = GuestState::kRunning}});
      }
    }
    for (std::string& g : extra_guests) {
      report.guests.push_back({g, ReplicaObservation{.guest_state = GuestState::kRunning}});
    }
    controller_->AgentReported(sessions_.at(name).get(), report);
    Sync();
  }

  // Reports every assigned guest running with a new rps sample (nullopt: no metrics at all).
  void ReportLoad(const std::string& name, std::optional<double> rps) {
    AgentReport report;
    std::optional<NodeAssignment> a = sessions_.at(name)->Last();
    if (a) {
      report.applied_version = a->version;
      for (const AssignedReplica& r : a->replicas) {
        ReplicaObservation o{.guest_state = GuestState::kRunning, .reported_at = Clock::now()};
        if (rps) {
          o.metrics = GuestMetrics{.sampled_at = Clock::now(),
                                   .window_ms = 1000,
                                   .requests_valid = true,
                                   .requests_per_second = *rps};
        }
        report.guests.push_back({r.guest, o});
      }
    }
    controller_->AgentReported(sessions_.at(name).get(), report);
    Sync();
  }

  // Keeps every node reporting `rps` per replica until `done` (bounded).
  bool PumpUntil(std::function<std::optional<double>(const std::string&)> rps_of,
                 const std::function<bool()>& done, std::chrono::milliseconds limit) {
    for (auto deadline = std::chrono::steady_clock::now() + limit;
         std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(25ms)) {
      for (const auto& [node, _] : sessions_) ReportLoad(node, rps_of(node));
      if (done()) return true;
    }
    return done();
  }

  uint32_t Replicas(const std::string& service) {
    auto s = controller_->GetService(service);
    return s ? s->service.spec.replicas : 0;
  }

  static AutoscalePolicy Rps100(uint32_t down_window_s) {
    return AutoscalePolicy{.min_replicas = 1,
                           .max_replicas = 6,
                           .metric = AutoscaleMetric::kRps,
                           .target = 100,
                           .scale_down_stabilization_s = down_window_s};
  }

  ServiceSpec Spec(std::string name, uint32_t replicas) {
    ServiceSpec spec;
    spec.name = std::move(name);
    spec.image = "demo:latest";
    spec.replicas = replicas;
    spec.memory_mib = 128;
    spec.spread_attribute = "zone";
    spec.guest_template = "template-bytes";
    return spec;
  }

  std::map<std::string, int> ZoneCounts(const ServiceStatus& s) {
    std::map<std::string, int> counts;
    for (const ReplicaStatus& r : s.replicas) counts[r.zone]++;
    return counts;
  }

  std::vector<ClusterEventType> EventTypes() {
    auto events = store_.EventsSince(0, 1000);
    std::vector<ClusterEventType> types;
    for (const ClusterEvent& e : *events) types.push_back(e.type);
    return types;
  }

  // Polls (bounded) until `done` holds.
  bool Eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = 3s) {
    for (auto deadline = std::chrono::steady_clock::now() + limit;
         std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(10ms)) {
      if (done()) return true;
    }
    return done();
  }

  void ConnectThreeZones() {
    Connect("n-a", "a");
    Connect("n-b", "b");
    Connect("n-c", "c");
  }

  std::chrono::milliseconds drain_deadline_{1500};
  MemoryStateStore store_;
  EventHub hub_;
  std::unique_ptr<asio::io_context> loop_;
  std::unique_ptr<Controller> controller_;
  std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
  std::map<std::string, std::unique_ptr<FakeSession>> sessions_;
};

}  // namespace phoenix::supervisor
