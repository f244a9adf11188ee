// How the agent talks to phoenix-vmm: the command lines of `phoenix-vmm boot` / `restore` (the CLI
// of /work/briefs/vmm-shared.md item 4, which this must match), the golden snapshot key, the one
// line the monitor writes on its --ready-fd, and recognising a monitor process again after an agent
// restart from /proc/<pid>/cmdline.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/runtime/runtime.h"
#include "proto/support/error.h"

namespace phoenix::agent::microvm {

// The descriptors the monitor finds its tap and ready pipe on (dup'ed there by the spawner).
inline constexpr int kTapFd = 3;
inline constexpr int kReadyFd = 4;

// The golden snapshot of an image is only valid for the memory size and vCPU count it was taken
// with (the memory file is that size; the vCPU states are that many), and for the machine it was
// taken on: "<image hex>-<M>m-<N>c-<generation>". kGoldenGeneration changes when phoenix-vmm's
// machine gains something a clone needs (v2: the VM generation id device, without which clones
// share their RNG), so older snapshots are never restored again and are rebuilt.
inline constexpr std::string_view kGoldenGeneration = "v2";
// The image id (a content hash) covers kernel, initrd, command line and ready marker.
// InvalidArgument for an image id that is not a "sha256:<hex>" / plain hex name.
[[nodiscard]] Result<std::string> GoldenKey(const ImageArtifacts& image, uint32_t vcpus,
                                            uint32_t memory_mib);

// The image's command line plus the guest address every clone keeps (guest_netns.h).
std::string GuestCmdline(std::string_view image_cmdline);

// How a monitor is jailed (phoenix-vmm's --jail-* and --cgroup flags, agent/vmm/jail/jail.h).
struct JailFlags {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::filesystem::path root;
  std::vector<std::filesystem::path> cgroups;
};

// The monitor uid of `name` (an instance, or a golden boot's key): base + 1 + a hash of the name
// modulo 65535, so monitors of different instances almost never share a uid, and one instance
// keeps its uid across restarts. A shared uid gives nothing away either: a monitor can neither
// signal, trace nor open another's files (its seccomp filter and empty root forbid it).
uint32_t MonitorUid(uint32_t base, std::string_view name);

struct BootCommand {
  std::filesystem::path vmm;
  std::filesystem::path kernel;
  std::filesystem::path initrd;  // empty: none
  std::string cmdline;
  uint32_t memory_mib = 128;
  uint32_t vcpus = 1;
  std::string ready_marker;           // empty: ready once the vCPUs run
  std::filesystem::path snapshot_to;  // golden boot: snapshot here at the marker, then exit
  std::filesystem::path control;      // empty: no control socket (golden boot)
  std::filesystem::path console_log;
  std::optional<JailFlags> jail;
};
std::vector<std::string> BootArgv(const BootCommand& command);

struct RestoreCommand {
  std::filesystem::path vmm;
  std::filesystem::path snapshot;
  std::filesystem::path control;
  std::filesystem::path console_log;
  std::optional<JailFlags> jail;
};
std::vector<std::string> RestoreArgv(const RestoreCommand& command);

// The monitor's --ready-fd line: "ready setup_us=U [marker_ms=M] [snapshot=DIR]" or
// "error MESSAGE" (an Error with that message). Unknown keys are ignored.
struct ReadyLine {
  uint64_t setup_us = 0;
  std::optional<uint64_t> marker_ms;
  std::filesystem::path snapshot;
};
[[nodiscard]] Result<ReadyLine> ParseReadyLine(std::string_view line);

// /proc/<pid>/cmdline split at its NULs.
std::vector<std::string> SplitProcCmdline(std::string_view raw);
// Whether a process with this command line is the monitor of the instance whose control socket is
// `control` (an exact `--control <path>` pair: the path is per instance, so a reused pid running
// anything else, or another instance's monitor, never matches).
bool IsMonitorOf(const std::vector<std::string>& argv, const std::filesystem::path& control);

}  // namespace phoenix::agent::microvm

namespace phoenix::agent::microvm {

// Why a monitor process ended, for RuntimeEvent: crashed=false only for our own stop and a guest
// that shut down (exit 0). Exit 2 (the guest asked for a reset: a reboot or, with panic=-1, a
// kernel panic) and everything else count as crashes. `wait_status` is nullopt when it could not
// be read (an adopted monitor reaped by someone else); `log_tail` is the end of vmm.log.
struct ExitVerdict {
  bool crashed = true;
  std::string reason;
};
ExitVerdict ClassifyMonitorExit(std::optional<int> wait_status, bool stopped_by_us,
                                bool killed_by_us, std::string_view log_tail);

}  // namespace phoenix::agent::microvm
