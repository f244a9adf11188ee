#include "agent/runtime/microvm/guest_netns.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>

namespace phoenix::agent::microvm {

namespace fs = std::filesystem;

namespace {

ifreq NamedIfreq(std::string_view name) {
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.data(), std::min<size_t>(name.size(), IFNAMSIZ - 1));
  return ifr;
}

Result<void> SetUp(int sock, std::string_view name) {
  ifreq ifr = NamedIfreq(name);
  if (::ioctl(sock, SIOCGIFFLAGS, &ifr) != 0) {
    return ErrnoError("SIOCGIFFLAGS " + std::string(name));
  }
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
  if (::ioctl(sock, SIOCSIFFLAGS, &ifr) != 0) {
    return ErrnoError("bringing " + std::string(name) + " up (SIOCSIFFLAGS)");
  }
  return {};
}

Result<void> SetAddress(int sock, std::string_view name, std::string_view address, int prefix) {
  auto set = [&](unsigned long request, uint32_t value_be, const char* what) -> Result<void> {
    ifreq ifr = NamedIfreq(name);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = value_be;
    std::memcpy(&ifr.ifr_addr, &sin, sizeof sin);
    if (::ioctl(sock, request, &ifr) != 0) {
      return ErrnoError(std::string(what) + " " + std::string(name));
    }
    return {};
  };
  in_addr addr{};
  if (::inet_pton(AF_INET, std::string(address).c_str(), &addr) != 1) {
    return InvalidArgument("address", "not an IPv4 address: " + std::string(address));
  }
  const uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
  PHX_TRY(set(SIOCSIFADDR, addr.s_addr, "SIOCSIFADDR"));
  return set(SIOCSIFNETMASK, htonl(mask), "SIOCSIFNETMASK");
}

// Runs on a fresh thread, which it moves into the new namespace; the thread ends afterwards, so no
// thread of the agent stays in there.
Result<GuestNetwork> CreateOnThisThread(const fs::path& bind_file) {
  if (::unshare(CLONE_NEWNET) != 0) return ErrnoError("unshare(CLONE_NEWNET)");
  GuestNetwork net;
  net.netns.Reset(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!net.netns) return ErrnoError("opening the new network namespace");

  net.tap.Reset(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!net.tap) return ErrnoError("opening /dev/net/tun");
  ifreq ifr = NamedIfreq(kTapName);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (::ioctl(net.tap.get(), TUNSETIFF, &ifr) != 0) return ErrnoError("TUNSETIFF tap0");

  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return ErrnoError("socket in the new network namespace");
  PHX_TRY(SetUp(sock.get(), "lo"));
  PHX_TRY(SetAddress(sock.get(), kTapName, kHostAddress, kPrefixLength));
  PHX_TRY(SetUp(sock.get(), kTapName));

  if (!bind_file.empty() &&
      ::mount("/proc/thread-self/ns/net", bind_file.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    return ErrnoError("bind-mounting the network namespace on " + bind_file.string());
  }
  return net;
}

}  // namespace

Result<GuestNetwork> CreateGuestNetwork(const fs::path& bind_file) {
  if (!bind_file.empty()) {
    int fd = ::open(bind_file.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (fd < 0) {
      if (errno == EEXIST) return AlreadyExists("network namespace file " + bind_file.string());
      return ErrnoError("creating " + bind_file.string());
    }
    ::close(fd);
  }
  Result<GuestNetwork> result = Internal("network namespace helper did not run");
  try {
    std::thread helper([&] { result = CreateOnThisThread(bind_file); });
    helper.join();
  } catch (const std::system_error& e) {
    result = Internal(std::string("starting the namespace helper thread: ") + e.what());
  }
  if (!result && !bind_file.empty()) {
    ::umount2(bind_file.c_str(), MNT_DETACH);
    ::unlink(bind_file.c_str());
  }
  return result;
}

}  // namespace phoenix::agent::microvm
