// ImageStore: the agent's content-addressed store of golden images (`<state>/images`). It imports
// the output of an image recipe (artifacts + manifest.env, see manifest.h), or builds a recipe and
// imports the result, and resolves image references for the runtimes.
//
// On-disk layout (docs: see the comment at the top of image_store.cc):
//   blobs/sha256/<hex>       one artifact, read-only; for a ROOTFS, a directory tree (modes kept)
//   manifests/sha256/<hex>   the image manifest; <hex> is the sha256 of this file, the image id
//   tags/<name>/<tag>        "sha256:<hex>\n": which image a name:tag means
//   tmp/                     partial blobs, build output; emptied by Open
// Blobs and manifests are immutable once renamed into place; a tag is written last with an atomic
// replace after everything it points at is durable, so a crash mid-import never leaves a tag
// pointing at an incomplete image. Importing identical content is idempotent (same id, no copy).
//
// Ownership and threading: one ImageStore per root per host (Open takes an exclusive lock on the
// root and fails while another ImageStore holds it). All methods are thread-safe; Import and Build
// may run concurrently with each other and with Resolve/List (the mutex guards manifests and tags,
// never the long copy or the recipe run). Build and Import block: call them from a worker pool.
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "agent/guest/guest.h"
#include "agent/image/manifest.h"
#include "agent/image/tree.h"
#include "agent/runtime/runtime.h"
#include "proto/support/error.h"

namespace phoenix::agent {

struct ImageRecord {
  std::string id;    // "sha256:<hex>"
  std::string name;  // empty for an image no tag points at any more
  std::string tag;
  TimePoint created_at{};  // when the image (its manifest) was first stored
  std::vector<RuntimeKind> runtimes;
  ImageArtifacts artifacts;  // absolute blob paths
  struct File {
    std::string kind;    // "kernel", "initrd", "disk", "rootfs"
    std::string path;    // absolute blob path
    uint64_t size = 0;   // bytes; for rootfs the sum of its regular files
    std::string sha256;  // hex; for rootfs the tree hash
    bool operator==(const File&) const = default;
  };
  std::vector<File> files;
};

class ImageStore {
 public:
  static constexpr std::string_view kDefaultTag = "latest";

  struct Options {
    // A recipe still running after this is killed (with its process group) and the build fails.
    std::chrono::seconds build_timeout{1800};
  };

  [[nodiscard]] static Result<std::unique_ptr<ImageStore>> Open(const std::filesystem::path& root);
  [[nodiscard]] static Result<std::unique_ptr<ImageStore>> Open(const std::filesystem::path& root,
                                                                const Options& options);
  ~ImageStore();
  ImageStore(const ImageStore&) = delete;
  ImageStore& operator=(const ImageStore&) = delete;

  // Imports the recipe output in `dir` and points name:tag at it. An empty `name` takes the
  // manifest's NAME; an empty `tag` means "latest". The source directory is left untouched.
  [[nodiscard]] Result<ImageRecord> Import(const std::filesystem::path& dir,
                                           const std::string& name, const std::string& tag);

  // Resolves "name" (tag latest), "name:tag" or "sha256:<hex>" (64 hex digits or a unique prefix of
  // at least 12). kNotFound names the ref and lists the images that exist.
  [[nodiscard]] Result<ImageRecord> Resolve(std::string_view ref) const;

  // One record per tag (sorted by name, tag), then untagged images (by id).
  [[nodiscard]] Result<std::vector<ImageRecord>> List() const;

  // Runs `<recipes_dir>/<recipe>/build.sh <out dir>` with stdout and stderr delivered line by line
  // to `on_line` (on the calling thread), imports the output as name:tag and removes it. A failing
  // recipe yields an error with its exit status and last output lines.
  [[nodiscard]] Result<ImageRecord> Build(
      const std::filesystem::path& recipes_dir, const std::string& recipe, const std::string& name,
      const std::string& tag, const std::function<void(std::string_view line)>& on_line);

  const std::filesystem::path& root() const { return root_; }

 private:
  struct StoredBlob {
    std::string hex;
    uint64_t size = 0;
  };

  ImageStore(std::filesystem::path root, int lock_fd, Options options);

  Result<ImageRecord> ImportInternal(const std::filesystem::path& dir, const std::string& name,
                                     const std::string& tag, bool may_link);
  // Both read `rel` beneath the import directory `dir` (open as dir_fd), never outside it.
  Result<StoredBlob> StoreFile(int dir_fd, const std::filesystem::path& dir,
                               const std::filesystem::path& rel, bool may_link);
  Result<StoredBlob> StoreTree(int dir_fd, const std::filesystem::path& dir,
                               const std::filesystem::path& rel);
  Result<std::string> StoreManifest(const std::string& text);  // returns the hex id
  Result<void> WriteTag(const std::string& name, const std::string& tag, const std::string& id);
  Result<ImageRecord> LoadImage(const std::string& hex) const;
  Result<std::vector<std::pair<std::string, std::string>>> ListTagsLocked() const;  // name, tag
  Result<std::string> ReadTagLocked(const std::string& name, const std::string& tag) const;
  Result<std::vector<std::string>> ListImageHexLocked() const;
  Result<ImageRecord> ResolveLocked(std::string_view ref) const;
  Result<std::filesystem::path> MakeTempPath(std::string_view prefix) const;
  std::string DescribeImagesLocked() const;

  const std::filesystem::path root_;
  const int lock_fd_;
  const Options options_;
  mutable std::mutex mu_;  // guards manifests/ and tags/ reads and writes
};

}  // namespace phoenix::agent
