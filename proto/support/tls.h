// TLS for Phoenix's gRPC endpoints: server and channel credentials from PEM strings, and the two
// small helpers every binary needs around them (reading PEM files, telling a loopback listen
// address from a public one for --insecure).
//
// The server asks every client for a certificate and verifies it against ca_pem when one is
// presented (GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY), but does not require one: admins
// (bearer token, no certificate) and agents (client certificate) share one port, and the
// per-method decision of who may call what is made by supervisor/auth's Authorizer, installed on
// the returned credentials with SetAuthMetadataProcessor.
//
// Thread-safety: free functions over plain values; safe from any thread.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include "proto/support/error.h"

namespace phoenix::tls {

// Client certs requested and, when presented, verified against ca_pem.
struct ServerTls {
  std::string ca_pem, cert_pem, key_pem;
};
// Checks that the PEMs parse and that the key belongs to the certificate before handing them to
// gRPC (which would only fail later, at Start, with a vaguer message).
[[nodiscard]] Result<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerTls& tls);

// cert/key empty = no client certificate.
struct ClientTls {
  std::string ca_pem;
  std::string cert_pem, key_pem;
};
std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const ClientTls& tls);

// The whole file; the error carries errno (kNotFound when it does not exist).
[[nodiscard]] Result<std::string> ReadFile(const std::filesystem::path& path);

// True for "127.0.0.1:7400" (all of 127.0.0.0/8), "[::1]:7400", "::1", "localhost:1",
// "[::ffff:127.0.0.1]:1" and unix-domain addresses ("unix:/path"), which only local processes can
// reach. False for wildcard and every other address.
bool IsLoopbackAddress(std::string_view host_port);

}  // namespace phoenix::tls
