#include "tools/phoenixctl/events_command.h"

#include <cstdlib>
#include <ctime>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tools/phoenixctl/testing/fake_agent.h"

namespace phoenix::ctl {
namespace {

using testing::FakeAgent;
using ::testing::HasSubstr;
using testing::RunCli;
using namespace std::chrono_literals;

TEST(EventLineTest, FixedColumns) {
  setenv("TZ", "UTC", 1);
  tzset();
  v1::Event event;
  event.set_sequence(42);
  event.mutable_time()->set_seconds(1714557600);  // 2024-05-01 10:00:00 UTC
  event.mutable_time()->set_nanos(123'000'000);
  event.set_type(v1::EVENT_TYPE_GUEST_CRASHED);
  event.set_guest("web");
  event.set_message("killed by signal 9");
  EXPECT_EQ(FormatEventLine(event),
            "    42  2024-05-01 10:00:00.123  crashed               web               killed by "
            "signal 9");
  EXPECT_EQ(EventHeaderLine(),
            "   SEQ  TIME                     TYPE                  GUEST             MESSAGE");
}

TEST(EventsCommandTest, PrintsTheBacklogAndExitsWhenQuiet) {
  FakeAgent agent;
  agent.Emit(v1::EVENT_TYPE_GUEST_CREATED, "web");
  agent.Emit(v1::EVENT_TYPE_IMAGE_ADDED, "", "demo:latest");
  agent.Emit(v1::EVENT_TYPE_GUEST_RUNNING, "web", "booted cold in 812 ms");
  auto result = RunCli(RunEventsCommand, agent.endpoint(), {"--guest", "web"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  auto watches = agent.watch_requests();
  ASSERT_EQ(watches.size(), 1u);
  EXPECT_EQ(watches[0].from_sequence(), 1u);
  EXPECT_EQ(watches[0].guest(), "web");
  EXPECT_THAT(result.out, HasSubstr("created"));
  EXPECT_THAT(result.out, HasSubstr("booted cold in 812 ms"));
  EXPECT_THAT(result.out, ::testing::Not(HasSubstr("image-added")));
}

TEST(EventsCommandTest, JsonIsOneObjectPerLine) {
  FakeAgent agent;
  agent.Emit(v1::EVENT_TYPE_GUEST_CREATED, "web");
  agent.Emit(v1::EVENT_TYPE_GUEST_HEALTHY, "web");
  auto result = RunCli(RunEventsCommand, agent.endpoint(), {"--from", "2", "-o", "json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(agent.watch_requests().at(0).from_sequence(), 2u);
  ASSERT_EQ(std::count(result.out.begin(), result.out.end(), '\n'), 1) << result.out;
  EXPECT_THAT(result.out, HasSubstr("\"type\":\"EVENT_TYPE_GUEST_HEALTHY\""));
}

TEST(EventsCommandTest, FollowFromZeroNeedsFollowAndStreamErrorsExit1) {
  FakeAgent agent;
  auto bad = RunCli(RunEventsCommand, agent.endpoint(), {"--from", "0"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("needs --follow"));
  agent.FailNext("WatchEvents", grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "no"));
  auto denied = RunCli(RunEventsCommand, agent.endpoint(), {"--follow"});
  EXPECT_EQ(denied.exit_code, 1);
  EXPECT_THAT(denied.err, HasSubstr("error: no (PERMISSION_DENIED)"));
}

TEST(EventFeedTest, NextHonoursItsDeadline) {
  FakeAgent agent;
  std::ostringstream out, err;
  Context ctx(out, err, "");
  ctx.options().endpoint = agent.endpoint();
  v1::WatchEventsRequest request;
  request.set_from_sequence(1);
  EventFeed feed(ctx, request);
  auto start = std::chrono::steady_clock::now();
  auto none = feed.Next(start + 100ms);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::kDeadlineExceeded);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
  agent.Emit(v1::EVENT_TYPE_GUEST_STOPPED, "web");
  auto event = feed.Next(std::chrono::steady_clock::now() + 5s);
  ASSERT_TRUE(event) << event.error().message;
  EXPECT_EQ(event->type(), v1::EVENT_TYPE_GUEST_STOPPED);
}

}  // namespace
}  // namespace phoenix::ctl
