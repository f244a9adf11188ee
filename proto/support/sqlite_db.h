// SqliteDb: the SQLite plumbing shared by the agent's and the supervisor's durable stores, so both
// open, query and migrate their databases the same way: one connection in WAL mode with
// synchronous=FULL (a committed transaction survives a crash of the process or the host), a busy
// timeout, foreign keys on, cached prepared statements, SQLite failures mapped onto Phoenix Errors
// and the schema versioned with PRAGMA user_version. Schemas, transactions and record mapping stay
// with each store.
//
// Errors: every message starts with the store's name ("agent store: ...") and ends with the SQLite
// result code. SQLITE_BUSY and SQLITE_LOCKED map to kUnavailable (retry later), SQLITE_FULL to
// kResourceExhausted, everything else to kInternal.
//
// Ownership: a SqliteDb owns its connection and every statement it prepared; destroying it
// finalizes them and closes the connection. A Stmt is a loan of one cached statement and must not
// outlive the SqliteDb; releasing it resets the statement and clears its bindings.
//
// Threading: one connection, not thread-safe by itself (opened with SQLITE_OPEN_NOMUTEX). Callers
// serialize every call, and the life of every Stmt, with their own lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "proto/support/error.h"

struct sqlite3;
struct sqlite3_stmt;

namespace phoenix {

class SqliteDb {
 public:
  // A cached prepared statement on loan; see the ownership rules above.
  class Stmt {
   public:
    Stmt(const SqliteDb* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
    Stmt(Stmt&& other) noexcept;
    Stmt& operator=(Stmt&&) = delete;
    ~Stmt();

    // Binding fails only for a bad index or out of memory: broken invariants, so PHX_CHECKed.
    Stmt& Bind(int index, int64_t value);
    Stmt& Bind(int index, std::string_view text);
    Stmt& Bind(int index, const std::string& text) { return Bind(index, std::string_view(text)); }
    Stmt& Bind(int index, const char* text) { return Bind(index, std::string_view(text)); }
    // Empty bytes bind a zero-length blob, never NULL.
    Stmt& BindBlob(int index, std::string_view bytes);

    // true: a row is available; false: done. `what` names the operation in the error.
    [[nodiscard]] Result<bool> Step(std::string_view what);
    // Steps once and ignores any row.
    [[nodiscard]] Result<void> Run(std::string_view what);
    // Steps through every row, calling `row(*this)` (which returns Result<void>) on each; the
    // first error, from SQLite or from `row`, stops the walk and is returned.
    template <typename RowFn>
    [[nodiscard]] Result<void> ForEachRow(std::string_view what, RowFn&& row) {
      for (;;) {
        auto more = Step(what);
        if (!more) return std::unexpected(more.error());
        if (!*more) return {};
        PHX_TRY(row(*this));
      }
    }

    int64_t Int(int col) const;
    std::string Text(int col) const;
    std::string Blob(int col) const;

   private:
    const SqliteDb* db_;
    sqlite3_stmt* stmt_;
  };

  // Opens (creating parent directories and the file when missing) `db_file` read-write, with
  // extended result codes, the busy timeout, WAL (refused with kInternal if SQLite cannot use it),
  // synchronous=FULL and foreign_keys=ON. `name` prefixes every error message.
  [[nodiscard]] static Result<std::unique_ptr<SqliteDb>> Open(const std::filesystem::path& db_file,
                                                              std::string name,
                                                              int busy_timeout_ms);

  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  // Runs one or more statements that return no rows.
  [[nodiscard]] Result<void> Exec(std::string_view sql, std::string_view what);
  // The cached statement for `sql`, prepared on first use.
  [[nodiscard]] Result<Stmt> Prepare(std::string_view sql);

  // PRAGMA user_version (0 for a fresh database).
  [[nodiscard]] Result<int64_t> UserVersion();
  // Brings the schema to version migrations.size(): migrations[i] takes it from version i to i+1,
  // each step in its own IMMEDIATE transaction that re-reads the version, so two processes opening
  // a fresh database cannot both run a step. A newer version is refused (kFailedPrecondition) with
  // advice to run a newer `program` or to move `move_aside` (e.g. "the state dir") aside.
  [[nodiscard]] Result<void> Migrate(std::span<const std::string_view> migrations,
                                     std::string_view program, std::string_view move_aside);

  // Runs `body` (returning a Result) in one read transaction, so everything it reads is one
  // consistent snapshot. Ending a read-only transaction cannot lose anything, so a failure to end
  // it is reported only when `body` succeeded.
  template <typename Body>
  auto InReadTransaction(Body&& body) -> decltype(body()) {
    PHX_TRY(Exec("BEGIN", "starting a read transaction"));
    auto out = body();
    auto ended = Exec("COMMIT", "ending the read transaction");
    if (!ended) (void)Exec("ROLLBACK", "ending the read transaction");
    if (out && !ended) return std::unexpected(ended.error());
    return out;
  }

  // The AUTOINCREMENT high-water mark of `table` (0 if it never had a row). It survives deleting
  // every row, so sequences taken from it are never reused.
  [[nodiscard]] Result<int64_t> AutoincrementHighWater(std::string_view table,
                                                       std::string_view what);

  // The Error for SQLite result code `rc` while doing `what`, with the connection's message.
  Error ErrorFor(int rc, std::string_view what) const;
  // ErrorFor the connection's most recent failure.
  Error LastError(std::string_view what) const;

  const std::string& name() const { return name_; }

 private:
  SqliteDb(sqlite3* db, std::string name) : db_(db), name_(std::move(name)) {}

  sqlite3* const db_;
  const std::string name_;
  std::unordered_map<std::string, sqlite3_stmt*> statements_;  // keyed by SQL
};

// An enum value's frozen on-disk text code. Stores keep enums as these codes, never as enumerator
// positions, so reordering an enum cannot silently change the meaning of stored rows.
template <typename E>
struct SqlCode {
  E value;
  std::string_view text;
};

// The code of `value`; an enumerator without a code is a broken invariant.
template <typename E, size_t N>
std::string_view ToSqlCode(const SqlCode<E> (&codes)[N], E value) {
  for (const auto& c : codes) {
    if (c.value == value) return c.text;
  }
  PHX_CHECK(false && "enum value without an on-disk code");
  return {};
}

// The value whose code is `text`, or nullopt (a corrupt or newer row: the caller names it).
template <typename E, size_t N>
std::optional<E> FromSqlCode(const SqlCode<E> (&codes)[N], std::string_view text) {
  for (const auto& c : codes) {
    if (c.text == text) return c.value;
  }
  return std::nullopt;
}

// SQLite integers are signed 64-bit: a bound on rows or sequences beyond INT64_MAX is clamped so
// signed comparisons stay right.
inline int64_t ClampToInt64(uint64_t v) {
  return v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
             ? std::numeric_limits<int64_t>::max()
             : static_cast<int64_t>(v);
}

}  // namespace phoenix
