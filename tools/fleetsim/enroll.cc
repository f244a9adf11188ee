#include "tools/fleetsim/enroll.h"

#include <chrono>
#include <mutex>
#include <optional>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "phoenix/v1/supervisor.grpc.pb.h"
#include "proto/support/grpc_status.h"
#include "proto/support/tls.h"
#include "tools/fleetsim/options.h"

namespace phoenix::fleetsim {

namespace {
// Enough to keep the supervisor's signer busy without queueing thousands of calls on it.
constexpr int kWorkers = 4;
constexpr auto kCallTimeout = std::chrono::seconds(30);
}  // namespace

Result<std::vector<pki::KeyAndCert>> EnrollNodes(const std::string& target,
                                                 const std::string& ca_pem,
                                                 const std::string& join_token, uint32_t count,
                                                 std::atomic<uint32_t>& enrolled) {
  auto channel = grpc::CreateChannel(target, tls::MakeChannelCredentials({.ca_pem = ca_pem}));
  auto stub = v1::Enrollment::NewStub(channel);
  std::vector<pki::KeyAndCert> out(count);
  std::atomic<uint32_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::optional<Error> first_error;

  auto work = [&] {
    for (uint32_t i = next++; i < count && !failed; i = next++) {
      const std::string name = NodeName(i);
      auto key = pki::CreateKeyAndCsr(name);
      Result<std::string> cert = key ? Result<std::string>() : std::unexpected(key.error());
      if (key) {
        v1::EnrollRequest request;
        request.set_join_token(join_token);
        request.set_node(name);
        request.set_csr_pem(key->csr_pem);
        v1::EnrollResponse response;
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
        grpc::Status status = stub->Enroll(&context, request, &response);
        if (status.ok()) {
          cert = response.certificate_pem();
        } else {
          cert = std::unexpected(FromGrpcStatus(status));
        }
      }
      if (!cert) {
        failed = true;
        std::lock_guard lock(mu);
        if (!first_error) first_error = cert.error().Wrap("enrolling " + name);
        return;
      }
      out[i] = pki::KeyAndCert{.key_pem = std::move(key->key_pem), .cert_pem = std::move(*cert)};
      ++enrolled;
    }
  };
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) workers.emplace_back(work);
  for (auto& worker : workers) worker.join();
  if (first_error) return std::unexpected(*first_error);
  return out;
}

}  // namespace phoenix::fleetsim
