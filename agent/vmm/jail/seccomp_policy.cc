// The seccomp filters of phoenix-vmm's thread kinds (jail.h). Allow lists, default deny:
//   every thread   memory (mmap/munmap/mprotect/madvise/brk), futex, its own signals and exit,
//                  clocks and sleeps, read/write/poll on the fds it already holds, KVM ioctls only
//                  (type 0xAE), thread creation (clone with
//                  CLONE_THREAD; clone3 answers ENOSYS so glibc falls back to clone, whose flags a
//                  filter can check), signals only to itself (tgkill on its own pid).
//   control        adds what setup, the control socket and snapshots need: open/stat/seek/sync of
//                  files (inside the jail's root only), memfd_create, accept4 and socket I/O on the
//                  listening control socket it already holds, eventfd2, fcntl.
//   vCPU, device   nothing more: no socket, no accept, no exec; open fails with EACCES.
// A vCPU thread inherits the control filter and stacks its own, so its effective set is the
// intersection; a device thread started by a vCPU thread gets all three.
#include <errno.h>
#include <linux/kvm.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "agent/vmm/jail/jail.h"

namespace phoenix::vmm {
namespace {

const char* KindName(ThreadKind kind) {
  switch (kind) {
    case ThreadKind::kControl:
      return "control";
    case ThreadKind::kVcpu:
      return "vcpu";
    case ThreadKind::kDevice:
      return "device";
  }
  return "unknown";
}

const std::vector<int>& EveryThreadSyscalls() {
  static const std::vector<int> calls = {
      SCMP_SYS(read),
      SCMP_SYS(write),
      SCMP_SYS(readv),
      SCMP_SYS(writev),
      SCMP_SYS(close),
      SCMP_SYS(poll),
      SCMP_SYS(ppoll),
      SCMP_SYS(futex),
      SCMP_SYS(mmap),
      SCMP_SYS(munmap),
      SCMP_SYS(mprotect),
      SCMP_SYS(mremap),
      SCMP_SYS(madvise),
      SCMP_SYS(brk),
      SCMP_SYS(rt_sigprocmask),
      SCMP_SYS(rt_sigreturn),
      SCMP_SYS(rt_sigaction),
      SCMP_SYS(sigaltstack),
      SCMP_SYS(restart_syscall),
      SCMP_SYS(exit),
      SCMP_SYS(exit_group),
      SCMP_SYS(getpid),
      SCMP_SYS(gettid),
      SCMP_SYS(clock_gettime),
      SCMP_SYS(clock_nanosleep),
      SCMP_SYS(nanosleep),
      SCMP_SYS(gettimeofday),
      SCMP_SYS(sched_yield),
      SCMP_SYS(sched_getaffinity),
      SCMP_SYS(set_robust_list),
      SCMP_SYS(rseq),
      SCMP_SYS(getrandom),
      // Only ever narrows: a thread stacks the filter of its kind on the one it inherited.
      SCMP_SYS(seccomp),
  };
  return calls;
}

const std::vector<int>& ControlSyscalls() {
  static const std::vector<int> calls = {
      SCMP_SYS(openat),       SCMP_SYS(newfstatat), SCMP_SYS(fstat),      SCMP_SYS(statx),
      SCMP_SYS(lseek),        SCMP_SYS(pread64),    SCMP_SYS(pwrite64),   SCMP_SYS(fsync),
      SCMP_SYS(fdatasync),    SCMP_SYS(ftruncate),  SCMP_SYS(fallocate),  SCMP_SYS(mkdirat),
      SCMP_SYS(mkdir),        SCMP_SYS(unlinkat),   SCMP_SYS(unlink),     SCMP_SYS(renameat),
      SCMP_SYS(renameat2),    SCMP_SYS(rename),     SCMP_SYS(getdents64), SCMP_SYS(fchmod),
      SCMP_SYS(memfd_create), SCMP_SYS(mincore),    SCMP_SYS(eventfd2),   SCMP_SYS(fcntl),
      SCMP_SYS(dup),          SCMP_SYS(accept4),    SCMP_SYS(accept),     SCMP_SYS(recvfrom),
      SCMP_SYS(sendto),       SCMP_SYS(recvmsg),    SCMP_SYS(sendmsg),    SCMP_SYS(shutdown),
      SCMP_SYS(getsockopt),   SCMP_SYS(prlimit64),  SCMP_SYS(getrusage),  SCMP_SYS(uname),
  };
  return calls;
}

// libseccomp returns -errno.
Status Check(int rc, const std::string& what) {
  if (rc < 0) return ErrnoValue("seccomp: " + what, -rc);
  return {};
}

Status AddCommonRules(scmp_filter_ctx ctx) {
  for (int nr : EveryThreadSyscalls())
    if (auto s = Check(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0), "allow " + std::to_string(nr));
        !s)
      return s;
  // KVM's ioctls all have type 0xAE (KVMIO); the monitor makes no other.
  if (auto s = Check(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                      SCMP_A1(SCMP_CMP_MASKED_EQ, 0xff00u, KVMIO << 8)),
                     "allow KVM ioctls");
      !s)
    return s;
  if (auto s = Check(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                                      SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)),
                     "allow clone of threads");
      !s)
    return s;
  if (auto s = Check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0),
                     "clone3 -> ENOSYS");
      !s)
    return s;
  const auto pid = static_cast<scmp_datum_t>(::getpid());
  return Check(
      seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, SCMP_A0(SCMP_CMP_EQ, pid)),
      "allow tgkill of its own threads");
}

