// PKI: the supervisor's certificate authority, its server certificate and the agents' client
// certificates, as PEM strings (OpenSSL 3 libcrypto; no gRPC).
//
// Every key is ECDSA P-256 and every signature SHA-256: fast enough for a fleet simulator that
// enrolls thousands of agents. The CA is a self-signed root (CA:TRUE, keyCertSign); server certs
// carry subjectAltName DNS/IP entries and the serverAuth EKU; client certs are issued only from a
// CSR whose signature verifies and whose common name is the expected node name, with the clientAuth
// EKU and a random 128-bit serial. Nothing from a CSR but its subject CN and public key reaches the
// certificate (requested extensions are ignored).
//
// Errors: every OpenSSL failure carries OpenSSL's own error strings; malformed input (garbage PEM,
// wrong CN, wrong key type) is kInvalidArgument, everything else kInternal.
// Thread-safety: free functions over plain values; safe from any thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "proto/support/error.h"

namespace phoenix::pki {

// Every certificate's notBefore is this much before its issue, to tolerate clock skew.
inline constexpr std::chrono::seconds kCertificateBackdate{300};

struct KeyAndCert {
  std::string key_pem;
  std::string cert_pem;
};

[[nodiscard]] Result<KeyAndCert> CreateCa(const std::string& common_name, int days);

// sans: DNS names or IP literals ("localhost", "127.0.0.1", "::1"). The common name is not added
// to them: TLS clients check only the SANs.
[[nodiscard]] Result<KeyAndCert> IssueServerCert(const KeyAndCert& ca,
                                                 const std::string& common_name,
                                                 const std::vector<std::string>& sans, int days);

struct KeyAndCsr {
  std::string key_pem;
  std::string csr_pem;
};
[[nodiscard]] Result<KeyAndCsr> CreateKeyAndCsr(const std::string& common_name);
// A CSR for an existing key (renewing a certificate keeps the node's key).
[[nodiscard]] Result<std::string> CreateCsr(const std::string& key_pem,
                                            const std::string& common_name);

// Verifies the CSR's signature and that its CN is expected_common_name; returns the client cert.
[[nodiscard]] Result<std::string> SignClientCsr(const KeyAndCert& ca, const std::string& csr_pem,
                                                const std::string& expected_common_name, int days);

// Writes content to path with the given mode atomically: a temp file in the same directory,
// fsync, rename over path, fsync of the directory. A crash leaves the old or the new file.
[[nodiscard]] Result<void> WriteFileAtomic(const std::filesystem::path& path,
                                           const std::string& content, mode_t mode);
// WriteFileAtomic with mode 0600.
[[nodiscard]] Result<void> WritePrivateFile(const std::filesystem::path& path,
                                            const std::string& content);

// --- Inspection (additive to the shared contract; used by tls, init and tests) ---

enum class Purpose { kAny, kServer, kClient };
// Verifies cert_pem against the single root ca_pem with X509_verify_cert (signature chain,
// validity period, and for kServer/kClient the matching extended key usage).
[[nodiscard]] Result<void> VerifyCertificate(const std::string& ca_pem, const std::string& cert_pem,
                                             Purpose purpose);
// The subject's common name.
[[nodiscard]] Result<std::string> CertificateCommonName(const std::string& cert_pem);
[[nodiscard]] Result<std::chrono::system_clock::time_point> CertificateNotAfter(
    const std::string& cert_pem);
[[nodiscard]] Result<std::chrono::system_clock::time_point> CertificateNotBefore(
    const std::string& cert_pem);
// The serial number in lowercase hex without leading zeros ("0" for zero).
[[nodiscard]] Result<std::string> CertificateSerial(const std::string& cert_pem);
// kInvalidArgument unless key_pem parses and is the private key of cert_pem.
[[nodiscard]] Result<void> CheckKeyMatchesCertificate(const std::string& key_pem,
                                                      const std::string& cert_pem);

}  // namespace phoenix::pki
