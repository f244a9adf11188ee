#include "agent/vmm/jail/jail.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace phoenix::vmm {
namespace {

Status CheckPath(const char* what, const std::string& path) {
  if (path.empty() || path[0] != '/')
    return Fail(std::string("jail: ") + what + " \"" + path + "\" is not an absolute path");
  if (path.find("/../") != std::string::npos || path.ends_with("/.."))
    return Fail(std::string("jail: ") + what + " \"" + path + "\" contains \"..\"");
  return {};
}

Status WriteFile(const std::string& path, std::string_view text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return Errno("open " + path);
  const ssize_t n = ::write(fd, text.data(), text.size());
  const int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size())) return ErrnoValue("write " + path, n < 0 ? err : EIO);
  return {};
}

Result<int> CountThreads() {
  DIR* dir = ::opendir("/proc/self/task");
  if (!dir) return Errno("opendir /proc/self/task");
  int n = 0;
  while (const dirent* e = ::readdir(dir))
    if (e->d_name[0] != '.') ++n;
  ::closedir(dir);
  return n;
}

// Every directory of `path` below the jail root, created 0755 in the tmpfs.
Status MakeParents(const std::string& root, const std::string& path) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    const std::string dir = root + path.substr(0, slash);
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return Errno("jail: mkdir " + dir);
  }
  return {};
}

enum class Access { kReadOnly, kWritable };

// Binds `path` at the same place under `root`, then tightens the bind's flags (a bind mount keeps
// its source's flags until remounted).
Status Expose(const std::string& root, const std::string& path, Access access) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Errno("jail: stat " + path);
  if (auto s = MakeParents(root, path); !s) return s;
  const std::string target = root + path;
  if (S_ISDIR(st.st_mode)) {
    if (::mkdir(target.c_str(), 0755) != 0 && errno != EEXIST)
      return Errno("jail: mkdir " + target);
  } else {
    const int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return Errno("jail: create " + target);
    ::close(fd);
  }
  if (::mount(path.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0)
    return Errno("jail: bind " + path);
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NOEXEC | MS_NODEV;
  if (access != Access::kWritable) flags |= MS_RDONLY;
  if (::mount(nullptr, target.c_str(), nullptr, flags, nullptr) != 0)
    return Errno("jail: remount " + target);
  return {};
}

// A node of its own for `device` (same major/minor), owned by the monitor and 0600, as
// Firecracker's jailer makes /dev/kvm: the host's node may be root's alone (a devtmpfs without
// udev) or shared with a group the monitor must not join.
Status MakeDevice(const JailSpec& spec, const std::string& device) {
  struct stat st {};
  if (::stat(device.c_str(), &st) != 0) return Errno("jail: stat " + device);
  if (!S_ISCHR(st.st_mode)) return Fail("jail: " + device + " is not a character device");
  if (auto s = MakeParents(spec.root, device); !s) return s;
  const std::string node = spec.root + device;
  if (::mknod(node.c_str(), S_IFCHR | 0600, st.st_rdev) != 0) return Errno("jail: mknod " + node);
  if (::chown(node.c_str(), spec.uid, spec.gid) != 0) return Errno("jail: chown " + node);
  return {};
}

Status PivotInto(const std::string& root) {
  if (::chdir(root.c_str()) != 0) return Errno("jail: chdir " + root);
  if (::syscall(SYS_pivot_root, ".", ".") == 0) {
    // The old root is stacked under the new one at "/": detach it.
    if (::umount2(".", MNT_DETACH) != 0) return Errno("jail: detach the old root");
  } else if (errno == EINVAL) {
    // The host's root is the initramfs (it cannot be pivoted away): move the tmpfs over "/" and
    // chroot into it, as container runtimes do there. The monitor keeps no capability to escape.
    if (::mount(".", "/", nullptr, MS_MOVE, nullptr) != 0) return Errno("jail: move root");
    if (::chroot(".") != 0) return Errno("jail: chroot");
  } else {
    return Errno("jail: pivot_root");
  }
  if (::chdir("/") != 0) return Errno("jail: chdir /");
  // Not nodev: the device nodes live in this tmpfs. No new ones can appear (read-only, and the
  // monitor keeps no CAP_MKNOD).
  if (::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC,
              nullptr) != 0)
    return Errno("jail: remount / read-only");
  return {};
}

