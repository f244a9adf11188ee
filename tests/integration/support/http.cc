#include "tests/integration/support/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace phoenix::testing {

Result<HttpResponse> HttpGet(uint16_t port, const std::string& path,
                             std::chrono::milliseconds timeout) {
  return HttpGetAt("127.0.0.1", port, path, timeout);
}

Result<HttpResponse> HttpGetAt(const std::string& ip, uint16_t port, const std::string& path,
                               std::chrono::milliseconds timeout) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoError("socket");
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (inet_pton(AF_INET, ip.c_str(), &addr.sin_addr) != 1) {
    close(fd);
    return InvalidArgument("ip", "not an IPv4 address: " + ip);
  }
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    auto e = ErrnoError("connect " + ip + ":" + std::to_string(port));
    close(fd);
    return e;
  }
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: " + ip + "\r\nConnection: close\r\n\r\n";
  if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    auto e = ErrnoError("send");
    close(fd);
    return e;
  }
  std::string raw;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0 && raw.size() < (1 << 20)) raw.append(buf, n);
  int err = errno;
  close(fd);
  if (n < 0) return ErrnoError("recv from " + ip + ":" + std::to_string(port), err);
  HttpResponse resp;
  if (raw.rfind("HTTP/1.", 0) != 0 || raw.size() < 12) {
    return Internal("not an HTTP response: \"" + raw.substr(0, 40) + "\"");
  }
  resp.status = std::stoi(raw.substr(9, 3));
  size_t body = raw.find("\r\n\r\n");
  resp.body = body == std::string::npos ? "" : raw.substr(body + 4);
  return resp;
}

}  // namespace phoenix::testing
