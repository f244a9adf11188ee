// Rtnetlink: the few rtnetlink requests the node network needs (bridge, veth pair into another
// namespace, link up, address, routes), over one NETLINK_ROUTE socket. No `ip` binary and no
// libnl: each request is a handful of attributes, acknowledged by the kernel, and every failure
// comes back as the request's name with the kernel's errno.
//
// A netlink socket acts on the network namespace it was created in, for its whole life: OpenIn
// creates it on a short-lived helper thread inside another namespace, so the calling thread never
// changes namespace.
//
// Thread-safety: one Rtnetlink per thread at a time (requests and their acks share the socket).
// Needs CAP_NET_ADMIN (and CAP_SYS_ADMIN for OpenIn); the agent runs as root.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/support/error.h"
#include "proto/support/ip_address.h"
#include "proto/support/unique_fd.h"

struct nlmsghdr;

namespace phoenix::agent::net {

// Routes Phoenix installs carry this rtm_protocol, so a restarted agent finds (and removes) its own
// stale routes and never touches anybody else's. Any value above RTPROT_STATIC is free for
// userspace; iproute2 shows it as "proto 158".
inline constexpr uint8_t kPhoenixRouteProtocol = 158;

struct Link {
  int index = 0;
  std::string name;
  int master = 0;  // the bridge it is enslaved to; 0: none
};

struct Ipv4Route {
  Ipv4Subnet destination;
  uint32_t gateway = 0;  // host byte order
  bool operator==(const Ipv4Route&) const = default;
};

class Rtnetlink {
 public:
  // In this thread's network namespace.
  [[nodiscard]] static Result<Rtnetlink> Open();
  // In the network namespace bound on `netns_file` (or /proc/<pid>/ns/net).
  [[nodiscard]] static Result<Rtnetlink> OpenIn(const std::filesystem::path& netns_file);

  // kNotFound when there is no such link.
  [[nodiscard]] Result<int> LinkIndex(std::string_view name);
  // kAlreadyExists when a link of that name exists.
  [[nodiscard]] Result<void> AddBridge(std::string_view name);
  // A veth pair: `name` here, enslaved to the link `master_index`; `peer_name` in the namespace
  // `peer_netns_fd`. kAlreadyExists when `name` exists here.
  [[nodiscard]] Result<void> AddVethPair(std::string_view name, int master_index,
                                         std::string_view peer_name, int peer_netns_fd);
  [[nodiscard]] Result<void> SetLinkUp(int index);
  // Enslaves link `index` to the bridge `master_index`.
  [[nodiscard]] Result<void> SetMaster(int index, int master_index);
  [[nodiscard]] Result<std::vector<Link>> Links();
  // Succeeds when the link already has that address.
  [[nodiscard]] Result<void> AddAddress(int index, uint32_t address, int prefix);
  // Adds or replaces (main table, kPhoenixRouteProtocol). A zero-length destination is the default
  // route.
  [[nodiscard]] Result<void> ReplaceRoute(const Ipv4Route& route);
  // Succeeds when there is no such route.
  [[nodiscard]] Result<void> DeleteRoute(const Ipv4Subnet& destination);
  // Routes of the main table that carry kPhoenixRouteProtocol.
  [[nodiscard]] Result<std::vector<Ipv4Route>> PhoenixRoutes();
  // Succeeds when there is no such link.
  [[nodiscard]] Result<void> DeleteLink(std::string_view name);
  // Whether an address of one of this namespace's interfaces lies in `subnet`: then the subnet is
  // on a local link and needs no route.
  [[nodiscard]] Result<bool> SubnetIsLocal(const Ipv4Subnet& subnet);

 private:
  explicit Rtnetlink(UniqueFd fd) : fd_(std::move(fd)) {}

  // Sends one request (a dump, or anything else, which gets NLM_F_ACK) and calls `each` for every
  // message of the answer until its end (NLMSG_DONE or the ack); `what` names it in errors.
  [[nodiscard]] Result<void> Exchange(std::vector<char>& message, std::string_view what,
                                      const std::function<void(const nlmsghdr*)>& each = {});

  UniqueFd fd_;
  uint32_t seq_ = 0;
};

}  // namespace phoenix::agent::net
