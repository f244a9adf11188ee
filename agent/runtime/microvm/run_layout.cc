#include "agent/runtime/microvm/run_layout.h"

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <charconv>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace phoenix::agent::microvm {

namespace fs = std::filesystem;

fs::path RunLayout::GoldenDir(const std::string& key) const { return state_dir / "golden" / key; }
fs::path RunLayout::GoldenBootLog(const std::string& key) const {
  return state_dir / "golden" / (key + ".boot.log");
}
fs::path RunLayout::GoldenTemp(const std::string& key, uint64_t attempt) const {
  return state_dir / "golden" / fmt::format(".tmp-{}-{}", key, attempt);
}
bool RunLayout::IsGoldenTempOf(const fs::path& dir, const std::string& key) const {
  return dir.parent_path() == state_dir / "golden" &&
         dir.filename().string().starts_with(".tmp-" + key + "-");
}
fs::path RunLayout::RunDir(const std::string& instance) const {
  return state_dir / "run" / instance;
}
fs::path RunLayout::RecordFile(const std::string& instance) const {
  return RunDir(instance) / "record";
}
fs::path RunLayout::ControlSocket(const std::string& instance) const {
  return RunDir(instance) / "control.sock";
}
fs::path RunLayout::VmmLog(const std::string& instance) const {
  return RunDir(instance) / "vmm.log";
}
fs::path RunLayout::NetnsFile(const std::string& instance) const {
  return state_dir / "netns" / instance;
}

std::string FormatInstanceRecord(const InstanceRecord& r) {
  return fmt::format("instance={}\nguest_id={}\nnetns={}\ngolden={}\npid={}\nstart_time={}\n",
                     r.instance, r.guest_id, r.netns.string(), r.golden, r.pid, r.start_time);
}

Result<InstanceRecord> ParseInstanceRecord(std::string_view text) {
  InstanceRecord r;
  std::istringstream in{std::string(text)};
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    auto eq = line.find('=');
    if (eq == std::string::npos) return Internal("instance record: bad line \"" + line + "\"");
    std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    auto number = [&](auto& out) -> Result<void> {
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
      if (ec != std::errc() || end != value.data() + value.size()) {
        return Internal("instance record: bad " + key + " \"" + value + "\"");
      }
      return {};
    };
    if (key == "instance")
      r.instance = value;
    else if (key == "guest_id")
      r.guest_id = value;
    else if (key == "netns")
      r.netns = value;
    else if (key == "golden")
      r.golden = value;
    else if (key == "pid")
      PHX_TRY(number(r.pid));
    else if (key == "start_time")
      PHX_TRY(number(r.start_time));
  }
  if (!ValidInstanceName(r.instance)) {
    return Internal("instance record: bad instance name \"" + r.instance + "\"");
  }
  return r;
}

Result<void> WriteInstanceRecord(const fs::path& file, const InstanceRecord& record) {
  const fs::path tmp = file.string() + ".tmp";
  const std::string text = FormatInstanceRecord(record);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError("creating " + tmp.string());
  ssize_t n = ::write(fd, text.data(), text.size());
  int err = errno;
  bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size()) || !synced) {
    ::unlink(tmp.c_str());
    return ErrnoError("writing " + tmp.string(), err);
  }
  if (::rename(tmp.c_str(), file.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return ErrnoError("renaming " + tmp.string(), e);
  }
  return {};
}

Result<InstanceRecord> ReadInstanceRecord(const fs::path& file) {
  std::ifstream f(file);
  if (!f) {
    if (errno == ENOENT) return NotFound("no instance record " + file.string());
    return ErrnoError("reading " + file.string());
  }
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto r = ParseInstanceRecord(text);
  if (!r) return std::unexpected(r.error().Wrap(file.string()));
  return r;
}

bool ValidInstanceName(std::string_view name) {
  if (!name.starts_with("phx-") || name.size() > 64) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

}  // namespace phoenix::agent::microvm
