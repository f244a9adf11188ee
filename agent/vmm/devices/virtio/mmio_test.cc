#include "agent/vmm/devices/virtio/mmio.h"

#include <gtest/gtest.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>

#include "agent/vmm/devices/testing/recording_interrupt.h"
#include "agent/vmm/devices/testing/virtio_driver.h"
#include "agent/vmm/snapshot/codec.h"

namespace phoenix::vmm {
namespace {

using testing::DriverQueue;
using testing::RecordingInterrupt;
using testing::Reg;
using testing::SetReg;

// A device that records what the transport does to it and pops chains on notify.
class FakeDevice : public VirtioDevice {
 public:
  uint32_t device_id() const override { return 42; }
  uint64_t features() const override { return 1ull << 5; }
  uint32_t num_queues() const override { return 2; }
  uint16_t max_queue_size() const override { return 64; }
  void ReadConfig(uint64_t offset, std::span<uint8_t> data) const override {
    for (size_t i = 0; i < data.size(); ++i)
      data[i] = offset + i < config.size() ? config[offset + i] : 0;
  }
  void WriteConfig(uint64_t offset, std::span<const uint8_t> data) override {
    for (size_t i = 0; i < data.size(); ++i)
      if (offset + i < config.size()) config[offset + i] = data[i];
  }
  Status Activate(std::span<Virtqueue> q, const GuestMemory&, std::shared_ptr<VirtioInterrupt> i,
                  uint64_t f) override {
    queues = q;
    interrupt = std::move(i);
    acked = f;
    ++activations;
    return {};
  }
  void QueueNotify(uint32_t index) override {
    notified.push_back(index);
    auto chain = queues[index].Pop();
    if (chain && *chain) {
      (void)queues[index].PushUsed((*chain)->head, 0);
      interrupt->Signal(kVirtioInterruptUsedBuffer);
    }
  }
  void Reset() override {
    ++resets;
    queues = {};
  }
  std::vector<uint8_t> SaveState() const override { return {config.begin(), config.end()}; }
  Status LoadState(std::span<const uint8_t> s) override {
    if (s.size() != config.size()) return Fail("bad fake state");
    std::copy(s.begin(), s.end(), config.begin());
    return {};
  }

  std::array<uint8_t, 4> config{1, 2, 3, 4};
  std::span<Virtqueue> queues;
  std::shared_ptr<VirtioInterrupt> interrupt;
  uint64_t acked = 0;
  int activations = 0, resets = 0;
  std::vector<uint32_t> notified;
};

class MmioTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = GuestMemory::CreateAnonymous(1 << 20);
    ASSERT_TRUE(m);
    memory_ = std::make_unique<GuestMemory>(std::move(*m));
    mmio_ = std::make_unique<VirtioMmio>("virtio-fake0", device_, *memory_, irq_);
  }

