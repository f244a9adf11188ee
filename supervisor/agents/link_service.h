// The supervisor's end of the agents' link: the AgentLink gRPC service, one bidirectional stream
// per connected agent. Each stream is an AgentSession (supervisor/reconcile/agent_link.h) that
// authenticates the agent (its client certificate's common name is the node name), turns its
// Hello and Status messages into AgentLinkHandler calls, and writes Welcome and the node's
// assignments back.
//
// Built on gRPC's callback API: a stream costs a reactor object, not a thread, so one supervisor
// holds thousands of agents. No reactor method blocks.
//
// Ownership and threading: the service borrows the handler, which must outlive every stream. gRPC
// owns each stream's reactor from the call's start until OnDone, where the handler hears
// AgentGone and the reactor deletes itself. Shut the server down with a deadline
// (Server::Shutdown(deadline)) so open streams are cancelled rather than waited for; Shutdown
// returns after every stream's OnDone has run. The service's methods are thread-safe.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <string>

#include <grpcpp/grpcpp.h>

#include "phoenix/v1/supervisor.grpc.pb.h"
#include "supervisor/reconcile/agent_link.h"

namespace phoenix::supervisor::agents {

enum class LinkSecurity {
  kMutualTls,  // the node name is the verified client certificate's common name
  kInsecure,   // loopback development only: the node name is whatever Hello says
};

// Whether a verified client certificate (PEM) may speak for `node` now; an error (its message goes
// to the agent with UNAUTHENTICATED) when it is revoked or not the node's current one.
using CertificateCheck =
    std::function<Result<void>(const std::string& node, const std::string& cert_pem)>;

class AgentLinkService final : public v1::AgentLink::CallbackService {
 public:
  // `check` (mutual TLS only; null: every certificate of the CA is admitted) runs once per stream,
  // before its first read.
  AgentLinkService(AgentLinkHandler& handler, LinkSecurity security, std::string supervisor_version,
                   CertificateCheck check = nullptr);

  grpc::ServerBidiReactor<v1::AgentMessage, v1::SupervisorMessage>* Connect(
      grpc::CallbackServerContext* context) override;

  // Streams whose reactor is alive (opened and not yet done).
  size_t OpenStreams() const { return open_streams_.load(std::memory_order_relaxed); }

 private:
  friend class AgentStream;

  AgentLinkHandler& handler_;
  const LinkSecurity security_;
  const std::string supervisor_version_;
  const CertificateCheck check_;
  std::atomic<size_t> open_streams_{0};
};

}  // namespace phoenix::supervisor::agents
