#include "agent/link/supervisor_link.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/api/agent_service.h"
#include "agent/link/testing/agent_harness.h"

namespace phoenix::agent::link {
namespace {

using namespace std::chrono_literals;
using ::testing::Contains;

// An in-process AgentLink server on 127.0.0.1 (plaintext): records every Hello and Status,
// answers Hello with Welcome and sends the newest assignment on connect and whenever it changes
// (checked after every message the agent sends, so at least once per heartbeat).
class FakeSupervisor final : public v1::AgentLink::Service {
 public:
  explicit FakeSupervisor(uint32_t heartbeat_ms) : heartbeat_ms_(heartbeat_ms) {}

  grpc::Status Connect(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<v1::SupervisorMessage, v1::AgentMessage>* stream) override {
    v1::AgentMessage in;
    if (!stream->Read(&in) || !in.has_hello()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "Hello first");
    }
    {
      std::lock_guard lock(mu_);
      hellos_.push_back(in.hello());
    }
    cv_.notify_all();
    v1::SupervisorMessage welcome;
    welcome.mutable_welcome()->set_heartbeat_interval_ms(heartbeat_ms_);
    welcome.mutable_welcome()->set_supervisor_version("fake");
    if (!stream->Write(welcome)) return grpc::Status::OK;
    uint64_t sent = 0;
    for (;;) {
      std::optional<v1::SupervisorMessage> out;
      {
        std::lock_guard lock(mu_);
        if (assignment_generation_ > sent) {
          sent = assignment_generation_;
          out.emplace();
          *out->mutable_assignment() = assignment_;
        }
      }
      if (out && !stream->Write(*out)) break;
      if (!stream->Read(&in)) break;
      if (in.has_status()) {
        std::lock_guard lock(mu_);
        statuses_.push_back({std::chrono::steady_clock::now(), in.status()});
      }
      cv_.notify_all();
    }
    return grpc::Status::OK;
  }

  void Assign(v1::Assignment a) {
    std::lock_guard lock(mu_);
    assignment_ = std::move(a);
    ++assignment_generation_;
  }

  // Waits (bounded) until `pred` holds over the recorded messages.
  bool WaitFor(const std::function<bool()>& pred, std::chrono::seconds limit = 10s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, pred);
  }
  bool WaitForStatus(const std::function<bool(const v1::Status&)>& pred) {
    return WaitFor([&] {
      for (const auto& s : statuses_) {
        if (pred(s.status)) return true;
      }
      return false;
    });
  }
  std::vector<v1::Hello> hellos() {
    std::lock_guard lock(mu_);
    return hellos_;
  }
  size_t StatusesSince(std::chrono::steady_clock::time_point t) {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (const auto& s : statuses_) n += s.at >= t ? 1 : 0;
    return n;
  }

  // Unguarded accessors for WaitFor predicates (which run under mu_).
  const std::vector<v1::Hello>& hellos_locked() const { return hellos_; }

 private:
  struct Received {
    std::chrono::steady_clock::time_point at;
    v1::Status status;
  };
  const uint32_t heartbeat_ms_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<v1::Hello> hellos_;
  std::deque<Received> statuses_;
  v1::Assignment assignment_;
  uint64_t assignment_generation_ = 0;
};

class FakeServer {
 public:
  FakeServer(int port, uint32_t heartbeat_ms) : service_(heartbeat_ms) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    PHX_CHECK(server_ != nullptr && port_ != 0);
  }
  ~FakeServer() { server_->Shutdown(std::chrono::system_clock::now() + 200ms); }
  int port() const { return port_; }
  FakeSupervisor& service() { return service_; }

 private:
  FakeSupervisor service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

v1::Assignment MakeAssignment(uint64_t version, const std::vector<std::string>& names) {
  v1::Assignment a;
  a.set_version(version);
  for (const std::string& name : names) {
    v1::AssignedGuest* g = a.add_guests();
    g->set_service("web");
    g->mutable_spec()->set_name(name);
    g->mutable_spec()->set_image("demo");
    g->mutable_spec()->set_memory_mib(256);
  }
  return a;
}

bool HasGuestIn(const v1::Status& s, const std::string& name, v1::GuestState state) {
  for (const v1::Guest& g : s.guests()) {
    if (g.spec().name() == name && g.state() == state) return true;
  }
  return false;
}

class AgentSupervisorLinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<FakeServer>(0, 200);
    api::AgentServiceImpl::Options api_options;
    api_options.node = {"node-a", "zone-1", {{"rack", "r7"}}};
    api_options.capacity = {8, 8192};
    api_options.state_dir = agent_.dir();
    api_options.version = "test";
    api_ =
        std::make_unique<api::AgentServiceImpl>(agent_.manager(), agent_.images(), agent_.store(),
                                                agent_.hub(), agent_.runtimes(), api_options);
  }
  void TearDown() override {
    if (link_) link_->Stop();
  }

  void StartLink(std::function<bool()> renewal_due = nullptr) {
    SupervisorLink::Options options;
    options.renewal_due = std::move(renewal_due);
    options.renewal_check = 50ms;
    options.target = "127.0.0.1:" + std::to_string(server_->port());
    options.credentials = [] { return grpc::InsecureChannelCredentials(); };
    options.node_info = [this] {
      v1::NodeInfo info;
      grpc::Status s = api_->GetNodeInfo(nullptr, nullptr, &info);
      PHX_CHECK(s.ok());
      return info;
    };
    options.node_name = "node-a";
    options.max_backoff = 1000ms;
    link_ = std::make_unique<SupervisorLink>(agent_.manager(), agent_.store(), agent_.images(),
                                             agent_.hub(), options);
    ASSERT_TRUE(link_->Start());
  }

  // The first Status goes out right after Hello, before the link has read Welcome: poll.
  bool WaitSessions(uint64_t n) {
    for (int i = 0; i < 1000; ++i) {
      if (link_->stats().sessions >= n) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  testing::AgentHarness agent_;
  std::unique_ptr<FakeServer> server_;
  std::unique_ptr<api::AgentServiceImpl> api_;
  std::unique_ptr<SupervisorLink> link_;
};

TEST_F(AgentSupervisorLinkTest, HelloCarriesNodeInfoAppliedVersionAndImages) {
  StartLink();
  FakeSupervisor& sup = server_->service();
  ASSERT_TRUE(sup.WaitFor([&] { return !sup.hellos_locked().empty(); }));
  v1::Hello hello = sup.hellos()[0];
  EXPECT_EQ(hello.node().name(), "node-a");
  EXPECT_EQ(hello.node().zone(), "zone-1");
  EXPECT_EQ(hello.node().labels().at("rack"), "r7");
  EXPECT_EQ(hello.node().capacity().memory_mib(), 8192u);
  EXPECT_EQ(hello.node().runtimes_size(), 3);
  EXPECT_EQ(hello.applied_version(), 0u);
  std::vector<std::string> images(hello.images().begin(), hello.images().end());
  EXPECT_THAT(images, Contains("demo:latest"));
  EXPECT_THAT(images, Contains(::testing::StartsWith("sha256:")));
  ASSERT_TRUE(sup.WaitForStatus([](const v1::Status&) { return true; }));
  EXPECT_TRUE(WaitSessions(1)) << "Welcome counts as a session";
}

TEST_F(AgentSupervisorLinkTest, AssignmentRunsGuestsAndStatusReportsOnlyManagedOnes) {
  GuestSpec local;
  local.name = "local";
  local.image = "demo";
  ASSERT_TRUE(agent_.manager().Run(local));
  StartLink();
  FakeSupervisor& sup = server_->service();
  sup.Assign(MakeAssignment(1, {"web-0-1", "web-1-1"}));
  ASSERT_TRUE(sup.WaitForStatus([](const v1::Status& s) {
    return s.applied_version() == 1 && HasGuestIn(s, "web-0-1", v1::GUEST_STATE_RUNNING) &&
           HasGuestIn(s, "web-1-1", v1::GUEST_STATE_RUNNING);
  })) << "the assignment's guests run and are reported";
  ASSERT_TRUE(sup.WaitForStatus([](const v1::Status& s) {
    if (s.applied_version() != 1 || s.guests_size() != 2) return false;
    for (const v1::Guest& g : s.guests()) {
      if (g.node() != "node-a" || g.spec().name() == "local") return false;
    }
    return s.allocated().memory_mib() >= 3 * 256;  // the local guest counts as allocated
  }));

  // A newer assignment drops one: it is deleted, the local guest stays.
  sup.Assign(MakeAssignment(2, {"web-1-1"}));
  ASSERT_TRUE(sup.WaitForStatus([](const v1::Status& s) {
    return s.applied_version() == 2 && s.guests_size() == 1 &&
           HasGuestIn(s, "web-1-1", v1::GUEST_STATE_RUNNING);
  }));
  EXPECT_FALSE(agent_.Exists("web-0-1"));
  EXPECT_TRUE(agent_.Exists("local"));
  EXPECT_EQ(link_->applied_version(), 2u);
}

TEST_F(AgentSupervisorLinkTest, ARefusedAssignedGuestIsReportedFailedWithWhy) {
  StartLink();
  FakeSupervisor& sup = server_->service();
  v1::Assignment a = MakeAssignment(1, {"web-0-1", "web-1-1"});
  a.mutable_guests(1)->mutable_spec()->set_memory_mib(8);  // a newer supervisor's rules, say
  sup.Assign(a);
  ASSERT_TRUE(sup.WaitForStatus([](const v1::Status& s) {
    if (s.applied_version() != 1 || !HasGuestIn(s, "web-0-1", v1::GUEST_STATE_RUNNING)) {
      return false;
    }
    for (const v1::Guest& g : s.guests()) {
      if (g.spec().name() == "web-1-1" && g.state() == v1::GUEST_STATE_FAILED &&
          g.node() == "node-a" &&
          g.last_exit_reason().find("refused by node node-a: not accepted: spec.memory_mib") == 0) {
        return true;
      }
    }
    return false;
  })) << "the refusal travels up with the field at fault";
}

TEST_F(AgentSupervisorLinkTest, ReconnectsAfterTheSupervisorRestartsAndGuestsKeepRunning) {
  StartLink();
  server_->service().Assign(MakeAssignment(3, {"web-0-1"}));
  ASSERT_TRUE(server_->service().WaitForStatus([](const v1::Status& s) {
    return s.applied_version() == 3 && HasGuestIn(s, "web-0-1", v1::GUEST_STATE_RUNNING);
  }));
  const int port = server_->port();
  const std::string id = agent_.manager().Get("web-0-1")->id;

  server_.reset();  // the supervisor goes away
  std::this_thread::sleep_for(1500ms);
  EXPECT_FALSE(link_->stats().connected);
  EXPECT_TRUE(agent_.WaitRunning("web-0-1")) << "static stability: guests keep running";

  server_ = std::make_unique<FakeServer>(port, 200);
  FakeSupervisor& sup = server_->service();
  ASSERT_TRUE(sup.WaitFor([&] { return !sup.hellos_locked().empty(); }))
      << "the agent redials the restarted supervisor";
  EXPECT_EQ(sup.hellos()[0].applied_version(), 3u);
  ASSERT_TRUE(sup.WaitForStatus([](const v1::Status& s) {
    return s.applied_version() == 3 && HasGuestIn(s, "web-0-1", v1::GUEST_STATE_RUNNING);
  }));
  EXPECT_EQ(agent_.manager().Get("web-0-1")->id, id) << "the same guest, never recreated";
  EXPECT_TRUE(WaitSessions(2));
}

// A certificate due for renewal ends the session, so that the next dial's credentials() renews it
// (enrollment.h); if it is still due, the link stays up until renewal_retry.
TEST_F(AgentSupervisorLinkTest, ACertificateDueForRenewalReconnectsOnce) {
  // Due from the first welcomed session on, for good (as when renewing keeps failing): one
  // reconnect, then none until renewal_retry has passed.
  StartLink([this] { return link_->stats().sessions >= 1; });
  EXPECT_TRUE(WaitSessions(2));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(link_->stats().sessions, 2u);
  EXPECT_TRUE(link_->stats().connected);
}

TEST_F(AgentSupervisorLinkTest, HeartbeatsFollowTheWelcomeInterval) {
  StartLink();
  FakeSupervisor& sup = server_->service();
  ASSERT_TRUE(sup.WaitForStatus([](const v1::Status&) { return true; }));
  auto from = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(3s);
  size_t n = sup.StatusesSince(from);
  // 200 ms interval over 3 s: about 15. Loose bounds: the cadence, not the scheduler, is tested.
  EXPECT_GE(n, 5u);
  EXPECT_LE(n, 40u);
}

TEST_F(AgentSupervisorLinkTest, StaleAssignmentFromTheSupervisorIsIgnored) {
  StartLink();
  FakeSupervisor& sup = server_->service();
  sup.Assign(MakeAssignment(5, {"a"}));
  ASSERT_TRUE(sup.WaitForStatus([](const v1::Status& s) { return s.applied_version() == 5; }));
  sup.Assign(MakeAssignment(4, {"b"}));
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(link_->applied_version(), 5u);
  EXPECT_FALSE(agent_.Exists("b"));
  EXPECT_TRUE(agent_.Exists("a"));
}

TEST_F(AgentSupervisorLinkTest, StoredAssignmentIsAppliedBeforeTheSupervisorAnswers) {
  server_.reset();  // no supervisor at all
  ASSERT_TRUE(agent_.store().SaveAssignment({9, MakeAssignment(9, {"kept"}).SerializeAsString()}));
  auto start = std::chrono::steady_clock::now();
  server_ = nullptr;
  SupervisorLink::Options options;
  options.target = "127.0.0.1:1";  // nothing listens on port 1
  options.credentials = [] { return grpc::InsecureChannelCredentials(); };
  options.node_info = [] { return v1::NodeInfo(); };
  link_ = std::make_unique<SupervisorLink>(agent_.manager(), agent_.store(), agent_.images(),
                                           agent_.hub(), options);
  ASSERT_TRUE(link_->Start());
  EXPECT_EQ(link_->applied_version(), 9u);
  EXPECT_TRUE(agent_.WaitRunning("kept"));
  link_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 15s) << "Stop is prompt while redialling";
  EXPECT_EQ(link_->stats().sessions, 0u);
}

}  // namespace
}  // namespace phoenix::agent::link
