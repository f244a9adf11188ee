#include "agent/vmm/devices/virtio/net.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "agent/vmm/snapshot/codec.h"
#include "agent/vmm/thread_hook.h"

namespace phoenix::vmm {
namespace {

constexpr uint32_t kStateVersion = 1;
// Bounded waits: the backend re-checks its flags at least this often even without a kick.
constexpr int kPollTimeoutMs = 200;
static_assert(sizeof(VirtioNetHeader) == VirtioNet::kHeaderBytes);

}  // namespace

Result<std::shared_ptr<VirtioNet>> VirtioNet::Create(int tap_fd, std::array<uint8_t, 6> mac) {
  int flags = fcntl(tap_fd, F_GETFL);
  if (flags < 0 || fcntl(tap_fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    auto err = Errno("fcntl(tap, O_NONBLOCK)");
    close(tap_fd);
    return err;
  }
  int event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd < 0) {
    auto err = Errno("eventfd");
    close(tap_fd);
    return err;
  }
  return std::shared_ptr<VirtioNet>(new VirtioNet(tap_fd, event_fd, mac));
}

VirtioNet::~VirtioNet() {
  StopThread();
  close(tap_fd_);
  close(event_fd_);
}

uint32_t VirtioNet::device_id() const { return kVirtioIdNet; }

uint64_t VirtioNet::features() const {
  return (1ull << kVirtioNetFMac) | (1ull << kVirtioNetFStatus);
}

std::array<uint8_t, 6> VirtioNet::mac() const {
  std::lock_guard lock(mu_);
  return mac_;
}

VirtioNet::Counters VirtioNet::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

void VirtioNet::ReadConfig(uint64_t offset, std::span<uint8_t> data) const {
  // struct virtio_net_config: mac[6], status (le16). Nothing else is offered.
  std::array<uint8_t, 8> config{};
  {
    std::lock_guard lock(mu_);
    std::copy(mac_.begin(), mac_.end(), config.begin());
  }
  uint16_t status = kVirtioNetSLinkUp;
  std::memcpy(config.data() + 6, &status, 2);
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = offset + i < config.size() ? config[offset + i] : 0;
}

void VirtioNet::WriteConfig(uint64_t, std::span<const uint8_t>) {
  // The MAC is read-only without VIRTIO_NET_F_CTRL_MAC_ADDR; drivers do not write config.
}

Status VirtioNet::Activate(std::span<Virtqueue> queues, const GuestMemory&,
                           std::shared_ptr<VirtioInterrupt> interrupt, uint64_t) {
  if (queues.size() != 2) return Fail("virtio-net needs 2 queues");
  StopThread();
  std::lock_guard lock(mu_);
  rx_ = &queues[kRxQueue];
  tx_ = &queues[kTxQueue];
  interrupt_ = std::move(interrupt);
  stop_ = false;
  parked_ = false;
  thread_ = std::thread([this] { Run(); });
  return {};
}

void VirtioNet::Kick() {
  uint64_t one = 1;
  // EAGAIN means the counter is already non-zero: the backend will wake anyway.
  (void)!write(event_fd_, &one, sizeof one);
}

void VirtioNet::QueueNotify(uint32_t) { Kick(); }

void VirtioNet::StopThread() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  Kick();
  if (thread_.joinable()) thread_.join();
}

void VirtioNet::Reset() {
  StopThread();
  std::lock_guard lock(mu_);
  rx_ = tx_ = nullptr;
  interrupt_.reset();
  pending_rx_.clear();
  has_pending_rx_ = false;
}

void VirtioNet::Quiesce() {
  std::unique_lock lock(mu_);
  quiesce_ = true;
  if (!thread_.joinable() || stop_) return;
  lock.unlock();
  Kick();
  lock.lock();
  cv_.wait(lock, [this] { return parked_ || stop_; });
}

void VirtioNet::Resume() {
  {
    std::lock_guard lock(mu_);
    quiesce_ = false;
  }
  cv_.notify_all();
}

