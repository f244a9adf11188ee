// Target URLs for phoenix-loadgen: "http://HOST:PORT/PATH" where HOST is an IP literal on the
// loopback network (127.0.0.0/8, ::1) or "localhost". Anything else is refused: the load
// generator only ever sends traffic to this host.
//
// Pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "proto/support/error.h"

namespace phoenix::loadgen {

struct Target {
  std::string host;  // IP literal ("127.0.0.1", "::1")
  uint16_t port = 80;
  std::string path = "/";
  std::string ToString() const;  // "http://127.0.0.1:8080/"
  bool operator==(const Target&) const = default;
};

// Errors: kInvalidArgument (field `field`) for a malformed URL, a scheme other than http, or a
// host that is not loopback.
[[nodiscard]] Result<Target> ParseTarget(std::string_view url, std::string_view field = "--target");

// Whether `ip` is an IP literal on the loopback network.
bool IsLoopbackAddress(std::string_view ip);

}  // namespace phoenix::loadgen
