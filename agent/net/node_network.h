// NodeNetwork: the node's instance network, so that HAProxy and other nodes reach a guest at its
// own address with no agent process in the path (an agent killed or restarted drops no request).
//
//   bridge  "phx-<subnet hex>" holding the subnet's first address (the instances' gateway)
//   veth    per instance: "phx<address hex>" on the bridge, its peer "eth0" inside the instance's
//           network namespace with the instance's address and a default route via the bridge
//   IPAM    one file per address in use, <ipam_dir>/<address>, holding the instance's name, created
//           with O_EXCL (as CNI's host-local plugin does): allocation survives agent restarts and
//           never hands one address out twice
//   routes  to the other nodes' instance subnets via their advertised addresses (as flannel's
//           host-gw does), carrying kPhoenixRouteProtocol; subnets already on a local link (several
//           agents on one host) need none
// IPv4 forwarding is switched on in the agent's namespace, so peers' traffic reaches the bridge.
// Guests get no NAT to the outside: they answer whoever connects to them and reach nothing else
// beyond the node's links.
//
// Everything lives in the kernel: bridge, veths, addresses and routes stay when the agent dies, and
// Open adopts them. docs/frontdoor.md describes the data path.
//
// Thread-safety: every method is safe from any thread (one mutex serialises netlink work; each call
// takes milliseconds). Needs CAP_NET_ADMIN and CAP_SYS_ADMIN (the agent runs as root).
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "agent/net/rtnetlink.h"
#include "proto/support/error.h"
#include "proto/support/ip_address.h"

namespace phoenix::agent::net {

struct PeerRoute {
  Ipv4Subnet subnet;  // another node's instance subnet
  uint32_t via = 0;   // that node's advertised address (host byte order)
  bool operator==(const PeerRoute&) const = default;
};

class NodeNetwork {
 public:
  // Ensures the bridge is there, up, with the gateway address, and forwarding is on.
  [[nodiscard]] static Result<std::shared_ptr<NodeNetwork>> Open(
      const Ipv4Subnet& subnet, const std::filesystem::path& ipam_dir);

  // Gives `instance` (whose namespace is bound on `netns_file`) an address: `preferred` when it is
  // in the subnet and free (a restarted guest keeps its address), else the lowest free one; a veth
  // pair to the bridge, eth0 up with the address and a default route in the namespace. Returns the
  // address. kResourceExhausted when the subnet is full. Leaves nothing behind on failure.
  [[nodiscard]] Result<std::string> Attach(std::string_view instance,
                                           const std::filesystem::path& netns_file,
                                           std::string_view preferred = {});
  // Removes the instance's veth pair and frees `address` if `instance` holds it; with `address`
  // empty, whatever address `instance` holds (its run record may not have got it). Idempotent.
  [[nodiscard]] Result<void> Detach(std::string_view instance, std::string_view address);

  // Makes the Phoenix routes of this namespace exactly `peers` (minus local subnets and this node's
  // own): adds and replaces what is missing, removes stale ones.
  [[nodiscard]] Result<void> SyncPeerRoutes(const std::vector<PeerRoute>& peers);

  const Ipv4Subnet& subnet() const { return subnet_; }
  const std::string& bridge() const { return bridge_; }

  // "phx-0a580100" for 10.88.1.0/24: unique per subnet, at most 15 characters (IFNAMSIZ).
  static std::string BridgeName(const Ipv4Subnet& subnet);
  // "phx0a580105" for 10.88.1.5.
  static std::string HostVethName(uint32_t address);

 private:
  NodeNetwork(Ipv4Subnet subnet, std::filesystem::path ipam_dir, Rtnetlink netlink, int bridge);
  // Claims the address `instance` already holds, else `preferred` if free, else the lowest free
  // one; under mu_.
  Result<uint32_t> ClaimAddressLocked(std::string_view instance, std::string_view preferred);
  // The addresses whose claim files name `instance` (normally at most one); under mu_.
  Result<std::vector<uint32_t>> ClaimsOfLocked(std::string_view instance) const;
  // Creates the claim file of `address` for `instance`; false when someone holds it.
  Result<bool> TryClaimLocked(uint32_t address, std::string_view instance);
  void ReleaseAddressLocked(uint32_t address);

  const Ipv4Subnet subnet_;
  const std::filesystem::path ipam_dir_;
  const std::string bridge_;
  std::mutex mu_;
  Rtnetlink netlink_;  // under mu_
  const int bridge_index_;
};

}  // namespace phoenix::agent::net
