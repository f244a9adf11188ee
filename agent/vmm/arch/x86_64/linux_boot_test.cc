#include "agent/vmm/arch/x86_64/linux_boot.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "agent/vmm/arch/x86_64/acpi.h"
#include "agent/vmm/arch/x86_64/boot_layout.h"
#include "agent/vmm/arch/x86_64/kernel_image.h"
#include "agent/vmm/arch/x86_64/synthetic_kernel_for_test.h"

namespace phoenix::vmm::x86 {
namespace {

using testing::MakeBzImage;
using testing::MakeElf;
using testing::WriteFile;

TEST(E820Test, RamReservedBiosHoleRam) {
  const std::vector<E820Entry> map = E820Map(128 << 20);
  ASSERT_EQ(map.size(), 3u);
  EXPECT_EQ(map[0].addr, 0u);
  EXPECT_EQ(map[0].size, 0x9fc00u);
  EXPECT_EQ(map[0].type, kE820Ram);
  EXPECT_EQ(map[1].addr, 0x9fc00u);
  EXPECT_EQ(map[1].addr + map[1].size, 0x100000u);
  EXPECT_EQ(map[1].type, kE820Reserved);
  EXPECT_EQ(map[2].addr, 0x100000u);
  EXPECT_EQ(map[2].addr + map[2].size, 128u << 20);
  EXPECT_EQ(map[2].type, kE820Ram);
  // Exactly 1 MiB of RAM: nothing above the hole.
  EXPECT_EQ(E820Map(1 << 20).size(), 2u);
}

TEST(PlaceInitrdTest, HighestPageBelowRamEndAndAddrMax) {
  EXPECT_EQ(PlaceInitrd(128 << 20, 32 << 20, 0x7fffffff, 5000), (128u << 20) - 8192);
  EXPECT_EQ(PlaceInitrd(128 << 20, 32 << 20, (64 << 20) - 1, 4096), (64u << 20) - 4096);
  EXPECT_FALSE(PlaceInitrd(128 << 20, 100 << 20, 0x7fffffff, 30 << 20).has_value());
  EXPECT_FALSE(PlaceInitrd(16 << 20, 0, 0x7fffffff, 32 << 20).has_value());
}

class LinuxBootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto memory = GuestMemory::CreateAnonymous(64 << 20);
    ASSERT_TRUE(memory.has_value()) << memory.error().message;
    memory_.emplace(std::move(*memory));
    kernel_ = Keep(WriteFile("elf", MakeElf({})));
    initrd_ = Keep(WriteFile("initrd", std::vector<uint8_t>(10000, 0x5a)));
  }
  void TearDown() override {
    for (const std::string& path : paths_) std::remove(path.c_str());
  }
  std::string Keep(std::string path) {
    paths_.push_back(path);
    return path;
  }
  BootParams Params() {
    auto params = memory_->ReadObject<BootParams>(kBootParamsAddress);
    EXPECT_TRUE(params.has_value());
    return params.value_or(BootParams{});
  }

  std::optional<GuestMemory> memory_;
  std::vector<std::string> paths_;
  std::string kernel_, initrd_;
};

