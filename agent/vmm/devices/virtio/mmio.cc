#include "agent/vmm/devices/virtio/mmio.h"

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>

#include <algorithm>
#include <cstring>

#include "agent/vmm/snapshot/codec.h"

namespace phoenix::vmm {
namespace {

constexpr uint32_t kMagic = 0x74726976;  // "virt"
constexpr uint32_t kVersion = 2;
constexpr uint32_t kStateVersion = 1;
constexpr uint32_t kKnownStatus = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                                  VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_FEATURES_OK |
                                  VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED;

void SetLow(uint64_t& field, uint32_t value) { field = (field & ~0xffffffffull) | value; }
void SetHigh(uint64_t& field, uint32_t value) {
  field = (field & 0xffffffffull) | (uint64_t{value} << 32);
}

}  // namespace

// Interrupt status and the line level, guarded apart from the registers (see the header).
class VirtioMmio::Interrupt : public VirtioInterrupt {
 public:
  explicit Interrupt(std::shared_ptr<InterruptLine> line) : line_(std::move(line)) {}

  void Signal(uint32_t bits) override {
    std::lock_guard lock(mu_);
    if (bits & kVirtioInterruptConfig) ++config_generation_;
    status_ |= bits & (kVirtioInterruptUsedBuffer | kVirtioInterruptConfig);
    Update();
  }
  void Ack(uint32_t bits) {
    std::lock_guard lock(mu_);
    status_ &= ~bits;
    Update();
  }
  uint32_t status() const {
    std::lock_guard lock(mu_);
    return status_;
  }
  uint32_t config_generation() const {
    std::lock_guard lock(mu_);
    return config_generation_;
  }
  void Restore(uint32_t status, uint32_t generation) {
    std::lock_guard lock(mu_);
    status_ = status;
    config_generation_ = generation;
    level_ = status_ != 0;
    if (level_) line_->Set(true);
  }

 private:
  void Update() {
    bool level = status_ != 0;
    if (level == level_) return;
    level_ = level;
    line_->Set(level);
  }

  const std::shared_ptr<InterruptLine> line_;
  mutable std::mutex mu_;
  uint32_t status_ = 0;
  uint32_t config_generation_ = 0;
  bool level_ = false;
};

VirtioMmio::VirtioMmio(std::string snapshot_name, std::shared_ptr<VirtioDevice> device,
                       const GuestMemory& memory, std::shared_ptr<InterruptLine> irq)
    : name_(std::move(snapshot_name)),
      device_(std::move(device)),
      memory_(memory),
      interrupt_(std::make_shared<Interrupt>(std::move(irq))),
      queue_regs_(device_->num_queues()) {}

VirtioMmio::~VirtioMmio() {
  std::lock_guard lock(mu_);
  if (active_) device_->Reset();
}

uint32_t VirtioMmio::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

uint64_t VirtioMmio::OfferedFeatures() const {
  return device_->features() | (1ull << VIRTIO_F_VERSION_1);
}

void VirtioMmio::Read(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0);
  if (offset >= VIRTIO_MMIO_CONFIG) {
    device_->ReadConfig(offset - VIRTIO_MMIO_CONFIG, data);
    return;
  }
  if (data.size() != 4 || offset % 4) return;  // registers are 32-bit only
  uint32_t value;
  {
    std::lock_guard lock(mu_);
    value = ReadRegister(offset);
  }
  std::memcpy(data.data(), &value, 4);
}

void VirtioMmio::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset >= VIRTIO_MMIO_CONFIG) {
    std::lock_guard lock(mu_);
    device_->WriteConfig(offset - VIRTIO_MMIO_CONFIG, data);
    return;
  }
  if (data.size() != 4 || offset % 4) return;
  uint32_t value;
  std::memcpy(&value, data.data(), 4);
  std::lock_guard lock(mu_);
  WriteRegister(offset, value);
}

uint32_t VirtioMmio::ReadRegister(uint64_t offset) {
  QueueRegisters* queue = queue_sel_ < queue_regs_.size() ? &queue_regs_[queue_sel_] : nullptr;
  switch (offset) {
    case VIRTIO_MMIO_MAGIC_VALUE:
      return kMagic;
    case VIRTIO_MMIO_VERSION:
      return kVersion;
    case VIRTIO_MMIO_DEVICE_ID:
      return device_->device_id();
    case VIRTIO_MMIO_VENDOR_ID:
      return kVendorId;
    case VIRTIO_MMIO_DEVICE_FEATURES:
      return device_features_sel_ < 2
                 ? static_cast<uint32_t>(OfferedFeatures() >> (32 * device_features_sel_))
                 : 0;
    case VIRTIO_MMIO_QUEUE_NUM_MAX:
      return queue ? device_->max_queue_size() : 0;
    case VIRTIO_MMIO_QUEUE_READY:
      return queue && queue->ready ? 1 : 0;
    case VIRTIO_MMIO_INTERRUPT_STATUS:
      return interrupt_->status();
    case VIRTIO_MMIO_STATUS:
      return status_;
    case VIRTIO_MMIO_CONFIG_GENERATION:
      return interrupt_->config_generation();
    default:
      return 0;  // write-only registers and unused offsets (no shared memory regions)
  }
}

