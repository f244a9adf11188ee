#include "agent/runtime/oci/netns.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace phoenix::agent::oci {

namespace fs = std::filesystem;

namespace {

// Runs in a fresh thread: leaves the caller's namespaces alone. The new namespace lives on through
// the bind mount after the thread exits.
Result<void> UnshareAndBind(const fs::path& file) {
  if (::unshare(CLONE_NEWNET) != 0) return ErrnoError("unshare(CLONE_NEWNET)");
  int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return ErrnoError("socket in the new network namespace");
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  int rc = ::ioctl(sock, SIOCGIFFLAGS, &ifr);
  if (rc == 0) {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
    rc = ::ioctl(sock, SIOCSIFFLAGS, &ifr);
  }
  int err = errno;
  ::close(sock);
  if (rc != 0) return ErrnoError("bringing lo up in the new network namespace", err);
  // Any port for the guest's unprivileged user, set here as root: a container in its own user
  // namespace cannot write sysctls of a network namespace it does not own. The namespace holds
  // nothing but that container, so this grants nothing beyond it.
  int sysctl = ::open("/proc/sys/net/ipv4/ip_unprivileged_port_start", O_WRONLY | O_CLOEXEC);
  if (sysctl < 0) return ErrnoError("opening ip_unprivileged_port_start in the new namespace");
  rc = static_cast<int>(::write(sysctl, "0\n", 2));
  err = errno;
  ::close(sysctl);
  if (rc != 2) return ErrnoError("setting ip_unprivileged_port_start in the new namespace", err);
  if (::mount("/proc/thread-self/ns/net", file.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    return ErrnoError("bind-mounting the network namespace on " + file.string());
  }
  return {};
}

std::string Unescape(const std::string& s) {  // mountinfo escapes ' ', '\t', '\n', '\\' as \ooo
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool ok = true;
      for (size_t k = 1; k <= 3; ++k) {
        char c = s[i + k];
        if (c < '0' || c > '7') ok = false;
        v = v * 8 + (c - '0');
      }
      if (ok) {
        out += static_cast<char>(v);
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

}  // namespace

Result<void> CreateNetns(const fs::path& file) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
  if (fd < 0) {
    if (errno == EEXIST) return AlreadyExists("network namespace file " + file.string());
    return ErrnoError("creating " + file.string());
  }
  ::close(fd);
  Result<void> result;
  std::thread helper([&] { result = UnshareAndBind(file); });
  helper.join();
  if (!result) {
    ::umount2(file.c_str(), MNT_DETACH);
    ::unlink(file.c_str());
  }
  return result;
}

Result<void> RemoveNetns(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(file, ec))) return {};
  // A namespace may be bound more than once if an earlier removal was interrupted: unmount all.
  for (int i = 0; i < 8 && IsMountPoint(file); ++i) {
    if (::umount2(file.c_str(), MNT_DETACH) != 0 && errno != EINVAL) {
      return ErrnoError("unmounting " + file.string());
    }
  }
  if (::unlink(file.c_str()) != 0 && errno != ENOENT)
    return ErrnoError("removing " + file.string());
  return {};
}

bool IsMountPoint(const fs::path& path) {
  std::ifstream f("/proc/self/mountinfo");
  const std::string want = path.lexically_normal().string();
  for (std::string line; std::getline(f, line);) {
    std::istringstream in(line);
    std::string id, parent, dev, root, mount_point;
    if (in >> id >> parent >> dev >> root >> mount_point && Unescape(mount_point) == want) {
      return true;
    }
  }
  return false;
}

}  // namespace phoenix::agent::oci
