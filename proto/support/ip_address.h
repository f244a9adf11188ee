// IP address literals: the one rule for "is this an address HAProxy, a socket or another node can
// use as is" (no host names: nothing in Phoenix resolves names on a data path). Header-only.
//
// Thread-safety: pure functions.
#pragma once

#include <arpa/inet.h>

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

}  // namespace phoenix
