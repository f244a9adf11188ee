#include "agent/state/agent_store.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include "agent/testing/temp_dir.h"

namespace phoenix::agent {
namespace {

using ::phoenix::agent::testing::TempDir;

using ::testing::HasSubstr;
namespace fs = std::filesystem;
using std::chrono::microseconds;

TimePoint Micros(int64_t us) { return TimePoint(microseconds(us)); }

// Every field differs from its default, and strings carry bytes an ad-hoc encoding would trip on.
GuestRecord FullRecord(const std::string& id) {
  GuestRecord r;
  r.id = id;
  r.spec.name = "web-" + id;
  r.spec.runtime = RuntimeKind::kContainer;
  r.spec.image = "demo:v2";
  r.spec.vcpus = 4;
  r.spec.memory_mib = 4096;
  r.spec.command = {
      "/bin/sh",     "-c",     "echo 'a b'; printf \"%s\\n\" x", "", std::string("nul\0in", 6),
      "line\nbreak", "ünïcødé"};
  r.spec.env = {{"A", "1"}, {"EMPTY", ""}, {"K=V", "x=y;z"}, {"NL", "a\nb"}, {"Z", "last"}};
  r.spec.ports = {{80, 8080, "127.0.0.1"}, {443, 0, "127.0.0.2"}, {65535, 65535, "::1"}};
  r.spec.health.kind = HealthCheck::Kind::kHttp;
  r.spec.health.port = 80;
  r.spec.health.path = "/healthz?x=1";
  r.spec.health.interval_ms = 250;
  r.spec.health.timeout_ms = 125;
  r.spec.health.unhealthy_threshold = 7;
  r.spec.health.start_period_ms = 9000;
  r.spec.health.restart_after_unhealthy_ms = 4321;
  r.spec.restart.policy = RestartPolicy::kOnFailure;
  r.spec.restart.initial_backoff_ms = 100;
  r.spec.restart.max_backoff_ms = 4000000000u;
  r.spec.boot_mode = BootMode::kSnapshot;
  r.image_id = "sha256:0123456789abcdef";
  r.desired_running = false;
  r.state = GuestState::kRestarting;
  r.healthy = true;
  r.restart_count = 12;
  r.consecutive_failures = 3;
  r.last_exit_reason = "qemu process killed (SIGKILL)";
  r.instance = "phx-web-13";
  r.instance_seq = 0xFFFFFFFFFFFFFFF0ull;  // above INT64_MAX: must survive SQLite's signed ints
  r.last_boot = BootMode::kCold;
  r.last_boot_ms = 1234;
  r.accelerator = "tcg";
  r.backend_ports = {40001, 65535};
  r.created_at = Micros(1700000000123456);
  r.started_at = Micros(-5);  // before the epoch
  r.updated_at = Micros(1700000009999999);
  return r;
}

std::unique_ptr<AgentStore> MustOpen(const fs::path& file, AgentStore::Options options = {}) {
  auto store = AgentStore::Open(file, options);
  PHX_CHECK(store.has_value());
  return std::move(*store);
}

EventRecord Event(EventType type, std::string guest, std::string message) {
  EventRecord e;
  e.time = Micros(1700000000000001);
  e.type = type;
  e.guest = std::move(guest);
  e.message = std::move(message);
  return e;
}

TEST(AgentStoreTest, OpenCreatesDirectoriesAndEmptyStore) {
  TempDir dir;
  auto file = dir.path() / "a" / "b" / "agent.db";
  auto store = AgentStore::Open(file);
  ASSERT_TRUE(store.has_value()) << store.error().ToString();
  EXPECT_TRUE(fs::exists(file));
  auto guests = (*store)->LoadGuests();
  ASSERT_TRUE(guests.has_value()) << guests.error().ToString();
  EXPECT_TRUE(guests->empty());
  EXPECT_EQ((*store)->LastSequence(), 0u);
}

TEST(AgentStoreTest, OpenReportsAnUnusablePath) {
  TempDir dir;
  auto blocker = dir.path() / "file";
  {
    std::FILE* f = std::fopen(blocker.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
  }
  auto store = AgentStore::Open(blocker / "agent.db");
  ASSERT_FALSE(store.has_value());
  EXPECT_THAT(store.error().message, HasSubstr(blocker.string()));
}

TEST(AgentStoreTest, FullyPopulatedRecordRoundTripsAcrossReopen) {
  TempDir dir;
  auto file = dir.path() / "agent.db";
  GuestRecord full = FullRecord("g-1");
  GuestRecord plain;
  plain.id = "g-0";
  {
    auto store = MustOpen(file);
    ASSERT_TRUE(store->PutGuest(full).has_value());
    ASSERT_TRUE(store->PutGuest(plain).has_value());
  }
  auto store = MustOpen(file);
  auto guests = store->LoadGuests();
  ASSERT_TRUE(guests.has_value()) << guests.error().ToString();
  ASSERT_EQ(guests->size(), 2u);
  EXPECT_EQ((*guests)[0], plain);  // ordered by id
  EXPECT_EQ((*guests)[1], full);
}

TEST(AgentStoreTest, TimestampsKeepMicrosecondsAndTruncateTheRest) {
  TempDir dir;
  auto store = MustOpen(dir.path() / "agent.db");
  GuestRecord r;
  r.id = "t";
  r.created_at = TimePoint(std::chrono::nanoseconds(1700000000123456789));
  ASSERT_TRUE(store->PutGuest(r).has_value());
  auto guests = store->LoadGuests();
  ASSERT_TRUE(guests.has_value());
  ASSERT_EQ(guests->size(), 1u);
  EXPECT_EQ((*guests)[0].created_at, Micros(1700000000123456));
}

TEST(AgentStoreTest, PutReplacesTheWholeRecordAndDeleteRemovesIt) {
  TempDir dir;
  auto file = dir.path() / "agent.db";
  auto store = MustOpen(file);
  GuestRecord r = FullRecord("g");
  ASSERT_TRUE(store->PutGuest(r).has_value());
  ASSERT_TRUE(store->PutGuest(FullRecord("other")).has_value());

  r.spec.command = {"/bin/true"};
  r.spec.env = {{"ONLY", "one"}};
  r.spec.ports.clear();
  r.state = GuestState::kRunning;
  r.restart_count = 13;
  ASSERT_TRUE(store->PutGuest(r).has_value());
  auto guests = store->LoadGuests();
  ASSERT_TRUE(guests.has_value());
  ASSERT_EQ(guests->size(), 2u);
  EXPECT_EQ((*guests)[0], r);
  EXPECT_EQ((*guests)[1], FullRecord("other"));

  ASSERT_TRUE(store->DeleteGuest("g").has_value());
  ASSERT_TRUE(store->DeleteGuest("never-existed").has_value());
  store.reset();
  store = MustOpen(file);
  guests = store->LoadGuests();
  ASSERT_TRUE(guests.has_value());
  ASSERT_EQ(guests->size(), 1u);
  EXPECT_EQ((*guests)[0].id, "other");
  EXPECT_EQ((*guests)[0], FullRecord("other"));
}

TEST(AgentStoreTest, PutRejectsAnEmptyId) {
  TempDir dir;
  auto store = MustOpen(dir.path() / "agent.db");
  auto r = store->PutGuest(GuestRecord{});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
}

TEST(AgentStoreTest, EventSequencesGrowAcrossReopen) {
  TempDir dir;
  auto file = dir.path() / "agent.db";
  uint64_t last = 0;
  {
    auto store = MustOpen(file);
    for (int i = 0; i < 3; ++i) {
      auto e = store->AppendEvent(
          Event(EventType::kGuestCreated, "web", "created " + std::to_string(i)));
      ASSERT_TRUE(e.has_value()) << e.error().ToString();
      EXPECT_GT(e->sequence, last);
      last = e->sequence;
      EXPECT_EQ(store->LastSequence(), last);
    }
  }
  auto store = MustOpen(file);
  EXPECT_EQ(store->LastSequence(), last);
  EventRecord in = Event(EventType::kGuestCrashed, "web", "boom");
  in.sequence = 1;  // ignored: the store assigns sequences
  auto e = store->AppendEvent(in);
  ASSERT_TRUE(e.has_value());
  EXPECT_GT(e->sequence, last);
  EXPECT_EQ(e->type, EventType::kGuestCrashed);
  EXPECT_EQ(e->guest, "web");
  EXPECT_EQ(e->message, "boom");
  EXPECT_EQ(e->time, in.time);

  auto all = store->EventsSince(0, 100);
  ASSERT_TRUE(all.has_value());
  ASSERT_EQ(all->size(), 4u);
  EXPECT_EQ(all->back(), *e);
}

TEST(AgentStoreTest, TrimKeepsTheNewestEventsAndSequencesMonotonic) {
  TempDir dir;
  auto file = dir.path() / "agent.db";
  AgentStore::Options options;
  options.max_events = 5;
  std::vector<uint64_t> seqs;
  {
    auto store = MustOpen(file, options);
    for (int i = 0; i < 12; ++i) {
      auto e = store->AppendEvent(Event(EventType::kGuestRunning, "g", std::to_string(i)));
      ASSERT_TRUE(e.has_value());
      seqs.push_back(e->sequence);
    }
    auto kept = store->EventsSince(0, 100);
    ASSERT_TRUE(kept.has_value());
    ASSERT_EQ(kept->size(), 5u);
    for (size_t i = 0; i < kept->size(); ++i) {
      EXPECT_EQ((*kept)[i].sequence, seqs[7 + i]);
      EXPECT_EQ((*kept)[i].message, std::to_string(7 + i));
    }
  }
  for (size_t i = 1; i < seqs.size(); ++i) EXPECT_GT(seqs[i], seqs[i - 1]);
  // Trimmed sequences are never handed out again, not even after a restart.
  auto store = MustOpen(file, options);
  EXPECT_EQ(store->LastSequence(), seqs.back());
  auto e = store->AppendEvent(Event(EventType::kGuestRunning, "g", "after"));
  ASSERT_TRUE(e.has_value());
  EXPECT_GT(e->sequence, seqs.back());
  auto kept = store->EventsSince(0, 100);
  ASSERT_TRUE(kept.has_value());
  ASSERT_EQ(kept->size(), 5u);
  EXPECT_EQ(kept->front().sequence, seqs[8]);
  EXPECT_EQ(kept->back().sequence, e->sequence);
}

TEST(AgentStoreTest, EventsSinceHonoursItsBounds) {
  TempDir dir;
  auto store = MustOpen(dir.path() / "agent.db");
  std::vector<uint64_t> seqs;
  for (int i = 0; i < 10; ++i) {
    auto e = store->AppendEvent(Event(EventType::kGuestHealthy, "", "e" + std::to_string(i)));
    ASSERT_TRUE(e.has_value());
    seqs.push_back(e->sequence);
  }
  auto from_middle = store->EventsSince(seqs[4], 3);
  ASSERT_TRUE(from_middle.has_value());
  ASSERT_EQ(from_middle->size(), 3u);
  EXPECT_EQ((*from_middle)[0].sequence, seqs[4]);  // inclusive lower bound
  EXPECT_EQ((*from_middle)[2].sequence, seqs[6]);

  auto tail = store->EventsSince(seqs[8], 100);
  ASSERT_TRUE(tail.has_value());
  ASSERT_EQ(tail->size(), 2u);
  EXPECT_EQ(tail->back().sequence, seqs[9]);

  auto beyond = store->EventsSince(seqs[9] + 1, 100);
  ASSERT_TRUE(beyond.has_value());
  EXPECT_TRUE(beyond->empty());
  auto huge = store->EventsSince(UINT64_MAX, 100);
  ASSERT_TRUE(huge.has_value());
  EXPECT_TRUE(huge->empty());
  auto none = store->EventsSince(0, 0);
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->empty());
}

TEST(AgentStoreTest, AppendRejectsAnUnknownEventType) {
  TempDir dir;
  auto store = MustOpen(dir.path() / "agent.db");
  auto e = store->AppendEvent(Event(static_cast<EventType>(99), "g", "x"));
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(store->LastSequence(), 0u);
}

TEST(AgentStoreTest, RefusesANewerSchemaVersion) {
  TempDir dir;
  auto file = dir.path() / "agent.db";
  MustOpen(file).reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
  std::string sql = "PRAGMA user_version=" + std::to_string(AgentStore::kSchemaVersion + 1);
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);

