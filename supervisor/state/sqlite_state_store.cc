#include "supervisor/state/sqlite_state_store.h"

#include <sqlite3.h>

#include <array>
#include <map>
#include <system_error>
#include <utility>

#include "supervisor/state/commit_rules.h"

namespace phoenix::supervisor {
namespace {

using commit_rules::FromMicros;
using commit_rules::ToMicros;

// Each entry migrates the schema from version i to i+1; entry 0 creates it. Never edit a shipped
// entry: append a new one. Enum columns hold the frozen text codes below.
constexpr std::array<std::string_view, SqliteStateStore::kSchemaVersion> kMigrations = {
    R"sql(
CREATE TABLE services (
  name TEXT PRIMARY KEY NOT NULL,
  version INTEGER NOT NULL,
  runtime TEXT NOT NULL,
  image TEXT NOT NULL,
  vcpus INTEGER NOT NULL,
  memory_mib INTEGER NOT NULL,
  replicas INTEGER NOT NULL,
  spread_attribute TEXT NOT NULL,
  max_skew INTEGER NOT NULL,
  strategy TEXT NOT NULL,
  distinct_hosts INTEGER NOT NULL,
  guest_template BLOB NOT NULL,
  created_at_us INTEGER NOT NULL
) STRICT;
CREATE TABLE service_node_selector (
  service TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (service, key)
) STRICT, WITHOUT ROWID;
CREATE TABLE replicas (
  service TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  generation INTEGER NOT NULL,
  node TEXT NOT NULL,
  PRIMARY KEY (service, idx)
) STRICT, WITHOUT ROWID;
CREATE TABLE nodes (
  name TEXT PRIMARY KEY NOT NULL,
  version INTEGER NOT NULL,
  zone TEXT NOT NULL,
  capacity_vcpus INTEGER NOT NULL,
  capacity_memory_mib INTEGER NOT NULL,
  drained INTEGER NOT NULL,
  assignment_version INTEGER NOT NULL,
  joined_at_us INTEGER NOT NULL
) STRICT;
CREATE TABLE node_labels (
  node TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (node, key)
) STRICT, WITHOUT ROWID;
CREATE TABLE node_runtimes (
  node TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE,
  runtime TEXT NOT NULL,
  PRIMARY KEY (node, runtime)
) STRICT, WITHOUT ROWID;
CREATE TABLE events (
  sequence INTEGER PRIMARY KEY AUTOINCREMENT,
  time_us INTEGER NOT NULL,
  type TEXT NOT NULL,
  service TEXT NOT NULL,
  node TEXT NOT NULL,
  message TEXT NOT NULL
) STRICT;
)sql",
};

template <typename E>
struct Code {
  E value;
  std::string_view text;
};

constexpr Code<RuntimeKind> kRuntimeCodes[] = {{RuntimeKind::kVm, "vm"},
                                               {RuntimeKind::kMicroVm, "microvm"},
                                               {RuntimeKind::kContainer, "container"}};
constexpr Code<PlacementStrategy> kStrategyCodes[] = {{PlacementStrategy::kSpread, "spread"},
                                                      {PlacementStrategy::kBinpack, "binpack"}};
constexpr Code<ClusterEventType> kEventCodes[] = {
    {ClusterEventType::kServiceCreated, "service-created"},
    {ClusterEventType::kServiceScaled, "service-scaled"},
    {ClusterEventType::kServiceDeleted, "service-deleted"},
    {ClusterEventType::kReplicaPlaced, "replica-placed"},
    {ClusterEventType::kReplicaPending, "replica-pending"},
    {ClusterEventType::kReplicaRunning, "replica-running"},
    {ClusterEventType::kReplicaReplaced, "replica-replaced"},
    {ClusterEventType::kReplicaRemoved, "replica-removed"},
    {ClusterEventType::kNodeJoined, "node-joined"},
    {ClusterEventType::kNodeReady, "node-ready"},
    {ClusterEventType::kNodeSuspect, "node-suspect"},
    {ClusterEventType::kNodeDown, "node-down"},
    {ClusterEventType::kNodeDrained, "node-drained"},
    {ClusterEventType::kNodeUndrained, "node-undrained"},
    {ClusterEventType::kStaleGuestStopped, "stale-guest-stopped"},
};

template <typename E, size_t N>
std::string_view ToCode(const Code<E> (&codes)[N], E value) {
  for (const auto& c : codes) {
    if (c.value == value) return c.text;
  }
  PHX_CHECK(false && "enum value without an on-disk code");
  return {};
}

template <typename E, size_t N>
Result<E> FromCode(const Code<E> (&codes)[N], std::string_view text, std::string_view what) {
  for (const auto& c : codes) {
    if (c.text == text) return c.value;
  }
  return Internal("corrupt " + std::string(what) + ": unknown code \"" + std::string(text) + "\"");
}

// SQLite integers are signed 64-bit: unsigned values travel as their bit pattern.
int64_t AsInt(uint64_t v) { return static_cast<int64_t>(v); }
uint64_t AsU64(int64_t v) { return static_cast<uint64_t>(v); }

}  // namespace

