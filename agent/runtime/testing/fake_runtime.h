// FakeRuntime: an in-memory Runtime for reconciler tests. Instances "run" as entries in a map;
// tests inject start failures and emit lifecycle events (crash, exit) the way a real backend would,
// on the loop thread. Thread-safe (the manager calls it from its worker pool).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "agent/runtime/runtime.h"

namespace phoenix::agent::testing {

class FakeRuntime : public Runtime {
 public:
  explicit FakeRuntime(boost::asio::io_context& loop) : loop_(loop) {}

  RuntimeKind kind() const override { return RuntimeKind::kVm; }
  std::string Describe() const override { return "fake"; }
  bool Available() const override {
    std::lock_guard lock(mu_);
    return available_;
  }
  void Watch(std::function<void(const RuntimeEvent&)> on_event) override {
    std::lock_guard lock(mu_);
    on_event_ = std::move(on_event);
  }

  Result<InstanceInfo> Start(const InstanceSpec& spec) override {
    std::lock_guard lock(mu_);
    starts_.push_back(spec);
    if (!start_errors_.empty()) {
      Error e = start_errors_.front();
      start_errors_.pop_front();
      return std::unexpected(e);
    }
    if (running_.contains(spec.instance)) return AlreadyExists("instance " + spec.instance);
    running_[spec.instance] = spec.guest_id;
    InstanceInfo info;
    info.instance = spec.instance;
    info.pid = 1000 + static_cast<int>(starts_.size());
    info.boot = spec.boot_mode == BootMode::kCold ? BootMode::kCold : BootMode::kSnapshot;
    if (!golden_problem_.empty()) {
      info.boot = BootMode::kCold;
      info.golden_problem = std::move(golden_problem_);
      golden_problem_.clear();
    }
    info.start_duration = std::chrono::milliseconds(5);
    return info;
  }
  Result<void> Stop(const std::string& instance, std::chrono::milliseconds) override {
    std::lock_guard lock(mu_);
    stops_.push_back(instance);
    return {};
  }
  Result<void> Destroy(const std::string& instance) override {
    std::lock_guard lock(mu_);
    destroys_.push_back(instance);
    running_.erase(instance);
    return {};
  }
  Result<int> Kill(const std::string& instance) override {
    std::lock_guard lock(mu_);
    if (!running_.contains(instance)) return NotFound("instance " + instance);
    running_.erase(instance);
    boost::asio::post(loop_, [this, instance] {
      Emit(RuntimeEvent{RuntimeEvent::Kind::kStopped, instance, true, "killed (SIGKILL)"});
    });
    return 4242;
  }
  Result<std::vector<InstanceStatus>> List() override {
    std::lock_guard lock(mu_);
    if (list_fails_) return Unavailable("fake runtime is disconnected");
    std::vector<InstanceStatus> out;
    for (const auto& [name, guest_id] : running_) out.push_back({name, guest_id, true, 1});
    return out;
  }
  Result<void> PrepareGolden(const ImageArtifacts&, uint32_t, uint32_t) override {
    std::lock_guard lock(mu_);
    ++golden_prepared_;
    return {};
  }

  // --- test controls ---
  void SetAvailable(bool available) {
    std::lock_guard lock(mu_);
    available_ = available;
  }
  // A disconnected backend: List fails until reconnected; Connected() announces the return.
  void SetListFails(bool fails) {
    std::lock_guard lock(mu_);
    list_fails_ = fails;
  }
  void Connected() {
    boost::asio::post(loop_, [this] {
      Emit(RuntimeEvent{RuntimeEvent::Kind::kConnected, "", false, "reconnected"});
    });
  }
  // The next Start finds its golden snapshot bad and cold-boots, as real runtimes do.
  void BadGoldenOnNextStart(std::string problem) {
    std::lock_guard lock(mu_);
    golden_problem_ = std::move(problem);
  }
  void FailNextStart(Error e) {
    std::lock_guard lock(mu_);
    start_errors_.push_back(std::move(e));
  }
  // Simulates the instance dying by itself; the event arrives on the loop.
  void Crash(const std::string& instance, bool crashed = true) {
    {
      std::lock_guard lock(mu_);
      running_.erase(instance);
    }
    boost::asio::post(loop_, [this, instance, crashed] {
      Emit(RuntimeEvent{RuntimeEvent::Kind::kStopped, instance, crashed,
                        crashed ? "crashed" : "guest shut down"});
    });
  }
  // Pretends an instance already runs (as found after an agent restart).
  void AddRunning(const std::string& instance, const std::string& guest_id) {
    std::lock_guard lock(mu_);
    running_[instance] = guest_id;
  }
  std::vector<InstanceSpec> starts() const {
    std::lock_guard lock(mu_);
    return starts_;
  }
  std::vector<std::string> destroys() const {
    std::lock_guard lock(mu_);
    return destroys_;
  }
  std::vector<std::string> stops() const {
    std::lock_guard lock(mu_);
    return stops_;
  }
  std::map<std::string, std::string> running() const {
    std::lock_guard lock(mu_);
    return running_;
  }
  int golden_prepared() const {
    std::lock_guard lock(mu_);
    return golden_prepared_;
  }

 private:
  void Emit(const RuntimeEvent& event) {
    std::function<void(const RuntimeEvent&)> sink;
    {
      std::lock_guard lock(mu_);
      sink = on_event_;
    }
    if (sink) sink(event);
  }

  boost::asio::io_context& loop_;
  mutable std::mutex mu_;
  bool available_ = true;
  bool list_fails_ = false;
  std::function<void(const RuntimeEvent&)> on_event_;
  std::deque<Error> start_errors_;
  std::vector<InstanceSpec> starts_;
  std::vector<std::string> stops_;
  std::vector<std::string> destroys_;
  std::map<std::string, std::string> running_;  // instance -> guest id
  int golden_prepared_ = 0;
  std::string golden_problem_;
};

}  // namespace phoenix::agent::testing
