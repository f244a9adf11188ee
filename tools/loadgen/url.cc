#include "tools/loadgen/url.h"

#include <charconv>

#include <boost/asio/ip/address.hpp>

namespace phoenix::loadgen {

bool IsLoopbackAddress(std::string_view ip) {
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(std::string(ip), ec);
  return !ec && address.is_loopback();
}

std::string Target::ToString() const {
  const bool v6 = host.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + path;
}

Result<Target> ParseTarget(std::string_view url, std::string_view field) {
  const std::string f(field);
  const std::string quoted = "\"" + std::string(url) + "\"";
  constexpr std::string_view kScheme = "http://";
  if (!url.starts_with(kScheme)) {
    return InvalidArgument(f, quoted + ": only http:// URLs are supported");
  }
  std::string_view rest = url.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  Target t;
  if (slash != std::string_view::npos) t.path = std::string(rest.substr(slash));
  std::string_view host, port;
  if (authority.starts_with('[')) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return InvalidArgument(f, quoted + ": unclosed [");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return InvalidArgument(f, quoted + ": expected :PORT after ]");
      port = after.substr(1);
    }
  } else {
    size_t colon = authority.rfind(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (host.empty()) return InvalidArgument(f, quoted + ": no host");
  if (!port.empty() || authority.ends_with(':')) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value == 0 ||
        value > 65535) {
      return InvalidArgument(f, quoted + ": port must be 1..65535");
    }
    t.port = static_cast<uint16_t>(value);
  }
  t.host = host == "localhost" ? "127.0.0.1" : std::string(host);
  if (!IsLoopbackAddress(t.host)) {
    return InvalidArgument(f, quoted +
                                  ": phoenix-loadgen only sends to loopback addresses "
                                  "(127.0.0.0/8, ::1, localhost)");
  }
  return t;
}

}  // namespace phoenix::loadgen
