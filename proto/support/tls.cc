#include "proto/support/tls.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <unistd.h>

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include "proto/support/pki.h"

namespace phoenix::tls {

Result<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const ServerTls& tls) {
  auto ca = pki::CertificateCommonName(tls.ca_pem);
  if (!ca) return std::unexpected(ca.error().Wrap("server TLS CA"));
  auto matches = pki::CheckKeyMatchesCertificate(tls.key_pem, tls.cert_pem);
  if (!matches) return std::unexpected(matches.error().Wrap("server TLS certificate"));
  grpc::SslServerCredentialsOptions options(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = tls.ca_pem;
  options.pem_key_cert_pairs.push_back({tls.key_pem, tls.cert_pem});
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::SslServerCredentials(options);
  if (!creds) return Internal("grpc::SslServerCredentials returned no credentials");
  return creds;
}

std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const ClientTls& tls) {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = tls.ca_pem;
  options.pem_private_key = tls.key_pem;
  options.pem_cert_chain = tls.cert_pem;
  return grpc::SslCredentials(options);
}

Result<std::string> ReadFile(const std::filesystem::path& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    auto e = ErrnoError("opening " + path.string(), err);
    if (err == ENOENT) e.error().code = ErrorCode::kNotFound;
    return e;
  }
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      auto e = ErrnoError("reading " + path.string());
      close(fd);
      return e;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

bool IsLoopbackAddress(std::string_view host_port) {
  if (host_port.starts_with("unix:") || host_port.starts_with("unix-abstract:")) return true;
  std::string host(host_port);
  if (host_port.starts_with('[')) {
    size_t close_bracket = host_port.find(']');
    if (close_bracket == std::string_view::npos) return false;
    host = std::string(host_port.substr(1, close_bracket - 1));
  } else if (host_port.find(':') != host_port.rfind(':')) {
    // Several colons without brackets: a bare IPv6 literal, no port.
  } else if (size_t colon = host_port.find(':'); colon != std::string_view::npos) {
    host = std::string(host_port.substr(0, colon));
  }
  if (host == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    if (IN6_IS_ADDR_V4MAPPED(&v6)) return v6.s6_addr[12] == 127;
  }
  return false;
}

}  // namespace phoenix::tls
