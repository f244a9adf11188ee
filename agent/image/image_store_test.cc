#include "agent/image/image_store.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include "agent/testing/temp_dir.h"

namespace phoenix::agent {
namespace {

using ::phoenix::agent::testing::TempDir;

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;
namespace fs = std::filesystem;

void WriteFile(const fs::path& p, std::string_view content, mode_t mode = 0644) {
  {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << content;
    PHX_CHECK(out.good());
  }
  PHX_CHECK(::chmod(p.c_str(), mode) == 0);
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

constexpr std::string_view kManifest =
    "PHOENIX_IMAGE_FORMAT=1\n"
    "NAME=demo\n"
    "KERNEL=vmlinux\n"
    "INITRD=initrd.img\n"
    "DISK=disk.qcow2\n"
    "ROOTFS=rootfs\n"
    "CMDLINE=console=ttyS0 panic=-1 quiet\n"
    "READY_MARKER=PHOENIX-READY\n"
    "COMMAND=/bin/demo-web --port 80\n"
    "RUNTIMES=vm,microvm,container\n";

void MakeRootfs(const fs::path& root) {
  fs::create_directories(root / "bin");
  fs::create_directories(root / "etc");
  fs::create_directories(root / "empty");
  WriteFile(root / "bin" / "demo-web", "#!/bin/sh\necho hi\n", 0755);
  WriteFile(root / "etc" / "conf", "a=1\n", 0640);
  fs::create_symlink("bin/demo-web", root / "app");
  fs::create_symlink("/nonexistent/target", root / "dangling");
}

// A recipe output directory with tiny artifacts.
void MakeImageDir(const fs::path& dir, std::string_view kernel = "KERNEL-v1") {
  fs::create_directories(dir);
  WriteFile(dir / "manifest.env", kManifest);
  WriteFile(dir / "vmlinux", kernel);
  WriteFile(dir / "initrd.img", "INITRD");
  WriteFile(dir / "disk.qcow2", std::string(100000, 'q'));
  MakeRootfs(dir / "rootfs");
}

std::unique_ptr<ImageStore> MustOpen(const fs::path& root, ImageStore::Options options = {}) {
  auto store = ImageStore::Open(root, options);
  PHX_CHECK(store.has_value());
  return std::move(*store);
}

// ImageArtifacts (agent/runtime) has no operator==, so compare field by field.
void ExpectSameImage(const ImageRecord& a, const ImageRecord& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.tag, b.tag);
  EXPECT_EQ(a.created_at, b.created_at);
  EXPECT_EQ(a.runtimes, b.runtimes);
  EXPECT_EQ(a.files, b.files);
  EXPECT_EQ(a.artifacts.image_id, b.artifacts.image_id);
  EXPECT_EQ(a.artifacts.kernel, b.artifacts.kernel);
  EXPECT_EQ(a.artifacts.initrd, b.artifacts.initrd);
  EXPECT_EQ(a.artifacts.disk, b.artifacts.disk);
  EXPECT_EQ(a.artifacts.rootfs, b.artifacts.rootfs);
  EXPECT_EQ(a.artifacts.cmdline, b.artifacts.cmdline);
  EXPECT_EQ(a.artifacts.ready_marker, b.artifacts.ready_marker);
  EXPECT_EQ(a.artifacts.command, b.artifacts.command);
}

size_t CountEntries(const fs::path& dir) {
  size_t n = 0;
  for (auto it = fs::directory_iterator(dir); it != fs::directory_iterator(); ++it) ++n;
  return n;
}

TEST(ImageStoreTest, ImportStoresArtifactsAndResolvesEveryRefForm) {
  TempDir tmp;
  MakeImageDir(tmp.path() / "src");
  auto store = MustOpen(tmp.path() / "images");
  auto rec = store->Import(tmp.path() / "src", "demo", "v1");
  ASSERT_TRUE(rec.has_value()) << rec.error().ToString();

  EXPECT_THAT(rec->id, StartsWith("sha256:"));
  std::string hex = rec->id.substr(7);
  EXPECT_EQ(hex.size(), 64u);
  EXPECT_EQ(rec->name, "demo");
  EXPECT_EQ(rec->tag, "v1");
  EXPECT_EQ(rec->runtimes, (std::vector<RuntimeKind>{RuntimeKind::kVm, RuntimeKind::kMicroVm,
                                                     RuntimeKind::kContainer}));
  EXPECT_LE(rec->created_at, Clock::now());
  EXPECT_GT(rec->created_at, Clock::now() - std::chrono::minutes(5));

  const ImageArtifacts& a = rec->artifacts;
  EXPECT_EQ(a.image_id, rec->id);
  EXPECT_EQ(a.cmdline, "console=ttyS0 panic=-1 quiet");
  EXPECT_EQ(a.ready_marker, "PHOENIX-READY");
  EXPECT_EQ(a.command, (std::vector<std::string>{"/bin/demo-web", "--port", "80"}));
  fs::path blobs = tmp.path() / "images" / "blobs" / "sha256";
  for (const fs::path& p : {a.kernel, a.initrd, a.disk, a.rootfs}) {
    EXPECT_TRUE(p.is_absolute()) << p;
    EXPECT_EQ(p.parent_path(), blobs) << p;
  }
  EXPECT_EQ(ReadFile(a.kernel), "KERNEL-v1");
  EXPECT_EQ(ReadFile(a.initrd), "INITRD");
  EXPECT_EQ(ReadFile(a.disk), std::string(100000, 'q'));
  struct stat st {};
  ASSERT_EQ(::stat(a.kernel.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0222, 0u) << "blobs are read-only";

  // The rootfs copy keeps modes and symlinks.
  ASSERT_EQ(::stat((a.rootfs / "bin" / "demo-web").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_EQ(::stat((a.rootfs / "etc" / "conf").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_TRUE(fs::is_symlink(a.rootfs / "app"));
  EXPECT_EQ(fs::read_symlink(a.rootfs / "app"), "bin/demo-web");
  EXPECT_EQ(fs::read_symlink(a.rootfs / "dangling"), "/nonexistent/target");
  EXPECT_TRUE(fs::is_directory(a.rootfs / "empty"));

  ASSERT_EQ(rec->files.size(), 4u);
  EXPECT_EQ(rec->files[0].kind, "kernel");
  EXPECT_EQ(rec->files[1].kind, "initrd");
  EXPECT_EQ(rec->files[2].kind, "disk");
  EXPECT_EQ(rec->files[3].kind, "rootfs");
  EXPECT_EQ(rec->files[0].sha256, *HashFile(tmp.path() / "src" / "vmlinux"));
  EXPECT_EQ(rec->files[0].path, a.kernel.string());
  EXPECT_EQ(rec->files[0].size, 9u);
  EXPECT_EQ(rec->files[2].size, 100000u);
  EXPECT_EQ(rec->files[3].sha256, *HashTree(tmp.path() / "src" / "rootfs"));
  EXPECT_EQ(rec->files[3].size, std::string("#!/bin/sh\necho hi\n").size() + 4);
  EXPECT_EQ(a.rootfs.filename(), rec->files[3].sha256);

  for (std::string ref : {std::string("demo:v1"), rec->id, "sha256:" + hex.substr(0, 12)}) {
    SCOPED_TRACE(ref);
    auto got = store->Resolve(ref);
    ASSERT_TRUE(got.has_value()) << got.error().ToString();
    ExpectSameImage(*got, *rec);
  }
  // "demo" means demo:latest, which does not exist yet.
  auto latest = store->Resolve("demo");
  ASSERT_FALSE(latest.has_value());
  EXPECT_EQ(latest.error().code, ErrorCode::kNotFound);

  // The source directory is left as it was (copied, not linked).
  ASSERT_EQ(::stat((tmp.path() / "src" / "vmlinux").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(st.st_nlink, 1u);
}

TEST(ImageStoreTest, EmptyNameAndTagMeanManifestNameAndLatest) {
  TempDir tmp;
  MakeImageDir(tmp.path() / "src");
  auto store = MustOpen(tmp.path() / "images");
  auto rec = store->Import(tmp.path() / "src", "", "");
  ASSERT_TRUE(rec.has_value()) << rec.error().ToString();
  EXPECT_EQ(rec->name, "demo");
  EXPECT_EQ(rec->tag, "latest");
  auto got = store->Resolve("demo");
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(got->id, rec->id);
}

TEST(ImageStoreTest, ReimportIsIdempotentAndSurvivesReopen) {
  TempDir tmp;
  MakeImageDir(tmp.path() / "src");
  MakeImageDir(tmp.path() / "copy");  // same content, different directory
  fs::path root = tmp.path() / "images";
  auto store = MustOpen(root);
  auto first = store->Import(tmp.path() / "src", "demo", "v1");
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  size_t blobs = CountEntries(root / "blobs" / "sha256");
  EXPECT_EQ(blobs, 4u);
  auto again = store->Import(tmp.path() / "copy", "demo", "v1");
  ASSERT_TRUE(again.has_value()) << again.error().ToString();
  ExpectSameImage(*again, *first);  // same id, same blobs, same creation time
  EXPECT_EQ(CountEntries(root / "blobs" / "sha256"), blobs);
  EXPECT_EQ(CountEntries(root / "manifests" / "sha256"), 1u);
  EXPECT_EQ(CountEntries(root / "tmp"), 0u);

  // Another name for the same content shares the image.
  auto other = store->Import(tmp.path() / "src", "alias", "x");
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(other->id, first->id);

  store.reset();
  store = MustOpen(root);
  auto resolved = store->Resolve("demo:v1");
  ASSERT_TRUE(resolved.has_value()) << resolved.error().ToString();
  ExpectSameImage(*resolved, *first);
}

TEST(ImageStoreTest, ChangedContentGetsANewIdAndMovesTheTag) {
  TempDir tmp;
  MakeImageDir(tmp.path() / "v1", "KERNEL-v1");
  MakeImageDir(tmp.path() / "v2", "KERNEL-v2");
  auto store = MustOpen(tmp.path() / "images");
  auto one = store->Import(tmp.path() / "v1", "demo", "latest");
  ASSERT_TRUE(one.has_value());
  auto two = store->Import(tmp.path() / "v2", "demo", "latest");
  ASSERT_TRUE(two.has_value());
  EXPECT_NE(one->id, two->id);
  // Only the kernel changed: the other blobs are shared.
  EXPECT_NE(one->artifacts.kernel, two->artifacts.kernel);
  EXPECT_EQ(one->artifacts.disk, two->artifacts.disk);
  EXPECT_EQ(one->artifacts.rootfs, two->artifacts.rootfs);

  auto latest = store->Resolve("demo");
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->id, two->id);
  // The old image stays addressable by id, untagged.
  auto old = store->Resolve(one->id);
  ASSERT_TRUE(old.has_value()) << old.error().ToString();
  EXPECT_EQ(old->artifacts.kernel, one->artifacts.kernel);
  EXPECT_EQ(old->name, "");

  auto list = store->List();
  ASSERT_TRUE(list.has_value()) << list.error().ToString();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, two->id);
  EXPECT_EQ((*list)[0].name, "demo");
  EXPECT_EQ((*list)[0].tag, "latest");
  EXPECT_EQ((*list)[1].id, one->id);
  EXPECT_EQ((*list)[1].name, "");
}

TEST(ImageStoreTest, ListIsSortedByNameAndTag) {
  TempDir tmp;
  MakeImageDir(tmp.path() / "src");
  auto store = MustOpen(tmp.path() / "images");
  auto empty = store->List();
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->empty());
  for (auto [name, tag] : {std::pair{"web", "b"}, {"api", "z"}, {"web", "a"}}) {
    ASSERT_TRUE(store->Import(tmp.path() / "src", name, tag).has_value());
  }
  auto list = store->List();
  ASSERT_TRUE(list.has_value());
  std::vector<std::string> refs;
  for (const auto& r : *list) refs.push_back(r.name + ":" + r.tag);
  EXPECT_THAT(refs, ElementsAre("api:z", "web:a", "web:b"));
}

TEST(ImageStoreTest, ResolveErrorsNameTheRefAndListImages) {
  TempDir tmp;
  auto store = MustOpen(tmp.path() / "images");
  auto none = store->Resolve("demo");
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(none.error().message, HasSubstr("\"demo\""));
  EXPECT_THAT(none.error().message, HasSubstr("no images"));

  MakeImageDir(tmp.path() / "src");
  auto rec = store->Import(tmp.path() / "src", "demo", "v1");
  ASSERT_TRUE(rec.has_value());
  auto missing = store->Resolve("demo:v9");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(missing.error().message, HasSubstr("\"demo:v9\""));
  EXPECT_THAT(missing.error().message, HasSubstr("demo:v1 (" + rec->id.substr(0, 19) + ")"));

  auto unknown_id = store->Resolve("sha256:" + std::string(64, '0'));
  ASSERT_FALSE(unknown_id.has_value());
  EXPECT_EQ(unknown_id.error().code, ErrorCode::kNotFound);

  for (const std::string& bad : std::vector<std::string>{
           "sha256:abc", "sha256:" + std::string(12, 'G'), "Demo", "demo:", "a/b:c", ""}) {
    SCOPED_TRACE(bad);
    auto r = store->Resolve(bad);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  }
}

TEST(ImageStoreTest, MissingKernelAndBadManifestFailWithoutTagging) {
  TempDir tmp;
  auto store = MustOpen(tmp.path() / "images");
  MakeImageDir(tmp.path() / "nokernel");
  fs::remove(tmp.path() / "nokernel" / "vmlinux");
  auto r = store->Import(tmp.path() / "nokernel", "demo", "v1");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(r.error().message, HasSubstr("KERNEL"));
  EXPECT_THAT(r.error().message, HasSubstr("vmlinux"));

  MakeImageDir(tmp.path() / "bad");
  WriteFile(tmp.path() / "bad" / "manifest.env", std::string(kManifest) + "SNAPSHOT=x\n");
  r = store->Import(tmp.path() / "bad", "demo", "v1");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(r.error().message, HasSubstr("unknown key SNAPSHOT"));

  MakeImageDir(tmp.path() / "ok");
  r = store->Import(tmp.path() / "ok", "Bad Name", "v1");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  r = store->Import(tmp.path() / "ok", "demo", "../x");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);

  auto list = store->List();
  ASSERT_TRUE(list.has_value());
  EXPECT_TRUE(list->empty());
}

TEST(ImageStoreTest, RootfsWithADeviceNodeIsRejected) {
  TempDir tmp;
  MakeImageDir(tmp.path() / "src");
  ASSERT_EQ(::mkfifo((tmp.path() / "src" / "rootfs" / "fifo").c_str(), 0644), 0);
  auto store = MustOpen(tmp.path() / "images");
  auto r = store->Import(tmp.path() / "src", "demo", "v1");
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().message, HasSubstr("fifo"));
}

TEST(ImageStoreTest, RootfsHashIsStableAndSensitive) {
  TempDir tmp;
  MakeRootfs(tmp.path() / "a");
  MakeRootfs(tmp.path() / "b");
  auto a = HashTree(tmp.path() / "a");
  auto b = HashTree(tmp.path() / "b");
  ASSERT_TRUE(a.has_value()) << a.error().ToString();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(a->size(), 64u);

  ASSERT_EQ(::chmod((tmp.path() / "b" / "etc" / "conf").c_str(), 0644), 0);
  auto mode_changed = HashTree(tmp.path() / "b");
  ASSERT_TRUE(mode_changed.has_value());
  EXPECT_NE(*mode_changed, *a);
  ASSERT_EQ(::chmod((tmp.path() / "b" / "etc" / "conf").c_str(), 0640), 0);
  EXPECT_EQ(*HashTree(tmp.path() / "b"), *a);

  fs::remove(tmp.path() / "b" / "app");
  fs::create_symlink("bin/other", tmp.path() / "b" / "app");
  EXPECT_NE(*HashTree(tmp.path() / "b"), *a);
  fs::remove(tmp.path() / "b" / "app");
  fs::create_symlink("bin/demo-web", tmp.path() / "b" / "app");
  EXPECT_EQ(*HashTree(tmp.path() / "b"), *a);

  WriteFile(tmp.path() / "b" / "etc" / "conf", "a=2\n", 0640);
  EXPECT_NE(*HashTree(tmp.path() / "b"), *a);
  WriteFile(tmp.path() / "b" / "etc" / "conf", "a=1\n", 0640);
  fs::rename(tmp.path() / "b" / "empty", tmp.path() / "b" / "empty2");
  EXPECT_NE(*HashTree(tmp.path() / "b"), *a);

  // Two imports of equal trees share one rootfs blob; a mode change makes a new one.
  MakeImageDir(tmp.path() / "img1");
  MakeImageDir(tmp.path() / "img2");
  auto store = MustOpen(tmp.path() / "images");
  auto one = store->Import(tmp.path() / "img1", "demo", "one");
  auto two = store->Import(tmp.path() / "img2", "demo", "two");
  ASSERT_TRUE(one.has_value() && two.has_value());
  EXPECT_EQ(one->artifacts.rootfs, two->artifacts.rootfs);
  EXPECT_EQ(one->id, two->id);
  ASSERT_EQ(::chmod((tmp.path() / "img2" / "rootfs" / "bin" / "demo-web").c_str(), 0700), 0);
  auto three = store->Import(tmp.path() / "img2", "demo", "three");
  ASSERT_TRUE(three.has_value());
  EXPECT_NE(three->artifacts.rootfs, one->artifacts.rootfs);
  EXPECT_NE(three->id, one->id);
  struct stat st {};
  ASSERT_EQ(::stat((three->artifacts.rootfs / "bin" / "demo-web").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(*HashTree(three->artifacts.rootfs), three->files[3].sha256);
}

TEST(ImageStoreTest, ImportNeverReadsOutsideTheImageDirectory) {
  TempDir tmp;
  WriteFile(tmp.path() / "secret", "root:$6$hash:19000:0:99999:7:::\n", 0600);
  auto store = MustOpen(tmp.path() / "images");
  const fs::path img = tmp.path() / "img";
  struct Case {
    const char* title;
    std::function<void()> plant;
  } cases[] = {
      {"kernel is a symlink out",
       [&] {
         fs::remove(img / "vmlinux");
         fs::create_symlink(tmp.path() / "secret", img / "vmlinux");
       }},
      {"kernel is a relative symlink",
       [&] {
         fs::rename(img / "vmlinux", img / "real");
         fs::create_symlink("real", img / "vmlinux");
       }},
      {"rootfs is a symlink to another tree",
       [&] {
         MakeRootfs(tmp.path() / "elsewhere");
         fs::remove_all(img / "rootfs");
         fs::create_directory_symlink(tmp.path() / "elsewhere", img / "rootfs");
       }},
      {"manifest is a symlink",
       [&] {
         fs::rename(img / "manifest.env", img / "real.env");
         fs::create_symlink("real.env", img / "manifest.env");
       }},
  };
  for (const Case& c : cases) {
    fs::remove_all(img);
    MakeImageDir(img);
    c.plant();
    auto r = store->Import(img, "demo", "latest");
    ASSERT_FALSE(r) << c.title;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument)
        << c.title << ": " << r.error().ToString();
    EXPECT_FALSE(store->Resolve("demo")) << c.title;
  }
  for (auto it = fs::directory_iterator(tmp.path() / "images" / "blobs" / "sha256");
       it != fs::directory_iterator(); ++it) {
    if (it->is_regular_file()) {
      EXPECT_NE(ReadFile(it->path()), ReadFile(tmp.path() / "secret")) << it->path();
    }
  }
}

TEST(ImageStoreTest, StoredRootfsHasNoSetuidFilesAndTheStoreIsRootOnly) {
  TempDir tmp;
  const fs::path img = tmp.path() / "img";
  MakeImageDir(img);
  WriteFile(img / "rootfs" / "bin" / "su", "#!/bin/sh\n", 04755);
  WriteFile(img / "rootfs" / "bin" / "wall", "#!/bin/sh\n", 02755);
  auto store = MustOpen(tmp.path() / "images");
  auto rec = store->Import(img, "demo", "latest");
  ASSERT_TRUE(rec) << rec.error().ToString();
  struct stat st {};
  ASSERT_EQ(::stat((rec->artifacts.rootfs / "bin" / "su").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_EQ(::stat((rec->artifacts.rootfs / "bin" / "wall").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  const fs::path root = tmp.path() / "images";
  for (auto [sub, mode] : {std::pair<const char*, unsigned>{".", 0711},
                           {"blobs", 0711},
                           {"manifests", 0700},
                           {"tags", 0700},
                           {"tmp", 0700}}) {
    ASSERT_EQ(::stat((root / sub).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, mode) << sub;
  }
}

TEST(ImageStoreTest, OneStorePerRootAndLeftoversAreCleaned) {
  TempDir tmp;
  fs::path root = tmp.path() / "images";
  auto store = MustOpen(root);
  auto second = ImageStore::Open(root);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, ErrorCode::kUnavailable);
  store.reset();

  // A crash mid-import leaves partial blobs in tmp/; Open removes them.
  fs::create_directories(root / "tmp" / "blob-abc");
  WriteFile(root / "tmp" / "blob-abc" / "data", "partial", 0444);
  store = MustOpen(root);
  EXPECT_EQ(CountEntries(root / "tmp"), 0u);
}

TEST(ImageStoreTest, ConcurrentImportsAndResolves) {
  TempDir tmp;
  auto store = MustOpen(tmp.path() / "images");
  constexpr int kThreads = 4;
  for (int i = 0; i < kThreads; ++i) {
    MakeImageDir(tmp.path() / ("src" + std::to_string(i)), "KERNEL-" + std::to_string(i % 2));
  }
  std::vector<std::thread> threads;
  std::vector<Result<ImageRecord>> results(kThreads, Internal("not run"));
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      results[i] =
          store->Import(tmp.path() / ("src" + std::to_string(i)), "demo", "t" + std::to_string(i));
      for (int j = 0; j < 5; ++j) (void)store->List();
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) {
    ASSERT_TRUE(results[i].has_value()) << results[i].error().ToString();
    auto got = store->Resolve("demo:t" + std::to_string(i));
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->id, results[i]->id);
    EXPECT_EQ(got->id, results[i % 2]->id);
  }
  EXPECT_NE(results[0]->id, results[1]->id);
}

// A writer process imports new content under one tag in a loop and is SIGKILLed at a random
// moment: the tag must still resolve to a complete image, at least as new as the last import the
// writer acknowledged.
TEST(ImageStoreTest, ATagNeverPointsAtAnIncompleteImageAfterSigkill) {
  TempDir tmp;
  fs::path root = tmp.path() / "images";
  fs::path src = tmp.path() / "src";
  MakeImageDir(src, "K-0");
  ASSERT_TRUE(MustOpen(root)->Import(src, "demo", "latest").has_value());
  std::mt19937 rng(std::random_device{}());
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      auto store = ImageStore::Open(root);
      if (!store) _exit(2);
      for (uint32_t i = 1; i < 10000; ++i) {
        WriteFile(src / "vmlinux", "K-" + std::to_string(round * 10000 + i));
        if (!(*store)->Import(src, "demo", "latest")) _exit(3);
        if (::write(fds[1], &i, sizeof(i)) != static_cast<ssize_t>(sizeof(i))) _exit(4);
      }
      _exit(0);
    }
    ::close(fds[1]);
    const size_t kill_after = std::uniform_int_distribution<size_t>(1, 5)(rng);
    uint32_t last_acked = 0;
    size_t acks = 0;
    bool killed = false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      if (!killed && acks >= kill_after) {
        ::usleep(std::uniform_int_distribution<useconds_t>(0, 20000)(rng));
        ASSERT_EQ(::kill(pid, SIGKILL), 0);
        killed = true;
      }
      pollfd p{fds[0], POLLIN, 0};
      if (::poll(&p, 1, 1000) < 0) break;
      if ((p.revents & (POLLIN | POLLHUP)) == 0) continue;
      uint32_t id = 0;
      ssize_t got = ::read(fds[0], &id, sizeof(id));
      if (got <= 0) break;
      ASSERT_EQ(got, static_cast<ssize_t>(sizeof(id)));
      last_acked = id;
      ++acks;
    }
    ::close(fds[0]);
    if (!killed) ::kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(killed) << "the writer did not acknowledge " << kill_after << " imports in time";

    auto store = MustOpen(root);
    EXPECT_EQ(CountEntries(root / "tmp"), 0u);
    auto rec = store->Resolve("demo");
    ASSERT_TRUE(rec.has_value()) << rec.error().ToString();
    std::string kernel = ReadFile(rec->artifacts.kernel);
    ASSERT_THAT(kernel, StartsWith("K-"));
    EXPECT_GE(std::stoul(kernel.substr(2)), round * 10000u + last_acked);
    for (const auto& f : rec->files) {
      auto hash = f.kind == "rootfs" ? HashTree(f.path) : HashFile(f.path);
      ASSERT_TRUE(hash.has_value()) << hash.error().ToString();
      EXPECT_EQ(*hash, f.sha256) << f.kind;
    }
  }
}

// Recipes: tiny shell scripts in a recipes dir made by the test.
void WriteRecipe(const fs::path& recipes, const std::string& name, const std::string& body) {
  fs::create_directories(recipes / name);
  WriteFile(recipes / name / "build.sh", "#!/bin/sh\nset -e\n" + body, 0755);
}

constexpr std::string_view kGoodRecipe = R"sh(out="$1"
echo "step 1: kernel"
printf 'KERNEL-built' > "$out/vmlinux"
echo "step 2: initrd on stderr" >&2
printf 'INITRD' > "$out/initrd.img"
test -f helper.txt && echo "cwd is the recipe dir"
cat > "$out/manifest.env" <<EOF
PHOENIX_IMAGE_FORMAT=1
NAME=tiny
KERNEL=vmlinux
INITRD=initrd.img
CMDLINE=console=ttyS0
READY_MARKER=READY
RUNTIMES=vm,microvm
EOF
printf 'no newline at the end'
)sh";

TEST(ImageStoreTest, BuildRunsTheRecipeStreamsItsOutputAndImports) {
  TempDir tmp;
  fs::path recipes = tmp.path() / "recipes";
  WriteRecipe(recipes, "tiny", std::string(kGoodRecipe));
  WriteFile(recipes / "tiny" / "helper.txt", "x");
  fs::path root = tmp.path() / "images";
  auto store = MustOpen(root);
  std::vector<std::string> lines;
  auto rec =
      store->Build(recipes, "tiny", "", "", [&](std::string_view l) { lines.emplace_back(l); });
  ASSERT_TRUE(rec.has_value()) << rec.error().ToString();
  EXPECT_THAT(lines, ElementsAre("step 1: kernel", "step 2: initrd on stderr",
                                 "cwd is the recipe dir", "no newline at the end"));
  EXPECT_EQ(rec->name, "tiny");
  EXPECT_EQ(rec->tag, "latest");
  EXPECT_EQ(ReadFile(rec->artifacts.kernel), "KERNEL-built");
  EXPECT_TRUE(rec->artifacts.disk.empty());
  EXPECT_TRUE(rec->artifacts.rootfs.empty());
  EXPECT_EQ(CountEntries(root / "tmp"), 0u) << "the build output dir is removed";
  auto got = store->Resolve("tiny");
  ASSERT_TRUE(got.has_value());
  ExpectSameImage(*got, *rec);

  // Building the same content again is idempotent.
  auto again = store->Build(recipes, "tiny", "tiny", "v2", nullptr);
  ASSERT_TRUE(again.has_value()) << again.error().ToString();
  EXPECT_EQ(again->id, rec->id);
}

TEST(ImageStoreTest, BuildRefusesRecipesOthersCanWrite) {
  TempDir tmp;
  fs::path recipes = tmp.path() / "recipes";
  WriteRecipe(recipes, "tiny", std::string(kGoodRecipe));
  auto store = MustOpen(tmp.path() / "images");
  for (const fs::path& p : {recipes, recipes / "tiny", recipes / "tiny" / "build.sh"}) {
    struct stat st {};
    ASSERT_EQ(::stat(p.c_str(), &st), 0);
    ASSERT_EQ(::chmod(p.c_str(), (st.st_mode & 07777) | S_IWOTH), 0);
    auto r = store->Build(recipes, "tiny", "", "", nullptr);
    ASSERT_FALSE(r) << p;
    EXPECT_EQ(r.error().code, ErrorCode::kFailedPrecondition) << p;
    EXPECT_THAT(r.error().message, HasSubstr("world-writable")) << p;
    ASSERT_EQ(::chmod(p.c_str(), st.st_mode & 07777), 0);
  }
  EXPECT_TRUE(store->Build(recipes, "tiny", "", "", nullptr));
}

TEST(ImageStoreTest, BuildReportsAFailingRecipeWithItsOutput) {
  TempDir tmp;
  fs::path recipes = tmp.path() / "recipes";
  WriteRecipe(recipes, "broken", "echo 'fetching kernel'\necho 'no kernel here' >&2\nexit 3\n");
  WriteRecipe(recipes, "nomanifest", "echo building\n");
  auto store = MustOpen(tmp.path() / "images");
  std::vector<std::string> lines;
  auto r =
      store->Build(recipes, "broken", "x", "y", [&](std::string_view l) { lines.emplace_back(l); });
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().message, HasSubstr("broken"));
  EXPECT_THAT(r.error().message, HasSubstr("exit status 3"));
  EXPECT_THAT(r.error().message, HasSubstr("no kernel here"));
  EXPECT_THAT(lines, ElementsAre("fetching kernel", "no kernel here"));

  r = store->Build(recipes, "nomanifest", "x", "y", nullptr);
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().message, HasSubstr("manifest.env"));

