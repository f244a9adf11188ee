// Stored image manifest (manifests/sha256/<hex>, <hex> = sha256 of the file), format 1:
//
//   PHOENIX_IMAGE=1
//   KERNEL=sha256:<hex> <size>
//   INITRD=sha256:<hex> <size>
//   DISK=sha256:<hex> <size>          (only when the image has one)
//   ROOTFS=sha256:<tree hex> <size>   (only when the image has one; size = sum of regular files)
//   CMDLINE=<kernel command line>
//   READY_MARKER=<marker>
//   COMMAND=<arguments separated by single spaces>
//   RUNTIMES=<vm,microvm,container in the recipe's order>
//
// Keys always appear in this order, so equal content gives an equal id. Names and tags are
// references to an image, not part of it: they live in tags/ only.
#include "agent/image/image_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include "agent/image/tree.h"
#include "proto/support/exclusive_lock.h"

namespace phoenix::agent {
namespace {

namespace fs = std::filesystem;
using image_fs::CopyTree;
using image_fs::HashAndCopy;
using image_fs::ListTree;
using image_fs::OpenBeneath;
using image_fs::RemoveTree;
using image_fs::Sha256;
using image_fs::UniqueFd;
using image_fs::WriteAll;

constexpr size_t kHexLen = 64;
constexpr size_t kMinIdPrefix = 12;

std::string HashString(std::string_view s) {
  Sha256 h;
  h.Update(s);
  return h.HexDigest();
}

bool IsLowerHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

Result<std::string> ReadSmallFile(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    int err = errno;
    if (err == ENOENT) return NotFound(path.string() + " does not exist");
    return ErrnoError("opening " + path.string(), err);
  }
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("reading " + path.string());
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > 1024 * 1024) return Internal(path.string() + " is unexpectedly large");
  }
  return out;
}

Result<void> FsyncPath(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECTORY));
  if (fd.get() < 0) return ErrnoError("opening directory " + path.string());
  if (::fsync(fd.get()) != 0) return ErrnoError("fsync " + path.string());
  return {};
}

Result<void> MakeDir(const fs::path& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoError("creating directory " + path.string());
  }
  return {};
}

TimePoint FromTimespec(const struct timespec& ts) {
  return TimePoint(std::chrono::duration_cast<Clock::duration>(
      std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
}

// The parsed form of a stored image manifest.
struct StoredManifest {
  struct Blob {
    std::string hex;
    uint64_t size = 0;
  };
  std::map<std::string, Blob> blobs;  // kind ("kernel", ...) -> blob
  std::string cmdline;
  std::string ready_marker;
  std::vector<std::string> command;
  std::vector<RuntimeKind> runtimes;
};

constexpr std::pair<std::string_view, std::string_view> kBlobKeys[] = {
    {"KERNEL", "kernel"}, {"INITRD", "initrd"}, {"DISK", "disk"}, {"ROOTFS", "rootfs"}};

std::string Join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += sep;
    out += parts[i];
  }
  return out;
}

Result<StoredManifest> ParseStoredManifest(std::string_view text, std::string_view hex) {
  StoredManifest m;
  auto corrupt = [&](std::string why) {
    return Internal("image sha256:" + std::string(hex) + " has a damaged manifest: " + why);
  };
  bool header = false;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) return corrupt("line \"" + std::string(line) + "\"");
    std::string_view key = line.substr(0, eq);
    std::string_view value = line.substr(eq + 1);
    if (!header) {
      if (key != "PHOENIX_IMAGE" || value != "1") return corrupt("unknown format");
      header = true;
      continue;
    }
    bool is_blob = false;
    for (auto [k, kind] : kBlobKeys) {
      if (key != k) continue;
      is_blob = true;
      size_t sp = value.find(' ');
      if (!value.starts_with("sha256:") || sp != 7 + kHexLen) return corrupt(std::string(key));
      StoredManifest::Blob b;
      b.hex = std::string(value.substr(7, kHexLen));
      std::string size(value.substr(sp + 1));
      char* end = nullptr;
      errno = 0;
      b.size = std::strtoull(size.c_str(), &end, 10);
      if (!IsLowerHex(b.hex) || errno != 0 || size.empty() || *end != '\0') {
        return corrupt(std::string(key));
      }
      m.blobs.emplace(std::string(kind), std::move(b));
    }
    if (is_blob) continue;
    if (key == "CMDLINE") {
      m.cmdline = value;
    } else if (key == "READY_MARKER") {
      m.ready_marker = value;
    } else if (key == "COMMAND") {
      std::string_view rest = value;
      while (!rest.empty()) {
        size_t sp = rest.find(' ');
        m.command.emplace_back(rest.substr(0, sp));
        if (sp == std::string_view::npos) break;
        rest = rest.substr(sp + 1);
      }
    } else if (key == "RUNTIMES") {
      std::string_view rest = value;
      while (!rest.empty()) {
        size_t comma = rest.find(',');
        auto kind = ParseRuntimeKind(rest.substr(0, comma));
        if (!kind) return corrupt(kind.error().message);
        m.runtimes.push_back(*kind);
        if (comma == std::string_view::npos) break;
        rest = rest.substr(comma + 1);
      }
    } else {
      return corrupt("unknown key " + std::string(key));
    }
  }
  if (!header || !m.blobs.contains("kernel") || !m.blobs.contains("initrd")) {
    return corrupt("incomplete");
  }
  return m;
}

}  // namespace

