// Test helper: a fresh directory under the system temp dir, removed with everything in it (also
// read-only trees, such as image store blobs) when the object goes away. Test code only.
#pragma once

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include "proto/support/error.h"

namespace phoenix::agent::testing {

class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "phoenix-test") {
    std::string templ =
        (std::filesystem::temp_directory_path() / (std::string(prefix) + ".XXXXXX")).string();
    PHX_CHECK(mkdtemp(templ.data()) != nullptr);
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(path_, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_symlink() && it->is_directory()) ::chmod(it->path().c_str(), 0700);
    }
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace phoenix::agent::testing
