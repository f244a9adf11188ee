#include "agent/runtime/oci/cgroup_layout.h"

#include <linux/magic.h>
#include <sys/statfs.h>

#include <fstream>
#include <sstream>

namespace phoenix::agent::oci {

namespace fs = std::filesystem;

std::string_view CgroupLayoutName(CgroupLayout layout) {
  switch (layout) {
    case CgroupLayout::kUnified:
      return "cgroup v2";
    case CgroupLayout::kLegacy:
      return "cgroup v1";
    case CgroupLayout::kHybrid:
      return "cgroup v1+v2 hybrid";
  }
  return "unknown";
}

Result<CgroupLayout> ClassifyCgroupLayout(int64_t root_fs_type,
                                          std::optional<int64_t> unified_fs_type) {
  if (root_fs_type == CGROUP2_SUPER_MAGIC) return CgroupLayout::kUnified;
  if (root_fs_type != TMPFS_MAGIC) {
    return FailedPrecondition(
        "/sys/fs/cgroup is neither a cgroup2 mount nor a tmpfs of v1 hierarchies: no cgroups to "
        "limit containers with");
  }
  if (unified_fs_type && *unified_fs_type == CGROUP2_SUPER_MAGIC) return CgroupLayout::kHybrid;
  return CgroupLayout::kLegacy;
}

Result<CgroupLayout> DetectCgroupLayout(const fs::path& root) {
  struct statfs st {};
  if (::statfs(root.c_str(), &st) != 0) return ErrnoError("statfs " + root.string());
  std::optional<int64_t> unified;
  struct statfs ust {};
  if (::statfs((root / "unified").c_str(), &ust) == 0) unified = static_cast<int64_t>(ust.f_type);
  return ClassifyCgroupLayout(static_cast<int64_t>(st.f_type), unified);
}

std::vector<fs::path> ExistingCgroupDirs(const fs::path& root, std::string_view cgroups_path) {
  std::string rel(cgroups_path);
  while (!rel.empty() && rel.front() == '/') rel.erase(0, 1);
  std::vector<fs::path> out;
  if (rel.empty()) return out;
  std::error_code ec;
  if (fs::is_directory(root / rel, ec)) out.push_back(root / rel);
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code ec2;
    if (it->is_symlink(ec2) || !it->is_directory(ec2)) continue;  // cpu -> cpu,cpuacct aliases
    fs::path dir = it->path() / rel;
    if (fs::is_directory(dir, ec2)) out.push_back(dir);
  }
  return out;
}

std::optional<uint64_t> ParseOomKillCount(std::string_view text) {
  std::istringstream in{std::string(text)};
  for (std::string key; in >> key;) {
    uint64_t value = 0;
    if (!(in >> value)) return std::nullopt;
    if (key == "oom_kill") return value;
  }
  return std::nullopt;
}

std::optional<uint64_t> ReadOomKillCount(CgroupLayout layout, const fs::path& root,
                                         std::string_view cgroups_path) {
  std::string rel(cgroups_path);
  while (!rel.empty() && rel.front() == '/') rel.erase(0, 1);
  const fs::path file = layout == CgroupLayout::kUnified
                            ? root / rel / "memory.events"
                            : root / "memory" / rel / "memory.oom_control";
  std::ifstream f(file);
  if (!f) return std::nullopt;
  std::stringstream ss;
  ss << f.rdbuf();
  return ParseOomKillCount(ss.str());
}

}  // namespace phoenix::agent::oci
