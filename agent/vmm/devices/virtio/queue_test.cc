#include "agent/vmm/devices/virtio/queue.h"

#include <gtest/gtest.h>

#include "agent/vmm/devices/testing/virtio_driver.h"

namespace phoenix::vmm {
namespace {

using testing::Buf;
using testing::DriverQueue;

class QueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = GuestMemory::CreateAnonymous(1 << 20);
    ASSERT_TRUE(m) << m.error().message;
    memory_ = std::make_unique<GuestMemory>(std::move(*m));
    driver_ = std::make_unique<DriverQueue>(*memory_, 0, 16);
    auto q = Virtqueue::Create(*memory_, 256, driver_->config());
    ASSERT_TRUE(q) << q.error().message;
    queue_ = std::make_unique<Virtqueue>(std::move(*q));
  }

  std::unique_ptr<GuestMemory> memory_;
  std::unique_ptr<DriverQueue> driver_;
  std::unique_ptr<Virtqueue> queue_;
};

TEST_F(QueueTest, PopsChainsSplitIntoReadableAndWritableAndPushesUsed) {
  auto empty = queue_->Pop();
  ASSERT_TRUE(empty);
  EXPECT_FALSE(*empty);
  uint16_t head =
      driver_->AddChain({{0x40000, 12, false}, {0x41000, 100, false}, {0x42000, 1500, true}});
  EXPECT_TRUE(*queue_->HasAvailable());
  auto chain = queue_->Pop();
  ASSERT_TRUE(chain) << chain.error().message;
  ASSERT_TRUE(*chain);
  EXPECT_EQ((*chain)->head, head);
  ASSERT_EQ((*chain)->readable.size(), 2u);
  EXPECT_EQ((*chain)->readable[1].gpa, 0x41000u);
  EXPECT_EQ((*chain)->readable_bytes(), 112u);
  ASSERT_EQ((*chain)->writable.size(), 1u);
  EXPECT_EQ((*chain)->writable_bytes(), 1500u);
  EXPECT_FALSE(*queue_->HasAvailable());

  std::vector<uint8_t> data(20, 0x5a);
  auto written = queue_->WriteToChain(**chain, data);
  ASSERT_TRUE(written);
  EXPECT_EQ(*written, 20u);
  EXPECT_EQ(*memory_->ReadObject<uint8_t>(0x42013), 0x5a);
  ASSERT_TRUE(queue_->PushUsed(head, 20));
  EXPECT_EQ(driver_->UsedIndex(), 1);
  EXPECT_EQ(driver_->Used(0).id, head);
  EXPECT_EQ(driver_->Used(0).len, 20u);
  EXPECT_EQ(queue_->position().next_avail, 1);
  EXPECT_EQ(queue_->position().next_used, 1);

  std::vector<uint8_t> out;
  EXPECT_TRUE(queue_->ReadFromChain(**chain, 112, out));
  EXPECT_EQ(out.size(), 112u);
  EXPECT_FALSE(queue_->ReadFromChain(**chain, 111, out));
}