class SqliteStateStore::Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Stmt(Stmt&& other) noexcept : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)) {}
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt() {
    if (stmt_ != nullptr) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
  }

  // Binding fails only for a bad index or out of memory: broken invariants here.
  Stmt& Bind(int index, int64_t value) {
    PHX_CHECK(sqlite3_bind_int64(stmt_, index, value) == SQLITE_OK);
    return *this;
  }
  Stmt& Bind(int index, std::string_view text) {
    PHX_CHECK(sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()),
                                SQLITE_TRANSIENT) == SQLITE_OK);
    return *this;
  }
  Stmt& BindBlob(int index, std::string_view bytes) {
    // A zero-length blob from a null pointer would bind NULL; the column is NOT NULL.
    static const char kEmpty = 0;
    PHX_CHECK(sqlite3_bind_blob(stmt_, index, bytes.empty() ? &kEmpty : bytes.data(),
                                static_cast<int>(bytes.size()), SQLITE_TRANSIENT) == SQLITE_OK);
    return *this;
  }

  // true: a row is available; false: done.
  Result<bool> Step(std::string_view what) {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return std::unexpected(ErrorFor(db_, rc, what));
  }
  Result<void> Run(std::string_view what) {
    auto r = Step(what);
    if (!r) return std::unexpected(r.error());
    return {};
  }

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) const {
    // Fetch the pointer before the size, as SQLite documents, for text and blobs alike.
    const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, col));
    int n = sqlite3_column_bytes(stmt_, col);
    return p == nullptr ? std::string() : std::string(p, static_cast<size_t>(n));
  }

  static Error ErrorFor(sqlite3* db, int rc, std::string_view what) {
    ErrorCode code = ErrorCode::kInternal;
    switch (rc & 0xff) {
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
    return Error{code, "supervisor store: " + std::string(what) + ": " + sqlite3_errmsg(db) +
                           " (sqlite error " + std::to_string(rc) + ")"};
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

Result<std::unique_ptr<SqliteStateStore>> SqliteStateStore::Open(
    const std::filesystem::path& db_file) {
  return Open(db_file, Options{});
}

Result<std::unique_ptr<SqliteStateStore>> SqliteStateStore::Open(
    const std::filesystem::path& db_file, const Options& options) {
  if (options.max_events == 0) {
    return InvalidArgument("max_events", "the event log must keep at least one event");
  }
  if (options.busy_timeout_ms < 0) {
    return InvalidArgument("busy_timeout_ms", "must not be negative");
  }
  if (db_file.empty()) return InvalidArgument("db_file", "empty path");
  if (db_file.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(db_file.parent_path(), ec);
    if (ec) {
      return Internal("supervisor store: creating " + db_file.parent_path().string() + ": " +
                      ec.message());
    }
  }
  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(db_file.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return Internal("supervisor store: opening " + db_file.string() + ": " + msg);
  }
  sqlite3_extended_result_codes(db, 1);
  // From here the store owns the connection and closes it on every path.
  std::unique_ptr<SqliteStateStore> store(new SqliteStateStore(db_file, db, options));
  if (sqlite3_busy_timeout(db, options.busy_timeout_ms) != SQLITE_OK) {
    return std::unexpected(store->SqlError("setting the busy timeout"));
  }

  std::lock_guard lock(store->mu_);
  {
    // journal_mode answers with the mode in force; anything but "wal" means it did not take.
    auto mode = store->Prepare("PRAGMA journal_mode=WAL");
    if (!mode) return std::unexpected(mode.error());
    auto row = mode->Step("enabling WAL");
    if (!row) return std::unexpected(row.error());
    std::string got = *row ? mode->Text(0) : "";
    if (got != "wal") {
      return Internal("supervisor store: " + db_file.string() +
                      ": cannot use WAL journal mode (journal_mode=" + got + ")");
    }
  }
  PHX_TRY(store->Exec("PRAGMA synchronous=FULL", "setting synchronous=FULL"));
  PHX_TRY(store->Exec("PRAGMA foreign_keys=ON", "enabling foreign keys"));
  auto migrated = store->Migrate();
  if (!migrated) return std::unexpected(migrated.error().Wrap("opening " + db_file.string()));
  return store;
}

SqliteStateStore::SqliteStateStore(std::filesystem::path path, sqlite3* db, Options options)
    : path_(std::move(path)), options_(options), db_(db) {}

SqliteStateStore::~SqliteStateStore() {
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  // Every statement is finalized, so close cannot fail with SQLITE_BUSY.
  sqlite3_close(db_);
}

Error SqliteStateStore::SqlError(std::string_view what) const {
  return Stmt::ErrorFor(db_, sqlite3_extended_errcode(db_), what);
}

Result<void> SqliteStateStore::Exec(std::string_view sql, std::string_view what) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, std::string(sql).c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err != nullptr ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    Error e = Stmt::ErrorFor(db_, rc, what);
    e.message = "supervisor store: " + std::string(what) + ": " + msg + " (sqlite error " +
                std::to_string(rc) + ")";
    return std::unexpected(std::move(e));
  }
  return {};
}

