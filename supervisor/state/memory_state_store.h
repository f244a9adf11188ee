// MemoryStateStore: a StateStore kept in process memory, for tests of the layers above (the
// controller, the API). Same semantics as SqliteStateStore, checked by the same conformance tests
// (state_store_conformance.h): version checks, all-or-nothing commits, microsecond timestamps,
// strictly increasing event sequences, the event log trimmed to Options::max_events. Nothing
// survives the object.
//
// Threading: internally synchronized by a mutex; any thread may call any method.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "supervisor/state/state_store.h"

namespace phoenix::supervisor {

class MemoryStateStore : public StateStore {
 public:
  struct Options {
    size_t max_events = 10000;  // must be > 0
  };

  MemoryStateStore();
  explicit MemoryStateStore(const Options& options);
  MemoryStateStore(const MemoryStateStore&) = delete;
  MemoryStateStore& operator=(const MemoryStateStore&) = delete;

  [[nodiscard]] Result<ClusterSnapshotRecord> Load() override;
  [[nodiscard]] Result<CommitResult> Commit(const CommitBatch& batch) override;
  [[nodiscard]] Result<std::vector<ClusterEvent>> EventsSince(uint64_t from_sequence,
                                                              size_t limit) override;

 private:
  const Options options_;
  std::mutex mu_;
  std::map<std::string, Service> services_;  // guarded by mu_; as stored (sorted replicas)
  std::map<std::string, NodeRecord> nodes_;  // guarded by mu_
  std::deque<ClusterEvent> events_;          // guarded by mu_; oldest first
  uint64_t last_sequence_ = 0;               // guarded by mu_
};

}  // namespace phoenix::supervisor
