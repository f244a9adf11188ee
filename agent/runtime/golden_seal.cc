#include "agent/runtime/golden_seal.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <fstream>
#include <optional>
#include <sstream>

#include "agent/image/tree.h"
#include "proto/support/pki.h"

namespace phoenix::agent {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kSealHeader = "phoenix-golden-seal-v1";

bool PlainName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.size() <= 255 &&
         name.find_first_of("/ \n") == std::string::npos;
}

struct SealedFile {
  std::string digest;
  uint64_t size = 0;
  std::string name;
};

Result<SealedFile> Measure(const fs::path& dir, const std::string& name) {
  std::error_code ec;
  const fs::path file = dir / name;
  auto status = fs::symlink_status(file, ec);
  if (ec || !fs::is_regular_file(status)) {
    return FailedPrecondition(file.string() + " is missing or not a regular file");
  }
  uint64_t size = fs::file_size(file, ec);
  if (ec) return Internal("size of " + file.string() + ": " + ec.message());
  auto digest = HashFile(file);
  if (!digest) return std::unexpected(digest.error());
  return SealedFile{*digest, size, name};
}

}  // namespace

Result<void> SealGolden(const fs::path& dir, const std::vector<std::string>& files) {
  if (files.empty()) return InvalidArgument("files", "a seal needs at least one file");
  std::string seal = std::string(kSealHeader) + "\n";
  for (const auto& name : files) {
    if (!PlainName(name)) return InvalidArgument("files", "not a plain file name: " + name);
    auto measured = Measure(dir, name);
    if (!measured) return std::unexpected(measured.error().Wrap("sealing " + dir.string()));
    seal += fmt::format("sha256 {} {} {}\n", measured->digest, measured->size, name);
  }
  return pki::WriteFileAtomic(dir / kGoldenSealFile, seal, 0644);
}

Result<void> VerifyGoldenSeal(const fs::path& dir) {
  const fs::path seal_path = dir / kGoldenSealFile;
  std::ifstream in(seal_path);
  if (!in) return FailedPrecondition("no " + seal_path.string() + " (unsealed snapshot)");
  std::string line;
  if (!std::getline(in, line) || line != kSealHeader) {
    return FailedPrecondition(seal_path.string() + " is not a golden seal");
  }
  size_t checked = 0;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string algorithm, name;
    SealedFile want;
    if (!(fields >> algorithm >> want.digest >> want.size >> name) || algorithm != "sha256" ||
        !PlainName(name) || checked >= 64) {
      return FailedPrecondition(seal_path.string() + ": malformed line '" + line + "'");
    }
    auto got = Measure(dir, name);
    if (!got) return std::unexpected(got.error());
    if (got->size != want.size) {
      return FailedPrecondition(fmt::format("{} has {} bytes, sealed with {}",
                                            (dir / name).string(), got->size, want.size));
    }
    if (got->digest != want.digest) {
      return FailedPrecondition(fmt::format("{} has sha256 {}, sealed with {}",
                                            (dir / name).string(), got->digest, want.digest));
    }
    ++checked;
  }
  if (checked == 0) return FailedPrecondition(seal_path.string() + " seals no file");
  return {};
}

Result<GoldenIdentity> IdentifyGolden(const fs::path& dir) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return ErrnoError("stat of " + dir.string());
  if (!S_ISDIR(st.st_mode)) return FailedPrecondition(dir.string() + " is not a directory");
  return GoldenIdentity{st.st_dev, st.st_ino};
}

Result<fs::path> GoldenVerifier::SetAside(const fs::path& dir, const GoldenIdentity& identity) {
  std::lock_guard lock(mu_);
  if (auto it = verified_.find(dir); it != verified_.end() && it->second == identity) {
    verified_.erase(it);
  }
  auto now = IdentifyGolden(dir);
  if (!now || *now != identity) return fs::path();
  const fs::path aside = dir.parent_path() / (".bad-" + dir.filename().string());
  std::error_code ec;
  fs::remove_all(aside, ec);
  if (ec) return Internal("removing " + aside.string() + ": " + ec.message());
  fs::rename(dir, aside, ec);
  if (ec)
    return Internal("renaming " + dir.string() + " to " + aside.string() + ": " + ec.message());
  return aside;
}

Result<GoldenIdentity> GoldenVerifier::VerifyOnce(const fs::path& dir) {
  std::lock_guard lock(mu_);
  auto identity = IdentifyGolden(dir);
  if (!identity) return std::unexpected(identity.error());
  if (auto it = verified_.find(dir); it != verified_.end() && it->second == *identity) {
    return *identity;
  }
  verified_.erase(dir);
  if (auto r = VerifyGoldenSeal(dir); !r) return std::unexpected(r.error());
  verified_[dir] = *identity;
  return *identity;
}

std::string GoldenVerifier::Discard(const fs::path& dir, std::string_view key, std::string_view why,
                                    const GoldenIdentity* identity) {
  std::string problem = fmt::format("golden snapshot {}: {}", key, why);
  std::optional<GoldenIdentity> id;
  if (identity != nullptr) {
    id = *identity;
  } else if (auto now = IdentifyGolden(dir); now) {
    id = *now;
  }
  if (!id) return problem + "; it is gone already";
  auto aside = SetAside(dir, *id);
  if (!aside) {
    spdlog::error("{}; setting it aside failed: {}", problem, aside.error().message);
    return problem + "; setting it aside failed: " + aside.error().message;
  }
  spdlog::warn("{}; set aside as {}", problem, aside->empty() ? "(already)" : aside->string());
  return problem + (aside->empty() ? "" : "; set aside as " + aside->string());
}

}  // namespace phoenix::agent
