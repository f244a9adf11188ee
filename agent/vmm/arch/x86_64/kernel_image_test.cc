#include "agent/vmm/arch/x86_64/kernel_image.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "agent/vmm/arch/x86_64/synthetic_kernel_for_test.h"

namespace phoenix::vmm::x86 {
namespace {

using testing::BzImageSpec;
using testing::ElfSpec;
using testing::MakeBzImage;
using testing::MakeElf;
using testing::WriteFile;

class KernelImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto memory = GuestMemory::CreateAnonymous(4 << 20);
    ASSERT_TRUE(memory.has_value()) << memory.error().message;
    memory_.emplace(std::move(*memory));
    // Garbage everywhere, so the test sees that bss is zeroed by the loader.
    std::memset(memory_->host_base(), 0xcc, memory_->size());
  }
  void TearDown() override {
    for (const std::string& path : paths_) std::remove(path.c_str());
  }
  std::string File(const std::string& name, const std::vector<uint8_t>& bytes) {
    paths_.push_back(WriteFile(name, bytes));
    return paths_.back();
  }
  std::string Refusal(const std::string& path) {
    auto kernel = LoadKernel(*memory_, path);
    EXPECT_FALSE(kernel.has_value());
    return kernel ? "" : kernel.error().message;
  }

  std::optional<GuestMemory> memory_;
  std::vector<std::string> paths_;
};

TEST_F(KernelImageTest, LoadsElfSegmentAtPhysicalAddressAndZeroesBss) {
  ElfSpec spec;
  spec.code = {1, 2, 3, 4, 5};
  auto kernel = LoadKernel(*memory_, File("elf", MakeElf(spec)));
  ASSERT_TRUE(kernel.has_value()) << kernel.error().message;
  EXPECT_EQ(kernel->format, KernelFormat::kElf);
  EXPECT_EQ(kernel->entry, 0x200000u);
  EXPECT_EQ(kernel->load_start, 0x200000u);
  EXPECT_EQ(kernel->load_end, 0x200000u + 5 + spec.bss);
  EXPECT_FALSE(kernel->setup_header.has_value());
  const uint8_t* p = memory_->host_base() + 0x200000;
  EXPECT_EQ(std::vector<uint8_t>(p, p + 5), spec.code);
  for (uint64_t i = 5; i < 5 + spec.bss; ++i) ASSERT_EQ(p[i], 0) << i;
  EXPECT_EQ(p[5 + spec.bss], 0xcc);  // nothing beyond memsz touched
}

TEST_F(KernelImageTest, RefusesWhatItCannotBoot) {
  EXPECT_NE(Refusal(File("text", std::vector<uint8_t>(4096, 'x'))).find("neither an ELF"),
            std::string::npos);
  EXPECT_NE(Refusal(File("empty", {})).find("neither an ELF"), std::string::npos);
  EXPECT_NE(Refusal("/nonexistent/vmlinux").find("No such file"), std::string::npos);

  ElfSpec elf32;
  elf32.elf_class = ELFCLASS32;
  EXPECT_NE(Refusal(File("elf32", MakeElf(elf32))).find("32-bit ELF"), std::string::npos);
  ElfSpec arm;
  arm.machine = EM_AARCH64;
  EXPECT_NE(Refusal(File("arm", MakeElf(arm))).find("not x86-64"), std::string::npos);
  ElfSpec huge;
  huge.bss = 8 << 20;
  EXPECT_NE(Refusal(File("huge", MakeElf(huge))).find("the guest has 4 MiB"), std::string::npos);
  ElfSpec low;
  low.paddr = low.entry = 0x8000;
  EXPECT_NE(Refusal(File("low", MakeElf(low))).find("below 1 MiB"), std::string::npos);
  ElfSpec virtual_entry;
  virtual_entry.entry = 0xffffffff81000000ull;
  EXPECT_NE(Refusal(File("ventry", MakeElf(virtual_entry))).find("entry"), std::string::npos);
  std::vector<uint8_t> truncated = MakeElf(ElfSpec{});
  truncated.resize(0x1001);
  EXPECT_NE(Refusal(File("trunc", truncated)).find("beyond the end"), std::string::npos);

  BzImageSpec old_protocol;
  old_protocol.version = 0x020b;
  EXPECT_NE(Refusal(File("bz-old", MakeBzImage(old_protocol))).find("2.11 is older than 2.12"),
            std::string::npos);
  BzImageSpec no64;
  no64.xloadflags = 0;
  EXPECT_NE(Refusal(File("bz-32", MakeBzImage(no64))).find("XLF_KERNEL_64"), std::string::npos);
  BzImageSpec zimage;
  zimage.loadflags = 0;
  EXPECT_NE(Refusal(File("bz-low", MakeBzImage(zimage))).find("LOADED_HIGH"), std::string::npos);
  BzImageSpec too_big;
  too_big.init_size = 8 << 20;
  EXPECT_NE(Refusal(File("bz-big", MakeBzImage(too_big))).find("the guest has 4 MiB"),
            std::string::npos);
  BzImageSpec only_setup;
  only_setup.payload.clear();
  EXPECT_NE(Refusal(File("bz-trunc", MakeBzImage(only_setup))).find("truncated"),
            std::string::npos);
}