  auto store = AgentStore::Open(file);
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_THAT(store.error().message, HasSubstr("newer"));
  EXPECT_THAT(store.error().message, HasSubstr(file.string()));
  EXPECT_THAT(store.error().message,
              HasSubstr("version " + std::to_string(AgentStore::kSchemaVersion + 1)));
}

void Exec(const fs::path& file, const char* sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);
}

// A database as a version-2 agent left it: made by this build, stripped of what version 3 added.
void DowngradeToV2(const fs::path& file) {
  Exec(file,
       "ALTER TABLE guests DROP COLUMN health_restart_after_unhealthy_ms; PRAGMA user_version=2;");
}

// A database as a version-1 agent left it: also without what version 2 added.
void DowngradeToV1(const fs::path& file) {
  DowngradeToV2(file);
  Exec(file, "DROP TABLE assignment; DROP TABLE managed_guests; PRAGMA user_version=1;");
}

int UserVersion(const fs::path& file) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, nullptr), SQLITE_OK);
  EXPECT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  int version = sqlite3_column_int(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return version;
}

// After a migration: the schema is current and the one guest is FullRecord(id) as recorded before
// the liveness grace existed, so it restarts at the first unhealthy verdict as its agent did.
void ExpectMigratedGuest(AgentStore& store, const fs::path& file, const std::string& id) {
  EXPECT_EQ(UserVersion(file), AgentStore::kSchemaVersion);
  auto guests = store.LoadGuests();
  ASSERT_TRUE(guests) << guests.error().ToString();
  ASSERT_EQ(guests->size(), 1u);
  GuestRecord expected = FullRecord(id);
  expected.spec.health.restart_after_unhealthy_ms = 0;
  EXPECT_EQ((*guests)[0], expected);
}

