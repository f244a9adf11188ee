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
// Every domain has a VM generation id device (<genid>), and every instance its own id, also in its
// save-image clone: on restore QEMU hands the new id to the guest, whose kernel reseeds its RNG, so
// clones of one snapshot never share randomness.
// The save image and golden overlay are sealed (golden_seal.h) and verified on their first use in
// this process; a snapshot that fails that check or a restore is set aside, the instance
// cold-boots under the same name (a fresh domain UUID, so a late event of the failed domain is
// dropped) and InstanceInfo::golden_problem tells the agent to rebuild it.
//
// Connection: one libvirt connection with keepalive. When it closes, a kDisconnected event is
// emitted and the runtime reconnects with exponential backoff on the io_context (each blocking
// attempt on its own short-lived thread), re-registers its callbacks and emits kConnected. While
// disconnected every call returns kUnavailable with a hint.
//
// Crash detection: after QEMU dies, libvirt's STOPPED/FAILED event comes 1.2-2 s later. Measured
// here: the QEMU process has fully exited ~7 ms after SIGKILL, but libvirt, having seen the
// monitor EOF, waits for the zombie to be reaped (polling every 200 ms; this host's init reaps
// slowly) before it emits the event, and meanwhile blocks every call on that domain. So for every
// running instance it starts or finds (Start, List, each (re)connection) the runtime watches the
// QEMU pid with a pidfd on the io_context (pid_watch.h). When the pidfd fires for an instance
// Phoenix is not stopping itself, a short-lived thread asks libvirt for the domain's state and
// reason (virDomainGetState; the io thread never blocks on libvirt), and JudgeQemuExit
// (qemu_exit.h) decides once libvirt answered or kLibvirtAnswerWait (150 ms) passed:
//  - libvirt announced a power-off (its SHUTDOWN lifecycle event, which it sends before it ends
//    QEMU: it runs QEMU with -no-shutdown), says shutdown / shut off by shutdown, or the domain is
//    gone -> nothing now: libvirt's own lifecycle event reports the stop;
//  - libvirt still believes the domain runs or is paused, says crashed/failed, or is too busy
//    with the domain to answer (tearing down a QEMU it did not end) -> kStopped, crashed=true.
// Exactly one kStopped per instance: whichever path comes first is recorded in `reported_` and
// the other is dropped. The one race: a clean exit whose SHUTDOWN libvirt has processed but whose
// SHUTDOWN event has not reached us within the wait while libvirt blocks is reported as a crash
// (libvirt broadcasts the event before it signals QEMU, so this needs the event to lag QEMU's
// exit by 150 ms). While libvirtd is unreachable it cannot be ending QEMU: a fired pidfd is a
// crash unless a SHUTDOWN was seen. Destroy of an instance whose QEMU has exited does not call
// libvirt at all (it would block until libvirt's teardown ends): it removes the instance's files
// and leaves the transient domain to libvirt, which removes it within those 1.2-2 s. Every pidfd
// is closed when its process exits, when libvirt reports the stop, on Destroy, and when the
// runtime is destroyed.
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
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "agent/runtime/golden_seal.h"
#include "agent/runtime/libvirt/domain_xml.h"
#include "agent/runtime/libvirt/qemu_exit.h"
#include "agent/runtime/runtime.h"

typedef struct _virConnect* virConnectPtr;
typedef struct _virDomain* virDomainPtr;

namespace phoenix::agent::libvirt {

class PidWatch;

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
  // One fired pidfd waiting for libvirt's answer or kLibvirtAnswerWait (io thread only).
  struct ExitCheck {
    explicit ExitCheck(boost::asio::io_context& io) : timer(io) {}
    boost::asio::steady_timer timer;
    std::chrono::steady_clock::time_point exited;
    bool decided = false;
  };
  struct LibvirtAnswer {
    std::optional<DomainState> state;  // nullopt: no such domain
    std::string failure;               // the call failed otherwise
  };
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
  // Creates or restores (golden != nullptr) the instance's domain; a failure leaves nothing.
  Result<InstanceInfo> Launch(virConnectPtr conn, const InstanceSpec& spec, Accelerator accel,
                              const Golden* golden, std::chrono::steady_clock::time_point started);
  void ForgetUuid(const std::string& instance);
  Result<void> BootGolden(virConnectPtr conn, const ImageArtifacts& image, uint32_t vcpus,
                          uint32_t memory_mib, Accelerator accel, const Golden& g);

  // libvirt callbacks; opaque is a boxed shared_ptr<Shared>.
  static int LifecycleThunk(virConnectPtr conn, virDomainPtr dom, int event, int detail,
                            void* opaque);
  static void CloseThunk(virConnectPtr conn, int reason, void* opaque);

  // io thread, under Shared::mu with alive == true.
  void OnLifecycle(const std::string& name, const std::string& uuid, int event, int detail);
  void OnClosed(virConnectPtr conn, int reason);
  void ScheduleReconnect();
  void Emit(const RuntimeEvent& event);
  void OnQemuExited(const std::string& instance, int pid);
  void DecideQemuExit(const std::string& instance, ExitCheck& check,
                      const std::optional<LibvirtAnswer>& answer);
  void ArmPidWatch(const std::string& instance, std::shared_ptr<PidWatch> watch);
  void ClosePidWatch(const std::string& instance);

  // Any thread: watches the QEMU of a running instance (no-op when it is gone already).
  void WatchQemu(const std::string& instance, int pid);
  // Blocking: watches the QEMU of every running Phoenix domain on `conn`.
  void WatchRunningInstances(virConnectPtr conn);
  // Any thread: closes the instance's pidfd on the io thread.
  void PostClosePidWatch(const std::string& instance);

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
  std::set<std::string> stopping_;       // instances we stop/destroy ourselves
  std::set<std::string> killed_;         // instances we SIGKILLed (chaos drill)
  std::set<std::string> reported_;       // instances whose stop was already emitted
  std::set<std::string> shutdown_seen_;  // libvirt announced a power-off (SHUTDOWN event)
  std::set<std::string> starting_;
  std::map<std::string, std::shared_ptr<std::mutex>> golden_locks_;
  std::map<std::string, std::string> uuids_;  // instance -> UUID of its current domain
  std::atomic<bool> connected_{false};
  GoldenVerifier goldens_;

  // io thread only.
  std::map<std::string, std::shared_ptr<PidWatch>> pid_watches_;
  std::chrono::milliseconds backoff_{0};
  std::thread connector_;
};

}  // namespace phoenix::agent::libvirt
