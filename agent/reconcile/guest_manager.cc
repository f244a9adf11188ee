#include "agent/reconcile/guest_manager.h"

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <future>
#include <random>
#include <system_error>

#include <spdlog/spdlog.h>

#include "agent/health/health_monitor.h"
#include "agent/metrics/guest_sampler.h"
#include "agent/net/port_allocator.h"
#include "agent/net/port_proxy.h"

namespace phoenix::agent {

namespace asio = boost::asio;
using std::chrono::milliseconds;

struct GuestManager::Entry {
  Entry(asio::io_context& loop, metrics::UsageReader& usage)
      : restart_timer(loop), stable_timer(loop), unhealthy_timer(loop), sampler(usage) {}

  GuestRecord rec;
  ImageArtifacts image;
  std::vector<std::unique_ptr<net::PortProxy>> proxies;  // one per rec.spec.ports entry
  std::unique_ptr<health::HealthMonitor> health;
  asio::steady_timer restart_timer;
  asio::steady_timer stable_timer;
  // Armed while the instance is unhealthy: when it fires the instance has stayed unhealthy for
  // spec.health.restart_after_unhealthy_ms and is restarted (liveness).
  asio::steady_timer unhealthy_timer;
  bool restart_pending = false;  // restart_timer armed
  bool op_in_flight = false;     // a runtime Start/Stop/Destroy for this guest is running
  bool deleting = false;
  // Its runtime could not list instances when the agent started: whether its recorded instance
  // still runs is unknown, so nothing is decided for it until the runtime connects.
  bool awaiting_runtime = false;
  // Where the current instance's guest ports live: empty = host loopback at backend_ports,
  // else a network namespace file in which the guest listens on 127.0.0.1:<guest_port>.
  std::filesystem::path netns;
  std::string guest_address = "127.0.0.1";  // the guest's address inside netns
  // The node-network address of the guest's latest instance: the next instance asks for it again,
  // so the front door's table stays right across restarts even while the supervisor is away.
  std::string last_node_address;
  std::string died_while_starting;  // set when the runtime reported a stop before Start returned
  milliseconds stop_grace{10000};
  std::vector<Reply> stop_waiters;
  std::vector<std::function<void(Result<void>)>> delete_waiters;
  int pid = 0;  // the current instance's hypervisor / container init process; 0 = unknown
  metrics::GuestSampler sampler;
};

namespace {

std::string NewGuestId() {
  std::random_device rd;
  std::mt19937_64 gen((static_cast<uint64_t>(rd()) << 32) ^ rd());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(16, '0');
  for (char& c : id) c = kHex[gen() % 16];
  return id;
}

bool IsPermanent(const Error& e) {
  return e.code == ErrorCode::kNotFound || e.code == ErrorCode::kInvalidArgument ||
         e.code == ErrorCode::kFailedPrecondition;
}

// "10 s", "1500 ms": for event messages.
std::string FormatMillis(milliseconds d) {
  return d.count() % 1000 == 0 ? std::to_string(d.count() / 1000) + " s"
                               : std::to_string(d.count()) + " ms";
}

}  // namespace

GuestManager::GuestManager(asio::io_context& loop, asio::thread_pool& pool, AgentStore& store,
                           ImageStore& images, std::map<RuntimeKind, Runtime*> runtimes,
                           EventHub& hub, Options options)
    : loop_(loop),
      pool_(pool),
      store_(store),
      images_(images),
      runtimes_(std::move(runtimes)),
      hub_(hub),
      options_(std::move(options)),
      usage_reader_(options_.usage_reader),
      metrics_timer_(loop) {
  if (usage_reader_ == nullptr) {
    own_usage_reader_ = std::make_unique<metrics::ProcUsageReader>();
    usage_reader_ = own_usage_reader_.get();
  }
  for (auto& [kind, runtime] : runtimes_) {
    runtime->Watch([this, r = runtime](const RuntimeEvent& event) { OnRuntimeEvent(r, event); });
  }
}

GuestManager::~GuestManager() = default;

template <typename T>
Result<T> GuestManager::CallOnLoop(std::function<void(std::function<void(Result<T>)>)> body) {
  auto promise = std::make_shared<std::promise<Result<T>>>();
  auto future = promise->get_future();
  asio::post(loop_, [body = std::move(body), promise]() mutable {
    body([promise](Result<T> r) { promise->set_value(std::move(r)); });
  });
  if (future.wait_for(options_.call_timeout) != std::future_status::ready) {
    return MakeError(ErrorCode::kDeadlineExceeded, "the agent's event loop did not answer in time");
  }
  return future.get();
}

template <typename T>
void GuestManager::Offload(std::function<T()> work, std::function<void(T)> done) {
  asio::post(pool_, [this, work = std::move(work), done = std::move(done)]() mutable {
    auto result = std::make_shared<T>(work());
    asio::post(loop_, [done = std::move(done), result]() mutable { done(std::move(*result)); });
  });
}

Runtime* GuestManager::RuntimeFor(RuntimeKind kind) const {
  auto it = runtimes_.find(kind);
  return it == runtimes_.end() ? nullptr : it->second;
}

GuestManager::Entry* GuestManager::Find(const std::string& name) {
  auto it = guests_.find(name);
  return it == guests_.end() || it->second->deleting ? nullptr : it->second.get();
}

GuestManager::Entry* GuestManager::FindByInstance(const std::string& instance) {
  for (auto& [name, e] : guests_) {
    if (!instance.empty() && e->rec.instance == instance) return e.get();
  }
  return nullptr;
}

void GuestManager::Persist(Entry& e) {
  e.rec.updated_at = Clock::now();
  if (auto r = store_.PutGuest(e.rec); !r) {
    // The loop cannot stop for a disk error; the next change retries the write. Loudly visible.
    spdlog::error("persisting guest {}: {}", e.rec.spec.name, r.error().ToString());
  }
}

void GuestManager::Emit(EventType type, const std::string& guest, std::string message) {
  spdlog::info("{}{}{}", guest, guest.empty() ? "" : ": ", message);
  auto stored = store_.AppendEvent(EventRecord{0, Clock::now(), type, guest, std::move(message)});
  if (!stored) {
    spdlog::error("recording event: {}", stored.error().ToString());
    return;
  }
  hub_.Published(stored->sequence);
}

InstanceSpec GuestManager::MakeInstanceSpec(const Entry& e) const {
  InstanceSpec s;
  s.instance = e.rec.instance;
  s.guest_id = e.rec.id;
  s.guest_name = e.rec.spec.name;
  s.image = e.image;
  s.vcpus = e.rec.spec.vcpus;
  s.memory_mib = e.rec.spec.memory_mib;
  s.command = e.rec.spec.command.empty() ? e.image.command : e.rec.spec.command;
  for (const auto& [k, v] : e.rec.spec.env) s.env.emplace_back(k, v);
  for (size_t i = 0; i < e.rec.spec.ports.size(); ++i) {
    s.ports.push_back(PortForward{e.rec.spec.ports[i].guest_port, e.rec.backend_ports.at(i)});
  }
  s.guest_dir = options_.guests_dir / e.rec.id;
  s.log_path = s.guest_dir / "console.log";
  s.boot_mode = e.rec.spec.boot_mode;
  s.node_address_hint = e.last_node_address;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Recovery

Result<void> GuestManager::Recover() {
  auto records = store_.LoadGuests();
  if (!records) return std::unexpected(records.error().Wrap("loading guest records"));

  std::vector<InstanceStatus> instances;
  std::map<std::string, Runtime*> owner;  // instance -> the runtime that reported it
  std::set<RuntimeKind> unlisted;
  for (auto& [kind, runtime] : runtimes_) {
    auto listed = runtime->List();
    if (!listed) {
      // Its instances may well still run (QEMU outlives libvirtd): its guests wait for the
      // runtime's kConnected event rather than being started twice.
      spdlog::warn("listing {} instances: {}", RuntimeKindName(kind), listed.error().ToString());
      unlisted.insert(kind);
      continue;
    }
    for (const InstanceStatus& i : *listed) owner[i.instance] = runtime;
    instances.insert(instances.end(), listed->begin(), listed->end());
  }
  std::vector<GuestRecord> decidable;
  for (const GuestRecord& rec : *records) {
    if (!unlisted.contains(rec.spec.runtime)) decidable.push_back(rec);
  }
  AdoptionPlan plan = PlanAdoption(decidable, instances);

  for (GuestRecord& rec : *records) {
    auto e = std::make_unique<Entry>(loop_, *usage_reader_);
    e->rec = std::move(rec);
    auto image = images_.Resolve(e->rec.image_id);
    if (!image) {
      spdlog::error("guest {}: image {} is gone: {}", e->rec.spec.name, e->rec.image_id,
                    image.error().ToString());
      e->rec.state = GuestState::kFailed;
      e->rec.last_exit_reason = "image " + e->rec.image_id + " is no longer in the image store";
      e->rec.instance.clear();
    } else {
      e->image = image->artifacts;
    }
    if (auto r = PublishPorts(*e); !r) {
      spdlog::error("guest {}: cannot publish its ports again: {}", e->rec.spec.name,
                    r.error().ToString());
    }
    e->awaiting_runtime = unlisted.contains(e->rec.spec.runtime);
    guests_[e->rec.spec.name] = std::move(e);
  }
  for (const std::string& instance : plan.destroy) {
    if (auto r = owner.at(instance)->Destroy(instance); !r) {
      spdlog::warn("removing leftover instance {}: {}", instance, r.error().ToString());
      continue;
    }
    spdlog::info("removed leftover instance {}", instance);
  }
  const std::set<std::string> adopt(plan.adopt.begin(), plan.adopt.end());
  for (auto& [name, e] : guests_) {
    if (!e->awaiting_runtime) AdoptOrReset(*e, adopt, instances);
  }
  for (auto& [name, e] : guests_) Reconcile(*e);
  ScheduleMetrics();
  spdlog::info("recovered {} guests: {} adopted, {} to restart, {} leftovers removed",
               guests_.size(), plan.adopt.size(), plan.restart.size(), plan.destroy.size());
  return {};
}

void GuestManager::AdoptOrReset(Entry& e, const std::set<std::string>& adopt,
                                const std::vector<InstanceStatus>& instances) {
  e.awaiting_runtime = false;
  if (adopt.contains(e.rec.id)) {
    for (const InstanceStatus& i : instances) {
      if (i.instance == e.rec.instance) {
        e.netns = i.netns;
        e.guest_address = i.guest_address;
        e.rec.node_address = i.node_address;
        if (!i.node_address.empty()) e.last_node_address = i.node_address;
      }
    }
    for (const InstanceStatus& i : instances) {
      if (i.instance == e.rec.instance) e.pid = i.pid;
    }
    e.rec.state = GuestState::kRunning;
    e.rec.healthy = false;
    AttachInstance(e);
    Persist(e);
    Emit(EventType::kGuestAdopted, e.rec.spec.name,
         "re-adopted running instance " + e.rec.instance);
  } else if (!e.rec.instance.empty()) {
    // Its instance is gone (or was just removed): the guest starts afresh if it should run.
    e.rec.instance.clear();
    if (e.rec.desired_running && e.rec.state != GuestState::kFailed) {
      e.rec.state = GuestState::kPending;
      e.rec.last_exit_reason = "instance was gone when the agent restarted";
    } else if (!e.rec.desired_running) {
      e.rec.state = GuestState::kStopped;
    }
    Persist(e);
  }
}

// ---------------------------------------------------------------------------------------------
// Ports

Result<void> GuestManager::PublishPorts(Entry& e) {
  e.proxies.clear();
  e.rec.backend_ports.resize(e.rec.spec.ports.size(), 0);
  for (size_t i = 0; i < e.rec.spec.ports.size(); ++i) {
    PortMapping& p = e.rec.spec.ports[i];
    auto proxy = net::PortProxy::Listen(loop_, p.host_ip, p.host_port);
    if (!proxy) {
      Error err = proxy.error();
      err.field = "spec.ports[" + std::to_string(i) + "].host_port";
      if (err.code != ErrorCode::kInvalidArgument) err.code = ErrorCode::kFailedPrecondition;
      e.proxies.clear();
      return std::unexpected(err);
    }
    p.host_port = (*proxy)->port();
    e.proxies.push_back(std::move(*proxy));
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// The reconcile step: compares intent with reality and issues at most one runtime operation.

void GuestManager::Reconcile(Entry& e) {
  if (e.op_in_flight) return;      // its completion calls Reconcile again
  if (e.awaiting_runtime) return;  // adopted or reset when its runtime connects
  const std::string name = e.rec.spec.name;

  if (e.deleting) {
    if (!e.rec.instance.empty()) {
      const std::string instance = e.rec.instance;
      Runtime* runtime = RuntimeFor(e.rec.spec.runtime);
      e.op_in_flight = true;
      Offload<Result<void>>([runtime, instance] { return runtime->Destroy(instance); },
                            [this, name, instance](Result<void> r) {
                              auto it = guests_.find(name);
                              if (it == guests_.end()) return;
                              Entry& e = *it->second;
                              e.op_in_flight = false;
                              if (!r) {
                                for (auto& w : e.delete_waiters) w(std::unexpected(r.error()));
                                e.delete_waiters.clear();
                                e.deleting = false;
                                return;
                              }
                              e.rec.instance.clear();
                              Reconcile(e);
                            });
      return;
    }
    FinishDelete(e);
    return;
  }

  if (!e.rec.desired_running) {
    if (e.restart_pending) {
      e.restart_timer.cancel();
      e.restart_pending = false;
    }
    if (!e.rec.instance.empty()) {
      const std::string instance = e.rec.instance;
      Runtime* runtime = RuntimeFor(e.rec.spec.runtime);
      DetachInstance(e);
      e.rec.state = GuestState::kStopping;
      Persist(e);
      e.op_in_flight = true;
      const milliseconds grace = e.stop_grace;
      Offload<Result<void>>(
          [runtime, instance, grace]() -> Result<void> {
            if (auto r = runtime->Stop(instance, grace);
                !r && r.error().code != ErrorCode::kNotFound) {
              spdlog::warn("graceful stop of {}: {}; destroying", instance, r.error().ToString());
            }
            return runtime->Destroy(instance);
          },
          [this, name, instance](Result<void> r) {
            Entry* e = Find(name);
            if (e == nullptr) return;
            e->op_in_flight = false;
            if (!r) {
              e->rec.last_exit_reason = "stop failed: " + r.error().ToString();
              for (auto& w : e->stop_waiters) w(std::unexpected(r.error()));
              e->stop_waiters.clear();
              Persist(*e);
              return;
            }
            if (e->rec.instance == instance) e->rec.instance.clear();
            Reconcile(*e);
          });
      return;
    }
    if (e.rec.state != GuestState::kStopped && e.rec.state != GuestState::kFailed) {
      e.rec.state = GuestState::kStopped;
      e.rec.healthy = false;
      Persist(e);
      Emit(EventType::kGuestStopped, name, "stopped on request");
    }
    for (auto& w : e.stop_waiters) w(e.rec);
    e.stop_waiters.clear();
    return;
  }

  // Should run.
  if (!e.rec.instance.empty()) return;  // running or starting; events drive what comes next
  if (e.restart_pending || e.rec.state == GuestState::kFailed) return;
  StartInstance(e);
}

void GuestManager::StartInstance(Entry& e) {
  Runtime* runtime = RuntimeFor(e.rec.spec.runtime);
  const std::string name = e.rec.spec.name;
  if (runtime == nullptr) {
    e.rec.state = GuestState::kFailed;
    e.rec.last_exit_reason = "runtime " + std::string(RuntimeKindName(e.rec.spec.runtime)) +
                             " is not available on this node";
    Persist(e);
    Emit(EventType::kGuestFailed, name, e.rec.last_exit_reason);
    return;
  }
  // Backend ports are where the runtime exposes guest ports on loopback for this instance.
  for (size_t i = 0; i < e.rec.spec.ports.size(); ++i) {
    auto port = net::PickFreeLoopbackPort();
    if (!port) {
      HandleExit(e, ExitCause::kStartFailed, "no free loopback port: " + port.error().ToString());
      return;
    }
    e.rec.backend_ports[i] = *port;
  }
  e.died_while_starting.clear();
  e.rec.instance_seq += 1;
  e.rec.instance = "phx-" + name + "-" + std::to_string(e.rec.instance_seq);
  e.rec.state = GuestState::kStarting;
  e.rec.healthy = false;
  Persist(e);  // before the runtime call: a restarted agent must know this instance is ours
  const bool snapshot = e.rec.spec.boot_mode != BootMode::kCold;
  Emit(EventType::kGuestStarting, name,
       "starting instance " + e.rec.instance + (snapshot ? "" : " (cold boot)"));

  std::error_code ec;
  std::filesystem::create_directories(options_.guests_dir / e.rec.id, ec);
  InstanceSpec spec = MakeInstanceSpec(e);
  e.op_in_flight = true;
  const std::string instance = e.rec.instance;
  Offload<Result<InstanceInfo>>(
      [runtime, spec] { return runtime->Start(spec); },
      [this, name, instance](Result<InstanceInfo> r) { OnStarted(name, instance, std::move(r)); });
}

void GuestManager::OnStarted(const std::string& name, const std::string& instance,
                             Result<InstanceInfo> r) {
  auto it = guests_.find(name);
  if (it == guests_.end()) return;
  Entry& e = *it->second;
  e.op_in_flight = false;
  if (!r) {
    e.rec.instance.clear();  // a failed Start leaves nothing behind
    Error err = r.error();
    if (IsPermanent(err) && !e.deleting) {
      e.rec.state = GuestState::kFailed;
      e.rec.last_exit_reason = "start failed: " + err.ToString();
      e.rec.consecutive_failures += 1;
      Persist(e);
      Emit(EventType::kGuestFailed, name, e.rec.last_exit_reason);
      Reconcile(e);
      return;
    }
    HandleExit(e, ExitCause::kStartFailed, "start failed: " + err.ToString());
    return;
  }
  if (e.deleting || !e.rec.desired_running) {
    Reconcile(e);  // stops or deletes the instance that just came up
    return;
  }
  if (!e.died_while_starting.empty()) {
    std::string reason = std::move(e.died_while_starting);
    e.died_while_starting.clear();
    HandleExit(e, ExitCause::kCrashed, reason);
    return;
  }
  e.rec.state = GuestState::kRunning;
  e.rec.started_at = Clock::now();
  e.rec.last_boot = r->boot;
  e.rec.last_boot_ms = static_cast<uint32_t>(r->start_duration.count());
  e.rec.accelerator = r->accelerator;
  e.pid = r->pid;
  e.netns = r->netns;
  e.guest_address = r->guest_address;
  e.rec.node_address = r->node_address;
  if (!r->node_address.empty()) e.last_node_address = r->node_address;
  Persist(e);
  Emit(EventType::kGuestRunning, name,
       "instance " + instance + " running (" + std::string(BootModeName(r->boot)) + " boot in " +
           std::to_string(e.rec.last_boot_ms) + " ms" +
           (r->accelerator.empty() ? "" : ", " + r->accelerator) + ")");
  if (!r->golden_problem.empty()) {
    Emit(EventType::kSnapshotDiscarded, name,
         r->golden_problem + "; instance " + instance + " cold-booted instead, rebuilding it");
  }
  AttachInstance(e);
  if (r->boot == BootMode::kCold && e.rec.spec.boot_mode != BootMode::kCold) {
    PrepareGoldenInBackground(e);
  }
}

void GuestManager::AttachInstance(Entry& e) {
  const std::string name = e.rec.spec.name;
  const std::string instance = e.rec.instance;
  // Guests with their own network namespace listen on their guest port inside it; VMs are
  // reached through the runtime's forward on the host's loopback.
  auto backend_port = [&e](size_t i) -> uint16_t {
    return e.netns.empty() ? e.rec.backend_ports.at(i) : e.rec.spec.ports[i].guest_port;
  };
  // Inside a namespace the guest is at its own address (micro-VMs: behind a tap); a runtime's
  // unparsable address is a bug, and loopback then fails visibly rather than reaching elsewhere.
  asio::ip::address_v4 address = asio::ip::address_v4::loopback();
  if (!e.netns.empty()) {
    boost::system::error_code ec;
    auto parsed = asio::ip::make_address_v4(e.guest_address, ec);
    if (!ec)
      address = parsed;
    else
      spdlog::error("guest {}: bad guest address \"{}\"", name, e.guest_address);
  }
  for (size_t i = 0; i < e.proxies.size(); ++i) {
    e.proxies[i]->SetBackend(
        net::Backend{asio::ip::tcp::endpoint(address, backend_port(i)), e.netns});
  }
  const HealthCheck& h = e.rec.spec.health;
  if (h.kind != HealthCheck::Kind::kNone) {
    // Probes go to the instance directly, not through the proxy, so they never wait for it.
    uint16_t backend = 0;
    for (size_t i = 0; i < e.rec.spec.ports.size(); ++i) {
      if (e.rec.spec.ports[i].guest_port == h.port) backend = backend_port(i);
    }
    health::ProbeTarget target;
    target.kind = h.kind == HealthCheck::Kind::kHttp ? health::ProbeTarget::Kind::kHttp
                                                     : health::ProbeTarget::Kind::kTcp;
    target.host = address.to_string();
    target.port = backend;
    target.netns = e.netns;
    target.path = h.path;
    target.timeout = milliseconds(h.timeout_ms);
    e.health = std::make_unique<health::HealthMonitor>(loop_);
    auto started = e.health->Start(
        target, milliseconds(h.interval_ms), static_cast<int>(h.unhealthy_threshold),
        milliseconds(h.start_period_ms), [this, name, instance](const health::Verdict& v) {
          OnHealth(name, instance, v.healthy, v.detail);
        });
    if (!started) {
      // The spec was validated, so this is a bug; the guest still runs, unprobed.
      spdlog::error("guest {}: health check not started: {}", name, started.error().ToString());
    }
  } else {
    e.rec.healthy = true;
  }
  e.stable_timer.expires_after(options_.stable_after);
  e.stable_timer.async_wait([this, name, instance](const boost::system::error_code& ec) {
    if (ec) return;
    Entry* e = Find(name);
    if (e == nullptr || e->rec.instance != instance || e->rec.state != GuestState::kRunning) return;
    if (e->rec.consecutive_failures != 0) {
      e->rec.consecutive_failures = 0;
      Persist(*e);
    }
  });
}

void GuestManager::DetachInstance(Entry& e) {
  for (auto& proxy : e.proxies) proxy->SetBackend(std::nullopt);
  if (e.health) {
    e.health->Stop();
    e.health.reset();
  }
  e.stable_timer.cancel();
  e.unhealthy_timer.cancel();
  e.rec.healthy = false;
  e.rec.node_address.clear();
  e.pid = 0;
  e.sampler.Reset();
  e.rec.metrics.reset();
}

void GuestManager::OnHealth(const std::string& name, const std::string& instance, bool healthy,
                            const std::string& detail) {
  Entry* e = Find(name);
  if (e == nullptr || e->rec.instance != instance || e->rec.state != GuestState::kRunning) return;
  if (healthy) {
    const bool recovered = e->unhealthy_timer.cancel() > 0;
    e->rec.healthy = true;
    e->rec.consecutive_failures = 0;
    Persist(*e);
    Emit(EventType::kGuestHealthy, name,
         std::string(recovered ? "healthy again, not restarted" : "healthy") +
             (detail.empty() ? "" : " (" + detail + ")"));
    return;
  }
  // Readiness first, liveness later: an unhealthy guest leaves its service's endpoints at once
  // (the supervisor publishes only healthy replicas) but keeps running for the grace, because an
  // overloaded guest that is killed takes its in-flight requests with it and pushes its load onto
  // the others, which then fail their checks in turn.
  const milliseconds grace(e->rec.spec.health.restart_after_unhealthy_ms);
  if (grace.count() == 0) {
    Emit(EventType::kGuestUnhealthy, name, "unhealthy: " + detail);
    HandleExit(*e, ExitCause::kUnhealthy, "health check failed: " + detail);
    return;
  }
  e->rec.healthy = false;
  Persist(*e);
  Emit(EventType::kGuestUnhealthy, name,
       "unhealthy: " + detail + "; restarting in " + FormatMillis(grace) + " unless it recovers");
  e->unhealthy_timer.expires_after(grace);
  e->unhealthy_timer.async_wait([this, name, instance, detail,
                                 grace](const boost::system::error_code& ec) {
    if (ec) return;
    Entry* e = Find(name);
    if (e == nullptr || e->rec.instance != instance || e->rec.state != GuestState::kRunning ||
        e->rec.healthy) {
      return;
    }
    HandleExit(*e, ExitCause::kUnhealthy,
               "health check failed: " + detail + ", still unhealthy after " + FormatMillis(grace));
  });
}

// An instance ended (crash, clean exit, failed health check or failed start): clean it up and let
// the restart policy decide what follows.
void GuestManager::HandleExit(Entry& e, ExitCause cause, std::string reason) {
  const std::string name = e.rec.spec.name;
  const std::string instance = e.rec.instance;
  DetachInstance(e);
  e.rec.consecutive_failures += cause == ExitCause::kExited ? 0 : 1;
  e.rec.last_exit_reason = reason;
  e.rec.state = GuestState::kCrashed;
  Emit(cause == ExitCause::kExited ? EventType::kGuestStopped : EventType::kGuestCrashed, name,
       (instance.empty() ? "" : instance + ": ") + reason);
  Persist(e);

  auto decide = [this, name, cause]() {
    Entry* e = Find(name);
    if (e == nullptr) {
      auto it = guests_.find(name);
      if (it != guests_.end()) Reconcile(*it->second);  // being deleted
      return;
    }
    if (!e->rec.desired_running) {
      Reconcile(*e);
      return;
    }
    RestartDecision d = DecideRestart(e->rec.spec.restart, cause, e->rec.consecutive_failures);
    if (!d.restart) {
      e->rec.state = d.state_if_not;
      Persist(*e);
      Emit(d.state_if_not == GuestState::kFailed ? EventType::kGuestFailed
                                                 : EventType::kGuestStopped,
           name, "not restarted (restart policy): " + e->rec.last_exit_reason);
      return;
    }
    e->rec.state = GuestState::kRestarting;
    e->rec.restart_count += 1;
    Persist(*e);
    Emit(EventType::kGuestRestarting, name,
         "restart " + std::to_string(e->rec.restart_count) + " from the golden image in " +
             std::to_string(d.delay.count()) + " ms");
    e->restart_pending = true;
    e->restart_timer.expires_after(d.delay);
    e->restart_timer.async_wait([this, name](const boost::system::error_code& ec) {
      if (ec) return;
      Entry* e = Find(name);
      if (e == nullptr) return;
      e->restart_pending = false;
      Reconcile(*e);
    });
  };

  if (instance.empty()) {
    decide();
    return;
  }
  // The dead (or unhealthy) instance goes first: its overlay is discarded, so nothing it wrote
  // survives, and an unhealthy one stops serving.
  Runtime* runtime = RuntimeFor(e.rec.spec.runtime);
  e.op_in_flight = true;
  Offload<Result<void>>([runtime, instance] { return runtime->Destroy(instance); },
                        [this, name, instance, decide](Result<void> r) {
                          auto it = guests_.find(name);
                          if (it == guests_.end()) return;
                          Entry& e = *it->second;
                          e.op_in_flight = false;
                          if (!r) {
                            spdlog::warn("removing instance {}: {}", instance,
                                         r.error().ToString());
                          }
                          if (e.rec.instance == instance) e.rec.instance.clear();
                          decide();
                        });
}

void GuestManager::OnRuntimeEvent(Runtime* runtime, const RuntimeEvent& event) {
  switch (event.kind) {
    case RuntimeEvent::Kind::kDisconnected:
      Emit(EventType::kRuntimeDisconnected, "", event.reason);
      return;
    case RuntimeEvent::Kind::kConnected: {
      Emit(EventType::kRuntimeConnected, "", event.reason);
      // Instances may have died while we could not hear about it: compare with what runs now.
      Offload<Result<std::vector<InstanceStatus>>>(
          [runtime] { return runtime->List(); },
          [this, runtime](Result<std::vector<InstanceStatus>> listed) {
            if (!listed) return;
            // Guests that waited since the agent started are adopted (or reset) now, and
            // leftovers of theirs removed, exactly as Recover does for reachable runtimes.
            std::vector<GuestRecord> waiting;
            for (auto& [name, e] : guests_) {
              if (e->awaiting_runtime && RuntimeFor(e->rec.spec.runtime) == runtime) {
                waiting.push_back(e->rec);
              }
            }
            AdoptionPlan plan = PlanAdoption(waiting, *listed);
            for (const std::string& instance : plan.destroy) {
              Offload<Result<void>>([runtime, instance] { return runtime->Destroy(instance); },
                                    [instance](Result<void> r) {
                                      if (!r) {
                                        spdlog::warn("removing leftover instance {}: {}", instance,
                                                     r.error().ToString());
                                      }
                                    });
            }
            const std::set<std::string> adopt(plan.adopt.begin(), plan.adopt.end());
            for (auto& [name, e] : guests_) {
              if (e->awaiting_runtime && RuntimeFor(e->rec.spec.runtime) == runtime) {
                AdoptOrReset(*e, adopt, *listed);
                Reconcile(*e);
              }
            }
            std::set<std::string> running;
            for (const auto& i : *listed) {
              if (i.running) running.insert(i.instance);
            }
            for (auto& [name, e] : guests_) {
              if (RuntimeFor(e->rec.spec.runtime) != runtime || e->op_in_flight) continue;
              if (e->rec.state == GuestState::kRunning && !running.contains(e->rec.instance)) {
                HandleExit(*e, ExitCause::kCrashed, "instance vanished while the runtime was away");
              } else {
                Reconcile(*e);
              }
            }
          });
      return;
    }
    case RuntimeEvent::Kind::kStopped: {
      Entry* e = FindByInstance(event.instance);
      // Stops we asked for (stop, delete, destroying a dead instance) are handled by their own
      // completion; only an instance that ends on its own is news.
      if (e == nullptr) return;
      if (e->rec.state == GuestState::kStarting) {
        // The crash overtook the Start completion: OnStarted handles it.
        e->died_while_starting = event.reason.empty() ? "died while starting" : event.reason;
        return;
      }
      if (e->op_in_flight || e->rec.state != GuestState::kRunning) return;
      HandleExit(*e, event.crashed ? ExitCause::kCrashed : ExitCause::kExited,
                 event.reason.empty() ? (event.crashed ? "crashed" : "exited") : event.reason);
      return;
    }
  }
}

void GuestManager::PrepareGoldenInBackground(const Entry& e) {
  Runtime* runtime = RuntimeFor(e.rec.spec.runtime);
  const std::string key = e.image.image_id + "/" + std::to_string(e.rec.spec.vcpus) + "/" +
                          std::to_string(e.rec.spec.memory_mib);
  if (runtime == nullptr || !golden_in_flight_.insert(key).second) return;
  ImageArtifacts image = e.image;
  uint32_t vcpus = e.rec.spec.vcpus, memory = e.rec.spec.memory_mib;
  const std::string guest = e.rec.spec.name;
  Offload<Result<void>>(
      [runtime, image, vcpus, memory] { return runtime->PrepareGolden(image, vcpus, memory); },
      [this, key, guest, image](Result<void> r) {
        golden_in_flight_.erase(key);
        if (!r) {
          spdlog::warn("golden snapshot of {}: {}", image.image_id, r.error().ToString());
          return;
        }
        Emit(EventType::kSnapshotCreated, guest,
             "golden snapshot of " + image.image_id.substr(0, 19) +
                 " ready: later starts restore it");
      });
}

void GuestManager::FinishDelete(Entry& e) {
  const std::string name = e.rec.spec.name;
  DetachInstance(e);
  e.restart_timer.cancel();
  for (auto& proxy : e.proxies) proxy->Close();
  e.proxies.clear();
  Result<void> result = store_.DeleteGuest(e.rec.id);
  if (result) {
    std::error_code ec;
    std::filesystem::remove_all(options_.guests_dir / e.rec.id, ec);
    if (ec)
      spdlog::warn("removing {}: {}", (options_.guests_dir / e.rec.id).string(), ec.message());
    Emit(EventType::kGuestDeleted, name, "deleted");
  }
  auto waiters = std::move(e.delete_waiters);
  if (result) {
    guests_.erase(name);  // `e` is gone from here on
  } else {
    e.deleting = false;
  }
  for (auto& w : waiters) w(result);
}

// ---------------------------------------------------------------------------------------------
// API bridge

Result<GuestRecord> GuestManager::Run(GuestSpec spec) {
  return CallOnLoop<GuestRecord>([this, spec = std::move(spec)](auto reply) mutable {
    RunOnLoop(std::move(spec), std::move(reply));
  });
}

void GuestManager::RunOnLoop(GuestSpec spec, std::function<void(Result<GuestRecord>)> reply) {
  if (guests_.contains(spec.name)) {
    return reply(AlreadyExists("guest \"" + spec.name + "\" already exists"));
  }
  Runtime* runtime = RuntimeFor(spec.runtime);
  if (runtime == nullptr) {
    return reply(MakeError(
        ErrorCode::kFailedPrecondition,
        "runtime " + std::string(RuntimeKindName(spec.runtime)) + " is not available on this node",
        "spec.runtime"));
  }
  if (!runtime->Available()) {
    return reply(Unavailable("the " + std::string(RuntimeKindName(spec.runtime)) +
                             " runtime is not reachable now (" + runtime->Describe() + ")" +
                             (spec.runtime == RuntimeKind::kVm
                                  ? "; is libvirtd running? start it with tools/libvirtd start"
                                  : "")));
  }
  auto image = images_.Resolve(spec.image);
  if (!image) {
    Error err = image.error();
    err.field = "spec.image";
    return reply(std::unexpected(err));
  }
  if (std::find(image->runtimes.begin(), image->runtimes.end(), spec.runtime) ==
      image->runtimes.end()) {
    return reply(InvalidArgument("spec.runtime", "image " + spec.image + " has no artifacts for " +
                                                     std::string(RuntimeKindName(spec.runtime)) +
                                                     " guests (its manifest's RUNTIMES)"));
  }
  NodeResources used = AllocatedOnLoop();
  if (used.memory_mib + spec.memory_mib > options_.capacity.memory_mib) {
    return reply(
        MakeError(ErrorCode::kResourceExhausted,
                  "needs " + std::to_string(spec.memory_mib) + " MiB but the node has " +
                      std::to_string(options_.capacity.memory_mib -
                                     std::min(used.memory_mib, options_.capacity.memory_mib)) +
                      " MiB left of " + std::to_string(options_.capacity.memory_mib),
                  "spec.memory_mib"));
  }

  auto e = std::make_unique<Entry>(loop_, *usage_reader_);
  e->rec.id = NewGuestId();
  e->rec.spec = std::move(spec);
  e->rec.image_id = image->id;
  e->image = image->artifacts;
  e->rec.desired_running = true;
  e->rec.state = GuestState::kPending;
  e->rec.created_at = Clock::now();
  if (auto r = PublishPorts(*e); !r) return reply(std::unexpected(r.error()));
  e->rec.updated_at = e->rec.created_at;
  if (auto r = store_.PutGuest(e->rec); !r) {
    return reply(std::unexpected(r.error().Wrap("persisting the guest")));
  }
  const std::string name = e->rec.spec.name;
  Entry& entry = *e;
  guests_[name] = std::move(e);
  Emit(EventType::kGuestCreated, name,
       "created from image " + entry.rec.spec.image + " (" + image->id.substr(0, 19) + ")");
  Reconcile(entry);
  reply(entry.rec);
}

Result<GuestRecord> GuestManager::Get(const std::string& name) {
  return CallOnLoop<GuestRecord>([this, name](auto reply) {
    Entry* e = Find(name);
    if (e == nullptr) return reply(NotFound("no guest named \"" + name + "\""));
    reply(e->rec);
  });
}

std::vector<GuestRecord> GuestManager::List() {
  auto r = CallOnLoop<std::vector<GuestRecord>>([this](auto reply) {
    std::vector<GuestRecord> out;
    for (auto& [name, e] : guests_) {
      if (!e->deleting) out.push_back(e->rec);
    }
    reply(std::move(out));
  });
  return r ? *r : std::vector<GuestRecord>{};
}

Result<GuestRecord> GuestManager::Start(const std::string& name) {
  return CallOnLoop<GuestRecord>([this, name](auto reply) {
    Entry* e = Find(name);
    if (e == nullptr) return reply(NotFound("no guest named \"" + name + "\""));
    if (!e->rec.desired_running || e->rec.state == GuestState::kFailed) {
      e->rec.desired_running = true;
      e->rec.consecutive_failures = 0;
      if (e->rec.instance.empty() && !e->op_in_flight) e->rec.state = GuestState::kPending;
      Persist(*e);
      Reconcile(*e);
    }
    reply(e->rec);
  });
}

Result<GuestRecord> GuestManager::Stop(const std::string& name, milliseconds grace) {
  return CallOnLoop<GuestRecord>([this, name, grace](auto reply) {
    Entry* e = Find(name);
    if (e == nullptr) return reply(NotFound("no guest named \"" + name + "\""));
    e->rec.desired_running = false;
    // The API validates it; the clamp keeps any other caller from parking a worker for ever.
    e->stop_grace = std::clamp(grace, milliseconds(0), spec::kMaxStopGrace);
    e->stop_waiters.push_back(std::move(reply));
    Persist(*e);
    Reconcile(*e);
  });
}

Result<void> GuestManager::Delete(const std::string& name) {
  return CallOnLoop<void>([this, name](auto reply) {
    Entry* e = Find(name);
    if (e == nullptr) return reply(NotFound("no guest named \"" + name + "\""));
    e->deleting = true;
    e->rec.desired_running = false;
    e->delete_waiters.push_back(std::move(reply));
    Persist(*e);
    Reconcile(*e);
  });
}

Result<int> GuestManager::Kill(const std::string& name) {
  auto target = CallOnLoop<std::pair<Runtime*, std::string>>([this, name](auto reply) {
    Entry* e = Find(name);
    if (e == nullptr) return reply(NotFound("no guest named \"" + name + "\""));
    if (e->rec.instance.empty() || e->rec.state != GuestState::kRunning) {
      return reply(FailedPrecondition("guest \"" + name + "\" is " +
                                      std::string(GuestStateName(e->rec.state)) +
                                      ", not RUNNING: nothing to kill"));
    }
    reply(std::make_pair(RuntimeFor(e->rec.spec.runtime), e->rec.instance));
  });
  if (!target) return std::unexpected(target.error());
  // The kill itself runs on this (gRPC) thread: it is one syscall, and the crash it causes arrives
  // through the runtime's event like any other crash.
  return target->first->Kill(target->second);
}

Result<std::filesystem::path> GuestManager::LogPath(const std::string& name) {
  return CallOnLoop<std::filesystem::path>([this, name](auto reply) {
    Entry* e = Find(name);
    if (e == nullptr) return reply(NotFound("no guest named \"" + name + "\""));
    reply(options_.guests_dir / e->rec.id / "console.log");
  });
}

NodeResources GuestManager::Allocated() {
  auto r = CallOnLoop<NodeResources>([this](auto reply) { reply(AllocatedOnLoop()); });
  return r ? *r : NodeResources{};
}

// ---------------------------------------------------------------------------------------------
// Metrics

void GuestManager::ScheduleMetrics() {
  if (options_.metrics_interval.count() <= 0) return;
  metrics_timer_.expires_after(options_.metrics_interval);
  metrics_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;  // cancelled: the manager may be gone
    SampleMetrics();
    ScheduleMetrics();
  });
}

void GuestManager::SampleMetrics() {
  const auto now = std::chrono::steady_clock::now();
  const TimePoint wall_now = Clock::now();
  for (auto& [name, e] : guests_) {
    if (e->deleting || e->rec.state != GuestState::kRunning || e->rec.instance.empty()) {
      e->sampler.Reset();
      e->rec.metrics.reset();
      continue;
    }
    metrics::SampleInput in;
    in.instance = e->rec.instance;
    // A container is every process in its cgroup; a VM or micro-VM is its hypervisor process.
    in.source.kind = e->rec.spec.runtime == RuntimeKind::kContainer
                         ? metrics::UsageSource::Kind::kCgroup
                         : metrics::UsageSource::Kind::kProcess;
    in.source.pid = e->pid;
    in.vcpus = e->rec.spec.vcpus;
    if (!e->proxies.empty()) {
      metrics::RequestCounters counters;
      for (const auto& proxy : e->proxies) {
        const net::ProxyStats stats = proxy->stats();
        counters.requests += stats.requests;
        counters.connection_errors += stats.failed;
        counters.latency.Add(stats.latency);
      }
      in.requests = std::move(counters);
    }
    e->rec.metrics = e->sampler.Sample(in, now, wall_now);
  }
}

NodeResources GuestManager::AllocatedOnLoop() const {
  NodeResources used;
  for (auto& [name, e] : guests_) {
    if (e->rec.desired_running && !e->deleting) {
      used.vcpus += e->rec.spec.vcpus;
      used.memory_mib += e->rec.spec.memory_mib;
    }
  }
  return used;
}

}  // namespace phoenix::agent
