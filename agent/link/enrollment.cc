#include "agent/link/enrollment.h"

#include <chrono>

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "phoenix/v1/supervisor.grpc.pb.h"
#include "proto/support/grpc_status.h"
#include "proto/support/pki.h"
#include "proto/support/tls.h"

namespace phoenix::agent::link {

namespace {

constexpr std::chrono::seconds kEnrollTimeout{10};

Result<void> Enroll(const EnrollmentOptions& o) {
  if (o.join_token.empty()) {
    return FailedPrecondition("not enrolled (no " + (o.pki_dir / "agent.pem").string() +
                              ") and no join token: pass --join-token or --join-token-file");
  }
  if (o.supervisor_ca.empty()) {
    return FailedPrecondition(
        "not enrolled and no --supervisor-ca: enrolling needs the supervisor's CA certificate");
  }
  auto ca = tls::ReadFile(o.supervisor_ca);
  if (!ca) return std::unexpected(ca.error().Wrap("reading --supervisor-ca"));
  auto key = pki::CreateKeyAndCsr(o.node);
  if (!key) return std::unexpected(key.error().Wrap("creating the agent's key and CSR"));

  auto channel = grpc::CreateChannel(o.target, tls::MakeChannelCredentials({*ca, "", ""}));
  auto stub = v1::Enrollment::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kEnrollTimeout);
  v1::EnrollRequest request;
  request.set_join_token(o.join_token);
  request.set_node(o.node);
  request.set_csr_pem(key->csr_pem);
  v1::EnrollResponse response;
  grpc::Status status = stub->Enroll(&context, request, &response);
  if (!status.ok()) {
    return std::unexpected(FromGrpcStatus(status).Wrap("enrolling with supervisor " + o.target));
  }
  // The response came over TLS verified with the operator's CA: its CA is the one to trust.
  const std::string& ca_pem = response.ca_pem().empty() ? *ca : response.ca_pem();
  if (auto ok = pki::VerifyCertificate(ca_pem, response.certificate_pem(), pki::Purpose::kClient);
      !ok) {
    return std::unexpected(ok.error().Wrap("the certificate the supervisor issued"));
  }
  PHX_TRY(pki::WriteFileAtomic(o.pki_dir / "agent.key", key->key_pem, 0600));
  PHX_TRY(pki::WriteFileAtomic(o.pki_dir / "ca.pem", ca_pem, 0644));
  PHX_TRY(pki::WriteFileAtomic(o.pki_dir / "agent.pem", response.certificate_pem(), 0644));
  spdlog::info("enrolled with supervisor {} as node {}; certificate in {}", o.target, o.node,
               (o.pki_dir / "agent.pem").string());
  return {};
}

// Trades the current certificate (presented over mutual TLS) and a CSR for the same key for a new
// certificate; agent.pem is replaced atomically.
Result<void> Renew(const EnrollmentOptions& o, const std::string& ca, const std::string& cert,
                   const std::string& key) {
  auto csr = pki::CreateCsr(key, o.node);
  if (!csr) return std::unexpected(csr.error().Wrap("the renewal's CSR"));
  auto channel = grpc::CreateChannel(o.target, tls::MakeChannelCredentials({ca, cert, key}));
  auto stub = v1::Enrollment::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kEnrollTimeout);
  v1::RenewRequest request;
  request.set_csr_pem(*csr);
  v1::EnrollResponse response;
  grpc::Status status = stub->Renew(&context, request, &response);
  if (!status.ok()) {
    return std::unexpected(FromGrpcStatus(status).Wrap("renewing with supervisor " + o.target));
  }
  if (auto ok = pki::VerifyCertificate(ca, response.certificate_pem(), pki::Purpose::kClient);
      !ok) {
    return std::unexpected(ok.error().Wrap("the renewed certificate"));
  }
  PHX_TRY(pki::CheckKeyMatchesCertificate(key, response.certificate_pem()));
  PHX_TRY(pki::WriteFileAtomic(o.pki_dir / "agent.pem", response.certificate_pem(), 0644));
  auto until = pki::CertificateNotAfter(response.certificate_pem());
  spdlog::info(
      "renewed the certificate of node {} with supervisor {}{}", o.node, o.target,
      until ? fmt::format(" (valid for {} days)", std::chrono::duration_cast<std::chrono::hours>(
                                                      *until - std::chrono::system_clock::now())
                                                          .count() /
                                                      24)
            : std::string());
  return {};
}

}  // namespace

bool RenewalDue(const std::string& cert_pem, std::chrono::system_clock::time_point now) {
  auto from = pki::CertificateNotBefore(cert_pem);
  auto until = pki::CertificateNotAfter(cert_pem);
  if (!from || !until) return true;
  return (*until - now) * 3 < (*until - *from);
}

bool RenewalDueAt(const std::filesystem::path& pki_dir) {
  if (!IsEnrolled(pki_dir)) return false;
  auto cert = tls::ReadFile(pki_dir / "agent.pem");
  return !cert || RenewalDue(*cert, std::chrono::system_clock::now());
}

bool IsEnrolled(const std::filesystem::path& pki_dir) {
  std::error_code ec;
  return std::filesystem::exists(pki_dir / "agent.pem", ec);
}

Result<std::shared_ptr<grpc::ChannelCredentials>> EnrolledCredentials(
    const std::filesystem::path& pki_dir) {
  if (!IsEnrolled(pki_dir)) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     "this agent has not enrolled with its supervisor yet");
  }
  auto ca = tls::ReadFile(pki_dir / "ca.pem");
  if (!ca) return std::unexpected(ca.error());
  auto cert = tls::ReadFile(pki_dir / "agent.pem");
  if (!cert) return std::unexpected(cert.error());
  auto key = tls::ReadFile(pki_dir / "agent.key");
  if (!key) return std::unexpected(key.error());
  return tls::MakeChannelCredentials({*ca, *cert, *key});
}

Result<std::shared_ptr<grpc::ChannelCredentials>> LinkCredentials(
    const EnrollmentOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.pki_dir, ec);
  if (ec) {
    return Internal("creating " + options.pki_dir.string() + ": " + ec.message());
  }
  if (!IsEnrolled(options.pki_dir)) PHX_TRY(Enroll(options));
  auto ca = tls::ReadFile(options.pki_dir / "ca.pem");
  if (!ca) return std::unexpected(ca.error());
  auto cert = tls::ReadFile(options.pki_dir / "agent.pem");
  if (!cert) return std::unexpected(cert.error());
  auto key = tls::ReadFile(options.pki_dir / "agent.key");
  if (!key) return std::unexpected(key.error());
  if (auto ok = pki::CheckKeyMatchesCertificate(*key, *cert); !ok) {
    return std::unexpected(
        ok.error().Wrap(options.pki_dir.string() + ": agent.key does not belong to agent.pem"));
  }
  if (RenewalDue(*cert, options.now())) {
    if (auto renewed = Renew(options, *ca, *cert, *key); !renewed) {
      spdlog::warn("certificate renewal failed (the current one is used while valid): {}",
                   renewed.error().message);
    } else if (auto next = tls::ReadFile(options.pki_dir / "agent.pem"); next) {
      *cert = std::move(*next);
    }
  }
  return tls::MakeChannelCredentials({*ca, *cert, *key});
}

}  // namespace phoenix::agent::link