TEST(AgentStoreTest, MigratesAVersion1DatabaseKeepingItsGuestsAndEvents) {
  TempDir dir;
  auto file = dir.path() / "agent.db";
  {
    auto store = MustOpen(file);
    ASSERT_TRUE(store->PutGuest(FullRecord("g1")));
    ASSERT_TRUE(store->AppendEvent(Event(EventType::kGuestCreated, "web-g1", "created")));
  }
  DowngradeToV1(file);
  ASSERT_EQ(UserVersion(file), 1);

  auto store = MustOpen(file);
  ExpectMigratedGuest(*store, file, "g1");
  EXPECT_EQ(store->LastSequence(), 1u);
  auto assignment = store->LoadAssignment();
  ASSERT_TRUE(assignment) << assignment.error().ToString();
  EXPECT_FALSE(assignment->has_value());
  auto managed = store->ManagedGuests();
  ASSERT_TRUE(managed) << managed.error().ToString();
  EXPECT_TRUE(managed->empty());
  // The new tables are usable at once.
  ASSERT_TRUE(store->SaveAssignment({3, "x"}));
  ASSERT_TRUE(store->AddManagedGuest("web-0-1"));
}

TEST(AgentStoreTest, MigratesAVersion2DatabaseSoItsGuestsRestartAtTheFirstUnhealthyVerdict) {
  TempDir dir;
  auto file = dir.path() / "agent.db";
  {
    auto store = MustOpen(file);
    ASSERT_TRUE(store->PutGuest(FullRecord("g1")));
    ASSERT_TRUE(store->SaveAssignment({7, "payload"}));
  }
  DowngradeToV2(file);
  ASSERT_EQ(UserVersion(file), 2);

  auto store = MustOpen(file);
  ExpectMigratedGuest(*store, file, "g1");
  auto assignment = store->LoadAssignment();
  ASSERT_TRUE(assignment && assignment->has_value());
  EXPECT_EQ((*assignment)->version, 7u);
  // New records keep their grace.
  ASSERT_TRUE(store->PutGuest(FullRecord("g2")));
  auto guests = store->LoadGuests();
  ASSERT_TRUE(guests) << guests.error().ToString();
  ASSERT_EQ(guests->size(), 2u);
  EXPECT_EQ((*guests)[1], FullRecord("g2"));
}

