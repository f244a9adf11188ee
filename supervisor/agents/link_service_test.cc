#include "supervisor/agents/link_service.h"

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

namespace phoenix::supervisor::agents {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

// Records every call; optionally answers AgentConnected with assignments, as the controller does.
class FakeHandler : public AgentLinkHandler {
 public:
  struct Calls {
    std::vector<std::pair<AgentSession*, AgentHello>> connected;
    std::vector<std::pair<AgentSession*, AgentReport>> reported;
    std::vector<AgentSession*> gone;
  };

  void AgentConnected(AgentSession* session, AgentHello hello) override {
    std::lock_guard lock(mu_);
    for (uint64_t version : versions_on_connect_) session->SendAssignment({version, {}});
    calls_.connected.emplace_back(session, std::move(hello));
    cv_.notify_all();
  }
  void AgentReported(AgentSession* session, AgentReport report) override {
    std::lock_guard lock(mu_);
    calls_.reported.emplace_back(session, std::move(report));
    cv_.notify_all();
  }
  void AgentGone(AgentSession* session) override {
    std::lock_guard lock(mu_);
    calls_.gone.push_back(session);
    cv_.notify_all();
  }
  std::chrono::milliseconds HeartbeatInterval() const override { return 250ms; }

  void SetVersionsOnConnect(std::vector<uint64_t> versions) {
    std::lock_guard lock(mu_);
    versions_on_connect_ = std::move(versions);
  }
  bool WaitFor(const std::function<bool(const Calls&)>& done) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 10s, [&] { return done(calls_); });
  }
  Calls Snapshot() {
    std::lock_guard lock(mu_);
    return calls_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  Calls calls_;
  std::vector<uint64_t> versions_on_connect_;
};

using Stream = grpc::ClientReaderWriter<v1::AgentMessage, v1::SupervisorMessage>;

v1::AgentMessage Hello(const std::string& name) {
  v1::AgentMessage message;
  v1::NodeInfo* node = message.mutable_hello()->mutable_node();
  node->set_name(name);
  node->set_zone("zone-a");
  (*node->mutable_labels())["rack"] = "r1";
  node->mutable_capacity()->set_vcpus(8);
  node->mutable_capacity()->set_memory_mib(16384);
  node->set_version("0.1.0");
  auto* runtime = node->add_runtimes();
  runtime->set_runtime(v1::RUNTIME_CONTAINER);
  runtime->set_available(true);
  message.mutable_hello()->set_applied_version(4);
  message.mutable_hello()->add_images("demo:latest");
  return message;
}

class LinkServiceTest : public ::testing::Test {
 protected:
  void Start(LinkSecurity security) {
    service_ = std::make_unique<AgentLinkService>(handler_, security, "test-supervisor");
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_TRUE(server_ != nullptr);
    ASSERT_GT(port, 0);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::AgentLink::NewStub(channel_);
  }
  void SetUp() override { Start(LinkSecurity::kInsecure); }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }

  std::unique_ptr<Stream> Open(grpc::ClientContext& context) {
    context.set_deadline(std::chrono::system_clock::now() + 20s);
    return stub_->Connect(&context);
  }

  // Hello, then the Welcome; returns the session the handler saw.
  AgentSession* Connect(Stream& stream, const std::string& name) {
    EXPECT_TRUE(stream.Write(Hello(name)));
    v1::SupervisorMessage welcome;
    EXPECT_TRUE(stream.Read(&welcome));
    EXPECT_TRUE(welcome.has_welcome()) << welcome.DebugString();
    EXPECT_TRUE(handler_.WaitFor([](const auto& calls) { return !calls.connected.empty(); }));
    return handler_.Snapshot().connected.back().first;
  }

  FakeHandler handler_;
  std::unique_ptr<AgentLinkService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AgentLink::Stub> stub_;
};

TEST_F(LinkServiceTest, HelloIsWelcomedAndReachesTheHandler) {
  grpc::ClientContext context;
  auto stream = Open(context);
  ASSERT_TRUE(stream->Write(Hello("n1")));
  v1::SupervisorMessage welcome;
  ASSERT_TRUE(stream->Read(&welcome));
  ASSERT_TRUE(welcome.has_welcome());
  EXPECT_EQ(welcome.welcome().heartbeat_interval_ms(), 250u);
  EXPECT_EQ(welcome.welcome().supervisor_version(), "test-supervisor");

  ASSERT_TRUE(handler_.WaitFor([](const auto& calls) { return !calls.connected.empty(); }));
  FakeHandler::Calls calls = handler_.Snapshot();
  ASSERT_EQ(calls.connected.size(), 1u);
  const AgentHello& hello = calls.connected[0].second;
  EXPECT_EQ(hello.node.name, "n1");
  EXPECT_EQ(hello.node.zone, "zone-a");
  EXPECT_EQ(hello.node.labels.at("rack"), "r1");
  EXPECT_EQ(hello.node.capacity, (Resources{8, 16384}));
  EXPECT_EQ(hello.node.runtimes, std::set{RuntimeKind::kContainer});
  EXPECT_EQ(hello.applied_version, 4u);
  EXPECT_EQ(hello.images, std::set<std::string>{"demo:latest"});
  EXPECT_EQ(hello.agent_version, "0.1.0");
  EXPECT_EQ(service_->OpenStreams(), 1u);
}

