#include "agent/frontdoor/haproxy_process.h"

#include <gtest/gtest.h>

namespace phoenix::agent::frontdoor {
namespace {

TEST(HaproxyProcessTest, ReadsTheMastersReloadCounters) {
  // As HAProxy 2.6.12 prints it.
  const char* show_proc =
      "#<PID>          <type>          <reloads>       <uptime>        <version>      \n"
      "11305           master          2 [failed: 1]   0d00h00m04s     2.6.12-1+deb12u4\n"
      "# workers\n"
      "11356           worker          1               0d00h00m01s     2.6.12-1+deb12u4\n"
      "# programs\n\n";
  EXPECT_EQ(ParseMasterReloads(show_proc), (std::pair{2, 1}));
  EXPECT_EQ(ParseMasterReloads("11305 master 0 [failed: 0] 0d 2.6\n"), (std::pair{0, 0}));
  EXPECT_FALSE(ParseMasterReloads("# workers\n11356 worker 1 0d 2.6\n")) << "no master line";
  EXPECT_FALSE(ParseMasterReloads("11305 master x [failed: 0] 0d\n"));
  EXPECT_FALSE(ParseMasterReloads("11305 master 1 [failed: 0 0d\n"));
  EXPECT_FALSE(ParseMasterReloads(""));
  EXPECT_EQ(ParseMasterPid(show_proc), 11305);
  EXPECT_FALSE(ParseMasterPid("# workers\n11356 worker 1 0d 2.6\n"));
}

}  // namespace
}  // namespace phoenix::agent::frontdoor