TEST(AgentStoreTest, AssignmentAndManagedGuestsSurviveReopen) {
  TempDir dir;
  auto file = dir.path() / "agent.db";
  // Payloads are opaque bytes: NULs and invalid UTF-8 must round-trip.
  const std::string payload("\x0a\x00\xff\xfe tail", 9);
  const uint64_t big_version = 0xfedcba9876543210ULL;
  {
    auto store = MustOpen(file);
    ASSERT_TRUE(store->SaveAssignment({1, "old"}));
    ASSERT_TRUE(store->SaveAssignment({big_version, payload}));
    ASSERT_TRUE(store->AddManagedGuest("b"));
    ASSERT_TRUE(store->AddManagedGuest("a"));
    ASSERT_TRUE(store->AddManagedGuest("a"));  // idempotent
    ASSERT_TRUE(store->AddManagedGuest("c"));
    ASSERT_TRUE(store->RemoveManagedGuest("c"));
    ASSERT_TRUE(store->RemoveManagedGuest("never-added"));
    EXPECT_FALSE(store->AddManagedGuest("").has_value());
  }
  auto store = MustOpen(file);
  auto assignment = store->LoadAssignment();
  ASSERT_TRUE(assignment) << assignment.error().ToString();
  ASSERT_TRUE(assignment->has_value());
  EXPECT_EQ((*assignment)->version, big_version);
  EXPECT_EQ((*assignment)->payload, payload);
  auto managed = store->ManagedGuests();
  ASSERT_TRUE(managed) << managed.error().ToString();
  EXPECT_EQ(*managed, (std::set<std::string>{"a", "b"}));
}

