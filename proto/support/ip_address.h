// IP address literals: the one rule for "is this an address HAProxy, a socket or another node can
// use as is" (no host names: nothing in Phoenix resolves names on a data path), and IPv4 subnets
// (nodes' instance networks). Header-only.
//
// Thread-safety: pure functions.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace phoenix {

inline bool IsIpv4Literal(std::string_view text) {
  in_addr v4{};
  return text.size() < INET_ADDRSTRLEN && ::inet_pton(AF_INET, std::string(text).c_str(), &v4) == 1;
}

inline bool IsIpLiteral(std::string_view text) {
  in6_addr v6{};
  return IsIpv4Literal(text) || (text.size() < INET6_ADDRSTRLEN &&
                                 ::inet_pton(AF_INET6, std::string(text).c_str(), &v6) == 1);
}

// 0.0.0.0 or :: (any address): a listener's wildcard, not somewhere to connect to.
inline bool IsUnspecifiedAddress(std::string_view text) {
  if (IsIpv4Literal(text)) {
    in_addr v4{};
    ::inet_pton(AF_INET, std::string(text).c_str(), &v4);
    return v4.s_addr == 0;
  }
  in6_addr v6{};
  if (!IsIpLiteral(text)) return false;
  ::inet_pton(AF_INET6, std::string(text).c_str(), &v6);
  return IN6_IS_ADDR_UNSPECIFIED(&v6);
}

// An IPv4 subnet, "10.88.1.0/24": a node's instance network. Host bits must be zero, and the prefix
// leaves room for at least a gateway and two instances (/8 to /29).
struct Ipv4Subnet {
  uint32_t network = 0;  // host byte order
  int prefix = 0;

  uint32_t mask() const { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }
  bool Contains(uint32_t address) const { return (address & mask()) == network; }
  bool Overlaps(const Ipv4Subnet& other) const {
    const int shorter = prefix < other.prefix ? prefix : other.prefix;
    const uint32_t m = shorter == 0 ? 0 : ~uint32_t{0} << (32 - shorter);
    return (network & m) == (other.network & m);
  }
  uint32_t gateway() const { return network + 1; }          // the node's own address in it
  uint32_t broadcast() const { return network | ~mask(); }  // never given to an instance
  bool operator==(const Ipv4Subnet&) const = default;
};

inline std::string FormatIpv4(uint32_t address) {
  in_addr a{.s_addr = htonl(address)};
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a, text, sizeof text);
  return text;
}

inline std::string FormatSubnet(const Ipv4Subnet& subnet) {
  return FormatIpv4(subnet.network) + "/" + std::to_string(subnet.prefix);
}

// "10.88.1.0/24" -> subnet; nullopt for anything else (host bits set, prefix outside 8..29).
inline std::optional<Ipv4Subnet> ParseIpv4Subnet(std::string_view text) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  const std::string_view address = text.substr(0, slash);
  const std::string_view prefix = text.substr(slash + 1);
  if (!IsIpv4Literal(address) || prefix.empty() || prefix.size() > 2) return std::nullopt;
  int length = 0;
  for (char c : prefix) {
    if (c < '0' || c > '9') return std::nullopt;
    length = length * 10 + (c - '0');
  }
  if (length < 8 || length > 29) return std::nullopt;
  in_addr a{};
  ::inet_pton(AF_INET, std::string(address).c_str(), &a);
  Ipv4Subnet subnet{.network = ntohl(a.s_addr), .prefix = length};
  if ((subnet.network & ~subnet.mask()) != 0) return std::nullopt;
  return subnet;
}

}  // namespace phoenix
