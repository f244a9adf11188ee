#include "agent/vmm/snapshot/snapshot_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "agent/vmm/snapshot/crc32c.h"

namespace phoenix::vmm {
namespace {

constexpr size_t kHeader = 28;

// Fills a POD with a byte pattern that differs per field (seed), so a field swapped, dropped or
// decoded from the wrong offset shows up.
template <typename T>
void Fill(T& value, uint8_t seed) {
  auto* p = reinterpret_cast<uint8_t*>(&value);
  for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 8));
}

template <typename T>
bool SameBytes(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

MachineState RichState(uint32_t vcpus = 2, uint64_t memory = 2ull << 20) {
  MachineState s;
  s.shape.vcpus = vcpus;
  s.shape.memory_bytes = memory;
  s.shape.has_net = true;
  s.shape.mac = {0x06, 0x00, 0xac, 0x10, 0x00, 0x02};
  for (uint32_t i = 0; i < vcpus; ++i) {
    VcpuState v;
    const auto k = static_cast<uint8_t>(i * 16);
    Fill(v.regs, k + 1);
    Fill(v.sregs, k + 2);
    Fill(v.xsave, k + 3);
    Fill(v.xcrs, k + 4);
    Fill(v.lapic, k + 5);
    Fill(v.events, k + 6);
    Fill(v.mp_state, k + 7);
    Fill(v.debugregs, k + 8);
    for (uint32_t m = 0; m < 40 + i; ++m) {
      kvm_msr_entry e{};
      e.index = 0xc0000080 + m;
      e.data = 0x1122334455667788ull ^ (uint64_t{m} << 32) ^ i;
      v.msrs.push_back(e);
    }
    for (uint32_t c = 0; c < 20; ++c) {
      kvm_cpuid_entry2 e;
      Fill(e, static_cast<uint8_t>(k + 9 + c));
      v.cpuid.push_back(e);
    }
    v.tsc_khz = 2'400'000 + i;
    s.vcpus.push_back(std::move(v));
  }
  for (uint32_t i = 0; i < 3; ++i) {
    Fill(s.irqchips[i], static_cast<uint8_t>(100 + i));
    s.irqchips[i].chip_id = i;
  }
  Fill(s.pit, 120);
  Fill(s.clock, 130);
  s.devices.push_back({"serial0", {1, 2, 3, 4, 5}});
  s.devices.push_back({"virtio-net0", std::vector<uint8_t>(300, 0x5a)});
  s.devices.push_back({"cmos0", {}});
  return s;
}

void ExpectSame(const MachineState& a, const MachineState& b) {
  EXPECT_EQ(a.shape.vcpus, b.shape.vcpus);
  EXPECT_EQ(a.shape.memory_bytes, b.shape.memory_bytes);
  EXPECT_EQ(a.shape.has_net, b.shape.has_net);
  EXPECT_EQ(a.shape.mac, b.shape.mac);
  ASSERT_EQ(a.vcpus.size(), b.vcpus.size());
  for (size_t i = 0; i < a.vcpus.size(); ++i) {
    const VcpuState& x = a.vcpus[i];
    const VcpuState& y = b.vcpus[i];
    EXPECT_TRUE(SameBytes(x.regs, y.regs)) << i;
    EXPECT_TRUE(SameBytes(x.sregs, y.sregs)) << i;
    EXPECT_TRUE(SameBytes(x.xsave, y.xsave)) << i;
    EXPECT_TRUE(SameBytes(x.xcrs, y.xcrs)) << i;
    EXPECT_TRUE(SameBytes(x.lapic, y.lapic)) << i;
    EXPECT_TRUE(SameBytes(x.events, y.events)) << i;
    EXPECT_TRUE(SameBytes(x.mp_state, y.mp_state)) << i;
    EXPECT_TRUE(SameBytes(x.debugregs, y.debugregs)) << i;
    ASSERT_EQ(x.msrs.size(), y.msrs.size()) << i;
    for (size_t m = 0; m < x.msrs.size(); ++m) EXPECT_TRUE(SameBytes(x.msrs[m], y.msrs[m]));
    ASSERT_EQ(x.cpuid.size(), y.cpuid.size()) << i;
    for (size_t c = 0; c < x.cpuid.size(); ++c) EXPECT_TRUE(SameBytes(x.cpuid[c], y.cpuid[c]));
    EXPECT_EQ(x.tsc_khz, y.tsc_khz);
  }
  for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(SameBytes(a.irqchips[i], b.irqchips[i])) << i;
  EXPECT_TRUE(SameBytes(a.pit, b.pit));
  EXPECT_TRUE(SameBytes(a.clock, b.clock));
  ASSERT_EQ(a.devices.size(), b.devices.size());
  for (size_t i = 0; i < a.devices.size(); ++i) {
    EXPECT_EQ(a.devices[i].name, b.devices[i].name);
    EXPECT_EQ(a.devices[i].state, b.devices[i].state);
  }
}

// Rewrites the header's length and checksum after a payload edit, so a test reaches the
// structural checks behind the checksum.
void Reseal(std::vector<uint8_t>& file) {
  const uint64_t length = file.size() - kHeader;
  std::memcpy(file.data() + 16, &length, 8);
  const uint32_t crc = Crc32c(std::span<const uint8_t>(file).subspan(kHeader));
  std::memcpy(file.data() + 24, &crc, 4);
}

std::string DecodeError(std::span<const uint8_t> bytes) {
  auto r = DecodeMachineState(bytes);
  if (r) return "(accepted)";
  return r.error().message;
}

class TempDir {
 public:
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "vmm-snapshot-XXXXXX").string();
    path_ = ::mkdtemp(templ.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::vector<uint8_t> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void WriteAllTo(const std::string& path, std::span<const uint8_t> bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

TEST(SnapshotFile, EncodeDecodeRoundTripsEveryField) {
  const MachineState s = RichState();
  const std::vector<uint8_t> bytes = EncodeMachineState(s);
  ASSERT_GT(bytes.size(), kHeader + 2 * sizeof(kvm_xsave));
  EXPECT_EQ(std::memcmp(bytes.data(), "PHXSNAP\0", 8), 0);
  auto decoded = DecodeMachineState(bytes);
  ASSERT_TRUE(decoded) << decoded.error().message;
  ExpectSame(s, *decoded);
  // Deterministic: the same state encodes to the same bytes.
  EXPECT_EQ(EncodeMachineState(*decoded), bytes);
}

TEST(SnapshotFile, EveryFlippedPayloadByteIsAChecksumMismatch) {
  const std::vector<uint8_t> good = EncodeMachineState(RichState(1));
  for (size_t i = kHeader; i < good.size(); ++i) {
    std::vector<uint8_t> bad = good;
    bad[i] ^= 0x01;
    const std::string msg = DecodeError(bad);
    ASSERT_NE(msg.find("checksum mismatch"), std::string::npos) << "offset " << i << ": " << msg;
  }
}

TEST(SnapshotFile, EveryFlippedHeaderByteIsRefused) {
  const std::vector<uint8_t> good = EncodeMachineState(RichState(1));
  for (size_t i = 0; i < kHeader; ++i) {
    std::vector<uint8_t> bad = good;
    bad[i] ^= 0x40;
    EXPECT_EQ(DecodeMachineState(bad).has_value(), false) << "offset " << i;
  }
}

TEST(SnapshotFile, TruncationIsRefusedAtEveryKindOfOffset) {
  const std::vector<uint8_t> good = EncodeMachineState(RichState());
  for (size_t keep : {size_t{0}, size_t{7}, size_t{20}, kHeader - 1, kHeader, kHeader + 1,
                      kHeader + 500, good.size() / 2, good.size() - 1}) {
    const std::string msg = DecodeError(std::span<const uint8_t>(good).first(keep));
    EXPECT_NE(msg.find("truncated"), std::string::npos) << keep << ": " << msg;
  }
}

TEST(SnapshotFile, TrailingBytesAreRefused) {
  std::vector<uint8_t> bad = EncodeMachineState(RichState());
  bad.push_back(0);
  EXPECT_NE(DecodeError(bad).find("overlong"), std::string::npos) << DecodeError(bad);
  // Even when the header is resealed over them, the payload structure catches them.
  Reseal(bad);
  EXPECT_NE(DecodeError(bad).find("unexpected bytes"), std::string::npos) << DecodeError(bad);
}

TEST(SnapshotFile, OtherVersionIsRefused) {
  std::vector<uint8_t> bad = EncodeMachineState(RichState());
  const uint32_t v2 = 2;
  std::memcpy(bad.data() + 8, &v2, 4);
  const std::string msg = DecodeError(bad);
  EXPECT_NE(msg.find("version 2 is not supported"), std::string::npos) << msg;
  EXPECT_NE(msg.find("reads version 1"), std::string::npos) << msg;
}

TEST(SnapshotFile, WrongMagicAndUnknownFlagsAreRefused) {
  std::vector<uint8_t> bad = EncodeMachineState(RichState());
  bad[3] = 'X';
  EXPECT_NE(DecodeError(bad).find("bad magic"), std::string::npos);
  bad = EncodeMachineState(RichState());
  bad[12] = 1;
  EXPECT_NE(DecodeError(bad).find("unknown flags 0x1"), std::string::npos) << DecodeError(bad);
}

TEST(SnapshotFile, ImpossibleMachinesAreRefusedEvenWithAValidChecksum) {
  MachineState s = RichState();
  s.shape.vcpus = 0;
  s.vcpus.clear();
  EXPECT_NE(DecodeError(EncodeMachineState(s)).find("zero vCPUs"), std::string::npos);

  s = RichState();
  s.shape.memory_bytes = (2ull << 20) + 1;
  EXPECT_NE(DecodeError(EncodeMachineState(s)).find("not a positive multiple"), std::string::npos);
  s.shape.memory_bytes = 0;
  EXPECT_NE(DecodeError(EncodeMachineState(s)).find("not a positive multiple"), std::string::npos);
  s.shape.memory_bytes = kMaxMemoryBytes + kPageSize;
  EXPECT_NE(DecodeError(EncodeMachineState(s)).find("above the maximum"), std::string::npos);

  s = RichState(2);
  s.shape.vcpus = 3;
  EXPECT_NE(DecodeError(EncodeMachineState(s)).find("state holds 2"), std::string::npos);

  s = RichState();
  std::swap(s.irqchips[0], s.irqchips[2]);
  EXPECT_NE(DecodeError(EncodeMachineState(s)).find("chip_id"), std::string::npos);

  s = RichState();
  s.devices.push_back(s.devices[0]);
  EXPECT_NE(DecodeError(EncodeMachineState(s)).find("appears twice"), std::string::npos);
}

TEST(SnapshotFile, HugeCountsAreRefusedBeforeAllocating) {
  // A sealed payload whose vCPU count claims a million vCPUs.
  std::vector<uint8_t> bad = EncodeMachineState(RichState(1));
  const size_t count_offset = kHeader + 4 + 8 + 1 + 6;
  uint32_t count = 0;
  std::memcpy(&count, bad.data() + count_offset, 4);
  ASSERT_EQ(count, 1u);
  count = 1'000'000;
  std::memcpy(bad.data() + count_offset, &count, 4);
  Reseal(bad);
  EXPECT_NE(DecodeError(bad).find("above the limit"), std::string::npos) << DecodeError(bad);
}

class SnapshotDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = GuestMemory::CreateAnonymous(2ull << 20);
    ASSERT_TRUE(m) << m.error().message;
    memory_ = std::make_unique<GuestMemory>(std::move(*m));
    const uint64_t marker = 0xfeedfacecafebeefull;
    ASSERT_TRUE(memory_->WriteObject(0x1000, marker));
    ASSERT_TRUE(memory_->WriteObject((2ull << 20) - 8, marker));
    dir_ = tmp_.path() + "/golden";
  }

  TempDir tmp_;
  std::string dir_;
  std::unique_ptr<GuestMemory> memory_;
};

TEST_F(SnapshotDirTest, WriteThenReadRoundTrips) {
  const MachineState s = RichState();
  auto w = WriteSnapshot(dir_, s, *memory_);
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/state.phxsnap.tmp"));
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/state.phxsnap").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto r = ReadSnapshotState(dir_);
  ASSERT_TRUE(r) << r.error().message;
  ExpectSame(s, *r);
  const std::vector<uint8_t> raw = ReadAll(dir_ + "/memory.raw");
  ASSERT_EQ(raw.size(), 2ull << 20);
  uint64_t got = 0;
  std::memcpy(&got, raw.data() + 0x1000, 8);
  EXPECT_EQ(got, 0xfeedfacecafebeefull);
  std::memcpy(&got, raw.data() + raw.size() - 8, 8);
  EXPECT_EQ(got, 0xfeedfacecafebeefull);

  // Overwriting an existing snapshot directory works and the new state wins.
  MachineState s2 = RichState(1);
  ASSERT_TRUE(WriteSnapshot(dir_, s2, *memory_));
  auto r2 = ReadSnapshotState(dir_);
  ASSERT_TRUE(r2) << r2.error().message;
  ExpectSame(s2, *r2);
}

TEST_F(SnapshotDirTest, WriteRefusesStateThatDoesNotMatchMemory) {
  MachineState s = RichState(1, 4ull << 20);
  auto w = WriteSnapshot(dir_, s, *memory_);
  ASSERT_FALSE(w);
  EXPECT_NE(w.error().message.find("guest memory is 2097152"), std::string::npos)
      << w.error().message;
  s = RichState(1);
  s.shape.vcpus = 0;
  s.vcpus.clear();
  EXPECT_FALSE(WriteSnapshot(dir_, s, *memory_));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/state.phxsnap"));
}

TEST_F(SnapshotDirTest, MissingOrResizedMemoryFileIsRefused) {
  ASSERT_TRUE(WriteSnapshot(dir_, RichState(), *memory_));
  const std::string mem = dir_ + "/memory.raw";
  ASSERT_EQ(::truncate(mem.c_str(), (2ull << 20) - 4096), 0);
  auto r = ReadSnapshotState(dir_);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("is 2093056 bytes, the state records 2097152"),
            std::string::npos)
      << r.error().message;
  ASSERT_EQ(::truncate(mem.c_str(), (2ull << 20) + 4096), 0);
  EXPECT_FALSE(ReadSnapshotState(dir_));
  ASSERT_EQ(::unlink(mem.c_str()), 0);
  r = ReadSnapshotState(dir_);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("memory file"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("No such file"), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().message.rfind("snapshot " + dir_, 0), 0u) << r.error().message;
}

TEST_F(SnapshotDirTest, CorruptOrMissingStateFileIsRefused) {
  ASSERT_TRUE(WriteSnapshot(dir_, RichState(), *memory_));
  const std::string state = dir_ + "/state.phxsnap";
  std::vector<uint8_t> bytes = ReadAll(state);
  bytes[bytes.size() / 2] ^= 0x80;
  WriteAllTo(state, bytes);
  auto r = ReadSnapshotState(dir_);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("checksum mismatch"), std::string::npos) << r.error().message;
  bytes.resize(100);
  WriteAllTo(state, bytes);
  r = ReadSnapshotState(dir_);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("truncated"), std::string::npos) << r.error().message;
  ASSERT_EQ(::unlink(state.c_str()), 0);
  r = ReadSnapshotState(dir_);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("No such file"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace phoenix::vmm
