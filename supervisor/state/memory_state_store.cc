#include "supervisor/state/memory_state_store.h"

#include <algorithm>
#include <utility>

#include "supervisor/state/commit_rules.h"

namespace phoenix::supervisor {

MemoryStateStore::MemoryStateStore() : MemoryStateStore(Options{}) {}

MemoryStateStore::MemoryStateStore(const Options& options) : options_(options) {
  PHX_CHECK(options_.max_events > 0);
}

Result<ClusterSnapshotRecord> MemoryStateStore::Load() {
  std::lock_guard lock(mu_);
  ClusterSnapshotRecord out;
  out.services.reserve(services_.size());
  for (const auto& [name, s] : services_) out.services.push_back(s);
  out.nodes.reserve(nodes_.size());
  for (const auto& [name, n] : nodes_) out.nodes.push_back(n);
  out.last_event_sequence = last_sequence_;
  return out;
}

Result<CommitResult> MemoryStateStore::Commit(const CommitBatch& batch) {
  PHX_TRY(commit_rules::ValidateBatch(batch));
  const TimePoint now = Clock::now();
  std::lock_guard lock(mu_);

  // Check every version before changing anything: a refused batch leaves no trace.
  std::vector<std::string> conflicts;
  auto version_of = [](const auto& map, const std::string& name) -> uint64_t {
    auto it = map.find(name);
    return it == map.end() ? 0 : it->second.version;
  };
  for (const auto& p : batch.put_services) {
    if (auto c = commit_rules::VersionConflict("service", p.service.spec.name,
                                               version_of(services_, p.service.spec.name),
                                               p.expected_version)) {
      conflicts.push_back(std::move(*c));
    }
  }
  for (const auto& d : batch.delete_services) {
    if (auto c = commit_rules::VersionConflict("service", d.name, version_of(services_, d.name),
                                               d.expected_version)) {
      conflicts.push_back(std::move(*c));
    }
  }
  for (const auto& p : batch.put_nodes) {
    if (auto c = commit_rules::VersionConflict("node", p.node.name, version_of(nodes_, p.node.name),
                                               p.expected_version)) {
      conflicts.push_back(std::move(*c));
    }
  }
  for (const auto& w : batch.put_windows) {
    if (!services_.contains(w.service)) {
      conflicts.push_back("service " + w.service + ": does not exist (autoscale window)");
    }
  }
  if (!conflicts.empty()) return std::unexpected(commit_rules::Conflicts(conflicts));

  CommitResult result;
  for (const auto& p : batch.put_services) {
    Service s = p.service;
    s.version = p.expected_version + 1;
    s.created_at = commit_rules::StoredTime(s.created_at);
    s.autoscale = commit_rules::StoredWindow(s.autoscale);
    std::sort(s.replicas.begin(), s.replicas.end(),
              [](const auto& a, const auto& b) { return a.index < b.index; });
    result.service_versions.push_back(s.version);
    services_[s.spec.name] = std::move(s);
  }
  for (const auto& d : batch.delete_services) services_.erase(d.name);
  for (const auto& w : batch.put_windows) {
    services_.at(w.service).autoscale = commit_rules::StoredWindow(w.window);
  }
  for (const auto& p : batch.put_nodes) {
    NodeRecord n = p.node;
    n.version = p.expected_version + 1;
    n.joined_at = commit_rules::StoredTime(n.joined_at);
    result.node_versions.push_back(n.version);
    nodes_[n.name] = std::move(n);
  }
  for (const auto& e : batch.events) {
    ClusterEvent stored = commit_rules::StoredEvent(e, ++last_sequence_, now);
    result.events.push_back(stored);
    events_.push_back(std::move(stored));
  }
  while (events_.size() > options_.max_events) events_.pop_front();
  return result;
}

Result<std::vector<ClusterEvent>> MemoryStateStore::EventsSince(uint64_t from_sequence,
                                                                size_t limit) {
  std::lock_guard lock(mu_);
  std::vector<ClusterEvent> out;
  auto it = std::lower_bound(
      events_.begin(), events_.end(), from_sequence,
      [](const ClusterEvent& e, uint64_t sequence) { return e.sequence < sequence; });
  for (; it != events_.end() && out.size() < limit; ++it) out.push_back(*it);
  return out;
}

}  // namespace phoenix::supervisor