// Each malformed chain is refused, its head goes back used with length 0, and the queue goes on.
TEST_F(QueueTest, MalformedChainsAreReturnedUnusedAndTheQueueContinues) {
  struct Case {
    const char* name;
    std::function<uint16_t()> add;
  };
  std::vector<Case> cases = {
      {"outside RAM",
       [&] {
         return driver_->AddChain({{(1 << 20) - 8, 16, false}});
       }},
      {"huge length",
       [&] {
         return driver_->AddChain({{0x40000, 0xffffffff, true}});
       }},
      {"zero length",
       [&] {
         return driver_->AddChain({{0x40000, 0, false}});
       }},
      {"readable after writable",
       [&] {
         return driver_->AddChain({{0x40000, 8, true}, {0x41000, 8, false}});
       }},
      {"loop",
       [&] {
         VirtqDesc a{0x40000, 8, kVirtqDescFNext, 11};
         VirtqDesc b{0x41000, 8, kVirtqDescFNext, 10};
         driver_->WriteDesc(10, a);
         driver_->WriteDesc(11, b);
         driver_->Publish(10);
         return uint16_t{10};
       }},
      {"next outside table",
       [&] {
         VirtqDesc a{0x40000, 8, kVirtqDescFNext, 16};
         driver_->WriteDesc(12, a);
         driver_->Publish(12);
         return uint16_t{12};
       }},
      {"indirect",
       [&] {
         VirtqDesc a{0x40000, 32, kVirtqDescFIndirect, 0};
         driver_->WriteDesc(13, a);
         driver_->Publish(13);
         return uint16_t{13};
       }},
  };
  uint16_t used = 0;
  for (auto& c : cases) {
    uint16_t head = c.add();
    auto chain = queue_->Pop();
    EXPECT_FALSE(chain) << c.name;
    EXPECT_FALSE(queue_->broken()) << c.name;
    ++used;
    EXPECT_EQ(driver_->UsedIndex(), used) << c.name;
    EXPECT_EQ(driver_->Used(used - 1).id, head) << c.name;
    EXPECT_EQ(driver_->Used(used - 1).len, 0u) << c.name;
  }
  driver_->AddChain({{0x40000, 8, false}});
  auto good = queue_->Pop();
  ASSERT_TRUE(good);
  EXPECT_TRUE(*good);
}

TEST_F(QueueTest, ABrokenRingStopsTheQueue) {
  driver_->SetAvailIndex(17);  // more than the queue size ahead
  EXPECT_FALSE(queue_->Pop());
  EXPECT_TRUE(queue_->broken());
  EXPECT_FALSE(queue_->Pop());
  EXPECT_FALSE(queue_->HasAvailable());
  EXPECT_EQ(driver_->UsedIndex(), 0);
}

TEST_F(QueueTest, HeadOutsideTheTableBreaksTheQueue) {
  driver_->Publish(16);
  EXPECT_FALSE(queue_->Pop());
  EXPECT_TRUE(queue_->broken());
}

TEST_F(QueueTest, CreateRefusesBadGeometry) {
  VirtqueueConfig c = driver_->config();
  c.size = 12;
  EXPECT_FALSE(Virtqueue::Create(*memory_, 256, c));
  c.size = 512;
  EXPECT_FALSE(Virtqueue::Create(*memory_, 256, c));
  c.size = 0;
  EXPECT_FALSE(Virtqueue::Create(*memory_, 256, c));
  c = driver_->config();
  c.desc += 8;
  EXPECT_FALSE(Virtqueue::Create(*memory_, 256, c));
  c = driver_->config();
  c.used = (1 << 20) - 64;  // ring runs past the end of RAM
  EXPECT_FALSE(Virtqueue::Create(*memory_, 256, c));
  c = driver_->config();
  c.avail = 0xd0000000;
  EXPECT_FALSE(Virtqueue::Create(*memory_, 256, c));
}

TEST_F(QueueTest, PositionsSurviveRecreationAndIndicesWrap) {
  driver_->SetAvailIndex(65534);
  auto q = Virtqueue::Create(*memory_, 256, driver_->config(), {65534, 65534});
  ASSERT_TRUE(q);
  (void)memory_->WriteObject<uint16_t>(driver_->config().used + 2, 65534);
  for (int i = 0; i < 3; ++i) {
    uint16_t head = driver_->AddChain({{0x40000, 8, true}});
    auto chain = q->Pop();
    ASSERT_TRUE(chain) << i;
    ASSERT_TRUE(*chain) << i;
    EXPECT_EQ((*chain)->head, head);
    ASSERT_TRUE(q->PushUsed(head, 8));
  }
  EXPECT_EQ(q->position().next_avail, 1);
  EXPECT_EQ(driver_->UsedIndex(), 1);
  EXPECT_EQ(driver_->Used(0).len, 8u);
}

TEST_F(QueueTest, NoInterruptFlagIsHonoured) {
  EXPECT_TRUE(queue_->NeedsInterrupt());
  driver_->SetAvailFlags(kVirtqAvailFNoInterrupt);
  EXPECT_FALSE(queue_->NeedsInterrupt());
}

}  // namespace
}  // namespace phoenix::vmm
