#include "agent/net/rtnetlink.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <functional>
#include <thread>

namespace phoenix::agent::net {

namespace {

// A request under construction: the netlink header, one fixed-size family header, attributes.
// Everything stays 4-byte aligned (NLMSG_ALIGN == RTA_ALIGN == 4).
class MessageBuilder {
 public:
  MessageBuilder(uint16_t type, uint16_t flags) {
    nlmsghdr header{};
    header.nlmsg_type = type;
    header.nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | flags);
    Append(&header, sizeof header);
  }
  template <typename T>
  void Body(const T& body) {
    Append(&body, sizeof body);
  }
  void Attribute(uint16_t type, const void* data, size_t length) {
    rtattr a{};
    a.rta_type = type;
    a.rta_len = static_cast<uint16_t>(RTA_LENGTH(length));
    Append(&a, sizeof a);
    Append(data, length);
  }
  void Attribute(uint16_t type, std::string_view text) {  // NUL-terminated, as the kernel wants
    std::string s(text);
    Attribute(type, s.c_str(), s.size() + 1);
  }
  void Attribute32(uint16_t type, uint32_t value) { Attribute(type, &value, sizeof value); }
  size_t BeginNest(uint16_t type) {
    const size_t at = buffer_.size();
    rtattr a{};
    a.rta_type = type;
    Append(&a, sizeof a);
    return at;
  }
  void EndNest(size_t at) {
    auto* a = reinterpret_cast<rtattr*>(buffer_.data() + at);
    a->rta_len = static_cast<uint16_t>(buffer_.size() - at);
  }
  std::vector<char>& Finish() {
    reinterpret_cast<nlmsghdr*>(buffer_.data())->nlmsg_len = static_cast<uint32_t>(buffer_.size());
    return buffer_;
  }

 private:
  void Append(const void* data, size_t length) {
    const auto* bytes = static_cast<const char*>(data);
    buffer_.insert(buffer_.end(), bytes, bytes + length);
    buffer_.resize(NLMSG_ALIGN(buffer_.size()), 0);
  }
  std::vector<char> buffer_;
};

Result<UniqueFd> RouteSocket() {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd) return ErrnoError("socket(AF_NETLINK, NETLINK_ROUTE)");
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
    return ErrnoError("bind(AF_NETLINK)");
  }
  // A reply never waits forever: the kernel answers at once, so 5 s means something is wrong.
  timeval timeout{.tv_sec = 5, .tv_usec = 0};
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) != 0) {
    return ErrnoError("setsockopt(SO_RCVTIMEO) on the netlink socket");
  }
  return fd;
}

Result<void> SendAll(int fd, const std::vector<char>& message, std::string_view what) {
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  const ssize_t sent = ::sendto(fd, message.data(), message.size(), 0,
                                reinterpret_cast<sockaddr*>(&kernel), sizeof kernel);
  if (sent != static_cast<ssize_t>(message.size())) {
    return ErrnoError(std::string(what) + ": sending the netlink request");
  }
  return {};
}

std::unexpected<Error> KernelError(std::string_view what, int err) {
  const std::string message = std::string(what) + ": " + std::strerror(err);
  switch (err) {
    case EEXIST:
      return AlreadyExists(message);
    case ENODEV:
    case ESRCH:
    case ENOENT:
      return NotFound(message);
    case EPERM:
    case EACCES:
      return MakeError(ErrorCode::kPermissionDenied, message);
    default:
      return ErrnoError(what, err);
  }
}

in_addr_t Network(uint32_t host_order) { return htonl(host_order); }

}  // namespace

Result<Rtnetlink> Rtnetlink::Open() {
  auto fd = RouteSocket();
  if (!fd) return std::unexpected(fd.error());
  return Rtnetlink(std::move(*fd));
}

