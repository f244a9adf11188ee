// `phoenixctl token create` and `phoenixctl join-token create`: mint a bearer token for the
// supervisor's admin API (viewer, operator or admin) or a join token that lets agents enroll. Both
// need an admin token; the minted token is printed once (the supervisor keeps only its hash).
//
// Threading: caller's thread.
#pragma once

#include <span>
#include <string>

#include "tools/phoenixctl/cli.h"

namespace phoenix::ctl {

int RunTokenGroup(Context& ctx, std::span<const std::string> args);
int RunJoinTokenGroup(Context& ctx, std::span<const std::string> args);

}  // namespace phoenix::ctl