Status DropPrivileges(const JailSpec& spec) {
  // The bounding set first (it needs CAP_SETPCAP): nothing can be regained even by an exec.
  for (int cap = 0; cap < 64; ++cap) {
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      if (errno == EINVAL) break;  // past the kernel's last capability
      return Errno("jail: PR_CAPBSET_DROP " + std::to_string(cap));
    }
  }
  if (::setgroups(0, nullptr) != 0) return Errno("jail: setgroups");
  if (::setresgid(spec.gid, spec.gid, spec.gid) != 0) return Errno("jail: setresgid");
  // From uid 0 to a non-zero uid in all three ids the kernel clears the permitted, effective and
  // ambient capability sets.
  if (::setresuid(spec.uid, spec.uid, spec.uid) != 0) return Errno("jail: setresuid");
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return Errno("jail: PR_SET_NO_NEW_PRIVS");
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return Errno("jail: PR_SET_DUMPABLE");
  if (::setuid(0) == 0 || ::geteuid() != spec.uid || ::getegid() != spec.gid)
    return Fail("jail: privileges were not dropped");
  return {};
}

}  // namespace

Status CheckJailSpec(const JailSpec& spec) {
  if (spec.uid == 0 || spec.gid == 0) return Fail("jail: uid and gid must not be 0 (root)");
  if (auto s = CheckPath("root", spec.root); !s) return s;
  if (spec.root == "/") return Fail("jail: root must not be /");
  for (const auto* list : {&spec.read_only, &spec.writable, &spec.devices, &spec.cgroups}) {
    for (const std::string& path : *list)
      if (auto s = CheckPath("path", path); !s) return s;
  }
  return {};
}

Status EnterJail(const JailSpec& spec) {
  if (auto s = CheckJailSpec(spec); !s) return s;
  if (::geteuid() != 0)
    return Fail(
        "jail: phoenix-vmm must start as root to jail itself (it creates namespaces and "
        "changes its uid); run it as root or without --jail-*");
  auto threads = CountThreads();
  if (!threads) return std::unexpected(threads.error());
  if (*threads != 1)
    return Fail("jail: " + std::to_string(*threads) + " threads; the jail needs exactly one");

  for (const std::string& cgroup : spec.cgroups)
    if (auto s = WriteFile(cgroup + "/cgroup.procs", "0\n"); !s)
      return std::unexpected(Context("jail: join cgroup " + cgroup, s.error()));
  for (const std::string& dir : spec.writable)
    if (::chown(dir.c_str(), spec.uid, spec.gid) != 0) return Errno("jail: chown " + dir);

  // A network namespace of its own too: the monitor reaches the guest only through the tap fd it
  // was given, and nothing else on any network.
  if (::unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWNET) != 0) return Errno("jail: unshare");
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    return Errno("jail: make / private");
  if (::mount("phoenix-vmm-jail", spec.root.c_str(), "tmpfs", MS_NOSUID | MS_NOEXEC,
              "mode=0755,size=64k") != 0)
    return Errno("jail: mount tmpfs on " + spec.root);
  for (const std::string& path : spec.read_only)
    if (auto s = Expose(spec.root, path, Access::kReadOnly); !s) return s;
  for (const std::string& path : spec.writable)
    if (auto s = Expose(spec.root, path, Access::kWritable); !s) return s;
  for (const std::string& device : spec.devices)
    if (auto s = MakeDevice(spec, device); !s) return s;
  if (auto s = PivotInto(spec.root); !s) return s;
  return DropPrivileges(spec);
}

}  // namespace phoenix::vmm
