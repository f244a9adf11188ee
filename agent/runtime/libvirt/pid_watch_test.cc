#include "agent/runtime/libvirt/pid_watch.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <chrono>
#include <filesystem>

namespace phoenix::agent::libvirt {
namespace {

using namespace std::chrono_literals;

size_t OpenFds() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

// Open fds once `io` has its reactor (epoll, eventfd, timerfd: created on first use, kept).
size_t OpenFdsWithReactor(boost::asio::io_context& io) {
  boost::asio::posix::stream_descriptor unused(io);
  return OpenFds();
}

// A child that waits for a signal; reaped by the destructor if the test did not.
struct Child {
  pid_t pid = -1;
  Child() {
    pid = ::fork();
    PHX_CHECK(pid >= 0);
    if (pid == 0) {
      for (;;) ::pause();
    }
  }
  void Kill() { PHX_CHECK(::kill(pid, SIGKILL) == 0); }
  void Reap() {
    if (pid > 0) PHX_CHECK(::waitpid(pid, nullptr, 0) == pid);
    pid = -1;
  }
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      Reap();
    }
  }
};

TEST(PidWatch, FiresOnceWhenTheProcessExits) {
  boost::asio::io_context io;
  const size_t fds_before = OpenFdsWithReactor(io);
  Child child;
  auto watch = PidWatch::Open(io, child.pid);
  ASSERT_TRUE(watch.has_value()) << watch.error().message;
  EXPECT_EQ(OpenFds(), fds_before + 1);
  int calls = 0;
  (*watch)->Arm([&] { ++calls; });
  io.run_for(100ms);
  EXPECT_EQ(calls, 0) << "fired while the process runs";
  io.restart();

  const auto killed = std::chrono::steady_clock::now();
  child.Kill();
  // The watch sees the exit itself, before anyone reaps the process.
  for (int i = 0; i < 100 && calls == 0; ++i) io.run_one_for(50ms);
  const auto noticed = std::chrono::steady_clock::now() - killed;
  EXPECT_EQ(calls, 1);
  EXPECT_LT(noticed, 1s);
  io.restart();
  io.run_for(50ms);
  EXPECT_EQ(calls, 1) << "fired twice";
  EXPECT_EQ(OpenFds(), fds_before) << "the pidfd is closed once it fired";
  watch->reset();
  child.Reap();
}

TEST(PidWatch, AlreadyExitedProcessFiresAtOnce) {
  boost::asio::io_context io;
  Child child;
  child.Kill();
  ::usleep(50000);  // a zombie: exited, not reaped
  auto watch = PidWatch::Open(io, child.pid);
  ASSERT_TRUE(watch.has_value()) << watch.error().message;
  int calls = 0;
  (*watch)->Arm([&] { ++calls; });
  io.run_one_for(1s);
  EXPECT_EQ(calls, 1);
}

TEST(PidWatch, CloseCancelsAndReleasesTheFd) {
  boost::asio::io_context io;
  const size_t fds_before = OpenFdsWithReactor(io);
  Child child;
  int calls = 0;
  {
    auto watch = PidWatch::Open(io, child.pid);
    ASSERT_TRUE(watch.has_value()) << watch.error().message;
    (*watch)->Arm([&] { ++calls; });
    io.run_for(20ms);
    (*watch)->Close();
    EXPECT_EQ(OpenFds(), fds_before);
    (*watch)->Close();  // idempotent
  }
  child.Kill();
  io.restart();
  io.run_for(200ms);
  EXPECT_EQ(calls, 0) << "fired after Close";

  // Destroying an armed watch closes it too.
  Child other;
  {
    auto watch = PidWatch::Open(io, other.pid);
    ASSERT_TRUE(watch.has_value());
    (*watch)->Arm([&] { ++calls; });
  }
  EXPECT_EQ(OpenFds(), fds_before);
  other.Kill();
  io.restart();
  io.run_for(200ms);
  EXPECT_EQ(calls, 0);
}

TEST(PidWatch, CloseAfterTheExitWasQueuedSuppressesTheCallback) {
  boost::asio::io_context io;
  Child child;
  auto watch = PidWatch::Open(io, child.pid);
  ASSERT_TRUE(watch.has_value());
  int calls = 0;
  (*watch)->Arm([&] { ++calls; });
  child.Kill();
  ::usleep(100000);
  (*watch)->Close();  // the readiness may already be known to the reactor
  io.run_for(200ms);
  EXPECT_EQ(calls, 0);
}

TEST(PidWatch, UnknownPid) {
  boost::asio::io_context io;
  Child child;
  const pid_t pid = child.pid;
  child.Kill();
  child.Reap();
  auto watch = PidWatch::Open(io, pid);
  // Pids are handed out in increasing order: this one is not reused within the test.
  ASSERT_FALSE(watch.has_value());
  EXPECT_EQ(watch.error().code, ErrorCode::kNotFound) << watch.error().message;
  EXPECT_EQ(PidWatch::Open(io, 0).error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace phoenix::agent::libvirt
