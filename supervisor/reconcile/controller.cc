#include "supervisor/reconcile/controller.h"

#include "supervisor/reconcile/controller_impl.h"

namespace phoenix::supervisor {

// ---- Controller ----

Controller::Controller(asio::io_context& loop, StateStore& store, EventHub& hub, Options options)
    : options_(std::move(options)) {
  impl_ = std::make_unique<Impl>(loop, store, hub, options_);
}

Controller::~Controller() = default;

Result<void> Controller::Recover() {
  Result<ClusterSnapshotRecord> loaded = impl_->store.Load();
  if (!loaded) return std::unexpected(loaded.error().Wrap("loading the supervisor's state"));
  ClusterSnapshotRecord& snapshot = *loaded;
  const auto now = SteadyClock::now();
  for (Service& s : snapshot.services) impl_->services[s.spec.name] = std::move(s);
  for (NodeRecord& n : snapshot.nodes) {
    Impl::NodeEntry& e = impl_->nodes[n.name];
    e.plan.record = std::move(n);
    e.plan.state = NodeState::kSuspect;
    e.live.state = NodeState::kSuspect;
    e.live.state_reason = "supervisor restarted; waiting for the agent";
    e.last_seen = now;
  }
  spdlog::info("recovered {} services and {} nodes (last event {})", impl_->services.size(),
               impl_->nodes.size(), snapshot.last_event_sequence);
  impl_->ScheduleTick();
  impl_->ScheduleAutoscale();
  return {};
}

namespace {
template <typename T>
Result<T> CallOn(asio::io_context& loop, std::chrono::milliseconds timeout,
                 std::function<Result<T>()> body) {
  auto promise = std::make_shared<std::promise<Result<T>>>();
  auto future = promise->get_future();
  asio::post(loop, [body = std::move(body), promise]() mutable {
    try {
      promise->set_value(body());
    } catch (const std::exception& e) {
      promise->set_value(Internal(std::string("controller: ") + e.what()));
    }
  });
  if (future.wait_for(timeout) != std::future_status::ready) {
    return MakeError(ErrorCode::kDeadlineExceeded, "the supervisor's loop did not answer in time");
  }
  return future.get();
}
}  // namespace

Result<ServiceStatus> Controller::CreateService(ServiceSpec spec, std::string actor) {
  PHX_TRY(ValidateSpec(spec));
  return CallOn<ServiceStatus>(
      impl_->loop, options_.call_timeout, [=, this]() -> Result<ServiceStatus> {
        if (impl_->services.contains(spec.name)) {
          return AlreadyExists("service " + spec.name + " already exists");
        }
        if (spec.front_door) {
          for (const auto& [name, other] : impl_->services) {
            if (other.spec.front_door && other.spec.front_door->port == spec.front_door->port) {
              return MakeError(ErrorCode::kAlreadyExists,
                               "port " + std::to_string(spec.front_door->port) +
                                   " is already the front door of service " + name,
                               "spec.front_door.port");
            }
          }
        }
        Impl::Draft d;
        ServiceSpec stored = spec;
        if (stored.autoscale) {
          stored.replicas = std::clamp(stored.replicas, stored.autoscale->min_replicas,
                                       stored.autoscale->max_replicas);
        }
        d.services[spec.name] = Service{.spec = stored, .created_at = StoredNow()};
        impl_->AddEvent(
            d, ClusterEventType::kServiceCreated, spec.name, "",
            "service " + spec.name + " created: " + std::to_string(stored.replicas) + " " +
                std::string(RuntimeKindName(spec.runtime)) + " replicas of " + spec.image +
                (stored.autoscale ? "; autoscaled (" + PolicyText(*stored.autoscale) + ")" : ""),
            actor);
        PHX_TRY(impl_->Commit(d));
        return impl_->StatusOf(impl_->services.at(spec.name));
      });
}

Result<ServiceStatus> Controller::GetService(const std::string& name) {
  return CallOn<ServiceStatus>(impl_->loop, options_.call_timeout,
                               [=, this]() -> Result<ServiceStatus> {
                                 auto it = impl_->services.find(name);
                                 if (it == impl_->services.end())
                                   return NotFound("no service " + name);
                                 return impl_->StatusOf(it->second);
                               });
}

std::vector<ServiceStatus> Controller::ListServices() {
  auto r = CallOn<std::vector<ServiceStatus>>(impl_->loop, options_.call_timeout,
                                              [this]() -> Result<std::vector<ServiceStatus>> {
                                                std::vector<ServiceStatus> out;
                                                for (const auto& [_, s] : impl_->services)
                                                  out.push_back(impl_->StatusOf(s));
                                                return out;
                                              });
  return r ? std::move(*r) : std::vector<ServiceStatus>{};
}

Result<ServiceStatus> Controller::ScaleService(const std::string& name, uint32_t replicas,
                                               uint64_t expected_version, std::string actor) {
  if (replicas > kMaxReplicas) {
    return InvalidArgument("replicas", "at most " + std::to_string(kMaxReplicas));
  }
  return CallOn<ServiceStatus>(
      impl_->loop, options_.call_timeout, [=, this]() -> Result<ServiceStatus> {
        auto it = impl_->services.find(name);
        if (it == impl_->services.end()) return NotFound("no service " + name);
        if (expected_version != 0 && it->second.version != expected_version) {
          return MakeError(ErrorCode::kAborted, "service " + name + " is at version " +
                                                    std::to_string(it->second.version) + ", not " +
                                                    std::to_string(expected_version) +
                                                    "; read it again");
        }
        if (const auto& p = it->second.spec.autoscale) {
          return FailedPrecondition("service " + name + " is autoscaled (" + PolicyText(*p) +
                                    "): change its policy (phoenixctl service autoscale) or turn "
                                    "autoscaling off first");
        }
        Impl::Draft d;
        Service& s = impl_->DraftService(d, name);
        const uint32_t before = s.spec.replicas;
        s.spec.replicas = replicas;
        impl_->AddEvent(d, ClusterEventType::kServiceScaled, name, "",
                        "service " + name + " scaled from " + std::to_string(before) + " to " +
                            std::to_string(replicas) + " replicas",
                        actor);
        PHX_TRY(impl_->Commit(d));
        return impl_->StatusOf(impl_->services.at(name));
      });
}

Result<ServiceStatus> Controller::SetAutoscale(const std::string& name,
                                               std::optional<AutoscalePolicy> policy,
                                               uint64_t expected_version, std::string actor) {
  if (policy) PHX_TRY(autoscale::ValidatePolicy(*policy, "policy"));
  return CallOn<ServiceStatus>(
      impl_->loop, options_.call_timeout, [=, this]() -> Result<ServiceStatus> {
        auto it = impl_->services.find(name);
        if (it == impl_->services.end()) return NotFound("no service " + name);
        if (expected_version != 0 && it->second.version != expected_version) {
          return MakeError(ErrorCode::kAborted, "service " + name + " is at version " +
                                                    std::to_string(it->second.version) + ", not " +
                                                    std::to_string(expected_version) +
                                                    "; read it again");
        }
        if (it->second.spec.autoscale == policy) return impl_->StatusOf(it->second);
        Impl::Draft d;
        Service& s = impl_->DraftService(d, name);
        s.spec.autoscale = policy;
        std::string message;
        if (!policy) {
          s.autoscale = {};
          message = "autoscaling of " + name + " turned off; it keeps " +
                    std::to_string(s.spec.replicas) + " replicas";
        } else {
          const uint32_t before = s.spec.replicas;
          s.spec.replicas = std::clamp(before, policy->min_replicas, policy->max_replicas);
          message = "autoscale " + name + ": " + PolicyText(*policy);
          if (before != s.spec.replicas) {
            message += "; " + std::to_string(before) + " -> " + std::to_string(s.spec.replicas) +
                       " replicas to be within [min, max]";
          }
        }
        impl_->AddEvent(d, ClusterEventType::kServiceScaled, name, "", message, actor);
        PHX_TRY(impl_->Commit(d));
        return impl_->StatusOf(impl_->services.at(name));
      });
}

Result<void> Controller::DeleteService(const std::string& name, std::string actor) {
  auto r = CallOn<bool>(impl_->loop, options_.call_timeout, [=, this]() -> Result<bool> {
    if (!impl_->services.contains(name)) return NotFound("no service " + name);
    Impl::Draft d;
    d.deleted_services.insert(name);
    impl_->AddEvent(d, ClusterEventType::kServiceDeleted, name, "",
                    "service " + name + " deleted; its replicas are stopped", actor);
    PHX_TRY(impl_->Commit(d));
    for (auto it = impl_->extras.begin(); it != impl_->extras.end();) {
      it = it->first.first == name ? impl_->extras.erase(it) : std::next(it);
    }
    impl_->autoscale_status.erase(name);
    return true;
  });
  if (!r) return std::unexpected(r.error());
  return {};
}

std::vector<NodeStatus> Controller::ListNodes() {
  auto r = CallOn<std::vector<NodeStatus>>(impl_->loop, options_.call_timeout,
                                           [this]() -> Result<std::vector<NodeStatus>> {
                                             std::vector<NodeStatus> out;
                                             for (const auto& [name, _] : impl_->nodes) {
                                               out.push_back(impl_->NodeStatusOf(name));
                                             }
                                             return out;
                                           });
  return r ? std::move(*r) : std::vector<NodeStatus>{};
}

Result<NodeStatus> Controller::GetNode(const std::string& name) {
  return CallOn<NodeStatus>(impl_->loop, options_.call_timeout, [=, this]() -> Result<NodeStatus> {
    if (!impl_->nodes.contains(name)) return NotFound("no node " + name);
    return impl_->NodeStatusOf(name);
  });
}

Result<NodeStatus> Controller::DrainNode(const std::string& name, std::string actor) {
  return CallOn<NodeStatus>(impl_->loop, options_.call_timeout, [=, this]() -> Result<NodeStatus> {
    if (!impl_->nodes.contains(name)) return NotFound("no node " + name);
    if (!impl_->nodes.at(name).plan.record.drained) {
      Impl::Draft d;
      impl_->DraftNode(d, name).drained = true;
      impl_->AddEvent(d, ClusterEventType::kNodeDrained, "", name,
                      "node " + name + " drained: no new replicas; its replicas move elsewhere",
                      actor);
      PHX_TRY(impl_->Commit(d));
    }
    return impl_->NodeStatusOf(name);
  });
}

Result<bool> Controller::DisconnectNode(const std::string& name, const std::string& why) {
  return CallOn<bool>(impl_->loop, options_.call_timeout, [=, this]() -> Result<bool> {
    auto it = impl_->nodes.find(name);
    if (it == impl_->nodes.end() || it->second.session == nullptr) return false;
    AgentSession* session = it->second.session;
    session->Close(Error{ErrorCode::kUnauthenticated, why});
    impl_->OnGone(session);  // at once: the AgentGone that follows finds nothing left
    return true;
  });
}

Result<NodeStatus> Controller::UndrainNode(const std::string& name, std::string actor) {
  return CallOn<NodeStatus>(impl_->loop, options_.call_timeout, [=, this]() -> Result<NodeStatus> {
    if (!impl_->nodes.contains(name)) return NotFound("no node " + name);
    if (impl_->nodes.at(name).plan.record.drained) {
      Impl::Draft d;
      impl_->DraftNode(d, name).drained = false;
      impl_->AddEvent(d, ClusterEventType::kNodeUndrained, "", name,
                      "node " + name + " accepts replicas again", actor);
      PHX_TRY(impl_->Commit(d));
    }
    return impl_->NodeStatusOf(name);
  });
}

Result<void> Controller::RecordEvent(ClusterEvent event) {
  auto r = CallOn<bool>(impl_->loop, options_.call_timeout, [=, this]() -> Result<bool> {
    Impl::Draft d;
    d.events.push_back(event);
    if (d.events.back().time == TimePoint{}) d.events.back().time = Clock::now();
    PHX_TRY(impl_->Commit(d));
    return true;
  });
  if (!r) return std::unexpected(r.error());
  return {};
}

void Controller::AgentConnected(AgentSession* session, AgentHello hello) {
  asio::post(impl_->loop, [this, session, hello = std::move(hello)]() mutable {
    impl_->OnConnected(session, std::move(hello));
  });
}

void Controller::AgentReported(AgentSession* session, AgentReport report) {
  {
    std::lock_guard lock(impl_->mailbox_mu);
    auto [it, queued] = impl_->mailbox.try_emplace(session);
    it->second = std::move(report);
    if (!queued) {
      impl_->reports_replaced.fetch_add(1, std::memory_order_relaxed);
      return;  // the loop has not taken the older one yet; it will take this one
    }
  }
  asio::post(impl_->loop, [this, session] {
    AgentReport latest;
    {
      std::lock_guard lock(impl_->mailbox_mu);
      auto it = impl_->mailbox.find(session);
      if (it == impl_->mailbox.end()) return;
      latest = std::move(it->second);
      impl_->mailbox.erase(it);
    }
    impl_->OnReported(session, std::move(latest));
  });
}

uint64_t Controller::ReportsReplaced() const {
  return impl_->reports_replaced.load(std::memory_order_relaxed);
}

void Controller::AgentGone(AgentSession* session) {
  {
    std::lock_guard lock(impl_->mailbox_mu);
    impl_->mailbox.erase(session);  // its last report speaks for a link that is gone
  }
  // Waits for the loop: after this returns the session may be destroyed, so no queued work may
  // still hold it.
  if (impl_->loop.get_executor().running_in_this_thread()) {
    impl_->OnGone(session);
    return;
  }
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> finished = done->get_future();
  asio::post(impl_->loop, [this, session, done] {
    impl_->OnGone(session);
    done->set_value();
  });
  // A stopped loop runs nothing more, so nothing queued can touch the session either.
  while (finished.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready &&
         !impl_->loop.stopped()) {
  }
}

}  // namespace phoenix::supervisor
