#include "agent/net/node_network.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "agent/net/testing/test_netns.h"
#include "agent/testing/temp_dir.h"

namespace phoenix::agent::net {
namespace {

using testing::TestNetns;

uint32_t Address(const char* text) {
  in_addr a{};
  ::inet_pton(AF_INET, text, &a);
  return ntohl(a.s_addr);
}

// Connects from the calling thread's namespace; true when the connection is accepted.
bool Reaches(const std::string& address, uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  ::inet_pton(AF_INET, address.c_str(), &to.sin_addr);
  timeval timeout{.tv_sec = 2, .tv_usec = 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) == 0;
}

uint16_t LocalPort(int fd) {
  sockaddr_in a{};
  socklen_t length = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &length);
  return ntohs(a.sin_port);
}

// A "node" namespace standing in for the agent's, and instance namespaces in it; everything the
// node network does happens inside `node`, never in the test host's namespace.
class NodeNetworkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = testing::NetnsSkipReason(); !why.empty()) GTEST_SKIP() << why;
    auto node = TestNetns::Create();
    ASSERT_TRUE(node) << node.error().ToString();
    node_ = std::move(*node);
  }
  // Runs `fn` in the node's namespace.
  void InNode(const std::function<void()>& fn) {
    auto ran = node_->Run(fn);
    ASSERT_TRUE(ran) << ran.error().ToString();
  }
  std::unique_ptr<TestNetns> NewInstance() {
    auto instance = TestNetns::Create();
    EXPECT_TRUE(instance) << instance.error().ToString();
    return instance ? std::move(*instance) : nullptr;
  }

  agent::testing::TempDir dir_;
  std::unique_ptr<TestNetns> node_;
  const Ipv4Subnet subnet_ = *ParseIpv4Subnet("10.88.1.0/24");
};

TEST_F(NodeNetworkTest, InstancesAreReachableAtTheirOwnAddressesFromTheNodeAndEachOther) {
  auto a = NewInstance();
  auto b = NewInstance();
  ASSERT_TRUE(a && b);
  InNode([&] {
    auto network = NodeNetwork::Open(subnet_, dir_.path() / "ipam");
    ASSERT_TRUE(network) << network.error().ToString();
    EXPECT_EQ((*network)->bridge(), "phx-0a580100");
    auto address_a = (*network)->Attach("phx-a", a->path());
    ASSERT_TRUE(address_a) << address_a.error().ToString();
    auto address_b = (*network)->Attach("phx-b", b->path());
    ASSERT_TRUE(address_b) << address_b.error().ToString();
    EXPECT_EQ(*address_a, "10.88.1.2");
    EXPECT_EQ(*address_b, "10.88.1.3");

    // The guest listens on any address of its namespace, as a server does.
    auto listener = a->Listen(0, SOMAXCONN, INADDR_ANY);
    ASSERT_TRUE(listener) << listener.error().ToString();
    UniqueFd listening(*listener);
    const uint16_t port = LocalPort(listening.get());
    EXPECT_TRUE(Reaches("10.88.1.2", port)) << "from the node";
    bool from_b = false;
    ASSERT_TRUE(b->Run([&] { from_b = Reaches("10.88.1.2", port); }));
    EXPECT_TRUE(from_b) << "from another instance, across the bridge";

    // Opening again adopts what is there; addresses stay claimed.
    auto again = NodeNetwork::Open(subnet_, dir_.path() / "ipam");
    ASSERT_TRUE(again) << again.error().ToString();
    auto c = NewInstance();
    ASSERT_TRUE(c);
    auto address_c = (*again)->Attach("phx-c", c->path());
    ASSERT_TRUE(address_c) << address_c.error().ToString();
    EXPECT_EQ(*address_c, "10.88.1.4");

    ASSERT_TRUE((*network)->Detach("phx-a", *address_a));
    EXPECT_FALSE(Reaches("10.88.1.2", port)) << "detached";
    EXPECT_TRUE((*network)->Detach("phx-a", *address_a)) << "idempotent";
    EXPECT_TRUE((*network)->Detach("phx-someone-else", *address_b)) << "not theirs: untouched";
    EXPECT_TRUE((*network)->Detach("phx-someone-else", "")) << "holds nothing: nothing to do";
    auto reused = (*network)->Attach("phx-d", a->path());
    ASSERT_TRUE(reused) << reused.error().ToString();
    EXPECT_EQ(*reused, "10.88.1.2") << "a freed address is handed out again";

    // A restarted guest asks for its previous address: it gets it when free, else another.
    ASSERT_TRUE((*network)->Detach("phx-c", *address_c));
    auto e = NewInstance();
    ASSERT_TRUE(e);
    auto kept = (*network)->Attach("phx-c-2", e->path(), "10.88.1.4");
    ASSERT_TRUE(kept) << kept.error().ToString();
    EXPECT_EQ(*kept, "10.88.1.4");
    auto f = NewInstance();
    ASSERT_TRUE(f);
    auto taken = (*network)->Attach("phx-f", f->path(), "10.88.1.4");
    ASSERT_TRUE(taken) << taken.error().ToString();
    EXPECT_EQ(*taken, "10.88.1.5") << "held by phx-c-2";

    // A run record without its address (the agent died right after the claim): freed by name.
    ASSERT_TRUE((*network)->Detach("phx-f", ""));
    auto g = NewInstance();
    ASSERT_TRUE(g);
    auto after = (*network)->Attach("phx-g", g->path());
    ASSERT_TRUE(after) << after.error().ToString();
    EXPECT_EQ(*after, "10.88.1.5") << "phx-f's claim was released";
  });
}