TEST_F(LinuxBootTest, ElfWithInitrdAndCmdline) {
  LinuxBootRequest request{.kernel_path = kernel_,
                           .initrd_path = initrd_,
                           .cmdline = "console=ttyS0 phoenix.ip=172.16.0.2/30",
                           .vcpus = 2,
                           .virtio = {{0xd0000000, 0x1000, 5}}};
  auto entry = LoadLinux(*memory_, request);
  ASSERT_TRUE(entry.has_value()) << entry.error().message;
  EXPECT_EQ(entry->rip, 0x200000u);
  EXPECT_EQ(entry->boot_params, kBootParamsAddress);
  EXPECT_EQ(entry->pml4, kPml4Address);
  EXPECT_EQ(entry->gdt_limit, kGdtEntries * 8 - 1);

  const BootParams params = Params();
  EXPECT_EQ(params.hdr.header, kSetupHeaderMagic);
  EXPECT_EQ(params.hdr.boot_flag, kBootFlag);
  EXPECT_EQ(params.hdr.type_of_loader, 0xff);
  EXPECT_EQ(params.hdr.cmd_line_ptr, kCmdlineAddress);
  const char* cmdline = reinterpret_cast<const char*>(memory_->host_base() + kCmdlineAddress);
  EXPECT_STREQ(cmdline, request.cmdline.c_str());
  EXPECT_EQ(params.hdr.ramdisk_size, 10000u);
  EXPECT_EQ(params.hdr.ramdisk_image, (64u << 20) - 12288);
  EXPECT_EQ(memory_->host_base()[params.hdr.ramdisk_image + 9999], 0x5a);
  EXPECT_EQ(params.e820_entries, 3);
  EXPECT_EQ(params.e820_table[2].addr + params.e820_table[2].size, 64u << 20);

  // The RSDP is where both the zero page and the kernel's BIOS-area scan find it.
  ASSERT_GE(params.acpi_rsdp_addr, 0xe0000u);
  ASSERT_LT(params.acpi_rsdp_addr, 0x100000u);
  EXPECT_EQ(
      std::string(reinterpret_cast<const char*>(memory_->host_base() + params.acpi_rsdp_addr), 8),
      "RSD PTR ");

  // Page tables: PML4[0] -> PDPT, PDPT[0] -> PD, PD maps 2 MiB pages identically up to 1 GiB.
  auto pml4 = memory_->ReadObject<uint64_t>(kPml4Address);
  auto pdpt = memory_->ReadObject<uint64_t>(kPdptAddress);
  auto pd511 = memory_->ReadObject<uint64_t>(kPdAddress + 511 * 8);
  EXPECT_EQ(*pml4, kPdptAddress | 3);
  EXPECT_EQ(*pdpt, kPdAddress | 3);
  EXPECT_EQ(*pd511, (511ull << 21) | 0x83);
  auto code = memory_->ReadObject<uint64_t>(kGdtAddress + kCodeSelector);
  auto data = memory_->ReadObject<uint64_t>(kGdtAddress + kDataSelector);
  EXPECT_EQ(*code, 0x00af9b000000ffffu);
  EXPECT_EQ(*data, 0x00cf93000000ffffu);
}

TEST_F(LinuxBootTest, BzImageKeepsItsSetupHeader) {
  testing::BzImageSpec spec;
  spec.initrd_addr_max = (32 << 20) - 1;
  const std::string bz = Keep(WriteFile("bz", MakeBzImage(spec)));
  auto entry = LoadLinux(*memory_, {.kernel_path = bz, .initrd_path = initrd_, .cmdline = "x"});
  ASSERT_TRUE(entry.has_value()) << entry.error().message;
  EXPECT_EQ(entry->rip, 0x100200u);
  const BootParams params = Params();
  EXPECT_EQ(params.hdr.version, 0x020f);
  EXPECT_EQ(params.hdr.init_size, spec.init_size);
  EXPECT_EQ(params.hdr.type_of_loader, 0xff);
  EXPECT_EQ(params.hdr.code32_start, 0x100000u);
  EXPECT_EQ(params.hdr.ramdisk_image, (32u << 20) - 12288);  // below initrd_addr_max
}

TEST_F(LinuxBootTest, Refusals) {
  const std::string missing_initrd = "/nonexistent/initrd.img";
  auto r = LoadLinux(*memory_, {.kernel_path = kernel_, .initrd_path = missing_initrd});
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("initrd /nonexistent/initrd.img"), std::string::npos);

  const std::string big = Keep(WriteFile("big-initrd", std::vector<uint8_t>(70 << 20, 1)));
  r = LoadLinux(*memory_, {.kernel_path = kernel_, .initrd_path = big});
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("does not fit"), std::string::npos) << r.error().message;

  r = LoadLinux(*memory_, {.kernel_path = kernel_, .cmdline = std::string(3000, 'a')});
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("exceeds the kernel's limit of 2048"), std::string::npos);

  r = LoadLinux(*memory_, {.kernel_path = kernel_, .vcpus = 0});
  EXPECT_FALSE(r.has_value());
}

