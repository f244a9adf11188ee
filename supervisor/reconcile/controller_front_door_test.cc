// The controller and the front door: tables, node routes, load from every front door, draining by
// requests in flight, ports taken on a node.
#include "supervisor/reconcile/controller_test_fixture.h"

namespace phoenix::supervisor {
namespace {

using namespace std::chrono_literals;

TEST_F(ControllerTest, FrontDoorTablesFollowReadyReplicasAndReachEveryAgent) {
  ConnectThreeZones();
  ServiceSpec web = Spec("web", 3);
  web.front_door = FrontDoorPort{.port = 8080, .guest_port = 80};
  ASSERT_TRUE(controller_->CreateService(web).has_value());

  ServiceSpec clash = Spec("api", 1);
  clash.front_door = FrontDoorPort{.port = 8080, .guest_port = 81};
  auto refused = controller_->CreateService(clash);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(refused.error().field, "spec.front_door.port") << refused.error().message;

  // Until a replica is ready (running, not yet healthy here), the table has the service's
  // frontend and no server.
  for (const char* node : {"n-a", "n-b", "n-c"}) ReportAssigned(node);
  ASSERT_TRUE(Eventually([&] { return sessions_["n-a"]->LastFrontDoor().has_value(); }));
  EXPECT_TRUE(sessions_["n-a"]->LastFrontDoor()->services.at(0).servers.empty());

  // Every node reports its replica running and healthy, published on its own address.
  for (const auto& [node, session] : sessions_) {
    AgentReport report;
    const NodeAssignment a = *session->Last();
    report.applied_version = a.version;
    for (const AssignedReplica& r : a.replicas) {
      report.guests.push_back(
          {r.guest,
           ReplicaObservation{
               .guest_state = GuestState::kRunning,
               .healthy = true,
               .endpoints = {"10.0.0." + std::to_string(node.back() - 'a' + 1) + ":31000->80"}}});
    }
    controller_->AgentReported(session.get(), report);
  }
  Sync();
  auto table_has = [&](const std::string& node, size_t servers) {
    auto t = sessions_[node]->LastFrontDoor();
    return t && t->services.size() == 1 && t->services[0].servers.size() == servers;
  };
  ASSERT_TRUE(Eventually([&] { return table_has("n-a", 3) && table_has("n-c", 3); }));
  const FrontDoorTable first = *sessions_["n-b"]->LastFrontDoor();
  EXPECT_EQ(first.services[0].name, "web");
  EXPECT_EQ(first.services[0].port, 8080);
  std::set<std::string> addresses, zones;
  for (const FrontDoorServer& r : first.services[0].servers) {
    addresses.insert(r.address);
    zones.insert(r.zone);
    EXPECT_EQ(r.port, 31000);
    EXPECT_FALSE(r.draining);
  }
  EXPECT_EQ(addresses, (std::set<std::string>{"10.0.0.1", "10.0.0.2", "10.0.0.3"}));
  EXPECT_EQ(zones, (std::set<std::string>{"a", "b", "c"}));

  // Scaled in: the removed replica drains first, then leaves.
  ASSERT_TRUE(controller_->ScaleService("web", 2, 0).has_value());
  Sync();
  auto table = sessions_["n-a"]->LastFrontDoor();
  ASSERT_TRUE(table.has_value());
  EXPECT_GT(table->version, first.version);
  ASSERT_EQ(table->services[0].servers.size(), 3u);
  EXPECT_EQ(std::ranges::count(table->services[0].servers, true, &FrontDoorServer::draining), 1);

  // A late agent gets the current table right after its hello.
  Connect("n-d", "a");
  ASSERT_TRUE(sessions_["n-d"]->LastFrontDoor().has_value());
  EXPECT_EQ(sessions_["n-d"]->LastFrontDoor()->version, table->version);
}

TEST_F(ControllerTest, ARestartedSupervisorSendsNoFrontDoorTableBeforeTheNodesReport) {
  ConnectThreeZones();
  ServiceSpec web = Spec("web", 3);
  web.front_door = FrontDoorPort{.port = 8080, .guest_port = 80};
  ASSERT_TRUE(controller_->CreateService(web).has_value());
  auto report_healthy = [&] {
    for (const auto& [node, session] : sessions_) {
      AgentReport report;
      const std::optional<NodeAssignment> a = session->Last();
      if (!a) continue;
      report.applied_version = a->version;
      for (const AssignedReplica& r : a->replicas) {
        report.guests.push_back({r.guest, ReplicaObservation{.guest_state = GuestState::kRunning,
                                                             .healthy = true,
                                                             .endpoints = {"10.0.0.9:31000->80"}}});
      }
      controller_->AgentReported(session.get(), report);
    }
    Sync();
  };
  report_healthy();
  ASSERT_TRUE(Eventually([&] {
    auto t = sessions_["n-a"]->LastFrontDoor();
    return t && t->services.at(0).servers.size() == 3;
  }));

  // The supervisor restarts; the agents reconnect but have not reported yet.
  Stop();
  Start();
  sessions_.clear();
  ConnectThreeZones();
  std::this_thread::sleep_for(100ms);  // several ticks (20 ms), within down_after (300 ms)
  for (const auto& [node, session] : sessions_) {
    EXPECT_FALSE(session->LastFrontDoor().has_value())
        << node << " got a table before the nodes said what runs: every front door would empty";
  }
  // Their first reports: the table comes back whole.
  report_healthy();
  ASSERT_TRUE(Eventually([&] {
    auto t = sessions_["n-b"]->LastFrontDoor();
    return t && t->services.at(0).servers.size() == 3;
  }));
}

TEST_F(ControllerTest, FrontDoorServicesAutoscaleOnWhatTheFrontDoorsSent) {
  ConnectThreeZones();
  ServiceSpec web = Spec("web", 0);
  web.front_door = FrontDoorPort{.port = 8080, .guest_port = 80};
  web.autoscale = Rps100(60);
  ASSERT_TRUE(controller_->CreateService(web).has_value());
  const std::string replica = ReplicaGuestName("web", 0, 1);
  // The replica's own agent sees no request (its port proxy is not on the path); two nodes' front
  // doors sent it 200 and 150 requests/s: 350 in all, so ceil(350 / 100) = 4 replicas.
  auto pump = [&](double a, double b) {
    for (const auto& [node, session] : sessions_) {
      AgentReport report;
      const std::optional<NodeAssignment> assigned = session->Last();
      if (assigned) {
        report.applied_version = assigned->version;
        for (const AssignedReplica& r : assigned->replicas) {
          report.guests.push_back(
              {r.guest, ReplicaObservation{.guest_state = GuestState::kRunning,
                                           .healthy = true,
                                           .reported_at = Clock::now(),
                                           .metrics = GuestMetrics{.sampled_at = Clock::now(),
                                                                   .window_ms = 1000,
                                                                   .requests_valid = true,
                                                                   .requests_per_second = 0}}});
        }
      }
      const double rps = node == "n-a" ? a : node == "n-b" ? b : 0;
      report.front_door.push_back(
          FrontDoorServerLoad{.service = "web", .server = replica, .requests_per_second = rps});
      controller_->AgentReported(session.get(), report);
    }
    Sync();
  };
  auto shown = controller_->GetService("web");
  ASSERT_TRUE(Eventually(
      [&] {
        pump(200, 150);
        shown = controller_->GetService("web");
        return shown && !shown->replicas.empty() && shown->replicas[0].observed.metrics &&
               shown->replicas[0].observed.metrics->requests_per_second == 350;
      },
      3s));
  EXPECT_TRUE(shown->replicas[0].observed.metrics->requests_valid);
  ASSERT_TRUE(Eventually(
      [&] {
        pump(200, 150);
        return Replicas("web") == 4;
      },
      3s))
      << Replicas("web");
}

TEST_F(ControllerTest, ReplicasOnInstanceNetworksAreReachedAtTheirOwnAddresses) {
  auto hello = [&](const std::string& name, const std::string& zone, const std::string& address,
                   const std::string& subnet) {
    AgentHello h = Hello(name, zone);
    h.advertise_address = address;
    h.instance_subnet = subnet;
    sessions_[name] = std::make_unique<FakeSession>();
    controller_->AgentConnected(sessions_[name].get(), h);
    Sync();
  };
  hello("n-a", "a", "192.0.2.1", "10.88.1.0/24");
  hello("n-b", "b", "192.0.2.2", "10.88.2.0/24");
  hello("n-c", "c", "192.0.2.3", "10.88.2.128/25");  // overlaps b's: both left out of the routes
  ServiceSpec web = Spec("web", 3);
  web.front_door = FrontDoorPort{.port = 8080, .guest_port = 80};
  ASSERT_TRUE(controller_->CreateService(web).has_value());
  for (const auto& [node, session] : sessions_) {
    AgentReport report;
    const NodeAssignment a = *session->Last();
    report.applied_version = a.version;
    const std::string n = std::to_string(node.back() - 'a' + 1);
    for (const AssignedReplica& r : a.replicas) {
      report.guests.push_back(
          {r.guest, ReplicaObservation{.guest_state = GuestState::kRunning,
                                       .healthy = true,
                                       .endpoints = {"192.0.2." + n + ":31000->80"},
                                       .node_address = "10.88." + n + ".7"}});
    }
    controller_->AgentReported(session.get(), report);
  }
  Sync();
  std::optional<FrontDoorTable> table;
  ASSERT_TRUE(Eventually([&] {
    table = sessions_["n-a"]->LastFrontDoor();
    return table && table->services.size() == 1 && table->services[0].servers.size() == 3;
  }));
  std::map<std::string, std::string> where;
  for (const FrontDoorServer& s : table->services[0].servers) {
    where[s.zone] = s.address + ":" + std::to_string(s.port);
  }
  EXPECT_EQ(where, (std::map<std::string, std::string>{
                       {"a", "10.88.1.7:80"}, {"b", "192.0.2.2:31000"}, {"c", "192.0.2.3:31000"}}))
      << "b's and c's subnets overlap: their replicas are reached at their published ports";
  EXPECT_EQ(
      table->routes,
      (std::vector<NodeRoute>{{.node = "n-a", .subnet = "10.88.1.0/24", .via = "192.0.2.1"}}));

  // Node c comes back with a subnet of its own: every node gets every route.
  std::unique_ptr<FakeSession> first_link = std::move(sessions_["n-c"]);
  hello("n-c", "c", "192.0.2.3", "10.88.3.0/24");
  controller_->AgentGone(first_link.get());
  Sync();
  ASSERT_TRUE(Eventually([&] {
    table = sessions_["n-b"]->LastFrontDoor();
    return table && table->routes.size() == 3;
  }));
  EXPECT_EQ(table->routes[2],
            (NodeRoute{.node = "n-c", .subnet = "10.88.3.0/24", .via = "192.0.2.3"}));
}

TEST_F(ControllerTest, AFrontDoorReplicaDrainsUntilItsRequestsFinishUpToTheDeadline) {
  ConnectThreeZones();
  ServiceSpec web = Spec("web", 3);
  web.front_door = FrontDoorPort{.port = 8080, .guest_port = 80};
  ASSERT_TRUE(controller_->CreateService(web).has_value());
  std::set<std::string> guests;
  // Every node reports its replicas healthy, and its front door `in_flight` requests to each.
  auto report = [&](uint32_t in_flight) {
    for (const auto& [node, session] : sessions_) {
      AgentReport r;
      const std::optional<NodeAssignment> a = session->Last();
      if (!a) continue;
      r.applied_version = a->version;
      for (const AssignedReplica& g : a->replicas) {
        guests.insert(g.guest);
        r.guests.push_back({g.guest, ReplicaObservation{.guest_state = GuestState::kRunning,
                                                        .healthy = true,
                                                        .endpoints = {"10.0.0.1:31000->80"}}});
      }
      for (const std::string& g : guests) {
        r.front_door.push_back(FrontDoorServerLoad{
            .service = "web", .server = g, .requests_per_second = 1, .in_flight = in_flight});
      }
      controller_->AgentReported(session.get(), r);
    }
    Sync();
  };
  auto assigned = [&] {
    size_t n = 0;
    for (const auto& [node, session] : sessions_) n += session->Last()->replicas.size();
    return n;
  };
  report(0);
  ASSERT_TRUE(controller_->ScaleService("web", 2, 0).has_value());
  // Past the grace (300 ms) with a request still in flight: it stays.
  const auto left = std::chrono::steady_clock::now();
  for (int i = 0; i < 30; ++i) {
    report(1);
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(assigned(), 3u) << "stopped with a request in flight";
  // Its last request finished: it stops.
  EXPECT_TRUE(Eventually([&] {
    report(0);
    return assigned() == 2;
  })) << "still assigned after its requests finished";
  EXPECT_LT(std::chrono::steady_clock::now() - left, 1400ms) << "it waited for the deadline";
  auto events = store_.EventsSince(0, 1000);
  ASSERT_TRUE(events);
  EXPECT_TRUE(std::ranges::any_of(*events, [](const ClusterEvent& e) {
    return e.message.ends_with(": drained, no request in flight");
  }));

  // A replica whose requests never finish stops at the deadline (1.5 s here).
  ASSERT_TRUE(controller_->ScaleService("web", 1, 0).has_value());
  const auto second = std::chrono::steady_clock::now();
  EXPECT_TRUE(Eventually(
      [&] {
        report(2);
        return assigned() == 1;
      },
      5s));
  EXPECT_GE(std::chrono::steady_clock::now() - second, 1400ms);
  events = store_.EventsSince(0, 1000);
  EXPECT_TRUE(std::ranges::any_of(*events, [](const ClusterEvent& e) {
    return e.message.ends_with("drain deadline reached with 6 requests still in flight");
  })) << "three front doors with 2 each";
}

TEST_F(ControllerTest, ANodeWhoseFrontDoorPortIsTakenGetsNoReplicaAndServiceShowSaysWhy) {
  ConnectThreeZones();
  AgentReport blocked;
  blocked.front_door_blocked.push_back(
      BlockedFrontDoor{.service = "web",
                       .port = 8080,
                       .reason = "port 8080 on 192.0.2.2 is taken by another process"});
  controller_->AgentReported(sessions_["n-b"].get(), blocked);
  Sync();
  ServiceSpec web = Spec("web", 3);
  web.front_door = FrontDoorPort{.port = 8080, .guest_port = 80};
  web.spread_attribute.clear();
  auto created = controller_->CreateService(web);
  ASSERT_TRUE(created.has_value()) << created.error().ToString();
  std::map<std::string, int> per_node;
  for (const ReplicaStatus& r : created->replicas) per_node[r.placement.node]++;
  EXPECT_FALSE(per_node.contains("n-b")) << "n-b cannot serve port 8080";
  EXPECT_EQ(per_node["n-a"] + per_node["n-c"], 3);
  EXPECT_THAT(created->front_door_problems,
              testing::ElementsAre("n-b: port 8080 on 192.0.2.2 is taken by another process"));

  // Another service's port is free there.
  ServiceSpec api = Spec("api", 3);
  api.front_door = FrontDoorPort{.port = 9090, .guest_port = 80};
  auto other = controller_->CreateService(api);
  ASSERT_TRUE(other.has_value());
  EXPECT_TRUE(std::ranges::any_of(
      other->replicas, [](const ReplicaStatus& r) { return r.placement.node == "n-b"; }));
  EXPECT_TRUE(other->front_door_problems.empty());
}

}  // namespace
}  // namespace phoenix::supervisor
