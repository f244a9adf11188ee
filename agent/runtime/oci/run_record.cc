#include "agent/runtime/oci/run_record.h"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace phoenix::agent::oci {

namespace fs = std::filesystem;

namespace {

template <typename T>
bool ParseUint(std::string_view s, T& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

std::string FormatRunRecord(const RunRecord& r) {
  return fmt::format(
      "instance={}\nguest_id={}\noci={}\nbundle={}\nnetns={}\ncgroups_path={}\nmemory_mib={}\n"
      "init_start_time={}\nuserns_base={}\naddress={}\n",
      r.instance, r.guest_id, r.oci, r.bundle.string(), r.netns.string(), r.cgroups_path,
      r.memory_mib, r.init_start_time, r.userns_base, r.address);
}

Result<RunRecord> ParseRunRecord(std::string_view text) {
  RunRecord r;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? nl : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    if (line.empty()) continue;
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      return InvalidArgument("run_record", fmt::format("line without '=': {}", line));
    }
    std::string_view key = line.substr(0, eq), value = line.substr(eq + 1);
    bool ok = true;
    if (key == "instance") {
      r.instance = value;
    } else if (key == "guest_id") {
      r.guest_id = value;
    } else if (key == "oci") {
      r.oci = value;
    } else if (key == "bundle") {
      r.bundle = value;
    } else if (key == "netns") {
      r.netns = value;
    } else if (key == "cgroups_path") {
      r.cgroups_path = value;
    } else if (key == "memory_mib") {
      ok = ParseUint(value, r.memory_mib);
    } else if (key == "init_start_time") {
      ok = ParseUint(value, r.init_start_time);
    } else if (key == "userns_base") {
      ok = ParseUint(value, r.userns_base);
    } else if (key == "address") {
      r.address = value;
    }
    if (!ok) return InvalidArgument("run_record", fmt::format("bad value for {}: {}", key, value));
  }
  if (r.instance.empty()) return InvalidArgument("run_record", "no instance");
  return r;
}

Result<void> WriteRunRecord(const fs::path& file, const RunRecord& record) {
  const fs::path tmp = file.string() + ".tmp";
  const std::string text = FormatRunRecord(record);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError("creating " + tmp.string());
  ssize_t n = ::write(fd, text.data(), text.size());
  int err = errno;
  if (n != static_cast<ssize_t>(text.size()) || ::fsync(fd) != 0) {
    if (n >= 0) err = n != static_cast<ssize_t>(text.size()) ? EIO : errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return ErrnoError("writing " + tmp.string(), err);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), file.c_str()) != 0) {
    err = errno;
    ::unlink(tmp.c_str());
    return ErrnoError("renaming " + tmp.string(), err);
  }
  return {};
}

Result<RunRecord> ReadRunRecord(const fs::path& file) {
  std::ifstream f(file);
  if (!f) {
    if (errno == ENOENT) return NotFound("no run record " + file.string());
    return ErrnoError("reading " + file.string());
  }
  std::stringstream ss;
  ss << f.rdbuf();
  auto r = ParseRunRecord(ss.str());
  if (!r) return std::unexpected(r.error().Wrap(file.string()));
  return r;
}

uint64_t ProcessStartTime(int pid) {
  std::ifstream f(fmt::format("/proc/{}/stat", pid));
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(stat.substr(close + 1));
  std::string field;
  // After ')': field 3 (state) ... starttime is field 22, the 20th token.
  for (int i = 0; i < 20; ++i) {
    if (!(in >> field)) return 0;
  }
  uint64_t v = 0;
  return ParseUint(std::string_view(field), v) ? v : 0;
}

}  // namespace phoenix::agent::oci
