#include "supervisor/state/sqlite_state_store.h"

#include <array>
#include <charconv>
#include <map>
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
    // 1 -> 2: horizontal autoscaling. The policy is part of the spec; the window is the
    // autoscaler's memory (desires, scale-ups, decisions). Doubles are stored as their shortest
    // round-trip decimal text, so what is read back is bit-identical.
    R"sql(
CREATE TABLE service_autoscale (
  service TEXT PRIMARY KEY NOT NULL REFERENCES services(name) ON DELETE CASCADE,
  min_replicas INTEGER NOT NULL,
  max_replicas INTEGER NOT NULL,
  metric TEXT NOT NULL,
  target TEXT NOT NULL,
  tolerance TEXT NOT NULL,
  up_stabilization_s INTEGER NOT NULL,
  down_stabilization_s INTEGER NOT NULL,
  up_max_step INTEGER NOT NULL,
  up_period_s INTEGER NOT NULL
) STRICT;
CREATE TABLE autoscale_desires (
  service TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
  pos INTEGER NOT NULL,
  first_us INTEGER NOT NULL,
  last_us INTEGER NOT NULL,
  replicas INTEGER NOT NULL,
  PRIMARY KEY (service, pos)
) STRICT, WITHOUT ROWID;
CREATE TABLE autoscale_scale_ups (
  service TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
  pos INTEGER NOT NULL,
  time_us INTEGER NOT NULL,
  added INTEGER NOT NULL,
  PRIMARY KEY (service, pos)
) STRICT, WITHOUT ROWID;
CREATE TABLE autoscale_decisions (
  service TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
  pos INTEGER NOT NULL,
  time_us INTEGER NOT NULL,
  from_replicas INTEGER NOT NULL,
  to_replicas INTEGER NOT NULL,
  metric TEXT NOT NULL,
  observed TEXT NOT NULL,
  target TEXT NOT NULL,
  reporting_replicas INTEGER NOT NULL,
  reason TEXT NOT NULL,
  PRIMARY KEY (service, pos)
) STRICT, WITHOUT ROWID;
)sql",
    // 2 -> 3: every event names who asked for it (empty: the supervisor itself).
    R"sql(
ALTER TABLE events ADD COLUMN actor TEXT NOT NULL DEFAULT '';
)sql",
    // 3 -> 4: a service's front door (port 0 = none).
    R"sql(
ALTER TABLE services ADD COLUMN front_door_port INTEGER NOT NULL DEFAULT 0;
ALTER TABLE services ADD COLUMN front_door_guest_port INTEGER NOT NULL DEFAULT 0;
ALTER TABLE services ADD COLUMN front_door_protocol TEXT NOT NULL DEFAULT 'http';
)sql",
};

constexpr SqlCode<RuntimeKind> kRuntimeCodes[] = {{RuntimeKind::kVm, "vm"},
                                                  {RuntimeKind::kMicroVm, "microvm"},
                                                  {RuntimeKind::kContainer, "container"}};
constexpr SqlCode<AutoscaleMetric> kMetricCodes[] = {{AutoscaleMetric::kCpu, "cpu"},
                                                     {AutoscaleMetric::kRps, "rps"}};
constexpr SqlCode<FrontDoorProtocol> kProtocolCodes[] = {{FrontDoorProtocol::kHttp, "http"},
                                                         {FrontDoorProtocol::kTcp, "tcp"}};
constexpr SqlCode<PlacementStrategy> kStrategyCodes[] = {{PlacementStrategy::kSpread, "spread"},
                                                         {PlacementStrategy::kBinpack, "binpack"}};
constexpr SqlCode<ClusterEventType> kEventCodes[] = {
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
    {ClusterEventType::kNodeRemoved, "node-removed"},
    {ClusterEventType::kTokenCreated, "token-created"},
    {ClusterEventType::kTokenRevoked, "token-revoked"},
    {ClusterEventType::kJoinTokenCreated, "join-token-created"},
};

