#include "agent/node/node_info.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <unistd.h>

#include <charconv>
#include <fstream>
#include <sstream>

namespace phoenix::agent {

Result<uint64_t> ParseMemTotalMib(std::string_view meminfo) {
  constexpr std::string_view kKey = "MemTotal:";
  size_t pos = meminfo.find(kKey);
  if (pos == std::string_view::npos) return Internal("/proc/meminfo has no MemTotal line");
  std::string_view rest = meminfo.substr(pos + kKey.size());
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  uint64_t kib = 0;
  auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), kib);
  if (ec != std::errc() || std::string_view(end, 3) != " kB") {
    return Internal("cannot parse MemTotal in /proc/meminfo");
  }
  return kib / 1024;
}

Result<HostCapacity> ReadHostCapacity() {
  HostCapacity c;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus < 1) return ErrnoError("sysconf(_SC_NPROCESSORS_ONLN)");
  c.vcpus = static_cast<uint32_t>(cpus);
  std::ifstream in("/proc/meminfo");
  if (!in) return ErrnoError("open /proc/meminfo");
  std::stringstream text;
  text << in.rdbuf();
  auto mem = ParseMemTotalMib(text.str());
  if (!mem) return std::unexpected(mem.error());
  c.memory_mib = *mem;
  return c;
}

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

std::string PrimaryAddress() {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "127.0.0.1";
  sockaddr_in peer{};
  peer.sin_family = AF_INET;
  peer.sin_port = htons(9);
  ::inet_pton(AF_INET, "192.0.2.1", &peer.sin_addr);  // TEST-NET-1: never answers
  std::string address = "127.0.0.1";
  if (::connect(fd, reinterpret_cast<sockaddr*>(&peer), sizeof(peer)) == 0) {
    sockaddr_in self{};
    socklen_t len = sizeof(self);
    char text[INET_ADDRSTRLEN] = {};
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&self), &len) == 0 &&
        self.sin_addr.s_addr != htonl(INADDR_ANY) &&
        ::inet_ntop(AF_INET, &self.sin_addr, text, sizeof(text)) != nullptr) {
      address = text;
    }
  }
  ::close(fd);
  return address;
}

Result<std::map<std::string, std::string>> ParseLabels(std::string_view text) {
  std::map<std::string, std::string> labels;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return InvalidArgument("labels", "expected key=value, got \"" + std::string(item) + "\"");
    }
    labels[std::string(item.substr(0, eq))] = std::string(item.substr(eq + 1));
  }
  return labels;
}

}  // namespace phoenix::agent
