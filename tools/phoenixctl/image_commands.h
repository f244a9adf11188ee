// `phoenixctl image ...`: list, build (streaming the recipe's output) and import golden images.
// Threading: caller's thread.
#pragma once

#include <chrono>
#include <ostream>
#include <span>
#include <string>

#include "tools/phoenixctl/cli.h"

namespace phoenix::ctl {

// Builds run a whole recipe (kernel, rootfs, snapshot); without an explicit --timeout they get
// this.
inline constexpr std::chrono::minutes kDefaultBuildTimeout{30};

int RunImageGroup(Context& ctx, std::span<const std::string> args);

// NAME TAG ID RUNTIMES SIZE AGE
void RenderImageTable(std::span<const v1::Image> images, std::chrono::system_clock::time_point now,
                      std::ostream& out);
// "sha256:0123456789ab" (the first 12 hex digits identify an image in practice).
std::string ShortImageId(const std::string& id);

}  // namespace phoenix::ctl