void VirtioMmio::WriteRegister(uint64_t offset, uint32_t value) {
  // Queue registers change only while the queue is not ready and the driver has not finished.
  QueueRegisters* queue = queue_sel_ < queue_regs_.size() && !queue_regs_[queue_sel_].ready &&
                                  !(status_ & VIRTIO_CONFIG_S_DRIVER_OK)
                              ? &queue_regs_[queue_sel_]
                              : nullptr;
  switch (offset) {
    case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
      device_features_sel_ = value;
      return;
    case VIRTIO_MMIO_DRIVER_FEATURES:
      if (status_ & VIRTIO_CONFIG_S_FEATURES_OK) return;  // too late to change
      if (driver_features_sel_ == 0) SetLow(driver_features_, value);
      if (driver_features_sel_ == 1) SetHigh(driver_features_, value);
      return;
    case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
      driver_features_sel_ = value;
      return;
    case VIRTIO_MMIO_QUEUE_SEL:
      queue_sel_ = value;
      return;
    case VIRTIO_MMIO_QUEUE_NUM:
      if (queue) queue->config.size = static_cast<uint16_t>(std::min<uint32_t>(value, 0xffff));
      return;
    case VIRTIO_MMIO_QUEUE_READY:
      if (queue_sel_ < queue_regs_.size() && !(status_ & VIRTIO_CONFIG_S_DRIVER_OK))
        queue_regs_[queue_sel_].ready = value & 1;
      return;
    case VIRTIO_MMIO_QUEUE_NOTIFY:
      if (active_ && value < queues_.size()) device_->QueueNotify(value);
      return;
    case VIRTIO_MMIO_INTERRUPT_ACK:
      interrupt_->Ack(value);
      return;
    case VIRTIO_MMIO_STATUS:
      WriteStatus(value);
      return;
    case VIRTIO_MMIO_QUEUE_DESC_LOW:
      if (queue) SetLow(queue->config.desc, value);
      return;
    case VIRTIO_MMIO_QUEUE_DESC_HIGH:
      if (queue) SetHigh(queue->config.desc, value);
      return;
    case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
      if (queue) SetLow(queue->config.avail, value);
      return;
    case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
      if (queue) SetHigh(queue->config.avail, value);
      return;
    case VIRTIO_MMIO_QUEUE_USED_LOW:
      if (queue) SetLow(queue->config.used, value);
      return;
    case VIRTIO_MMIO_QUEUE_USED_HIGH:
      if (queue) SetHigh(queue->config.used, value);
      return;
    default:
      return;
  }
}

void VirtioMmio::WriteStatus(uint32_t value) {
  if (value == 0) {
    ResetLocked();
    return;
  }
  value &= kKnownStatus;
  // The driver may only add bits (spec 2.1.2); anything else is ignored.
  if ((value & status_) != status_) return;
  uint32_t added = value & ~status_;
  if (added & VIRTIO_CONFIG_S_FEATURES_OK) {
    uint64_t offered = OfferedFeatures();
    bool acceptable = (driver_features_ & ~offered) == 0 &&
                      (driver_features_ & (1ull << VIRTIO_F_VERSION_1)) != 0;
    // Refused features: FEATURES_OK stays clear, which the driver reads back and gives up.
    if (!acceptable) value &= ~VIRTIO_CONFIG_S_FEATURES_OK;
  }
  if ((added & VIRTIO_CONFIG_S_DRIVER_OK) && !(value & VIRTIO_CONFIG_S_FEATURES_OK))
    value &= ~VIRTIO_CONFIG_S_DRIVER_OK;
  status_ = value;
  if ((added & VIRTIO_CONFIG_S_DRIVER_OK) && (status_ & VIRTIO_CONFIG_S_DRIVER_OK)) {
    if (auto r = ActivateDevice(std::vector<VirtqueuePosition>(queue_regs_.size())); !r) {
      status_ |= VIRTIO_CONFIG_S_NEEDS_RESET;
      interrupt_->Signal(kVirtioInterruptConfig);
    }
  }
}

Status VirtioMmio::ActivateDevice(const std::vector<VirtqueuePosition>& positions) {
  std::vector<Virtqueue> queues;
  for (size_t i = 0; i < queue_regs_.size(); ++i) {
    if (!queue_regs_[i].ready) return Fail("queue " + std::to_string(i) + " not ready");
    auto q =
        Virtqueue::Create(memory_, device_->max_queue_size(), queue_regs_[i].config, positions[i]);
    if (!q) return std::unexpected(Context("queue " + std::to_string(i), q.error()));
    queues.push_back(std::move(*q));
  }
  queues_ = std::move(queues);
  if (auto r = device_->Activate(queues_, memory_, interrupt_, driver_features_); !r) {
    queues_.clear();
    return r;
  }
  active_ = true;
  return {};
}