  r = store->Build(recipes, "absent", "x", "y", nullptr);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(r.error().message, HasSubstr("\"absent\""));
  EXPECT_THAT(r.error().message, HasSubstr("recipes: broken, nomanifest"));

  for (std::string bad : {"../broken", "Broken", "", "a/b"}) {
    r = store->Build(recipes, bad, "x", "y", nullptr);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << bad;
  }
  auto list = store->List();
  ASSERT_TRUE(list.has_value());
  EXPECT_TRUE(list->empty());
  EXPECT_EQ(CountEntries(tmp.path() / "images" / "tmp"), 0u);
}

TEST(ImageStoreTest, BuildTimesOutAndKillsTheRecipe) {
  TempDir tmp;
  fs::path recipes = tmp.path() / "recipes";
  // The background sleep holds the pipe open too: the process group kill must end it.
  WriteRecipe(recipes, "slow", "echo started\nsleep 60 &\nsleep 60\n");
  ImageStore::Options options;
  options.build_timeout = std::chrono::seconds(1);
  auto store = MustOpen(tmp.path() / "images", options);
  auto start = std::chrono::steady_clock::now();
  auto r = store->Build(recipes, "slow", "x", "y", nullptr);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kDeadlineExceeded);
  EXPECT_THAT(r.error().message, HasSubstr("started"));
  EXPECT_LT(took, std::chrono::seconds(10));
}

TEST(ImageStoreTest, BuildDoesNotWaitForBackgroundLeftovers) {
  TempDir tmp;
  fs::path recipes = tmp.path() / "recipes";
  std::string body = std::string(kGoodRecipe);
  WriteRecipe(recipes, "leaky", body + "\nsleep 60 &\n");
  auto store = MustOpen(tmp.path() / "images");
  auto start = std::chrono::steady_clock::now();
  auto r = store->Build(recipes, "leaky", "", "", nullptr);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_LT(took, std::chrono::seconds(10));
}

}  // namespace
}  // namespace phoenix::agent
