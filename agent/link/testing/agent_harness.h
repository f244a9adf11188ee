// Test helper: a real agent core (AgentStore, ImageStore with a "demo" VM image, GuestManager on
// its own loop thread, FakeRuntime) in a temp dir, restartable like a SIGKILLed agent (the stores
// are reopened, the fake instances keep running). Test code only.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "agent/reconcile/guest_manager.h"
#include "agent/runtime/testing/fake_runtime.h"
#include "agent/testing/temp_dir.h"

namespace phoenix::agent::testing {

class AgentHarness {
 public:
  AgentHarness() : dir_("phx-link-test") {
    namespace fs = std::filesystem;
    fs::create_directories(dir_.path() / "src");
    std::ofstream(dir_.path() / "src" / "vmlinux") << "kernel";
    std::ofstream(dir_.path() / "src" / "initrd.img") << "initrd";
    std::ofstream(dir_.path() / "src" / "manifest.env")
        << "PHOENIX_IMAGE_FORMAT=1\nNAME=demo\nKERNEL=vmlinux\nINITRD=initrd.img\n"
           "CMDLINE=console=ttyS0\nREADY_MARKER=PHOENIX-READY\nRUNTIMES=vm\n";
    OpenStores();
    auto imported = images_->Import(dir_.path() / "src", "demo", "latest");
    PHX_CHECK(imported.has_value());
    loop_ = std::make_unique<boost::asio::io_context>();
    runtime_ = std::make_unique<FakeRuntime>(*loop_);
    StartCore();
  }
  ~AgentHarness() { StopCore(); }

  // Kills the agent (not its guests) and starts a new one on the same state dir.
  void Restart() {
    StopCore();
    auto running = runtime_->running();
    runtime_.reset();
    store_.reset();
    images_.reset();
    OpenStores();
    loop_ = std::make_unique<boost::asio::io_context>();
    runtime_ = std::make_unique<FakeRuntime>(*loop_);
    for (const auto& [instance, guest_id] : running) runtime_->AddRunning(instance, guest_id);
    StartCore();
  }

  // Polls until `pred` holds for the named guest (bounded: 10 s).
  bool WaitGuest(const std::string& name, const std::function<bool(const GuestRecord&)>& pred) {
    for (int i = 0; i < 1000; ++i) {
      auto g = manager_->Get(name);
      if (g && pred(*g)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  bool WaitRunning(const std::string& name) {
    return WaitGuest(name, [](const GuestRecord& g) { return g.state == GuestState::kRunning; });
  }
  bool Exists(const std::string& name) { return manager_->Get(name).has_value(); }

  const std::filesystem::path& dir() const { return dir_.path(); }
  AgentStore& store() { return *store_; }
  ImageStore& images() { return *images_; }
  EventHub& hub() { return *hub_; }
  GuestManager& manager() { return *manager_; }
  FakeRuntime& runtime() { return *runtime_; }
  std::map<RuntimeKind, Runtime*> runtimes() { return {{RuntimeKind::kVm, runtime_.get()}}; }

 private:
  void OpenStores() {
    auto store = AgentStore::Open(dir_.path() / "agent.db");
    PHX_CHECK(store.has_value());
    store_ = std::move(*store);
    auto images = ImageStore::Open(dir_.path() / "images");
    PHX_CHECK(images.has_value());
    images_ = std::move(*images);
  }
  void StartCore() {
    pool_ = std::make_unique<boost::asio::thread_pool>(2);
    hub_ = std::make_unique<EventHub>(store_->LastSequence());
    GuestManager::Options options;
    options.guests_dir = dir_.path() / "guests";
    options.capacity = {8, 8192};
    options.call_timeout = std::chrono::seconds(10);
    manager_ = std::make_unique<GuestManager>(*loop_, *pool_, *store_, *images_, runtimes(), *hub_,
                                              options);
    PHX_CHECK(manager_->Recover().has_value());
    work_ = std::make_unique<WorkGuard>(loop_->get_executor());
    thread_ = std::thread([this] { loop_->run(); });
  }
  void StopCore() {
    if (!thread_.joinable()) return;
    work_.reset();
    loop_->stop();
    thread_.join();
    pool_->join();
    manager_.reset();
  }

  using WorkGuard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
  TempDir dir_;
  std::unique_ptr<AgentStore> store_;
  std::unique_ptr<ImageStore> images_;
  std::unique_ptr<boost::asio::io_context> loop_;
  std::unique_ptr<boost::asio::thread_pool> pool_;
  std::unique_ptr<FakeRuntime> runtime_;
  std::unique_ptr<EventHub> hub_;
  std::unique_ptr<GuestManager> manager_;
  std::unique_ptr<WorkGuard> work_;
  std::thread thread_;
};

}  // namespace phoenix::agent::testing
