#include "supervisor/api/supervisor_service.h"

#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>

#include <string>

#include "proto/support/grpc_status.h"
#include "supervisor/api/convert.h"
#include "supervisor/auth/authorizer.h"

namespace phoenix::supervisor::api {

namespace {

using google::protobuf::util::TimeUtil;

// How long WatchEvents waits for news before it looks at the client again: bounds how long a
// cancelled stream (or a server shutting down with a deadline) keeps its handler thread.
constexpr std::chrono::milliseconds kWatchPoll{1000};
constexpr size_t kWatchBatch = 256;
constexpr uint32_t kDefaultJoinTokenTtlSeconds = 3600;

grpc::Status Fail(const Error& e) { return ToGrpcStatus(e); }

Result<void> RequireName(const std::string& name) {
  if (name.empty()) return InvalidArgument("name", "is required");
  return {};
}

Result<auth::Role> RoleFromProto(v1::Role role) {
  switch (role) {
    case v1::ROLE_VIEWER:
      return auth::Role::kViewer;
    case v1::ROLE_OPERATOR:
      return auth::Role::kOperator;
    case v1::ROLE_ADMIN:
      return auth::Role::kAdmin;
    default:
      return InvalidArgument("role", "must be viewer, operator or admin");
  }
}

// Who is calling, as the event log records it: the token the Authorizer admitted, named by the id
// `token ls` shows and its role. A server without tokens (--insecure) has no caller to name.
std::string ActorOf(const grpc::ServerContext* ctx, auth::TokenStore* tokens) {
  std::optional<std::string> token = ctx == nullptr ? std::nullopt : auth::CallerToken(*ctx);
  if (tokens == nullptr || !token) return "unauthenticated (--insecure)";
  auto id = auth::TokenStore::IdOf(*token);
  if (!id) return "token (unreadable)";
  auto role = tokens->Authenticate(*token);
  if (!role) return "token " + *id + " (revoked)";  // between the Authorizer and here
  return call_auth::ActorName({.role = *role, .token_id = *id});
}

Result<void> RequireTokenStore(const auth::TokenStore* store) {
  if (store == nullptr) {
    return FailedPrecondition(
        "this supervisor keeps no tokens (started without a state dir's tokens file, e.g. "
        "--insecure)");
  }
  return {};
}

}  // namespace

SupervisorServiceImpl::SupervisorServiceImpl(Controller& controller, StateStore& store,
                                             EventHub& hub, auth::TokenStore* token_store,
                                             int max_streams, auth::EnrolledNodes* enrolled_nodes)
    : controller_(controller),
      store_(store),
      hub_(hub),
      token_store_(token_store),
      enrolled_nodes_(enrolled_nodes),
      streams_(max_streams) {}

grpc::Status SupervisorServiceImpl::CreateService(grpc::ServerContext* ctx,
                                                  const v1::CreateServiceRequest* req,
                                                  v1::Service* resp) {
  return GuardHandler([&] {
    auto spec = ServiceSpecFromProto(req->spec());
    if (!spec) return Fail(spec.error());
    auto status = controller_.CreateService(std::move(*spec), ActorOf(ctx, token_store_));
    if (!status) return Fail(status.error());
    ServiceToProto(*status, resp);
    return grpc::Status::OK;
  });
}

grpc::Status SupervisorServiceImpl::GetService(grpc::ServerContext*,
                                               const v1::GetServiceRequest* req,
                                               v1::Service* resp) {
  return GuardHandler([&] {
    if (auto ok = RequireName(req->name()); !ok) return Fail(ok.error());
    auto status = controller_.GetService(req->name());
    if (!status) return Fail(status.error());
    ServiceToProto(*status, resp);
    return grpc::Status::OK;
  });
}

grpc::Status SupervisorServiceImpl::ListServices(grpc::ServerContext*,
                                                 const v1::ListServicesRequest*,
                                                 v1::ListServicesResponse* resp) {
  return GuardHandler([&] {
    for (const ServiceStatus& status : controller_.ListServices()) {
      ServiceToProto(status, resp->add_services());
    }
    return grpc::Status::OK;
  });
}

grpc::Status SupervisorServiceImpl::ScaleService(grpc::ServerContext* ctx,
                                                 const v1::ScaleServiceRequest* req,
                                                 v1::Service* resp) {
  return GuardHandler([&] {
    if (auto ok = RequireName(req->name()); !ok) return Fail(ok.error());
    if (req->replicas() > kMaxReplicas) {
      return Fail(InvalidArgument("replicas", "must be 0-" + std::to_string(kMaxReplicas) +
                                                  " (got " + std::to_string(req->replicas()) + ")")
                      .error());
    }
    auto status = controller_.ScaleService(req->name(), req->replicas(), req->expected_version(),
                                           ActorOf(ctx, token_store_));
    if (!status) return Fail(status.error());
    ServiceToProto(*status, resp);
    return grpc::Status::OK;
  });
}

grpc::Status SupervisorServiceImpl::SetAutoscale(grpc::ServerContext* ctx,
                                                 const v1::SetAutoscaleRequest* req,
                                                 v1::Service* resp) {
  return GuardHandler([&] {
    if (auto ok = RequireName(req->name()); !ok) return Fail(ok.error());
    std::optional<AutoscalePolicy> policy;
    if (req->has_policy()) {
      auto p = AutoscalePolicyFromProto(req->policy(), "policy");
      if (!p) return Fail(p.error());
      policy = *p;
    }
    auto status = controller_.SetAutoscale(req->name(), policy, req->expected_version(),
                                           ActorOf(ctx, token_store_));
    if (!status) return Fail(status.error());
    ServiceToProto(*status, resp);
    return grpc::Status::OK;
  });
}

grpc::Status SupervisorServiceImpl::DeleteService(grpc::ServerContext* ctx,
                                                  const v1::DeleteServiceRequest* req,
                                                  v1::DeleteServiceResponse*) {
  return GuardHandler([&] {
    if (auto ok = RequireName(req->name()); !ok) return Fail(ok.error());
    if (auto ok = controller_.DeleteService(req->name(), ActorOf(ctx, token_store_)); !ok)
      return Fail(ok.error());
    return grpc::Status::OK;
  });
}

grpc::Status SupervisorServiceImpl::ListNodes(grpc::ServerContext*, const v1::ListNodesRequest*,
                                              v1::ListNodesResponse* resp) {
  return GuardHandler([&] {
    for (const NodeStatus& node : controller_.ListNodes()) NodeToProto(node, resp->add_nodes());
    return grpc::Status::OK;
  });
}

grpc::Status SupervisorServiceImpl::GetNode(grpc::ServerContext*, const v1::GetNodeRequest* req,
                                            v1::Node* resp) {
  return GuardHandler([&] {
    if (auto ok = RequireName(req->name()); !ok) return Fail(ok.error());
    auto node = controller_.GetNode(req->name());
    if (!node) return Fail(node.error());
    NodeToProto(*node, resp);
    return grpc::Status::OK;
  });
}

grpc::Status SupervisorServiceImpl::DrainNode(grpc::ServerContext* ctx,
                                              const v1::DrainNodeRequest* req, v1::Node* resp) {
  return GuardHandler([&] {
    if (auto ok = RequireName(req->name()); !ok) return Fail(ok.error());
    auto node = controller_.DrainNode(req->name(), ActorOf(ctx, token_store_));
    if (!node) return Fail(node.error());
    NodeToProto(*node, resp);
    return grpc::Status::OK;
  });
}

grpc::Status SupervisorServiceImpl::UndrainNode(grpc::ServerContext* ctx,
                                                const v1::UndrainNodeRequest* req, v1::Node* resp) {
  return GuardHandler([&] {
    if (auto ok = RequireName(req->name()); !ok) return Fail(ok.error());
    auto node = controller_.UndrainNode(req->name(), ActorOf(ctx, token_store_));
    if (!node) return Fail(node.error());
    NodeToProto(*node, resp);
    return grpc::Status::OK;
  });
}

grpc::Status SupervisorServiceImpl::RemoveNode(grpc::ServerContext* ctx,
                                               const v1::RemoveNodeRequest* req,
                                               v1::RemoveNodeResponse* resp) {
  return GuardHandler([&] {
    if (!auth::IsValidNodeName(req->name()))
      return Fail(InvalidArgument("name", "must match [a-z0-9][a-z0-9.-]{0,62}").error());
    if (enrolled_nodes_ == nullptr) {
      return Fail(MakeError(ErrorCode::kFailedPrecondition,
                            "this supervisor runs --insecure: nodes are not enrolled, so there is "
                            "no certificate to revoke")
                      .error());
    }
    auto removed = enrolled_nodes_->Remove(req->name());
    if (!removed) return Fail(removed.error());
    const std::string why = "node " + req->name() + " was removed (node rm): its certificate " +
                            removed->serial + " is revoked";
    auto closed = controller_.DisconnectNode(req->name(), why);
    spdlog::warn("{}{}", why,
                 closed && *closed
                     ? "; its agent link is closed"
                     : (closed ? "" : "; closing its link: " + closed.error().message));
    // The removal stands whatever happens to its record: a revoked certificate must stay revoked.
    if (auto recorded = controller_.RecordEvent({.type = ClusterEventType::kNodeRemoved,
                                                 .node = req->name(),
                                                 .message = why,
                                                 .actor = ActorOf(ctx, token_store_)});
        !recorded) {
      spdlog::error("recording the removal of node {}: {}", req->name(), recorded.error().message);
    }
    resp->set_name(req->name());
    resp->set_revoked_serial(removed->serial);
    return grpc::Status::OK;
  });
}

grpc::Status SupervisorServiceImpl::WatchEvents(grpc::ServerContext* ctx,
                                                const v1::WatchClusterEventsRequest* req,
                                                grpc::ServerWriter<v1::ClusterEvent>* writer) {
  return GuardHandler([&] {
    auto slot = streams_.TryAcquire();
    if (!slot) return streams_.Exhausted("WatchEvents");
    // The store holds the log and the hub only says how far it goes, so a slow watcher costs no
    // memory and reads what it missed from the store.
    uint64_t next = req->from_sequence() == 0 ? hub_.last() + 1 : req->from_sequence();
    while (!ctx->IsCancelled()) {
      auto events = store_.EventsSince(next, kWatchBatch);
      if (!events) return Fail(events.error());
      for (const ClusterEvent& event : *events) {
        next = event.sequence + 1;
        if (!req->service().empty() && event.service != req->service()) continue;
        if (!req->node().empty() && event.node != req->node()) continue;
        v1::ClusterEvent out;
        ClusterEventToProto(event, &out);
        if (!writer->Write(out)) return grpc::Status::OK;
      }
      if (events->empty()) hub_.WaitNewerThan(next - 1, kWatchPoll);
    }
    return grpc::Status::OK;
  });
}

grpc::Status SupervisorServiceImpl::CreateToken(grpc::ServerContext* ctx,
                                                const v1::CreateTokenRequest* req,
                                                v1::CreateTokenResponse* resp) {
  return GuardHandler([&] {
    auto role = RoleFromProto(req->role());
    if (!role) return Fail(role.error());
    if (auto ok = RequireTokenStore(token_store_); !ok) return Fail(ok.error());
    const auto ttl = std::chrono::seconds(req->ttl_seconds());
    auto token = token_store_->Mint(*role, req->description(), ttl);
    if (!token) return Fail(token.error());
    auto id = auth::TokenStore::IdOf(*token);
    if (!id) return Fail(id.error());
    // A token nobody can trace is not handed out: unrecorded, it is revoked again.
    if (auto recorded = controller_.RecordEvent(
            {.type = ClusterEventType::kTokenCreated,
             .message = "token " + *id + " created: " + std::string(auth::RoleName(*role)) +
                        (ttl.count() == 0 ? ", until revoked"
                                          : ", for " + std::to_string(ttl.count()) + " s"),
             .actor = ActorOf(ctx, token_store_)});
        !recorded) {
      (void)token_store_->Revoke(*id);
      return Fail(recorded.error().Wrap("recording the new token"));
    }
    resp->set_id(*id);
    if (ttl.count() != 0) {
      *resp->mutable_expires_at() = TimeUtil::SecondsToTimestamp(
          std::chrono::duration_cast<std::chrono::seconds>(
              std::chrono::system_clock::now().time_since_epoch() + ttl)
              .count());
    }
    resp->set_token(std::move(*token));
    return grpc::Status::OK;
  });
}

namespace {
void TokenInfoToProto(const auth::TokenInfo& in, v1::TokenInfo* out) {
  out->set_id(in.id);
  out->set_kind(in.kind);
  if (in.expires_at) {
    *out->mutable_expires_at() = TimeUtil::SecondsToTimestamp(
        std::chrono::duration_cast<std::chrono::seconds>(in.expires_at->time_since_epoch())
            .count());
  }
  out->set_uses_left(in.uses_left);
  out->set_description(in.description);
}
}  // namespace

grpc::Status SupervisorServiceImpl::ListTokens(grpc::ServerContext*, const v1::ListTokensRequest*,
                                               v1::ListTokensResponse* resp) {
  return GuardHandler([&] {
    if (auto ok = RequireTokenStore(token_store_); !ok) return Fail(ok.error());
    auto tokens = token_store_->List();
    if (!tokens) return Fail(tokens.error());
    for (const auth::TokenInfo& t : *tokens) TokenInfoToProto(t, resp->add_tokens());
    return grpc::Status::OK;
  });
}

grpc::Status SupervisorServiceImpl::RevokeToken(grpc::ServerContext* ctx,
                                                const v1::RevokeTokenRequest* req,
                                                v1::RevokeTokenResponse* resp) {
  return GuardHandler([&] {
    if (auto ok = RequireTokenStore(token_store_); !ok) return Fail(ok.error());
    auto revoked = token_store_->Revoke(req->id());
    if (!revoked) return Fail(revoked.error());
    spdlog::info("token {} ({} \"{}\") revoked", revoked->id, revoked->kind, revoked->description);
    // The revocation stands whatever happens to its record.
    if (auto recorded = controller_.RecordEvent(
            {.type = ClusterEventType::kTokenRevoked,
             .message = "token " + revoked->id + " (" + revoked->kind + ") revoked",
             .actor = ActorOf(ctx, token_store_)});
        !recorded) {
      spdlog::error("recording the revocation of token {}: {}", revoked->id,
                    recorded.error().message);
    }
    TokenInfoToProto(*revoked, resp->mutable_revoked());
    return grpc::Status::OK;
  });
}

grpc::Status SupervisorServiceImpl::CreateJoinToken(grpc::ServerContext* ctx,
                                                    const v1::CreateJoinTokenRequest* req,
                                                    v1::CreateJoinTokenResponse* resp) {
  return GuardHandler([&] {
    if (auto ok = RequireTokenStore(token_store_); !ok) return Fail(ok.error());
    const uint32_t ttl = req->ttl_seconds() == 0 ? kDefaultJoinTokenTtlSeconds : req->ttl_seconds();
    const uint32_t uses = req->uses() == 0 ? 1 : req->uses();
    auto token = token_store_->MintJoinToken(std::chrono::seconds(ttl), uses);
    if (!token) return Fail(token.error());
    auto id = auth::TokenStore::IdOf(token->token);
    if (!id) return Fail(id.error());
    if (auto recorded = controller_.RecordEvent(
            {.type = ClusterEventType::kJoinTokenCreated,
             .message = "join token " + *id + " created: " + std::to_string(uses) +
                        " enrollment(s) within " + std::to_string(ttl) + " s",
             .actor = ActorOf(ctx, token_store_)});
        !recorded) {
      (void)token_store_->Revoke(*id);
      return Fail(recorded.error().Wrap("recording the new join token"));
    }
    resp->set_token(std::move(token->token));
    *resp->mutable_expires_at() = TimeUtil::SecondsToTimestamp(
        std::chrono::duration_cast<std::chrono::seconds>(token->expires_at.time_since_epoch())
            .count());
    return grpc::Status::OK;
  });
}

}  // namespace phoenix::supervisor::api
