// phoenix-guest-probe: runs inside a guest and tries what a hostile guest would, printing one line
// per attempt for the security tests to read from the guest's console log. Statically linked and
// libc-only, so it runs in any image root filesystem.
//
//   phoenix-guest-probe syscalls            each call the container seccomp profile must refuse
//   phoenix-guest-probe connect HOST:PORT... a TCP connection to each (IPv4), 2 s timeout
//
// Lines: "PHOENIX-PROBE syscall NAME ERRNO-NAME|ALLOWED" and
//        "PHOENIX-PROBE connect HOST:PORT open|refused|timeout|unreachable|ERRNO-NAME",
// then "PHOENIX-PROBE done". It then sleeps, so the guest stays up for the test to read the log.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace {

const char* ErrnoName(int err) {
  switch (err) {
    case EPERM:
      return "EPERM";
    case EACCES:
      return "EACCES";
    case ENOSYS:
      return "ENOSYS";
    case EINVAL:
      return "EINVAL";
    case ENOENT:
      return "ENOENT";
    case EFAULT:
      return "EFAULT";
    case ESRCH:
      return "ESRCH";
    case ECONNREFUSED:
      return "ECONNREFUSED";
    case ENETUNREACH:
      return "ENETUNREACH";
    case EHOSTUNREACH:
      return "EHOSTUNREACH";
    default:
      return "EOTHER";
  }
}

void Report(const char* name, long rc) {
  std::printf("PHOENIX-PROBE syscall %s %s\n", name, rc < 0 ? ErrnoName(errno) : "ALLOWED");
  std::fflush(stdout);
}

void ProbeSyscalls() {
  Report("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
  Report("add_key",
         syscall(SYS_add_key, "user", "phoenix-probe", "x", 1, KEY_SPEC_PROCESS_KEYRING));
  Report("unshare_user", syscall(SYS_unshare, CLONE_NEWUSER));
  Report("mount", syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, nullptr));
  bpf_attr attr{};
  attr.map_type = BPF_MAP_TYPE_ARRAY;
  attr.key_size = 4;
  attr.value_size = 4;
  attr.max_entries = 1;
  Report("bpf", syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr)));
  perf_event_attr pe{};
  pe.size = sizeof(pe);
  pe.type = PERF_TYPE_SOFTWARE;
  pe.config = PERF_COUNT_SW_CPU_CLOCK;
  Report("perf_event_open", syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0));
  Report("ptrace", syscall(SYS_ptrace, PTRACE_ATTACH, 1, 0, 0));
  Report("userfaultfd", syscall(SYS_userfaultfd, O_CLOEXEC));
}

const char* Connect(const std::string& target) {
  size_t colon = target.rfind(':');
  if (colon == std::string::npos) return "EINVAL";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(target.c_str() + colon + 1)));
  if (inet_pton(AF_INET, target.substr(0, colon).c_str(), &addr.sin_addr) != 1) return "EINVAL";
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoName(errno);
  const char* result = "open";
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EINPROGRESS) {
      result = errno == ECONNREFUSED ? "refused" : ErrnoName(errno);
    } else {
      pollfd p{fd, POLLOUT, 0};
      if (poll(&p, 1, 2000) <= 0) {
        result = "timeout";
      } else {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err == ECONNREFUSED)
          result = "refused";
        else if (err != 0)
          result = ErrnoName(err);
      }
    }
  }
  close(fd);
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: phoenix-guest-probe syscalls | connect HOST:PORT...\n");
    return 2;
  }
  const std::string mode = argv[1];
  if (mode == "syscalls") {
    ProbeSyscalls();
  } else if (mode == "connect") {
    for (int i = 2; i < argc; ++i) {
      std::printf("PHOENIX-PROBE connect %s %s\n", argv[i], Connect(argv[i]));
      std::fflush(stdout);
    }
  } else {
    std::fprintf(stderr, "phoenix-guest-probe: unknown mode %s\n", mode.c_str());
    return 2;
  }
  std::printf("PHOENIX-PROBE done\n");
  std::fflush(stdout);
  for (int i = 0; i < 600; ++i) sleep(1);  // bounded: the test deletes the guest long before
  return 0;
}