void ReportForbiddenSyscall(int, siginfo_t* info, void*) {
  // Async-signal-safe only: format by hand, one write, then die by SIGSYS (the handler was
  // registered SA_RESETHAND | SA_NODEFER, so the disposition is the default again).
  char line[128] = "phoenix-vmm: seccomp: forbidden syscall ";
  size_t n = sizeof("phoenix-vmm: seccomp: forbidden syscall ") - 1;
  char digits[16];
  size_t d = 0;
  unsigned nr = static_cast<unsigned>(info->si_syscall);
  do {
    digits[d++] = static_cast<char>('0' + nr % 10);
    nr /= 10;
  } while (nr != 0 && d < sizeof digits);
  while (d > 0 && n < sizeof line - 40) line[n++] = digits[--d];
  static constexpr char kTail[] = " (scmp_sys_resolver names it); exiting\n";
  for (const char* c = kTail; *c && n < sizeof line; ++c) line[n++] = *c;
  (void)!::write(2, line, n);
  ::syscall(SYS_tgkill, ::getpid(), ::syscall(SYS_gettid), SIGSYS);
}

}  // namespace

Status InstallSigsysReporter() {
  struct sigaction action {};
  action.sa_sigaction = ReportForbiddenSyscall;
  action.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  if (::sigaction(SIGSYS, &action, nullptr) != 0) return Errno("sigaction SIGSYS");
  return {};
}

Status ConfineThread(ThreadKind kind) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
  if (!ctx) return Fail("seccomp_init failed");
  struct Release {
    scmp_filter_ctx ctx;
    ~Release() { seccomp_release(ctx); }
  } release{ctx};
  // no_new_privs is already set by the jail; libseccomp must not need to set it (a thread that is
  // not jailed would otherwise be confined without it).
  if (auto s = Check(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0), "clear CTL_NNP"); !s) return s;
  if (auto s = AddCommonRules(ctx); !s) return s;
  if (kind != ThreadKind::kControl) {
    // glibc itself opens files on a thread's behalf (malloc sizing its arenas reads
    // /sys/devices/system/cpu/online): refused, not fatal. The jail's root holds nothing to open.
    for (int nr : {SCMP_SYS(openat), SCMP_SYS(open)})
      if (auto s = Check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), nr, 0), "refuse open"); !s)
        return s;
  }
  if (kind == ThreadKind::kControl) {
    for (int nr : ControlSyscalls())
      if (auto s =
              Check(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0), "allow " + std::to_string(nr));
          !s)
        return s;
  }
  if (auto s = Check(seccomp_load(ctx), std::string("load the ") + KindName(kind) + " filter"); !s)
    return s;
  return {};
}

void ConfineNewThread(ThreadKind kind) {
  if (auto s = ConfineThread(kind); !s) {
    std::fprintf(stderr, "phoenix-vmm: cannot confine a %s thread: %s\n", KindName(kind),
                 s.error().message.c_str());
    std::_Exit(1);
  }
}

}  // namespace phoenix::vmm
