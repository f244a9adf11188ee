// MicroVmRuntime: the Runtime that runs guests as micro-VMs, one `phoenix-vmm` process (Phoenix's
// own monitor on raw KVM ioctls, agent/vmm/) per instance, restored from a golden memory snapshot
// of the image in milliseconds.
//
// Golden snapshots: per (image id, memory size, vCPUs) on this host (run_layout.h for the files),
// the image is booted once with `phoenix-vmm boot ... --ready-marker M --snapshot-to DIR
// --exit-after-snapshot` inside a throwaway network namespace (guest_netns.h) into a temp dir that
// is renamed into place when the monitor exited cleanly; concurrent first starts of one key wait
// for that one boot. Every snapshot Start then spawns `phoenix-vmm restore` on it: the guest's
// memory is mapped privately, so nothing a crashed instance wrote survives. The snapshot's files
// are sealed before the rename and verified on first use in this process; one that fails that
// check or a restore is set aside and the instance cold-boots (golden_seal.h).
//
// Boot modes: kSnapshot restores (preparing the golden snapshot on first use); kAuto restores when
// the golden snapshot exists, else cold-boots (the agent prepares it in the background); kCold
// boots the kernel (`phoenix-vmm boot` with a control socket, ready at the image's marker).
//
// Instances: each has its own network namespace (bind-mounted on <state_dir>/netns/<instance>)
// with tap0 = 172.16.0.1/30; the guest is 172.16.0.2 (InstanceInfo.guest_address) and the agent's
// proxy and health probes connect to it from inside that namespace. The monitor runs in its own
// session with the tap on fd 3 and a ready pipe on fd 4; Start returns once it wrote its ready
// line. Stop: control `stop`, SIGTERM after the grace period, then SIGKILL.
//
// Jails: every monitor (golden boots too) jails itself before its guest runs
// (agent/vmm/jail/jail.h): an empty root holding only its kernel or snapshot, uid
// MonitorUid(instance) and the monitors' shared gid (which may read golden snapshots, root's and
// 0640), no capabilities, a seccomp filter per thread, and its own cgroup (monitor_cgroup.h) with
// memory and pids limits.
//
// Watching: a pidfd on each monitor, registered on the io_context, emits exactly one kStopped when
// it exits (ClassifyMonitorExit). Monitors outlive the agent; after an agent restart List re-adopts
// them from their run dirs: the recorded pid must still be the same process (start time) and run
// `--control <this instance's socket>` (/proc/<pid>/cmdline).
//
// Availability (decided once, in the constructor): /dev/kvm opens read-write with
// KVM_GET_API_VERSION 12, the CPU has hardware virtualization (vmx or svm in /proc/cpuinfo: a
// software KVM such as kvm-pvm offers /dev/kvm without it but cannot boot a stock Linux kernel, so
// the first start would only time out), /dev/net/tun exists and the phoenix-vmm executable is
// found (option, $PHOENIX_VMM, next to the agent's executable, or in the build tree's
// agent/vmm/cli/). Describe() says why not otherwise.
//
// Threading: see runtime.h. Events are emitted on the io_context thread. Destroy the runtime on the
// io_context thread or after the io_context stopped running.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "agent/runtime/exit_watch.h"
#include "agent/runtime/golden_seal.h"
#include "agent/runtime/microvm/run_layout.h"
#include "agent/runtime/microvm/vmm_command.h"
#include "agent/runtime/oci/cgroup_layout.h"
#include "agent/runtime/runtime.h"

