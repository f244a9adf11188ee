#include "agent/net/node_network.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "proto/support/unique_fd.h"

namespace phoenix::agent::net {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kPeerName = "eth0";

Result<void> EnableForwarding() {
  UniqueFd fd(::open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC));
  if (!fd) return ErrnoError("opening /proc/sys/net/ipv4/ip_forward");
  if (::write(fd.get(), "1\n", 2) != 2) return ErrnoError("enabling IPv4 forwarding");
  return {};
}

std::string ReadSmallFile(const fs::path& file) {
  std::ifstream in(file);
  std::string text;
  std::getline(in, text);
  return text;
}

}  // namespace

std::string NodeNetwork::BridgeName(const Ipv4Subnet& subnet) {
  return fmt::format("phx-{:08x}", subnet.network);
}

std::string NodeNetwork::HostVethName(uint32_t address) {
  return fmt::format("phx{:08x}", address);
}

NodeNetwork::NodeNetwork(Ipv4Subnet subnet, fs::path ipam_dir, Rtnetlink netlink, int bridge)
    : subnet_(subnet),
      ipam_dir_(std::move(ipam_dir)),
      bridge_(BridgeName(subnet)),
      netlink_(std::move(netlink)),
      bridge_index_(bridge) {}

Result<std::shared_ptr<NodeNetwork>> NodeNetwork::Open(const Ipv4Subnet& subnet,
                                                       const fs::path& ipam_dir) {
  std::error_code ec;
  fs::create_directories(ipam_dir, ec);
  if (ec) return Internal("creating " + ipam_dir.string() + ": " + ec.message());
  fs::permissions(ipam_dir, fs::perms::owner_all, ec);
  if (ec) return Internal("restricting " + ipam_dir.string() + ": " + ec.message());

  auto netlink = Rtnetlink::Open();
  if (!netlink) return std::unexpected(netlink.error());
  const std::string bridge = BridgeName(subnet);
  auto index = netlink->LinkIndex(bridge);
  if (!index && index.error().code == ErrorCode::kNotFound) {
    PHX_TRY(netlink->AddBridge(bridge));
    index = netlink->LinkIndex(bridge);
  }
  if (!index) return std::unexpected(index.error().Wrap("node network"));
  PHX_TRY(netlink->AddAddress(*index, subnet.gateway(), subnet.prefix));
  PHX_TRY(netlink->SetLinkUp(*index));
  PHX_TRY(EnableForwarding());
  // Instances that outlived the bridge (deleted while they ran, or an agent of another host
  // network setup): their veths go back on it, so adopted instances are reachable again.
  auto links = netlink->Links();
  if (!links) return std::unexpected(links.error().Wrap("node network"));
  for (const Link& link : *links) {
    uint32_t address = 0;
    if (link.name.size() != 11 || !link.name.starts_with("phx") || link.master == *index ||
        std::sscanf(link.name.c_str() + 3, "%8x", &address) != 1 || !subnet.Contains(address) ||
        HostVethName(address) != link.name) {
      continue;
    }
    PHX_TRY(netlink->SetMaster(link.index, *index));
    PHX_TRY(netlink->SetLinkUp(link.index));
    spdlog::warn("node network: {} ({}) was off bridge {}: attached again", link.name,
                 FormatIpv4(address), bridge);
  }
  spdlog::info("node network: bridge {} at {}/{} for instances of {}", bridge,
               FormatIpv4(subnet.gateway()), subnet.prefix, FormatSubnet(subnet));
  return std::shared_ptr<NodeNetwork>(
      new NodeNetwork(subnet, ipam_dir, std::move(*netlink), *index));
}

Result<bool> NodeNetwork::TryClaimLocked(uint32_t address, std::string_view instance) {
  const fs::path file = ipam_dir_ / FormatIpv4(address);
  UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) {
    if (errno == EEXIST) return false;
    return ErrnoError("claiming " + file.string());
  }
  const std::string text = std::string(instance) + "\n";
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
      ::fsync(fd.get()) != 0) {
    auto error = ErrnoError("writing " + file.string());
    ::unlink(file.c_str());
    return error;
  }
  return true;
}

