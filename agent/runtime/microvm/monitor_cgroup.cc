#include "agent/runtime/microvm/monitor_cgroup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace phoenix::agent::microvm {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kParent = "phoenix";

Result<void> WriteControl(const fs::path& file, const std::string& value) {
  UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return ErrnoError("open " + file.string());
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size()))
    return ErrnoError("write \"" + value + "\" to " + file.string());
  return {};
}

Result<void> MakeDir(const fs::path& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    return ErrnoError("mkdir " + dir.string());
  return {};
}

}  // namespace

MonitorLimits LimitsFor(uint32_t memory_mib, uint32_t vcpus) {
  return {.memory_bytes = (uint64_t{memory_mib} + 128) << 20, .pids = vcpus + 8};
}

std::vector<fs::path> MonitorCgroupDirs(oci::CgroupLayout layout, const fs::path& root,
                                        const std::string& name) {
  const fs::path rel = fs::path(kParent) / ("vmm-" + name);
  if (layout == oci::CgroupLayout::kUnified) return {root / rel};
  return {root / "memory" / rel, root / "pids" / rel};
}

Result<std::vector<fs::path>> CreateMonitorCgroup(oci::CgroupLayout layout, const fs::path& root,
                                                  const std::string& name,
                                                  const MonitorLimits& limits) {
  const std::vector<fs::path> dirs = MonitorCgroupDirs(layout, root, name);
  auto made = [&]() -> Result<void> {
    if (layout == oci::CgroupLayout::kUnified) {
      // v2 hands controllers down one level at a time.
      PHX_TRY(WriteControl(root / "cgroup.subtree_control", "+memory +pids"));
      PHX_TRY(MakeDir(root / kParent));
      PHX_TRY(WriteControl(root / kParent / "cgroup.subtree_control", "+memory +pids"));
      PHX_TRY(MakeDir(dirs[0]));
      PHX_TRY(WriteControl(dirs[0] / "memory.max", std::to_string(limits.memory_bytes)));
      // Absent without swap accounting: then there is no swap to cap.
      if (fs::exists(dirs[0] / "memory.swap.max"))
        PHX_TRY(WriteControl(dirs[0] / "memory.swap.max", "0"));
      return WriteControl(dirs[0] / "pids.max", std::to_string(limits.pids));
    }
    PHX_TRY(MakeDir(dirs[0].parent_path()));
    PHX_TRY(MakeDir(dirs[0]));
    PHX_TRY(WriteControl(dirs[0] / "memory.limit_in_bytes", std::to_string(limits.memory_bytes)));
    PHX_TRY(MakeDir(dirs[1].parent_path()));
    PHX_TRY(MakeDir(dirs[1]));
    return WriteControl(dirs[1] / "pids.max", std::to_string(limits.pids));
  }();
  if (!made) {
    (void)RemoveMonitorCgroup(layout, root, name);
    return std::unexpected(made.error().Wrap("cgroup of monitor " + name));
  }
  return dirs;
}

std::vector<std::string> RemoveMonitorCgroup(oci::CgroupLayout layout, const fs::path& root,
                                             const std::string& name) {
  std::vector<std::string> problems;
  for (const fs::path& dir : MonitorCgroupDirs(layout, root, name)) {
    if (::rmdir(dir.c_str()) != 0 && errno != ENOENT)
      problems.push_back(ErrnoError("rmdir " + dir.string()).error().message);
  }
  return problems;
}

}  // namespace phoenix::agent::microvm
