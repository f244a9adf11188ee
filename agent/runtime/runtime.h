// Runtime: the one interface behind which the agent runs guests of every kind (libvirt VMs,
// phoenix-vmm micro-VMs, OCI containers). A runtime runs *instances*: one boot (or restore) of a
// guest. Every restart of a guest is a new instance with a new name, started fresh from the golden
// image; the reconciler (agent/reconcile) alone decides when to start, stop or destroy one.
//
// Threading: Start/Stop/Destroy/Kill/List/PrepareGolden block (they talk to libvirtd, spawn
// processes, copy files). The agent calls them from its blocking worker pool, never from the event
// loop. Implementations must be safe to call concurrently for *different* instances. The event
// callback given to Watch is invoked on the agent's event loop thread (the io_context passed to the
// runtime's constructor); no callback runs after the runtime is destroyed.
//
// Errors: kUnavailable when the backend (libvirtd, ...) is unreachable, with a hint; kNotFound for
// an unknown instance; kInternal with errno/libvirt detail otherwise. A failed Start leaves nothing
// behind: no domain/container, no overlay, no run dir.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "agent/guest/guest.h"
#include "proto/support/error.h"

namespace phoenix::agent {

// The image artifacts an instance boots from (absolute paths inside the image store; read-only).
struct ImageArtifacts {
  std::string image_id;              // sha256:<hex>
  std::filesystem::path kernel;      // bzImage or ELF vmlinux
  std::filesystem::path initrd;      // initramfs (cpio, optionally compressed)
  std::filesystem::path disk;        // golden qcow2 data disk; empty if the image has none
  std::filesystem::path rootfs;      // container root directory; empty if none
  std::string cmdline;               // kernel command line
  std::string ready_marker;          // a line on the serial console meaning "ready"
  std::vector<std::string> command;  // container default command
};

struct PortForward {
  uint16_t guest_port = 0;
  uint16_t host_port = 0;  // on 127.0.0.1: where the runtime exposes guest_port to the agent
};

struct InstanceSpec {
  std::string instance;  // unique name, e.g. "phx-web-3"; also the libvirt domain name
  std::string guest_id;  // stable guest id, recorded in the instance's metadata
  std::string guest_name;
  ImageArtifacts image;
  uint32_t vcpus = 1;
  uint32_t memory_mib = 256;
  std::vector<std::string> command;
  std::vector<std::pair<std::string, std::string>> env;
  std::vector<PortForward> ports;
  std::filesystem::path guest_dir;  // per-guest dir owned by the agent: overlays, run files
  std::filesystem::path log_path;   // serial console / stdout log; appended across instances
  BootMode boot_mode = BootMode::kAuto;
  // The node-network address the guest's previous instance had: taken again when it is free, so a
  // restarted guest keeps its address (and every front door's table stays right).
  std::string node_address_hint;
};

struct InstanceInfo {
  std::string instance;
  int pid = 0;  // hypervisor / container init pid on this host
  // Where the guest ports are reachable: empty = on the host's 127.0.0.1 at PortForward.host_port
  // (VMs); otherwise a network namespace file (e.g. /run/phoenix/netns/<instance>) in which the
  // guest listens on 127.0.0.1:<guest_port> itself (containers). The agent's proxy and health
  // probes connect from inside that namespace, so no bridge or address management is needed.
  std::filesystem::path netns;
  // The guest's address inside `netns` (ignored when netns is empty): 127.0.0.1 for containers,
  // which share the namespace's loopback; 172.16.0.2 for micro-VMs, behind the namespace's tap.
  std::string guest_address = "127.0.0.1";
  // The instance's own address on the node network (agent/net/node_network.h), where HAProxy and
  // other nodes reach its guest ports directly; empty when it has none.
  std::string node_address;
  BootMode boot = BootMode::kCold;  // how it actually started: kCold or kSnapshot
  std::chrono::milliseconds start_duration{0};
  std::string accelerator;  // "kvm" / "tcg" for VMs; empty otherwise
  // Non-empty when the golden snapshot failed its integrity check or its restore: it was set
  // aside, this instance cold-booted instead, and the snapshot should be rebuilt (golden_seal.h).
  std::string golden_problem;
};

// An instance the runtime found running (or defined) on the host; used to re-adopt after an agent
// restart.
struct InstanceStatus {
  std::string instance;
  std::string guest_id;
  bool running = false;
  int pid = 0;
  std::filesystem::path netns;              // as in InstanceInfo
  std::string guest_address = "127.0.0.1";  // as in InstanceInfo
  std::string node_address;                 // as in InstanceInfo
};

struct RuntimeEvent {
  enum class Kind {
    kStopped,       // instance stopped: see `crashed` and `reason`
    kDisconnected,  // backend went away (libvirtd died); instances may still run
    kConnected,     // backend (re)connected; the agent re-lists instances
  };
  Kind kind = Kind::kStopped;
  std::string instance;
  bool crashed = false;  // true for a crash/kill; false for a clean guest shutdown or our own stop
  std::string reason;    // human words: "qemu process killed (SIGKILL)", "guest shut down"
};

class Runtime {
 public:
  virtual ~Runtime() = default;

  virtual RuntimeKind kind() const = 0;
  // "kvm", "tcg (no /dev/kvm)", ...: what a user should know about how guests will run here.
  virtual std::string Describe() const = 0;
  // Whether this runtime can run guests now (false while the backend is unreachable).
  virtual bool Available() const = 0;

  // Registers the single event sink; call once before the first Start.
  virtual void Watch(std::function<void(const RuntimeEvent&)> on_event) = 0;

  // Creates and starts a fresh instance (new overlay / upper dir) from the golden image, restoring
  // the image's golden snapshot when spec.boot_mode allows and one exists (making it on first use
  // for kSnapshot). A snapshot that fails its seal or its restore never fails the start: the
  // instance cold-boots and InstanceInfo::golden_problem says why. Returns once the instance runs.
  virtual Result<InstanceInfo> Start(const InstanceSpec& spec) = 0;
  // Asks the guest to shut down, waits up to `grace`, then stops it hard. Keeps the instance's
  // files.
  virtual Result<void> Stop(const std::string& instance, std::chrono::milliseconds grace) = 0;
  // Stops the instance hard if running and removes everything it owns (domain, overlay, run dir).
  // Succeeds for an instance that no longer exists.
  virtual Result<void> Destroy(const std::string& instance) = 0;
  // Chaos drill: SIGKILL of the hypervisor / container init process. Returns the pid killed.
  virtual Result<int> Kill(const std::string& instance) = 0;
  // Instances owned by Phoenix (name prefix "phx-") that exist on this host.
  virtual Result<std::vector<InstanceStatus>> List() = 0;
  // Boots the image once to its ready marker and keeps its memory as the golden snapshot for later
  // Starts. Idempotent: returns at once when the snapshot exists and matches the image.
  virtual Result<void> PrepareGolden(const ImageArtifacts& image, uint32_t vcpus,
                                     uint32_t memory_mib) = 0;
};

}  // namespace phoenix::agent
