// StateStore: the supervisor's durable desired state (services with their replicas' placement,
// nodes with their assignment versions) and the sequenced cluster event log.
//
// Every change is one Commit: a batch of writes applied atomically with optimistic concurrency.
// Each service or node write names the version it expects to replace (0 = must not exist yet); if
// any record is not at its expected version the whole batch is refused with kAborted and nothing is
// written. On success every written record's version is the expected version + 1 and the returned
// CommitResult carries the new versions and the sequences given to the batch's events.
//
// Durability: when Commit returns success the batch survives a crash of the supervisor or the host
// (SqliteStateStore: WAL, synchronous=FULL). A failed Commit leaves the store as it was.
//
// Event sequences: assigned by the store, strictly increasing, never reused (also after trimming or
// a restart). The log keeps the newest Options::max_events events.
//
// Implementations: SqliteStateStore (sqlite_state_store.h, the embedded default) and
// MemoryStateStore (memory_state_store.h, for tests of the layers above). Both pass the same
// conformance tests (state_store_conformance.h).
//
// Threading: implementations are internally synchronized; any thread may call any method.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "proto/support/error.h"
#include "supervisor/state/cluster.h"

namespace phoenix::supervisor {

struct ClusterSnapshotRecord {
  std::vector<Service> services;  // sorted by name, replicas sorted by index
  std::vector<NodeRecord> nodes;  // sorted by name
  uint64_t last_event_sequence = 0;
};

struct StoreWrite {
  // Exactly one of these is set.
  struct PutService {
    Service service;  // service.version is ignored; expected_version decides
    uint64_t expected_version = 0;
  };
  struct DeleteService {
    std::string name;
    uint64_t expected_version = 0;  // must be the current version (never 0)
  };
  struct PutNode {
    NodeRecord node;
    uint64_t expected_version = 0;
  };
  // Replaces the autoscaler's window (Service::autoscale) of an existing service WITHOUT changing
  // its version: the window is the autoscaler's bookkeeping, written about once a second, and must
  // not make users' expected_version updates fail. A service missing from the store refuses the
  // batch (kAborted). A service written by put_services or delete_services in the same batch may
  // not be named here (its Service value carries the window).
  struct PutAutoscaleWindow {
    std::string service;
    AutoscaleWindow window;
  };
};

struct CommitBatch {
  std::vector<StoreWrite::PutService> put_services;
  std::vector<StoreWrite::DeleteService> delete_services;
  std::vector<StoreWrite::PutNode> put_nodes;
  std::vector<StoreWrite::PutAutoscaleWindow> put_windows;
  std::vector<ClusterEvent> events;  // sequence is ignored; assigned on commit
  bool empty() const {
    return put_services.empty() && delete_services.empty() && put_nodes.empty() &&
           put_windows.empty() && events.empty();
  }
};

struct CommitResult {
  std::vector<uint64_t> service_versions;  // per put_services entry, same order
  std::vector<uint64_t> node_versions;     // per put_nodes entry, same order
  std::vector<ClusterEvent> events;        // the batch's events with sequences and times
};

class StateStore {
 public:
  virtual ~StateStore() = default;

  // Everything durable, as of the last successful commit.
  [[nodiscard]] virtual Result<ClusterSnapshotRecord> Load() = 0;
  [[nodiscard]] virtual Result<CommitResult> Commit(const CommitBatch& batch) = 0;
  // Events with sequence >= from_sequence, oldest first, at most `limit`.
  [[nodiscard]] virtual Result<std::vector<ClusterEvent>> EventsSince(uint64_t from_sequence,
                                                                      size_t limit) = 0;
};

}  // namespace phoenix::supervisor
