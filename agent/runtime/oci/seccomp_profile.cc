#include "agent/runtime/oci/seccomp_profile.h"

#include <errno.h>
#include <sched.h>

namespace phoenix::agent::oci {

const std::vector<std::string_view>& DeniedSyscalls() {
  static const std::vector<std::string_view> kDenied = {
      // The kernel keyring: shared by every process of a user, and a steady source of bugs.
      "add_key", "keyctl", "request_key",
      // New namespaces: an unprivileged user namespace is root inside, with mount and more.
      "unshare", "setns",
      // Mounting, old and new API.
      "mount", "umount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick",
      "move_mount", "open_tree", "mount_setattr",
      // Kernel extension and replacement.
      "init_module", "finit_module", "delete_module", "create_module", "query_module",
      "get_kernel_syms", "kexec_load", "kexec_file_load",
      // BPF, perf events, io_uring, userfaultfd: large surfaces with a history of escapes.
      "bpf", "perf_event_open", "io_uring_setup", "io_uring_enter", "io_uring_register",
      "userfaultfd",
      // Other processes' memory and state.
      "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
      // File handles bypass path permission checks.
      "open_by_handle_at", "name_to_handle_at",
      // Host-wide state: clock, swap, reboot, accounting, quotas, I/O ports, kernel log.
      "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "stime", "swapon", "swapoff",
      "reboot", "acct", "quotactl", "quotactl_fd", "iopl", "ioperm", "syslog", "lookup_dcookie",
      "nfsservctl", "uselib", "ustat", "sysfs", "_sysctl", "vm86", "vm86old", "vhangup"};
  return kDenied;
}

Json DefaultSeccompProfile() {
  Json::Array denied;
  for (std::string_view name : DeniedSyscalls()) denied.emplace_back(std::string(name));
  Json::Array syscalls{
      Json::Object{{"names", std::move(denied)}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", EPERM}},
      // clone's first argument is its flags on x86_64: refuse a new user namespace.
      Json::Object{
          {"names", Json::Array{Json("clone")}},
          {"action", "SCMP_ACT_ERRNO"},
          {"errnoRet", EPERM},
          {"args", Json::Array{Json::Object{{"index", 0},
                                            {"value", static_cast<uint64_t>(CLONE_NEWUSER)},
                                            {"valueTwo", static_cast<uint64_t>(CLONE_NEWUSER)},
                                            {"op", "SCMP_CMP_MASKED_EQ"}}}}},
      // clone3 passes its flags in memory, out of the filter's sight: ENOSYS makes libc use clone.
      Json::Object{{"names", Json::Array{Json("clone3")}},
                   {"action", "SCMP_ACT_ERRNO"},
                   {"errnoRet", ENOSYS}},
  };
  return Json(Json::Object{
      {"defaultAction", "SCMP_ACT_ALLOW"},
      {"architectures",
       Json::Array{Json("SCMP_ARCH_X86_64"), Json("SCMP_ARCH_X86"), Json("SCMP_ARCH_X32")}},
      {"syscalls", std::move(syscalls)},
  });
}

}  // namespace phoenix::agent::oci
