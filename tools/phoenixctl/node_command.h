// `phoenixctl node info`: the host as the agent sees it (capacity, allocations, runtimes and
// their accelerators). Threading: caller's thread.
#pragma once

#include <ostream>
#include <span>
#include <string>

#include "tools/phoenixctl/cli.h"

namespace phoenix::ctl {

int RunNodeGroup(Context& ctx, std::span<const std::string> args);

void RenderNodeInfo(const v1::NodeInfo& info, std::ostream& out);

}  // namespace phoenix::ctl