Result<std::unique_ptr<ImageStore>> ImageStore::Open(const fs::path& root) {
  return Open(root, Options{});
}

Result<std::unique_ptr<ImageStore>> ImageStore::Open(const fs::path& root, const Options& options) {
  if (root.empty()) return InvalidArgument("root", "empty path");
  std::error_code ec;
  fs::path abs = fs::absolute(root, ec).lexically_normal();
  if (ec) return Internal("image store: resolving " + root.string() + ": " + ec.message());
  fs::create_directories(abs, ec);
  if (ec) return Internal("image store: creating " + abs.string() + ": " + ec.message());
  // Only root may list or change the store. Blobs stay reachable by their (unguessable) content
  // path, because QEMU runs as libvirt-qemu and opens a VM's kernel and initrd by path; manifests,
  // tags and partial imports are root's alone.
  for (auto [sub, mode] : {std::pair<const char*, mode_t>{".", 0711},
                           {"blobs", 0711},
                           {"blobs/sha256", 0711},
                           {"manifests", 0700},
                           {"manifests/sha256", 0700},
                           {"tags", 0700},
                           {"tmp", 0700}}) {
    auto made = MakeDir(abs / sub);
    if (!made) return std::unexpected(made.error().Wrap("image store"));
    if (::chmod((abs / sub).c_str(), mode) != 0) {
      return ErrnoError("image store: chmod " + (abs / sub).string());
    }
  }
  auto lock = LockExclusively(abs / "lock", "image store");
  if (!lock) return std::unexpected(lock.error());
  // Whatever is in tmp/ is a leftover of an import or build that a crash interrupted.
  for (auto it = fs::directory_iterator(abs / "tmp", ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    RemoveTree(it->path());
  }
  if (ec) return Internal("image store: cleaning " + (abs / "tmp").string() + ": " + ec.message());
  return std::unique_ptr<ImageStore>(new ImageStore(abs, lock->Release(), options));
}

ImageStore::ImageStore(fs::path root, int lock_fd, Options options)
    : root_(std::move(root)), lock_fd_(lock_fd), options_(options) {}

ImageStore::~ImageStore() { ::close(lock_fd_); }

Result<fs::path> ImageStore::MakeTempPath(std::string_view prefix) const {
  // mkdtemp gives a unique, private name; callers use it as a directory or a path inside it.
  std::string templ = (root_ / "tmp" / (std::string(prefix) + "XXXXXX")).string();
  if (::mkdtemp(templ.data()) == nullptr) return ErrnoError("creating a temporary directory");
  return fs::path(templ);
}

Result<ImageStore::StoredBlob> ImageStore::StoreFile(int dir_fd, const fs::path& dir,
                                                     const fs::path& rel, bool may_link) {
  const fs::path src = dir / rel;
  auto in = OpenBeneath(dir_fd, rel, O_RDONLY);
  if (!in) return std::unexpected(in.error());
  struct stat st {};
  if (::fstat(in->get(), &st) != 0) return ErrnoError("stat " + src.string());
  if (!S_ISREG(st.st_mode)) return InvalidArgument(rel.string(), "is not a regular file");

  auto tmp_dir = MakeTempPath("blob-");
  if (!tmp_dir) return std::unexpected(tmp_dir.error());
  struct Cleanup {
    fs::path dir;
    ~Cleanup() { RemoveTree(dir); }
  } cleanup{*tmp_dir};
  fs::path tmp = *tmp_dir / "data";

  StoredBlob blob;
  Sha256 hash;
  // A hard link is only safe for files nobody writes again (a finished build's output). It links
  // the very file opened above, so no path can be swapped in between.
  if (may_link && ::linkat(in->get(), "", AT_FDCWD, tmp.c_str(), AT_EMPTY_PATH) == 0) {
    auto n = HashAndCopy(in->get(), src, hash, -1, {});
    if (!n) return std::unexpected(n.error());
    blob.size = *n;
    if (::fchmod(in->get(), 0444) != 0) return ErrnoError("chmod " + tmp.string());
    if (::fsync(in->get()) != 0) return ErrnoError("fsync " + tmp.string());
  } else {
    UniqueFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (out.get() < 0) return ErrnoError("creating " + tmp.string());
    // Hashing the bytes as they are written means the id always matches what is stored.
    auto n = HashAndCopy(in->get(), src, hash, out.get(), tmp);
    if (!n) return std::unexpected(n.error());
    blob.size = *n;
    if (::fchmod(out.get(), 0444) != 0) return ErrnoError("chmod " + tmp.string());
    if (::fsync(out.get()) != 0) return ErrnoError("fsync " + tmp.string());
  }
  blob.hex = hash.HexDigest();
  fs::path final_path = root_ / "blobs" / "sha256" / blob.hex;
  if (::lstat(final_path.c_str(), &st) == 0) return blob;  // already stored: idempotent
  // rename over an identical blob from a concurrent import is harmless.
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    return ErrnoError("storing " + src.string() + " as " + final_path.string());
  }
  return blob;
}

