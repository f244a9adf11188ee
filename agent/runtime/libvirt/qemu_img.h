// QemuImg: creates the qcow2 copy-on-write overlays instances and golden snapshots run on, by
// spawning qemu-img (posix_spawn), bounded in time, with its output in the error on failure.
//
// Thread-safety: stateless; safe to call from several threads.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "proto/support/error.h"

namespace phoenix::agent::libvirt {

// Runs argv[0] (PATH lookup) with stdin from /dev/null; kills it after `timeout`. Errors carry the
// exit status and the command's combined stdout/stderr (truncated).
Result<void> RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);

// qemu-img create -f qcow2 -b <backing> -F qcow2 <overlay>. Fails if `overlay` exists.
Result<void> CreateOverlay(const std::filesystem::path& backing,
                           const std::filesystem::path& overlay);

}  // namespace phoenix::agent::libvirt