Result<std::vector<uint32_t>> NodeNetwork::ClaimsOfLocked(std::string_view instance) const {
  std::vector<uint32_t> claims;
  std::error_code ec;
  for (auto it = fs::directory_iterator(ipam_dir_, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    in_addr a{};
    if (ReadSmallFile(it->path()) == instance &&
        ::inet_pton(AF_INET, it->path().filename().c_str(), &a) == 1) {
      claims.push_back(ntohl(a.s_addr));
    }
  }
  if (ec) return Internal("reading " + ipam_dir_.string() + ": " + ec.message());
  return claims;
}

Result<uint32_t> NodeNetwork::ClaimAddressLocked(std::string_view instance,
                                                 std::string_view preferred) {
  const uint32_t first = subnet_.gateway() + 1;
  const uint32_t last = subnet_.broadcast() - 1;
  // The address this instance already holds (a Start retried after a crash) comes first.
  auto claims = ClaimsOfLocked(instance);
  if (!claims) return std::unexpected(claims.error());
  for (uint32_t held : *claims) {
    if (subnet_.Contains(held)) return held;
  }
  in_addr wanted{};
  if (!preferred.empty() && ::inet_pton(AF_INET, std::string(preferred).c_str(), &wanted) == 1) {
    const uint32_t address = ntohl(wanted.s_addr);
    if (address >= first && address <= last) {
      auto claimed = TryClaimLocked(address, instance);
      if (!claimed) return std::unexpected(claimed.error());
      if (*claimed) return address;
    }
  }
  for (uint32_t address = first; address <= last; ++address) {
    auto claimed = TryClaimLocked(address, instance);
    if (!claimed) return std::unexpected(claimed.error());
    if (*claimed) return address;
  }
  return MakeError(ErrorCode::kResourceExhausted,
                   "node network " + FormatSubnet(subnet_) + " has no free address left");
}

void NodeNetwork::ReleaseAddressLocked(uint32_t address) {
  const fs::path file = ipam_dir_ / FormatIpv4(address);
  if (::unlink(file.c_str()) != 0 && errno != ENOENT) {
    spdlog::warn("node network: cannot free {}: {}", file.string(), std::strerror(errno));
  }
}

Result<std::string> NodeNetwork::Attach(std::string_view instance, const fs::path& netns_file,
                                        std::string_view preferred) {
  std::lock_guard lock(mu_);
  auto address = ClaimAddressLocked(instance, preferred);
  if (!address) return std::unexpected(address.error().Wrap("attaching " + std::string(instance)));
  const std::string veth = HostVethName(*address);
  auto attach = [&]() -> Result<void> {
    UniqueFd netns(::open(netns_file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!netns) return ErrnoError("opening network namespace " + netns_file.string());
    // A veth of that name is left from an instance that held this address before a crash.
    PHX_TRY(netlink_.DeleteLink(veth));
    PHX_TRY(netlink_.AddVethPair(veth, bridge_index_, kPeerName, netns.get()));
    auto host_end = netlink_.LinkIndex(veth);
    if (!host_end) return std::unexpected(host_end.error());
    PHX_TRY(netlink_.SetLinkUp(*host_end));
    auto inside = Rtnetlink::OpenIn(netns_file);
    if (!inside) return std::unexpected(inside.error());
    auto eth0 = inside->LinkIndex(kPeerName);
    if (!eth0) return std::unexpected(eth0.error());
    PHX_TRY(inside->AddAddress(*eth0, *address, subnet_.prefix));
    PHX_TRY(inside->SetLinkUp(*eth0));
    return inside->ReplaceRoute(Ipv4Route{.destination = Ipv4Subnet{.network = 0, .prefix = 0},
                                          .gateway = subnet_.gateway()});
  };
  if (auto r = attach(); !r) {
    if (auto d = netlink_.DeleteLink(veth); !d) {
      spdlog::warn("node network: {} left behind: {}", veth, d.error().message);
    }
    ReleaseAddressLocked(*address);
    return std::unexpected(
        r.error().Wrap("attaching " + std::string(instance) + " to the node network"));
  }
  return FormatIpv4(*address);
}

Result<void> NodeNetwork::Detach(std::string_view instance, std::string_view address) {
  std::lock_guard lock(mu_);
  if (address.empty()) {
    // The instance's record did not get its address (the agent died right after the claim): its
    // claim file, if any, says which.
    auto claims = ClaimsOfLocked(instance);
    if (!claims) return std::unexpected(claims.error());
    if (claims->empty()) return {};
    PHX_TRY(netlink_.DeleteLink(HostVethName(claims->front())));
    ReleaseAddressLocked(claims->front());
    return {};
  }
  in_addr a{};
  if (::inet_pton(AF_INET, std::string(address).c_str(), &a) != 1) {
    return InvalidArgument("address", "not an IPv4 address: \"" + std::string(address) + "\"");
  }
  const uint32_t value = ntohl(a.s_addr);
  const fs::path file = ipam_dir_ / FormatIpv4(value);
  if (ReadSmallFile(file) != instance) return {};  // freed already, maybe given to another
  // Deleting the host end takes the peer with it at once; a namespace's own teardown would do it
  // too, but asynchronously, and the next holder of this address needs the name now.
  PHX_TRY(netlink_.DeleteLink(HostVethName(value)));
  ReleaseAddressLocked(value);
  return {};
}

Result<void> NodeNetwork::SyncPeerRoutes(const std::vector<PeerRoute>& peers) {
  std::lock_guard lock(mu_);
  std::vector<PeerRoute> wanted;
  for (const PeerRoute& p : peers) {
    if (p.via == 0 || p.subnet.Overlaps(subnet_)) continue;
    auto local = netlink_.SubnetIsLocal(p.subnet);
    if (!local) return std::unexpected(local.error());
    if (*local) continue;
    wanted.push_back(p);
  }
  auto current = netlink_.PhoenixRoutes();
  if (!current) return std::unexpected(current.error());
  std::vector<std::string> problems;
  for (const PeerRoute& p : wanted) {
    const Ipv4Route route{.destination = p.subnet, .gateway = p.via};
    if (std::ranges::find(*current, route) != current->end()) continue;
    if (auto r = netlink_.ReplaceRoute(route); !r) {
      problems.push_back(r.error().message);
    } else {
      spdlog::info("node network: {} via {}", FormatSubnet(p.subnet), FormatIpv4(p.via));
    }
  }
  for (const Ipv4Route& route : *current) {
    const bool still = std::ranges::any_of(
        wanted, [&](const PeerRoute& p) { return p.subnet == route.destination; });
    if (still) continue;
    if (auto r = netlink_.DeleteRoute(route.destination); !r) {
      problems.push_back(r.error().message);
    } else {
      spdlog::info("node network: route to {} removed", FormatSubnet(route.destination));
    }
  }
  if (!problems.empty()) return Internal(fmt::format("{}", fmt::join(problems, "; ")));
  return {};
}

}  // namespace phoenix::agent::net
