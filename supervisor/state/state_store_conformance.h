// StateStore conformance: the typed GoogleTest suite every StateStore implementation must pass, so
// the controller's tests (MemoryStateStore) and production (SqliteStateStore) see the same
// behaviour. Test code only.
//
// Use: define a traits type and instantiate the suite in the implementation's test:
//   struct MyTraits {
//     static constexpr bool kDurable = true;  // Open on the same dir sees the earlier data
//     static Result<std::unique_ptr<StateStore>> Open(const std::filesystem::path& dir,
//                                                     size_t max_events);
//   };
//   INSTANTIATE_TYPED_TEST_SUITE_P(My, StateStoreConformance, ::testing::Types<MyTraits>);
// Tests about reopening are skipped for stores that are not durable.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "agent/testing/temp_dir.h"
#include "supervisor/state/commit_rules.h"
#include "supervisor/state/state_store.h"

namespace phoenix::supervisor::conformance {

using ::testing::HasSubstr;

// An autoscaler window with every list filled; `salt` makes different windows.
inline AutoscaleWindow FullWindow(uint32_t salt) {
  const TimePoint t = commit_rules::FromMicros(1'700'000'100'000'001 + salt);
  AutoscaleWindow w;
  w.desires = {{t, t + std::chrono::seconds(4), 3 + salt}, {t + std::chrono::seconds(5), t, 1}};
  w.scale_ups = {{t, 2}, {t + std::chrono::microseconds(7), salt}};
  w.recent = {ScalingDecision{.time = t,
                              .from_replicas = 2,
                              .to_replicas = 4 + salt,
                              .metric = AutoscaleMetric::kCpu,
                              .observed = 91.0 / 3,
                              .target = 60,
                              .reporting_replicas = 2,
                              .reason = "cpu 91.0% > target 60% (±10%) over 2 replicas: want 4"},
              ScalingDecision{.time = t - std::chrono::seconds(1),
                              .from_replicas = 1,
                              .to_replicas = 2,
                              .metric = AutoscaleMetric::kRps,
                              .observed = 1e-300,
                              .target = 1e300,
                              .reason = "below the minimum"}};
  return w;
}

// Every field away from its default, including bytes that text columns would mangle.
inline Service FullService(const std::string& name) {
  Service s;
  s.spec.name = name;
  s.spec.runtime = RuntimeKind::kMicroVm;
  s.spec.image = "registry.local/" + name + ":1.2";
  s.spec.vcpus = 3;
  s.spec.memory_mib = 1536;
  s.spec.replicas = 3;
  s.spec.spread_attribute = "zone";
  s.spec.max_skew = 2;
  s.spec.strategy = PlacementStrategy::kBinpack;
  s.spec.node_selector = {{"disk", "ssd"}, {"gpu", "a100"}};
  s.spec.distinct_hosts = true;
  s.spec.guest_template = std::string("\x0a\x03web\x00\xff\xfe\x80 tail", 14);
  s.created_at = commit_rules::FromMicros(1'700'000'000'123'456);
  s.replicas = {{0, 7, "node-a"},
                {1, std::numeric_limits<uint64_t>::max(), "node-b"},
                {2, 0, ""},
                {5, 1, "node-c"}};
  s.spec.autoscale = AutoscalePolicy{.min_replicas = 2,
                                     .max_replicas = 9,
                                     .metric = AutoscaleMetric::kRps,
                                     .target = 0.1 + 0.2,  // not exact in decimal
                                     .tolerance = 0.15,
                                     .scale_up_stabilization_s = 3,
                                     .scale_down_stabilization_s = 45,
                                     .scale_up_max_step = 7,
                                     .scale_up_period_s = 11};
  s.autoscale = FullWindow(2);
  s.spec.front_door =
      FrontDoorPort{.port = 65535, .guest_port = 8080, .protocol = FrontDoorProtocol::kTcp};
  return s;
}

inline NodeRecord FullNode(const std::string& name) {
  NodeRecord n;
  n.name = name;
  n.zone = "zone-b";
  n.labels = {{"rack", "r12"}, {"disk", "ssd"}, {"empty", ""}};
  n.capacity = Resources{64, uint64_t{1} << 40};
  n.runtimes = {RuntimeKind::kVm, RuntimeKind::kMicroVm, RuntimeKind::kContainer};
  n.drained = true;
  n.assignment_version = std::numeric_limits<uint64_t>::max() - 3;
  n.joined_at = commit_rules::FromMicros(1'699'999'999'000'001);
  return n;
}

inline ClusterEvent Event(ClusterEventType type, const std::string& message) {
  ClusterEvent e;
  e.type = type;
  e.service = "web";
  e.node = "node-a";
  e.message = message;
  return e;
}

inline CommitBatch PutService(const Service& s, uint64_t expected) {
  CommitBatch b;
  b.put_services.push_back({s, expected});
  return b;
}

inline CommitBatch PutNode(const NodeRecord& n, uint64_t expected) {
  CommitBatch b;
  b.put_nodes.push_back({n, expected});
  return b;
}

template <typename T>
T WithVersion(T value, uint64_t version) {
  value.version = version;
  return value;
}

template <typename Traits>
class StateStoreConformance : public ::testing::Test {
 protected:
  std::unique_ptr<StateStore> Open(size_t max_events = 10000) {
    auto store = Traits::Open(dir_.path(), max_events);
    EXPECT_TRUE(store.has_value()) << store.error().ToString();
    return store ? std::move(*store) : nullptr;
  }

  static ClusterSnapshotRecord MustLoad(StateStore& store) {
    auto r = store.Load();
    EXPECT_TRUE(r.has_value()) << r.error().ToString();
    return r ? *r : ClusterSnapshotRecord{};
  }
  static std::vector<ClusterEvent> AllEvents(StateStore& store) {
    auto r = store.EventsSince(0, 1'000'000);
    EXPECT_TRUE(r.has_value()) << r.error().ToString();
    return r ? *r : std::vector<ClusterEvent>{};
  }
  static CommitResult MustCommit(StateStore& store, const CommitBatch& batch) {
    auto r = store.Commit(batch);
    EXPECT_TRUE(r.has_value()) << r.error().ToString();
    return r ? *r : CommitResult{};
  }

  agent::testing::TempDir dir_{"phoenix-state-store"};
};

TYPED_TEST_SUITE_P(StateStoreConformance);

TYPED_TEST_P(StateStoreConformance, StartsEmpty) {
  auto store = this->Open();
  ASSERT_NE(store, nullptr);
  auto snap = this->MustLoad(*store);
  EXPECT_TRUE(snap.services.empty());
  EXPECT_TRUE(snap.nodes.empty());
  EXPECT_EQ(snap.last_event_sequence, 0u);
  EXPECT_TRUE(this->AllEvents(*store).empty());
  // An empty batch is a successful no-op.
  auto r = this->MustCommit(*store, CommitBatch{});
  EXPECT_TRUE(r.service_versions.empty() && r.node_versions.empty() && r.events.empty());
}

TYPED_TEST_P(StateStoreConformance, RoundTripsEveryField) {
  auto store = this->Open();
  ASSERT_NE(store, nullptr);
  CommitBatch b;
  b.put_services.push_back({FullService("web"), 0});
  // Every runtime and strategy, and a service with every field at its default.
  const RuntimeKind kRuntimes[] = {RuntimeKind::kVm, RuntimeKind::kMicroVm,
                                   RuntimeKind::kContainer};
  const PlacementStrategy kStrategies[] = {PlacementStrategy::kSpread, PlacementStrategy::kBinpack};
  std::vector<Service> want = {WithVersion(FullService("web"), 1)};
  int i = 0;
  for (RuntimeKind rt : kRuntimes) {
    for (PlacementStrategy st : kStrategies) {
      Service s = FullService("svc-" + std::to_string(i++));
      s.spec.runtime = rt;
      s.spec.strategy = st;
      s.spec.distinct_hosts = (i % 2) == 0;
      b.put_services.push_back({s, 0});
      want.push_back(WithVersion(s, 1));
    }
  }
  Service plain;
  plain.spec.name = "plain";
  b.put_services.push_back({plain, 0});
  want.push_back(WithVersion(plain, 1));
  // The version in the value is ignored: expected_version decides.
  Service lying = FullService("lying");
  lying.version = 42;
  b.put_services.push_back({lying, 0});
  want.push_back(WithVersion(lying, 1));

  NodeRecord bare;
  bare.name = "bare";
  b.put_nodes.push_back({FullNode("node-a"), 0});
  b.put_nodes.push_back({bare, 0});
  auto r = this->MustCommit(*store, b);
  EXPECT_EQ(r.service_versions, std::vector<uint64_t>(b.put_services.size(), 1));
  EXPECT_EQ(r.node_versions, (std::vector<uint64_t>{1, 1}));

  std::sort(want.begin(), want.end(),
            [](const Service& a, const Service& c) { return a.spec.name < c.spec.name; });
  auto snap = this->MustLoad(*store);
  EXPECT_EQ(snap.services, want);
  EXPECT_EQ(snap.nodes,
            (std::vector<NodeRecord>{WithVersion(bare, 1), WithVersion(FullNode("node-a"), 1)}));
}

TYPED_TEST_P(StateStoreConformance, UpdatesReplaceEveryFieldAndBumpTheVersion) {
  auto store = this->Open();
  ASSERT_NE(store, nullptr);
  this->MustCommit(*store, PutService(FullService("web"), 0));
  this->MustCommit(*store, PutNode(FullNode("node-a"), 0));

  Service s = FullService("web");
  s.spec.image = "web:2";
  s.spec.replicas = 1;
  s.spec.node_selector = {{"disk", "hdd"}};
  s.spec.guest_template.clear();
  s.replicas = {{0, 8, "node-z"}};
  s.spec.autoscale->max_replicas = 4;
  s.autoscale = FullWindow(5);
  NodeRecord n = FullNode("node-a");
  n.labels.erase("rack");
  n.runtimes = {RuntimeKind::kContainer};
  n.drained = false;
  n.assignment_version = 9;
  for (uint64_t v = 1; v <= 3; ++v) {
    s.spec.vcpus = static_cast<uint32_t>(v);
    n.capacity.vcpus = static_cast<uint32_t>(v);
    CommitBatch b = PutService(s, v);
    b.put_nodes.push_back({n, v});
    auto r = this->MustCommit(*store, b);
    EXPECT_EQ(r.service_versions, std::vector<uint64_t>{v + 1});
    EXPECT_EQ(r.node_versions, std::vector<uint64_t>{v + 1});
    auto snap = this->MustLoad(*store);
    EXPECT_EQ(snap.services, std::vector<Service>{WithVersion(s, v + 1)});
    EXPECT_EQ(snap.nodes, std::vector<NodeRecord>{WithVersion(n, v + 1)});
  }
}

TYPED_TEST_P(StateStoreConformance, TimestampsKeepMicroseconds) {
  auto store = this->Open();
  ASSERT_NE(store, nullptr);
  Service s = FullService("web");
  s.created_at = commit_rules::FromMicros(1'700'000'000'000'007) + std::chrono::nanoseconds(999);
  NodeRecord n = FullNode("node-a");
  n.joined_at = commit_rules::FromMicros(5) + std::chrono::nanoseconds(1);
  ClusterEvent e = Event(ClusterEventType::kNodeJoined, "joined");
  e.time = commit_rules::FromMicros(1'700'000'000'000'009) + std::chrono::nanoseconds(500);
  CommitBatch b = PutService(s, 0);
  b.put_nodes.push_back({n, 0});
  b.events.push_back(e);
  auto r = this->MustCommit(*store, b);
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].time, commit_rules::FromMicros(1'700'000'000'000'009));
  auto snap = this->MustLoad(*store);
  ASSERT_EQ(snap.services.size(), 1u);
  EXPECT_EQ(snap.services[0].created_at, commit_rules::FromMicros(1'700'000'000'000'007));
  ASSERT_EQ(snap.nodes.size(), 1u);
  EXPECT_EQ(snap.nodes[0].joined_at, commit_rules::FromMicros(5));
  EXPECT_EQ(this->AllEvents(*store), r.events);
}

// Every kind of version mismatch is refused with kAborted naming the record, and leaves services,
// nodes, events and the sequence counter exactly as they were.
TYPED_TEST_P(StateStoreConformance, VersionConflictsChangeNothing) {
  auto store = this->Open();
  ASSERT_NE(store, nullptr);
  {
    CommitBatch b = PutService(FullService("web"), 0);
    b.put_nodes.push_back({FullNode("node-a"), 0});
    b.events.push_back(Event(ClusterEventType::kServiceCreated, "created"));
    this->MustCommit(*store, b);
    this->MustCommit(*store, PutService(FullService("web"), 1));  // web at version 2
  }
  const auto before = this->MustLoad(*store);
  const auto events_before = this->AllEvents(*store);
  ASSERT_EQ(before.services.size(), 1u);
  ASSERT_EQ(before.services[0].version, 2u);

  // A write that is fine on its own, to show it is not applied when another one conflicts.
  auto with_good_writes = [](CommitBatch b) {
    b.put_services.push_back({FullService("fresh"), 0});
    b.events.push_back(Event(ClusterEventType::kReplicaPlaced, "should not be stored"));
    return b;
  };
  CommitBatch del_web_1;
  del_web_1.delete_services.push_back({"web", 1});
  CommitBatch del_web_3;
  del_web_3.delete_services.push_back({"web", 3});
  CommitBatch del_ghost;
  del_ghost.delete_services.push_back({"ghost", 1});
  CommitBatch two = PutService(FullService("web"), 1);
  two.put_nodes.push_back({FullNode("node-a"), 5});
  struct Case {
    std::string name;
    CommitBatch batch;
    std::vector<std::string> messages;
  };
  std::vector<Case> cases = {
      {"create existing service",
       PutService(FullService("web"), 0),
       {"service web: at version 2, expected it not to exist"}},
      {"stale service",
       PutService(FullService("web"), 1),
       {"service web: at version 2, expected 1"}},
      {"future service",
       PutService(FullService("web"), 3),
       {"service web: at version 2, expected 3"}},
      {"update missing service",
       PutService(FullService("ghost"), 1),
       {"service ghost: does not exist, expected version 1"}},
      {"delete stale", del_web_1, {"service web: at version 2, expected 1"}},
      {"delete future", del_web_3, {"service web: at version 2, expected 3"}},
      {"delete missing", del_ghost, {"service ghost: does not exist, expected version 1"}},
      {"create existing node",
       PutNode(FullNode("node-a"), 0),
       {"node node-a: at version 1, expected it not to exist"}},
      {"stale node", PutNode(FullNode("node-a"), 2), {"node node-a: at version 1, expected 2"}},
      {"update missing node",
       PutNode(FullNode("node-x"), 4),
       {"node node-x: does not exist, expected version 4"}},
      {"every conflict is named",
       two,
       {"service web: at version 2, expected 1", "node node-a: at version 1, expected 5"}},
  };
  for (const auto& c : cases) {
    for (bool extra : {false, true}) {
      SCOPED_TRACE(c.name + (extra ? " (with good writes)" : ""));
      auto r = store->Commit(extra ? with_good_writes(c.batch) : c.batch);
      ASSERT_FALSE(r.has_value());
      EXPECT_EQ(r.error().code, ErrorCode::kAborted) << r.error().ToString();
      for (const auto& m : c.messages) EXPECT_THAT(r.error().message, HasSubstr(m));
      auto after = this->MustLoad(*store);
      EXPECT_EQ(after.services, before.services);
      EXPECT_EQ(after.nodes, before.nodes);
      EXPECT_EQ(after.last_event_sequence, before.last_event_sequence);
      EXPECT_EQ(this->AllEvents(*store), events_before);
    }
  }
  // The store is still usable and keeps counting from where it was.
  CommitBatch ok = PutService(FullService("web"), 2);
  ok.events.push_back(Event(ClusterEventType::kServiceScaled, "scaled"));
  auto r = this->MustCommit(*store, ok);
  EXPECT_EQ(r.service_versions, std::vector<uint64_t>{3});
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_GT(r.events[0].sequence, before.last_event_sequence);
}

TYPED_TEST_P(StateStoreConformance, MalformedBatchesAreInvalidAndChangeNothing) {
  auto store = this->Open();
  ASSERT_NE(store, nullptr);
  this->MustCommit(*store, PutService(FullService("web"), 0));
  const auto before = this->MustLoad(*store);

  CommitBatch dup_service = PutService(FullService("a"), 0);
  dup_service.put_services.push_back({FullService("a"), 0});
  CommitBatch put_and_delete = PutService(FullService("web"), 1);
  put_and_delete.delete_services.push_back({"web", 1});
  CommitBatch dup_node = PutNode(FullNode("n"), 0);
  dup_node.put_nodes.push_back({FullNode("n"), 0});
  CommitBatch delete_without_version;
  delete_without_version.delete_services.push_back({"web", 0});
  Service dup_replica = FullService("b");
  dup_replica.replicas.push_back({0, 9, "node-q"});
  const std::vector<std::pair<std::string, CommitBatch>> cases = {
      {"service twice", dup_service},
      {"put and delete", put_and_delete},
      {"node twice", dup_node},
      {"delete without version", delete_without_version},
      {"unnamed service", PutService(Service{}, 0)},
      {"unnamed node", PutNode(NodeRecord{}, 0)},
      {"replica index twice", PutService(dup_replica, 0)},
  };
  for (const auto& [name, batch] : cases) {
    SCOPED_TRACE(name);
    CommitBatch b = batch;
    b.events.push_back(Event(ClusterEventType::kServiceCreated, "should not be stored"));
    auto r = store->Commit(b);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << r.error().ToString();
    auto after = this->MustLoad(*store);
    EXPECT_EQ(after.services, before.services);
    EXPECT_TRUE(after.nodes.empty());
    EXPECT_EQ(after.last_event_sequence, 0u);
  }
}

TYPED_TEST_P(StateStoreConformance, DeleteRemovesTheServiceAndItsReplicas) {
  auto store = this->Open();
  ASSERT_NE(store, nullptr);
  CommitBatch b = PutService(FullService("web"), 0);
  b.put_services.push_back({FullService("api"), 0});
  b.put_nodes.push_back({FullNode("node-a"), 0});
  this->MustCommit(*store, b);

  CommitBatch del;
  del.delete_services.push_back({"web", 1});
  del.events.push_back(Event(ClusterEventType::kServiceDeleted, "deleted"));
  auto r = this->MustCommit(*store, del);
  EXPECT_TRUE(r.service_versions.empty());
  auto snap = this->MustLoad(*store);
  EXPECT_EQ(snap.services, std::vector<Service>{WithVersion(FullService("api"), 1)});
  EXPECT_EQ(snap.nodes, std::vector<NodeRecord>{WithVersion(FullNode("node-a"), 1)});

  // Deleting again is a conflict; recreating starts afresh, without the old replicas or selector.
  auto again = store->Commit(del);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kAborted);
  Service reborn;
  reborn.spec.name = "web";
  r = this->MustCommit(*store, PutService(reborn, 0));
  EXPECT_EQ(r.service_versions, std::vector<uint64_t>{1});
  snap = this->MustLoad(*store);
  EXPECT_EQ(snap.services,
            (std::vector<Service>{WithVersion(FullService("api"), 1), WithVersion(reborn, 1)}));
}

TYPED_TEST_P(StateStoreConformance, EventsGetIncreasingSequencesAndTimes) {
  auto store = this->Open();
  ASSERT_NE(store, nullptr);
  const TimePoint given = commit_rules::FromMicros(1'600'000'000'000'001);
  std::vector<ClusterEvent> all;
  uint64_t last = 0;
  for (int round = 0; round < 3; ++round) {
    CommitBatch b;
    b.events.push_back(Event(ClusterEventType::kReplicaPlaced, "a" + std::to_string(round)));
    ClusterEvent timed = Event(ClusterEventType::kNodeDown, "b" + std::to_string(round));
    timed.time = given;
    timed.sequence = 12345;  // ignored
    timed.actor = "token 0123456789ab (operator)";
    b.events.push_back(timed);
    b.events.push_back(Event(ClusterEventType::kStaleGuestStopped, "c" + std::to_string(round)));
    const TimePoint before = commit_rules::StoredTime(Clock::now());
    auto r = this->MustCommit(*store, b);
    const TimePoint after = Clock::now();
    ASSERT_EQ(r.events.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_GT(r.events[i].sequence, last);
      last = r.events[i].sequence;
      EXPECT_EQ(r.events[i].type, b.events[i].type);
      EXPECT_EQ(r.events[i].service, "web");
      EXPECT_EQ(r.events[i].node, "node-a");
      EXPECT_EQ(r.events[i].message, b.events[i].message);
      EXPECT_EQ(r.events[i].actor, b.events[i].actor);
    }
    EXPECT_EQ(r.events[1].time, given);
    for (size_t i : {0, 2}) {
      EXPECT_GE(r.events[i].time, before);
      EXPECT_LE(r.events[i].time, after);
      EXPECT_EQ(r.events[i].time, commit_rules::StoredTime(r.events[i].time));
    }
    all.insert(all.end(), r.events.begin(), r.events.end());
  }
  EXPECT_EQ(this->AllEvents(*store), all);
  EXPECT_EQ(this->MustLoad(*store).last_event_sequence, last);

  auto from = store->EventsSince(all[4].sequence, 3);
  ASSERT_TRUE(from.has_value());
  EXPECT_EQ(*from, std::vector<ClusterEvent>(all.begin() + 4, all.begin() + 7));
  auto none = store->EventsSince(last + 1, 10);
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->empty());
  auto zero = store->EventsSince(0, 0);
  ASSERT_TRUE(zero.has_value());
  EXPECT_TRUE(zero->empty());
  auto huge = store->EventsSince(std::numeric_limits<uint64_t>::max(), 10);
  ASSERT_TRUE(huge.has_value());
  EXPECT_TRUE(huge->empty());

  // Every event type is stored as itself.
  CommitBatch types;
  for (int t = 0; t <= static_cast<int>(kLastClusterEventType); ++t) {
    types.events.push_back(Event(static_cast<ClusterEventType>(t), "type"));
  }
  auto r = this->MustCommit(*store, types);
  auto stored = store->EventsSince(r.events.front().sequence, 100);
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(*stored, r.events);
}

TYPED_TEST_P(StateStoreConformance, EventLogKeepsTheNewest) {
  auto store = this->Open(/*max_events=*/5);
  ASSERT_NE(store, nullptr);
  std::vector<ClusterEvent> all;
  for (int batch = 0; batch < 5; ++batch) {
    CommitBatch b;
    for (int i = 0; i <= batch % 3; ++i) {
      b.events.push_back(Event(ClusterEventType::kReplicaRunning, std::to_string(all.size() + i)));
    }
    auto r = this->MustCommit(*store, b);
    all.insert(all.end(), r.events.begin(), r.events.end());
  }
  ASSERT_EQ(all.size(), 9u);
  for (size_t i = 1; i < all.size(); ++i) EXPECT_GT(all[i].sequence, all[i - 1].sequence);
  EXPECT_EQ(this->AllEvents(*store), std::vector<ClusterEvent>(all.end() - 5, all.end()));
  EXPECT_EQ(this->MustLoad(*store).last_event_sequence, all.back().sequence);
  // A trimmed start yields what is left, from the oldest kept.
  auto since = store->EventsSince(all[0].sequence, 2);
  ASSERT_TRUE(since.has_value());
  EXPECT_EQ(*since, std::vector<ClusterEvent>(all.end() - 5, all.end() - 3));
}

TYPED_TEST_P(StateStoreConformance, DataAndSequencesSurviveReopenAndTrimming) {
  if (!TypeParam::kDurable) GTEST_SKIP() << "not a durable store";
  uint64_t last = 0;
  ClusterSnapshotRecord before;
  {
    auto store = this->Open(/*max_events=*/3);
    ASSERT_NE(store, nullptr);
    CommitBatch b = PutService(FullService("web"), 0);
    b.put_nodes.push_back({FullNode("node-a"), 0});
    for (int i = 0; i < 7; ++i) {
      b.events.push_back(Event(ClusterEventType::kReplicaPlaced, std::to_string(i)));
    }
    auto r = this->MustCommit(*store, b);
    ASSERT_EQ(r.events.size(), 7u);
    last = r.events.back().sequence;
    before = this->MustLoad(*store);
  }
  for (int reopen = 0; reopen < 2; ++reopen) {
    SCOPED_TRACE("reopen " + std::to_string(reopen));
    auto store = this->Open(/*max_events=*/3);
    ASSERT_NE(store, nullptr);
    auto snap = this->MustLoad(*store);
    EXPECT_EQ(snap.services, before.services);
    EXPECT_EQ(snap.nodes, before.nodes);
    EXPECT_EQ(snap.last_event_sequence, last);
    auto events = this->AllEvents(*store);
    ASSERT_EQ(events.size(), 3u);
    EXPECT_EQ(events.back().sequence, last);

    // Trim everything that existed before, then make sure no sequence is reused.
    CommitBatch b = PutService(FullService("web"), snap.services[0].version);
    for (int i = 0; i < 4; ++i) {
      b.events.push_back(Event(ClusterEventType::kServiceScaled, std::to_string(i)));
    }
    auto r = this->MustCommit(*store, b);
    ASSERT_EQ(r.events.size(), 4u);
    EXPECT_GT(r.events.front().sequence, last);
    last = r.events.back().sequence;
    before = this->MustLoad(*store);
    EXPECT_EQ(this->AllEvents(*store),
              std::vector<ClusterEvent>(r.events.begin() + 1, r.events.end()));
  }
}

TYPED_TEST_P(StateStoreConformance, LoadIsSortedByName) {
  auto store = this->Open();
  ASSERT_NE(store, nullptr);
  auto unsorted = [](const std::string& name) {
    Service s = FullService(name);
    s.replicas = {{4, 1, "n4"}, {0, 2, "n0"}, {2, 3, ""}, {1, 4, "n1"}};
    return s;
  };
  CommitBatch b;
  for (const char* name : {"zeta", "alpha", "mid"}) b.put_services.push_back({unsorted(name), 0});
  for (const char* name : {"node-c", "node-a"}) b.put_nodes.push_back({FullNode(name), 0});
  this->MustCommit(*store, b);
  this->MustCommit(*store, PutService(unsorted("beta"), 0));
  this->MustCommit(*store, PutNode(FullNode("node-b"), 0));

  auto snap = this->MustLoad(*store);
  std::vector<std::string> names;
  for (const auto& s : snap.services) {
    names.push_back(s.spec.name);
    std::vector<uint32_t> indices;
    for (const auto& r : s.replicas) indices.push_back(r.index);
    EXPECT_EQ(indices, (std::vector<uint32_t>{0, 1, 2, 4})) << s.spec.name;
    EXPECT_EQ(s.replicas[0], (ReplicaPlacement{0, 2, "n0"}));
  }
  EXPECT_EQ(names, (std::vector<std::string>{"alpha", "beta", "mid", "zeta"}));
  names.clear();
  for (const auto& n : snap.nodes) names.push_back(n.name);
  EXPECT_EQ(names, (std::vector<std::string>{"node-a", "node-b", "node-c"}));
}

// Read-modify-write from several threads: the version check lets exactly one writer win each
// round, the losers retry, and no update is lost.
TYPED_TEST_P(StateStoreConformance, ConcurrentWritersNeverLoseAnUpdate) {
  auto store = this->Open();
  ASSERT_NE(store, nullptr);
  Service counter;
  counter.spec.name = "counter";
  counter.spec.replicas = 0;
  this->MustCommit(*store, PutService(counter, 0));
  constexpr int kThreads = 4;
  constexpr int kPerThread = 15;
  std::atomic<int> failures{0};
  std::atomic<int> conflicts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int done = 0, attempts = 0; done < kPerThread && attempts < 10000; ++attempts) {
        auto snap = store->Load();
        if (!snap || snap->services.size() != 1) {
          ++failures;
          return;
        }
        Service s = snap->services[0];
        s.spec.replicas += 1;
        CommitBatch b = PutService(s, s.version);
        b.events.push_back(Event(ClusterEventType::kServiceScaled, "thread " + std::to_string(t)));
        auto r = store->Commit(b);
        if (r) {
          ++done;
        } else if (r.error().code == ErrorCode::kAborted) {
          ++conflicts;
        } else {
          ++failures;
          return;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  auto snap = this->MustLoad(*store);
  ASSERT_EQ(snap.services.size(), 1u);
  EXPECT_EQ(snap.services[0].spec.replicas, static_cast<uint32_t>(kThreads * kPerThread));
  EXPECT_EQ(snap.services[0].version, static_cast<uint64_t>(kThreads * kPerThread + 1));
  auto events = this->AllEvents(*store);
  EXPECT_EQ(events.size(), static_cast<size_t>(kThreads * kPerThread));
  for (size_t i = 1; i < events.size(); ++i) EXPECT_GT(events[i].sequence, events[i - 1].sequence);
}

TYPED_TEST_P(StateStoreConformance, AutoscaleWindowWritesKeepTheVersion) {
  auto store = this->Open();
  ASSERT_NE(store, nullptr);
  Service s = FullService("web");
  s.autoscale = {};
  this->MustCommit(*store, PutService(s, 0));
  this->MustCommit(*store, PutService(FullService("other"), 0));

  CommitBatch b;
  b.put_windows.push_back({"web", FullWindow(7)});
  b.events.push_back(Event(ClusterEventType::kServiceScaled, "window"));
  auto r = this->MustCommit(*store, b);
  EXPECT_TRUE(r.service_versions.empty());
  EXPECT_EQ(r.events.size(), 1u);
  auto snap = this->MustLoad(*store);
  ASSERT_EQ(snap.services.size(), 2u);
  s.autoscale = FullWindow(7);
  EXPECT_EQ(snap.services[1], WithVersion(s, 1));  // version unchanged
  EXPECT_EQ(snap.services[0], WithVersion(FullService("other"), 1));

  // A window of a missing service refuses the whole batch.
  CommitBatch missing;
  missing.put_windows.push_back({"web", AutoscaleWindow{}});
  missing.put_windows.push_back({"gone", AutoscaleWindow{}});
  auto refused = store->Commit(missing);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kAborted);
  EXPECT_THAT(refused.error().message, HasSubstr("service gone: does not exist"));
  EXPECT_EQ(this->MustLoad(*store).services, snap.services);

  // A service written twice (put + window) is malformed.
  CommitBatch twice = PutService(s, 1);
  twice.put_windows.push_back({"web", AutoscaleWindow{}});
  auto malformed = store->Commit(twice);
  ASSERT_FALSE(malformed);
  EXPECT_EQ(malformed.error().code, ErrorCode::kInvalidArgument);

  // Clearing the policy and window with a put removes them; deleting the service drops its window.
  Service plain = s;
  plain.spec.autoscale.reset();
  plain.autoscale = {};
  this->MustCommit(*store, PutService(plain, 1));
  EXPECT_EQ(this->MustLoad(*store).services[1], WithVersion(plain, 2));
  CommitBatch del;
  del.delete_services.push_back({"other", 1});
  this->MustCommit(*store, del);
  Service again = FullService("other");
  again.autoscale = {};
  this->MustCommit(*store, PutService(again, 0));
  EXPECT_EQ(this->MustLoad(*store).services[0], WithVersion(again, 1));
}

REGISTER_TYPED_TEST_SUITE_P(StateStoreConformance, StartsEmpty, RoundTripsEveryField,
                            AutoscaleWindowWritesKeepTheVersion,
                            UpdatesReplaceEveryFieldAndBumpTheVersion, TimestampsKeepMicroseconds,
                            VersionConflictsChangeNothing,
                            MalformedBatchesAreInvalidAndChangeNothing,
                            DeleteRemovesTheServiceAndItsReplicas,
                            EventsGetIncreasingSequencesAndTimes, EventLogKeepsTheNewest,
                            DataAndSequencesSurviveReopenAndTrimming, LoadIsSortedByName,
                            ConcurrentWritersNeverLoseAnUpdate);

}  // namespace phoenix::supervisor::conformance
