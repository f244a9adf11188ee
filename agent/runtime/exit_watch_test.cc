#include "agent/runtime/exit_watch.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <string>
#include <vector>

namespace phoenix::agent {
namespace {

// A child that sleeps until killed, and a pidfd on it.
struct Child {
  pid_t pid = -1;
  int pidfd = -1;
  Child() {
    pid = ::fork();
    if (pid == 0) {
      ::pause();
      ::_exit(0);
    }
    pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  }
  ~Child() {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
};

TEST(ExitWatchTest, CallsOnExitOnceWhenTheProcessExits) {
  boost::asio::io_context io;
  ExitWatch watch(io);
  Child child;
  ASSERT_GT(child.pid, 0);
  ASSERT_GE(child.pidfd, 0);
  int calls = 0;
  watch.Watch("phx-a", child.pidfd, [&] { ++calls; });
  io.run_for(std::chrono::milliseconds(100));
  EXPECT_EQ(calls, 0);  // still running
  ::kill(child.pid, SIGKILL);
  for (int i = 0; i < 100 && calls == 0; ++i) io.run_for(std::chrono::milliseconds(50));
  EXPECT_EQ(calls, 1);
  io.run_for(std::chrono::milliseconds(100));
  EXPECT_EQ(calls, 1);
}

TEST(ExitWatchTest, NoCallAfterStop) {
  boost::asio::io_context io;
  ExitWatch watch(io);
  Child child;
  ASSERT_GE(child.pidfd, 0);
  int calls = 0;
  watch.Watch("phx-a", child.pidfd, [&] { ++calls; });
  io.run_for(std::chrono::milliseconds(50));  // registered
  watch.Stop();
  ::kill(child.pid, SIGKILL);
  io.run_for(std::chrono::milliseconds(300));
  EXPECT_EQ(calls, 0);
}

TEST(EventSinkTest, EmitsToTheLatestSinkOnly) {
  EventSink sink;
  sink.Emit(RuntimeEvent{.instance = "phx-a"});  // no sink yet: dropped
  std::vector<std::string> seen;
  sink.Set([&](const RuntimeEvent& e) { seen.push_back("1:" + e.instance); });
  sink.Emit(RuntimeEvent{.instance = "phx-a"});
  sink.Set([&](const RuntimeEvent& e) { seen.push_back("2:" + e.instance); });
  sink.Emit(RuntimeEvent{.instance = "phx-b"});
  EXPECT_EQ(seen, (std::vector<std::string>{"1:phx-a", "2:phx-b"}));
}

}  // namespace
}  // namespace phoenix::agent