TEST_F(KernelImageTest, LoadsBzImageAt1MiBWith64BitEntry) {
  BzImageSpec spec;
  spec.setup_sects = 0;  // means 4
  spec.payload = {0xaa, 0xbb, 0xcc, 0xdd};
  auto kernel = LoadKernel(*memory_, File("bz", MakeBzImage(spec)));
  ASSERT_TRUE(kernel.has_value()) << kernel.error().message;
  EXPECT_EQ(kernel->format, KernelFormat::kBzImage);
  EXPECT_EQ(kernel->entry, 0x100200u);
  EXPECT_EQ(kernel->load_start, 0x100000u);
  EXPECT_EQ(kernel->load_end, 0x100000u + spec.init_size);
  ASSERT_TRUE(kernel->setup_header.has_value());
  EXPECT_EQ(kernel->setup_header->version, 0x020f);
  EXPECT_EQ(kernel->setup_header->init_size, spec.init_size);
  EXPECT_EQ(kernel->setup_header->cmdline_size, spec.cmdline_size);
  const uint8_t* p = memory_->host_base() + 0x100000;
  EXPECT_EQ(std::vector<uint8_t>(p, p + 4), spec.payload);
}

class DemoKernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::DemoImageDir();
    if (dir_.empty())
      GTEST_SKIP() << "demo image not built: run images/demo/build.sh build/images/demo "
                      "or set PHOENIX_DEMO_IMAGE_DIR";
    auto memory = GuestMemory::CreateAnonymous(128 << 20);
    ASSERT_TRUE(memory.has_value()) << memory.error().message;
    memory_.emplace(std::move(*memory));
  }
  std::string dir_;
  std::optional<GuestMemory> memory_;
};

TEST_F(DemoKernelTest, VmlinuxEntryIsPhysicalStartup64) {
  auto kernel = LoadKernel(*memory_, dir_ + "/vmlinux");
  ASSERT_TRUE(kernel.has_value()) << kernel.error().message;
  EXPECT_EQ(kernel->format, KernelFormat::kElf);
  // x86-64 vmlinux: ENTRY(phys_startup_64) at the 16 MiB default physical start.
  EXPECT_EQ(kernel->entry, 0x1000000u);
  EXPECT_EQ(kernel->load_start, 0x1000000u);
  EXPECT_GT(kernel->load_end, kernel->load_start);
  EXPECT_LT(kernel->load_end, uint64_t{128} << 20);
  // Every PT_LOAD segment's file bytes are at its physical address.
  std::ifstream file(dir_ + "/vmlinux", std::ios::binary);
  Elf64_Ehdr eh;
  file.read(reinterpret_cast<char*>(&eh), sizeof eh);
  int segments = 0;
  for (int i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    file.seekg(static_cast<std::streamoff>(eh.e_phoff + i * sizeof ph));
    file.read(reinterpret_cast<char*>(&ph), sizeof ph);
    if (ph.p_type != PT_LOAD) continue;
    std::vector<uint8_t> head(std::min<uint64_t>(ph.p_filesz, 4096));
    file.seekg(static_cast<std::streamoff>(ph.p_offset));
    file.read(reinterpret_cast<char*>(head.data()), static_cast<std::streamsize>(head.size()));
    const uint8_t* p = memory_->host_base() + ph.p_paddr;
    EXPECT_EQ(std::vector<uint8_t>(p, p + head.size()), head) << "segment at " << ph.p_paddr;
    ++segments;
  }
  EXPECT_GE(segments, 2);
}

TEST_F(DemoKernelTest, BzImageIsProtocol212OrNewerWith64BitEntry) {
  auto kernel = LoadKernel(*memory_, dir_ + "/vmlinuz");
  ASSERT_TRUE(kernel.has_value()) << kernel.error().message;
  EXPECT_EQ(kernel->format, KernelFormat::kBzImage);
  EXPECT_EQ(kernel->entry, 0x100200u);
  ASSERT_TRUE(kernel->setup_header.has_value());
  EXPECT_GE(kernel->setup_header->version, 0x020c);
  EXPECT_TRUE(kernel->setup_header->xloadflags & kXlfKernel64);
  EXPECT_EQ(kernel->setup_header->relocatable_kernel, 1);
  EXPECT_GT(kernel->setup_header->init_size, 0u);
  EXPECT_EQ(kernel->load_end, 0x100000u + kernel->setup_header->init_size);
}

TEST_F(DemoKernelTest, RefusedWhenRamIsTooSmall) {
  auto small = GuestMemory::CreateAnonymous(16 << 20);
  ASSERT_TRUE(small.has_value());
  auto kernel = LoadKernel(*small, dir_ + "/vmlinux");
  ASSERT_FALSE(kernel.has_value());
  EXPECT_NE(kernel.error().message.find("the guest has 16 MiB"), std::string::npos)
      << kernel.error().message;
}

}  // namespace
}  // namespace phoenix::vmm::x86
