// LibvirtRuntime: the Runtime that runs guests as transient libvirt/QEMU domains (KVM when libvirt
// reports it usable, else TCG), each instance on its own qcow2 overlay, cold-booted or restored
// from a golden memory snapshot of its image.
//
// Golden snapshots: per (image id, vcpus, memory, accelerator) the image is booted once on a golden
// overlay to its ready marker and saved (virDomainSaveFlags) under <state_dir>/golden/<key>/. The
// saved memory holds the guest's page cache of that moment's disk, so every restored instance gets
// a fresh overlay whose backing is the (then read-only) golden overlay: image disk <- golden
// overlay
// <- instance overlay. libvirt 9.0 refuses to restore a save image under another domain name or
// UUID, so each restore uses a per-instance clone of the save image renamed in its header (see
// save_image.h); the instance's own XML (name, overlay, log, hostfwd ports) is passed as dxml.
//
// Connection: one libvirt connection with keepalive. When it closes, a kDisconnected event is
// emitted and the runtime reconnects with exponential backoff on the io_context (each blocking
// attempt on its own short-lived thread), re-registers its callbacks and emits kConnected. While
// disconnected every call returns kUnavailable with a hint.
//
// Files: <state_dir>/run/<instance> records the files an instance owns (its overlay) so Destroy can
// remove them also after an agent restart. QEMU runs as libvirt-qemu: guest_dir, log and state_dir
// must be reachable (x permission on every directory) by that user.
//
// Threading: see runtime.h. Events are emitted on the io_context thread. Destroy the runtime on the
// io_context thread or after the io_context stopped running.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "agent/runtime/libvirt/domain_xml.h"
#include "agent/runtime/runtime.h"

typedef struct _virConnect* virConnectPtr;
typedef struct _virDomain* virDomainPtr;

namespace phoenix::agent::libvirt {

struct LibvirtRuntimeOptions {
  std::string uri = "qemu:///system";
  std::filesystem::path state_dir;                  // golden snapshots and run records
  std::optional<Accelerator> force_accelerator;     // overrides detection (measurements, tests)
  std::chrono::milliseconds ready_timeout{240000};  // golden boot to the ready marker
  std::chrono::milliseconds reconnect_min{500};
  std::chrono::milliseconds reconnect_max{10000};
  int keepalive_interval_s = 5;
  unsigned keepalive_count = 3;
};

class LibvirtRuntime final : public Runtime {
 public:
  // Installs libvirt's event loop on `io` (process-wide) and connects; when libvirtd is not
  // reachable the runtime starts disconnected and keeps retrying in the background.
  LibvirtRuntime(boost::asio::io_context& io, LibvirtRuntimeOptions options);
  ~LibvirtRuntime() override;
  LibvirtRuntime(const LibvirtRuntime&) = delete;
  LibvirtRuntime& operator=(const LibvirtRuntime&) = delete;

  RuntimeKind kind() const override { return RuntimeKind::kVm; }
  std::string Describe() const override;
  bool Available() const override;
  void Watch(std::function<void(const RuntimeEvent&)> on_event) override;

  Result<InstanceInfo> Start(const InstanceSpec& spec) override;
  Result<void> Stop(const std::string& instance, std::chrono::milliseconds grace) override;
  Result<void> Destroy(const std::string& instance) override;
  Result<int> Kill(const std::string& instance) override;
  Result<std::vector<InstanceStatus>> List() override;
  Result<void> PrepareGolden(const ImageArtifacts& image, uint32_t vcpus,
                             uint32_t memory_mib) override;

  // Whether a golden snapshot for this image/shape/accelerator exists.
  bool HasGolden(const ImageArtifacts& image, uint32_t vcpus, uint32_t memory_mib) const;

 private:
  struct Shared;
  class ConnRef;
  struct Golden {
    std::string key;
    std::filesystem::path dir, overlay, save, log;
    std::string domain;
  };

  // Blocking: opens a connection with keepalive and callbacks; publishes it on success.
  Result<void> Connect();
  Result<ConnRef> Conn() const;
  Error Unreachable(const std::string& detail) const;
  Error LibvirtError(virConnectPtr conn, const std::string& what) const;
  Accelerator CurrentAccelerator() const;
  Golden GoldenFor(const ImageArtifacts& image, uint32_t vcpus, uint32_t memory_mib,
                   Accelerator accel) const;
  std::filesystem::path RunRecord(const std::string& instance) const;
  void RemoveOwnedFiles(const std::string& instance);
  Result<void> BootGolden(virConnectPtr conn, const ImageArtifacts& image, uint32_t vcpus,
                          uint32_t memory_mib, Accelerator accel, const Golden& g);

  // libvirt callbacks; opaque is a boxed shared_ptr<Shared>.
  static int LifecycleThunk(virConnectPtr conn, virDomainPtr dom, int event, int detail,
                            void* opaque);
  static void CloseThunk(virConnectPtr conn, int reason, void* opaque);

  // io thread, under Shared::mu with alive == true.
  void OnLifecycle(const std::string& name, int event, int detail);
  void OnClosed(virConnectPtr conn, int reason);
  void ScheduleReconnect();
  void Emit(const RuntimeEvent& event);

  boost::asio::io_context& io_;
  const LibvirtRuntimeOptions options_;
  std::shared_ptr<Shared> shared_;

  mutable std::mutex mu_;
  virConnectPtr conn_ = nullptr;  // our reference; workers take their own (ConnRef)
  int lifecycle_callback_ = -1;
  Accelerator accel_ = Accelerator::kTcg;
  std::string accel_note_;
  std::string last_error_ = "not connected yet";
  std::function<void(const RuntimeEvent&)> on_event_;
  std::set<std::string> stopping_;  // instances we stop/destroy ourselves
  std::set<std::string> killed_;    // instances we SIGKILLed (chaos drill)
  std::set<std::string> reported_;  // instances whose stop was already emitted
  std::set<std::string> starting_;
  std::map<std::string, std::shared_ptr<std::mutex>> golden_locks_;
  std::atomic<bool> connected_{false};

  // io thread only.
  std::chrono::milliseconds backoff_{0};
  std::thread connector_;
};

}  // namespace phoenix::agent::libvirt
