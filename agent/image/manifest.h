// Image recipe manifests: parsing and validating the `manifest.env` an image recipe writes beside
// its artifacts (format 1, documented below). Pure functions except LoadImageManifest, which reads
// the file and checks that the artifacts it names exist.
//
//   PHOENIX_IMAGE_FORMAT=1          required; the only format this agent reads
//   NAME=demo                       required; the image's default name ([a-z0-9][a-z0-9._-]*)
//   KERNEL=vmlinux                  required; file, relative to the manifest
//   INITRD=initrd.img               required; file
//   DISK=disk.qcow2                 optional; file
//   ROOTFS=rootfs                   optional; directory; required when RUNTIMES has "container"
//   CMDLINE=console=ttyS0 quiet     optional; kernel command line
//   READY_MARKER=PHOENIX-READY      optional; console line meaning "booted"
//   COMMAND=/bin/demo-web --flag    optional; container command, split on spaces and tabs
//   RUNTIMES=vm,microvm,container   required; comma-separated, at least one
//
// One KEY=value per line; the value is the rest of the line, taken verbatim. Blank lines and lines
// starting with `#` are ignored. An unknown or repeated key is an error naming it: new keys come
// with a new format number. Artifact names must stay inside the manifest's directory.
//
// Thread-safety: plain values and functions without shared state.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "agent/guest/guest.h"
#include "proto/support/error.h"

namespace phoenix::agent {

inline constexpr int kImageManifestFormat = 1;
inline constexpr std::string_view kImageManifestFileName = "manifest.env";

struct ImageManifest {
  int format = kImageManifestFormat;
  std::string name;
  std::string kernel;  // paths relative to the manifest's directory
  std::string initrd;
  std::string disk;    // empty: none
  std::string rootfs;  // empty: none
  std::string cmdline;
  std::string ready_marker;
  std::vector<std::string> command;
  std::vector<RuntimeKind> runtimes;
  bool operator==(const ImageManifest&) const = default;
};

// Parses and validates manifest text. Errors are kInvalidArgument naming the line or the key.
[[nodiscard]] Result<ImageManifest> ParseImageManifest(std::string_view text);

// Reads `<dir>/manifest.env`, parses it and checks that every artifact exists with the right type
// (KERNEL/INITRD/DISK regular files, ROOTFS a directory). A missing artifact is kNotFound naming
// the key and the path.
[[nodiscard]] Result<ImageManifest> LoadImageManifest(const std::filesystem::path& dir);

// Parses "vm" / "microvm" / "container".
[[nodiscard]] Result<RuntimeKind> ParseRuntimeKind(std::string_view text);

// Whether `name` is a valid image name: [a-z0-9][a-z0-9._-]*, at most 128 characters.
bool IsValidImageName(std::string_view name);
// Whether `tag` is a valid tag: [A-Za-z0-9_][A-Za-z0-9._-]*, at most 128 characters.
bool IsValidImageTag(std::string_view tag);

}  // namespace phoenix::agent
