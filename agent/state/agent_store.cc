#include "agent/state/agent_store.h"

#include <array>
#include <chrono>
#include <functional>
#include <map>
#include <utility>

namespace phoenix::agent {
namespace {

// Each entry migrates the schema from version i to i+1; entry 0 creates it. On-disk enum values
// are the frozen text codes below, never C++ enumerator positions, so reordering an enum cannot
// silently change the meaning of stored records. Never edit a shipped entry: append a new one.
constexpr std::array<std::string_view, AgentStore::kSchemaVersion> kMigrations = {
    R"sql(
CREATE TABLE guests (
  id TEXT PRIMARY KEY NOT NULL,
  name TEXT NOT NULL,
  runtime TEXT NOT NULL,
  image TEXT NOT NULL,
  vcpus INTEGER NOT NULL,
  memory_mib INTEGER NOT NULL,
  health_kind TEXT NOT NULL,
  health_port INTEGER NOT NULL,
  health_path TEXT NOT NULL,
  health_interval_ms INTEGER NOT NULL,
  health_timeout_ms INTEGER NOT NULL,
  health_unhealthy_threshold INTEGER NOT NULL,
  health_start_period_ms INTEGER NOT NULL,
  restart_policy TEXT NOT NULL,
  restart_initial_backoff_ms INTEGER NOT NULL,
  restart_max_backoff_ms INTEGER NOT NULL,
  boot_mode TEXT NOT NULL,
  image_id TEXT NOT NULL,
  desired_running INTEGER NOT NULL,
  state TEXT NOT NULL,
  healthy INTEGER NOT NULL,
  restart_count INTEGER NOT NULL,
  consecutive_failures INTEGER NOT NULL,
  last_exit_reason TEXT NOT NULL,
  instance TEXT NOT NULL,
  instance_seq INTEGER NOT NULL,
  last_boot TEXT NOT NULL,
  last_boot_ms INTEGER NOT NULL,
  accelerator TEXT NOT NULL,
  created_at_us INTEGER NOT NULL,
  started_at_us INTEGER NOT NULL,
  updated_at_us INTEGER NOT NULL
) STRICT;
CREATE TABLE guest_command (
  guest_id TEXT NOT NULL REFERENCES guests(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  arg TEXT NOT NULL,
  PRIMARY KEY (guest_id, position)
) STRICT, WITHOUT ROWID;
CREATE TABLE guest_env (
  guest_id TEXT NOT NULL REFERENCES guests(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (guest_id, key)
) STRICT, WITHOUT ROWID;
CREATE TABLE guest_ports (
  guest_id TEXT NOT NULL REFERENCES guests(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  guest_port INTEGER NOT NULL,
  host_port INTEGER NOT NULL,
  host_ip TEXT NOT NULL,
  PRIMARY KEY (guest_id, position)
) STRICT, WITHOUT ROWID;
CREATE TABLE guest_backend_ports (
  guest_id TEXT NOT NULL REFERENCES guests(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  port INTEGER NOT NULL,
  PRIMARY KEY (guest_id, position)
) STRICT, WITHOUT ROWID;
CREATE TABLE events (
  sequence INTEGER PRIMARY KEY AUTOINCREMENT,
  time_us INTEGER NOT NULL,
  type INTEGER NOT NULL,
  guest TEXT NOT NULL,
  message TEXT NOT NULL
) STRICT;
)sql",
    R"sql(
CREATE TABLE assignment (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  version INTEGER NOT NULL,
  payload BLOB NOT NULL
) STRICT;
CREATE TABLE managed_guests (
  name TEXT PRIMARY KEY NOT NULL
) STRICT, WITHOUT ROWID;
)sql",
    // Guests recorded before the liveness grace existed restarted at their first unhealthy verdict:
    // 0 keeps that meaning for them.
    R"sql(
ALTER TABLE guests ADD COLUMN health_restart_after_unhealthy_ms INTEGER NOT NULL DEFAULT 0;
)sql",
};

constexpr SqlCode<RuntimeKind> kRuntimeCodes[] = {{RuntimeKind::kVm, "vm"},
                                                  {RuntimeKind::kMicroVm, "microvm"},
                                                  {RuntimeKind::kContainer, "container"}};
constexpr SqlCode<GuestState> kStateCodes[] = {
    {GuestState::kPending, "pending"},       {GuestState::kStarting, "starting"},
    {GuestState::kRunning, "running"},       {GuestState::kStopping, "stopping"},
    {GuestState::kStopped, "stopped"},       {GuestState::kCrashed, "crashed"},
    {GuestState::kRestarting, "restarting"}, {GuestState::kFailed, "failed"}};
constexpr SqlCode<RestartPolicy> kPolicyCodes[] = {{RestartPolicy::kAlways, "always"},
                                                   {RestartPolicy::kOnFailure, "on-failure"},
                                                   {RestartPolicy::kNever, "never"}};
constexpr SqlCode<BootMode> kBootCodes[] = {
    {BootMode::kAuto, "auto"}, {BootMode::kCold, "cold"}, {BootMode::kSnapshot, "snapshot"}};
constexpr SqlCode<HealthCheck::Kind> kHealthCodes[] = {{HealthCheck::Kind::kNone, "none"},
                                                       {HealthCheck::Kind::kHttp, "http"},
                                                       {HealthCheck::Kind::kTcp, "tcp"}};

template <typename E, size_t N>
Result<E> FromCode(const SqlCode<E> (&codes)[N], std::string_view text, std::string_view column) {
  if (auto value = FromSqlCode(codes, text)) return *value;
  return Internal("corrupt guest record: unknown " + std::string(column) + " \"" +
                  std::string(text) + "\"");
}

int64_t ToMicros(TimePoint t) {
  return std::chrono::floor<std::chrono::microseconds>(t.time_since_epoch()).count();
}
TimePoint FromMicros(int64_t us) {
  return TimePoint(std::chrono::duration_cast<Clock::duration>(std::chrono::microseconds(us)));
}

bool IsKnownEventType(int64_t type) {
  return type >= static_cast<int64_t>(EventType::kGuestCreated) &&
         type <= static_cast<int64_t>(kLastEventType);
}

}  // namespace

Result<std::unique_ptr<AgentStore>> AgentStore::Open(const std::filesystem::path& db_file) {
  return Open(db_file, Options{});
}

Result<std::unique_ptr<AgentStore>> AgentStore::Open(const std::filesystem::path& db_file,
                                                     const Options& options) {
  if (options.max_events == 0) {
    return InvalidArgument("max_events", "the event log must keep at least one event");
  }
  if (db_file.empty()) return InvalidArgument("db_file", "empty path");
  auto db = SqliteDb::Open(db_file, "agent store", options.busy_timeout_ms);
  if (!db) return std::unexpected(db.error());
  std::unique_ptr<AgentStore> store(new AgentStore(db_file, std::move(*db), options));
  {
    std::lock_guard lock(store->mu_);
    auto migrated = store->db_->Migrate(kMigrations, "phoenix-agent", "the state dir");
    if (!migrated) return std::unexpected(migrated.error().Wrap("opening " + db_file.string()));
    PHX_TRY(store->LoadLastSequence());
  }
  return store;
}

AgentStore::AgentStore(std::filesystem::path path, std::unique_ptr<SqliteDb> db, Options options)
    : path_(std::move(path)), options_(options), db_(std::move(db)) {}

AgentStore::~AgentStore() = default;

Result<void> AgentStore::LoadLastSequence() {
  // sqlite_sequence holds AUTOINCREMENT's high-water mark, which survives deleting every event.
  auto seq = db_->AutoincrementHighWater("events", "reading the last event sequence");
  if (!seq) return std::unexpected(seq.error());
  last_sequence_ = static_cast<uint64_t>(*seq);
  return {};
}

namespace {
// Runs `body` in one IMMEDIATE transaction: committed if it succeeds, rolled back otherwise.
template <typename ExecFn>
Result<void> InTransaction(ExecFn&& exec, const std::function<Result<void>()>& body,
                           std::string_view what) {
  PHX_TRY(exec("BEGIN IMMEDIATE", std::string("starting a transaction for ") + std::string(what)));
  auto r = body();
  if (r) r = exec("COMMIT", std::string("committing ") + std::string(what));
  if (!r) (void)exec("ROLLBACK", std::string("rolling back ") + std::string(what));
  return r;
}
}  // namespace

Result<void> AgentStore::PutGuest(const GuestRecord& record) {
  if (record.id.empty()) return InvalidArgument("id", "a guest record needs an id");
  std::lock_guard lock(mu_);
  auto exec = [this](std::string_view sql, const std::string& what) { return Exec(sql, what); };
  return InTransaction(
      exec, [&] { return PutGuestLocked(record); }, "storing guest " + record.id);
}

Result<void> AgentStore::DeleteGuestLocked(const std::string& id) {
  static constexpr std::string_view kDeletes[] = {
      "DELETE FROM guest_command WHERE guest_id = ?1",
      "DELETE FROM guest_env WHERE guest_id = ?1",
      "DELETE FROM guest_ports WHERE guest_id = ?1",
      "DELETE FROM guest_backend_ports WHERE guest_id = ?1",
      "DELETE FROM guests WHERE id = ?1",
  };
  for (auto sql : kDeletes) {
    auto s = Prepare(sql);
    if (!s) return std::unexpected(s.error());
    PHX_TRY(s->Bind(1, id).Run("deleting guest " + id));
  }
  return {};
}

Result<void> AgentStore::PutGuestLocked(const GuestRecord& r) {
  PHX_TRY(DeleteGuestLocked(r.id));
  const GuestSpec& g = r.spec;
  auto s = Prepare(
      "INSERT INTO guests (id, name, runtime, image, vcpus, memory_mib, health_kind, health_port, "
      "health_path, health_interval_ms, health_timeout_ms, health_unhealthy_threshold, "
      "health_start_period_ms, restart_policy, restart_initial_backoff_ms, restart_max_backoff_ms, "
      "boot_mode, image_id, desired_running, state, healthy, restart_count, consecutive_failures, "
      "last_exit_reason, instance, instance_seq, last_boot, last_boot_ms, accelerator, "
      "created_at_us, started_at_us, updated_at_us, health_restart_after_unhealthy_ms) VALUES (?1, "
      "?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, "
      "?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33)");
  if (!s) return std::unexpected(s.error());
  s->Bind(1, r.id)
      .Bind(2, g.name)
      .Bind(3, ToSqlCode(kRuntimeCodes, g.runtime))
      .Bind(4, g.image)
      .Bind(5, int64_t{g.vcpus})
      .Bind(6, int64_t{g.memory_mib})
      .Bind(7, ToSqlCode(kHealthCodes, g.health.kind))
      .Bind(8, int64_t{g.health.port})
      .Bind(9, g.health.path)
      .Bind(10, int64_t{g.health.interval_ms})
      .Bind(11, int64_t{g.health.timeout_ms})
      .Bind(12, int64_t{g.health.unhealthy_threshold})
      .Bind(13, int64_t{g.health.start_period_ms})
      .Bind(14, ToSqlCode(kPolicyCodes, g.restart.policy))
      .Bind(15, int64_t{g.restart.initial_backoff_ms})
      .Bind(16, int64_t{g.restart.max_backoff_ms})
      .Bind(17, ToSqlCode(kBootCodes, g.boot_mode))
      .Bind(18, r.image_id)
      .Bind(19, int64_t{r.desired_running})
      .Bind(20, ToSqlCode(kStateCodes, r.state))
      .Bind(21, int64_t{r.healthy})
      .Bind(22, int64_t{r.restart_count})
      .Bind(23, int64_t{r.consecutive_failures})
      .Bind(24, r.last_exit_reason)
      .Bind(25, r.instance)
      // SQLite integers are signed 64-bit: store the bit pattern so all of uint64 round-trips.
      .Bind(26, static_cast<int64_t>(r.instance_seq))
      .Bind(27, ToSqlCode(kBootCodes, r.last_boot))
      .Bind(28, int64_t{r.last_boot_ms})
      .Bind(29, r.accelerator)
      .Bind(30, ToMicros(r.created_at))
      .Bind(31, ToMicros(r.started_at))
      .Bind(32, ToMicros(r.updated_at))
      .Bind(33, int64_t{g.health.restart_after_unhealthy_ms});
  PHX_TRY(s->Run("inserting guest " + r.id));

  for (size_t i = 0; i < g.command.size(); ++i) {
    auto c = Prepare("INSERT INTO guest_command (guest_id, position, arg) VALUES (?1, ?2, ?3)");
    if (!c) return std::unexpected(c.error());
    PHX_TRY(c->Bind(1, r.id)
                .Bind(2, static_cast<int64_t>(i))
                .Bind(3, g.command[i])
                .Run("inserting the command of guest " + r.id));
  }
  for (const auto& [key, value] : g.env) {
    auto e = Prepare("INSERT INTO guest_env (guest_id, key, value) VALUES (?1, ?2, ?3)");
    if (!e) return std::unexpected(e.error());
    PHX_TRY(e->Bind(1, r.id).Bind(2, key).Bind(3, value).Run("inserting the env of guest " + r.id));
  }
  for (size_t i = 0; i < g.ports.size(); ++i) {
    const PortMapping& p = g.ports[i];
    auto q = Prepare(
        "INSERT INTO guest_ports (guest_id, position, guest_port, host_port, host_ip) "
        "VALUES (?1, ?2, ?3, ?4, ?5)");
    if (!q) return std::unexpected(q.error());
    PHX_TRY(q->Bind(1, r.id)
                .Bind(2, static_cast<int64_t>(i))
                .Bind(3, int64_t{p.guest_port})
                .Bind(4, int64_t{p.host_port})
                .Bind(5, p.host_ip)
                .Run("inserting the ports of guest " + r.id));
  }
  for (size_t i = 0; i < r.backend_ports.size(); ++i) {
    auto q =
        Prepare("INSERT INTO guest_backend_ports (guest_id, position, port) VALUES (?1, ?2, ?3)");
    if (!q) return std::unexpected(q.error());
    PHX_TRY(q->Bind(1, r.id)
                .Bind(2, static_cast<int64_t>(i))
                .Bind(3, int64_t{r.backend_ports[i]})
                .Run("inserting the backend ports of guest " + r.id));
  }
  return {};
}

Result<void> AgentStore::DeleteGuest(const std::string& id) {
  std::lock_guard lock(mu_);
  auto exec = [this](std::string_view sql, const std::string& what) { return Exec(sql, what); };
  return InTransaction(
      exec, [&] { return DeleteGuestLocked(id); }, "deleting guest " + id);
}

Result<std::vector<GuestRecord>> AgentStore::LoadGuests() {
  std::lock_guard lock(mu_);
  // One read transaction so the guests and their child rows are one consistent snapshot.
  return db_->InReadTransaction([&]() -> Result<std::vector<GuestRecord>> {
    std::vector<GuestRecord> out;
    std::map<std::string, size_t, std::less<>> by_id;
    auto s = Prepare(
        "SELECT id, name, runtime, image, vcpus, memory_mib, health_kind, health_port, "
        "health_path, health_interval_ms, health_timeout_ms, health_unhealthy_threshold, "
        "health_start_period_ms, restart_policy, restart_initial_backoff_ms, "
        "restart_max_backoff_ms, boot_mode, image_id, desired_running, state, healthy, "
        "restart_count, consecutive_failures, last_exit_reason, instance, instance_seq, last_boot, "
        "last_boot_ms, accelerator, created_at_us, started_at_us, updated_at_us, "
        "health_restart_after_unhealthy_ms FROM guests ORDER BY id");
    if (!s) return std::unexpected(s.error());
    for (;;) {
      auto row = s->Step("loading guests");
      if (!row) return std::unexpected(row.error());
      if (!*row) break;
      GuestRecord r;
      GuestSpec& g = r.spec;
      auto u32 = [&](int col) { return static_cast<uint32_t>(s->Int(col)); };
      auto u16 = [&](int col) { return static_cast<uint16_t>(s->Int(col)); };
      r.id = s->Text(0);
      g.name = s->Text(1);
      auto runtime = FromCode(kRuntimeCodes, s->Text(2), "runtime");
      if (!runtime) return std::unexpected(runtime.error().Wrap("guest " + r.id));
      g.runtime = *runtime;
      g.image = s->Text(3);
      g.vcpus = u32(4);
      g.memory_mib = u32(5);
      auto health = FromCode(kHealthCodes, s->Text(6), "health_kind");
      if (!health) return std::unexpected(health.error().Wrap("guest " + r.id));
      g.health.kind = *health;
      g.health.port = u16(7);
      g.health.path = s->Text(8);
      g.health.interval_ms = u32(9);
      g.health.timeout_ms = u32(10);
      g.health.unhealthy_threshold = u32(11);
      g.health.start_period_ms = u32(12);
      g.health.restart_after_unhealthy_ms = u32(32);
      auto policy = FromCode(kPolicyCodes, s->Text(13), "restart_policy");
      if (!policy) return std::unexpected(policy.error().Wrap("guest " + r.id));
      g.restart.policy = *policy;
      g.restart.initial_backoff_ms = u32(14);
      g.restart.max_backoff_ms = u32(15);
      auto boot = FromCode(kBootCodes, s->Text(16), "boot_mode");
      if (!boot) return std::unexpected(boot.error().Wrap("guest " + r.id));
      g.boot_mode = *boot;
      r.image_id = s->Text(17);
      r.desired_running = s->Int(18) != 0;
      auto state = FromCode(kStateCodes, s->Text(19), "state");
      if (!state) return std::unexpected(state.error().Wrap("guest " + r.id));
      r.state = *state;
      r.healthy = s->Int(20) != 0;
      r.restart_count = u32(21);
      r.consecutive_failures = u32(22);
      r.last_exit_reason = s->Text(23);
      r.instance = s->Text(24);
      r.instance_seq = static_cast<uint64_t>(s->Int(25));
      auto last_boot = FromCode(kBootCodes, s->Text(26), "last_boot");
      if (!last_boot) return std::unexpected(last_boot.error().Wrap("guest " + r.id));
      r.last_boot = *last_boot;
      r.last_boot_ms = u32(27);
      r.accelerator = s->Text(28);
      r.created_at = FromMicros(s->Int(29));
      r.started_at = FromMicros(s->Int(30));
      r.updated_at = FromMicros(s->Int(31));
      by_id.emplace(r.id, out.size());
      out.push_back(std::move(r));
    }

    auto c = Prepare("SELECT guest_id, arg FROM guest_command ORDER BY guest_id, position");
    if (!c) return std::unexpected(c.error());
    for (;;) {
      auto row = c->Step("loading guest commands");
      if (!row) return std::unexpected(row.error());
      if (!*row) break;
      auto it = by_id.find(c->Text(0));
      if (it != by_id.end()) out[it->second].spec.command.push_back(c->Text(1));
    }
    auto e = Prepare("SELECT guest_id, key, value FROM guest_env");
    if (!e) return std::unexpected(e.error());
    for (;;) {
      auto row = e->Step("loading guest env");
      if (!row) return std::unexpected(row.error());
      if (!*row) break;
      auto it = by_id.find(e->Text(0));
      if (it != by_id.end()) out[it->second].spec.env.emplace(e->Text(1), e->Text(2));
    }
    auto p = Prepare(
        "SELECT guest_id, guest_port, host_port, host_ip FROM guest_ports "
        "ORDER BY guest_id, position");
    if (!p) return std::unexpected(p.error());
    for (;;) {
      auto row = p->Step("loading guest ports");
      if (!row) return std::unexpected(row.error());
      if (!*row) break;
      auto it = by_id.find(p->Text(0));
      if (it == by_id.end()) continue;
      PortMapping m;
      m.guest_port = static_cast<uint16_t>(p->Int(1));
      m.host_port = static_cast<uint16_t>(p->Int(2));
      m.host_ip = p->Text(3);
      out[it->second].spec.ports.push_back(std::move(m));
    }
    auto b = Prepare("SELECT guest_id, port FROM guest_backend_ports ORDER BY guest_id, position");
    if (!b) return std::unexpected(b.error());
    for (;;) {
      auto row = b->Step("loading guest backend ports");
      if (!row) return std::unexpected(row.error());
      if (!*row) break;
      auto it = by_id.find(b->Text(0));
      if (it == by_id.end()) continue;
      out[it->second].backend_ports.push_back(static_cast<uint16_t>(b->Int(1)));
    }
    return out;
  });
}

Result<EventRecord> AgentStore::AppendEvent(EventRecord event) {
  if (!IsKnownEventType(static_cast<int64_t>(event.type))) {
    return InvalidArgument(
        "type", "unknown event type " + std::to_string(static_cast<int64_t>(event.type)));
  }
  std::lock_guard lock(mu_);
  uint64_t sequence = 0;
  auto exec = [this](std::string_view sql, const std::string& what) { return Exec(sql, what); };
  auto r = InTransaction(
      exec,
      [&]() -> Result<void> {
        auto s = Prepare(
            "INSERT INTO events (time_us, type, guest, message) VALUES (?1, ?2, ?3, ?4) "
            "RETURNING sequence");
        if (!s) return std::unexpected(s.error());
        s->Bind(1, ToMicros(event.time))
            .Bind(2, static_cast<int64_t>(event.type))
            .Bind(3, event.guest)
            .Bind(4, event.message);
        auto row = s->Step("appending an event");
        if (!row) return std::unexpected(row.error());
        PHX_CHECK(*row);  // RETURNING yields exactly one row for a successful insert
        sequence = static_cast<uint64_t>(s->Int(0));
        PHX_TRY(s->Run("appending an event"));  // step to SQLITE_DONE to finish the insert
        if (sequence > options_.max_events) {
          auto t = Prepare("DELETE FROM events WHERE sequence <= ?1");
          if (!t) return std::unexpected(t.error());
          PHX_TRY(t->Bind(1, static_cast<int64_t>(sequence - options_.max_events))
                      .Run("trimming the event log"));
        }
        return {};
      },
      "appending an event");
  if (!r) return std::unexpected(r.error());
  last_sequence_ = sequence;
  event.sequence = sequence;
  event.time = FromMicros(ToMicros(event.time));
  return event;
}

Result<std::vector<EventRecord>> AgentStore::EventsSince(uint64_t from_sequence, size_t limit) {
  std::vector<EventRecord> out;
  if (limit == 0) return out;
  std::lock_guard lock(mu_);
  auto s = Prepare(
      "SELECT sequence, time_us, type, guest, message FROM events WHERE sequence >= ?1 "
      "ORDER BY sequence LIMIT ?2");
  if (!s) return std::unexpected(s.error());
  // Sequences above INT64_MAX are never assigned, so clamping keeps the signed comparison right.
  s->Bind(1, ClampToInt64(from_sequence)).Bind(2, ClampToInt64(limit));
  PHX_TRY(s->ForEachRow("reading events", [&](const SqliteDb::Stmt& row) -> Result<void> {
    EventRecord e;
    e.sequence = static_cast<uint64_t>(row.Int(0));
    e.time = FromMicros(row.Int(1));
    int64_t type = row.Int(2);
    if (!IsKnownEventType(type)) {
      return Internal("corrupt event " + std::to_string(e.sequence) + ": unknown type " +
                      std::to_string(type));
    }
    e.type = static_cast<EventType>(type);
    e.guest = row.Text(3);
    e.message = row.Text(4);
    out.push_back(std::move(e));
    return {};
  }));
  return out;
}

uint64_t AgentStore::LastSequence() {
  std::lock_guard lock(mu_);
  return last_sequence_;
}

Result<std::optional<AgentStore::StoredAssignment>> AgentStore::LoadAssignment() {
  std::lock_guard lock(mu_);
  auto s = Prepare("SELECT version, payload FROM assignment WHERE id = 1");
  if (!s) return std::unexpected(s.error());
  auto row = s->Step("loading the assignment");
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::optional<StoredAssignment>();
  StoredAssignment out;
  out.version = static_cast<uint64_t>(s->Int(0));
  out.payload = s->Blob(1);
  return out;
}

Result<void> AgentStore::SaveAssignment(const StoredAssignment& assignment) {
  std::lock_guard lock(mu_);
  auto s = Prepare(
      "INSERT INTO assignment (id, version, payload) VALUES (1, ?1, ?2) "
      "ON CONFLICT (id) DO UPDATE SET version = excluded.version, payload = excluded.payload");
  if (!s) return std::unexpected(s.error());
  // Same bit-pattern storage as instance_seq: all of uint64 round-trips.
  return s->Bind(1, static_cast<int64_t>(assignment.version))
      .BindBlob(2, assignment.payload)
      .Run("storing assignment version " + std::to_string(assignment.version));
}

Result<void> AgentStore::AddManagedGuest(const std::string& name) {
  if (name.empty()) return InvalidArgument("name", "a managed guest needs a name");
  std::lock_guard lock(mu_);
  auto s = Prepare("INSERT OR IGNORE INTO managed_guests (name) VALUES (?1)");
  if (!s) return std::unexpected(s.error());
  return s->Bind(1, name).Run("marking guest " + name + " as managed");
}

Result<void> AgentStore::RemoveManagedGuest(const std::string& name) {
  std::lock_guard lock(mu_);
  auto s = Prepare("DELETE FROM managed_guests WHERE name = ?1");
  if (!s) return std::unexpected(s.error());
  return s->Bind(1, name).Run("unmarking managed guest " + name);
}

Result<std::set<std::string>> AgentStore::ManagedGuests() {
  std::lock_guard lock(mu_);
  auto s = Prepare("SELECT name FROM managed_guests ORDER BY name");
  if (!s) return std::unexpected(s.error());
  std::set<std::string> out;
  for (;;) {
    auto row = s->Step("loading managed guests");
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    out.insert(s->Text(0));
  }
  return out;
}

}  // namespace phoenix::agent
