// The seccomp filter every Phoenix container runs under (OCI linux.seccomp, applied by crun or runc
// before the container's first instruction).
//
// Containers already run as an unprivileged user with no capabilities and noNewPrivileges, so the
// kernel refuses most privileged calls on its own. What that leaves open is the attack surface an
// unprivileged process still reaches: the kernel keyring (keyctl, add_key, request_key), new user
// namespaces (unshare, clone with CLONE_NEWUSER, setns) and with them "root" inside a namespace
// that can mount filesystems, BPF and perf events, io_uring, userfaultfd, ptrace and cross-process
// memory access, and the new mount API. These are the classes Docker's default profile denies.
//
// Shape: allow by default and deny a list with EPERM (ENOSYS for clone3, so libc falls back to
// clone, whose flags the filter can see). An allow-list would also stop system calls newer than
// the profile, but would break any workload using one it does not name; the deny-list keeps every
// ordinary program working and is kept in this one place. Rules cover the x86_64, x86 and x32
// ABIs, so a 32-bit entry into the kernel cannot step around them.
//
// Thread-safety: pure.
#pragma once

#include <string_view>
#include <vector>

#include "agent/runtime/oci/json.h"

namespace phoenix::agent::oci {

// linux.seccomp for config.json.
Json DefaultSeccompProfile();

// The system calls the profile refuses outright with EPERM (besides clone with CLONE_NEWUSER and
// clone3), for docs and tests.
const std::vector<std::string_view>& DeniedSyscalls();

}  // namespace phoenix::agent::oci