namespace phoenix::agent::microvm {

struct MicroVmRuntimeOptions {
  std::filesystem::path state_dir;   // golden/, run/, netns/ (run_layout.h)
  std::filesystem::path vmm_binary;  // empty: detect (see above)
  std::filesystem::path kvm_device = "/dev/kvm";
  std::filesystem::path cpuinfo = "/proc/cpuinfo";               // CheckHardwareVirtualization
  std::filesystem::path kvm_pvm_module = "/sys/module/kvm_pvm";  // exists when kvm-pvm is loaded
  std::chrono::milliseconds golden_timeout{240000};              // golden boot to its snapshot
  std::chrono::milliseconds ready_timeout{60000};   // restore / cold boot to the ready line
  std::chrono::milliseconds control_timeout{2000};  // one control socket request
  std::chrono::milliseconds term_wait{2000};        // after SIGTERM, before SIGKILL
  // Monitors run as uid base+1..base+65535 (vmm_command.h MonitorUid) and gid base. The default
  // sits in the range systemd leaves unused (1879048192-2147483647): no user, no container.
  uint32_t monitor_id_base = 1900000000;
  std::filesystem::path cgroup_root = "/sys/fs/cgroup";  // monitor_cgroup.h
};

// Whether `device` is a usable KVM: opens read-write and reports API version 12. The error says
// why not in words for Describe() ("no /dev/kvm: micro-VMs need KVM").
[[nodiscard]] Result<void> CheckKvm(const std::filesystem::path& device);

// Whether KVM on this host can boot stock Linux kernels, from the text of /proc/cpuinfo: some
// "flags" line names vmx (VT-x) or svm (AMD-V). `kvm_pvm_loaded` (the kvm_pvm module is loaded)
// only sharpens the reason: kvm-pvm is a paravirtual software KVM that boots PVM guest kernels
// only. kUnavailable with the reason in words for Describe().
[[nodiscard]] Result<void> CheckHardwareVirtualization(std::string_view cpuinfo,
                                                       bool kvm_pvm_loaded);

// phoenix-vmm: $PHOENIX_VMM, else next to this executable, else <exe dir>/vmm/cli/ (build tree).
// kNotFound naming where it looked.
[[nodiscard]] Result<std::filesystem::path> FindVmmBinary();

// Everything Available() needs (the checks above, /dev/net/tun, the executable): the monitor's
// path, or why micro-VMs cannot run here.
[[nodiscard]] Result<std::filesystem::path> DetectMonitor(const MicroVmRuntimeOptions& options);

class MicroVmRuntime final : public Runtime {
 public:
  MicroVmRuntime(boost::asio::io_context& io, MicroVmRuntimeOptions options);
  ~MicroVmRuntime() override;
  MicroVmRuntime(const MicroVmRuntime&) = delete;
  MicroVmRuntime& operator=(const MicroVmRuntime&) = delete;

  RuntimeKind kind() const override { return RuntimeKind::kMicroVm; }
  std::string Describe() const override { return description_; }
  bool Available() const override { return available_; }
  void Watch(std::function<void(const RuntimeEvent&)> on_event) override;

  Result<InstanceInfo> Start(const InstanceSpec& spec) override;
  Result<void> Stop(const std::string& instance, std::chrono::milliseconds grace) override;
  Result<void> Destroy(const std::string& instance) override;
  Result<int> Kill(const std::string& instance) override;
  Result<std::vector<InstanceStatus>> List() override;
  Result<void> PrepareGolden(const ImageArtifacts& image, uint32_t vcpus,
                             uint32_t memory_mib) override;

  const RunLayout& layout() const { return layout_; }
  const std::filesystem::path& vmm_binary() const { return vmm_; }
  bool HasGolden(const ImageArtifacts& image, uint32_t vcpus, uint32_t memory_mib) const;

 private:
  struct Tracked;

  Result<void> BootGolden(const ImageArtifacts& image, uint32_t vcpus, uint32_t memory_mib,
                          const std::string& key);
  // Boots (key empty) or restores the golden snapshot `key`; a failure leaves nothing behind.
  Result<InstanceInfo> Launch(const InstanceSpec& spec, const std::string& key,
                              std::chrono::steady_clock::time_point started);
  // The tracked monitor of a running instance, adopting it when not yet tracked; nullptr when the
  // instance exists but its monitor does not run.
  Result<std::shared_ptr<Tracked>> TrackedFor(const std::string& instance);
  // Watches the recorded monitor; nullptr when it is gone or the pid is someone else's now.
  Result<std::shared_ptr<Tracked>> Adopt(const InstanceRecord& record);
  // Watches `fd` (a dup of the tracked pidfd, which the watch takes over).
  void WatchExit(const std::string& instance, const std::shared_ptr<Tracked>& tracked, int fd);
  void OnExited(const std::string& instance, const std::shared_ptr<Tracked>& tracked);
  // Kills the monitor if it runs, removes the netns, its cgroup and the run dir. Idempotent.
  Result<void> Teardown(const std::string& instance);
  // The jail of the monitor `name` (an instance, or "golden-<key>"): its uid, and its cgroup with
  // limits for `memory_mib` and `vcpus` made ready to join.
  Result<JailFlags> MonitorJail(const std::string& name, uint32_t memory_mib, uint32_t vcpus);
  void ReleaseMonitorCgroup(const std::string& name);

  const MicroVmRuntimeOptions options_;
  const RunLayout layout_;
  EventSink events_;
  ExitWatch exits_;
  // Set once in the constructor.
  std::filesystem::path vmm_;
  std::string description_;
  bool available_ = false;
  std::optional<oci::CgroupLayout> cgroup_layout_;  // none: monitors run without cgroup limits

  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Tracked>> tracked_;  // running monitors being watched
  std::set<std::string> starting_;
  std::map<std::string, std::shared_ptr<std::mutex>> golden_locks_;  // per golden key
  uint64_t golden_attempts_ = 0;
  GoldenVerifier goldens_;
};

}  // namespace phoenix::agent::microvm
