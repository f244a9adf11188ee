#include "agent/frontdoor/haproxy_process.h"

#include <gtest/gtest.h>

namespace phoenix::agent::frontdoor {
namespace {

TEST(HaproxyProcessTest, ReadsTheMastersPidAndReloadCounters) {
  // As HAProxy 2.6.12 prints it.
  const char* show_proc =
      "#<PID>          <type>          <reloads>       <uptime>        <version>      \n"
      "11305           master          2 [failed: 1]   0d00h00m04s     2.6.12-1+deb12u4\n"
      "# workers\n"
      "11356           worker          1               0d00h00m01s     2.6.12-1+deb12u4\n"
      "# programs\n\n";
  EXPECT_EQ(ParseShowProcMaster(show_proc), (MasterLine{.pid = 11305, .reloads = 2, .failed = 1}));
  EXPECT_EQ(ParseShowProcMaster("11305 master 0 [failed: 0] 0d 2.6\n"),
            (MasterLine{.pid = 11305, .reloads = 0, .failed = 0}));
  EXPECT_FALSE(ParseShowProcMaster("# workers\n11356 worker 1 0d 2.6\n")) << "no master line";
  EXPECT_FALSE(ParseShowProcMaster("11305 master x [failed: 0] 0d\n"));
  EXPECT_FALSE(ParseShowProcMaster("11305 master 1 [failed: 0 0d\n"));
  EXPECT_FALSE(ParseShowProcMaster("0 master 1 [failed: 0] 0d\n")) << "no such pid";
  EXPECT_FALSE(ParseShowProcMaster(""));
}

}  // namespace
}  // namespace phoenix::agent::frontdoor
