// SqliteStateStore: the supervisor's StateStore in one SQLite database (by default
// <state-dir>/supervisor.db), the embedded default.
//
// Durability: every Commit is one BEGIN IMMEDIATE transaction in WAL mode with synchronous=FULL:
// when it returns success the batch survives a SIGKILL of the supervisor or a crash of the host;
// a refused or failed Commit leaves the database as it was. Version checks run inside the
// transaction, so two processes or threads racing on one record cannot both win.
//
// Layout: services (every ServiceSpec field as a column, guest_template as a BLOB) with child
// tables for the node selector and the replicas' placement; nodes with child tables for labels and
// runtimes; events with an AUTOINCREMENT sequence, so a sequence is never reused, even after
// trimming or a restart. Enums are stored as frozen text codes, never as enumerator positions.
// uint64 values are stored as their int64 bit pattern and round-trip exactly; timestamps are kept
// at microsecond precision (truncated toward the past).
//
// Schema: versioned with PRAGMA user_version; Open migrates older versions forward and refuses a
// database written by a newer supervisor (kFailedPrecondition) rather than misreading it.
//
// Ownership and threading: one SqliteStateStore owns one SQLite connection and its cached prepared
// statements; every method is serialized by a mutex and may be called from any thread. Only one
// supervisor process should open a database at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "proto/support/sqlite_db.h"
#include "supervisor/state/state_store.h"

namespace phoenix::supervisor {

class SqliteStateStore : public StateStore {
 public:
  // The schema version this build writes and understands.
  static constexpr int kSchemaVersion = 4;

  struct Options {
    size_t max_events = 10000;  // the event log keeps the newest N events; must be > 0
    int busy_timeout_ms = 5000;
  };

  // Opens the database, creating its parent directories, the file and the schema when missing.
  [[nodiscard]] static Result<std::unique_ptr<SqliteStateStore>> Open(
      const std::filesystem::path& db_file);
  [[nodiscard]] static Result<std::unique_ptr<SqliteStateStore>> Open(
      const std::filesystem::path& db_file, const Options& options);

  ~SqliteStateStore() override;
  SqliteStateStore(const SqliteStateStore&) = delete;
  SqliteStateStore& operator=(const SqliteStateStore&) = delete;

  [[nodiscard]] Result<ClusterSnapshotRecord> Load() override;
  [[nodiscard]] Result<CommitResult> Commit(const CommitBatch& batch) override;
  [[nodiscard]] Result<std::vector<ClusterEvent>> EventsSince(uint64_t from_sequence,
                                                              size_t limit) override;

  const std::filesystem::path& path() const { return path_; }

 private:
  using Stmt = SqliteDb::Stmt;

  SqliteStateStore(std::filesystem::path path, std::unique_ptr<SqliteDb> db, Options options);

  Result<void> Exec(std::string_view sql, std::string_view what) { return db_->Exec(sql, what); }
  Result<Stmt> Prepare(std::string_view sql) { return db_->Prepare(sql); }
  Result<uint64_t> ReadLastSequence();
  Result<uint64_t> StoredVersion(std::string_view table, const std::string& name);
  Result<CommitResult> CommitLocked(const CommitBatch& batch, TimePoint now);
  Result<void> PutService(const Service& service, uint64_t version);
  Result<void> PutNode(const NodeRecord& node, uint64_t version);
  Result<void> PutWindow(const std::string& service, const AutoscaleWindow& window);
  Result<ClusterSnapshotRecord> LoadLocked();

  const std::filesystem::path path_;
  const Options options_;
  std::mutex mu_;
  const std::unique_ptr<SqliteDb> db_;  // used only under mu_: the connection is not thread-safe
};

}  // namespace phoenix::supervisor