TEST(AgentStoreTest, ConcurrentAppendsGetDistinctIncreasingSequences) {
  TempDir dir;
  auto store = MustOpen(dir.path() / "agent.db");
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  std::vector<std::vector<uint64_t>> seqs(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto e = store->AppendEvent(Event(EventType::kGuestRunning, "g", "x"));
        if (e) seqs[t].push_back(e->sequence);
        GuestRecord r = FullRecord("t" + std::to_string(t));
        r.restart_count = static_cast<uint32_t>(i);
        (void)store->PutGuest(r);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<uint64_t> all;
  for (const auto& v : seqs) {
    ASSERT_EQ(v.size(), static_cast<size_t>(kPerThread));
    for (size_t i = 1; i < v.size(); ++i) EXPECT_GT(v[i], v[i - 1]);
    all.insert(v.begin(), v.end());
  }
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(store->LastSequence(), *all.rbegin());
  auto guests = store->LoadGuests();
  ASSERT_TRUE(guests.has_value());
  ASSERT_EQ(guests->size(), static_cast<size_t>(kThreads));
  for (const auto& g : *guests) EXPECT_EQ(g.restart_count, static_cast<uint32_t>(kPerThread - 1));
}

// The child writes guest records (and an event each) as fast as it can and reports each id on a
// pipe only after PutGuest/AppendEvent returned success. The parent SIGKILLs it at a random moment,
// usually mid-transaction, then checks that every acknowledged write survived.
void RunWriterChild(const fs::path& file, int ack_fd) {
  auto store = AgentStore::Open(file);
  if (!store) _exit(2);
  for (uint32_t i = 0; i < 100000; ++i) {
    GuestRecord r = FullRecord("crash-" + std::to_string(i));
    r.restart_count = i;
    if (!(*store)->PutGuest(r)) _exit(3);
    if (!(*store)->AppendEvent(Event(EventType::kGuestCreated, r.id, "ack " + std::to_string(i)))) {
      _exit(4);
    }
    if (write(ack_fd, &i, sizeof(i)) != static_cast<ssize_t>(sizeof(i))) _exit(5);
  }
  _exit(0);
}

TEST(AgentStoreTest, AcknowledgedWritesSurviveSigkill) {
  TempDir dir;
  std::mt19937 rng(std::random_device{}());
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    auto file = dir.path() / ("crash" + std::to_string(round) + ".db");
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      RunWriterChild(file, fds[1]);
    }
    close(fds[1]);

    const size_t kill_after = std::uniform_int_distribution<size_t>(1, 40)(rng);
    std::vector<uint32_t> acked;
    bool killed = false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
      if (!killed && acked.size() >= kill_after) {
        // A random delay so the kill lands anywhere inside the next write.
        usleep(std::uniform_int_distribution<useconds_t>(0, 3000)(rng));
        ASSERT_EQ(kill(pid, SIGKILL), 0);
        killed = true;
      }
      pollfd p{fds[0], POLLIN, 0};
      int left_ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         deadline - std::chrono::steady_clock::now())
                                         .count());
      if (left_ms <= 0) break;
      int n = poll(&p, 1, left_ms);
      if (n <= 0) break;
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
    ASSERT_TRUE(killed) << "the writer did not acknowledge " << kill_after << " writes in time";
    ASSERT_TRUE(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0))
        << "writer failed with status " << status;
    ASSERT_GE(acked.size(), kill_after);

    auto store = AgentStore::Open(file);
    ASSERT_TRUE(store.has_value()) << store.error().ToString();
    auto guests = (*store)->LoadGuests();
    ASSERT_TRUE(guests.has_value()) << guests.error().ToString();
    std::map<std::string, GuestRecord> by_id;
    for (auto& g : *guests) by_id.emplace(g.id, g);
    auto events = (*store)->EventsSince(0, 1000000);
    ASSERT_TRUE(events.has_value());
    std::set<std::string> messages;
    for (const auto& e : *events) messages.insert(e.message);
    for (uint32_t id : acked) {
      GuestRecord want = FullRecord("crash-" + std::to_string(id));
      want.restart_count = id;
      auto it = by_id.find(want.id);
      ASSERT_NE(it, by_id.end()) << "acknowledged record " << want.id << " was lost";
      EXPECT_EQ(it->second, want);
      EXPECT_TRUE(messages.contains("ack " + std::to_string(id))) << "event " << id << " lost";
    }
    // The store is still writable and keeps counting up after the crash.
    uint64_t last = (*store)->LastSequence();
    EXPECT_GE(last, acked.size());
    auto e = (*store)->AppendEvent(Event(EventType::kGuestAdopted, "x", "after crash"));
    ASSERT_TRUE(e.has_value()) << e.error().ToString();
    EXPECT_GT(e->sequence, last);
  }
}

}  // namespace
}  // namespace phoenix::agent