void VirtioNet::Run() {
  RunThreadStartHook(ThreadKind::kDevice);
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (quiesce_ && !stop_) {
        parked_ = true;
        cv_.notify_all();
        cv_.wait(lock, [this] { return !quiesce_ || stop_; });
        parked_ = false;
      }
      if (stop_) return;
    }
    bool tx_used = false, rx_used = false;
    ProcessTx(tx_used);
    bool rx_room = ProcessRx(rx_used) && !tap_hangup_;
    // The driver turns callbacks off per queue (VIRTQ_AVAIL_F_NO_INTERRUPT) while it polls.
    if ((tx_used && tx_->NeedsInterrupt()) || (rx_used && rx_->NeedsInterrupt()))
      interrupt_->Signal(kVirtioInterruptUsedBuffer);

    pollfd fds[2] = {{event_fd_, POLLIN, 0}, {tap_fd_, POLLIN, 0}};
    // Without RX buffers, frames wait in the tap; the guest's refill notify wakes us.
    int n = poll(fds, rx_room ? 2 : 1, kPollTimeoutMs);
    if (n < 0 && errno != EINTR) {
      // Cannot happen with valid fds; stop rather than spin, and release any Quiesce waiter.
      std::lock_guard lock(mu_);
      stop_ = true;
      cv_.notify_all();
      return;
    }
    // A tap that hung up (the peer of a test socketpair closed) would poll ready forever.
    if (n > 0 && rx_room && (fds[1].revents & (POLLHUP | POLLERR))) tap_hangup_ = true;
    if (n > 0 && (fds[0].revents & POLLIN)) {
      uint64_t value;
      (void)!read(event_fd_, &value, sizeof value);
    }
  }
}

void VirtioNet::ProcessTx(bool& signal) {
  std::vector<uint8_t> frame;
  for (;;) {
    auto chain = tx_->Pop();
    if (!chain) {
      std::lock_guard lock(mu_);
      ++counters_.bad_chains;
      if (tx_->broken()) return;
      signal = true;  // the malformed chain went back to the used ring
      continue;
    }
    if (!*chain) return;
    frame.clear();
    bool ok = tx_->ReadFromChain(**chain, kHeaderBytes + kMaxFrameBytes, frame).has_value() &&
              frame.size() > kHeaderBytes;
    if (ok) {
      ssize_t w = write(tap_fd_, frame.data() + kHeaderBytes, frame.size() - kHeaderBytes);
      ok = w == static_cast<ssize_t>(frame.size() - kHeaderBytes);
    }
    {
      std::lock_guard lock(mu_);
      ++(ok ? counters_.tx_frames : counters_.tx_dropped);
    }
    if (!tx_->PushUsed((*chain)->head, 0)) return;
    signal = true;
  }
}

bool VirtioNet::ProcessRx(bool& signal) {
  for (;;) {
    if (!has_pending_rx_) {
      pending_rx_.resize(kHeaderBytes + kMaxFrameBytes);
      ssize_t n = read(tap_fd_, pending_rx_.data() + kHeaderBytes, kMaxFrameBytes);
      if (n <= 0) return true;  // EAGAIN: nothing to deliver; errors: retry after poll
      pending_rx_.resize(kHeaderBytes + static_cast<size_t>(n));
      VirtioNetHeader header{};
      header.num_buffers = 1;
      std::memcpy(pending_rx_.data(), &header, sizeof header);
      has_pending_rx_ = true;
    }
    auto chain = rx_->Pop();
    if (!chain) {
      std::lock_guard lock(mu_);
      ++counters_.bad_chains;
      if (rx_->broken()) return false;
      signal = true;
      continue;
    }
    if (!*chain) return false;  // no buffer: keep the frame, stop polling the tap
    uint32_t written = 0;
    bool fits = (*chain)->writable_bytes() >= pending_rx_.size();
    if (fits) {
      auto w = rx_->WriteToChain(**chain, pending_rx_);
      fits = w.has_value();
      if (w) written = *w;
    }
    {
      std::lock_guard lock(mu_);
      ++(fits ? counters_.rx_frames : counters_.rx_dropped);
    }
    has_pending_rx_ = false;
    if (!rx_->PushUsed((*chain)->head, written)) return false;
    signal = true;
  }
}

std::vector<uint8_t> VirtioNet::SaveState() const {
  std::lock_guard lock(mu_);
  StateWriter w;
  w.Put(kStateVersion);
  w.Put(mac_);
  return w.Take();
}

Status VirtioNet::LoadState(std::span<const uint8_t> state) {
  StateReader r(state);
  auto version = r.Get<uint32_t>();
  auto mac = r.Get<std::array<uint8_t, 6>>();
  if (!version || !mac) return Fail("virtio-net state: truncated");
  if (*version != kStateVersion)
    return Fail("virtio-net state: version " + std::to_string(*version));
  if (!r.AtEnd()) return Fail("virtio-net state: extra bytes");
  std::lock_guard lock(mu_);
  mac_ = *mac;
  return {};
}

}  // namespace phoenix::vmm