TEST_F(LinkServiceTest, StatusIsReported) {
  grpc::ClientContext context;
  auto stream = Open(context);
  AgentSession* session = Connect(*stream, "n1");

  v1::AgentMessage status;
  status.mutable_status()->set_applied_version(6);
  v1::Guest* guest = status.mutable_status()->add_guests();
  guest->mutable_spec()->set_name("web-0-1");
  guest->set_state(v1::GUEST_STATE_RUNNING);
  guest->set_healthy(true);
  auto* endpoint = guest->add_endpoints();
  endpoint->set_host_ip("127.0.0.1");
  endpoint->set_host_port(40000);
  endpoint->set_guest_port(80);
  ASSERT_TRUE(stream->Write(status));
  status.mutable_status()->set_applied_version(7);
  ASSERT_TRUE(stream->Write(status));

  ASSERT_TRUE(handler_.WaitFor([](const auto& calls) { return calls.reported.size() == 2; }));
  FakeHandler::Calls calls = handler_.Snapshot();
  EXPECT_EQ(calls.reported[0].first, session);
  EXPECT_EQ(calls.reported[0].second.applied_version, 6u);
  EXPECT_EQ(calls.reported[1].second.applied_version, 7u);
  ASSERT_EQ(calls.reported[0].second.guests.size(), 1u);
  const ReportedGuest& reported = calls.reported[0].second.guests[0];
  EXPECT_EQ(reported.name, "web-0-1");
  EXPECT_EQ(reported.observed.guest_state, GuestState::kRunning);
  EXPECT_TRUE(reported.observed.healthy);
  EXPECT_EQ(reported.observed.endpoints, std::vector<std::string>{"127.0.0.1:40000->80"});
}

TEST_F(LinkServiceTest, AssignmentsQueuedBehindTheWelcomeCoalesceToTheNewest) {
  // Sent from inside AgentConnected, while the Welcome is still queued: only v3 may follow it.
  handler_.SetVersionsOnConnect({1, 2, 3});
  grpc::ClientContext context;
  auto stream = Open(context);
  ASSERT_TRUE(stream->Write(Hello("n1")));
  v1::SupervisorMessage message;
  ASSERT_TRUE(stream->Read(&message));
  ASSERT_TRUE(message.has_welcome()) << message.DebugString();
  ASSERT_TRUE(stream->Read(&message));
  ASSERT_TRUE(message.has_assignment()) << message.DebugString();
  EXPECT_EQ(message.assignment().version(), 3u);

  // Nothing else was sent: a fresh assignment is the next message.
  AgentSession* session = handler_.Snapshot().connected.at(0).first;
  session->SendAssignment({4, {}});
  ASSERT_TRUE(stream->Read(&message));
  EXPECT_EQ(message.assignment().version(), 4u);
}

TEST_F(LinkServiceTest, AssignmentsSentQuicklyArriveInOrderEndingWithTheLast) {
  grpc::ClientContext context;
  auto stream = Open(context);
  AgentSession* session = Connect(*stream, "n1");

  v1::GuestSpec spec;
  spec.set_image("demo:latest");
  std::thread sender([&] {
    for (uint64_t version = 1; version <= 3; ++version) {
      session->SendAssignment(
          {version,
           {{"web", 0, version, "web-0-" + std::to_string(version), spec.SerializeAsString()}}});
    }
  });
  std::vector<uint64_t> seen;
  v1::SupervisorMessage message;
  while (seen.empty() || seen.back() < 3) {
    ASSERT_TRUE(stream->Read(&message));
    ASSERT_TRUE(message.has_assignment());
    seen.push_back(message.assignment().version());
    ASSERT_EQ(message.assignment().guests_size(), 1);
    EXPECT_EQ(message.assignment().guests(0).spec().name(),
              "web-0-" + std::to_string(message.assignment().version()));
  }
  sender.join();
  EXPECT_LE(seen.size(), 3u);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(std::adjacent_find(seen.begin(), seen.end()), seen.end());
  EXPECT_EQ(seen.back(), 3u);
}

TEST_F(LinkServiceTest, CloseEndsTheStreamWithItsStatus) {
  grpc::ClientContext context;
  auto stream = Open(context);
  AgentSession* session = Connect(*stream, "n1");
  session->Close(Error{ErrorCode::kAborted, "replaced by a newer session of node n1", ""});

  v1::SupervisorMessage message;
  EXPECT_FALSE(stream->Read(&message));
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(status.error_message(), HasSubstr("replaced by a newer session"));
  ASSERT_TRUE(handler_.WaitFor([](const auto& calls) { return calls.gone.size() == 1; }));
  EXPECT_EQ(handler_.Snapshot().gone[0], session);
}