template <typename E, size_t N>
Result<E> FromCode(const SqlCode<E> (&codes)[N], std::string_view text, std::string_view what) {
  if (auto value = FromSqlCode(codes, text)) return *value;
  return Internal("corrupt " + std::string(what) + ": unknown code \"" + std::string(text) + "\"");
}

std::string DoubleText(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  PHX_CHECK(ec == std::errc());
  return std::string(buf, end);
}

Result<double> DoubleFromText(const std::string& text, std::string_view what) {
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return Internal("corrupt " + std::string(what) + ": \"" + text + "\" is not a number");
  }
  return v;
}

// SQLite integers are signed 64-bit: unsigned values travel as their bit pattern.
int64_t AsInt(uint64_t v) { return static_cast<int64_t>(v); }
uint64_t AsU64(int64_t v) { return static_cast<uint64_t>(v); }

}  // namespace

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
  auto db = SqliteDb::Open(db_file, "supervisor store", options.busy_timeout_ms);
  if (!db) return std::unexpected(db.error());
  std::unique_ptr<SqliteStateStore> store(new SqliteStateStore(db_file, std::move(*db), options));

  std::lock_guard lock(store->mu_);
  auto migrated = store->db_->Migrate(kMigrations, "phoenix-supervisor", "the database");
  if (!migrated) return std::unexpected(migrated.error().Wrap("opening " + db_file.string()));
  return store;
}

SqliteStateStore::SqliteStateStore(std::filesystem::path path, std::unique_ptr<SqliteDb> db,
                                   Options options)
    : path_(std::move(path)), options_(options), db_(std::move(db)) {}

SqliteStateStore::~SqliteStateStore() = default;