TEST(SetLongModeEntryTest, FlatLongModeState) {
  const LinuxEntry entry{.rip = 0x1000000,
                         .boot_params = 0x7000,
                         .stack = 0x8ff00,
                         .pml4 = 0x9000,
                         .gdt = 0x500,
                         .gdt_limit = 39};
  kvm_regs regs{};
  regs.rax = 42;
  kvm_sregs sregs{};
  SetLongModeEntry(entry, regs, sregs);
  EXPECT_EQ(regs.rip, 0x1000000u);
  EXPECT_EQ(regs.rsi, 0x7000u);
  EXPECT_EQ(regs.rsp, 0x8ff00u);
  EXPECT_EQ(regs.rflags, 2u);
  EXPECT_EQ(regs.rax, 0u);
  EXPECT_EQ(sregs.cs.selector, 0x10);
  EXPECT_EQ(sregs.cs.l, 1);
  EXPECT_EQ(sregs.cs.db, 0);
  for (const kvm_segment* s : {&sregs.ds, &sregs.es, &sregs.fs, &sregs.gs, &sregs.ss}) {
    EXPECT_EQ(s->selector, 0x18);
    EXPECT_EQ(s->present, 1);
    EXPECT_EQ(s->type, 3);
  }
  EXPECT_EQ(sregs.tr.type, 11);
  EXPECT_EQ(sregs.gdt.base, 0x500u);
  EXPECT_EQ(sregs.gdt.limit, 39);
  EXPECT_EQ(sregs.cr0, 0x80000011u);
  EXPECT_EQ(sregs.cr3, 0x9000u);
  EXPECT_EQ(sregs.cr4, 0x20u);
  EXPECT_EQ(sregs.efer, 0x500u);
}

class DemoBootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::DemoImageDir();
    if (dir_.empty()) GTEST_SKIP() << "demo image not built: run images/demo/build.sh";
    auto memory = GuestMemory::CreateAnonymous(128 << 20);
    ASSERT_TRUE(memory.has_value()) << memory.error().message;
    memory_.emplace(std::move(*memory));
  }
  std::string dir_;
  std::optional<GuestMemory> memory_;
};

TEST_F(DemoBootTest, VmlinuxAndBzImageWithInitrd) {
  for (const char* kernel : {"vmlinux", "vmlinuz"}) {
    auto entry = LoadLinux(*memory_, {.kernel_path = dir_ + "/" + kernel,
                                      .initrd_path = dir_ + "/initrd.img",
                                      .cmdline = "console=ttyS0",
                                      .virtio = {{0xd0000000, 0x1000, 5}}});
    ASSERT_TRUE(entry.has_value()) << kernel << ": " << entry.error().message;
    auto params = memory_->ReadObject<BootParams>(kBootParamsAddress);
    ASSERT_TRUE(params.has_value());
    EXPECT_GT(params->hdr.ramdisk_image, 16u << 20) << kernel;
    EXPECT_EQ((params->hdr.ramdisk_image + uint64_t{params->hdr.ramdisk_size} + 4095) & ~4095ull,
              128ull << 20);
  }
}

TEST_F(DemoBootTest, InitrdThatDoesNotFitBesideTheKernel) {
  auto kernel = LoadKernel(*memory_, dir_ + "/vmlinux");
  ASSERT_TRUE(kernel.has_value()) << kernel.error().message;
  // RAM that holds the kernel and half the initrd above it.
  const uint64_t initrd_size = std::filesystem::file_size(dir_ + "/initrd.img");
  auto small = GuestMemory::CreateAnonymous((kernel->load_end + initrd_size / 2 + 4095) & ~4095ull);
  ASSERT_TRUE(small.has_value());
  auto entry =
      LoadLinux(*small, {.kernel_path = dir_ + "/vmlinux", .initrd_path = dir_ + "/initrd.img"});
  ASSERT_FALSE(entry.has_value());
  EXPECT_NE(entry.error().message.find("does not fit"), std::string::npos) << entry.error().message;
}

}  // namespace
}  // namespace phoenix::vmm::x86
