// phoenix-vmm's command line: the three subcommands and their flags, parsed and checked into one
// plain struct before anything is opened, plus the --help text. The agent depends on exactly this
// interface (see /work/briefs/vmm-shared.md and the usage text).
//
// Plain values; no threading concerns.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agent/vmm/result.h"

namespace phoenix::vmm {

enum class CliCommand { kHelp, kBoot, kRestore, kInspect };

struct CliOptions {
  CliCommand command = CliCommand::kHelp;
  // boot
  std::string kernel;
  std::string initrd;
  std::string cmdline;
  uint64_t memory_mib = 128;
  uint32_t vcpus = 1;
  std::array<uint8_t, 6> mac{0x06, 0x00, 0xac, 0x10, 0x00, 0x02};
  std::string ready_marker;
  std::string snapshot_to;
  bool exit_after_snapshot = false;
  // restore, inspect
  std::string snapshot;
  // boot, restore
  int tap_fd = -1;
  std::string console_log;
  std::string control_socket;
  int ready_fd = -1;
  // boot, restore: the jail (jail/jail.h); --jail-uid, --jail-gid and --jail-root come together
  uint32_t jail_uid = 0;
  uint32_t jail_gid = 0;
  std::string jail_root;
  std::vector<std::string> cgroups;  // --cgroup DIR, repeatable
  bool jailed() const { return !jail_root.empty(); }
};

// `args` excludes argv[0]. Flags take `--flag VALUE` or `--flag=VALUE`.
Result<CliOptions> ParseCommandLine(std::span<const std::string_view> args);
std::string UsageText();
Result<std::array<uint8_t, 6>> ParseMac(std::string_view text);

}  // namespace phoenix::vmm