Result<Rtnetlink> Rtnetlink::OpenIn(const std::filesystem::path& netns_file) {
  UniqueFd ns(::open(netns_file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) {
    if (errno == ENOENT) return NotFound("no network namespace file " + netns_file.string());
    return ErrnoError("opening network namespace " + netns_file.string());
  }
  Result<UniqueFd> fd = Internal("namespace helper did not run");
  try {
    std::thread helper([&] {
      // unshare(CLONE_FS) is not needed: setns(CLONE_NEWNET) affects this thread only, and the
      // thread ends right after creating the socket.
      if (::setns(ns.get(), CLONE_NEWNET) != 0) {
        fd = ErrnoError("entering network namespace " + netns_file.string());
        return;
      }
      fd = RouteSocket();
    });
    helper.join();
  } catch (const std::system_error& e) {
    return Internal(std::string("starting the namespace helper thread: ") + e.what());
  }
  if (!fd) return std::unexpected(fd.error());
  return Rtnetlink(std::move(*fd));
}

Result<void> Rtnetlink::Exchange(std::vector<char>& message, std::string_view what,
                                 const std::function<void(const nlmsghdr*)>& each) {
  auto* header = reinterpret_cast<nlmsghdr*>(message.data());
  // Every request ends in an ack (NLMSG_ERROR, 0 = success) or, for a dump, NLMSG_DONE.
  if ((header->nlmsg_flags & NLM_F_DUMP) != NLM_F_DUMP) header->nlmsg_flags |= NLM_F_ACK;
  header->nlmsg_seq = ++seq_;
  PHX_TRY(SendAll(fd_.get(), message, what));
  alignas(nlmsghdr) std::array<char, 32768> reply;
  // A dump arrives in several datagrams; a host with a full BGP table needs many, and the bound
  // keeps a confused answer from spinning forever.
  for (int reads = 0; reads < 4096; ++reads) {
    const ssize_t n = ::recv(fd_.get(), reply.data(), reply.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(std::string(what) + ": reading the kernel's answer");
    }
    int length = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(reply.data()); NLMSG_OK(h, length);
         h = NLMSG_NEXT(h, length)) {
      if (h->nlmsg_seq != seq_) continue;
      if (h->nlmsg_type == NLMSG_DONE) return {};
      if (h->nlmsg_type == NLMSG_ERROR) {
        const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
        if (e->error == 0) return {};
        return KernelError(what, -e->error);
      }
      if (each) each(h);
    }
  }
  return Internal(std::string(what) + ": the kernel's answer did not end");
}

Result<int> Rtnetlink::LinkIndex(std::string_view name) {
  MessageBuilder m(RTM_GETLINK, 0);
  ifinfomsg info{};
  info.ifi_family = AF_UNSPEC;
  m.Body(info);
  m.Attribute(IFLA_IFNAME, name);
  int index = 0;
  const std::string what = "looking up link " + std::string(name);
  PHX_TRY(Exchange(m.Finish(), what, [&](const nlmsghdr* h) {
    if (h->nlmsg_type == RTM_NEWLINK)
      index = static_cast<const ifinfomsg*>(NLMSG_DATA(h))->ifi_index;
  }));
  if (index <= 0) return NotFound(what + ": no such link");
  return index;
}

Result<void> Rtnetlink::AddBridge(std::string_view name) {
  MessageBuilder m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  ifinfomsg info{};
  info.ifi_family = AF_UNSPEC;
  m.Body(info);
  m.Attribute(IFLA_IFNAME, name);
  const size_t link_info = m.BeginNest(IFLA_LINKINFO);
  m.Attribute(IFLA_INFO_KIND, "bridge");
  m.EndNest(link_info);
  return Exchange(m.Finish(), "creating bridge " + std::string(name));
}

Result<void> Rtnetlink::AddVethPair(std::string_view name, int master_index,
                                    std::string_view peer_name, int peer_netns_fd) {
  MessageBuilder m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  ifinfomsg info{};
  info.ifi_family = AF_UNSPEC;
  m.Body(info);
  m.Attribute(IFLA_IFNAME, name);
  m.Attribute32(IFLA_MASTER, static_cast<uint32_t>(master_index));
  const size_t link_info = m.BeginNest(IFLA_LINKINFO);
  m.Attribute(IFLA_INFO_KIND, "veth");
  const size_t data = m.BeginNest(IFLA_INFO_DATA);
  const size_t peer = m.BeginNest(VETH_INFO_PEER);
  ifinfomsg peer_info{};
  peer_info.ifi_family = AF_UNSPEC;
  m.Body(peer_info);
  m.Attribute(IFLA_IFNAME, peer_name);
  m.Attribute32(IFLA_NET_NS_FD, static_cast<uint32_t>(peer_netns_fd));
  m.EndNest(peer);
  m.EndNest(data);
  m.EndNest(link_info);
  return Exchange(m.Finish(), "creating veth pair " + std::string(name));
}

