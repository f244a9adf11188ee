#include "supervisor/autoscale/autoscaler.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace phoenix::supervisor::autoscale {
namespace {

using std::chrono::seconds;

// Guards ceil() against 2.0000000001 from a ratio that is exactly 2 in decimal.
constexpr double kEpsilon = 1e-9;

std::string Percent(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g%%", fraction * 100);
  return buf;
}

std::string Plural(uint32_t n, std::string_view one) {
  return std::to_string(n) + " " + std::string(one) + (n == 1 ? "" : "s");
}

void Record(AutoscaleWindow& w, TimePoint now, uint32_t replicas) {
  if (!w.desires.empty() && w.desires.back().replicas == replicas) {
    w.desires.back().last = now;
  } else {
    w.desires.push_back(DesireRun{.first = now, .last = now, .replicas = replicas});
  }
}

// Drops what no window can see any more.
void Prune(AutoscaleWindow& w, const AutoscalePolicy& p, TimePoint now) {
  const auto keep = seconds(std::max(p.scale_up_stabilization_s, p.scale_down_stabilization_s));
  std::erase_if(w.desires, [&](const DesireRun& r) { return r.last < now - keep; });
  std::erase_if(w.scale_ups, [&](const ScaleUpRecord& r) {
    return r.time <= now - seconds(p.scale_up_period_s);
  });
  if (w.recent.size() > kMaxRecentDecisions) w.recent.resize(kMaxRecentDecisions);
}

}  // namespace

std::optional<AutoscaleMetric> ParseMetric(std::string_view name) {
  if (name == "cpu") return AutoscaleMetric::kCpu;
  if (name == "rps") return AutoscaleMetric::kRps;
  return std::nullopt;
}

std::string FormatValue(AutoscaleMetric metric, double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f%s", decimals, value,
                metric == AutoscaleMetric::kCpu ? "%" : "");
  return buf;
}

Result<void> ValidatePolicy(const AutoscalePolicy& p, std::string_view prefix) {
  const std::string f = std::string(prefix) + ".";
  if (p.min_replicas < 1) return InvalidArgument(f + "min_replicas", "must be >= 1");
  if (p.max_replicas < p.min_replicas) {
    return InvalidArgument(f + "max_replicas",
                           "must be >= min_replicas (" + std::to_string(p.min_replicas) + ")");
  }
  if (!(p.target > 0) || !std::isfinite(p.target)) {
    return InvalidArgument(f + "target", "must be > 0");
  }
  if (!(p.tolerance >= 0 && p.tolerance < 1)) {
    return InvalidArgument(f + "tolerance", "must be in [0, 1) (a fraction: 0.1 = ±10%)");
  }
  if (p.scale_up_max_step < 1) return InvalidArgument(f + "scale_up_max_step", "must be >= 1");
  if (p.scale_up_period_s < 1) return InvalidArgument(f + "scale_up_period_s", "must be >= 1");
  return {};
}

