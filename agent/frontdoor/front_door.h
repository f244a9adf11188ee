// FrontDoor: keeps the node's HAProxy serving the latest FrontDoorTable (issue 12).
//
// Reconciles on its own worker thread, after every new table and once per tick:
//  - HAProxy: adopted when one already serves this state dir (the agent restarted), started when
//    none does, restarted when it dies, from the config file holding the last applied table.
//  - Frontends (a service added or removed, a port or mode changed): the new config is written to a
//    side file, validated with "haproxy -c", moved into place and loaded by a seamless reload. If
//    HAProxy rejects it, the previous config is written back and keeps serving; the table's error
//    is reported once (on_event and status().last_error) and retried only with a newer table.
//  - Ports: a service whose port is new to HAProxy is first checked by binding it here; one taken
//    by another process is left out of the config (never a half-configured HAProxy: the rest of
//    the table is served), listed in status().blocked, and checked again every tick.
//  - Servers only: through the Runtime API, with no reload: added (then their health check
//    enabled and made ready or draining), reweighted, drained, undrained; a server missing from
//    the table is put in maintenance (no new requests, in-flight ones go on) and deleted once its
//    last connection closed. The config file is rewritten too, so a restarted HAProxy starts from
//    the same state.
// Load: about once a second the worker reads HAProxy's per-server statistics (`show stat`) and
// keeps each replica's request rate, totals and in-flight requests as seen by this node's front
// door (load()); the supervisor sums them over the nodes.
// HAProxy runs only when there is something to serve: it is started for the first table with a
// service, or adopted at once when an earlier agent left one running (its pid file). While no
// table arrived since the agent started, an adopted HAProxy is left exactly as it is (static
// stability: the supervisor may be away); its own health checks still drop dead replicas.
//
// Threading: Apply() and status() from any thread. on_event runs on the worker thread and must not
// call back into the FrontDoor. The destructor stops the worker and leaves HAProxy running.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/frontdoor/frontdoor_table.h"
#include "agent/frontdoor/haproxy_process.h"
#include "agent/frontdoor/haproxy_stats.h"
#include "proto/support/error.h"

namespace phoenix::agent::frontdoor {

struct FrontDoorOptions {
  HaproxyFiles files;  // dir is created 0700 if missing
  FrontDoorSettings settings;
  std::string haproxy_binary = "/usr/sbin/haproxy";
  std::chrono::milliseconds tick{500};  // how often HAProxy's liveness and leftovers are checked
  std::chrono::milliseconds load_interval{1000};  // how often load() is refreshed
  // Something an operator should hear about: HAProxy (re)started or adopted, a table rejected, a
  // reload failed. Called on the worker thread.
  std::function<void(const std::string& message)> on_event;
};

// A service this node's front door cannot serve: its port is taken on the bind address by another
// process (or the address is not on this host). The rest of the table is served without it.
struct BlockedFrontend {
  std::string service;
  uint16_t port = 0;
  std::string reason;  // "port 8080 on 10.0.0.2 is taken by another process"
  bool operator==(const BlockedFrontend&) const = default;
};

struct FrontDoorStatus {
  uint64_t applied_version = 0;  // the last table HAProxy fully serves (0 = none yet)
  uint64_t latest_version = 0;   // the newest table received
  int haproxy_pid = -1;          // the master; -1 when not running
  uint64_t starts = 0;           // HAProxy starts by this FrontDoor (not counting an adoption)
  uint64_t reloads = 0;          // successful seamless reloads
  bool adopted = false;          // HAProxy was already running when this FrontDoor started
  std::string last_error;        // empty once the latest table is applied
  std::vector<BlockedFrontend> blocked;  // services of the latest table left out, and why
};

class FrontDoor {
 public:
  // Creates the directory and starts the worker, which adopts a running HAProxy at once.
  [[nodiscard]] static Result<std::unique_ptr<FrontDoor>> Start(FrontDoorOptions options);
  ~FrontDoor();
  FrontDoor(const FrontDoor&) = delete;
  FrontDoor& operator=(const FrontDoor&) = delete;

  // Hands over a new table. Ignored when its version is not above the newest received (fencing:
  // tables may arrive out of order across reconnects). kInvalidArgument (naming the field) for a
  // table ValidateTable refuses; nothing changes then.
  [[nodiscard]] Result<void> Apply(FrontDoorTable table);

  FrontDoorStatus status() const;

  struct Load {
    std::chrono::milliseconds window{0};  // the rates' window; 0: no sample yet
    std::vector<ServerLoad> servers;      // every server HAProxy has, by service and name
  };
  // The latest per-replica load this node's HAProxy measured; empty while it does not run.
  Load load() const;

  // Waits until the table of `version` (or a newer one) is applied, up to `timeout`. For tests and
  // for callers that must know the data plane changed.
  bool WaitApplied(uint64_t version, std::chrono::milliseconds timeout) const;

  // Stops HAProxy for good (the node gives up its front door; tests). The worker stays idle after.
  void StopHaproxy();

 private:
  explicit FrontDoor(FrontDoorOptions options);
  void Run();
  void EnsureHaproxy();
  void Sync(const FrontDoorTable& desired);
  // `desired` without the services whose ports HAProxy does not hold yet and cannot bind.
  FrontDoorTable Servable(const FrontDoorTable& desired,
                          std::vector<BlockedFrontend>& blocked) const;
  [[nodiscard]] Result<void> SyncFrontends(const FrontDoorTable& desired);
  [[nodiscard]] Result<void> SyncServers(const FrontDoorTable& desired);
  [[nodiscard]] Result<void> WriteConfig(const FrontDoorTable& table,
                                         const std::filesystem::path& file) const;
  void Report(const std::string& message);
  void SampleLoad();

  const FrontDoorOptions options_;
  HaproxyProcess haproxy_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::optional<FrontDoorTable> desired_;  // guarded by mu_
  FrontDoorStatus status_;                 // guarded by mu_
  Load load_;                              // guarded by mu_
  bool stopping_ = false;                  // guarded by mu_
  bool haproxy_given_up_ = false;          // guarded by mu_

  // Worker-thread state.
  std::optional<std::string> loaded_signature_;  // frontends HAProxy runs; unknown until known
  std::optional<FrontDoorTable> last_good_;      // the last table applied in full
  uint64_t failed_version_ = 0;                  // the table whose frontends HAProxy refused
  bool first_ensure_ = true;
  bool haproxy_wanted_ = false;  // an HAProxy was there to adopt, or a table had a service
  std::vector<ServerCounters> last_counters_;
  std::chrono::steady_clock::time_point last_sample_{};

  std::thread worker_;  // last: started after everything it uses exists
};

}  // namespace phoenix::agent::frontdoor
