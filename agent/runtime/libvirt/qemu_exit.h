// QEMU exit verdict: what the exit of a QEMU process (seen at once through its pidfd, see
// pid_watch.h) means, given what libvirt has told us about the domain. Pure: no I/O.
//
// libvirt runs QEMU with -no-shutdown, so a clean guest power-off does not end QEMU by itself:
// QEMU reports SHUTDOWN, libvirt records it (state SHUTDOWN), broadcasts its SHUTDOWN lifecycle
// event and only then terminates QEMU. A QEMU that is gone while libvirt has neither said SHUTDOWN
// nor shows the domain shutting down died behind libvirt's back: a crash, reported at once instead
// of after the 1.2-2 s libvirt needs to finish its own teardown. When libvirt already knows the
// domain shut down, its own lifecycle event reports the stop.
//
// Measured on the development host: right after QEMU exits, libvirt is busy tearing the domain
// down (it waits for the zombie to be reaped, polling every 200 ms) and every call touching that
// domain (lookup, virDomainGetState) blocks until it is done. So the runtime waits only briefly for
// virDomainGetState; without an answer the verdict rests on the SHUTDOWN event alone.
#pragma once

#include <optional>
#include <string>

namespace phoenix::agent::libvirt {

// virDomainGetState's state and reason (virDomainState, virDomain*Reason).
struct DomainState {
  int state = 0;
  int reason = 0;
};

struct QemuExitFacts {
  bool shutdown_event_seen = false;  // libvirt's SHUTDOWN lifecycle event arrived for the domain
  bool killed_by_us = false;         // SIGKILLed through Runtime::Kill (chaos drill)
  bool libvirt_answered = false;     // virDomainGetState answered within the wait
  std::optional<DomainState> state;  // when answered; nullopt: the domain no longer exists
};

struct QemuExitVerdict {
  bool report_now = false;  // false: libvirt's lifecycle event will report this stop
  bool crashed = false;     // meaningful when report_now
  std::string reason;       // human words, when report_now
};

[[nodiscard]] QemuExitVerdict JudgeQemuExit(const QemuExitFacts& facts);

}  // namespace phoenix::agent::libvirt
