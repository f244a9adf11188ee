// `phoenixctl service ...`: create, list, show, scale, autoscale and remove the supervisor's
// services (N replicas of one guest spec placed across the cluster's nodes). What they print is
// in service_render.h.
//
// Threading: functions run on the caller's thread; see cli.h for the Context rules.
#pragma once

#include <chrono>
#include <ostream>
#include <span>
#include <string>

#include "tools/phoenixctl/cli.h"
#include "tools/phoenixctl/service_render.h"

namespace phoenix::ctl {

int RunServiceGroup(Context& ctx, std::span<const std::string> args);

// "[a-z0-9][a-z0-9-]{0,39}", as the supervisor requires.
bool IsValidServiceName(std::string_view name);

// --port: "8080:80", "8080" (same guest port), "5432:5432/tcp".
[[nodiscard]] Result<v1::FrontDoor> ParseFrontDoor(std::string_view text);

}  // namespace phoenix::ctl