Result<SqliteStateStore::Stmt> SqliteStateStore::Prepare(std::string_view sql) {
  auto it = statements_.find(std::string(sql));
  if (it == statements_.end()) {
    std::string key(sql);
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, key.data(), static_cast<int>(key.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return std::unexpected(SqlError("preparing \"" + key + "\""));
    it = statements_.emplace(std::move(key), stmt).first;
  }
  return Stmt(db_, it->second);
}

Result<void> SqliteStateStore::Migrate() {
  for (;;) {
    // Read the version inside the write transaction so two processes opening a fresh database
    // cannot both run the same migration.
    PHX_TRY(Exec("BEGIN IMMEDIATE", "starting the migration transaction"));
    auto step = [&]() -> Result<bool> {
      auto q = Prepare("PRAGMA user_version");
      if (!q) return std::unexpected(q.error());
      auto row = q->Step("reading the schema version");
      if (!row) return std::unexpected(row.error());
      int64_t version = *row ? q->Int(0) : 0;
      if (version > kSchemaVersion) {
        return FailedPrecondition(
            "the supervisor store has schema version " + std::to_string(version) +
            ", newer than this phoenix-supervisor understands (" + std::to_string(kSchemaVersion) +
            "); run a newer phoenix-supervisor or move the database aside");
      }
      if (version < 0) {
        return Internal("the supervisor store has an invalid schema version " +
                        std::to_string(version));
      }
      if (version == kSchemaVersion) return false;
      std::string to = std::to_string(version + 1);
      PHX_TRY(
          Exec(kMigrations[static_cast<size_t>(version)], "migrating the schema to version " + to));
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

Result<uint64_t> SqliteStateStore::ReadLastSequence() {
  // sqlite_sequence holds AUTOINCREMENT's high-water mark, which survives trimming every event.
  auto q = Prepare("SELECT seq FROM sqlite_sequence WHERE name = 'events'");
  if (!q) return std::unexpected(q.error());
  auto row = q->Step("reading the last event sequence");
  if (!row) return std::unexpected(row.error());
  return *row ? AsU64(q->Int(0)) : 0;
}

Result<uint64_t> SqliteStateStore::StoredVersion(std::string_view table, const std::string& name) {
  auto q = Prepare(table == "services" ? "SELECT version FROM services WHERE name = ?1"
                                       : "SELECT version FROM nodes WHERE name = ?1");
  if (!q) return std::unexpected(q.error());
  q->Bind(1, name);
  auto row = q->Step("reading the version of " + name);
  if (!row) return std::unexpected(row.error());
  return *row ? AsU64(q->Int(0)) : 0;
}

Result<CommitResult> SqliteStateStore::Commit(const CommitBatch& batch) {
  PHX_TRY(commit_rules::ValidateBatch(batch));
  const TimePoint now = Clock::now();
  std::lock_guard lock(mu_);
  PHX_TRY(Exec("BEGIN IMMEDIATE", "starting a commit"));
  auto result = CommitLocked(batch, now);
  if (result) {
    auto committed = Exec("COMMIT", "committing");
    if (!committed) result = std::unexpected(committed.error());
  }
  // After a failed COMMIT the transaction may still be open; ROLLBACK then discards it (and is a
  // harmless error if SQLite already rolled back on its own).
  if (!result) (void)Exec("ROLLBACK", "rolling back a refused commit");
  return result;
}

Result<CommitResult> SqliteStateStore::CommitLocked(const CommitBatch& batch, TimePoint now) {
  // Every version is checked before anything is written, so the refusal names all conflicts.
  std::vector<std::string> conflicts;
  auto check = [&](std::string_view kind, std::string_view table, const std::string& name,
                   uint64_t expected) -> Result<void> {
    auto current = StoredVersion(table, name);
    if (!current) return std::unexpected(current.error());
    if (auto c = commit_rules::VersionConflict(kind, name, *current, expected)) {
      conflicts.push_back(std::move(*c));
    }
    return {};
  };
  for (const auto& p : batch.put_services) {
    PHX_TRY(check("service", "services", p.service.spec.name, p.expected_version));
  }
  for (const auto& d : batch.delete_services) {
    PHX_TRY(check("service", "services", d.name, d.expected_version));
  }
  for (const auto& p : batch.put_nodes) {
    PHX_TRY(check("node", "nodes", p.node.name, p.expected_version));
  }
  if (!conflicts.empty()) return std::unexpected(commit_rules::Conflicts(conflicts));

  CommitResult result;
  for (const auto& p : batch.put_services) {
    PHX_TRY(PutService(p.service, p.expected_version + 1));
    result.service_versions.push_back(p.expected_version + 1);
  }
  for (const auto& d : batch.delete_services) {
    auto s = Prepare("DELETE FROM services WHERE name = ?1");  // children go by ON DELETE CASCADE
    if (!s) return std::unexpected(s.error());
    PHX_TRY(s->Bind(1, d.name).Run("deleting service " + d.name));
  }
  for (const auto& p : batch.put_nodes) {
    PHX_TRY(PutNode(p.node, p.expected_version + 1));
    result.node_versions.push_back(p.expected_version + 1);
  }

  uint64_t last = 0;
  for (const auto& e : batch.events) {
    auto s = Prepare(
        "INSERT INTO events (time_us, type, service, node, message) VALUES (?1, ?2, ?3, ?4, ?5) "
        "RETURNING sequence");
    if (!s) return std::unexpected(s.error());
    ClusterEvent stored = commit_rules::StoredEvent(e, 0, now);
    s->Bind(1, ToMicros(stored.time))
        .Bind(2, ToCode(kEventCodes, stored.type))
        .Bind(3, stored.service)
        .Bind(4, stored.node)
        .Bind(5, stored.message);
    auto row = s->Step("appending an event");
    if (!row) return std::unexpected(row.error());
    PHX_CHECK(*row);  // RETURNING yields exactly one row for a successful insert
    stored.sequence = last = AsU64(s->Int(0));
    PHX_TRY(s->Run("appending an event"));  // step to SQLITE_DONE to finish the insert
    result.events.push_back(std::move(stored));
  }
  if (last > options_.max_events) {
    auto t = Prepare("DELETE FROM events WHERE sequence <= ?1");
    if (!t) return std::unexpected(t.error());
    PHX_TRY(t->Bind(1, AsInt(last - options_.max_events)).Run("trimming the event log"));
  }
  return result;
}

Result<void> SqliteStateStore::PutService(const Service& service, uint64_t version) {
  const ServiceSpec& spec = service.spec;
  const std::string& name = spec.name;
  auto s = Prepare(
      "INSERT INTO services (name, version, runtime, image, vcpus, memory_mib, replicas, "
      "spread_attribute, max_skew, strategy, distinct_hosts, guest_template, created_at_us) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) "
      "ON CONFLICT (name) DO UPDATE SET version = excluded.version, runtime = excluded.runtime, "
      "image = excluded.image, vcpus = excluded.vcpus, memory_mib = excluded.memory_mib, "
      "replicas = excluded.replicas, spread_attribute = excluded.spread_attribute, "
      "max_skew = excluded.max_skew, strategy = excluded.strategy, "
      "distinct_hosts = excluded.distinct_hosts, guest_template = excluded.guest_template, "
      "created_at_us = excluded.created_at_us");
  if (!s) return std::unexpected(s.error());
  s->Bind(1, name)
      .Bind(2, AsInt(version))
      .Bind(3, ToCode(kRuntimeCodes, spec.runtime))
      .Bind(4, spec.image)
      .Bind(5, int64_t{spec.vcpus})
      .Bind(6, int64_t{spec.memory_mib})
      .Bind(7, int64_t{spec.replicas})
      .Bind(8, spec.spread_attribute)
      .Bind(9, int64_t{spec.max_skew})
      .Bind(10, ToCode(kStrategyCodes, spec.strategy))
      .Bind(11, int64_t{spec.distinct_hosts})
      .BindBlob(12, spec.guest_template)
      .Bind(13, ToMicros(service.created_at));
  PHX_TRY(s->Run("storing service " + name));

  static constexpr std::string_view kClear[] = {
      "DELETE FROM service_node_selector WHERE service = ?1",
      "DELETE FROM replicas WHERE service = ?1",
  };
  for (auto sql : kClear) {
    auto c = Prepare(sql);
    if (!c) return std::unexpected(c.error());
    PHX_TRY(c->Bind(1, name).Run("replacing the children of service " + name));
  }
  for (const auto& [key, value] : spec.node_selector) {
    auto c = Prepare("INSERT INTO service_node_selector (service, key, value) VALUES (?1, ?2, ?3)");
    if (!c) return std::unexpected(c.error());
    PHX_TRY(c->Bind(1, name).Bind(2, key).Bind(3, value).Run("storing the selector of " + name));
  }
  for (const auto& r : service.replicas) {
    auto c =
        Prepare("INSERT INTO replicas (service, idx, generation, node) VALUES (?1, ?2, ?3, ?4)");
    if (!c) return std::unexpected(c.error());
    PHX_TRY(c->Bind(1, name)
                .Bind(2, int64_t{r.index})
                .Bind(3, AsInt(r.generation))
                .Bind(4, r.node)
                .Run("storing the replicas of " + name));
  }
  return {};
}

Result<void> SqliteStateStore::PutNode(const NodeRecord& node, uint64_t version) {
  const std::string& name = node.name;
  auto s = Prepare(
      "INSERT INTO nodes (name, version, zone, capacity_vcpus, capacity_memory_mib, drained, "
      "assignment_version, joined_at_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
      "ON CONFLICT (name) DO UPDATE SET version = excluded.version, zone = excluded.zone, "
      "capacity_vcpus = excluded.capacity_vcpus, "
      "capacity_memory_mib = excluded.capacity_memory_mib, drained = excluded.drained, "
      "assignment_version = excluded.assignment_version, joined_at_us = excluded.joined_at_us");
  if (!s) return std::unexpected(s.error());
  s->Bind(1, name)
      .Bind(2, AsInt(version))
      .Bind(3, node.zone)
      .Bind(4, int64_t{node.capacity.vcpus})
      .Bind(5, AsInt(node.capacity.memory_mib))
      .Bind(6, int64_t{node.drained})
      .Bind(7, AsInt(node.assignment_version))
      .Bind(8, ToMicros(node.joined_at));
  PHX_TRY(s->Run("storing node " + name));

  static constexpr std::string_view kClear[] = {
      "DELETE FROM node_labels WHERE node = ?1",
      "DELETE FROM node_runtimes WHERE node = ?1",
  };
  for (auto sql : kClear) {
    auto c = Prepare(sql);
    if (!c) return std::unexpected(c.error());
    PHX_TRY(c->Bind(1, name).Run("replacing the children of node " + name));
  }
  for (const auto& [key, value] : node.labels) {
    auto c = Prepare("INSERT INTO node_labels (node, key, value) VALUES (?1, ?2, ?3)");
    if (!c) return std::unexpected(c.error());
    PHX_TRY(c->Bind(1, name).Bind(2, key).Bind(3, value).Run("storing the labels of " + name));
  }
  for (RuntimeKind runtime : node.runtimes) {
    auto c = Prepare("INSERT INTO node_runtimes (node, runtime) VALUES (?1, ?2)");
    if (!c) return std::unexpected(c.error());
    PHX_TRY(c->Bind(1, name)
                .Bind(2, ToCode(kRuntimeCodes, runtime))
                .Run("storing the runtimes of " + name));
  }
  return {};
}

Result<ClusterSnapshotRecord> SqliteStateStore::Load() {
  std::lock_guard lock(mu_);
  // One read transaction, so the rows and their children are one consistent snapshot.
  PHX_TRY(Exec("BEGIN", "starting a read transaction"));
  auto out = LoadLocked();
  // Ending a read-only transaction cannot lose anything; report it only if the load succeeded.
  auto ended = Exec("COMMIT", "ending the read transaction");
  if (!ended) (void)Exec("ROLLBACK", "ending the read transaction");
  if (out && !ended) return std::unexpected(ended.error());
  return out;
}

Result<ClusterSnapshotRecord> SqliteStateStore::LoadLocked() {
  ClusterSnapshotRecord out;
  // Visits every row of `sql`; `row` returns an error to stop.
  auto each = [&](std::string_view sql, std::string_view what, auto&& row) -> Result<void> {
    auto s = Prepare(sql);
    if (!s) return std::unexpected(s.error());
    for (;;) {
      auto more = s->Step(what);
      if (!more) return std::unexpected(more.error());
      if (!*more) return {};
      PHX_TRY(row(*s));
    }
  };

  std::map<std::string, size_t, std::less<>> service_at;
  PHX_TRY(each(
      "SELECT name, version, runtime, image, vcpus, memory_mib, replicas, spread_attribute, "
      "max_skew, strategy, distinct_hosts, guest_template, created_at_us FROM services "
      "ORDER BY name",
      "loading services", [&](Stmt& s) -> Result<void> {
        Service v;
        ServiceSpec& spec = v.spec;
        spec.name = s.Text(0);
        v.version = AsU64(s.Int(1));
        auto runtime = FromCode(kRuntimeCodes, s.Text(2), "runtime of service " + spec.name);
        if (!runtime) return std::unexpected(runtime.error());
        spec.runtime = *runtime;
        spec.image = s.Text(3);
        spec.vcpus = static_cast<uint32_t>(s.Int(4));
        spec.memory_mib = static_cast<uint32_t>(s.Int(5));
        spec.replicas = static_cast<uint32_t>(s.Int(6));
        spec.spread_attribute = s.Text(7);
        spec.max_skew = static_cast<uint32_t>(s.Int(8));
        auto strategy = FromCode(kStrategyCodes, s.Text(9), "strategy of service " + spec.name);
        if (!strategy) return std::unexpected(strategy.error());
        spec.strategy = *strategy;
        spec.distinct_hosts = s.Int(10) != 0;
        spec.guest_template = s.Text(11);
        v.created_at = FromMicros(s.Int(12));
        service_at.emplace(spec.name, out.services.size());
        out.services.push_back(std::move(v));
        return {};
      }));
  PHX_TRY(each("SELECT service, key, value FROM service_node_selector", "loading node selectors",
               [&](Stmt& s) -> Result<void> {
                 auto it = service_at.find(s.Text(0));
                 if (it != service_at.end()) {
                   out.services[it->second].spec.node_selector.emplace(s.Text(1), s.Text(2));
                 }
                 return {};
               }));
  PHX_TRY(each("SELECT service, idx, generation, node FROM replicas ORDER BY service, idx",
               "loading replicas", [&](Stmt& s) -> Result<void> {
                 auto it = service_at.find(s.Text(0));
                 if (it != service_at.end()) {
                   out.services[it->second].replicas.push_back(ReplicaPlacement{
                       static_cast<uint32_t>(s.Int(1)), AsU64(s.Int(2)), s.Text(3)});
                 }
                 return {};
               }));

  std::map<std::string, size_t, std::less<>> node_at;
  PHX_TRY(
      each("SELECT name, version, zone, capacity_vcpus, capacity_memory_mib, drained, "
           "assignment_version, joined_at_us FROM nodes ORDER BY name",
           "loading nodes", [&](Stmt& s) -> Result<void> {
             NodeRecord n;
             n.name = s.Text(0);
             n.version = AsU64(s.Int(1));
             n.zone = s.Text(2);
             n.capacity.vcpus = static_cast<uint32_t>(s.Int(3));
             n.capacity.memory_mib = AsU64(s.Int(4));
             n.drained = s.Int(5) != 0;
             n.assignment_version = AsU64(s.Int(6));
             n.joined_at = FromMicros(s.Int(7));
             node_at.emplace(n.name, out.nodes.size());
             out.nodes.push_back(std::move(n));
             return {};
           }));
  PHX_TRY(each("SELECT node, key, value FROM node_labels", "loading node labels",
               [&](Stmt& s) -> Result<void> {
                 auto it = node_at.find(s.Text(0));
                 if (it != node_at.end())
                   out.nodes[it->second].labels.emplace(s.Text(1), s.Text(2));
                 return {};
               }));
  PHX_TRY(each("SELECT node, runtime FROM node_runtimes", "loading node runtimes",
               [&](Stmt& s) -> Result<void> {
                 auto it = node_at.find(s.Text(0));
                 if (it == node_at.end()) return {};
                 auto runtime = FromCode(kRuntimeCodes, s.Text(1), "runtime of node " + s.Text(0));
                 if (!runtime) return std::unexpected(runtime.error());
                 out.nodes[it->second].runtimes.insert(*runtime);
                 return {};
               }));

  auto last = ReadLastSequence();
  if (!last) return std::unexpected(last.error());
  out.last_event_sequence = *last;
  return out;
}

Result<std::vector<ClusterEvent>> SqliteStateStore::EventsSince(uint64_t from_sequence,
                                                                size_t limit) {
  std::vector<ClusterEvent> out;
  if (limit == 0) return out;
  std::lock_guard lock(mu_);
  // Sequences above INT64_MAX are never assigned; clamp so the signed comparison stays right.
  int64_t from =
      from_sequence > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : AsInt(from_sequence);
  int64_t max_rows =
      limit > static_cast<size_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(limit);
  auto s = Prepare(
      "SELECT sequence, time_us, type, service, node, message FROM events WHERE sequence >= ?1 "
      "ORDER BY sequence LIMIT ?2");
  if (!s) return std::unexpected(s.error());
  s->Bind(1, from).Bind(2, max_rows);
  for (;;) {
    auto row = s->Step("reading events");
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    ClusterEvent e;
    e.sequence = AsU64(s->Int(0));
    e.time = FromMicros(s->Int(1));
    auto type = FromCode(kEventCodes, s->Text(2), "type of event " + std::to_string(e.sequence));
    if (!type) return std::unexpected(type.error());
    e.type = *type;
    e.service = s->Text(3);
    e.node = s->Text(4);
    e.message = s->Text(5);
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace phoenix::supervisor
