#include "supervisor/state/commit_rules.h"

#include <chrono>
#include <set>
#include <string>

namespace phoenix::supervisor::commit_rules {

Result<void> ValidateBatch(const CommitBatch& batch) {
  std::set<std::string, std::less<>> services;
  for (size_t i = 0; i < batch.put_services.size(); ++i) {
    const Service& s = batch.put_services[i].service;
    std::string field = "put_services[" + std::to_string(i) + "]";
    if (s.spec.name.empty()) return InvalidArgument(field + ".spec.name", "a service needs a name");
    if (!services.insert(s.spec.name).second) {
      return InvalidArgument(field, "service " + s.spec.name + " is written twice in one commit");
    }
    std::set<uint32_t> indices;
    for (const auto& r : s.replicas) {
      if (!indices.insert(r.index).second) {
        return InvalidArgument(field + ".replicas", "service " + s.spec.name + " has replica " +
                                                        std::to_string(r.index) + " twice");
      }
    }
  }
  for (size_t i = 0; i < batch.delete_services.size(); ++i) {
    const auto& d = batch.delete_services[i];
    std::string field = "delete_services[" + std::to_string(i) + "]";
    if (d.name.empty()) return InvalidArgument(field + ".name", "a service needs a name");
    if (d.expected_version == 0) {
      return InvalidArgument(field + ".expected_version",
                             "deleting service " + d.name + " needs its current version");
    }
    if (!services.insert(d.name).second) {
      return InvalidArgument(field, "service " + d.name + " is written twice in one commit");
    }
  }
  for (size_t i = 0; i < batch.put_windows.size(); ++i) {
    const auto& w = batch.put_windows[i];
    std::string field = "put_windows[" + std::to_string(i) + "]";
    if (w.service.empty()) return InvalidArgument(field + ".service", "a service needs a name");
    if (!services.insert(w.service).second) {
      return InvalidArgument(field, "service " + w.service + " is written twice in one commit");
    }
  }
  std::set<std::string, std::less<>> nodes;
  for (size_t i = 0; i < batch.put_nodes.size(); ++i) {
    const NodeRecord& n = batch.put_nodes[i].node;
    std::string field = "put_nodes[" + std::to_string(i) + "]";
    if (n.name.empty()) return InvalidArgument(field + ".name", "a node needs a name");
    if (!nodes.insert(n.name).second) {
      return InvalidArgument(field, "node " + n.name + " is written twice in one commit");
    }
  }
  return {};
}

std::optional<std::string> VersionConflict(std::string_view kind, std::string_view name,
                                           uint64_t current, uint64_t expected) {
  if (current == expected) return std::nullopt;
  std::string what = std::string(kind) + " " + std::string(name) + ": ";
  if (current == 0) return what + "does not exist, expected version " + std::to_string(expected);
  if (expected == 0) {
    return what + "at version " + std::to_string(current) + ", expected it not to exist";
  }
  return what + "at version " + std::to_string(current) + ", expected " + std::to_string(expected);
}

Error Conflicts(const std::vector<std::string>& conflicts) {
  std::string msg = "commit refused: ";
  for (size_t i = 0; i < conflicts.size(); ++i) {
    if (i > 0) msg += "; ";
    msg += conflicts[i];
  }
  return Error{ErrorCode::kAborted, std::move(msg), {}};
}

int64_t ToMicros(TimePoint t) {
  return std::chrono::floor<std::chrono::microseconds>(t.time_since_epoch()).count();
}

TimePoint FromMicros(int64_t us) {
  return TimePoint(std::chrono::duration_cast<Clock::duration>(std::chrono::microseconds(us)));
}

TimePoint StoredTime(TimePoint t) { return FromMicros(ToMicros(t)); }

AutoscaleWindow StoredWindow(AutoscaleWindow w) {
  for (DesireRun& r : w.desires) {
    r.first = StoredTime(r.first);
    r.last = StoredTime(r.last);
  }
  for (ScaleUpRecord& r : w.scale_ups) r.time = StoredTime(r.time);
  for (ScalingDecision& d : w.recent) d.time = StoredTime(d.time);
  return w;
}

ClusterEvent StoredEvent(const ClusterEvent& event, uint64_t sequence, TimePoint commit_time) {
  ClusterEvent e = event;
  e.sequence = sequence;
  e.time = StoredTime(event.time == TimePoint{} ? commit_time : event.time);
  return e;
}

}  // namespace phoenix::supervisor::commit_rules
