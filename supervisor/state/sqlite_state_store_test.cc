#include "supervisor/state/sqlite_state_store.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>

#include "agent/testing/temp_dir.h"
#include "supervisor/state/state_store_conformance.h"

namespace phoenix::supervisor {
namespace {

namespace fs = std::filesystem;
using ::phoenix::agent::testing::TempDir;
using ::testing::HasSubstr;
using namespace ::phoenix::supervisor::conformance;

struct SqliteTraits {
  static constexpr bool kDurable = true;
  static Result<std::unique_ptr<StateStore>> Open(const fs::path& dir, size_t max_events) {
    auto store = SqliteStateStore::Open(dir / "supervisor.db", {.max_events = max_events});
    if (!store) return std::unexpected(store.error());
    return std::unique_ptr<StateStore>(std::move(*store));
  }
};

// A second, raw connection to the same file: what another process (or a corrupting hand) sees.
class RawDb {
 public:
  explicit RawDb(const fs::path& file) {
    PHX_CHECK(sqlite3_open_v2(file.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  }
  ~RawDb() { sqlite3_close(db_); }
  int Exec(const std::string& sql) {
    return sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
  }
  std::string Text(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    PHX_CHECK(sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
    std::string out;
    if (sqlite3_step(s) == SQLITE_ROW) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    }
    sqlite3_finalize(s);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

TEST(SqliteStateStoreTest, RejectsBadOptions) {
  TempDir dir;
  auto r = SqliteStateStore::Open(dir.path() / "s.db", {.max_events = 0});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.error().field, "max_events");
  auto empty = SqliteStateStore::Open("");
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error().code, ErrorCode::kInvalidArgument);
}

TEST(SqliteStateStoreTest, CreatesParentDirectoriesAndUsesWal) {
  TempDir dir;
  fs::path file = dir.path() / "state" / "dir" / "supervisor.db";
  auto store = SqliteStateStore::Open(file);
  ASSERT_TRUE(store.has_value()) << store.error().ToString();
  EXPECT_EQ((*store)->path(), file);
  RawDb raw(file);
  EXPECT_EQ(raw.Text("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(raw.Text("PRAGMA user_version"), std::to_string(SqliteStateStore::kSchemaVersion));
}

TEST(SqliteStateStoreTest, RefusesANewerSchema) {
  TempDir dir;
  fs::path file = dir.path() / "supervisor.db";
  { ASSERT_TRUE(SqliteStateStore::Open(file).has_value()); }
  {
    RawDb raw(file);
    ASSERT_EQ(
        raw.Exec("PRAGMA user_version=" + std::to_string(SqliteStateStore::kSchemaVersion + 1)),
        SQLITE_OK);
  }
  auto r = SqliteStateStore::Open(file);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kFailedPrecondition) << r.error().ToString();
  EXPECT_THAT(r.error().message, HasSubstr("newer than this phoenix-supervisor understands"));
  EXPECT_THAT(r.error().message, HasSubstr(file.string()));
}

// Schema 4 added the services' front door columns; older databases do not have them.
void DropFrontDoorColumns(RawDb& raw) {
  for (const char* column : {"front_door_port", "front_door_guest_port", "front_door_protocol"}) {
    ASSERT_EQ(raw.Exec(std::string("ALTER TABLE services DROP COLUMN ") + column), SQLITE_OK);
  }
}

TEST(SqliteStateStoreTest, MigratesASchema1DatabaseKeepingItsServices) {
  TempDir dir;
  fs::path file = dir.path() / "supervisor.db";
  {
    auto store = SqliteStateStore::Open(file);
    ASSERT_TRUE(store.has_value());
    Service s;
    s.spec.name = "web";
    s.spec.image = "demo:1";
    CommitBatch b;
    b.put_services.push_back({s, 0});
    ASSERT_TRUE((*store)->Commit(b).has_value());
  }
  {
    // What a schema-1 database looks like: no autoscale tables.
    RawDb raw(file);
    for (const char* table :
         {"service_autoscale", "autoscale_desires", "autoscale_scale_ups", "autoscale_decisions"}) {
      ASSERT_EQ(raw.Exec(std::string("DROP TABLE ") + table), SQLITE_OK);
    }
    ASSERT_EQ(raw.Exec("ALTER TABLE events DROP COLUMN actor"), SQLITE_OK);
    DropFrontDoorColumns(raw);
    ASSERT_EQ(raw.Exec("PRAGMA user_version=1"), SQLITE_OK);
  }
  auto store = SqliteStateStore::Open(file);
  ASSERT_TRUE(store.has_value()) << store.error().ToString();
  auto snap = (*store)->Load();
  ASSERT_TRUE(snap.has_value()) << snap.error().ToString();
  ASSERT_EQ(snap->services.size(), 1u);
  EXPECT_EQ(snap->services[0].spec.image, "demo:1");
  EXPECT_FALSE(snap->services[0].spec.autoscale.has_value());
  {
    RawDb raw(file);
    EXPECT_EQ(raw.Text("PRAGMA user_version"), std::to_string(SqliteStateStore::kSchemaVersion));
  }
  // The migrated database takes a policy.
  Service s = snap->services[0];
  s.spec.autoscale = AutoscalePolicy{.min_replicas = 1, .max_replicas = 6, .target = 60};
  CommitBatch b;
  b.put_services.push_back({s, 1});
  ASSERT_TRUE((*store)->Commit(b).has_value());
  EXPECT_EQ((*store)->Load()->services[0].spec.autoscale, s.spec.autoscale);
}

TEST(SqliteStateStoreTest, MigratesASchema2DatabaseKeepingItsEventsWithoutAnActor) {
  TempDir dir;
  fs::path file = dir.path() / "supervisor.db";
  {
    auto store = SqliteStateStore::Open(file);
    ASSERT_TRUE(store.has_value());
    CommitBatch b;
    b.events.push_back(ClusterEvent{.type = ClusterEventType::kNodeDown, .message = "before"});
    ASSERT_TRUE((*store)->Commit(b).has_value());
  }
  {
    RawDb raw(file);  // what a schema-2 database looks like: events without an actor
    ASSERT_EQ(raw.Exec("ALTER TABLE events DROP COLUMN actor"), SQLITE_OK);
    DropFrontDoorColumns(raw);
    ASSERT_EQ(raw.Exec("PRAGMA user_version=2"), SQLITE_OK);
  }
  auto store = SqliteStateStore::Open(file);
  ASSERT_TRUE(store.has_value()) << store.error().ToString();
  CommitBatch b;
  b.events.push_back(ClusterEvent{
      .type = ClusterEventType::kTokenRevoked, .message = "after", .actor = "token abc (admin)"});
  ASSERT_TRUE((*store)->Commit(b).has_value());
  auto events = (*store)->EventsSince(0, 10);
  ASSERT_TRUE(events.has_value());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].message, "before");
  EXPECT_EQ((*events)[0].actor, "");
  EXPECT_EQ((*events)[1].actor, "token abc (admin)");
}

TEST(SqliteStateStoreTest, MigratesASchema3DatabaseWhoseServicesHaveNoFrontDoor) {
  TempDir dir;
  fs::path file = dir.path() / "supervisor.db";
  Service s = FullService("web");
  {
    auto store = SqliteStateStore::Open(file);
    ASSERT_TRUE(store.has_value());
    s.spec.front_door.reset();
    CommitBatch b;
    b.put_services.push_back({s, 0});
    ASSERT_TRUE((*store)->Commit(b).has_value());
  }
  {
    RawDb raw(file);  // what a schema-3 database looks like: services without a front door
    DropFrontDoorColumns(raw);
    ASSERT_EQ(raw.Exec("PRAGMA user_version=3"), SQLITE_OK);
  }
  auto store = SqliteStateStore::Open(file);
  ASSERT_TRUE(store.has_value()) << store.error().ToString();
  auto loaded = (*store)->Load();
  ASSERT_TRUE(loaded.has_value());
  ASSERT_EQ(loaded->services.size(), 1u);
  EXPECT_EQ(loaded->services[0].spec, s.spec);
  EXPECT_FALSE(loaded->services[0].spec.front_door.has_value());
}

TEST(SqliteStateStoreTest, RefusesAFileThatIsNotADatabase) {
  TempDir dir;
  fs::path file = dir.path() / "supervisor.db";
  {
    std::FILE* f = std::fopen(file.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::string junk(8192, 'j');
    ASSERT_EQ(std::fwrite(junk.data(), 1, junk.size(), f), junk.size());
    ASSERT_EQ(std::fclose(f), 0);
  }
  auto r = SqliteStateStore::Open(file);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kInternal);
  EXPECT_THAT(r.error().message, HasSubstr("not a database"));
}

TEST(SqliteStateStoreTest, ReportsCorruptCodesInsteadOfGuessing) {
  TempDir dir;
  fs::path file = dir.path() / "supervisor.db";
  auto store = SqliteStateStore::Open(file);
  ASSERT_TRUE(store.has_value());
  CommitBatch b = PutService(FullService("web"), 0);
  b.events.push_back(Event(ClusterEventType::kNodeDown, "down"));
  ASSERT_TRUE((*store)->Commit(b).has_value());
  {
    RawDb raw(file);
    ASSERT_EQ(raw.Exec("UPDATE services SET runtime = 'floppy'"), SQLITE_OK);
    ASSERT_EQ(raw.Exec("UPDATE events SET type = 'node-exploded'"), SQLITE_OK);
  }
  auto snap = (*store)->Load();
  ASSERT_FALSE(snap.has_value());
  EXPECT_EQ(snap.error().code, ErrorCode::kInternal);
  EXPECT_THAT(snap.error().message, HasSubstr("runtime of service web"));
  EXPECT_THAT(snap.error().message, HasSubstr("floppy"));
  auto events = (*store)->EventsSince(0, 10);
  ASSERT_FALSE(events.has_value());
  EXPECT_THAT(events.error().message, HasSubstr("node-exploded"));
}

// Another writer holds the database: the commit gives up after the busy timeout with kUnavailable
// and writes nothing; once the lock is gone it succeeds.
TEST(SqliteStateStoreTest, LockedDatabaseIsUnavailableAndChangesNothing) {
  TempDir dir;
  fs::path file = dir.path() / "supervisor.db";
  auto store = SqliteStateStore::Open(file, {.max_events = 100, .busy_timeout_ms = 50});
  ASSERT_TRUE(store.has_value());
  RawDb raw(file);
  ASSERT_EQ(raw.Exec("BEGIN IMMEDIATE"), SQLITE_OK);
  CommitBatch b = PutService(FullService("web"), 0);
  b.events.push_back(Event(ClusterEventType::kServiceCreated, "created"));
  auto r = (*store)->Commit(b);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable) << r.error().ToString();
  ASSERT_EQ(raw.Exec("ROLLBACK"), SQLITE_OK);
  auto snap = (*store)->Load();
  ASSERT_TRUE(snap.has_value());
  EXPECT_TRUE(snap->services.empty());
  EXPECT_EQ(snap->last_event_sequence, 0u);
  auto ok = (*store)->Commit(b);
  ASSERT_TRUE(ok.has_value()) << ok.error().ToString();
  EXPECT_EQ(ok->service_versions, std::vector<uint64_t>{1});
}

// The child commits in a loop (a service update, a new node and an event per commit) and writes
// each commit's number to a pipe only after Commit returned success. The parent SIGKILLs it at a
// random moment, usually mid-transaction, reopens the database and checks that every
// acknowledged commit is there.
[[noreturn]] void RunCommitterChild(const fs::path& file, int ack_fd) {
  auto store = SqliteStateStore::Open(file);
  if (!store) _exit(2);
  Service s = FullService("web");
  for (uint32_t i = 0; i < 5000; ++i) {
    s.spec.replicas = i;
    CommitBatch b = PutService(s, i);  // version i -> i + 1
    b.put_nodes.push_back({FullNode("node-" + std::to_string(i)), 0});
    b.events.push_back(Event(ClusterEventType::kServiceScaled, "ack " + std::to_string(i)));
    if (!(*store)->Commit(b)) _exit(3);
    if (write(ack_fd, &i, sizeof(i)) != static_cast<ssize_t>(sizeof(i))) _exit(4);
  }
  _exit(0);
}

TEST(SqliteStateStoreTest, AcknowledgedCommitsSurviveSigkill) {
  TempDir dir;
  std::mt19937 rng(std::random_device{}());
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    fs::path file = dir.path() / ("crash" + std::to_string(round) + ".db");
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      RunCommitterChild(file, fds[1]);
    }
    close(fds[1]);

