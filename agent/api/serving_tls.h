// The TLS identity of the agent's optional TCP API (--tls-listen): the certificate and key an
// operator gave (--tls-cert/--tls-key), or one the agent makes for itself, the way Incus and
// Proxmox nodes do, so a TCP API never needs a plaintext first step.
//
// A made identity is a private CA that signs one server certificate and is then thrown away (its
// key is never written): <pki_dir>/api-ca.pem (0644, what clients trust: phoenixctl
// --agent-ca-file), api.pem (0644) and api.key (0600). SANs: localhost, 127.0.0.1, ::1, the host
// name, plus the caller's (the --tls-listen host, every --tls-san). They are remade when the SANs
// asked for change (kept in api.sans) or less than 30 days are left; clients then need the new
// api-ca.pem, which the agent logs.
//
// Thread-safety: call once at start-up, before serving.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "proto/support/error.h"
#include "proto/support/tls.h"

namespace phoenix::agent::api {

inline constexpr int kServingCertDays = 825;

struct ServingTlsOptions {
  std::filesystem::path pki_dir;
  std::vector<std::string> extra_sans;
  std::filesystem::path cert_file, key_file;  // both or neither
};

// The server's certificate and key; ca_pem is the CA of the made identity (or the given
// certificate itself), which gRPC also uses to verify client certificates nobody is asked for.
[[nodiscard]] Result<tls::ServerTls> LoadOrMakeServingTls(const ServingTlsOptions& options);

// The host part of "HOST:PORT" / "[v6]:PORT" when it names one address (not a wildcard): a SAN
// the made certificate needs so clients can dial it.
std::string ListenHost(const std::string& host_port);

}  // namespace phoenix::agent::api