Result<ImageStore::StoredBlob> ImageStore::StoreTree(int dir_fd, const fs::path& dir,
                                                     const fs::path& rel) {
  // The tree is walked through the descriptor of the directory opened beneath the import dir, so a
  // component of `rel` swapped for a symlink later cannot redirect the walk.
  auto tree_fd = OpenBeneath(dir_fd, rel, O_RDONLY | O_DIRECTORY);
  if (!tree_fd) return std::unexpected(tree_fd.error());
  const fs::path src = "/proc/self/fd/" + std::to_string(tree_fd->get());
  const fs::path shown = dir / rel;
  StoredBlob blob;
  auto hex = HashTree(src, &blob.size);
  if (!hex) return std::unexpected(hex.error());
  blob.hex = *hex;
  fs::path final_path = root_ / "blobs" / "sha256" / blob.hex;
  struct stat st {};
  if (::lstat(final_path.c_str(), &st) == 0) return blob;

  auto tmp_dir = MakeTempPath("tree-");
  if (!tmp_dir) return std::unexpected(tmp_dir.error());
  struct Cleanup {
    fs::path dir;
    ~Cleanup() { RemoveTree(dir); }
  } cleanup{*tmp_dir};
  fs::path tmp = *tmp_dir / "tree";
  if (::mkdir(tmp.c_str(), 0700) != 0) return ErrnoError("creating " + tmp.string());
  auto entries = ListTree(src);
  if (!entries) return std::unexpected(entries.error());
  PHX_TRY(CopyTree(src, tmp, *entries));
  // Verify the copy: catches a source that changed while it was copied.
  auto copied = HashTree(tmp);
  if (!copied) return std::unexpected(copied.error());
  if (*copied != blob.hex) {
    return FailedPrecondition("root filesystem " + shown.string() +
                              " changed while it was imported; import it again");
  }
  // A directory rename is only durable with its contents, so flush everything first.
  UniqueFd root_fd(::open(root_.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECTORY));
  if (root_fd.get() < 0 || ::syncfs(root_fd.get()) != 0)
    return ErrnoError("syncfs " + root_.string());
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    if (errno == EEXIST || errno == ENOTEMPTY) return blob;  // a concurrent import stored it
    return ErrnoError("storing " + shown.string() + " as " + final_path.string());
  }
  return blob;
}

