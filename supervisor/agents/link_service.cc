#include "supervisor/agents/link_service.h"

#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include <spdlog/spdlog.h>

#include "proto/support/grpc_status.h"
#include "supervisor/agents/convert.h"
#include "supervisor/auth/authorizer.h"

namespace phoenix::supervisor::agents {

// One agent's stream. Reads run one at a time (OnReadDone starts the next), so everything the
// read side touches (in_, connected_, node_) needs no lock; what SendAssignment and Close share
// with the reactions (the write queue and finished_) is under mu_. gRPC runs reactions on its own
// threads, never inline in a Start* call, so holding mu_ across Start*/Finish cannot deadlock.
class AgentStream final : public grpc::ServerBidiReactor<v1::AgentMessage, v1::SupervisorMessage>,
                          public AgentSession {
 public:
  AgentStream(AgentLinkService& service, grpc::CallbackServerContext* context)
      : service_(service), peer_(context->peer()) {
    service_.open_streams_.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lock(mu_);
    if (service_.security_ == LinkSecurity::kMutualTls) {
      certificate_name_ = auth::PeerCommonName(*context).value_or("");
      if (certificate_name_.empty()) {
        spdlog::warn("agent link from {}: refused, no verified client certificate", peer_);
        FinishLocked(grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                  "the agent link needs a client certificate issued by the "
                                  "supervisor's CA (enroll with a join token first)"));
        return;
      }
      if (service_.check_) {
        if (auto ok =
                service_.check_(certificate_name_, auth::PeerCertificatePem(*context).value_or(""));
            !ok) {
          spdlog::warn("agent link from {} (node {}): refused: {}", peer_, certificate_name_,
                       ok.error().message);
          FinishLocked(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, ok.error().message));
          return;
        }
      }
    }
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The agent closed its side, or the call died: either way the stream is over.
      std::lock_guard lock(mu_);
      FinishLocked(grpc::Status::OK);
      return;
    }
    if (!connected_) {
      HandleFirstMessage();
    } else {
      HandleLaterMessage();
    }
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "writing to the agent failed"));
      return;
    }
    PumpLocked();
  }

  void OnCancel() override {
    std::lock_guard lock(mu_);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the agent link was cancelled"));
  }

  void OnDone() override {
    if (connected_) {
      spdlog::info("agent {} ({}) disconnected", node_, peer_);
      service_.handler_.AgentGone(this);
    }
    service_.open_streams_.fetch_sub(1, std::memory_order_relaxed);
    delete this;
  }

  void SendAssignment(const NodeAssignment& assignment) override {
    AssignmentProto converted = AssignmentToProto(assignment);
    for (const Error& error : converted.skipped) {
      spdlog::error("assignment {} for node {}: skipped a replica: {}", assignment.version, node_,
                    error.ToString());
    }
    std::lock_guard lock(mu_);
    if (finished_) return;
    // Only the newest assignment matters: it replaces one still waiting to be written.
    pending_assignment_ = std::move(converted.assignment);
    PumpLocked();
  }

  void SendFrontDoor(const FrontDoorTable& table) override {
    v1::FrontDoorTable converted = FrontDoorTableToProto(table);
    std::lock_guard lock(mu_);
    if (finished_) return;
    pending_front_door_ = std::move(converted);  // only the newest table matters
    PumpLocked();
  }

  void Close(const Error& error) override {
    std::lock_guard lock(mu_);
    FinishLocked(ToGrpcStatus(error));
  }

 private:
  void HandleFirstMessage() {
    if (in_.body_case() != v1::AgentMessage::kHello) {
      Refuse(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "the first message on the agent link must be Hello"));
      return;
    }
    const std::string& said = in_.hello().node().name();
    if (service_.security_ == LinkSecurity::kMutualTls) {
      if (said != certificate_name_) {
        Refuse(grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                            "Hello names node \"" + said +
                                "\" but the client certificate is for node \"" + certificate_name_ +
                                "\""));
        return;
      }
    } else if (said.empty()) {
      Refuse(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "hello.node.name: the node name is empty"));
      return;
    }
    node_ = said;
    AgentHello hello = HelloFromProto(in_.hello(), node_);
    {
      // Queued before the handler hears of the session so it precedes any assignment, and held
      // until the handler returns: assignments it sends meanwhile coalesce to the newest instead of
      // racing the Welcome's write completion.
      std::lock_guard lock(mu_);
      holding_writes_ = true;
      v1::SupervisorMessage welcome;
      welcome.mutable_welcome()->set_heartbeat_interval_ms(
          static_cast<uint32_t>(service_.handler_.HeartbeatInterval().count()));
      welcome.mutable_welcome()->set_supervisor_version(service_.supervisor_version_);
      pending_welcome_ = std::move(welcome);
    }
    connected_ = true;
    spdlog::info("agent {} connected from {} (zone {}, applied version {})", node_, peer_,
                 hello.node.zone, hello.applied_version);
    service_.handler_.AgentConnected(this, std::move(hello));
    std::lock_guard lock(mu_);
    holding_writes_ = false;
    PumpLocked();
    ReadNextLocked();
  }

  void HandleLaterMessage() {
    switch (in_.body_case()) {
      case v1::AgentMessage::kStatus:
        service_.handler_.AgentReported(this, ReportFromProto(in_.status(), Clock::now()));
        break;
      case v1::AgentMessage::kHello:
        Refuse(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "Hello may only be the first message on the agent link"));
        return;
      default:
        Refuse(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "an agent message without a body (Hello or Status)"));
        return;
    }
    std::lock_guard lock(mu_);
    ReadNextLocked();
  }

  void Refuse(grpc::Status status) {
    spdlog::warn("agent link from {}{}: refused: {}", peer_,
                 node_.empty() ? "" : " (" + node_ + ")", status.error_message());
    std::lock_guard lock(mu_);
    FinishLocked(std::move(status));
  }

  void ReadNextLocked() {
    if (!finished_) StartRead(&in_);
  }

  // One write at a time; Welcome first, then the newest assignment, then the newest front door
  // table.
  void PumpLocked() {
    if (finished_ || writing_ || holding_writes_) return;
    if (pending_welcome_) {
      out_ = std::move(*pending_welcome_);
      pending_welcome_.reset();
    } else if (pending_assignment_) {
      out_.Clear();
      *out_.mutable_assignment() = std::move(*pending_assignment_);
      pending_assignment_.reset();
    } else if (pending_front_door_) {
      out_.Clear();
      *out_.mutable_front_door() = std::move(*pending_front_door_);
      pending_front_door_.reset();
    } else {
      return;
    }
    writing_ = true;
    StartWrite(&out_);
  }

  void FinishLocked(grpc::Status status) {
    if (finished_) return;
    finished_ = true;
    pending_welcome_.reset();
    pending_assignment_.reset();
    pending_front_door_.reset();
    Finish(std::move(status));
  }

  AgentLinkService& service_;
  const std::string peer_;
  std::string certificate_name_;  // set once in the constructor (mutual TLS only)

  // Read side: touched only by the constructor and OnReadDone (one at a time), then by OnDone.
  v1::AgentMessage in_;
  bool connected_ = false;  // Hello accepted and AgentConnected called
  std::string node_;

  std::mutex mu_;
  bool finished_ = false;        // Finish called: no more Start* calls
  bool writing_ = false;         // out_ is being written
  bool holding_writes_ = false;  // inside AgentConnected: queue, do not write yet
  v1::SupervisorMessage out_;
  std::optional<v1::SupervisorMessage> pending_welcome_;
  std::optional<v1::Assignment> pending_assignment_;
  std::optional<v1::FrontDoorTable> pending_front_door_;
};

AgentLinkService::AgentLinkService(AgentLinkHandler& handler, LinkSecurity security,
                                   std::string supervisor_version, CertificateCheck check)
    : handler_(handler),
      security_(security),
      supervisor_version_(std::move(supervisor_version)),
      check_(std::move(check)) {}

grpc::ServerBidiReactor<v1::AgentMessage, v1::SupervisorMessage>* AgentLinkService::Connect(
    grpc::CallbackServerContext* context) {
  return new AgentStream(*this, context);
}

}  // namespace phoenix::supervisor::agents