TEST_F(NodeNetworkTest, InstancesThatOutlivedTheirBridgeAreAttachedToTheNextOne) {
  auto a = NewInstance();
  ASSERT_TRUE(a);
  InNode([&] {
    auto network = NodeNetwork::Open(subnet_, dir_.path() / "ipam");
    ASSERT_TRUE(network) << network.error().ToString();
    auto address = (*network)->Attach("phx-a", a->path());
    ASSERT_TRUE(address) << address.error().ToString();
    auto listener = a->Listen(0, SOMAXCONN, INADDR_ANY);
    ASSERT_TRUE(listener);
    UniqueFd listening(*listener);
    const uint16_t port = LocalPort(listening.get());
    ASSERT_TRUE(Reaches(*address, port));

    auto netlink = Rtnetlink::Open();
    ASSERT_TRUE(netlink);
    ASSERT_TRUE(netlink->DeleteLink((*network)->bridge()));         // someone deletes the bridge
    auto again = NodeNetwork::Open(subnet_, dir_.path() / "ipam");  // the next agent
    ASSERT_TRUE(again) << again.error().ToString();
    EXPECT_TRUE(Reaches(*address, port)) << "the instance's veth is on the new bridge";
  });
}

TEST_F(NodeNetworkTest, AFullSubnetSaysSoAndLeavesNothingBehind) {
  const Ipv4Subnet small = *ParseIpv4Subnet("10.88.2.0/29");  // .2 to .6 for instances
  const auto ipam = dir_.path() / "ipam";
  std::filesystem::create_directories(ipam);
  for (const char* held : {"10.88.2.2", "10.88.2.3", "10.88.2.4", "10.88.2.5", "10.88.2.6"}) {
    std::ofstream(ipam / held) << "phx-other\n";
  }
  auto instance = NewInstance();
  ASSERT_TRUE(instance);
  InNode([&] {
    auto network = NodeNetwork::Open(small, ipam);
    ASSERT_TRUE(network) << network.error().ToString();
    auto attached = (*network)->Attach("phx-late", instance->path());
    ASSERT_FALSE(attached);
    EXPECT_EQ(attached.error().code, ErrorCode::kResourceExhausted);
    EXPECT_NE(attached.error().message.find("10.88.2.0/29 has no free address"), std::string::npos)
        << attached.error().message;
  });
}

TEST_F(NodeNetworkTest, PeerRoutesFollowTheTableAndSkipLocalSubnets) {
  InNode([&] {
    auto network = NodeNetwork::Open(subnet_, dir_.path() / "ipam");
    ASSERT_TRUE(network) << network.error().ToString();
    // A second node network in the same namespace: several agents on one host.
    const Ipv4Subnet neighbour = *ParseIpv4Subnet("10.88.9.0/24");
    ASSERT_TRUE(NodeNetwork::Open(neighbour, dir_.path() / "ipam9"));
    const Ipv4Subnet far = *ParseIpv4Subnet("10.88.2.0/24");
    const Ipv4Subnet further = *ParseIpv4Subnet("10.88.3.0/24");
    const uint32_t peer = Address("10.88.1.200");  // on a link of this node
    ASSERT_TRUE((*network)->SyncPeerRoutes({{.subnet = far, .via = peer},
                                            {.subnet = further, .via = peer},
                                            {.subnet = neighbour, .via = peer},
                                            {.subnet = subnet_, .via = peer}}));
    auto netlink = Rtnetlink::Open();
    ASSERT_TRUE(netlink);
    auto routes = netlink->PhoenixRoutes();
    ASSERT_TRUE(routes) << routes.error().ToString();
    EXPECT_EQ(*routes, (std::vector<Ipv4Route>{{.destination = far, .gateway = peer},
                                               {.destination = further, .gateway = peer}}));

    ASSERT_TRUE((*network)->SyncPeerRoutes({{.subnet = further, .via = peer}}));
    routes = netlink->PhoenixRoutes();
    ASSERT_TRUE(routes);
    EXPECT_EQ(*routes, (std::vector<Ipv4Route>{{.destination = further, .gateway = peer}}));

    auto unreachable = (*network)->SyncPeerRoutes({{.subnet = far, .via = Address("192.0.2.9")}});
    ASSERT_FALSE(unreachable) << "a gateway on no link of this node";
    EXPECT_NE(unreachable.error().message.find("routing 10.88.2.0/24 via 192.0.2.9"),
              std::string::npos)
        << unreachable.error().message;
  });
}

TEST(NodeNetworkNamesTest, FitInAnInterfaceName) {
  EXPECT_EQ(NodeNetwork::BridgeName(*ParseIpv4Subnet("10.88.1.0/24")), "phx-0a580100");
  EXPECT_EQ(NodeNetwork::HostVethName(Address("10.88.1.5")), "phx0a580105");
  EXPECT_LT(NodeNetwork::BridgeName(*ParseIpv4Subnet("255.255.255.0/24")).size(), size_t{IFNAMSIZ});
}

}  // namespace
}  // namespace phoenix::agent::net
