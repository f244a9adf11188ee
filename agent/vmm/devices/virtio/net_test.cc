#include "agent/vmm/devices/virtio/net.h"

#include <gtest/gtest.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/vmm/devices/testing/recording_interrupt.h"
#include "agent/vmm/devices/testing/virtio_driver.h"

namespace phoenix::vmm {
namespace {

using testing::DriverQueue;
using testing::RecordingInterrupt;
using testing::Reg;
using testing::SetReg;

constexpr std::array<uint8_t, 6> kMac{0x06, 0x00, 0xac, 0x10, 0x00, 0x02};
constexpr uint64_t kFeatures =
    (1ull << VIRTIO_F_VERSION_1) | (1ull << kVirtioNetFMac) | (1ull << kVirtioNetFStatus);

std::vector<uint8_t> Frame(size_t n, uint8_t seed) {
  std::vector<uint8_t> f(n);
  for (size_t i = 0; i < n; ++i) f[i] = static_cast<uint8_t>(seed + i);
  return f;
}

// One "machine": a tap socketpair, the net device and its transport.
struct Rig {
  int peer = -1;  // the host side of the "tap"
  std::shared_ptr<VirtioNet> net;
  std::shared_ptr<RecordingInterrupt> irq = std::make_shared<RecordingInterrupt>();
  std::unique_ptr<VirtioMmio> mmio;

  explicit Rig(const GuestMemory& memory) {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) return;
    peer = fds[1];
    auto n = VirtioNet::Create(fds[0], kMac);
    if (!n) return;
    net = *n;
    mmio = std::make_unique<VirtioMmio>("virtio-net0", net, memory, irq);
  }
  ~Rig() {
    mmio.reset();
    net.reset();
    if (peer >= 0) close(peer);
  }
  void Send(const std::vector<uint8_t>& frame) const {
    ASSERT_EQ(send(peer, frame.data(), frame.size(), 0), static_cast<ssize_t>(frame.size()));
  }
  // A frame from the device, or empty after the (bounded) timeout.
  std::vector<uint8_t> Receive(int timeout_ms = 5000) const {
    pollfd p{peer, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) != 1) return {};
    std::vector<uint8_t> buf(70000);
    ssize_t n = recv(peer, buf.data(), buf.size(), 0);
    buf.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return buf;
  }
};

class NetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = GuestMemory::CreateAnonymous(1 << 20);
    ASSERT_TRUE(m);
    memory_ = std::make_unique<GuestMemory>(std::move(*m));
    rig_ = std::make_unique<Rig>(*memory_);
    ASSERT_TRUE(rig_->mmio);
    rx_ = std::make_unique<DriverQueue>(*memory_, 0, 16);
    tx_ = std::make_unique<DriverQueue>(*memory_, 1, 16);
  }

  void DriverInit(VirtioMmio& mmio) {
    SetReg(mmio, VIRTIO_MMIO_STATUS, 0);
    SetReg(mmio, VIRTIO_MMIO_STATUS, 3);
    SetReg(mmio, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    uint64_t offered = Reg(mmio, VIRTIO_MMIO_DEVICE_FEATURES);
    SetReg(mmio, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    offered |= uint64_t{Reg(mmio, VIRTIO_MMIO_DEVICE_FEATURES)} << 32;
    ASSERT_EQ(offered & kFeatures, kFeatures);
    SetReg(mmio, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    SetReg(mmio, VIRTIO_MMIO_DRIVER_FEATURES, static_cast<uint32_t>(kFeatures));
    SetReg(mmio, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    SetReg(mmio, VIRTIO_MMIO_DRIVER_FEATURES, static_cast<uint32_t>(kFeatures >> 32));
    SetReg(mmio, VIRTIO_MMIO_STATUS, 0xb);
    ASSERT_EQ(Reg(mmio, VIRTIO_MMIO_STATUS), 0xbu);
    DriverQueue* qs[] = {rx_.get(), tx_.get()};
    for (uint32_t i = 0; i < 2; ++i) {
      const auto& c = qs[i]->config();
      SetReg(mmio, VIRTIO_MMIO_QUEUE_SEL, i);
      SetReg(mmio, VIRTIO_MMIO_QUEUE_NUM, c.size);
      SetReg(mmio, VIRTIO_MMIO_QUEUE_DESC_LOW, static_cast<uint32_t>(c.desc));
      SetReg(mmio, VIRTIO_MMIO_QUEUE_AVAIL_LOW, static_cast<uint32_t>(c.avail));
      SetReg(mmio, VIRTIO_MMIO_QUEUE_USED_LOW, static_cast<uint32_t>(c.used));
      SetReg(mmio, VIRTIO_MMIO_QUEUE_READY, 1);
    }
    SetReg(mmio, VIRTIO_MMIO_STATUS, 0xf);
    ASSERT_EQ(Reg(mmio, VIRTIO_MMIO_STATUS), 0xfu);
  }

  // Posts an RX buffer at `gpa` and kicks the RX queue.
  void PostRx(VirtioMmio& mmio, uint64_t gpa, uint32_t len = 2048) {
    rx_->AddChain({{gpa, len, true}});
    SetReg(mmio, VIRTIO_MMIO_QUEUE_NOTIFY, VirtioNet::kRxQueue);
  }
  // Posts a TX chain: header descriptor + frame descriptor.
  void PostTx(VirtioMmio& mmio, const std::vector<uint8_t>& frame, uint64_t gpa) {
    VirtioNetHeader header{};
    ASSERT_TRUE(memory_->WriteObject(gpa, header));
    ASSERT_TRUE(memory_->Write(gpa + 0x100, frame));
    tx_->AddChain({{gpa, 12, false}, {gpa + 0x100, static_cast<uint32_t>(frame.size()), false}});
    SetReg(mmio, VIRTIO_MMIO_QUEUE_NOTIFY, VirtioNet::kTxQueue);
  }
  void ExpectRx(uint16_t used_index, uint64_t gpa, const std::vector<uint8_t>& frame) {
    ASSERT_TRUE(rx_->WaitUsed(used_index));
    auto elem = rx_->Used(used_index - 1);
    EXPECT_EQ(elem.len, 12 + frame.size());
    auto header = *memory_->ReadObject<VirtioNetHeader>(gpa);
    EXPECT_EQ(header.flags, 0);
    EXPECT_EQ(header.gso_type, 0);
    EXPECT_EQ(header.num_buffers, 1);
    std::vector<uint8_t> got(frame.size());
    ASSERT_TRUE(memory_->Read(gpa + 12, got));
    EXPECT_EQ(got, frame);
  }

  std::unique_ptr<GuestMemory> memory_;
  std::unique_ptr<Rig> rig_;
  std::unique_ptr<DriverQueue> rx_, tx_;
};

TEST_F(NetTest, ConfigSpaceCarriesMacAndLinkUp) {
  uint8_t config[8] = {};
  for (int i = 0; i < 8; ++i) rig_->mmio->Read(VIRTIO_MMIO_CONFIG + i, {&config[i], 1});
  EXPECT_TRUE(std::equal(kMac.begin(), kMac.end(), config));
  EXPECT_EQ(config[6] | (config[7] << 8), kVirtioNetSLinkUp);
  EXPECT_EQ(Reg(*rig_->mmio, VIRTIO_MMIO_DEVICE_ID), 1u);
}

TEST_F(NetTest, FramesFlowBothWays) {
  DriverInit(*rig_->mmio);
  PostRx(*rig_->mmio, 0x40000);
  auto in = Frame(60, 1);
  rig_->Send(in);
  ExpectRx(1, 0x40000, in);
  EXPECT_TRUE(rig_->irq->level());
  EXPECT_EQ(Reg(*rig_->mmio, VIRTIO_MMIO_INTERRUPT_STATUS) & 1, 1u);
  SetReg(*rig_->mmio, VIRTIO_MMIO_INTERRUPT_ACK, 1);

  // A frame that arrives before the guest posts a buffer waits for it.
  auto early = Frame(1514, 7);
  rig_->Send(early);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(rx_->UsedIndex(), 1);
  PostRx(*rig_->mmio, 0x48000);
  ExpectRx(2, 0x48000, early);

  auto out = Frame(100, 9);
  PostTx(*rig_->mmio, out, 0x60000);
  EXPECT_EQ(rig_->Receive(), out);
  ASSERT_TRUE(tx_->WaitUsed(1));
  // Header and frame in a single descriptor.
  std::vector<uint8_t> one(12 + 42, 0);
  auto small = Frame(42, 3);
  std::copy(small.begin(), small.end(), one.begin() + 12);
  ASSERT_TRUE(memory_->Write(0x70000, one));
  tx_->AddChain({{0x70000, static_cast<uint32_t>(one.size()), false}});
  SetReg(*rig_->mmio, VIRTIO_MMIO_QUEUE_NOTIFY, VirtioNet::kTxQueue);
  EXPECT_EQ(rig_->Receive(), small);
  ASSERT_TRUE(tx_->WaitUsed(2));
  auto c = rig_->net->counters();
  EXPECT_EQ(c.rx_frames, 2u);
  EXPECT_EQ(c.tx_frames, 2u);
}

TEST_F(NetTest, QuiescedDeviceLeavesGuestMemoryAlone) {
  DriverInit(*rig_->mmio);
  rig_->net->Quiesce();
  PostRx(*rig_->mmio, 0x40000);
  rig_->Send(Frame(64, 2));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(rx_->UsedIndex(), 0);
  rig_->net->Resume();
  ExpectRx(1, 0x40000, Frame(64, 2));
}

TEST_F(NetTest, SnapshotMidStreamAndContinueOnANewMachine) {
  DriverInit(*rig_->mmio);
  PostRx(*rig_->mmio, 0x40000);
  rig_->Send(Frame(80, 4));
  ExpectRx(1, 0x40000, Frame(80, 4));
  PostTx(*rig_->mmio, Frame(70, 5), 0x60000);
  EXPECT_EQ(rig_->Receive(), Frame(70, 5));
  ASSERT_TRUE(tx_->WaitUsed(1));
  PostRx(*rig_->mmio, 0x44000);  // posted, not yet used: must survive the snapshot

  rig_->net->Quiesce();
  auto state = rig_->mmio->SaveState();
  rig_.reset();  // the old monitor is gone

  Rig restored(*memory_);
  ASSERT_TRUE(restored.mmio);
  ASSERT_TRUE(restored.mmio->LoadState(state));
  EXPECT_EQ(Reg(*restored.mmio, VIRTIO_MMIO_STATUS), 0xfu);
  rig_ = nullptr;
  restored.Send(Frame(90, 6));
  ExpectRx(2, 0x44000, Frame(90, 6));
  PostTx(*restored.mmio, Frame(50, 8), 0x64000);
  EXPECT_EQ(restored.Receive(), Frame(50, 8));
  ASSERT_TRUE(tx_->WaitUsed(2));
  EXPECT_TRUE(restored.irq->level());
}

TEST_F(NetTest, MalformedChainsAreRefusedWithoutCrashing) {
  DriverInit(*rig_->mmio);
  // TX: buffer beyond RAM, then a zero-length one, then a loop; each comes back with length 0.
  tx_->AddChain({{0x60000, 12, false}, {(1 << 20) - 10, 100, false}});
  tx_->AddChain({{0x60000, 0, false}});
  VirtqDesc a{0x60000, 12, kVirtqDescFNext, 9};
  VirtqDesc b{0x61000, 12, kVirtqDescFNext, 8};
  tx_->WriteDesc(8, a);
  tx_->WriteDesc(9, b);
  tx_->Publish(8);
  SetReg(*rig_->mmio, VIRTIO_MMIO_QUEUE_NOTIFY, VirtioNet::kTxQueue);
  ASSERT_TRUE(tx_->WaitUsed(3));
  for (uint16_t i = 0; i < 3; ++i) EXPECT_EQ(tx_->Used(i).len, 0u);
  // A chain shorter than the header sends nothing.
  tx_->AddChain({{0x62000, 6, false}});
  SetReg(*rig_->mmio, VIRTIO_MMIO_QUEUE_NOTIFY, VirtioNet::kTxQueue);
  ASSERT_TRUE(tx_->WaitUsed(4));
  EXPECT_TRUE(rig_->Receive(50).empty());

  // RX: a read-only buffer, and one too small for the frame, are returned unused.
  rx_->AddChain({{0x40000, 2048, false}});
  SetReg(*rig_->mmio, VIRTIO_MMIO_QUEUE_NOTIFY, VirtioNet::kRxQueue);
  rx_->AddChain({{0x41000, 64, true}});
  SetReg(*rig_->mmio, VIRTIO_MMIO_QUEUE_NOTIFY, VirtioNet::kRxQueue);
  rig_->Send(Frame(200, 1));
  rig_->Send(Frame(200, 2));
  ASSERT_TRUE(rx_->WaitUsed(2));
  EXPECT_EQ(rx_->Used(0).len, 0u);
  EXPECT_EQ(rx_->Used(1).len, 0u);
  auto c = rig_->net->counters();
  EXPECT_EQ(c.rx_dropped, 2u);
  EXPECT_GE(c.bad_chains, 3u);

  // The device still works afterwards.
  PostRx(*rig_->mmio, 0x48000);
  rig_->Send(Frame(60, 2));
  ExpectRx(3, 0x48000, Frame(60, 2));
  PostTx(*rig_->mmio, Frame(60, 3), 0x64000);
  EXPECT_EQ(rig_->Receive(), Frame(60, 3));
}

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

TEST_F(NetTest, NoInterruptWhileTheDriverSuppressesIt) {
  DriverInit(*rig_->mmio);
  tx_->SetAvailFlags(kVirtqAvailFNoInterrupt);
  PostTx(*rig_->mmio, Frame(60, 1), 0x60000);
  EXPECT_EQ(rig_->Receive(), Frame(60, 1));
  ASSERT_TRUE(tx_->WaitUsed(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(rig_->irq->level());
  PostRx(*rig_->mmio, 0x40000);
  rig_->Send(Frame(60, 2));
  ExpectRx(1, 0x40000, Frame(60, 2));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(rig_->irq->level());
}

TEST_F(NetTest, ResetStopsTheBackendAndAHungUpTapDoesNotSpin) {
  DriverInit(*rig_->mmio);
  SetReg(*rig_->mmio, VIRTIO_MMIO_STATUS, 0);
  rig_->Send(Frame(60, 1));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(rx_->UsedIndex(), 0);
  DriverInit(*rig_->mmio);
  PostRx(*rig_->mmio, 0x40000);
  // The queued frame was read by nobody before; after re-init it is delivered to the new rings.
  ASSERT_TRUE(rx_->WaitUsed(1));
  PostRx(*rig_->mmio, 0x44000);  // RX buffers left: the backend keeps polling the tap
  close(rig_->peer);
  rig_->peer = -1;
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  double before = CpuSeconds();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_LT(CpuSeconds() - before, 0.1);  // a spinning backend would burn ~0.3 s
  EXPECT_EQ(rig_->net->counters().rx_frames, 1u);
}

TEST(VirtioNetState, LoadStateRefusesGarbage) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds), 0);
  auto net = VirtioNet::Create(fds[0], kMac);
  ASSERT_TRUE(net);
  auto state = (*net)->SaveState();
  EXPECT_TRUE((*net)->LoadState(state));
  state.pop_back();
  EXPECT_FALSE((*net)->LoadState(state));
  close(fds[1]);
}

}  // namespace
}  // namespace phoenix::vmm
