// UsageReader: reads the cumulative CPU time and current memory of one running instance from the
// host kernel. Containers are measured by their whole cgroup (every process in the container);
// VMs and micro-VMs by their hypervisor / monitor process (QEMU, phoenix-vmm), whose CPU time is
// the guest's vCPUs plus its device emulation.
//
// Which cgroup: the one the instance's process is in, read from /proc/<pid>/cgroup, so this works
// whatever path the runtime chose and on every layout (detect, don't configure): a v1 "cpuacct"
// hierarchy when the process is in one (cgroup v1 and hybrid hosts, where crun runs with v1
// controllers only), else the v2 unified one ("0::").
//
// Threading: ProcUsageReader only reads files; safe from any thread. Reads are a few small
// pseudo-files, cheap enough for the agent's loop once a second per guest.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "proto/support/error.h"

namespace phoenix::agent::metrics {

struct UsageSource {
  enum class Kind {
    kCgroup,   // the cgroup of `pid` (containers)
    kProcess,  // the process `pid` itself (VMs, micro-VMs)
  };
  Kind kind = Kind::kProcess;
  int pid = 0;
};

struct Usage {
  uint64_t cpu_ns = 0;                   // cumulative CPU time (user + system)
  std::optional<uint64_t> memory_bytes;  // current; nullopt when unreadable
};

class UsageReader {
 public:
  virtual ~UsageReader() = default;
  // Errors: kNotFound when the process (or its cgroup) is gone, kInternal for unreadable or
  // malformed files (naming the file).
  [[nodiscard]] virtual Result<Usage> Read(const UsageSource& source) = 0;
};

class ProcUsageReader : public UsageReader {
 public:
  // Roots are parameters so tests can point them at a fake tree.
  explicit ProcUsageReader(std::filesystem::path proc_root = "/proc",
                           std::filesystem::path cgroup_root = "/sys/fs/cgroup");
  [[nodiscard]] Result<Usage> Read(const UsageSource& source) override;

 private:
  Result<Usage> ReadProcess(int pid);
  Result<Usage> ReadCgroup(int pid);

  std::filesystem::path proc_root_;
  std::filesystem::path cgroup_root_;
  long ticks_per_second_;
};

// --- Pure parsers (exposed for tests) ---

// utime + stime (fields 14 and 15) in clock ticks from /proc/<pid>/stat text. The command name
// (field 2) may hold spaces and parentheses, so fields are counted after the last ')'.
std::optional<uint64_t> ParseProcStatCpuTicks(std::string_view text);
// VmRSS from /proc/<pid>/status text, in bytes.
std::optional<uint64_t> ParseStatusRssBytes(std::string_view text);
// "usage_usec N" from a cgroup v2 cpu.stat, in microseconds.
std::optional<uint64_t> ParseCpuStatUsageUsec(std::string_view text);

// The cgroup of a process, from /proc/<pid>/cgroup text.
struct CgroupPaths {
  // v1: the hierarchy directory name ("cpuacct", "cpu,cpuacct") and the path inside it.
  std::optional<std::pair<std::string, std::string>> cpuacct_v1;
  std::optional<std::pair<std::string, std::string>> memory_v1;
  std::optional<std::string> unified;  // v2 path ("0::<path>")
};
CgroupPaths ParseProcCgroup(std::string_view text);

}  // namespace phoenix::agent::metrics
