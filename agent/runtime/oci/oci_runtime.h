// OciRuntime: the Runtime that runs guests as OCI containers with crun (preferred) or runc, each
// instance fresh from the image's read-only golden rootfs.
//
// Per instance (see docs/containers.md):
//   <guest_dir>/<instance>/          the OCI bundle: config.json (BundleConfig), rootfs/ = an
//                                    overlayfs (lower: the golden rootfs, upper/ + work/ fresh per
//                                    instance, so nothing a previous instance wrote survives), and
//                                    oci.log (crun/runc's own messages)
//   <state_dir>/netns/<instance>     the instance's own network namespace: lo, and with a node
//                                    network eth0 at the instance's node address; the agent's
//                                    proxy and probes reach the guest on 127.0.0.1:<guest_port>
//                                    inside it (InstanceInfo.netns), HAProxy at its node address
//   <state_dir>/run/<instance>       the RunRecord, written first, removed last
//   cgroup "/phoenix/<instance>"     memory, CPU and pids limits
// The container's stdout/stderr are appended to spec.log_path. A failed Start removes all of it.
//
// Host detection (never configuration): the cgroup layout (cgroup_layout.h) and which tool exists.
// crun 1.8 refuses hybrid v1+v2 hosts, so there `crun run` runs as
// `unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified && exec crun ...'`.
//
// Watching: the container init is not our child (run --detach). Each running instance has a pidfd
// on its init registered on the io_context; when it becomes readable the runtime emits exactly one
// kStopped, classified by ClassifyStop (stop_reason.h). Instances found by List after an agent
// restart are watched from then on (re-adoption), recognised by the init's start time.
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
#include <set>
#include <string>
#include <vector>

#include "agent/net/node_network.h"
#include "agent/runtime/exit_watch.h"
#include "agent/runtime/oci/cgroup_layout.h"
#include "agent/runtime/oci/run_record.h"
#include "agent/runtime/runtime.h"

namespace phoenix::agent::oci {

struct OciRuntimeOptions {
  std::filesystem::path state_dir;  // run records and netns files
  std::string oci_tool;             // "crun", "runc" or empty: detect (crun preferred)
  std::filesystem::path cgroup_root = "/sys/fs/cgroup";
  uint32_t uid = 65534;  // the guest's user and group (nobody/nogroup), inside its user namespace
  uint32_t gid = 65534;
  // Each container in its own user namespace with its own kUsernsSize host ids, with crun where
  // the kernel has user namespaces; off (or runc): the guest's ids are host ids.
  bool user_namespaces = true;
  uint32_t pids_limit = 256;
  // Top-level directories of the rootfs handed to the guest user in each instance's upper dir
  // (copy-up + chown), so a non-root guest can write its state where the image expects it
  // (images/README: "/data").
  std::vector<std::string> guest_owned_dirs = {"data"};
  std::chrono::milliseconds tool_timeout{30000};  // per crun/runc invocation
  // When set, every instance's namespace also gets an address on the node network (a veth to the
  // node's bridge), where HAProxy and other nodes reach the guest with no agent in the path.
  std::shared_ptr<net::NodeNetwork> node_network;
};

// Containers' user namespaces: slot s maps container ids 0..kUsernsSize-1 to host ids
// kUsernsFirstBase + s * kUsernsSize onwards. Above 2^31, clear of every system and login id and of
// the micro-VM monitors' uids (agent/vmm/jail); the last slot ends below (uid_t)-1.
inline constexpr uint32_t kUsernsFirstBase = 2147483648u;
inline constexpr uint32_t kUsernsSlots = 32767;
// The slot an instance tries first (FNV-1a of its name); taken slots are skipped.
uint32_t PreferredUsernsSlot(std::string_view instance);

class OciRuntime final : public Runtime {
 public:
  OciRuntime(boost::asio::io_context& io, OciRuntimeOptions options);
  ~OciRuntime() override;
  OciRuntime(const OciRuntime&) = delete;
  OciRuntime& operator=(const OciRuntime&) = delete;

  RuntimeKind kind() const override { return RuntimeKind::kContainer; }
  std::string Describe() const override;
  bool Available() const override { return available_; }
  void Watch(std::function<void(const RuntimeEvent&)> on_event) override;

  Result<InstanceInfo> Start(const InstanceSpec& spec) override;
  Result<void> Stop(const std::string& instance, std::chrono::milliseconds grace) override;
  Result<void> Destroy(const std::string& instance) override;
  Result<int> Kill(const std::string& instance) override;
  Result<std::vector<InstanceStatus>> List() override;
  // Containers start in milliseconds from the rootfs: there is no memory snapshot to prepare.
  Result<void> PrepareGolden(const ImageArtifacts& image, uint32_t vcpus,
                             uint32_t memory_mib) override;

  const std::string& tool() const { return tool_; }  // "crun" / "runc" / "" when none
  CgroupLayout cgroup_layout() const { return layout_; }
  std::filesystem::path NetnsFile(const std::string& instance) const;
  std::filesystem::path RunRecordFile(const std::string& instance) const;

 private:
  struct Tracked;
  struct ContainerState {
    std::string id, status;
    int pid = 0;
  };

  // argv to run `tool` with `args`; wraps `run` for crun on hybrid hosts.
  // Errors when the tool is not installed.
  Result<std::vector<std::string>> ToolArgv(const std::string& tool,
                                            const std::vector<std::string>& args,
                                            bool creates_cgroups = false) const;
  // nullopt when the container does not exist.
  Result<std::optional<ContainerState>> State(const std::string& tool, const std::string& id);
  Result<std::vector<ContainerState>> ListContainers(const std::string& tool);
  // Removes everything `record` names, in reverse order of creation. Idempotent.
  Result<void> Teardown(const RunRecord& record);
  // Hands guest_owned_dirs to the guest's host uid/gid.
  Result<void> GiveDirsToGuest(const std::filesystem::path& root, uint32_t uid, uint32_t gid) const;
  // A host id range no other instance (recorded or starting) holds; under mu_.
  Result<uint32_t> ReserveUsernsBaseLocked(const std::string& instance);
  // The tracked init of a running instance, adopting it (pidfd + watcher) when not yet tracked.
  Result<std::shared_ptr<Tracked>> TrackedFor(const std::string& instance);
  // Watches the init `pid` of `record`'s instance; nullptr when that process is gone or the pid
  // now belongs to another process (start time differs from the record's).
  Result<std::shared_ptr<Tracked>> Adopt(const RunRecord& record, int pid);
  // Registers `fd` (a pidfd the io_context takes over) on the io_context.
  void WatchInit(const std::string& instance, const std::shared_ptr<Tracked>& tracked, int fd);
  void OnInitExited(const std::string& instance, const std::shared_ptr<Tracked>& tracked);

  const OciRuntimeOptions options_;
  EventSink events_;
  ExitWatch exits_;
  // Set once in the constructor.
  std::string tool_;
  CgroupLayout layout_ = CgroupLayout::kLegacy;
  bool limit_swap_ = false;
  std::string description_;
  bool available_ = false;
  bool userns_ = false;  // containers get their own user namespace

  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Tracked>> tracked_;  // running instances being watched
  std::set<std::string> starting_;
  std::map<std::string, uint32_t> starting_userns_;  // bases reserved by starts in flight
};

}  // namespace phoenix::agent::oci
