#include "agent/image/tree.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>

#include <algorithm>
#include <cstdio>

#include <spdlog/spdlog.h>

namespace phoenix::agent::image_fs {

namespace fs = std::filesystem;

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  PHX_CHECK(ctx_ != nullptr);
  PHX_CHECK(EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) == 1);
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::Update(std::string_view data) {
  PHX_CHECK(EVP_DigestUpdate(ctx_, data.data(), data.size()) == 1);
}

std::string Sha256::HexDigest() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  PHX_CHECK(EVP_DigestFinal_ex(ctx_, md, &len) == 1);
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex.push_back(kDigits[md[i] >> 4]);
    hex.push_back(kDigits[md[i] & 0xf]);
  }
  return hex;
}

Result<void> WriteAll(int fd, std::string_view data, const fs::path& what) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("writing " + what.string());
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

Result<uint64_t> HashAndCopy(int fd, const fs::path& src, Sha256& hash, int out_fd,
                             const fs::path& dst) {
  std::vector<char> buf(1 << 20);
  uint64_t total = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("reading " + src.string());
    }
    if (n == 0) break;
    std::string_view chunk(buf.data(), static_cast<size_t>(n));
    hash.Update(chunk);
    if (out_fd >= 0) PHX_TRY(WriteAll(out_fd, chunk, dst));
    total += static_cast<uint64_t>(n);
  }
  return total;
}

Result<UniqueFd> OpenBeneath(int dir_fd, const fs::path& rel, int flags) {
  open_how how{};
  // No O_NOFOLLOW: RESOLVE_NO_SYMLINKS already refuses a link in any component, the last one
  // included, with ELOOP (O_NOFOLLOW would turn that into ENOTDIR for O_DIRECTORY).
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  for (;;) {
    long fd = ::syscall(SYS_openat2, dir_fd, rel.c_str(), &how, sizeof(how));
    if (fd >= 0) return UniqueFd(static_cast<int>(fd));
    if (errno == EINTR || errno == EAGAIN) continue;
    if (errno == EXDEV || errno == ELOOP) {
      return InvalidArgument(rel.string(),
                             "leaves the image directory or passes through a symlink; an image "
                             "may only name files inside its own directory");
    }
    return ErrnoError("opening " + rel.string());
  }
}

mode_t StoredMode(mode_t st_mode) {
  mode_t bits = st_mode & 07777;
  if (S_ISREG(st_mode)) bits &= ~static_cast<mode_t>(S_ISUID | S_ISGID);
  return bits;
}

Result<std::vector<TreeEntry>> ListTree(const fs::path& dir) {
  std::vector<TreeEntry> entries;
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return ErrnoError("stat " + dir.string());
  if (!S_ISDIR(st.st_mode)) return InvalidArgument("", dir.string() + " is not a directory");
  entries.push_back({".", st.st_mode});
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const fs::path& p = it->path();
    if (::lstat(p.c_str(), &st) != 0) return ErrnoError("lstat " + p.string());
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
      return InvalidArgument("", p.string() +
                                     ": only directories, regular files and symlinks can be part "
                                     "of an image root filesystem");
    }
    entries.push_back({p.lexically_relative(dir).generic_string(), st.st_mode});
  }
  if (ec) return Internal("walking " + dir.string() + ": " + ec.message());
  // Byte order of the relative paths: a parent always sorts before its children.
  std::sort(entries.begin() + 1, entries.end(),
            [](const TreeEntry& a, const TreeEntry& b) { return a.rel < b.rel; });
  return entries;
}

namespace {

Result<std::string> ReadLinkBeneath(int dir_fd, const std::string& rel) {
  // The link's parent, opened beneath the root, then the link itself by its last name.
  const fs::path path(rel);
  UniqueFd parent;
  int at = dir_fd;
  if (path.has_parent_path()) {
    auto opened = OpenBeneath(dir_fd, path.parent_path(), O_PATH | O_DIRECTORY);
    if (!opened) return std::unexpected(opened.error());
    parent = std::move(*opened);
    at = parent.get();
  }
  std::string target(4096, '\0');
  ssize_t n = ::readlinkat(at, path.filename().c_str(), target.data(), target.size());
  if (n < 0) return ErrnoError("readlink " + rel);
  if (static_cast<size_t>(n) == target.size()) return Internal(rel + ": symlink too long");
  target.resize(static_cast<size_t>(n));
  return target;
}

// The root itself is the caller's choice (a /proc/self/fd/N link to a directory opened beneath the
// import dir, or the store's own copy), so it may be reached through a link.
Result<UniqueFd> OpenRoot(const fs::path& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoError("opening " + dir.string());
  return fd;
}

std::string LengthPrefixed(std::string_view s) {
  return std::to_string(s.size()) + ":" + std::string(s);
}

std::string FormatMode(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(mode));
  return buf;
}

}  // namespace

