// Root-only: creates real network namespaces and taps (namespace-local, nothing reaches the host's
// network). Skips without the privileges.
#include "agent/runtime/microvm/guest_netns.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <thread>

#include "agent/runtime/oci/netns.h"

namespace phoenix::agent::microvm {
namespace {

namespace fs = std::filesystem;

bool CanCreateNamespaces() {
  bool ok = false;
  std::thread t([&] { ok = ::unshare(CLONE_NEWNET) == 0; });
  t.join();
  return ok;
}

struct IfaceFacts {
  bool exists = false;
  bool up = false;
  std::string address, netmask;
};

// Reads `name`'s flags and IPv4 address from inside the namespace `netns_fd`.
IfaceFacts Inspect(int netns_fd, const char* name) {
  IfaceFacts facts;
  std::thread t([&] {
    if (::setns(netns_fd, CLONE_NEWNET) != 0) return;
    UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (::ioctl(sock.get(), SIOCGIFFLAGS, &ifr) != 0) return;
    facts.exists = true;
    facts.up = (ifr.ifr_flags & IFF_UP) != 0;
    auto text = [](const sockaddr& sa) {
      char buf[INET_ADDRSTRLEN] = {};
      sockaddr_in sin;
      std::memcpy(&sin, &sa, sizeof sin);
      ::inet_ntop(AF_INET, &sin.sin_addr, buf, sizeof buf);
      return std::string(buf);
    };
    if (::ioctl(sock.get(), SIOCGIFADDR, &ifr) == 0) facts.address = text(ifr.ifr_addr);
    if (::ioctl(sock.get(), SIOCGIFNETMASK, &ifr) == 0) facts.netmask = text(ifr.ifr_netmask);
  });
  t.join();
  return facts;
}

class GuestNetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CanCreateNamespaces()) GTEST_SKIP() << "needs root (CAP_SYS_ADMIN) for network namespaces";
    if (::access("/dev/net/tun", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/net/tun";
    dir_ = fs::temp_directory_path() / ("microvm_netns_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (dir_.empty()) return;
    (void)oci::RemoveNetns(dir_ / "ns");
    fs::remove_all(dir_);
  }
  fs::path dir_;
};

TEST_F(GuestNetnsTest, ThrowawayNamespaceHasTapWithHostAddress) {
  auto net = CreateGuestNetwork();
  ASSERT_TRUE(net) << net.error().message;
  ASSERT_TRUE(net->tap);
  IfaceFacts tap = Inspect(net->netns.get(), "tap0");
  EXPECT_TRUE(tap.exists);
  EXPECT_TRUE(tap.up);
  EXPECT_EQ(tap.address, "172.16.0.1");
  EXPECT_EQ(tap.netmask, "255.255.255.252");
  EXPECT_TRUE(Inspect(net->netns.get(), "lo").up);
  // Not the test's own namespace: the host has no tap0 from us.
  UniqueFd self(::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
  EXPECT_FALSE(Inspect(self.get(), "tap0").exists);
}

TEST_F(GuestNetnsTest, TapCarriesFramesFromTheNamespace) {
  auto net = CreateGuestNetwork();
  ASSERT_TRUE(net) << net.error().message;
  // A UDP datagram to the guest's address inside the namespace leaves through tap0: after ARP,
  // so the tap reads an ARP request for 172.16.0.2 first.
  std::thread t([&] {
    ASSERT_EQ(::setns(net->netns.get(), CLONE_NEWNET), 0);
    UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(9);
    ::inet_pton(AF_INET, "172.16.0.2", &to.sin_addr);
    EXPECT_EQ(::sendto(sock.get(), "x", 1, 0, reinterpret_cast<sockaddr*>(&to), sizeof to), 1);
  });
  t.join();
  ASSERT_EQ(::fcntl(net->tap.get(), F_SETFL, O_NONBLOCK), 0);
  unsigned char frame[2048];
  ssize_t n = -1;
  for (int i = 0; i < 100 && n <= 0; ++i) {
    n = ::read(net->tap.get(), frame, sizeof frame);
    if (n <= 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_GT(n, 14) << "no frame on the tap";
  // IFF_NO_PI: the frame starts with the Ethernet header; some frame (ARP 0x0806 or IPv6
  // neighbour discovery) went out through tap0.
  const int ethertype = frame[12] << 8 | frame[13];
  EXPECT_TRUE(ethertype == 0x0806 || ethertype == 0x86dd || ethertype == 0x0800) << ethertype;
}

TEST_F(GuestNetnsTest, BoundNamespaceOutlivesItsDescriptors) {
  const fs::path file = dir_ / "ns";
  {
    auto net = CreateGuestNetwork(file);
    ASSERT_TRUE(net) << net.error().message;
  }
  EXPECT_TRUE(oci::IsMountPoint(file));
  UniqueFd ns(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(ns);
  EXPECT_TRUE(Inspect(ns.get(), "lo").up);
  auto again = CreateGuestNetwork(file);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kAlreadyExists);
  ASSERT_TRUE(oci::RemoveNetns(file));
  EXPECT_FALSE(fs::exists(file));
}

}  // namespace
}  // namespace phoenix::agent::microvm
