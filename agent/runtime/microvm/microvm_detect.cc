// MicroVmRuntime's availability checks (microvm_runtime.h, "Availability"): KVM, hardware
// virtualization, the tun driver and the phoenix-vmm executable.
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "agent/runtime/microvm/microvm_runtime.h"

namespace phoenix::agent::microvm {

namespace fs = std::filesystem;

Result<void> CheckKvm(const fs::path& device) {
  int fd = ::open(device.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return Unavailable(
          fmt::format("no {}: micro-VMs need KVM (use runtime vm, which falls back "
                      "to QEMU TCG)",
                      device.string()));
    }
    return Unavailable(fmt::format("{} cannot be opened read-write ({}): micro-VMs need KVM",
                                   device.string(), std::strerror(errno)));
  }
  int version = ::ioctl(fd, KVM_GET_API_VERSION, 0);
  int err = errno;
  ::close(fd);
  if (version < 0) {
    return Unavailable(
        fmt::format("KVM_GET_API_VERSION on {}: {}", device.string(), std::strerror(err)));
  }
  if (version != KVM_API_VERSION) {
    return Unavailable(fmt::format("{} reports KVM API version {}, phoenix-vmm needs {}",
                                   device.string(), version, KVM_API_VERSION));
  }
  return {};
}

Result<void> CheckHardwareVirtualization(std::string_view cpuinfo, bool kvm_pvm_loaded) {
  size_t pos = 0;
  while (pos < cpuinfo.size()) {
    size_t end = cpuinfo.find('\n', pos);
    if (end == std::string_view::npos) end = cpuinfo.size();
    std::string_view line = cpuinfo.substr(pos, end - pos);
    pos = end + 1;
    if (!line.starts_with("flags")) continue;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view flags = line.substr(colon + 1);
    while (!flags.empty()) {
      size_t start = flags.find_first_not_of(" \t");
      if (start == std::string_view::npos) break;
      flags.remove_prefix(start);
      size_t len = std::min(flags.find_first_of(" \t"), flags.size());
      std::string_view flag = flags.substr(0, len);
      if (flag == "vmx" || flag == "svm") return {};
      flags.remove_prefix(len);
    }
  }
  constexpr std::string_view kAdvice =
      "cannot boot stock Linux kernels; use runtime vm (QEMU TCG) or a host with VT-x/AMD-V";
  if (kvm_pvm_loaded) {
    return Unavailable(fmt::format(
        "/dev/kvm is a software KVM (kvm-pvm; host CPU has no vmx/svm), which {}", kAdvice));
  }
  return Unavailable(fmt::format(
      "host CPU has no vmx/svm (no hardware virtualization in /proc/cpuinfo), so KVM {}", kAdvice));
}

Result<fs::path> FindVmmBinary() {
  std::vector<fs::path> tried;
  if (const char* env = std::getenv("PHOENIX_VMM"); env != nullptr && *env != '\0') {
    if (::access(env, X_OK) == 0) return fs::path(env);
    return NotFound(fmt::format("PHOENIX_VMM={} is not an executable", env));
  }
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (fs::path candidate :
         {exe.parent_path() / "phoenix-vmm", exe.parent_path() / "vmm" / "cli" / "phoenix-vmm",
          exe.parent_path().parent_path() / "agent" / "vmm" / "cli" / "phoenix-vmm"}) {
      candidate = candidate.lexically_normal();
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
      if (std::find(tried.begin(), tried.end(), candidate) == tried.end()) {
        tried.push_back(candidate);
      }
    }
  }
  std::vector<std::string> names;
  for (const fs::path& p : tried) names.push_back(p.string());
  return NotFound(fmt::format("phoenix-vmm not found (looked at {}; set PHOENIX_VMM or --vmm)",
                              fmt::join(names, ", ")));
}

Result<fs::path> DetectMonitor(const MicroVmRuntimeOptions& options) {
  if (options.state_dir.empty()) return Unavailable("no state directory configured");
  PHX_TRY(CheckKvm(options.kvm_device));
  std::ifstream cpuinfo(options.cpuinfo);
  if (!cpuinfo) {
    return Unavailable(
        fmt::format("reading {}: {}", options.cpuinfo.string(), std::strerror(errno)));
  }
  std::string cpuinfo_text((std::istreambuf_iterator<char>(cpuinfo)),
                           std::istreambuf_iterator<char>());
  std::error_code ec;
  PHX_TRY(CheckHardwareVirtualization(cpuinfo_text, fs::exists(options.kvm_pvm_module, ec)));
  if (::access("/dev/net/tun", R_OK | W_OK) != 0) {
    return Unavailable(fmt::format("/dev/net/tun: {} (micro-VM networking needs the tun driver)",
                                   std::strerror(errno)));
  }
  if (options.vmm_binary.empty()) return FindVmmBinary();
  if (::access(options.vmm_binary.c_str(), X_OK) != 0) {
    return NotFound(options.vmm_binary.string() + " is not an executable");
  }
  return options.vmm_binary;
}

}  // namespace phoenix::agent::microvm
