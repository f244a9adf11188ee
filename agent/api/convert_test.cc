#include "agent/api/convert.h"

#include <gtest/gtest.h>

namespace phoenix::agent::api {
namespace {

TEST(ConvertTest, EventTypesMatchTheWire) {
  // EventType values are the wire values: the API casts between them.
  static_assert(static_cast<int>(EventType::kGuestCreated) == v1::EVENT_TYPE_GUEST_CREATED);
  static_assert(static_cast<int>(EventType::kRuntimeConnected) == v1::EVENT_TYPE_RUNTIME_CONNECTED);
  static_assert(static_cast<int>(EventType::kSnapshotCreated) == v1::EVENT_TYPE_SNAPSHOT_CREATED);
  static_assert(static_cast<int>(EventType::kSnapshotDiscarded) ==
                v1::EVENT_TYPE_SNAPSHOT_DISCARDED);
  EventRecord e{7, Clock::now(), EventType::kGuestCrashed, "web", "qemu killed"};
  v1::Event out;
  EventToProto(e, &out);
  EXPECT_EQ(out.type(), v1::EVENT_TYPE_GUEST_CRASHED);
  EXPECT_EQ(out.sequence(), 7u);
}

TEST(ConvertTest, GuestCarriesEndpoints) {
  GuestRecord rec;
  rec.spec.name = "web";
  rec.spec.ports = {{80, 18080, "127.0.0.1"}};
  rec.state = GuestState::kRunning;
  v1::Guest out;
  GuestToProto(rec, "node-1", &out);
  ASSERT_EQ(out.endpoints_size(), 1);
  EXPECT_EQ(out.endpoints(0).host_port(), 18080u);
  EXPECT_EQ(out.state(), v1::GUEST_STATE_RUNNING);
  EXPECT_EQ(out.node(), "node-1");
}

TEST(ConvertTest, GuestWithoutSampleHasNoMetrics) {
  GuestRecord rec;
  v1::Guest out;
  GuestToProto(rec, "node-1", &out);
  EXPECT_FALSE(out.has_metrics());
}

TEST(ConvertTest, GuestCarriesMetricsWithValidityFlags) {
  GuestRecord rec;
  GuestMetrics m;
  m.sampled_at = TimePoint(std::chrono::seconds(1'700'000'000));
  m.window_ms = 1000;
  m.cpu_valid = true;
  m.cpu_percent = 42.5;
  m.memory_bytes = 1 << 20;
  m.requests_valid = false;  // no published port: never sent as a zero rate
  m.requests_total = 7;
  m.connection_errors_total = 2;
  rec.metrics = m;
  v1::Guest out;
  GuestToProto(rec, "node-1", &out);
  ASSERT_TRUE(out.has_metrics());
  const v1::GuestMetrics& pm = out.metrics();
  EXPECT_EQ(pm.sampled_at().seconds(), 1'700'000'000);
  EXPECT_EQ(pm.window_ms(), 1000u);
  EXPECT_TRUE(pm.cpu_valid());
  EXPECT_DOUBLE_EQ(pm.cpu_percent(), 42.5);
  EXPECT_EQ(pm.memory_bytes(), 1u << 20);
  EXPECT_FALSE(pm.requests_valid());
  EXPECT_EQ(pm.requests_total(), 7u);
  EXPECT_EQ(pm.connection_errors_total(), 2u);
}

}  // namespace
}  // namespace phoenix::agent::api