TEST_F(LinkServiceTest, ClientCancelIsGoneExactlyOnce) {
  auto context = std::make_unique<grpc::ClientContext>();
  auto stream = Open(*context);
  AgentSession* session = Connect(*stream, "n1");
  context->TryCancel();
  ASSERT_TRUE(handler_.WaitFor([](const auto& calls) { return !calls.gone.empty(); }));
  // AgentGone runs in OnDone; nothing may follow it, and a second one would show by now.
  for (int i = 0; i < 100 && service_->OpenStreams() != 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(service_->OpenStreams(), 0u);
  std::this_thread::sleep_for(100ms);
  FakeHandler::Calls calls = handler_.Snapshot();
  ASSERT_EQ(calls.gone.size(), 1u);
  EXPECT_EQ(calls.gone[0], session);
}

TEST_F(LinkServiceTest, ClientHalfCloseFinishesOkAndIsGoneOnce) {
  grpc::ClientContext context;
  auto stream = Open(context);
  Connect(*stream, "n1");
  ASSERT_TRUE(stream->WritesDone());
  v1::SupervisorMessage message;
  EXPECT_FALSE(stream->Read(&message));
  EXPECT_TRUE(stream->Finish().ok());
  ASSERT_TRUE(handler_.WaitFor([](const auto& calls) { return !calls.gone.empty(); }));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(handler_.Snapshot().gone.size(), 1u);
}

TEST_F(LinkServiceTest, StatusBeforeHelloIsRefused) {
  grpc::ClientContext context;
  auto stream = Open(context);
  v1::AgentMessage status;
  status.mutable_status()->set_applied_version(1);
  ASSERT_TRUE(stream->Write(status));
  v1::SupervisorMessage message;
  EXPECT_FALSE(stream->Read(&message));
  grpc::Status result = stream->Finish();
  EXPECT_EQ(result.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(result.error_message(), HasSubstr("first message"));
  for (int i = 0; i < 100 && service_->OpenStreams() != 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(service_->OpenStreams(), 0u);
  FakeHandler::Calls calls = handler_.Snapshot();
  EXPECT_TRUE(calls.connected.empty());
  EXPECT_TRUE(calls.gone.empty());  // never connected, so never gone
}

TEST_F(LinkServiceTest, HelloWithoutNameIsRefused) {
  grpc::ClientContext context;
  auto stream = Open(context);
  ASSERT_TRUE(stream->Write(Hello("")));
  v1::SupervisorMessage message;
  EXPECT_FALSE(stream->Read(&message));
  grpc::Status result = stream->Finish();
  EXPECT_EQ(result.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(result.error_message(), HasSubstr("hello.node.name"));
}

TEST_F(LinkServiceTest, SecondHelloIsRefusedAndTheSessionGoes) {
  grpc::ClientContext context;
  auto stream = Open(context);
  Connect(*stream, "n1");
  ASSERT_TRUE(stream->Write(Hello("n1")));
  v1::SupervisorMessage message;
  EXPECT_FALSE(stream->Read(&message));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(handler_.WaitFor([](const auto& calls) { return calls.gone.size() == 1; }));
}

TEST_F(LinkServiceTest, ManyStreamsAtOnce) {
  constexpr int kAgents = 50;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<Stream>> streams;
  for (int i = 0; i < kAgents; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    streams.push_back(Open(*contexts.back()));
    ASSERT_TRUE(streams.back()->Write(Hello("n" + std::to_string(i))));
  }
  for (auto& stream : streams) {
    v1::SupervisorMessage welcome;
    ASSERT_TRUE(stream->Read(&welcome));
  }
  ASSERT_TRUE(
      handler_.WaitFor([&](const auto& calls) { return calls.connected.size() == kAgents; }));
  EXPECT_EQ(service_->OpenStreams(), size_t{kAgents});
  for (auto& context : contexts) context->TryCancel();
  ASSERT_TRUE(handler_.WaitFor([&](const auto& calls) { return calls.gone.size() == kAgents; }));
}

class LinkServiceMutualTlsTest : public LinkServiceTest {
 protected:
  void SetUp() override { Start(LinkSecurity::kMutualTls); }
};

TEST_F(LinkServiceMutualTlsTest, StreamWithoutClientCertificateIsUnauthenticated) {
  grpc::ClientContext context;
  auto stream = Open(context);
  stream->Write(Hello("n1"));  // may fail: the server can finish before reading
  v1::SupervisorMessage message;
  EXPECT_FALSE(stream->Read(&message));
  grpc::Status result = stream->Finish();
  EXPECT_EQ(result.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(result.error_message(), HasSubstr("client certificate"));
  EXPECT_TRUE(handler_.Snapshot().connected.empty());
}

}  // namespace
}  // namespace phoenix::supervisor::agents
