// Placements per second into a 10,000-node cluster snapshot (3 zones, mixed capacities, labels and
// runtimes), one core. Run from a Release build:
//   build-rel/supervisor/placement/placement_bench
// The cluster view is built once, outside the timed loop: the controller builds it once per pass.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <benchmark/benchmark.h>

#include "supervisor/placement/placement.h"

namespace phoenix::supervisor::placement {
namespace {

constexpr size_t kNodes = 10000;

// prefix + number, by append: g++ 12 at -O3 raises a false -Wrestrict on "literal" + std::string.
std::string Numbered(std::string_view prefix, uint64_t number) {
  std::string text(prefix);
  text.append(std::to_string(number));
  return text;
}
constexpr uint32_t kReplicasPerService = 10;

// A small deterministic generator, so every run measures the same cluster.
struct Rng {
  uint64_t state;
  uint64_t Next() {
    state += 0x9e3779b97f4a7c15ULL;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t Below(uint64_t n) { return Next() % n; }
};

ClusterView MakeCluster() {
  static const std::string kZones[] = {"zone-a", "zone-b", "zone-c"};
  static const uint32_t kVcpus[] = {8, 16, 32, 64};
  static const uint64_t kMemoryGiB[] = {16, 32, 64, 128, 256};
  Rng rng{42};
  ClusterView cluster;
  cluster.nodes.reserve(kNodes);
  for (size_t i = 0; i < kNodes; ++i) {
    NodeView node;
    node.name = Numbered("node-", i);
    node.zone = kZones[i % 3];
    node.capacity = {kVcpus[rng.Below(4)], kMemoryGiB[rng.Below(5)] * 1024};
    // 0-60% already in use.
    uint64_t used_percent = rng.Below(61);
    node.allocated = {static_cast<uint32_t>(node.capacity.vcpus * used_percent / 100),
                      node.capacity.memory_mib * used_percent / 100};
    node.runtimes = {RuntimeKind::kContainer};
    if (rng.Below(10) < 6) node.runtimes.insert(RuntimeKind::kVm);
    if (rng.Below(10) < 3) node.runtimes.insert(RuntimeKind::kMicroVm);
    node.labels["disk"] = rng.Below(2) == 0 ? "ssd" : "hdd";
    node.labels["rack"] = Numbered("r", rng.Below(200));
    if (rng.Below(20) == 0) node.labels["gpu"] = "true";
    if (rng.Below(100) < 2) node.state = NodeState::kDown;
    if (rng.Below(100) < 1) node.drained = true;
    node.images = {"web:1", Numbered("api:", rng.Below(5))};
    cluster.nodes.push_back(std::move(node));
  }
  return cluster;
}

// Service s: 10 replicas spread by zone (max skew 1), alternating spread/binpack, a quarter of
// them on ssd nodes only, a mix of runtimes and sizes, every 7th with distinct hosts.
std::vector<PlacementRequest> MakeService(size_t s) {
  std::vector<PlacementRequest> requests;
  static const RuntimeKind kRuntimes[] = {RuntimeKind::kContainer, RuntimeKind::kContainer,
                                          RuntimeKind::kVm, RuntimeKind::kMicroVm};
  for (uint32_t r = 0; r < kReplicasPerService; ++r) {
    PlacementRequest request;
    request.service = Numbered("svc-", s);
    request.index = r;
    request.runtime = kRuntimes[s % 4];
    request.image = s % 2 == 0 ? "web:1" : "api:3";
    request.need = {static_cast<uint32_t>(1 + s % 4), 512ull << (s % 4)};
    request.spread_attribute = "zone";
    request.max_skew = 1;
    request.strategy = s % 2 == 0 ? PlacementStrategy::kSpread : PlacementStrategy::kBinpack;
    if (s % 4 == 1) request.node_selector = {{"disk", "ssd"}};
    request.distinct_hosts = s % 7 == 0;
    requests.push_back(std::move(request));
  }
  return requests;
}

const ClusterView& Cluster() {
  static const ClusterView cluster = MakeCluster();
  return cluster;
}

// One Place() per pass over `services` services (10 replicas each): a controller pass that places
// many services at once (e.g. after a zone failure), each decision seeing the earlier ones.
void BM_PlaceBatch(benchmark::State& state) {
  const ClusterView& cluster = Cluster();
  const size_t services = static_cast<size_t>(state.range(0));
  std::vector<PlacementRequest> requests;
  for (size_t s = 0; s < services; ++s) {
    auto more = MakeService(s);
    requests.insert(requests.end(), more.begin(), more.end());
  }
  uint64_t seed = 1;
  size_t pending = 0;
  size_t evaluated = 0;
  for (auto _ : state) {
    Plan plan = Place(cluster, requests, Options{.limit = 0, .seed = seed++});
    for (const Decision& decision : plan.decisions) {
      pending += decision.node ? 0 : 1;
      evaluated += decision.explanation.nodes_evaluated;
    }
    benchmark::DoNotOptimize(plan);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * requests.size()));
  state.counters["pending"] =
      benchmark::Counter(static_cast<double>(pending), benchmark::Counter::kAvgIterations);
  // Nodes visited per placement: the work the limit bounds.
  state.counters["visited"] =
      static_cast<double>(evaluated) / static_cast<double>(state.iterations() * requests.size());
}
BENCHMARK(BM_PlaceBatch)->Arg(1)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

// One Place() per service with 20 live replicas of it already in the cluster: the steady-state
// case of one service being created or scaled up.
void BM_PlaceScaleUpWithLiveReplicas(benchmark::State& state) {
  const ClusterView& cluster = Cluster();
  std::vector<std::vector<PlacementRequest>> services;
  Rng rng{7};
  for (size_t s = 0; s < 64; ++s) {
    auto requests = MakeService(s);
    std::vector<size_t> live;
    for (int i = 0; i < 20; ++i) live.push_back(rng.Below(kNodes));
    for (auto& request : requests) request.service_replica_nodes = live;
    services.push_back(std::move(requests));
  }
  uint64_t seed = 1;
  size_t placed = 0;
  for (auto _ : state) {
    const auto& requests = services[seed % services.size()];
    Plan plan = Place(cluster, requests, Options{.limit = 0, .seed = seed++});
    placed += requests.size();
    benchmark::DoNotOptimize(plan);
  }
  state.SetItemsProcessed(static_cast<int64_t>(placed));
}
BENCHMARK(BM_PlaceScaleUpWithLiveReplicas)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace phoenix::supervisor::placement

BENCHMARK_MAIN();
