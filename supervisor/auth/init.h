// Supervisor state initialization (`phoenix-supervisor init`) and loading of its TLS material:
// DIR/pki/{ca.pem,ca.key,server.pem,server.key}, DIR/tokens with one admin token, and
// DIR/admin.token holding that token's plaintext (0600, like k3s's kubeconfig).
//
// Keys and tokens are written 0600 (ca.pem and server.pem 0644: they are public) through atomic
// renames; DIR/pki is 0700. Re-running init is refused (kAlreadyExists) unless force, which makes
// a new CA (every enrolled agent must enroll again) and a tokens file holding only the new admin
// token (every other token is revoked). DIR/supervisor.db is never touched.
//
// Thread-safety: free functions; InitSupervisorState must not race another init of the same DIR.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "proto/support/error.h"
#include "proto/support/pki.h"
#include "proto/support/tls.h"

namespace phoenix::supervisor::auth {

inline constexpr int kCaDays = 3650;
inline constexpr int kServerCertDays = 825;
// Agent certificates are short-lived and renewed over TLS before they expire (agents renew in the
// last third of the lifetime): a stolen certificate is good for weeks, not years.
inline constexpr int kAgentCertDays = 30;

// Where everything lives under a state dir.
struct StatePaths {
  std::filesystem::path pki_dir, ca_cert, ca_key, server_cert, server_key, tokens, admin_token,
      enrolled_nodes;
};
StatePaths PathsFor(const std::filesystem::path& state_dir);

struct InitResult {
  StatePaths paths;
  std::string admin_token;        // plaintext, also in paths.admin_token
  std::vector<std::string> sans;  // the server certificate's subjectAltNames
};

// SANs: localhost, 127.0.0.1, ::1, this host's name, plus extra_sans (DNS names or IP literals).
[[nodiscard]] Result<InitResult> InitSupervisorState(const std::filesystem::path& state_dir,
                                                     const std::vector<std::string>& extra_sans,
                                                     bool force);

// The server's certificate, key and CA (for verifying agents' client certificates).
[[nodiscard]] Result<tls::ServerTls> LoadServerTls(const std::filesystem::path& state_dir);
// The CA's certificate and key (for signing agents' CSRs in the Enrollment service).
[[nodiscard]] Result<pki::KeyAndCert> LoadCa(const std::filesystem::path& state_dir);

}  // namespace phoenix::supervisor::auth
