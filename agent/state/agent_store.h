// AgentStore: the agent's durable memory. It keeps one GuestRecord per guest and the sequenced
// event log in a single SQLite database under the agent's state dir, so that a restarted agent
// (even one that was SIGKILLed) re-adopts its guests and clients can resume `events --follow`.
//
// Durability: every mutating call is one transaction in WAL mode with synchronous=FULL, so when it
// returns success the change survives a crash of the agent or of the host. A call that fails leaves
// the database as it was.
//
// Event sequences: assigned by the store, strictly increasing and never reused, even after deletes,
// trimming or a restart (SQLite AUTOINCREMENT keeps the high-water mark). The log is trimmed to the
// newest `Options::max_events` events on append.
//
// Timestamps are stored at microsecond precision (sub-microsecond parts are truncated toward the
// past); every other field round-trips exactly.
//
// Ownership and threading: one AgentStore owns one SQLite connection and its cached prepared
// statements. All methods are internally serialized by a mutex and may be called from any thread.
// Only one process should open a database at a time (the agent's state dir is its own).
//
// Schema: versioned with PRAGMA user_version; Open migrates older versions forward and refuses a
// database written by a newer agent (kFailedPrecondition) rather than misreading it. Version 2 adds
// the supervisor's assignment and the set of guests it manages (agent/link).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/guest/event.h"
#include "agent/guest/guest.h"
#include "proto/support/error.h"
#include "proto/support/sqlite_db.h"

namespace phoenix::agent {

class AgentStore {
 public:
  // The schema version this build writes and understands.
  static constexpr int kSchemaVersion = 3;

  struct Options {
    size_t max_events = 10000;  // the event log keeps the newest N events; must be > 0
    int busy_timeout_ms = 5000;
  };

  // Opens (creating parent directories, the file and the schema when missing) the database.
  [[nodiscard]] static Result<std::unique_ptr<AgentStore>> Open(
      const std::filesystem::path& db_file);
  [[nodiscard]] static Result<std::unique_ptr<AgentStore>> Open(
      const std::filesystem::path& db_file, const Options& options);

  ~AgentStore();
  AgentStore(const AgentStore&) = delete;
  AgentStore& operator=(const AgentStore&) = delete;

  // Inserts the record, or replaces the one with the same id (including its lists and maps).
  [[nodiscard]] Result<void> PutGuest(const GuestRecord& record);
  // Removes the record; succeeds when no record has that id.
  [[nodiscard]] Result<void> DeleteGuest(const std::string& id);
  // Every stored record, ordered by id.
  [[nodiscard]] Result<std::vector<GuestRecord>> LoadGuests();

  // Stores the event with the next sequence (event.sequence is ignored) and returns it as stored.
  [[nodiscard]] Result<EventRecord> AppendEvent(EventRecord event);
  // Up to `limit` stored events with sequence >= from_sequence, ascending.
  [[nodiscard]] Result<std::vector<EventRecord>> EventsSince(uint64_t from_sequence, size_t limit);
  // The sequence of the newest event ever appended (0 if none), even if it was trimmed since.
  uint64_t LastSequence();

  // --- Supervisor assignment (agent/link) ---
  // The assignment the agent last accepted. `payload` is the link's own encoding of the guest list;
  // the store keeps it as opaque bytes and never interprets it.
  struct StoredAssignment {
    uint64_t version = 0;
    std::string payload;
    bool operator==(const StoredAssignment&) const = default;
  };
  // The stored assignment, or nullopt if the agent never accepted one.
  [[nodiscard]] Result<std::optional<StoredAssignment>> LoadAssignment();
  // Replaces the stored assignment.
  [[nodiscard]] Result<void> SaveAssignment(const StoredAssignment& assignment);
  // Names of the guests an assignment owns: a name is added before its guest is created and removed
  // after it is deleted, so guests created through the agent API are never mistaken for them.
  // Adding a present name or removing an absent one succeeds.
  [[nodiscard]] Result<void> AddManagedGuest(const std::string& name);
  [[nodiscard]] Result<void> RemoveManagedGuest(const std::string& name);
  [[nodiscard]] Result<std::set<std::string>> ManagedGuests();

  const std::filesystem::path& path() const { return path_; }

 private:
  AgentStore(std::filesystem::path path, std::unique_ptr<SqliteDb> db, Options options);

  Result<void> Exec(std::string_view sql, std::string_view what) { return db_->Exec(sql, what); }
  Result<SqliteDb::Stmt> Prepare(std::string_view sql) { return db_->Prepare(sql); }
  Result<void> LoadLastSequence();
  Result<void> PutGuestLocked(const GuestRecord& record);
  Result<void> DeleteGuestLocked(const std::string& id);

  const std::filesystem::path path_;
  const Options options_;
  std::mutex mu_;
  const std::unique_ptr<SqliteDb> db_;  // used only under mu_: the connection is not thread-safe
  uint64_t last_sequence_ = 0;          // guarded by mu_
};

}  // namespace phoenix::agent
