#include "proto/support/sqlite_db.h"

#include <sqlite3.h>

#include <system_error>
#include <utility>

namespace phoenix {

SqliteDb::Stmt::Stmt(Stmt&& other) noexcept
    : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)) {}

SqliteDb::Stmt::~Stmt() {
  if (stmt_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
}

SqliteDb::Stmt& SqliteDb::Stmt::Bind(int index, int64_t value) {
  PHX_CHECK(sqlite3_bind_int64(stmt_, index, value) == SQLITE_OK);
  return *this;
}

SqliteDb::Stmt& SqliteDb::Stmt::Bind(int index, std::string_view text) {
  PHX_CHECK(sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()),
                              SQLITE_TRANSIENT) == SQLITE_OK);
  return *this;
}

SqliteDb::Stmt& SqliteDb::Stmt::BindBlob(int index, std::string_view bytes) {
  // A zero-length blob from a null pointer would bind NULL, which NOT NULL columns refuse.
  static const char kEmpty = 0;
  PHX_CHECK(sqlite3_bind_blob(stmt_, index, bytes.empty() ? &kEmpty : bytes.data(),
                              static_cast<int>(bytes.size()), SQLITE_TRANSIENT) == SQLITE_OK);
  return *this;
}

Result<bool> SqliteDb::Stmt::Step(std::string_view what) {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return std::unexpected(db_->ErrorFor(rc, what));
}

Result<void> SqliteDb::Stmt::Run(std::string_view what) {
  auto r = Step(what);
  if (!r) return std::unexpected(r.error());
  return {};
}

int64_t SqliteDb::Stmt::Int(int col) const { return sqlite3_column_int64(stmt_, col); }

std::string SqliteDb::Stmt::Text(int col) const {
  // Fetch the pointer before the size, as SQLite documents.
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  int n = sqlite3_column_bytes(stmt_, col);
  return p == nullptr ? std::string() : std::string(p, static_cast<size_t>(n));
}

std::string SqliteDb::Stmt::Blob(int col) const {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, col));
  int n = sqlite3_column_bytes(stmt_, col);
  return p == nullptr ? std::string() : std::string(p, static_cast<size_t>(n));
}

Result<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::filesystem::path& db_file,
                                                 std::string name, int busy_timeout_ms) {
  if (db_file.empty()) return InvalidArgument("db_file", "empty path");
  if (db_file.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(db_file.parent_path(), ec);
    if (ec) {
      return Internal(name + ": creating " + db_file.parent_path().string() + ": " + ec.message());
    }
  }
  sqlite3* raw = nullptr;
  // NOMUTEX: callers serialize, so SQLite's own per-connection mutex would only cost time.
  int rc =
      sqlite3_open_v2(db_file.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    sqlite3_close(raw);
    return Internal(name + ": opening " + db_file.string() + ": " + msg);
  }
  sqlite3_extended_result_codes(raw, 1);
  // From here the SqliteDb owns the connection and closes it on every path.
  std::unique_ptr<SqliteDb> db(new SqliteDb(raw, std::move(name)));
  if (sqlite3_busy_timeout(raw, busy_timeout_ms) != SQLITE_OK) {
    return std::unexpected(db->LastError("setting the busy timeout"));
  }
  {
    // journal_mode answers with the mode in force; anything but "wal" means it did not take.
    auto mode = db->Prepare("PRAGMA journal_mode=WAL");
    if (!mode) return std::unexpected(mode.error());
    auto row = mode->Step("enabling WAL");
    if (!row) return std::unexpected(row.error());
    std::string got = *row ? mode->Text(0) : "";
    if (got != "wal") {
      return Internal(db->name_ + ": " + db_file.string() +
                      ": cannot use WAL journal mode (journal_mode=" + got + ")");
    }
  }
  PHX_TRY(db->Exec("PRAGMA synchronous=FULL", "setting synchronous=FULL"));
  PHX_TRY(db->Exec("PRAGMA foreign_keys=ON", "enabling foreign keys"));
  return db;
}

