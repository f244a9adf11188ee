// Controller::Impl, autoscaling: samples per replica (the agents' metrics, or for front-door
// services what every front door sent them) into the pure autoscaler, and its decisions committed.
#include "supervisor/reconcile/controller_impl.h"

namespace phoenix::supervisor {

void Controller::Impl::ScheduleAutoscale() {
  autoscale_timer.expires_after(options.autoscale_interval);
  autoscale_timer.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    OnAutoscaleTick();
    ScheduleAutoscale();
  });
}

std::vector<autoscale::ReplicaSample> Controller::Impl::SamplesOf(const Service& s,
                                                                  TimePoint now) const {
  std::vector<autoscale::ReplicaSample> out;
  for (const ReplicaPlacement& r : s.replicas) {
    auto it = extras.find({s.spec.name, r.index});
    const ReplicaExtra* extra = it == extras.end() ? nullptr : &it->second;
    const bool cpu = s.spec.autoscale->metric == AutoscaleMetric::kCpu;
    if (!cpu && s.spec.front_door) {
      // Requests go through the front doors, not the agents' port proxies: HAProxy counts them.
      const DoorLoad load =
          DoorLoadOf(s.spec.name, ReplicaGuestName(s.spec.name, r.index, r.generation), now);
      autoscale::ReplicaSample sample{.running =
                                          StateOf(r, extra) == ReplicaState::kRunning && load.seen};
      if (sample.running) {
        sample.value = load.requests_per_second;
        sample.age = std::chrono::duration_cast<std::chrono::milliseconds>(now - load.oldest);
      }
      out.push_back(sample);
      continue;
    }
    autoscale::ReplicaSample sample{.running = StateOf(r, extra) == ReplicaState::kRunning &&
                                               (cpu ? extra->cpu_seen : extra->rps_seen)};
    if (sample.running && extra->observed.metrics) {
      const GuestMetrics& m = *extra->observed.metrics;
      if (cpu ? m.cpu_valid : m.requests_valid) {
        sample.value = cpu ? m.cpu_percent : m.requests_per_second;
        sample.age = std::chrono::duration_cast<std::chrono::milliseconds>(
            now - extra->observed.metrics_received_at);
      }
    }
    out.push_back(sample);
  }
  return out;
}

void Controller::Impl::OnAutoscaleTick() {
  const TimePoint now = StoredNow();
  Draft d;
  std::vector<std::string> decided;
  for (const auto& [name, s] : services) {
    if (!s.spec.autoscale) {
      autoscale_status.erase(name);
      continue;
    }
    autoscale::Output out = autoscale::Evaluate(autoscale::Input{
        .policy = *s.spec.autoscale,
        .current = s.spec.replicas,
        .replicas = SamplesOf(s, now),
        .window = s.autoscale,
        .now = now,
        .max_metric_age = options.max_metric_age,
    });
    autoscale_status[name] = AutoscaleStatus{.observed = out.observed,
                                             .reporting_replicas = out.reporting,
                                             .desired_replicas = out.desired,
                                             .state = out.state};
    if (out.decision) {
      DraftService(d, name).spec.replicas = out.decision->to_replicas;
      AddEvent(d, ClusterEventType::kServiceScaled, name, "",
               "autoscale " + name + " " + std::to_string(out.decision->from_replicas) + " -> " +
                   std::to_string(out.decision->to_replicas) + ": " + out.decision->reason);
    }
    if (out.window != s.autoscale) d.windows[name] = std::move(out.window);
  }
  (void)Commit(d);  // refused: nothing changed, the next tick evaluates again
}

}  // namespace phoenix::supervisor
