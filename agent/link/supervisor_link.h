// SupervisorLink: the agent's end of the supervisor link (phoenix.v1.AgentLink.Connect). It dials
// the supervisor, sends Hello (this node's NodeInfo, the applied assignment version, the images it
// holds), then a Status every Welcome.heartbeat_interval_ms and at once whenever a managed guest
// changes, and hands every Assignment to the AssignmentApplier. A lost link is redialled forever
// with exponential backoff and jitter; guests keep running meanwhile (static stability). On Start
// it re-applies the persisted assignment before the supervisor is even reached.
//
// Threads (gRPC's synchronous client API; none of them is the agent's event loop, so they may use
// the GuestManager's blocking bridge):
//   - the link thread dials, writes Hello and Status (it is the stream's only writer) and watches
//     the EventHub for changes of managed guests (bounded waits of 100 ms);
//   - a reader thread per connection reads Welcome, Assignments and front door tables (the stream's
//     only reader; tables go straight to Options::on_front_door);
//   - the apply thread applies the newest received assignment (older pending ones are superseded:
//     an assignment is the full list) and re-converges periodically, so a slow Delete never delays
//     heartbeats.
// Stop() cancels the stream and joins all three; call it before the event loop stops (the apply
// thread may be waiting for the loop), never from the loop.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "agent/frontdoor/front_door.h"
#include "agent/frontdoor/frontdoor_table.h"
#include "agent/image/image_store.h"
#include "agent/link/assignment_applier.h"
#include "agent/net/node_network.h"
#include "agent/reconcile/guest_manager.h"
#include "agent/state/agent_store.h"
#include "phoenix/v1/supervisor.grpc.pb.h"
#include "proto/support/error.h"
#include "proto/support/event_hub.h"

namespace phoenix::agent::link {

class SupervisorLink {
 public:
  struct Options {
    std::string target;  // supervisor HOST:PORT
    // Called on the link thread before every dial; may block (enrollment) and fail (retried with
    // backoff). Its error is logged as the reason the link is down.
    std::function<Result<std::shared_ptr<grpc::ChannelCredentials>>()> credentials;
    // Checked every renewal_check while a session is up; true ends the session so that the next
    // dial's credentials() renews the client certificate (enrollment.h), at most once per
    // renewal_retry while it stays due (the renewal failed). Null: never.
    std::function<bool()> renewal_due;
    std::chrono::milliseconds renewal_check{std::chrono::minutes(1)};
    std::chrono::milliseconds renewal_retry{std::chrono::hours(1)};
    // This node's NodeInfo exactly as the agent API reports it (called on the link thread).
    std::function<v1::NodeInfo()> node_info;
    // Every front door table received (on the reader thread; must not block). Null: ignored.
    std::function<void(frontdoor::FrontDoorTable)> on_front_door;
    // This node's front door load, for every Status (link thread; must not block). Null: none.
    std::function<frontdoor::FrontDoor::Load()> front_door_load;
    // The services this node's front door cannot serve (link thread; must not block). Null: none.
    std::function<std::vector<frontdoor::BlockedFrontend>()> front_door_blocked;
    // Every table's node routes, just before on_front_door (same thread; must not block for
    // long). Null: ignored (a node without an instance network).
    std::function<void(std::vector<net::PeerRoute>)> on_node_routes;
    std::string node_name;  // Guest.node in Status
    std::chrono::milliseconds initial_backoff{200};
    std::chrono::milliseconds max_backoff{5000};
    std::chrono::milliseconds default_heartbeat{1000};  // until Welcome says otherwise
    // How often the apply thread converges again on the persisted assignment (retries failures,
    // recreates a managed guest someone deleted).
    std::chrono::milliseconds reconverge_interval{5000};
  };

  // Counters for tests and logs.
  struct Stats {
    uint64_t sessions = 0;  // connections that got a Welcome
    uint64_t statuses = 0;  // Status messages written
    bool connected = false;
  };

  SupervisorLink(GuestManager& guests, AgentStore& store, ImageStore& images, EventHub& hub,
                 Options options);
  ~SupervisorLink();  // Stop()
  SupervisorLink(const SupervisorLink&) = delete;
  SupervisorLink& operator=(const SupervisorLink&) = delete;

  // Loads the persisted assignment and starts the threads. Call once.
  [[nodiscard]] Result<void> Start();
  // Idempotent; blocks until the threads have ended (bounded by the in-flight dial or apply).
  void Stop();

  Stats stats() const;
  uint64_t applied_version() const { return applier_.applied_version(); }

 private:
  void LinkLoop();
  // One connection: returns a description of why it ended; sets `welcomed` once Welcome arrived.
  std::string RunSession(const std::shared_ptr<grpc::ChannelCredentials>& creds, bool& welcomed);
  void ReadLoop(grpc::ClientReaderWriter<v1::AgentMessage, v1::SupervisorMessage>* stream,
                std::atomic<bool>& welcomed, std::atomic<bool>& ended);
  void ApplyLoop();
  v1::AgentMessage MakeHello();
  v1::AgentMessage MakeStatus();
  std::vector<std::string> ImageRefs();
  bool ManagedGuestChanged(uint64_t& seen);
  // Sleeps up to `d` unless stopping; false if stopping.
  bool SleepUnlessStopping(std::chrono::milliseconds d);
  std::chrono::milliseconds NextBackoff(std::chrono::milliseconds& current);

  GuestManager& guests_;
  AgentStore& store_;
  ImageStore& images_;
  EventHub& hub_;
  const Options options_;
  AssignmentApplier applier_;

  std::atomic<bool> stopping_{false};
  std::atomic<uint32_t> heartbeat_ms_;
  std::atomic<bool> status_due_{false};  // set by the apply thread after applying
  // Link thread only: a renewal that failed (the supervisor refused or was unreachable) ends no
  // session again before this, so a node whose renewal keeps failing does not redial every check.
  std::chrono::steady_clock::time_point next_renewal_reconnect_{};

  mutable std::mutex mu_;
  std::condition_variable cv_;                     // stop, new assignment
  grpc::ClientContext* active_context_ = nullptr;  // guarded by mu_; cancelled by Stop
  std::optional<v1::Assignment> pending_;          // guarded by mu_; newest unapplied
  Stats stats_;                                    // guarded by mu_

  std::thread link_thread_;
  std::thread apply_thread_;
  bool started_ = false;
};

}  // namespace phoenix::agent::link