Output Evaluate(const Input& in) {
  const AutoscalePolicy& p = in.policy;
  const TimePoint now = in.now;
  Output out;
  out.window = in.window;
  AutoscaleWindow& w = out.window;
  Prune(w, p, now);

  const std::string metric(AutoscaleMetricName(p.metric));
  const std::string target_text = FormatValue(p.metric, p.target, 0);
  double sum = 0;
  uint32_t quiet = 0;
  uint32_t starting = 0;
  for (const ReplicaSample& r : in.replicas) {
    if (!r.running) {
      starting++;
    } else if (r.value && r.age <= in.max_metric_age) {
      sum += *r.value;
      out.reporting++;
    } else {
      quiet++;
    }
  }
  // Replicas the controller knows nothing of (fewer samples than the count) are starting.
  if (in.replicas.size() < in.current) starting += in.current - in.replicas.size();
  const uint32_t missing = quiet + starting;
  out.observed = out.reporting > 0 ? sum / out.reporting : 0;
  const std::string observed_text = metric + " " + FormatValue(p.metric, out.observed, 1);
  const std::string over = " over " + Plural(out.reporting, "replica") +
                           (missing > 0 ? " (" + std::to_string(missing) + " without data)" : "");

  auto decide = [&](uint32_t to, std::string reason) {
    ScalingDecision d{.time = now,
                      .from_replicas = in.current,
                      .to_replicas = to,
                      .metric = p.metric,
                      .observed = out.observed,
                      .target = p.target,
                      .reporting_replicas = out.reporting,
                      .reason = std::move(reason)};
    if (to > in.current) w.scale_ups.push_back({.time = now, .added = to - in.current});
    w.recent.insert(w.recent.begin(), d);
    if (w.recent.size() > kMaxRecentDecisions) w.recent.resize(kMaxRecentDecisions);
    out.decision = std::move(d);
    out.state = to > in.current ? "scaling up" : "scaling down";
  };

  // Outside the bounds (a new or changed policy): to the bound, whatever the data says.
  if (in.current < p.min_replicas || in.current > p.max_replicas) {
    const uint32_t to = std::clamp(in.current, p.min_replicas, p.max_replicas);
    out.desired = to;
    Record(w, now, to);
    decide(to, in.current < p.min_replicas ? "below the minimum: " + std::to_string(in.current) +
                                                 " < min " + std::to_string(p.min_replicas)
                                           : "above the maximum: " + std::to_string(in.current) +
                                                 " > max " + std::to_string(p.max_replicas));
    return out;
  }

  if (out.reporting == 0) {
    // Holding the current count in the window keeps a quiet spell from counting as "no desire":
    // the scale-down window restarts when data returns.
    out.desired = in.current;
    Record(w, now, in.current);
    out.state =
        "no data (" + std::to_string(in.current) + " replicas, none reports " + metric + ")";
    return out;
  }

  // Quiet replicas count at target; starting ones at 0 (see the header).
  const double ratio = (sum + quiet * p.target) / (p.target * in.current);
  uint32_t raw = in.current;
  std::string why;
  if (std::abs(ratio - 1) > p.tolerance) {
    raw = static_cast<uint32_t>(std::min<double>(std::ceil(ratio * in.current - kEpsilon), 1e6));
  }
  const std::string comparison = observed_text +
                                 (ratio > 1   ? " > "
                                  : ratio < 1 ? " < "
                                              : " = ") +
                                 "target " + target_text + " (±" + Percent(p.tolerance) + ")" +
                                 over;
  bool held_by_missing = false;
  if (raw < in.current && missing > 0) {
    raw = in.current;
    held_by_missing = true;
  }
  raw = std::clamp(raw, p.min_replicas, p.max_replicas);
  out.desired = raw;
  Record(w, now, raw);

  // Stabilization: up to the lowest desire of the up window, down to the highest of the down one.
  uint32_t up_rec = raw;
  uint32_t down_rec = raw;
  TimePoint down_hold_until{};
  for (const DesireRun& r : w.desires) {
    if (r.last >= now - seconds(p.scale_up_stabilization_s)) up_rec = std::min(up_rec, r.replicas);
    if (r.last >= now - seconds(p.scale_down_stabilization_s)) {
      down_rec = std::max(down_rec, r.replicas);
      if (r.replicas > raw) {
        down_hold_until = std::max(down_hold_until, r.last + seconds(p.scale_down_stabilization_s));
      }
    }
  }
  uint32_t to = in.current;
  if (to < up_rec) to = up_rec;
  if (to > down_rec) to = down_rec;

  std::string limit_note;
  if (to > in.current) {
    uint32_t added = 0;
    for (const ScaleUpRecord& s : w.scale_ups) added += s.added;
    const uint32_t base = in.current > added ? in.current - added : 1;
    const uint32_t limit = base + std::max(p.scale_up_max_step, base);
    if (to > limit) {
      to = std::max(limit, in.current);
      limit_note = "; limited to " + std::to_string(to) + " by the scale-up rate (" +
                   std::to_string(std::max(p.scale_up_max_step, base)) + " per " +
                   std::to_string(p.scale_up_period_s) + " s)";
    }
  }
  to = std::clamp(to, p.min_replicas, p.max_replicas);

  if (to != in.current) {
    std::string reason = comparison + ": want " + std::to_string(raw);
    if (to < raw && to > in.current) reason += limit_note;
    if (to < in.current && to > raw) {
      reason += "; the highest desire of the last " + std::to_string(p.scale_down_stabilization_s) +
                " s is " + std::to_string(to);
    }
    decide(to, std::move(reason));
    return out;
  }

  if (held_by_missing) {
    out.state = "holding: " + Plural(missing, "replica") + " without fresh " + metric +
                " (no scale-in on missing data)";
  } else if (raw < in.current) {
    const auto left = std::chrono::ceil<seconds>(down_hold_until - now);
    out.state = "waiting: scale-down window (" + std::to_string(left.count()) + " s left)";
  } else if (raw > in.current) {
    out.state = up_rec <= in.current ? "waiting: scale-up window" : "waiting: scale-up rate limit";
  } else {
    out.state = "steady";
  }
  return out;
}

}  // namespace phoenix::supervisor::autoscale
