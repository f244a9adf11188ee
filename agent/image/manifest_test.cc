#include "agent/image/manifest.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include "agent/testing/temp_dir.h"

namespace phoenix::agent {
namespace {

using ::phoenix::agent::testing::TempDir;

using ::testing::HasSubstr;
namespace fs = std::filesystem;

constexpr std::string_view kDemo =
    "PHOENIX_IMAGE_FORMAT=1\n"
    "NAME=demo\n"
    "KERNEL=vmlinux\n"
    "INITRD=initrd.img\n"
    "DISK=disk.qcow2\n"
    "ROOTFS=rootfs\n"
    "CMDLINE=console=ttyS0 panic=-1 quiet\n"
    "READY_MARKER=PHOENIX-READY\n"
    "COMMAND=/bin/demo-web\n"
    "RUNTIMES=vm,microvm,container\n";

TEST(ImageManifestTest, ParsesTheDemoManifest) {
  auto m = ParseImageManifest(kDemo);
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  ImageManifest want;
  want.name = "demo";
  want.kernel = "vmlinux";
  want.initrd = "initrd.img";
  want.disk = "disk.qcow2";
  want.rootfs = "rootfs";
  want.cmdline = "console=ttyS0 panic=-1 quiet";
  want.ready_marker = "PHOENIX-READY";
  want.command = {"/bin/demo-web"};
  want.runtimes = {RuntimeKind::kVm, RuntimeKind::kMicroVm, RuntimeKind::kContainer};
  EXPECT_EQ(*m, want);
}

struct GoodCase {
  std::string name;
  std::string text;
  std::function<void(const ImageManifest&)> check;
};

TEST(ImageManifestTest, AcceptsValidVariants) {
  const std::string base = "PHOENIX_IMAGE_FORMAT=1\nNAME=x\nKERNEL=k\nINITRD=i\nRUNTIMES=vm\n";
  const GoodCase cases[] = {
      {"minimal: no disk, rootfs, cmdline, command", base,
       [](const ImageManifest& m) {
         EXPECT_TRUE(m.disk.empty());
         EXPECT_TRUE(m.rootfs.empty());
         EXPECT_TRUE(m.cmdline.empty());
         EXPECT_TRUE(m.command.empty());
         EXPECT_EQ(m.runtimes, std::vector<RuntimeKind>{RuntimeKind::kVm});
       }},
      {"comments, blank lines and CRLF",
       "# built by demo\r\n\r\n   \n  # indented comment\n" + base + "CMDLINE=a b\r\n",
       [](const ImageManifest& m) { EXPECT_EQ(m.cmdline, "a b"); }},
      {"value keeps '=' '#' and surrounding spaces", base + "CMDLINE= a=b #c \n",
       [](const ImageManifest& m) { EXPECT_EQ(m.cmdline, " a=b #c "); }},
      {"command split on spaces and tabs", base + "COMMAND=  /bin/sh\t-c  echo \n",
       [](const ImageManifest& m) {
         EXPECT_EQ(m.command, (std::vector<std::string>{"/bin/sh", "-c", "echo"}));
       }},
      {"runtimes keep their order and tolerate spaces",
       "PHOENIX_IMAGE_FORMAT=1\nNAME=x\nKERNEL=k\nINITRD=i\nROOTFS=r\n"
       "RUNTIMES= container , vm\n",
       [](const ImageManifest& m) {
         EXPECT_EQ(m.runtimes,
                   (std::vector<RuntimeKind>{RuntimeKind::kContainer, RuntimeKind::kVm}));
       }},
      {"nested artifact paths",
       "PHOENIX_IMAGE_FORMAT=1\nNAME=x\nKERNEL=boot/vmlinuz\n"
       "INITRD=./boot/initrd\nRUNTIMES=microvm\n",
       [](const ImageManifest& m) {
         EXPECT_EQ(m.kernel, "boot/vmlinuz");
         EXPECT_EQ(m.initrd, "./boot/initrd");
       }},
      {"no trailing newline", "PHOENIX_IMAGE_FORMAT=1\nNAME=x\nKERNEL=k\nINITRD=i\nRUNTIMES=vm",
       [](const ImageManifest& m) { EXPECT_EQ(m.name, "x"); }},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto m = ParseImageManifest(c.text);
    ASSERT_TRUE(m.has_value()) << m.error().ToString();
    c.check(*m);
  }
}

struct BadCase {
  std::string name;
  std::string text;
  std::string error;  // a substring the error must contain
};

TEST(ImageManifestTest, RejectsInvalidManifests) {
  const std::string body = "NAME=x\nKERNEL=k\nINITRD=i\nRUNTIMES=vm\n";
  const std::string base = "PHOENIX_IMAGE_FORMAT=1\n" + body;
  const BadCase cases[] = {
      {"empty", "", "PHOENIX_IMAGE_FORMAT is missing"},
      {"no format", body, "PHOENIX_IMAGE_FORMAT is missing"},
      {"newer format", "PHOENIX_IMAGE_FORMAT=2\n" + body + "NEWKEY=1\n",
       "unsupported PHOENIX_IMAGE_FORMAT=2"},
      {"format not a number", "PHOENIX_IMAGE_FORMAT=one\n" + body, "not a number"},
      {"unknown key", base + "KERNAL=typo\n", "unknown key KERNAL"},
      {"duplicate key", base + "NAME=y\n", "line 6: NAME appears twice"},
      {"no equals sign", base + "just text\n", "line 6: expected KEY=value"},
      {"lowercase key", base + "cmdline=x\n", "line 6: expected KEY=value"},
      {"space before =", base + "CMDLINE =x\n", "expected KEY=value"},
      {"missing name", "PHOENIX_IMAGE_FORMAT=1\nKERNEL=k\nINITRD=i\nRUNTIMES=vm\n",
       "NAME is missing"},
      {"missing kernel", "PHOENIX_IMAGE_FORMAT=1\nNAME=x\nINITRD=i\nRUNTIMES=vm\n",
       "KERNEL is missing"},
      {"missing initrd", "PHOENIX_IMAGE_FORMAT=1\nNAME=x\nKERNEL=k\nRUNTIMES=vm\n",
       "INITRD is missing"},
      {"missing runtimes", "PHOENIX_IMAGE_FORMAT=1\nNAME=x\nKERNEL=k\nINITRD=i\n",
       "RUNTIMES is missing"},
      {"bad name", "PHOENIX_IMAGE_FORMAT=1\nNAME=Demo\nKERNEL=k\nINITRD=i\nRUNTIMES=vm\n",
       "NAME=Demo"},
      {"empty kernel", "PHOENIX_IMAGE_FORMAT=1\nNAME=x\nKERNEL=\nINITRD=i\nRUNTIMES=vm\n",
       "KERNEL is empty"},
      {"absolute kernel",
       "PHOENIX_IMAGE_FORMAT=1\nNAME=x\nKERNEL=/boot/vmlinuz\nINITRD=i\nRUNTIMES=vm\n",
       "must be relative"},
      {"escaping initrd", "PHOENIX_IMAGE_FORMAT=1\nNAME=x\nKERNEL=k\nINITRD=../i\nRUNTIMES=vm\n",
       "must not leave"},
      {"rootfs is the dir itself", base + "ROOTFS=.\n", "names the directory itself"},
      {"empty disk", base + "DISK=\n", "DISK is empty"},
      {"unknown runtime", "PHOENIX_IMAGE_FORMAT=1\nNAME=x\nKERNEL=k\nINITRD=i\nRUNTIMES=vm,lxc\n",
       "unknown runtime \"lxc\""},
      {"empty runtime entry",
       "PHOENIX_IMAGE_FORMAT=1\nNAME=x\nKERNEL=k\nINITRD=i\nRUNTIMES=vm,,microvm\n", "empty entry"},
      {"empty runtimes", "PHOENIX_IMAGE_FORMAT=1\nNAME=x\nKERNEL=k\nINITRD=i\nRUNTIMES=\n",
       "empty entry"},
      {"duplicate runtime", "PHOENIX_IMAGE_FORMAT=1\nNAME=x\nKERNEL=k\nINITRD=i\nRUNTIMES=vm,vm\n",
       "appears twice"},
      {"container without rootfs",
       "PHOENIX_IMAGE_FORMAT=1\nNAME=x\nKERNEL=k\nINITRD=i\nRUNTIMES=container\n",
       "ROOTFS is missing"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto m = ParseImageManifest(c.text);
    ASSERT_FALSE(m.has_value());
    EXPECT_EQ(m.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(m.error().message, HasSubstr(c.error));
  }
}

TEST(ImageManifestTest, ValidatesNamesAndTags) {
  EXPECT_TRUE(IsValidImageName("demo"));
  EXPECT_TRUE(IsValidImageName("0demo.v2_x-y"));
  EXPECT_FALSE(IsValidImageName(""));
  EXPECT_FALSE(IsValidImageName("Demo"));
  EXPECT_FALSE(IsValidImageName("-demo"));
  EXPECT_FALSE(IsValidImageName(".."));
  EXPECT_FALSE(IsValidImageName("a/b"));
  EXPECT_FALSE(IsValidImageName("a:b"));
  EXPECT_FALSE(IsValidImageName(std::string(129, 'a')));
  EXPECT_TRUE(IsValidImageTag("latest"));
  EXPECT_TRUE(IsValidImageTag("V1.2-rc_3"));
  EXPECT_FALSE(IsValidImageTag(""));
  EXPECT_FALSE(IsValidImageTag(".hidden"));
  EXPECT_FALSE(IsValidImageTag("a/b"));
}

void WriteFile(const fs::path& p, std::string_view content) {
  std::ofstream out(p, std::ios::binary);
  out << content;
  PHX_CHECK(out.good());
}

TEST(ImageManifestTest, LoadChecksThatArtifactsExist) {
  TempDir dir;
  WriteFile(dir.path() / "manifest.env", kDemo);
  WriteFile(dir.path() / "initrd.img", "i");
  WriteFile(dir.path() / "disk.qcow2", "d");
  fs::create_directory(dir.path() / "rootfs");

  auto missing = LoadImageManifest(dir.path());
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(missing.error().message, HasSubstr("KERNEL"));
  EXPECT_THAT(missing.error().message, HasSubstr((dir.path() / "vmlinux").string()));

  fs::create_directory(dir.path() / "vmlinux");
  auto not_file = LoadImageManifest(dir.path());
  ASSERT_FALSE(not_file.has_value());
  EXPECT_THAT(not_file.error().message, HasSubstr("not a regular file"));

  fs::remove(dir.path() / "vmlinux");
  WriteFile(dir.path() / "vmlinux", "k");
  auto ok = LoadImageManifest(dir.path());
  ASSERT_TRUE(ok.has_value()) << ok.error().ToString();
  EXPECT_EQ(ok->name, "demo");

  fs::remove(dir.path() / "rootfs");
  WriteFile(dir.path() / "rootfs", "not a dir");
  auto rootfs_file = LoadImageManifest(dir.path());
  ASSERT_FALSE(rootfs_file.has_value());
  EXPECT_THAT(rootfs_file.error().message, HasSubstr("ROOTFS"));
  EXPECT_THAT(rootfs_file.error().message, HasSubstr("not a directory"));
}

TEST(ImageManifestTest, LoadReportsAMissingOrBadManifest) {
  TempDir dir;
  auto none = LoadImageManifest(dir.path());
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(none.error().message, HasSubstr("manifest.env"));

  WriteFile(dir.path() / "manifest.env", "PHOENIX_IMAGE_FORMAT=1\nBOGUS=1\n");
  auto bad = LoadImageManifest(dir.path());
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(bad.error().message, HasSubstr("unknown key BOGUS"));
  EXPECT_THAT(bad.error().message, HasSubstr(dir.path().string()));
}

}  // namespace
}  // namespace phoenix::agent