Result<uint64_t> SqliteStateStore::ReadLastSequence() {
  // sqlite_sequence holds AUTOINCREMENT's high-water mark, which survives trimming every event.
  auto seq = db_->AutoincrementHighWater("events", "reading the last event sequence");
  if (!seq) return std::unexpected(seq.error());
  return AsU64(*seq);
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
  for (const auto& w : batch.put_windows) {
    auto current = StoredVersion("services", w.service);
    if (!current) return std::unexpected(current.error());
    if (*current == 0) {
      conflicts.push_back("service " + w.service + ": does not exist (autoscale window)");
    }
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
  for (const auto& w : batch.put_windows) PHX_TRY(PutWindow(w.service, w.window));

  uint64_t last = 0;
  for (const auto& e : batch.events) {
    auto s = Prepare(
        "INSERT INTO events (time_us, type, service, node, message, actor) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING sequence");
    if (!s) return std::unexpected(s.error());
    ClusterEvent stored = commit_rules::StoredEvent(e, 0, now);
    s->Bind(1, ToMicros(stored.time))
        .Bind(2, ToSqlCode(kEventCodes, stored.type))
        .Bind(3, stored.service)
        .Bind(4, stored.node)
        .Bind(5, stored.message)
        .Bind(6, stored.actor);
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
      "spread_attribute, max_skew, strategy, distinct_hosts, guest_template, created_at_us, "
      "front_door_port, front_door_guest_port, front_door_protocol) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) "
      "ON CONFLICT (name) DO UPDATE SET version = excluded.version, runtime = excluded.runtime, "
      "image = excluded.image, vcpus = excluded.vcpus, memory_mib = excluded.memory_mib, "
      "replicas = excluded.replicas, spread_attribute = excluded.spread_attribute, "
      "max_skew = excluded.max_skew, strategy = excluded.strategy, "
      "distinct_hosts = excluded.distinct_hosts, guest_template = excluded.guest_template, "
      "created_at_us = excluded.created_at_us, front_door_port = excluded.front_door_port, "
      "front_door_guest_port = excluded.front_door_guest_port, "
      "front_door_protocol = excluded.front_door_protocol");
  if (!s) return std::unexpected(s.error());
  s->Bind(1, name)
      .Bind(2, AsInt(version))
      .Bind(3, ToSqlCode(kRuntimeCodes, spec.runtime))
      .Bind(4, spec.image)
      .Bind(5, int64_t{spec.vcpus})
      .Bind(6, int64_t{spec.memory_mib})
      .Bind(7, int64_t{spec.replicas})
      .Bind(8, spec.spread_attribute)
      .Bind(9, int64_t{spec.max_skew})
      .Bind(10, ToSqlCode(kStrategyCodes, spec.strategy))
      .Bind(11, int64_t{spec.distinct_hosts})
      .BindBlob(12, spec.guest_template)
      .Bind(13, ToMicros(service.created_at))
      .Bind(14, int64_t{spec.front_door ? spec.front_door->port : 0})
      .Bind(15, int64_t{spec.front_door ? spec.front_door->guest_port : 0})
      .Bind(16, ToSqlCode(kProtocolCodes,
                          spec.front_door ? spec.front_door->protocol : FrontDoorProtocol::kHttp));
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
  auto clear = Prepare("DELETE FROM service_autoscale WHERE service = ?1");
  if (!clear) return std::unexpected(clear.error());
  PHX_TRY(clear->Bind(1, name).Run("replacing the autoscale policy of " + name));
  if (const auto& p = spec.autoscale) {
    auto c = Prepare(
        "INSERT INTO service_autoscale (service, min_replicas, max_replicas, metric, target, "
        "tolerance, up_stabilization_s, down_stabilization_s, up_max_step, up_period_s) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
    if (!c) return std::unexpected(c.error());
    PHX_TRY(c->Bind(1, name)
                .Bind(2, int64_t{p->min_replicas})
                .Bind(3, int64_t{p->max_replicas})
                .Bind(4, ToSqlCode(kMetricCodes, p->metric))
                .Bind(5, DoubleText(p->target))
                .Bind(6, DoubleText(p->tolerance))
                .Bind(7, int64_t{p->scale_up_stabilization_s})
                .Bind(8, int64_t{p->scale_down_stabilization_s})
                .Bind(9, int64_t{p->scale_up_max_step})
                .Bind(10, int64_t{p->scale_up_period_s})
                .Run("storing the autoscale policy of " + name));
  }
  return PutWindow(name, service.autoscale);
}

Result<void> SqliteStateStore::PutWindow(const std::string& name, const AutoscaleWindow& w) {
  static constexpr std::string_view kClear[] = {
      "DELETE FROM autoscale_desires WHERE service = ?1",
      "DELETE FROM autoscale_scale_ups WHERE service = ?1",
      "DELETE FROM autoscale_decisions WHERE service = ?1",
  };
  for (auto sql : kClear) {
    auto c = Prepare(sql);
    if (!c) return std::unexpected(c.error());
    PHX_TRY(c->Bind(1, name).Run("replacing the autoscale window of " + name));
  }
  for (size_t i = 0; i < w.desires.size(); ++i) {
    const DesireRun& r = w.desires[i];
    auto c = Prepare(
        "INSERT INTO autoscale_desires (service, pos, first_us, last_us, replicas) "
        "VALUES (?1, ?2, ?3, ?4, ?5)");
    if (!c) return std::unexpected(c.error());
    PHX_TRY(c->Bind(1, name)
                .Bind(2, AsInt(i))
                .Bind(3, ToMicros(r.first))
                .Bind(4, ToMicros(r.last))
                .Bind(5, int64_t{r.replicas})
                .Run("storing the autoscale window of " + name));
  }
  for (size_t i = 0; i < w.scale_ups.size(); ++i) {
    auto c = Prepare(
        "INSERT INTO autoscale_scale_ups (service, pos, time_us, added) VALUES (?1, ?2, ?3, ?4)");
    if (!c) return std::unexpected(c.error());
    PHX_TRY(c->Bind(1, name)
                .Bind(2, AsInt(i))
                .Bind(3, ToMicros(w.scale_ups[i].time))
                .Bind(4, int64_t{w.scale_ups[i].added})
                .Run("storing the autoscale window of " + name));
  }
  for (size_t i = 0; i < w.recent.size(); ++i) {
    const ScalingDecision& d = w.recent[i];
    auto c = Prepare(
        "INSERT INTO autoscale_decisions (service, pos, time_us, from_replicas, to_replicas, "
        "metric, observed, target, reporting_replicas, reason) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
    if (!c) return std::unexpected(c.error());
    PHX_TRY(c->Bind(1, name)
                .Bind(2, AsInt(i))
                .Bind(3, ToMicros(d.time))
                .Bind(4, int64_t{d.from_replicas})
                .Bind(5, int64_t{d.to_replicas})
                .Bind(6, ToSqlCode(kMetricCodes, d.metric))
                .Bind(7, DoubleText(d.observed))
                .Bind(8, DoubleText(d.target))
                .Bind(9, int64_t{d.reporting_replicas})
                .Bind(10, d.reason)
                .Run("storing the autoscale decisions of " + name));
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
                .Bind(2, ToSqlCode(kRuntimeCodes, runtime))
                .Run("storing the runtimes of " + name));
  }
  return {};
}

Result<ClusterSnapshotRecord> SqliteStateStore::Load() {
  std::lock_guard lock(mu_);
  // One read transaction, so the rows and their children are one consistent snapshot.
  return db_->InReadTransaction([this] { return LoadLocked(); });
}

Result<ClusterSnapshotRecord> SqliteStateStore::LoadLocked() {
  ClusterSnapshotRecord out;
  // Visits every row of `sql`; `row` returns an error to stop.
  auto each = [&](std::string_view sql, std::string_view what, auto&& row) -> Result<void> {
    auto s = Prepare(sql);
    if (!s) return std::unexpected(s.error());
    return s->ForEachRow(what, row);
  };

  std::map<std::string, size_t, std::less<>> service_at;
  PHX_TRY(each(
      "SELECT name, version, runtime, image, vcpus, memory_mib, replicas, spread_attribute, "
      "max_skew, strategy, distinct_hosts, guest_template, created_at_us, front_door_port, "
      "front_door_guest_port, front_door_protocol FROM services ORDER BY name",
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
        spec.guest_template = s.Blob(11);
        v.created_at = FromMicros(s.Int(12));
        if (s.Int(13) != 0) {
          auto protocol =
              FromCode(kProtocolCodes, s.Text(15), "front door protocol of service " + spec.name);
          if (!protocol) return std::unexpected(protocol.error());
          spec.front_door = FrontDoorPort{.port = static_cast<uint16_t>(s.Int(13)),
                                          .guest_port = static_cast<uint16_t>(s.Int(14)),
                                          .protocol = *protocol};
        }
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

  auto service_of = [&](const std::string& name) -> Service* {
    auto it = service_at.find(name);
    return it == service_at.end() ? nullptr : &out.services[it->second];
  };
  PHX_TRY(each(
      "SELECT service, min_replicas, max_replicas, metric, target, tolerance, up_stabilization_s, "
      "down_stabilization_s, up_max_step, up_period_s FROM service_autoscale",
      "loading autoscale policies", [&](Stmt& s) -> Result<void> {
        Service* v = service_of(s.Text(0));
        if (v == nullptr) return {};
        const std::string what = "autoscale policy of service " + v->spec.name;
        AutoscalePolicy p;
        p.min_replicas = static_cast<uint32_t>(s.Int(1));
        p.max_replicas = static_cast<uint32_t>(s.Int(2));
        auto metric = FromCode(kMetricCodes, s.Text(3), what);
        if (!metric) return std::unexpected(metric.error());
        p.metric = *metric;
        auto target = DoubleFromText(s.Text(4), what);
        if (!target) return std::unexpected(target.error());
        p.target = *target;
        auto tolerance = DoubleFromText(s.Text(5), what);
        if (!tolerance) return std::unexpected(tolerance.error());
        p.tolerance = *tolerance;
        p.scale_up_stabilization_s = static_cast<uint32_t>(s.Int(6));
        p.scale_down_stabilization_s = static_cast<uint32_t>(s.Int(7));
        p.scale_up_max_step = static_cast<uint32_t>(s.Int(8));
        p.scale_up_period_s = static_cast<uint32_t>(s.Int(9));
        v->spec.autoscale = p;
        return {};
      }));
  PHX_TRY(each(
      "SELECT service, first_us, last_us, replicas FROM autoscale_desires "
      "ORDER BY service, pos",
      "loading autoscale windows", [&](Stmt& s) -> Result<void> {
        if (Service* v = service_of(s.Text(0))) {
          v->autoscale.desires.push_back(DesireRun{.first = FromMicros(s.Int(1)),
                                                   .last = FromMicros(s.Int(2)),
                                                   .replicas = static_cast<uint32_t>(s.Int(3))});
        }
        return {};
      }));
  PHX_TRY(each("SELECT service, time_us, added FROM autoscale_scale_ups ORDER BY service, pos",
               "loading autoscale windows", [&](Stmt& s) -> Result<void> {
                 if (Service* v = service_of(s.Text(0))) {
                   v->autoscale.scale_ups.push_back(ScaleUpRecord{
                       .time = FromMicros(s.Int(1)), .added = static_cast<uint32_t>(s.Int(2))});
                 }
                 return {};
               }));
  PHX_TRY(
      each("SELECT service, time_us, from_replicas, to_replicas, metric, observed, target, "
           "reporting_replicas, reason FROM autoscale_decisions ORDER BY service, pos",
           "loading autoscale decisions", [&](Stmt& s) -> Result<void> {
             Service* v = service_of(s.Text(0));
             if (v == nullptr) return {};
             const std::string what = "autoscale decision of service " + v->spec.name;
             ScalingDecision d;
             d.time = FromMicros(s.Int(1));
             d.from_replicas = static_cast<uint32_t>(s.Int(2));
             d.to_replicas = static_cast<uint32_t>(s.Int(3));
             auto metric = FromCode(kMetricCodes, s.Text(4), what);
             if (!metric) return std::unexpected(metric.error());
             d.metric = *metric;
             auto observed = DoubleFromText(s.Text(5), what);
             if (!observed) return std::unexpected(observed.error());
             d.observed = *observed;
             auto target = DoubleFromText(s.Text(6), what);
             if (!target) return std::unexpected(target.error());
             d.target = *target;
             d.reporting_replicas = static_cast<uint32_t>(s.Int(7));
             d.reason = s.Text(8);
             v->autoscale.recent.push_back(std::move(d));
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
  auto s = Prepare(
      "SELECT sequence, time_us, type, service, node, message, actor FROM events "
      "WHERE sequence >= ?1 "
      "ORDER BY sequence LIMIT ?2");
  if (!s) return std::unexpected(s.error());
  // Sequences above INT64_MAX are never assigned, so clamping keeps the signed comparison right.
  s->Bind(1, ClampToInt64(from_sequence)).Bind(2, ClampToInt64(limit));
  PHX_TRY(s->ForEachRow("reading events", [&](const Stmt& row) -> Result<void> {
    ClusterEvent e;
    e.sequence = AsU64(row.Int(0));
    e.time = FromMicros(row.Int(1));
    auto type = FromCode(kEventCodes, row.Text(2), "type of event " + std::to_string(e.sequence));
    if (!type) return std::unexpected(type.error());
    e.type = *type;
    e.service = row.Text(3);
    e.node = row.Text(4);
    e.message = row.Text(5);
    e.actor = row.Text(6);
    out.push_back(std::move(e));
    return {};
  }));
  return out;
}

}  // namespace phoenix::supervisor