Result<std::string> ImageStore::StoreManifest(const std::string& text) {
  std::string hex = HashString(text);
  fs::path final_path = root_ / "manifests" / "sha256" / hex;
  struct stat st {};
  if (::lstat(final_path.c_str(), &st) == 0) return hex;
  auto tmp_dir = MakeTempPath("manifest-");
  if (!tmp_dir) return std::unexpected(tmp_dir.error());
  struct Cleanup {
    fs::path dir;
    ~Cleanup() { RemoveTree(dir); }
  } cleanup{*tmp_dir};
  fs::path tmp = *tmp_dir / "manifest";
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444));
    if (fd.get() < 0) return ErrnoError("creating " + tmp.string());
    PHX_TRY(WriteAll(fd.get(), text, tmp));
    if (::fsync(fd.get()) != 0) return ErrnoError("fsync " + tmp.string());
  }
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    return ErrnoError("storing manifest " + final_path.string());
  }
  PHX_TRY(FsyncPath(final_path.parent_path()));
  return hex;
}

Result<void> ImageStore::WriteTag(const std::string& name, const std::string& tag,
                                  const std::string& id) {
  fs::path dir = root_ / "tags" / name;
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    PHX_TRY(MakeDir(dir));
    PHX_TRY(FsyncPath(dir.parent_path()));
  }
  auto tmp_dir = MakeTempPath("tag-");
  if (!tmp_dir) return std::unexpected(tmp_dir.error());
  struct Cleanup {
    fs::path dir;
    ~Cleanup() { RemoveTree(dir); }
  } cleanup{*tmp_dir};
  fs::path tmp = *tmp_dir / "tag";
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (fd.get() < 0) return ErrnoError("creating " + tmp.string());
    PHX_TRY(WriteAll(fd.get(), id + "\n", tmp));
    if (::fsync(fd.get()) != 0) return ErrnoError("fsync " + tmp.string());
  }
  fs::path final_path = dir / tag;
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    return ErrnoError("writing tag " + final_path.string());
  }
  return FsyncPath(dir);
}

Result<ImageRecord> ImageStore::Import(const fs::path& dir, const std::string& name,
                                       const std::string& tag) {
  return ImportInternal(dir, name, tag, /*may_link=*/false);
}

Result<ImageRecord> ImageStore::ImportInternal(const fs::path& dir, const std::string& name_in,
                                               const std::string& tag_in, bool may_link) {
  auto fail = [&](const Error& e) {
    return std::unexpected(e.Wrap("importing image from " + dir.string()));
  };
  auto manifest = LoadImageManifest(dir);
  if (!manifest) return fail(manifest.error());
  std::string name = name_in.empty() ? manifest->name : name_in;
  std::string tag = tag_in.empty() ? std::string(kDefaultTag) : tag_in;
  if (!IsValidImageName(name)) {
    return InvalidArgument("name",
                           "\"" + name + "\" is not a valid image name ([a-z0-9][a-z0-9._-]*)");
  }
  if (!IsValidImageTag(tag)) {
    return InvalidArgument("tag",
                           "\"" + tag + "\" is not a valid tag ([A-Za-z0-9_][A-Za-z0-9._-]*)");
  }

  // The long part (hashing and copying) runs without the mutex: blobs are content-addressed and
  // appear by atomic rename, so concurrent imports cannot conflict.
  std::string text = "PHOENIX_IMAGE=1\n";
  const std::pair<std::string_view, const std::string*> files[] = {{"KERNEL", &manifest->kernel},
                                                                   {"INITRD", &manifest->initrd},
                                                                   {"DISK", &manifest->disk},
                                                                   {"ROOTFS", &manifest->rootfs}};
  UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0) return fail(ErrnoError("opening " + dir.string()).error());
  for (auto [key, rel] : files) {
    if (rel->empty()) continue;
    auto blob = key == "ROOTFS" ? StoreTree(dir_fd.get(), dir, *rel)
                                : StoreFile(dir_fd.get(), dir, *rel, may_link);
    if (!blob) return fail(blob.error().Wrap(std::string(key) + " " + *rel));
    text += std::string(key) + "=sha256:" + blob->hex + " " + std::to_string(blob->size) + "\n";
  }
  text += "CMDLINE=" + manifest->cmdline + "\n";
  text += "READY_MARKER=" + manifest->ready_marker + "\n";
  text += "COMMAND=" + Join(manifest->command, " ") + "\n";
  std::vector<std::string> runtimes;
  for (RuntimeKind k : manifest->runtimes) runtimes.emplace_back(RuntimeKindName(k));
  text += "RUNTIMES=" + Join(runtimes, ",") + "\n";

  // The manifest and tag must never reach the disk before the blobs they name.
  UniqueFd root_fd(::open(root_.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECTORY));
  if (root_fd.get() < 0 || ::syncfs(root_fd.get()) != 0) {
    return fail(ErrnoError("syncfs " + root_.string()).error());
  }

  std::lock_guard lock(mu_);
  auto hex = StoreManifest(text);
  if (!hex) return fail(hex.error());
  auto tagged = WriteTag(name, tag, "sha256:" + *hex);
  if (!tagged) return fail(tagged.error());
  auto record = LoadImage(*hex);
  if (!record) return fail(record.error());
  record->name = name;
  record->tag = tag;
  spdlog::info("image store: {}:{} -> {} (from {})", name, tag, record->id, dir.string());
  return record;
}

