// The monitor's thread kinds and the one hook every monitor thread runs first. The jail
// (jail/jail.h) installs a seccomp filter per kind through it, so each thread is confined before it
// touches guest-controlled data: a vCPU thread before its first KVM_RUN, a device backend thread
// before it reads a virtqueue. Library code and tests that set no hook run unconfined.
//
// Threading: SetThreadStartHook is called once, on the control thread, before Machine::Start (and
// before Restore, which may start device threads); RunThreadStartHook from any thread.
#pragma once

#include <atomic>

namespace phoenix::vmm {

enum class ThreadKind {
  kControl,  // the main thread: setup, control socket, snapshots
  kVcpu,     // one per vCPU: KVM_RUN and exit dispatch (port I/O, MMIO, the console)
  kDevice,   // device backends: virtio-net's tap <-> virtqueue copier
};

// A hook that fails must not return: a thread that cannot confine itself ends the monitor.
using ThreadStartHook = void (*)(ThreadKind);

inline std::atomic<ThreadStartHook>& ThreadStartHookSlot() {
  static std::atomic<ThreadStartHook> hook{nullptr};
  return hook;
}
inline void SetThreadStartHook(ThreadStartHook hook) { ThreadStartHookSlot().store(hook); }
inline void RunThreadStartHook(ThreadKind kind) {
  if (ThreadStartHook hook = ThreadStartHookSlot().load()) hook(kind);
}

}  // namespace phoenix::vmm
