// The monitor's jail, the way Firecracker's jailer confines Firecracker, done by phoenix-vmm itself
// while it is still single-threaded and before any guest code runs:
//   EnterJail   joins the caller's cgroups, enters new mount, IPC and network namespaces, makes an
//               empty tmpfs the root (pivot_root) holding only the files the monitor needs
//               (read-only kernel/initrd/snapshot, the one directory it may write a snapshot into,
//               its own /dev/kvm node), then becomes an unprivileged uid/gid with no supplementary
//               groups, no capabilities and no_new_privs.
//   ConfineThread  loads the seccomp filter of a thread kind (thread_hook.h) into the calling
//               thread; threads it starts inherit it, and a thread may stack a narrower one.
// A syscall outside the filter ends the monitor with SIGSYS after one line on stderr naming the
// thread kind and the syscall number (scmp_sys_resolver N names it).
//
// Threading: EnterJail must run on the only thread of the process (checked). ConfineThread runs on
// the thread it confines; InstallSigsysReporter once, before the first ConfineThread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "agent/vmm/result.h"
#include "agent/vmm/thread_hook.h"

namespace phoenix::vmm {

struct JailSpec {
  uint32_t uid = 0;  // both non-zero: the monitor never keeps root
  uint32_t gid = 0;
  std::string root;                    // an existing empty directory; a tmpfs is mounted on it
  std::vector<std::string> read_only;  // files or directories, visible read-only at the same path
  std::vector<std::string> writable;   // directories, visible read-write, chowned to uid:gid
  std::vector<std::string> devices;    // character devices: a node of the monitor's own, 0600
                                       // (e.g. /dev/kvm)
  std::vector<std::string> cgroups;    // cgroup directories to join before anything else
};

// Checks a spec without touching the system: uid/gid, absolute paths, no "..".
Status CheckJailSpec(const JailSpec& spec);

// Root and single-threaded required. On success the process is jailed for good; on failure it may
// be half-way (the caller exits).
Status EnterJail(const JailSpec& spec);

// The seccomp filter of `kind` for the calling thread.
Status ConfineThread(ThreadKind kind);

// SIGSYS handler that reports the forbidden syscall, then lets SIGSYS kill the process.
Status InstallSigsysReporter();

// ThreadStartHook that confines each new thread by its kind, or ends the process if it cannot.
void ConfineNewThread(ThreadKind kind);

}  // namespace phoenix::vmm
