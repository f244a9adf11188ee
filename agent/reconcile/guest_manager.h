// GuestManager: the agent's reconciler. It holds every guest's desired state (the user's intent)
// and actual state (what the runtimes report), and it is the only place that decides to start,
// stop, destroy or restart an instance. Decisions it cannot derive from one event alone are pure
// functions in decisions.h.
//
// A guest runs as a sequence of instances ("phx-<name>-<n>"); every start is a fresh instance from
// the golden image (new overlay), so nothing a crashed instance wrote survives. The instance name
// is persisted *before* the runtime is asked to start it, which is what lets a restarted agent tell
// its own running instance from a leftover (see PlanAdoption) and never run a guest twice.
//
// Metrics: once per Options::metrics_interval the loop samples every running guest's CPU, memory
// and proxy request counters (agent/metrics) into GuestRecord::metrics, which Get/List return.
//
// Threading: all state lives on the agent's event loop (the io_context). Blocking runtime calls run
// on the worker pool and post their completions back to the loop. The public methods are the
// bridge for gRPC threads: they post to the loop and block the *calling* thread until the loop has
// an answer, so they must never be called from the loop itself. Recover() runs before the loop
// serves anything else. Destroy the manager only after the loop and the pool have stopped.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "agent/guest/event.h"
#include "agent/guest/guest.h"
#include "agent/image/image_store.h"
#include "agent/metrics/usage_reader.h"
#include "agent/reconcile/decisions.h"
#include "proto/support/event_hub.h"
#include "agent/runtime/runtime.h"
#include "agent/state/agent_store.h"
#include "proto/support/error.h"

namespace phoenix::agent {

namespace net {
class PortProxy;
}
namespace health {
class HealthMonitor;
}

struct NodeResources {
  uint32_t vcpus = 0;
  uint64_t memory_mib = 0;
};

class GuestManager {
 public:
  struct Options {
    std::filesystem::path guests_dir;  // one directory per guest id: overlays, console log
    NodeResources capacity;            // memory admission: desired guests must fit
    // An instance that runs this long without a failure (or turns healthy) resets the crash-loop
    // backoff.
    std::chrono::milliseconds stable_after{10000};
    // How long a blocking API call waits for the loop before giving up (the loop is never busy
    // that long unless something is badly wrong).
    std::chrono::milliseconds call_timeout{std::chrono::minutes(10)};
    // How often guests' metrics are sampled; 0 = never (GuestRecord::metrics stays empty).
    std::chrono::milliseconds metrics_interval{1000};
    // Where CPU and memory come from; nullptr = the host's /proc and /sys/fs/cgroup.
    metrics::UsageReader* usage_reader = nullptr;
  };

  GuestManager(boost::asio::io_context& loop, boost::asio::thread_pool& pool, AgentStore& store,
               ImageStore& images, std::map<RuntimeKind, Runtime*> runtimes, EventHub& hub,
               Options options);
  ~GuestManager();
  GuestManager(const GuestManager&) = delete;
  GuestManager& operator=(const GuestManager&) = delete;

  // Loads persisted guests, lists the runtimes' instances, re-adopts what still runs and restarts
  // or cleans up the rest. Call once, from the thread that will run the loop, before loop.run().
  [[nodiscard]] Result<void> Recover();

  // --- Blocking bridge for API threads (never call from the loop) ---
  // Accepts a validated spec: resolves the image, admits memory, publishes ports, persists the
  // guest and starts it. Returns once the guest is accepted (state PENDING or STARTING).
  [[nodiscard]] Result<GuestRecord> Run(GuestSpec spec);
  [[nodiscard]] Result<GuestRecord> Get(const std::string& name);
  std::vector<GuestRecord> List();
  // Marks the guest to run again (also after FAILED); returns at once.
  [[nodiscard]] Result<GuestRecord> Start(const std::string& name);
  // Graceful shutdown up to `grace`, then hard stop; returns once STOPPED.
  [[nodiscard]] Result<GuestRecord> Stop(const std::string& name, std::chrono::milliseconds grace);
  // Destroys the instance, unpublishes ports, removes the guest's files and record.
  [[nodiscard]] Result<void> Delete(const std::string& name);
  // Chaos drill: SIGKILL of the current instance's process; the crash path then runs as usual.
  [[nodiscard]] Result<int> Kill(const std::string& name);
  [[nodiscard]] Result<std::filesystem::path> LogPath(const std::string& name);
  NodeResources Allocated();

 private:
  struct Entry;
  using Reply = std::function<void(Result<GuestRecord>)>;

  // Posts `body` to the loop and waits for it to call its reply.
  template <typename T>
  Result<T> CallOnLoop(std::function<void(std::function<void(Result<T>)>)> body);
  // Runs `work` on the pool and `done` with its result on the loop.
  template <typename T>
  void Offload(std::function<T()> work, std::function<void(T)> done);

  // Loop-thread internals.
  void RunOnLoop(GuestSpec spec, std::function<void(Result<GuestRecord>)> reply);
  Entry* Find(const std::string& name);
  Entry* FindByInstance(const std::string& instance);
  void Reconcile(Entry& e);
  void StartInstance(Entry& e);
  void OnStarted(const std::string& name, const std::string& instance, Result<InstanceInfo> r);
  void HandleExit(Entry& e, ExitCause cause, std::string reason);
  void OnRuntimeEvent(Runtime* runtime, const RuntimeEvent& event);
  void OnHealth(const std::string& name, const std::string& instance, bool healthy,
                const std::string& detail);
  // After listing: keeps the guest's instance if `adopt` names the guest, else forgets it.
  void AdoptOrReset(Entry& e, const std::set<std::string>& adopt,
                    const std::vector<InstanceStatus>& instances);
  void AttachInstance(Entry& e);  // proxies -> backends, health monitor, stability timer
  void DetachInstance(Entry& e);  // the reverse; the instance itself is left to the caller
  void FinishDelete(Entry& e);
  void PrepareGoldenInBackground(const Entry& e);
  void Persist(Entry& e);
  void Emit(EventType type, const std::string& guest, std::string message);
  Result<void> PublishPorts(Entry& e);
  InstanceSpec MakeInstanceSpec(const Entry& e) const;
  Runtime* RuntimeFor(RuntimeKind kind) const;
  NodeResources AllocatedOnLoop() const;
  void ScheduleMetrics();
  void SampleMetrics();

  boost::asio::io_context& loop_;
  boost::asio::thread_pool& pool_;
  AgentStore& store_;
  ImageStore& images_;
  const std::map<RuntimeKind, Runtime*> runtimes_;
  EventHub& hub_;
  const Options options_;

  std::map<std::string, std::unique_ptr<Entry>> guests_;  // by name; loop thread only
  std::set<std::string> golden_in_flight_;                // loop thread only
  std::unique_ptr<metrics::UsageReader> own_usage_reader_;  // when Options gave none
  metrics::UsageReader* usage_reader_;
  boost::asio::steady_timer metrics_timer_;
};

}  // namespace phoenix::agent
