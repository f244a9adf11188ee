#include "tools/loadgen/service_targets.h"

#include <gtest/gtest.h>

namespace phoenix::loadgen {
namespace {

v1::Replica* AddReplica(v1::Service& s, v1::ReplicaState state, bool healthy, std::string ip,
                        uint32_t host_port, uint32_t guest_port = 80) {
  v1::Replica* r = s.add_replicas();
  r->set_state(state);
  r->set_healthy(healthy);
  v1::Endpoint* e = r->add_endpoints();
  e->set_guest_port(guest_port);
  e->set_host_ip(std::move(ip));
  e->set_host_port(host_port);
  return r;
}

TEST(PickTargetsTest, OnlyRunningHealthyLoopbackReplicas) {
  v1::Service s;
  AddReplica(s, v1::REPLICA_STATE_RUNNING, true, "127.0.0.1", 8001);
  AddReplica(s, v1::REPLICA_STATE_RUNNING, false, "127.0.0.1", 8002);  // unhealthy
  AddReplica(s, v1::REPLICA_STATE_ASSIGNED, true, "127.0.0.1", 8003);  // not running yet
  AddReplica(s, v1::REPLICA_STATE_RUNNING, true, "10.1.2.3", 8004);    // not loopback
  AddReplica(s, v1::REPLICA_STATE_RUNNING, true, "", 8005);            // default 127.0.0.1
  v1::Replica* draining = s.add_replicas();                            // endpoints withdrawn
  draining->set_state(v1::REPLICA_STATE_RUNNING);
  draining->set_healthy(true);
  ServiceTargets t = PickTargets(s, std::nullopt, "/x");
  ASSERT_EQ(t.targets.size(), 2u);
  EXPECT_EQ(t.targets[0], (Target{"127.0.0.1", 8001, "/x"}));
  EXPECT_EQ(t.targets[1], (Target{"127.0.0.1", 8005, "/x"}));
  ASSERT_EQ(t.refused.size(), 1u);
  EXPECT_EQ(t.refused[0], "10.1.2.3:8004");
}

TEST(PickTargetsTest, WithNoHealthyReplicaSendsToTheRunningOnes) {
  v1::Service s;
  AddReplica(s, v1::REPLICA_STATE_RUNNING, false, "127.0.0.1", 8001);   // overloaded
  AddReplica(s, v1::REPLICA_STATE_ASSIGNED, false, "127.0.0.1", 8002);  // not running
  v1::Replica* draining = s.add_replicas();                             // endpoints withdrawn
  draining->set_state(v1::REPLICA_STATE_RUNNING);
  draining->set_healthy(true);
  ServiceTargets t = PickTargets(s, std::nullopt, "/");
  EXPECT_TRUE(t.all_unhealthy);
  ASSERT_EQ(t.targets.size(), 1u);
  EXPECT_EQ(t.targets[0].port, 8001);
  // One healthy replica ends the fallback.
  AddReplica(s, v1::REPLICA_STATE_RUNNING, true, "127.0.0.1", 8003);
  t = PickTargets(s, std::nullopt, "/");
  EXPECT_FALSE(t.all_unhealthy);
  ASSERT_EQ(t.targets.size(), 1u);
  EXPECT_EQ(t.targets[0].port, 8003);
}

TEST(PickTargetsTest, ChoosesTheGuestPort) {
  v1::Service s;
  v1::Replica* r = AddReplica(s, v1::REPLICA_STATE_RUNNING, true, "127.0.0.1", 9000, 22);
  v1::Endpoint* web = r->add_endpoints();
  web->set_guest_port(80);
  web->set_host_ip("127.0.0.1");
  web->set_host_port(9001);
  EXPECT_EQ(PickTargets(s, 80, "/").targets.at(0).port, 9001);
  EXPECT_EQ(PickTargets(s, std::nullopt, "/").targets.at(0).port, 9000);
  EXPECT_TRUE(PickTargets(s, 443, "/").targets.empty());
}

}  // namespace
}  // namespace phoenix::loadgen
