// Commit rules: the checks and conventions every StateStore implementation applies to a
// CommitBatch, kept in one place so SqliteStateStore and MemoryStateStore cannot drift apart
// (the conformance tests check the observable result; this keeps the wording identical too).
//
// - ValidateBatch: structural checks before any version is looked at (kInvalidArgument).
// - VersionConflict: the optimistic-concurrency rule and its message ("service web: at version
//   7, expected 6"); Conflicts() turns the collected messages into one kAborted error.
// - StoredTime: times are kept at microsecond precision (truncated toward the past), so a value
//   read back from either store is identical.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/support/error.h"
#include "supervisor/state/cluster.h"
#include "supervisor/state/state_store.h"

namespace phoenix::supervisor::commit_rules {

// Names are non-empty; a service or node is written at most once per batch (a put, a delete and a
// window write of the same service count as separate writes); replica indices of a service are
// unique; a delete names a version (never 0). The store answers kInvalidArgument and writes nothing
// otherwise.
[[nodiscard]] Result<void> ValidateBatch(const CommitBatch& batch);

// `current` is the stored version (0 = absent). Returns the conflict's description, or nothing if
// the write may proceed. `kind` is "service" or "node".
std::optional<std::string> VersionConflict(std::string_view kind, std::string_view name,
                                           uint64_t current, uint64_t expected);

// One kAborted error listing every conflict of the batch ("commit refused: service web: ...").
Error Conflicts(const std::vector<std::string>& conflicts);

// `t` truncated to whole microseconds, toward the past.
TimePoint StoredTime(TimePoint t);
int64_t ToMicros(TimePoint t);
TimePoint FromMicros(int64_t us);

// The window with every time at microsecond precision.
AutoscaleWindow StoredWindow(AutoscaleWindow window);

// The event as the store records it: sequence assigned, time kept if set (at microsecond
// precision) or else the commit time.
ClusterEvent StoredEvent(const ClusterEvent& event, uint64_t sequence, TimePoint commit_time);

}  // namespace phoenix::supervisor::commit_rules
