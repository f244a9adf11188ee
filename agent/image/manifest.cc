#include "agent/image/manifest.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

namespace phoenix::agent {
namespace {

constexpr std::string_view kKnownKeys[] = {
    "PHOENIX_IMAGE_FORMAT", "NAME",    "KERNEL",  "INITRD", "DISK", "ROOTFS", "CMDLINE",
    "READY_MARKER",         "COMMAND", "RUNTIMES"};

std::unexpected<Error> Bad(std::string message) {
  return MakeError(ErrorCode::kInvalidArgument, "manifest.env: " + std::move(message));
}

bool IsKeyChar(char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; }

bool IsBlank(std::string_view s) { return s.find_first_not_of(" \t") == std::string_view::npos; }

std::string_view Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

// Artifact names are relative and stay inside the recipe's output dir, so an import never reads
// (and stores) files the recipe did not produce.
Result<void> CheckArtifactName(std::string_view key, std::string_view value) {
  if (value.empty()) return Bad(std::string(key) + " is empty");
  std::filesystem::path p{std::string(value)};
  if (p.is_absolute()) {
    return Bad(std::string(key) + "=" + std::string(value) +
               ": must be relative to the manifest's directory");
  }
  for (const auto& part : p) {
    if (part == "..") {
      return Bad(std::string(key) + "=" + std::string(value) +
                 ": must not leave the manifest's directory");
    }
  }
  if (p.lexically_normal() == ".") {
    return Bad(std::string(key) + "=" + std::string(value) + ": names the directory itself");
  }
  return {};
}

}  // namespace

bool IsValidImageName(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  auto ok_first = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!ok_first(name[0])) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return ok_first(c) || c == '.' || c == '_' || c == '-'; });
}

bool IsValidImageTag(std::string_view tag) {
  if (tag.empty() || tag.size() > 128) return false;
  auto ok = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  };
  if (!ok(tag[0])) return false;
  return std::all_of(tag.begin(), tag.end(), [&](char c) { return ok(c) || c == '.' || c == '-'; });
}

Result<RuntimeKind> ParseRuntimeKind(std::string_view text) {
  if (text == "vm") return RuntimeKind::kVm;
  if (text == "microvm") return RuntimeKind::kMicroVm;
  if (text == "container") return RuntimeKind::kContainer;
  return InvalidArgument("runtime", "unknown runtime \"" + std::string(text) +
                                        "\" (expected vm, microvm or container)");
}

Result<ImageManifest> ParseImageManifest(std::string_view text) {
  std::map<std::string, std::string, std::less<>> values;
  size_t line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (IsBlank(line) || Trim(line).starts_with('#')) continue;
    size_t eq = line.find('=');
    std::string_view key = line.substr(0, eq);
    if (eq == std::string_view::npos || key.empty() ||
        !std::all_of(key.begin(), key.end(), IsKeyChar)) {
      return Bad("line " + std::to_string(line_no) + ": expected KEY=value, got \"" +
                 std::string(line) + "\"");
    }
    if (values.contains(key)) {
      return Bad("line " + std::to_string(line_no) + ": " + std::string(key) + " appears twice");
    }
    values.emplace(std::string(key), std::string(line.substr(eq + 1)));
  }

  // The format decides which keys exist, so check it before judging any other key.
  auto format_it = values.find("PHOENIX_IMAGE_FORMAT");
  if (format_it == values.end()) return Bad("PHOENIX_IMAGE_FORMAT is missing");
  ImageManifest m;
  {
    std::string_view f = Trim(format_it->second);
    auto [end, ec] = std::from_chars(f.data(), f.data() + f.size(), m.format);
    if (ec != std::errc() || end != f.data() + f.size()) {
      return Bad("PHOENIX_IMAGE_FORMAT=" + format_it->second + " is not a number");
    }
    if (m.format != kImageManifestFormat) {
      return Bad("unsupported PHOENIX_IMAGE_FORMAT=" + std::to_string(m.format) +
                 " (this phoenix-agent reads format " + std::to_string(kImageManifestFormat) + ")");
    }
  }
  for (const auto& [key, value] : values) {
    if (std::find(std::begin(kKnownKeys), std::end(kKnownKeys), key) == std::end(kKnownKeys)) {
      return Bad("unknown key " + key + " (format " + std::to_string(kImageManifestFormat) +
                 " knows PHOENIX_IMAGE_FORMAT, NAME, KERNEL, INITRD, DISK, ROOTFS, CMDLINE, "
                 "READY_MARKER, COMMAND, RUNTIMES)");
    }
  }
  auto get = [&](std::string_view key) -> std::string {
    auto it = values.find(key);
    return it == values.end() ? std::string() : it->second;
  };
  for (std::string_view key : {"NAME", "KERNEL", "INITRD", "RUNTIMES"}) {
    if (!values.contains(key)) return Bad(std::string(key) + " is missing");
  }

  m.name = get("NAME");
  if (!IsValidImageName(m.name)) {
    return Bad("NAME=" + m.name + ": must match [a-z0-9][a-z0-9._-]* (at most 128 characters)");
  }
  m.kernel = get("KERNEL");
  m.initrd = get("INITRD");
  m.disk = get("DISK");
  m.rootfs = get("ROOTFS");
  PHX_TRY(CheckArtifactName("KERNEL", m.kernel));
  PHX_TRY(CheckArtifactName("INITRD", m.initrd));
  if (values.contains("DISK")) PHX_TRY(CheckArtifactName("DISK", m.disk));
  if (values.contains("ROOTFS")) PHX_TRY(CheckArtifactName("ROOTFS", m.rootfs));
  m.cmdline = get("CMDLINE");
  m.ready_marker = get("READY_MARKER");

  const std::string command_value = get("COMMAND");
  std::string_view command = command_value;
  for (;;) {
    size_t b = command.find_first_not_of(" \t");
    if (b == std::string_view::npos) break;
    size_t e = command.find_first_of(" \t", b);
    m.command.emplace_back(command.substr(b, e == std::string_view::npos ? e : e - b));
    if (e == std::string_view::npos) break;
    command = command.substr(e);
  }

  std::string runtimes = get("RUNTIMES");
  std::string_view rest = runtimes;
  for (;;) {
    size_t comma = rest.find(',');
    std::string_view item = Trim(rest.substr(0, comma));
    if (item.empty()) return Bad("RUNTIMES=" + runtimes + ": empty entry");
    auto kind = ParseRuntimeKind(item);
    if (!kind) return Bad("RUNTIMES=" + runtimes + ": " + kind.error().message);
    if (std::find(m.runtimes.begin(), m.runtimes.end(), *kind) != m.runtimes.end()) {
      return Bad("RUNTIMES=" + runtimes + ": \"" + std::string(item) + "\" appears twice");
    }
    m.runtimes.push_back(*kind);
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  bool container =
      std::find(m.runtimes.begin(), m.runtimes.end(), RuntimeKind::kContainer) != m.runtimes.end();
  if (container && m.rootfs.empty()) {
    return Bad("RUNTIMES includes container but ROOTFS is missing");
  }
  return m;
}

