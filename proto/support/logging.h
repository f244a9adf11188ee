// Process-wide logging setup shared by the Phoenix binaries (spdlog to stderr).
#pragma once

#include <string_view>

namespace phoenix {

// level: trace|debug|info|warn|error. Unknown levels fall back to info. Call once, early in main.
void InitLogging(std::string_view program, std::string_view level);

}  // namespace phoenix
