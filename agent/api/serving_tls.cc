#include "agent/api/serving_tls.h"

#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <system_error>

#include <spdlog/spdlog.h>

#include "proto/support/pki.h"

namespace phoenix::agent::api {
namespace {

std::vector<std::string> WantedSans(const std::vector<std::string>& extra) {
  std::vector<std::string> sans = {"localhost", "127.0.0.1", "::1"};
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof(name) - 1) == 0 && name[0] != '\0') sans.emplace_back(name);
  sans.insert(sans.end(), extra.begin(), extra.end());
  std::vector<std::string> unique;
  for (const std::string& san : sans) {
    if (!san.empty() && std::find(unique.begin(), unique.end(), san) == unique.end()) {
      unique.push_back(san);
    }
  }
  return unique;
}

std::string Joined(const std::vector<std::string>& sans) {
  std::string text;
  for (const std::string& san : sans) text += san + "\n";
  return text;
}

// The made identity on disk, if it is whole, matches `sans` and has 30 days left.
Result<tls::ServerTls> ReadMade(const std::filesystem::path& dir, const std::string& sans) {
  auto recorded = tls::ReadFile(dir / "api.sans");
  if (!recorded) return std::unexpected(recorded.error());
  if (*recorded != sans) return NotFound("the SANs asked for changed");
  tls::ServerTls out;
  for (auto [field, name] :
       {std::pair{&out.ca_pem, "api-ca.pem"}, std::pair{&out.cert_pem, "api.pem"},
        std::pair{&out.key_pem, "api.key"}}) {
    auto content = tls::ReadFile(dir / name);
    if (!content) return std::unexpected(content.error());
    *field = std::move(*content);
  }
  PHX_TRY(pki::CheckKeyMatchesCertificate(out.key_pem, out.cert_pem));
  PHX_TRY(pki::VerifyCertificate(out.ca_pem, out.cert_pem, pki::Purpose::kServer));
  auto not_after = pki::CertificateNotAfter(out.cert_pem);
  if (!not_after) return std::unexpected(not_after.error());
  if (*not_after - std::chrono::system_clock::now() < std::chrono::days(30)) {
    return NotFound("it expires within 30 days");
  }
  return out;
}

}  // namespace

std::string ListenHost(const std::string& host_port) {
  std::string host;
  if (host_port.starts_with("[")) {
    auto close = host_port.find(']');
    if (close == std::string::npos) return {};
    host = host_port.substr(1, close - 1);
  } else {
    auto colon = host_port.rfind(':');
    host = colon == std::string::npos ? host_port : host_port.substr(0, colon);
  }
  if (host.empty() || host == "0.0.0.0" || host == "::" || host == "*") return {};
  return host;
}

Result<tls::ServerTls> LoadOrMakeServingTls(const ServingTlsOptions& options) {
  if (options.cert_file.empty() != options.key_file.empty()) {
    return InvalidArgument("tls_cert", "--tls-cert and --tls-key go together");
  }
  if (!options.cert_file.empty()) {
    tls::ServerTls given;
    auto cert = tls::ReadFile(options.cert_file);
    if (!cert) return std::unexpected(cert.error().Wrap("--tls-cert"));
    auto key = tls::ReadFile(options.key_file);
    if (!key) return std::unexpected(key.error().Wrap("--tls-key"));
    if (auto ok = pki::CheckKeyMatchesCertificate(*key, *cert); !ok) {
      return std::unexpected(ok.error().Wrap("--tls-key does not belong to --tls-cert"));
    }
    // Nobody is asked for a client certificate, so what verifies one hardly matters; the
    // certificate itself keeps gRPC from trusting the system's CAs for it.
    given.ca_pem = *cert;
    given.cert_pem = std::move(*cert);
    given.key_pem = std::move(*key);
    return given;
  }

  const std::filesystem::path& dir = options.pki_dir;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Internal("creating " + dir.string() + ": " + ec.message());
  const std::vector<std::string> sans = WantedSans(options.extra_sans);
  const std::string recorded = Joined(sans);
  auto made = ReadMade(dir, recorded);
  if (made) return made;
  if (made.error().code != ErrorCode::kNotFound) {
    spdlog::warn("the TCP API's certificate in {} is remade: {}", dir.string(),
                 made.error().message);
  }

  auto ca = pki::CreateCa("phoenix-agent API CA", kServingCertDays);
  if (!ca) return std::unexpected(ca.error().Wrap("creating the TCP API's CA"));
  auto server = pki::IssueServerCert(*ca, "phoenix-agent", sans, kServingCertDays);
  if (!server) return std::unexpected(server.error().Wrap("issuing the TCP API's certificate"));
  // Key first, the SAN record last: a crash in between is noticed and remade at the next start.
  PHX_TRY(pki::WritePrivateFile(dir / "api.key", server->key_pem));
  PHX_TRY(pki::WriteFileAtomic(dir / "api.pem", server->cert_pem, 0644));
  PHX_TRY(pki::WriteFileAtomic(dir / "api-ca.pem", ca->cert_pem, 0644));
  PHX_TRY(pki::WriteFileAtomic(dir / "api.sans", recorded, 0644));
  spdlog::info("made the TCP API's certificate: clients trust {} (phoenixctl --agent-ca-file)",
               (dir / "api-ca.pem").string());
  return tls::ServerTls{.ca_pem = ca->cert_pem,
                        .cert_pem = std::move(server->cert_pem),
                        .key_pem = std::move(server->key_pem)};
}

}  // namespace phoenix::agent::api
