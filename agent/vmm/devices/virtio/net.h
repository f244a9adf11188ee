// VirtioNet: a virtio-net device (virtio 1.x) on a tap fd. Offers VIRTIO_NET_F_MAC and
// VIRTIO_NET_F_STATUS (link always up); no offloads, no mergeable buffers, one RX queue (0) and
// one TX queue (1). Every frame crosses with the 12-byte virtio_net_hdr of VERSION_1: stripped
// from TX chains, prepended zeroed (num_buffers = 1, as the spec requires) to RX frames.
//
// A backend thread does all the device's guest-memory work: it polls the tap (only while the
// guest has RX buffers, so a full RX queue leaves frames in the tap) and an eventfd that
// QueueNotify, Quiesce, Reset and destruction kick. A frame read while the RX queue was empty is
// held and delivered when the guest refills the queue. Frames that do not fit the guest's RX
// buffer are dropped (the buffer returns with length 0, which Linux counts as a length error).
//
// Wiring: behind a VirtioMmio transport (mmio.h), slot 0 in the machine ("virtio-net0").
// The machine registers it as BackgroundWork: Quiesce returns once the backend thread is parked
// between batches, so a paused machine's guest memory and queue positions hold still.
// Ownership: takes ownership of the tap fd (closed on destruction) and owns its eventfd.
// Threading: VirtioDevice methods come from the transport (vCPU threads, serialized by it);
// Quiesce/Resume from the machine's control thread; both may overlap the backend thread, which
// is why its state is guarded by mu_.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "agent/vmm/device.h"
#include "agent/vmm/devices/virtio/mmio.h"

namespace phoenix::vmm {

// From the virtio spec (5.1); <linux/virtio_net.h> is not valid C++ (a field named `class`).
inline constexpr uint32_t kVirtioIdNet = 1;
inline constexpr uint32_t kVirtioNetFMac = 5;
inline constexpr uint32_t kVirtioNetFStatus = 16;
inline constexpr uint16_t kVirtioNetSLinkUp = 1;
struct VirtioNetHeader {  // struct virtio_net_hdr_v1
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
  uint16_t num_buffers;
};
static_assert(sizeof(VirtioNetHeader) == 12);

class VirtioNet : public VirtioDevice, public BackgroundWork {
 public:
  static constexpr uint16_t kQueueSize = 256;
  static constexpr uint32_t kRxQueue = 0;
  static constexpr uint32_t kTxQueue = 1;
  static constexpr size_t kHeaderBytes = 12;  // struct virtio_net_hdr_v1
  // Largest frame carried: a 64 KiB IP packet plus Ethernet header and VLAN tag.
  static constexpr size_t kMaxFrameBytes = 65536 + 18;

  // Sets the tap fd non-blocking; takes ownership of it even on failure.
  static Result<std::shared_ptr<VirtioNet>> Create(int tap_fd, std::array<uint8_t, 6> mac);
  ~VirtioNet() override;

  uint32_t device_id() const override;
  uint64_t features() const override;
  uint32_t num_queues() const override { return 2; }
  uint16_t max_queue_size() const override { return kQueueSize; }
  void ReadConfig(uint64_t offset, std::span<uint8_t> data) const override;
  void WriteConfig(uint64_t offset, std::span<const uint8_t> data) override;
  Status Activate(std::span<Virtqueue> queues, const GuestMemory& memory,
                  std::shared_ptr<VirtioInterrupt> interrupt, uint64_t features) override;
  void QueueNotify(uint32_t index) override;
  void Reset() override;
  // The MAC: a restored machine keeps the snapshot's.
  std::vector<uint8_t> SaveState() const override;
  Status LoadState(std::span<const uint8_t> state) override;

  void Quiesce() override;
  void Resume() override;

  std::array<uint8_t, 6> mac() const;

  struct Counters {
    uint64_t rx_frames = 0, tx_frames = 0, rx_dropped = 0, tx_dropped = 0, bad_chains = 0;
  };
  Counters counters() const;

 private:
  VirtioNet(int tap_fd, int event_fd, std::array<uint8_t, 6> mac)
      : tap_fd_(tap_fd), event_fd_(event_fd), mac_(mac) {}
  void Kick();
  void StopThread();
  void Run();
  // One round of work on the backend thread, without mu_; `signal` is set when used buffers
  // were returned. ProcessRx returns whether the guest still has RX buffers (so the tap is
  // worth polling).
  void ProcessTx(bool& signal);
  bool ProcessRx(bool& signal);

  const int tap_fd_;
  const int event_fd_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::array<uint8_t, 6> mac_;
  bool stop_ = false;
  bool quiesce_ = false;  // requested by Quiesce, cleared by Resume
  bool parked_ = false;   // the backend acknowledged quiesce_
  Counters counters_;
  std::thread thread_;

  // Set by Activate, used by the backend thread only (until Reset joins it).
  Virtqueue* rx_ = nullptr;
  Virtqueue* tx_ = nullptr;
  std::shared_ptr<VirtioInterrupt> interrupt_;
  std::vector<uint8_t> pending_rx_;  // a frame (with header room) waiting for an RX buffer
  bool has_pending_rx_ = false;
  bool tap_hangup_ = false;
};

}  // namespace phoenix::vmm