Result<ImageRecord> ImageStore::LoadImage(const std::string& hex) const {
  fs::path path = root_ / "manifests" / "sha256" / hex;
  auto text = ReadSmallFile(path);
  if (!text) return std::unexpected(text.error());
  if (HashString(*text) != hex) {
    return Internal("image sha256:" + hex + " is damaged: its manifest " + path.string() +
                    " does not match its id");
  }
  auto m = ParseStoredManifest(*text, hex);
  if (!m) return std::unexpected(m.error());
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return ErrnoError("stat " + path.string());

  ImageRecord r;
  r.id = "sha256:" + hex;
  r.created_at = FromTimespec(st.st_mtim);
  r.runtimes = m->runtimes;
  r.artifacts.image_id = r.id;
  r.artifacts.cmdline = m->cmdline;
  r.artifacts.ready_marker = m->ready_marker;
  r.artifacts.command = m->command;
  for (auto [key, kind] : kBlobKeys) {
    auto it = m->blobs.find(std::string(kind));
    if (it == m->blobs.end()) continue;
    fs::path blob = root_ / "blobs" / "sha256" / it->second.hex;
    if (::lstat(blob.c_str(), &st) != 0) {
      return Internal("image " + r.id + " is damaged: its " + std::string(kind) + " blob " +
                      blob.string() + " is missing");
    }
    if (kind == "kernel") r.artifacts.kernel = blob;
    if (kind == "initrd") r.artifacts.initrd = blob;
    if (kind == "disk") r.artifacts.disk = blob;
    if (kind == "rootfs") r.artifacts.rootfs = blob;
    r.files.push_back({std::string(kind), blob.string(), it->second.size, it->second.hex});
  }
  return r;
}

