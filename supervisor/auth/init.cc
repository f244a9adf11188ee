#include "supervisor/auth/init.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <system_error>

#include "supervisor/auth/token_store.h"

namespace phoenix::supervisor::auth {
namespace {

Result<void> MakeDir(const std::filesystem::path& dir, mode_t mode) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Internal("creating " + dir.string() + ": " + ec.message());
  if (chmod(dir.c_str(), mode) != 0) return ErrnoError("chmod " + dir.string());
  return {};
}

Result<void> RemoveIfPresent(const std::filesystem::path& file) {
  if (unlink(file.c_str()) != 0 && errno != ENOENT) return ErrnoError("removing " + file.string());
  return {};
}

std::string HostName() {
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return {};
  return name;
}

}  // namespace

StatePaths PathsFor(const std::filesystem::path& state_dir) {
  const std::filesystem::path pki = state_dir / "pki";
  return StatePaths{.pki_dir = pki,
                    .ca_cert = pki / "ca.pem",
                    .ca_key = pki / "ca.key",
                    .server_cert = pki / "server.pem",
                    .server_key = pki / "server.key",
                    .tokens = state_dir / "tokens",
                    .admin_token = state_dir / "admin.token",
                    .enrolled_nodes = state_dir / "nodes"};
}

Result<InitResult> InitSupervisorState(const std::filesystem::path& state_dir,
                                       const std::vector<std::string>& extra_sans, bool force) {
  const StatePaths paths = PathsFor(state_dir);
  for (const auto& existing : {paths.ca_cert, paths.ca_key, paths.tokens, paths.admin_token}) {
    std::error_code ec;
    bool exists = std::filesystem::exists(existing, ec);
    if (ec) return Internal("checking " + existing.string() + ": " + ec.message());
    if (exists && !force) {
      return AlreadyExists(state_dir.string() + " is already initialized (" + existing.string() +
                           " exists); pass --force to replace the CA and revoke every token");
    }
  }
  PHX_TRY(MakeDir(state_dir, 0700));
  PHX_TRY(MakeDir(paths.pki_dir, 0700));

  std::vector<std::string> sans = {"localhost", "127.0.0.1", "::1"};
  if (std::string host = HostName(); !host.empty()) sans.push_back(host);
  sans.insert(sans.end(), extra_sans.begin(), extra_sans.end());
  std::vector<std::string> unique;
  for (const std::string& san : sans) {
    if (std::find(unique.begin(), unique.end(), san) == unique.end()) unique.push_back(san);
  }

  auto ca = pki::CreateCa("phoenix supervisor CA", kCaDays);
  if (!ca) return std::unexpected(ca.error().Wrap("creating the CA"));
  auto server = pki::IssueServerCert(*ca, "phoenix-supervisor", unique, kServerCertDays);
  if (!server) return std::unexpected(server.error().Wrap("issuing the server certificate"));

  // Keys first, certificates after: a crash in between leaves no certificate without its key.
  PHX_TRY(pki::WritePrivateFile(paths.ca_key, ca->key_pem));
  PHX_TRY(pki::WriteFileAtomic(paths.ca_cert, ca->cert_pem, 0644));
  PHX_TRY(pki::WritePrivateFile(paths.server_key, server->key_pem));
  PHX_TRY(pki::WriteFileAtomic(paths.server_cert, server->cert_pem, 0644));

  PHX_TRY(RemoveIfPresent(paths.tokens));          // force: the old tokens die with the old CA
  PHX_TRY(RemoveIfPresent(paths.enrolled_nodes));  // and so do its nodes' certificates
  auto tokens = TokenStore::Open(paths.tokens);
  if (!tokens) return std::unexpected(tokens.error());
  auto admin = (*tokens)->Mint(Role::kAdmin, "initial admin token (phoenix-supervisor init)");
  if (!admin) return std::unexpected(admin.error());
  PHX_TRY(pki::WritePrivateFile(paths.admin_token, *admin + "\n"));
  return InitResult{paths, std::move(*admin), std::move(unique)};
}

Result<tls::ServerTls> LoadServerTls(const std::filesystem::path& state_dir) {
  const StatePaths paths = PathsFor(state_dir);
  tls::ServerTls out;
  for (auto [file, dest] :
       {std::pair{&paths.ca_cert, &out.ca_pem}, std::pair{&paths.server_cert, &out.cert_pem},
        std::pair{&paths.server_key, &out.key_pem}}) {
    auto text = tls::ReadFile(*file);
    if (!text) {
      return std::unexpected(
          text.error().Wrap("loading the supervisor's TLS material (run "
                            "phoenix-supervisor init first?)"));
    }
    *dest = std::move(*text);
  }
  return out;
}

Result<pki::KeyAndCert> LoadCa(const std::filesystem::path& state_dir) {
  const StatePaths paths = PathsFor(state_dir);
  auto cert = tls::ReadFile(paths.ca_cert);
  if (!cert) return std::unexpected(cert.error().Wrap("loading the CA"));
  auto key = tls::ReadFile(paths.ca_key);
  if (!key) return std::unexpected(key.error().Wrap("loading the CA"));
  return pki::KeyAndCert{std::move(*key), std::move(*cert)};
}

}  // namespace phoenix::supervisor::auth
