#include "agent/runtime/libvirt/qemu_exit.h"

#include <gtest/gtest.h>
#include <libvirt/libvirt.h>

namespace phoenix::agent::libvirt {
namespace {

TEST(JudgeQemuExit, Table) {
  struct Case {
    const char* name;
    std::optional<DomainState> state;
    bool killed;
    bool report_now;
    bool crashed;
    const char* reason;
  } cases[] = {
      // libvirt has not noticed the death yet: a crash, now.
      {"running, killed by us", DomainState{VIR_DOMAIN_RUNNING, VIR_DOMAIN_RUNNING_BOOTED}, true,
       true, true, "qemu process killed (SIGKILL)"},
      {"running after restore", DomainState{VIR_DOMAIN_RUNNING, VIR_DOMAIN_RUNNING_RESTORED}, false,
       true, true, "qemu process died"},
      {"paused", DomainState{VIR_DOMAIN_PAUSED, VIR_DOMAIN_PAUSED_IOERROR}, false, true, true,
       "qemu process died"},
      {"blocked", DomainState{VIR_DOMAIN_BLOCKED, 0}, false, true, true, "qemu process died"},
      {"pmsuspended", DomainState{VIR_DOMAIN_PMSUSPENDED, 0}, false, true, true,
       "qemu process died"},
      {"nostate", DomainState{VIR_DOMAIN_NOSTATE, 0}, true, true, true,
       "qemu process killed (SIGKILL)"},
      // libvirt already knows it crashed or failed: report now, it is the same verdict.
      {"crashed", DomainState{VIR_DOMAIN_CRASHED, VIR_DOMAIN_CRASHED_PANICKED}, false, true, true,
       "guest crashed"},
      {"shutoff crashed", DomainState{VIR_DOMAIN_SHUTOFF, VIR_DOMAIN_SHUTOFF_CRASHED}, false, true,
       true, "guest crashed"},
      {"shutoff failed, killed", DomainState{VIR_DOMAIN_SHUTOFF, VIR_DOMAIN_SHUTOFF_FAILED}, true,
       true, true, "qemu process killed (SIGKILL)"},
      {"shutoff failed", DomainState{VIR_DOMAIN_SHUTOFF, VIR_DOMAIN_SHUTOFF_FAILED}, false, true,
       true, "qemu process died"},
      {"shutoff daemon", DomainState{VIR_DOMAIN_SHUTOFF, VIR_DOMAIN_SHUTOFF_DAEMON}, false, true,
       true, "qemu process died"},
      {"shutoff unknown", DomainState{VIR_DOMAIN_SHUTOFF, VIR_DOMAIN_SHUTOFF_UNKNOWN}, false, true,
       true, "qemu process died"},
      {"destroyed elsewhere", DomainState{VIR_DOMAIN_SHUTOFF, VIR_DOMAIN_SHUTOFF_DESTROYED}, false,
       true, true, "domain destroyed outside Phoenix"},
      // A clean power-off libvirt has seen: its STOPPED/SHUTDOWN event reports crashed=false.
      {"shutting down", DomainState{VIR_DOMAIN_SHUTDOWN, VIR_DOMAIN_SHUTDOWN_USER}, false, false,
       false, ""},
      {"shutoff by shutdown", DomainState{VIR_DOMAIN_SHUTOFF, VIR_DOMAIN_SHUTOFF_SHUTDOWN}, false,
       false, false, ""},
      // Not the end of a Phoenix instance.
      {"saved", DomainState{VIR_DOMAIN_SHUTOFF, VIR_DOMAIN_SHUTOFF_SAVED}, false, false, false, ""},
      {"migrated", DomainState{VIR_DOMAIN_SHUTOFF, VIR_DOMAIN_SHUTOFF_MIGRATED}, false, false,
       false, ""},
      {"from snapshot", DomainState{VIR_DOMAIN_SHUTOFF, VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT}, false,
       false, false, ""},
      // Already gone: libvirt processed the stop and sent its event.
      {"no domain", std::nullopt, true, false, false, ""},
  };
  for (const auto& c : cases) {
    QemuExitVerdict v = JudgeQemuExit(
        QemuExitFacts{.killed_by_us = c.killed, .libvirt_answered = true, .state = c.state});
    EXPECT_EQ(v.report_now, c.report_now) << c.name;
    if (!c.report_now) continue;
    EXPECT_EQ(v.crashed, c.crashed) << c.name;
    EXPECT_EQ(v.reason, c.reason) << c.name;
  }
}

TEST(JudgeQemuExit, WithoutAnAnswerTheShutdownEventDecides) {
  // libvirt blocks while it tears a dead QEMU's domain down: no SHUTDOWN announced means a crash.
  QemuExitVerdict v = JudgeQemuExit(QemuExitFacts{.killed_by_us = true});
  EXPECT_TRUE(v.report_now);
  EXPECT_TRUE(v.crashed);
  EXPECT_EQ(v.reason, "qemu process killed (SIGKILL)");
  v = JudgeQemuExit(QemuExitFacts{});
  EXPECT_TRUE(v.report_now);
  EXPECT_TRUE(v.crashed);
  EXPECT_EQ(v.reason, "qemu process died");
  // A power-off libvirt announced: its STOPPED/SHUTDOWN event reports it, whatever else we know.
  EXPECT_FALSE(JudgeQemuExit(QemuExitFacts{.shutdown_event_seen = true}).report_now);
  EXPECT_FALSE(JudgeQemuExit(QemuExitFacts{.shutdown_event_seen = true,
                                           .libvirt_answered = true,
                                           .state = DomainState{VIR_DOMAIN_RUNNING, 0}})
                   .report_now);
}

}  // namespace
}  // namespace phoenix::agent::libvirt