Result<void> CopyTree(const fs::path& src, const fs::path& dst,
                      const std::vector<TreeEntry>& entries) {
  auto root = OpenRoot(src);
  if (!root) return std::unexpected(root.error());
  for (const auto& e : entries) {
    if (e.rel == ".") continue;
    fs::path to = dst / e.rel;
    if (S_ISDIR(e.mode)) {
      // Owner-writable until everything below exists; the real mode is set afterwards.
      if (::mkdir(to.c_str(), 0700) != 0) return ErrnoError("creating " + to.string());
    } else if (S_ISLNK(e.mode)) {
      auto target = ReadLinkBeneath(root->get(), e.rel);
      if (!target) return std::unexpected(target.error());
      if (::symlink(target->c_str(), to.c_str()) != 0) return ErrnoError("symlink " + to.string());
    } else {
      auto in = OpenBeneath(root->get(), e.rel, O_RDONLY);
      if (!in) return std::unexpected(in.error());
      UniqueFd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
      if (out.get() < 0) return ErrnoError("creating " + to.string());
      Sha256 unused;
      auto n = HashAndCopy(in->get(), src / e.rel, unused, out.get(), to);
      if (!n) return std::unexpected(n.error());
      if (::fchmod(out.get(), StoredMode(e.mode)) != 0) return ErrnoError("chmod " + to.string());
    }
  }
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    if (!S_ISDIR(it->mode)) continue;
    fs::path to = it->rel == "." ? dst : dst / it->rel;
    if (::chmod(to.c_str(), StoredMode(it->mode)) != 0) return ErrnoError("chmod " + to.string());
  }
  return {};
}

void RemoveTree(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(fs::symlink_status(path, ec))) {
    ::chmod(path.c_str(), 0700);
    for (auto it = fs::recursive_directory_iterator(path, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_directory(ec) && !it->is_symlink(ec)) ::chmod(it->path().c_str(), 0700);
    }
  }
  fs::remove_all(path, ec);
  if (ec) spdlog::warn("image store: removing {}: {}", path.string(), ec.message());
}

}  // namespace phoenix::agent::image_fs

namespace phoenix::agent {

using image_fs::HashAndCopy;
using image_fs::Sha256;
using image_fs::UniqueFd;

Result<std::string> HashFile(const std::filesystem::path& file) {
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoError("opening " + file.string());
  Sha256 h;
  auto n = HashAndCopy(fd.get(), file, h, -1, {});
  if (!n) return std::unexpected(n.error());
  return h.HexDigest();
}

Result<std::string> HashTree(const std::filesystem::path& dir, uint64_t* total_size) {
  auto entries = image_fs::ListTree(dir);
  if (!entries) return std::unexpected(entries.error());
  auto root = image_fs::OpenRoot(dir);
  if (!root) return std::unexpected(root.error());
  Sha256 tree;
  tree.Update("phoenix-tree-v1\n");
  uint64_t total = 0;
  for (const auto& e : *entries) {
    std::string payload;
    char type = 'd';
    if (S_ISLNK(e.mode)) {
      type = 'l';
      auto target = image_fs::ReadLinkBeneath(root->get(), e.rel);
      if (!target) return std::unexpected(target.error());
      payload = std::move(*target);
    } else if (S_ISREG(e.mode)) {
      type = 'f';
      auto fd = image_fs::OpenBeneath(root->get(), e.rel, O_RDONLY);
      if (!fd) return std::unexpected(fd.error());
      Sha256 h;
      auto n = HashAndCopy(fd->get(), dir / e.rel, h, -1, {});
      if (!n) return std::unexpected(n.error());
      total += *n;
      payload = h.HexDigest();
    }
    // Length prefixes keep the encoding unambiguous whatever bytes a name or target holds.
    tree.Update(std::string(1, type) + " " + image_fs::FormatMode(image_fs::StoredMode(e.mode)) +
                " " + image_fs::LengthPrefixed(e.rel) + " " + image_fs::LengthPrefixed(payload) +
                "\n");
  }
  if (total_size != nullptr) *total_size = total;
  return tree.HexDigest();
}

}  // namespace phoenix::agent
