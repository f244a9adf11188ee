// Test support: a minimal blocking HTTP/1.0 GET over loopback, enough to talk to guests' web apps
// through their published ports. Test code only.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "proto/support/error.h"

namespace phoenix::testing {

struct HttpResponse {
  int status = 0;
  std::string body;
};

// GET http://127.0.0.1:<port><path>; errors for connect/read failures and timeouts.
Result<HttpResponse> HttpGet(uint16_t port, const std::string& path,
                             std::chrono::milliseconds timeout = std::chrono::seconds(5));
// GET http://<ip>:<port><path> (an IPv4 literal).
Result<HttpResponse> HttpGetAt(const std::string& ip, uint16_t port, const std::string& path,
                               std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace phoenix::testing
