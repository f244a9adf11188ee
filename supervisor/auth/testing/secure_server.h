// Test helper: a supervisor state dir made by InitSupervisorState and a real gRPC server on
// 127.0.0.1:<ephemeral> serving given services over TLS with the Authorizer installed, plus
// channels to it with or without a client certificate. Test code only.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "agent/testing/temp_dir.h"
#include "proto/support/tls.h"
#include "supervisor/auth/authorizer.h"
#include "supervisor/auth/init.h"
#include "supervisor/auth/token_store.h"

namespace phoenix::supervisor::auth::testing {

class SecureServer {
 public:
  // Initializes the state dir (CA, server cert, tokens, admin token); call Start after.
  SecureServer() {
    auto init = InitSupervisorState(dir_.path(), {}, /*force=*/false);
    PHX_CHECK(init.has_value());
    init_ = std::move(*init);
    auto tokens = TokenStore::Open(init_.paths.tokens);
    PHX_CHECK(tokens.has_value());
    tokens_ = std::move(*tokens);
    auto tls = LoadServerTls(dir_.path());
    PHX_CHECK(tls.has_value());
    server_tls_ = std::move(*tls);
  }

  void Start(const std::vector<grpc::Service*>& services) {
    auto creds = tls::MakeServerCredentials(server_tls_);
    PHX_CHECK(creds.has_value());
    InstallAuthorizer(**creds, tokens_);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", *creds, &port_);
    for (grpc::Service* service : services) builder.RegisterService(service);
    server_ = builder.BuildAndStart();
    PHX_CHECK(server_ != nullptr && port_ > 0);
  }

  ~SecureServer() {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }

  std::shared_ptr<grpc::Channel> Channel(const std::string& cert_pem = {},
                                         const std::string& key_pem = {}) const {
    auto creds = tls::MakeChannelCredentials({server_tls_.ca_pem, cert_pem, key_pem});
    return grpc::CreateChannel("127.0.0.1:" + std::to_string(port_), creds);
  }

  const std::filesystem::path& dir() const { return dir_.path(); }
  const InitResult& init() const { return init_; }
  const std::shared_ptr<TokenStore>& tokens() const { return tokens_; }
  const tls::ServerTls& server_tls() const { return server_tls_; }

 private:
  agent::testing::TempDir dir_{"phoenix-auth-test"};
  InitResult init_;
  std::shared_ptr<TokenStore> tokens_;
  tls::ServerTls server_tls_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// A client context with a deadline and, when token is not empty, the bearer token.
inline std::unique_ptr<grpc::ClientContext> CallContext(const std::string& token = {}) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  return ctx;
}

}  // namespace phoenix::supervisor::auth::testing