void VirtioMmio::ResetLocked() {
  if (active_) device_->Reset();
  active_ = false;
  queues_.clear();
  status_ = 0;
  device_features_sel_ = 0;
  driver_features_sel_ = 0;
  driver_features_ = 0;
  queue_sel_ = 0;
  for (auto& q : queue_regs_) q = QueueRegisters{};
  interrupt_->Ack(~0u);
}

std::vector<uint8_t> VirtioMmio::SaveState() const {
  std::lock_guard lock(mu_);
  StateWriter w;
  w.Put(kStateVersion);
  w.Put(device_->device_id());
  w.Put(status_);
  w.Put(device_features_sel_);
  w.Put(driver_features_sel_);
  w.Put(driver_features_);
  w.Put(queue_sel_);
  w.Put(interrupt_->status());
  w.Put(interrupt_->config_generation());
  w.Put(static_cast<uint8_t>(active_));
  w.Put(static_cast<uint32_t>(queue_regs_.size()));
  for (size_t i = 0; i < queue_regs_.size(); ++i) {
    const auto& q = queue_regs_[i];
    w.Put(q.config.size);
    w.Put(q.config.desc);
    w.Put(q.config.avail);
    w.Put(q.config.used);
    w.Put(static_cast<uint8_t>(q.ready));
    VirtqueuePosition pos = active_ ? queues_[i].position() : VirtqueuePosition{};
    w.Put(pos.next_avail);
    w.Put(pos.next_used);
  }
  w.PutBytes(device_->SaveState());
  return w.Take();
}

Status VirtioMmio::LoadState(std::span<const uint8_t> state) {
  auto fail = [this](const std::string& why) { return Fail(name_ + " state: " + why); };
  StateReader r(state);
  auto version = r.Get<uint32_t>();
  auto device_id = r.Get<uint32_t>();
  auto status = r.Get<uint32_t>();
  auto dfs = r.Get<uint32_t>();
  auto drfs = r.Get<uint32_t>();
  auto driver_features = r.Get<uint64_t>();
  auto queue_sel = r.Get<uint32_t>();
  auto int_status = r.Get<uint32_t>();
  auto generation = r.Get<uint32_t>();
  auto active = r.Get<uint8_t>();
  auto nqueues = r.Get<uint32_t>();
  if (!version || !device_id || !status || !dfs || !drfs || !driver_features || !queue_sel ||
      !int_status || !generation || !active || !nqueues)
    return fail("truncated");
  if (*version != kStateVersion) return fail("version " + std::to_string(*version));
  if (*device_id != device_->device_id())
    return fail("device id " + std::to_string(*device_id) + ", this is " +
                std::to_string(device_->device_id()));
  if (*nqueues != queue_regs_.size()) return fail("queue count mismatch");
  if ((*status & ~kKnownStatus) || *active > 1 || (*int_status & ~3u))
    return fail("impossible values");
  std::vector<QueueRegisters> regs(*nqueues);
  std::vector<VirtqueuePosition> positions(*nqueues);
  for (uint32_t i = 0; i < *nqueues; ++i) {
    auto size = r.Get<uint16_t>();
    auto desc = r.Get<uint64_t>();
    auto avail = r.Get<uint64_t>();
    auto used = r.Get<uint64_t>();
    auto ready = r.Get<uint8_t>();
    auto next_avail = r.Get<uint16_t>();
    auto next_used = r.Get<uint16_t>();
    if (!size || !desc || !avail || !used || !ready || !next_avail || !next_used)
      return fail("truncated");
    if (*ready > 1) return fail("impossible values");
    regs[i] = {{*size, *desc, *avail, *used}, *ready != 0};
    positions[i] = {*next_avail, *next_used};
  }
  auto device_state = r.GetBytes();
  if (!device_state) return fail("truncated");
  if (!r.AtEnd()) return fail("extra bytes");
  if ((*driver_features & ~OfferedFeatures()) != 0)
    return fail("driver features this device does not offer");

  std::lock_guard lock(mu_);
  if (active_) ResetLocked();
  if (auto d = device_->LoadState(*device_state); !d)
    return std::unexpected(Context(name_ + " device state", d.error()));
  status_ = *status;
  device_features_sel_ = *dfs;
  driver_features_sel_ = *drfs;
  driver_features_ = *driver_features;
  queue_sel_ = *queue_sel;
  queue_regs_ = std::move(regs);
  if (*active) {
    if (auto a = ActivateDevice(positions); !a) {
      ResetLocked();
      return std::unexpected(Context(name_ + " reactivate", a.error()));
    }
  }
  interrupt_->Restore(*int_status, *generation);
  return {};
}

}  // namespace phoenix::vmm