Result<ImageManifest> LoadImageManifest(const std::filesystem::path& dir) {
  std::filesystem::path file = dir / kImageManifestFileName;
  std::error_code ec;
  if (std::filesystem::is_symlink(std::filesystem::symlink_status(file, ec))) {
    return InvalidArgument(std::string(kImageManifestFileName),
                           file.string() + " is a symlink; the manifest must be a regular file");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    int err = errno;
    if (err == ENOENT) {
      return NotFound("image manifest " + file.string() + " does not exist");
    }
    // The caller named something that is no image directory: their input, not our failure.
    if (err == ENOTDIR || err == EISDIR || err == ELOOP || err == ENAMETOOLONG) {
      return InvalidArgument(
          "directory",
          dir.string().substr(0, 256) + " is not an image directory (" + std::strerror(err) + ")");
    }
    if (err == EACCES) {
      return MakeError(ErrorCode::kPermissionDenied,
                       "reading " + file.string() + ": " + std::strerror(err));
    }
    return ErrnoError("reading " + file.string(), err);
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return ErrnoError("reading " + file.string());
  auto m = ParseImageManifest(buffer.str());
  if (!m) return std::unexpected(m.error().Wrap(dir.string()));

  struct Artifact {
    std::string_view key;
    const std::string& name;
    bool directory;
  };
  const Artifact artifacts[] = {{"KERNEL", m->kernel, false},
                                {"INITRD", m->initrd, false},
                                {"DISK", m->disk, false},
                                {"ROOTFS", m->rootfs, true}};
  for (const auto& a : artifacts) {
    if (a.name.empty()) continue;
    std::filesystem::path p = dir / a.name;
    struct stat st {};
    // stat follows symlinks: a recipe may link an artifact from elsewhere in its output.
    if (stat(p.c_str(), &st) != 0) {
      int err = errno;
      if (err == ENOENT) {
        return NotFound(std::string(a.key) + " file " + p.string() +
                        " named by the image manifest does not exist");
      }
      return ErrnoError("checking " + std::string(a.key) + " " + p.string(), err);
    }
    if (a.directory && !S_ISDIR(st.st_mode)) {
      return InvalidArgument("", std::string(a.key) + " " + p.string() + " is not a directory");
    }
    if (!a.directory && !S_ISREG(st.st_mode)) {
      return InvalidArgument("", std::string(a.key) + " " + p.string() + " is not a regular file");
    }
  }
  return m;
}

}  // namespace phoenix::agent