    const size_t kill_after = std::uniform_int_distribution<size_t>(1, 40)(rng);
    std::vector<uint32_t> acked;
    bool killed = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
      if (!killed && acked.size() >= kill_after) {
        // A random delay so the kill lands anywhere inside the next commit.
        usleep(std::uniform_int_distribution<useconds_t>(0, 3000)(rng));
        ASSERT_EQ(kill(pid, SIGKILL), 0);
        killed = true;
      }
      int left_ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         deadline - std::chrono::steady_clock::now())
                                         .count());
      if (left_ms <= 0) break;
      pollfd p{fds[0], POLLIN, 0};
      if (poll(&p, 1, left_ms) <= 0) break;
      uint32_t id = 0;
      ssize_t got = read(fds[0], &id, sizeof(id));
      if (got == 0) break;  // the child is gone and every ack is read
      ASSERT_EQ(got, static_cast<ssize_t>(sizeof(id)));
      acked.push_back(id);
    }
    close(fds[0]);
    if (!killed) kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(killed) << "the committer did not acknowledge " << kill_after << " commits in time";
    ASSERT_TRUE(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0))
        << "committer failed with status " << status;
    ASSERT_GE(acked.size(), kill_after);
    const uint32_t last_acked = acked.back();

    auto store = SqliteStateStore::Open(file);
    ASSERT_TRUE(store.has_value()) << store.error().ToString();
    auto snap = (*store)->Load();
    ASSERT_TRUE(snap.has_value()) << snap.error().ToString();
    ASSERT_EQ(snap->services.size(), 1u);
    // The kill may have landed after a COMMIT but before its ack: at most one commit more.
    const Service& web = snap->services[0];
    EXPECT_GE(web.version, uint64_t{last_acked} + 1);
    EXPECT_LE(web.version, uint64_t{last_acked} + 2);
    EXPECT_EQ(web.spec.replicas, static_cast<uint32_t>(web.version - 1));
    std::set<std::string> nodes;
    for (const auto& n : snap->nodes) nodes.insert(n.name);
    EXPECT_EQ(nodes.size(), web.version) << "nodes and the service commit together";
    auto events = (*store)->EventsSince(0, 1'000'000);
    ASSERT_TRUE(events.has_value());
    std::set<std::string> messages;
    for (const auto& e : *events) messages.insert(e.message);
    for (uint32_t id : acked) {
      EXPECT_TRUE(nodes.contains("node-" + std::to_string(id)))
          << "node of commit " << id << " lost";
      EXPECT_TRUE(messages.contains("ack " + std::to_string(id))) << "event " << id << " lost";
    }
    // Still writable after the crash, and sequences keep counting up.
    CommitBatch b = PutService(web, web.version);
    b.events.push_back(Event(ClusterEventType::kServiceScaled, "after crash"));
    auto r = (*store)->Commit(b);
    ASSERT_TRUE(r.has_value()) << r.error().ToString();
    EXPECT_GT(r->events[0].sequence, snap->last_event_sequence);
  }
}

}  // namespace
}  // namespace phoenix::supervisor

namespace phoenix::supervisor::conformance {
// The suite's generated symbols live in its namespace, so it is instantiated there.
INSTANTIATE_TYPED_TEST_SUITE_P(SqliteStateStore, StateStoreConformance,
                               ::testing::Types<::phoenix::supervisor::SqliteTraits>);
}  // namespace phoenix::supervisor::conformance
