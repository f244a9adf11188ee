#include "agent/runtime/libvirt/qemu_exit.h"

#include <libvirt/libvirt.h>

namespace phoenix::agent::libvirt {

QemuExitVerdict JudgeQemuExit(const QemuExitFacts& facts) {
  const QemuExitVerdict leave{};
  const QemuExitVerdict died{
      .report_now = true,
      .crashed = true,
      .reason = facts.killed_by_us ? "qemu process killed (SIGKILL)" : "qemu process died"};
  // A clean power-off: libvirt reports STOPPED/SHUTDOWN itself.
  if (facts.shutdown_event_seen) return leave;
  // Busy with the domain and no SHUTDOWN announced: it is tearing down a dead QEMU.
  if (!facts.libvirt_answered) return died;
  // The domain is gone: libvirt removed it after its own STOPPED event.
  if (!facts.state) return leave;
  switch (facts.state->state) {
    case VIR_DOMAIN_NOSTATE:
    case VIR_DOMAIN_RUNNING:
    case VIR_DOMAIN_BLOCKED:
    case VIR_DOMAIN_PAUSED:
    case VIR_DOMAIN_PMSUSPENDED:
      return died;  // libvirt has not seen the death yet
    case VIR_DOMAIN_SHUTDOWN:
      return leave;  // a power-off in progress (its event is still on the way)
    case VIR_DOMAIN_CRASHED:
      return {.report_now = true, .crashed = true, .reason = "guest crashed"};
    case VIR_DOMAIN_SHUTOFF:
      switch (facts.state->reason) {
        case VIR_DOMAIN_SHUTOFF_CRASHED:
          return {.report_now = true, .crashed = true, .reason = "guest crashed"};
        case VIR_DOMAIN_SHUTOFF_FAILED:
        case VIR_DOMAIN_SHUTOFF_UNKNOWN:
        case VIR_DOMAIN_SHUTOFF_DAEMON:
          return died;
        case VIR_DOMAIN_SHUTOFF_DESTROYED:
          // Phoenix's own destroys never get here (the runtime skips instances it stops).
          return {
              .report_now = true, .crashed = true, .reason = "domain destroyed outside Phoenix"};
        default:
          // SHUTDOWN: clean. SAVED, MIGRATED, FROM_SNAPSHOT: not a stop of a Phoenix instance,
          // and libvirt's event handler ignores them too.
          return leave;
      }
    default:
      return died;
  }
}

}  // namespace phoenix::agent::libvirt