SqliteDb::~SqliteDb() {
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  // Every statement is finalized, so close cannot fail with SQLITE_BUSY.
  sqlite3_close(db_);
}

Error SqliteDb::ErrorFor(int rc, std::string_view what) const {
  ErrorCode code = ErrorCode::kInternal;
  switch (rc & 0xff) {  // the primary code of an extended one
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      code = ErrorCode::kUnavailable;
      break;
    case SQLITE_FULL:
      code = ErrorCode::kResourceExhausted;
      break;
    default:
      break;
  }
  return Error{code, name_ + ": " + std::string(what) + ": " + sqlite3_errmsg(db_) +
                         " (sqlite error " + std::to_string(rc) + ")"};
}

Error SqliteDb::LastError(std::string_view what) const {
  return ErrorFor(sqlite3_extended_errcode(db_), what);
}

Result<void> SqliteDb::Exec(std::string_view sql, std::string_view what) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, std::string(sql).c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    // sqlite3_exec reports the failing statement's message through `err`.
    std::string msg = err != nullptr ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    Error e = ErrorFor(rc, what);
    e.message = name_ + ": " + std::string(what) + ": " + msg + " (sqlite error " +
                std::to_string(rc) + ")";
    return std::unexpected(std::move(e));
  }
  return {};
}

Result<SqliteDb::Stmt> SqliteDb::Prepare(std::string_view sql) {
  std::string key(sql);
  auto it = statements_.find(key);
  if (it == statements_.end()) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, key.data(), static_cast<int>(key.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return std::unexpected(LastError("preparing \"" + key + "\""));
    it = statements_.emplace(std::move(key), stmt).first;
  }
  return Stmt(this, it->second);
}

Result<int64_t> SqliteDb::UserVersion() {
  auto q = Prepare("PRAGMA user_version");
  if (!q) return std::unexpected(q.error());
  auto row = q->Step("reading the schema version");
  if (!row) return std::unexpected(row.error());
  return *row ? q->Int(0) : 0;
}

Result<int64_t> SqliteDb::AutoincrementHighWater(std::string_view table, std::string_view what) {
  auto q = Prepare("SELECT seq FROM sqlite_sequence WHERE name = ?1");
  if (!q) return std::unexpected(q.error());
  q->Bind(1, table);
  auto row = q->Step(what);
  if (!row) return std::unexpected(row.error());
  return *row ? q->Int(0) : 0;
}

Result<void> SqliteDb::Migrate(std::span<const std::string_view> migrations,
                               std::string_view program, std::string_view move_aside) {
  const auto target = static_cast<int64_t>(migrations.size());
  for (;;) {
    // Read the version inside the write transaction so two processes opening a fresh database
    // cannot both run the same migration.
    PHX_TRY(Exec("BEGIN IMMEDIATE", "starting the migration transaction"));
    auto step = [&]() -> Result<bool> {
      auto version = UserVersion();
      if (!version) return std::unexpected(version.error());
      if (*version > target) {
        return FailedPrecondition("the " + name_ + " has schema version " +
                                  std::to_string(*version) + ", newer than this " +
                                  std::string(program) + " understands (" + std::to_string(target) +
                                  "); run a newer " + std::string(program) + " or move " +
                                  std::string(move_aside) + " aside");
      }
      if (*version < 0) {
        return Internal("the " + name_ + " has an invalid schema version " +
                        std::to_string(*version));
      }
      if (*version == target) return false;
      std::string to = std::to_string(*version + 1);
      PHX_TRY(
          Exec(migrations[static_cast<size_t>(*version)], "migrating the schema to version " + to));
      PHX_TRY(Exec("PRAGMA user_version=" + to, "recording schema version " + to));
      return true;
    };
    auto migrated = step();
    if (!migrated || !*migrated) {
      (void)Exec("ROLLBACK", "ending the migration transaction");
      if (!migrated) return std::unexpected(migrated.error());
      return {};
    }
    auto committed = Exec("COMMIT", "committing the migration");
    if (!committed) {
      (void)Exec("ROLLBACK", "rolling back the migration");
      return committed;
    }
  }
}

}  // namespace phoenix