Result<void> Rtnetlink::SetLinkUp(int index) {
  MessageBuilder m(RTM_NEWLINK, 0);
  ifinfomsg info{};
  info.ifi_family = AF_UNSPEC;
  info.ifi_index = index;
  info.ifi_flags = IFF_UP;
  info.ifi_change = IFF_UP;
  m.Body(info);
  return Exchange(m.Finish(), "bringing link " + std::to_string(index) + " up");
}

Result<void> Rtnetlink::SetMaster(int index, int master_index) {
  MessageBuilder m(RTM_NEWLINK, 0);
  ifinfomsg info{};
  info.ifi_family = AF_UNSPEC;
  info.ifi_index = index;
  m.Body(info);
  m.Attribute32(IFLA_MASTER, static_cast<uint32_t>(master_index));
  return Exchange(m.Finish(), "attaching link " + std::to_string(index) + " to bridge " +
                                  std::to_string(master_index));
}

Result<std::vector<Link>> Rtnetlink::Links() {
  MessageBuilder m(RTM_GETLINK, NLM_F_DUMP);
  ifinfomsg info{};
  info.ifi_family = AF_UNSPEC;
  m.Body(info);
  std::vector<Link> links;
  PHX_TRY(Exchange(m.Finish(), "listing links", [&](const nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWLINK) return;
    const auto* i = static_cast<const ifinfomsg*>(NLMSG_DATA(h));
    Link link{.index = i->ifi_index};
    int length = static_cast<int>(IFLA_PAYLOAD(h));
    for (auto* a = IFLA_RTA(i); RTA_OK(a, length); a = RTA_NEXT(a, length)) {
      if (a->rta_type == IFLA_IFNAME) {
        link.name = std::string(static_cast<const char*>(RTA_DATA(a)),
                                strnlen(static_cast<const char*>(RTA_DATA(a)), RTA_PAYLOAD(a)));
      } else if (a->rta_type == IFLA_MASTER && RTA_PAYLOAD(a) == sizeof(uint32_t)) {
        uint32_t master;
        std::memcpy(&master, RTA_DATA(a), sizeof master);
        link.master = static_cast<int>(master);
      }
    }
    links.push_back(std::move(link));
  }));
  return links;
}