  // The Linux virtio_mmio probe + virtio core init sequence.
  void DriverInit(VirtioMmio& mmio, uint64_t features, std::vector<DriverQueue>& queues) {
    SetReg(mmio, VIRTIO_MMIO_STATUS, 0);
    SetReg(mmio, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    SetReg(mmio, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    SetReg(mmio, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    SetReg(mmio, VIRTIO_MMIO_DRIVER_FEATURES, static_cast<uint32_t>(features));
    SetReg(mmio, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    SetReg(mmio, VIRTIO_MMIO_DRIVER_FEATURES, static_cast<uint32_t>(features >> 32));
    SetReg(mmio, VIRTIO_MMIO_STATUS, 0xb);
    for (uint32_t i = 0; i < queues.size(); ++i) {
      SetReg(mmio, VIRTIO_MMIO_QUEUE_SEL, i);
      EXPECT_EQ(Reg(mmio, VIRTIO_MMIO_QUEUE_READY), 0u);
      EXPECT_EQ(Reg(mmio, VIRTIO_MMIO_QUEUE_NUM_MAX), 64u);
      const auto& c = queues[i].config();
      SetReg(mmio, VIRTIO_MMIO_QUEUE_NUM, c.size);
      SetReg(mmio, VIRTIO_MMIO_QUEUE_DESC_LOW, static_cast<uint32_t>(c.desc));
      SetReg(mmio, VIRTIO_MMIO_QUEUE_DESC_HIGH, static_cast<uint32_t>(c.desc >> 32));
      SetReg(mmio, VIRTIO_MMIO_QUEUE_AVAIL_LOW, static_cast<uint32_t>(c.avail));
      SetReg(mmio, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
      SetReg(mmio, VIRTIO_MMIO_QUEUE_USED_LOW, static_cast<uint32_t>(c.used));
      SetReg(mmio, VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
      SetReg(mmio, VIRTIO_MMIO_QUEUE_READY, 1);
    }
    SetReg(mmio, VIRTIO_MMIO_STATUS, 0xf);
  }

  std::vector<DriverQueue> Queues() {
    return {DriverQueue(*memory_, 0, 16), DriverQueue(*memory_, 1, 16)};
  }

  std::unique_ptr<GuestMemory> memory_;
  std::shared_ptr<FakeDevice> device_ = std::make_shared<FakeDevice>();
  std::shared_ptr<RecordingInterrupt> irq_ = std::make_shared<RecordingInterrupt>();
  std::unique_ptr<VirtioMmio> mmio_;
};

constexpr uint64_t kVersion1 = 1ull << VIRTIO_F_VERSION_1;

TEST_F(MmioTest, IdentityAndFeatures) {
  EXPECT_EQ(Reg(*mmio_, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976u);
  EXPECT_EQ(Reg(*mmio_, VIRTIO_MMIO_VERSION), 2u);
  EXPECT_EQ(Reg(*mmio_, VIRTIO_MMIO_DEVICE_ID), 42u);
  SetReg(*mmio_, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
  EXPECT_EQ(Reg(*mmio_, VIRTIO_MMIO_DEVICE_FEATURES), 1u << 5);
  SetReg(*mmio_, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
  EXPECT_EQ(Reg(*mmio_, VIRTIO_MMIO_DEVICE_FEATURES), 1u);  // VERSION_1 is bit 32
  // Config space, byte and word reads.
  uint8_t b = 0;
  mmio_->Read(VIRTIO_MMIO_CONFIG + 2, {&b, 1});
  EXPECT_EQ(b, 3);
  EXPECT_EQ(Reg(*mmio_, VIRTIO_MMIO_CONFIG), 0x04030201u);
  // Narrow register accesses read zero.
  uint16_t narrow = 0xffff;
  mmio_->Read(VIRTIO_MMIO_MAGIC_VALUE, {reinterpret_cast<uint8_t*>(&narrow), 2});
  EXPECT_EQ(narrow, 0);
}

TEST_F(MmioTest, FeaturesOkRequiresVersion1AndOfferedBitsOnly) {
  auto queues = Queues();
  DriverInit(*mmio_, 1ull << 5, queues);  // legacy driver: no VERSION_1
  EXPECT_EQ(mmio_->status() & VIRTIO_CONFIG_S_FEATURES_OK, 0u);
  EXPECT_EQ(device_->activations, 0);
  DriverInit(*mmio_, kVersion1 | (1ull << 7), queues);  // a bit never offered
  EXPECT_EQ(mmio_->status() & VIRTIO_CONFIG_S_FEATURES_OK, 0u);
  EXPECT_EQ(device_->activations, 0);
}

TEST_F(MmioTest, DriverOkActivatesNotifyAndInterruptAckWork) {
  auto queues = Queues();
  DriverInit(*mmio_, kVersion1 | (1ull << 5), queues);
  EXPECT_EQ(mmio_->status(), 0xfu);
  ASSERT_EQ(device_->activations, 1);
  EXPECT_EQ(device_->acked, kVersion1 | (1ull << 5));
  ASSERT_EQ(device_->queues.size(), 2u);
  EXPECT_EQ(device_->queues[1].config().desc, queues[1].config().desc);

  queues[1].AddChain({{0x40000, 8, false}});
  SetReg(*mmio_, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
  EXPECT_EQ(device_->notified, std::vector<uint32_t>{1});
  EXPECT_EQ(queues[1].UsedIndex(), 1);
  EXPECT_TRUE(irq_->level());
  EXPECT_EQ(Reg(*mmio_, VIRTIO_MMIO_INTERRUPT_STATUS), 1u);
  SetReg(*mmio_, VIRTIO_MMIO_INTERRUPT_ACK, 1);
  EXPECT_FALSE(irq_->level());
  EXPECT_EQ(Reg(*mmio_, VIRTIO_MMIO_INTERRUPT_STATUS), 0u);

  SetReg(*mmio_, VIRTIO_MMIO_QUEUE_NOTIFY, 7);  // no such queue: ignored
  EXPECT_EQ(device_->notified.size(), 1u);

  // Config change interrupt bumps the generation.
  uint32_t gen = Reg(*mmio_, VIRTIO_MMIO_CONFIG_GENERATION);
  device_->interrupt->Signal(kVirtioInterruptConfig);
  EXPECT_EQ(Reg(*mmio_, VIRTIO_MMIO_CONFIG_GENERATION), gen + 1);
  EXPECT_EQ(Reg(*mmio_, VIRTIO_MMIO_INTERRUPT_STATUS), 2u);

  // Queue registers are frozen after DRIVER_OK.
  SetReg(*mmio_, VIRTIO_MMIO_QUEUE_SEL, 0);
  SetReg(*mmio_, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1234);
  EXPECT_EQ(Reg(*mmio_, VIRTIO_MMIO_QUEUE_READY), 1u);

  SetReg(*mmio_, VIRTIO_MMIO_STATUS, 0);  // reset
  EXPECT_EQ(device_->resets, 1);
  EXPECT_EQ(mmio_->status(), 0u);
  EXPECT_FALSE(irq_->level());
  EXPECT_EQ(Reg(*mmio_, VIRTIO_MMIO_QUEUE_READY), 0u);
}

TEST_F(MmioTest, BadQueueAddressesSetNeedsReset) {
  std::vector<DriverQueue> queues = Queues();
  SetReg(*mmio_, VIRTIO_MMIO_STATUS, 0x3);
  SetReg(*mmio_, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
  SetReg(*mmio_, VIRTIO_MMIO_DRIVER_FEATURES, 1);
  SetReg(*mmio_, VIRTIO_MMIO_STATUS, 0xb);
  for (uint32_t i = 0; i < 2; ++i) {
    SetReg(*mmio_, VIRTIO_MMIO_QUEUE_SEL, i);
    SetReg(*mmio_, VIRTIO_MMIO_QUEUE_NUM, 16);
    SetReg(*mmio_, VIRTIO_MMIO_QUEUE_DESC_LOW, 0xfff00000);  // outside 1 MiB of RAM
    SetReg(*mmio_, VIRTIO_MMIO_QUEUE_READY, 1);
  }
  SetReg(*mmio_, VIRTIO_MMIO_STATUS, 0xf);
  EXPECT_EQ(device_->activations, 0);
  EXPECT_TRUE(mmio_->status() & VIRTIO_CONFIG_S_NEEDS_RESET);
  EXPECT_TRUE(irq_->level());
  EXPECT_EQ(Reg(*mmio_, VIRTIO_MMIO_INTERRUPT_STATUS), 2u);
}

TEST_F(MmioTest, SnapshotReactivatesWithTheSameQueuesAndPositions) {
  auto queues = Queues();
  DriverInit(*mmio_, kVersion1, queues);
  for (int i = 0; i < 3; ++i) {
    queues[0].AddChain({{0x40000, 8, true}});
    SetReg(*mmio_, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
  }
  device_->config[0] = 9;
  auto state = mmio_->SaveState();

  // A new machine: same memory contents (the memory file), fresh transport and device.
  auto device2 = std::make_shared<FakeDevice>();
  auto irq2 = std::make_shared<RecordingInterrupt>();
  VirtioMmio mmio2("virtio-fake0", device2, *memory_, irq2);
  ASSERT_TRUE(mmio2.LoadState(state));
  EXPECT_EQ(mmio2.status(), 0xfu);
  ASSERT_EQ(device2->activations, 1);
  EXPECT_EQ(device2->config[0], 9);
  EXPECT_EQ(device2->queues[0].position().next_avail, 3);
  EXPECT_EQ(device2->queues[0].position().next_used, 3);
  EXPECT_TRUE(irq2->level());  // the interrupt the guest had not acknowledged yet
  queues[0].AddChain({{0x40000, 8, true}});
  SetReg(mmio2, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
  EXPECT_EQ(queues[0].UsedIndex(), 4);
  EXPECT_EQ(mmio2.SaveState().size(), state.size());
}

TEST_F(MmioTest, LoadStateRefusesCorruptState) {
  auto queues = Queues();
  DriverInit(*mmio_, kVersion1, queues);
  auto state = mmio_->SaveState();
  auto device2 = std::make_shared<FakeDevice>();
  VirtioMmio mmio2("virtio-fake0", device2, *memory_, std::make_shared<RecordingInterrupt>());
  for (size_t n : {size_t{0}, size_t{10}, state.size() / 2, state.size() - 1})
    EXPECT_FALSE(mmio2.LoadState(std::span<const uint8_t>(state).first(n))) << n;
  auto bad = state;
  bad[4] = 1;  // another device id
  EXPECT_FALSE(mmio2.LoadState(bad));
  bad = state;
  bad.push_back(0);
  EXPECT_FALSE(mmio2.LoadState(bad));
  EXPECT_EQ(device2->activations, 0);
  EXPECT_TRUE(mmio2.LoadState(state));
}

}  // namespace
}  // namespace phoenix::vmm
