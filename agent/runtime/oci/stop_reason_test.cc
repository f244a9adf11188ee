#include "agent/runtime/oci/stop_reason.h"

#include <gtest/gtest.h>
#include <signal.h>

namespace phoenix::agent::oci {
namespace {

constexpr int Exited(int code) { return code << 8; }

TEST(StopReasonTest, OurStopIsNeverACrash) {
  auto r = ClassifyStop({.stopped_by_us = true, .wait_status = SIGKILL});
  EXPECT_FALSE(r.crashed);
  EXPECT_EQ(r.reason, "stopped by Phoenix (killed by signal 9 (SIGKILL))");
  EXPECT_FALSE(ClassifyStop({.stopped_by_us = true, .oom_kills = 1}).crashed);
}

TEST(StopReasonTest, OurKillIsACrash) {
  auto r = ClassifyStop({.killed_by_us = true, .wait_status = SIGKILL});
  EXPECT_TRUE(r.crashed);
  EXPECT_EQ(r.reason, "container init killed by Phoenix (SIGKILL)");
}

TEST(StopReasonTest, OomKillIsACrashEvenWithExitZero) {
  auto r = ClassifyStop({.oom_kills = 1, .wait_status = Exited(0), .memory_mib = 64});
  EXPECT_TRUE(r.crashed);
  EXPECT_NE(r.reason.find("out of memory"), std::string::npos);
  EXPECT_NE(r.reason.find("64 MiB"), std::string::npos);
  EXPECT_NE(r.reason.find("exited with status 0"), std::string::npos);
}

TEST(StopReasonTest, ExitStatusDecides) {
  EXPECT_FALSE(ClassifyStop({.oom_kills = 0, .wait_status = Exited(0)}).crashed);
  EXPECT_EQ(ClassifyStop({.wait_status = Exited(0)}).reason, "container init exited with status 0");
  EXPECT_TRUE(ClassifyStop({.wait_status = Exited(3)}).crashed);
  auto sig = ClassifyStop({.wait_status = SIGSEGV});
  EXPECT_TRUE(sig.crashed);
  EXPECT_EQ(sig.reason, "container init killed by signal 11 (SIGSEGV)");
}

TEST(StopReasonTest, UnknownStatusIsACrash) {
  auto r = ClassifyStop({.oom_kills = 0});
  EXPECT_TRUE(r.crashed);
  EXPECT_NE(r.reason.find("unknown"), std::string::npos);
}

}  // namespace
}  // namespace phoenix::agent::oci
