// `phoenixctl guest ...`: run, list, show, start, stop, remove, kill guests and read their console
// logs. Also the parsers and renderers of guest specs and guests that the bench reuses.
//
// Threading: functions run on the caller's thread; see cli.h for the Context rules.
#pragma once

#include <chrono>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tools/phoenixctl/cli.h"

namespace phoenix::ctl {

int RunGuestGroup(Context& ctx, std::span<const std::string> args);

// "[[HOSTIP:]HOSTPORT:]GUESTPORT": "80", "8080:80", "127.0.0.1:8080:80". host port 0 or absent
// lets the agent pick.
[[nodiscard]] Result<v1::PortMapping> ParsePublish(std::string_view text);
// "PORT[/PATH]": "80" (path left to the agent's default /health), "80/healthz".
[[nodiscard]] Result<v1::HttpProbe> ParseHttpProbe(std::string_view text);

// NAME RUNTIME STATE HEALTH RESTARTS ENDPOINT IMAGE AGE
void RenderGuestTable(std::span<const v1::Guest> guests, std::chrono::system_clock::time_point now,
                      std::ostream& out);
// One "Key: value" line per fact, for `guest show` and `guest run`.
void RenderGuestDetail(const v1::Guest& guest, std::ostream& out);
// "healthy", "unhealthy" or "-" (not running, or no health check).
std::string HealthColumn(const v1::Guest& guest);

}  // namespace phoenix::ctl
