#include "agent/runtime/oci/bundle_config.h"

#include <cctype>

#include "agent/runtime/oci/seccomp_profile.h"

namespace phoenix::agent::oci {

namespace {

constexpr uint64_t kMiB = 1024 * 1024;
constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

Json Strings(std::initializer_list<const char*> list) {
  Json::Array a;
  for (const char* s : list) a.emplace_back(s);
  return Json(std::move(a));
}

Json Mount(const char* destination, const char* type, const char* source,
           std::initializer_list<const char*> options) {
  Json::Object m{{"destination", destination}, {"type", type}, {"source", source}};
  if (options.size() > 0) m["options"] = Strings(options);
  return Json(std::move(m));
}

Json NoCapabilities() {
  Json::Object caps;
  for (const char* set : {"bounding", "effective", "inheritable", "permitted", "ambient"}) {
    caps[set] = Json(Json::Array{});
  }
  return Json(std::move(caps));
}

}  // namespace

std::vector<std::string> ContainerArgs(const InstanceSpec& spec) {
  return spec.command.empty() ? spec.image.command : spec.command;
}

std::string HostnameFor(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (out.size() == 63) break;
    unsigned char u = static_cast<unsigned char>(c);
    if (std::isalnum(u)) {
      out += static_cast<char>(std::tolower(u));
    } else if (!out.empty() && out.back() != '-') {
      out += '-';
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.empty() ? "phoenix" : out;
}

Result<Json> BundleConfig(const InstanceSpec& spec, const BundleDetails& details) {
  const std::vector<std::string> args = ContainerArgs(spec);
  if (args.empty()) {
    return InvalidArgument("command", "no command given and the image has no default command");
  }
  if (args.front().empty()) return InvalidArgument("command", "the program name is empty");
  if (spec.memory_mib == 0) return InvalidArgument("memory_mib", "must be positive");
  if (spec.vcpus == 0) return InvalidArgument("vcpus", "must be positive");
  if (details.netns.empty() || !details.netns.is_absolute()) {
    return InvalidArgument("netns", "must be an absolute path");
  }

  Json::Array env{Json(std::string("PATH=") + kDefaultPath), Json("HOME=/"),
                  Json("PHOENIX_INSTANCE=" + spec.instance), Json("PHOENIX_RUNTIME=container")};
  for (const auto& [name, value] : spec.env) {
    if (name.empty() || name.find('=') != std::string::npos ||
        name.find('\0') != std::string::npos) {
      return InvalidArgument("env", "invalid variable name \"" + name + "\"");
    }
    env.emplace_back(name + "=" + value);
  }
  Json::Array argv;
  for (const std::string& a : args) argv.emplace_back(a);

  Json::Object process{
      {"terminal", false},
      {"user", Json::Object{{"uid", details.uid}, {"gid", details.gid}}},
      {"args", std::move(argv)},
      {"env", std::move(env)},
      {"cwd", "/"},
      {"capabilities", NoCapabilities()},
      {"rlimits",
       Json::Array{Json::Object{{"type", "RLIMIT_NOFILE"}, {"hard", 1024}, {"soft", 1024}}}},
      {"noNewPrivileges", true},
  };

  const uint64_t memory = static_cast<uint64_t>(spec.memory_mib) * kMiB;
  Json::Object memory_limits{{"limit", memory}};
  // OCI "swap" is memory+swap: equal to the limit means no swap beyond it.
  if (details.limit_swap) memory_limits["swap"] = memory;
  Json::Object resources{
      {"devices", Json::Array{Json::Object{{"allow", false}, {"access", "rwm"}}}},
      {"memory", std::move(memory_limits)},
      {"cpu", Json::Object{{"quota", static_cast<int64_t>(spec.vcpus * details.cpu_period_us)},
                           {"period", details.cpu_period_us}}},
      {"pids", Json::Object{{"limit", details.pids_limit}}},
  };

  Json::Array namespaces{Json::Object{{"type", "pid"}},
                         Json::Object{{"type", "network"}, {"path", details.netns.string()}},
                         Json::Object{{"type", "ipc"}}, Json::Object{{"type", "uts"}},
                         Json::Object{{"type", "mount"}}};
  if (details.userns_base) namespaces.emplace_back(Json::Object{{"type", "user"}});
  Json::Object linux{
      {"namespaces", std::move(namespaces)},
      {"resources", std::move(resources)},
      {"maskedPaths", Strings({"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                               "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                               "/proc/sched_debug", "/sys/firmware", "/proc/scsi"})},
      {"readonlyPaths",
       Strings({"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"})},
      {"seccomp", DefaultSeccompProfile()},
  };
  if (!details.cgroups_path.empty()) linux["cgroupsPath"] = details.cgroups_path;
  if (details.userns_base) {
    Json::Array mapping{
        Json::Object{{"containerID", 0}, {"hostID", *details.userns_base}, {"size", kUsernsSize}}};
    linux["uidMappings"] = mapping;
    linux["gidMappings"] = std::move(mapping);
  }

  Json::Array mounts{
      Mount("/proc", "proc", "proc", {}),
      Mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      Mount("/dev/pts", "devpts", "devpts",
            {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
      Mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
      Mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
      Mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
      Mount("/sys/fs/cgroup", "cgroup", "cgroup", {"nosuid", "noexec", "nodev", "relatime", "ro"}),
  };

  Json::Object config{
      {"ociVersion", "1.0.2"},
      {"process", std::move(process)},
      {"root", Json::Object{{"path", "rootfs"}, {"readonly", false}}},
      {"hostname", HostnameFor(spec.guest_name.empty() ? spec.instance : spec.guest_name)},
      {"mounts", std::move(mounts)},
      {"linux", std::move(linux)},
  };
  return Json(std::move(config));
}

}  // namespace phoenix::agent::oci