Result<std::vector<std::pair<std::string, std::string>>> ImageStore::ListTagsLocked() const {
  std::vector<std::pair<std::string, std::string>> out;
  std::error_code ec;
  for (auto n = fs::directory_iterator(root_ / "tags", ec); !ec && n != fs::directory_iterator();
       n.increment(ec)) {
    std::string name = n->path().filename().string();
    if (!IsValidImageName(name)) continue;
    std::error_code tec;
    for (auto t = fs::directory_iterator(n->path(), tec); !tec && t != fs::directory_iterator();
         t.increment(tec)) {
      std::string tag = t->path().filename().string();
      if (IsValidImageTag(tag)) out.emplace_back(name, tag);
    }
    if (tec) return Internal("listing " + n->path().string() + ": " + tec.message());
  }
  if (ec) return Internal("listing " + (root_ / "tags").string() + ": " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::string> ImageStore::ReadTagLocked(const std::string& name,
                                              const std::string& tag) const {
  fs::path path = root_ / "tags" / name / tag;
  auto text = ReadSmallFile(path);
  if (!text) return std::unexpected(text.error());
  std::string_view v = *text;
  if (v.ends_with('\n')) v.remove_suffix(1);
  if (!v.starts_with("sha256:") || v.size() != 7 + kHexLen || !IsLowerHex(v.substr(7))) {
    return Internal("tag " + path.string() + " is damaged");
  }
  return std::string(v.substr(7));
}

Result<std::vector<std::string>> ImageStore::ListImageHexLocked() const {
  std::vector<std::string> out;
  std::error_code ec;
  fs::path dir = root_ / "manifests" / "sha256";
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    std::string hex = it->path().filename().string();
    if (hex.size() == kHexLen && IsLowerHex(hex)) out.push_back(std::move(hex));
  }
  if (ec) return Internal("listing " + dir.string() + ": " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

std::string ImageStore::DescribeImagesLocked() const {
  auto tags = ListTagsLocked();
  if (!tags) return "(cannot list images: " + tags.error().message + ")";
  if (tags->empty()) return "no images have been imported";
  std::string out = "images:";
  for (const auto& [name, tag] : *tags) {
    auto hex = ReadTagLocked(name, tag);
    out += " " + name + ":" + tag;
    if (hex) out += " (sha256:" + hex->substr(0, kMinIdPrefix) + ")";
    out += ",";
  }
  out.pop_back();
  return out;
}

Result<ImageRecord> ImageStore::Resolve(std::string_view ref) const {
  std::lock_guard lock(mu_);
  return ResolveLocked(ref);
}

Result<ImageRecord> ImageStore::ResolveLocked(std::string_view ref) const {
  std::string quoted = "\"" + std::string(ref) + "\"";
  if (ref.starts_with("sha256:")) {
    std::string_view prefix = ref.substr(7);
    if (prefix.size() < kMinIdPrefix || prefix.size() > kHexLen || !IsLowerHex(prefix)) {
      return InvalidArgument("image", "image id " + quoted + " must be sha256: followed by " +
                                          std::to_string(kMinIdPrefix) +
                                          " to 64 lowercase hex digits");
    }
    auto all = ListImageHexLocked();
    if (!all) return std::unexpected(all.error());
    std::vector<std::string> matches;
    for (const auto& hex : *all) {
      if (std::string_view(hex).starts_with(prefix)) matches.push_back(hex);
    }
    if (matches.empty())
      return NotFound("image " + quoted + " not found; " + DescribeImagesLocked());
    if (matches.size() > 1) {
      std::string list;
      for (const auto& m : matches) list += " sha256:" + m;
      return InvalidArgument("image", "image id prefix " + quoted + " is ambiguous:" + list);
    }
    auto record = LoadImage(matches[0]);
    if (!record) return std::unexpected(record.error());
    auto tags = ListTagsLocked();
    if (!tags) return std::unexpected(tags.error());
    for (const auto& [name, tag] : *tags) {
      auto hex = ReadTagLocked(name, tag);
      if (hex && *hex == matches[0]) {
        record->name = name;
        record->tag = tag;
        break;
      }
    }
    return record;
  }

  size_t colon = ref.find(':');
  std::string name(ref.substr(0, colon));
  std::string tag = colon == std::string_view::npos ? std::string(kDefaultTag)
                                                    : std::string(ref.substr(colon + 1));
  if (!IsValidImageName(name) || !IsValidImageTag(tag)) {
    return InvalidArgument("image",
                           "image reference " + quoted + " is not name, name:tag or sha256:<hex>");
  }
  auto hex = ReadTagLocked(name, tag);
  if (!hex) {
    if (hex.error().code == ErrorCode::kNotFound) {
      return NotFound("image " + quoted + " not found; " + DescribeImagesLocked());
    }
    return std::unexpected(hex.error());
  }
  auto record = LoadImage(*hex);
  if (!record) return std::unexpected(record.error());
  record->name = name;
  record->tag = tag;
  return record;
}

Result<std::vector<ImageRecord>> ImageStore::List() const {
  std::lock_guard lock(mu_);
  std::vector<ImageRecord> out;
  std::set<std::string> tagged;
  auto tags = ListTagsLocked();
  if (!tags) return std::unexpected(tags.error());
  for (const auto& [name, tag] : *tags) {
    auto hex = ReadTagLocked(name, tag);
    if (!hex) return std::unexpected(hex.error());
    auto record = LoadImage(*hex);
    if (!record) return std::unexpected(record.error());
    record->name = name;
    record->tag = tag;
    tagged.insert(*hex);
    out.push_back(std::move(*record));
  }
  auto all = ListImageHexLocked();
  if (!all) return std::unexpected(all.error());
  for (const auto& hex : *all) {
    if (tagged.contains(hex)) continue;
    auto record = LoadImage(hex);
    if (!record) return std::unexpected(record.error());
    out.push_back(std::move(*record));
  }
  return out;
}

}  // namespace phoenix::agent
