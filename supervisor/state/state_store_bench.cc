// Commits per second with synchronous=FULL (every commit waits for its fsync), and how long a
// restarted supervisor takes to Load a large cluster. A benchmark, not a test: run it by hand
// from a Release build (build/supervisor/state/state_store_bench); the database lives under the
// system temp dir, so the figure is that disk's fsync rate.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include "agent/testing/temp_dir.h"
#include "supervisor/state/memory_state_store.h"
#include "supervisor/state/sqlite_state_store.h"

namespace phoenix::supervisor {
namespace {

Service BenchService(const std::string& name, uint32_t replicas) {
  Service s;
  s.spec.name = name;
  s.spec.image = "registry.local/" + name + ":1";
  s.spec.replicas = replicas;
  s.spec.spread_attribute = "zone";
  s.spec.node_selector = {{"disk", "ssd"}};
  s.spec.guest_template = std::string(300, 'x');
  s.created_at = Clock::now();
  for (uint32_t i = 0; i < replicas; ++i) {
    s.replicas.push_back({i, 1, "node-" + std::to_string(i)});
  }
  return s;
}

NodeRecord BenchNode(const std::string& name) {
  NodeRecord n;
  n.name = name;
  n.zone = "zone-a";
  n.labels = {{"disk", "ssd"}, {"rack", "r1"}};
  n.capacity = {32, 65536};
  n.runtimes = {RuntimeKind::kVm, RuntimeKind::kContainer};
  n.joined_at = Clock::now();
  return n;
}

std::unique_ptr<StateStore> OpenSqlite(const agent::testing::TempDir& dir) {
  auto store = SqliteStateStore::Open(dir.path() / "supervisor.db");
  PHX_CHECK(store.has_value());
  return std::move(*store);
}

// What the controller commits when it re-places a replica: the service (6 replicas), the node's
// new assignment version and two events.
void CommitReplacement(benchmark::State& state, StateStore& store) {
  Service s = BenchService("web", 6);
  NodeRecord n = BenchNode("node-a");
  uint64_t version = 0;
  for (auto _ : state) {
    CommitBatch b;
    b.put_services.push_back({s, version});
    n.assignment_version = version + 1;
    b.put_nodes.push_back({n, version});
    ClusterEvent e;
    e.type = ClusterEventType::kReplicaReplaced;
    e.service = "web";
    e.message = "replica 3 moved";
    b.events.push_back(e);
    b.events.push_back(e);
    auto r = store.Commit(b);
    PHX_CHECK(r.has_value());
    ++version;
  }
  state.counters["commits/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_SqliteCommit(benchmark::State& state) {
  agent::testing::TempDir dir("phoenix-state-bench");
  auto store = OpenSqlite(dir);
  CommitReplacement(state, *store);
}
BENCHMARK(BM_SqliteCommit)->UseRealTime();

void BM_MemoryCommit(benchmark::State& state) {
  MemoryStateStore store;
  CommitReplacement(state, store);
}
BENCHMARK(BM_MemoryCommit);

// A restart: Load of state.range(0) services of 3 replicas and as many nodes.
void BM_SqliteLoad(benchmark::State& state) {
  agent::testing::TempDir dir("phoenix-state-bench");
  auto store = OpenSqlite(dir);
  const auto count = static_cast<int>(state.range(0));
  CommitBatch b;
  for (int i = 0; i < count; ++i) {
    b.put_services.push_back({BenchService("svc-" + std::to_string(i), 3), 0});
    b.put_nodes.push_back({BenchNode("node-" + std::to_string(i)), 0});
  }
  PHX_CHECK(store->Commit(b).has_value());
  for (auto _ : state) {
    auto snap = store->Load();
    PHX_CHECK(snap.has_value() && snap->services.size() == static_cast<size_t>(count));
    benchmark::DoNotOptimize(snap);
  }
}
BENCHMARK(BM_SqliteLoad)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace phoenix::supervisor

BENCHMARK_MAIN();