Result<void> Rtnetlink::AddAddress(int index, uint32_t address, int prefix) {
  MessageBuilder m(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
  ifaddrmsg info{};
  info.ifa_family = AF_INET;
  info.ifa_prefixlen = static_cast<uint8_t>(prefix);
  info.ifa_scope = RT_SCOPE_UNIVERSE;
  info.ifa_index = static_cast<uint32_t>(index);
  m.Body(info);
  const in_addr_t a = Network(address);
  m.Attribute(IFA_LOCAL, &a, sizeof a);
  m.Attribute(IFA_ADDRESS, &a, sizeof a);
  auto added =
      Exchange(m.Finish(), "adding address " + FormatIpv4(address) + "/" + std::to_string(prefix) +
                               " to link " + std::to_string(index));
  if (!added && added.error().code == ErrorCode::kAlreadyExists) return {};
  return added;
}

Result<void> Rtnetlink::ReplaceRoute(const Ipv4Route& route) {
  MessageBuilder m(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE);
  rtmsg info{};
  info.rtm_family = AF_INET;
  info.rtm_dst_len = static_cast<uint8_t>(route.destination.prefix);
  info.rtm_table = RT_TABLE_MAIN;
  info.rtm_protocol = kPhoenixRouteProtocol;
  info.rtm_scope = RT_SCOPE_UNIVERSE;
  info.rtm_type = RTN_UNICAST;
  m.Body(info);
  if (route.destination.prefix > 0) {
    const in_addr_t dst = Network(route.destination.network);
    m.Attribute(RTA_DST, &dst, sizeof dst);
  }
  const in_addr_t gateway = Network(route.gateway);
  m.Attribute(RTA_GATEWAY, &gateway, sizeof gateway);
  return Exchange(m.Finish(), "routing " + FormatSubnet(route.destination) + " via " +
                                  FormatIpv4(route.gateway));
}

Result<void> Rtnetlink::DeleteRoute(const Ipv4Subnet& destination) {
  MessageBuilder m(RTM_DELROUTE, 0);
  rtmsg info{};
  info.rtm_family = AF_INET;
  info.rtm_dst_len = static_cast<uint8_t>(destination.prefix);
  info.rtm_table = RT_TABLE_MAIN;
  info.rtm_protocol = kPhoenixRouteProtocol;
  info.rtm_scope = RT_SCOPE_NOWHERE;
  m.Body(info);
  if (destination.prefix > 0) {
    const in_addr_t dst = Network(destination.network);
    m.Attribute(RTA_DST, &dst, sizeof dst);
  }
  auto deleted = Exchange(m.Finish(), "removing the route to " + FormatSubnet(destination));
  if (!deleted && deleted.error().code == ErrorCode::kNotFound) return {};
  return deleted;
}

Result<std::vector<Ipv4Route>> Rtnetlink::PhoenixRoutes() {
  MessageBuilder m(RTM_GETROUTE, NLM_F_DUMP);
  rtmsg info{};
  info.rtm_family = AF_INET;
  m.Body(info);
  std::vector<Ipv4Route> routes;
  PHX_TRY(Exchange(m.Finish(), "listing routes", [&](const nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWROUTE) return;
    const auto* r = static_cast<const rtmsg*>(NLMSG_DATA(h));
    if (r->rtm_protocol != kPhoenixRouteProtocol || r->rtm_table != RT_TABLE_MAIN) return;
    Ipv4Route route;
    route.destination.prefix = r->rtm_dst_len;
    int length = static_cast<int>(RTM_PAYLOAD(h));
    for (auto* a = RTM_RTA(r); RTA_OK(a, length); a = RTA_NEXT(a, length)) {
      if (RTA_PAYLOAD(a) != sizeof(in_addr_t)) continue;
      in_addr_t value;
      std::memcpy(&value, RTA_DATA(a), sizeof value);
      if (a->rta_type == RTA_DST) route.destination.network = ntohl(value);
      if (a->rta_type == RTA_GATEWAY) route.gateway = ntohl(value);
    }
    routes.push_back(route);
  }));
  return routes;
}

Result<bool> Rtnetlink::SubnetIsLocal(const Ipv4Subnet& subnet) {
  MessageBuilder m(RTM_GETADDR, NLM_F_DUMP);
  ifaddrmsg info{};
  info.ifa_family = AF_INET;
  m.Body(info);
  bool local = false;
  PHX_TRY(Exchange(m.Finish(), "listing addresses", [&](const nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWADDR) return;
    const auto* a = static_cast<const ifaddrmsg*>(NLMSG_DATA(h));
    int length = static_cast<int>(IFA_PAYLOAD(h));
    for (auto* attr = IFA_RTA(a); RTA_OK(attr, length); attr = RTA_NEXT(attr, length)) {
      if (attr->rta_type != IFA_LOCAL || RTA_PAYLOAD(attr) != sizeof(in_addr_t)) continue;
      in_addr_t value;
      std::memcpy(&value, RTA_DATA(attr), sizeof value);
      if (subnet.Contains(ntohl(value))) local = true;
    }
  }));
  return local;
}

Result<void> Rtnetlink::DeleteLink(std::string_view name) {
  MessageBuilder m(RTM_DELLINK, 0);
  ifinfomsg info{};
  info.ifi_family = AF_UNSPEC;
  m.Body(info);
  m.Attribute(IFLA_IFNAME, name);
  auto deleted = Exchange(m.Finish(), "removing link " + std::string(name));
  if (!deleted && deleted.error().code == ErrorCode::kNotFound) return {};
  return deleted;
}

}  // namespace phoenix::agent::net
