// SupervisorService: the admins' gRPC API (phoenix.v1.Supervisor). Converts requests to the
// supervisor's values (convert.h), hands services and nodes to the Controller's blocking bridge,
// streams the cluster event log from the StateStore and mints tokens in the TokenStore, mapping
// every Result onto a grpc::Status whose message names the offending field. It decides nothing
// and holds no cluster state of its own.
//
// Authorization is not done here: the authorizer installed on the server credentials
// (supervisor/auth) has refused every call whose token lacks the method's role before a handler
// runs.
//
// Ownership: borrows the controller, store, hub and token store; all must outlive the service.
// token_store may be null (a supervisor without one, e.g. --insecure): CreateToken and
// CreateJoinToken then fail with FAILED_PRECONDITION.
//
// Threading: handlers run on gRPC's threads and call only thread-safe collaborators (the
// controller's blocking bridge, the store, the hub, the token store). WatchEvents waits in bounded
// steps and ends when the client cancels or the server shuts down. No exception escapes a handler
// (GuardHandler).
#pragma once

#include <chrono>

#include "phoenix/v1/supervisor.grpc.pb.h"
#include "proto/support/event_hub.h"
#include "proto/support/server_limits.h"
#include "supervisor/auth/enrolled_nodes.h"
#include "supervisor/auth/token_store.h"
#include "supervisor/reconcile/controller.h"
#include "supervisor/state/state_store.h"

namespace phoenix::supervisor::api {

class SupervisorServiceImpl final : public v1::Supervisor::Service {
 public:
  // At most `max_streams` WatchEvents streams at once (proto/support/server_limits.h).
  // enrolled_nodes may be null (--insecure: no enrollment): RemoveNode is then
  // FAILED_PRECONDITION.
  SupervisorServiceImpl(Controller& controller, StateStore& store, EventHub& hub,
                        auth::TokenStore* token_store, int max_streams = ServerLimits{}.max_streams,
                        auth::EnrolledNodes* enrolled_nodes = nullptr);

  grpc::Status CreateService(grpc::ServerContext*, const v1::CreateServiceRequest*,
                             v1::Service*) override;
  grpc::Status GetService(grpc::ServerContext*, const v1::GetServiceRequest*,
                          v1::Service*) override;
  grpc::Status ListServices(grpc::ServerContext*, const v1::ListServicesRequest*,
                            v1::ListServicesResponse*) override;
  grpc::Status ScaleService(grpc::ServerContext*, const v1::ScaleServiceRequest*,
                            v1::Service*) override;
  grpc::Status SetAutoscale(grpc::ServerContext*, const v1::SetAutoscaleRequest*,
                            v1::Service*) override;
  grpc::Status DeleteService(grpc::ServerContext*, const v1::DeleteServiceRequest*,
                             v1::DeleteServiceResponse*) override;
  grpc::Status ListNodes(grpc::ServerContext*, const v1::ListNodesRequest*,
                         v1::ListNodesResponse*) override;
  grpc::Status GetNode(grpc::ServerContext*, const v1::GetNodeRequest*, v1::Node*) override;
  grpc::Status DrainNode(grpc::ServerContext*, const v1::DrainNodeRequest*, v1::Node*) override;
  grpc::Status UndrainNode(grpc::ServerContext*, const v1::UndrainNodeRequest*, v1::Node*) override;
  grpc::Status RemoveNode(grpc::ServerContext*, const v1::RemoveNodeRequest*,
                          v1::RemoveNodeResponse*) override;
  grpc::Status WatchEvents(grpc::ServerContext*, const v1::WatchClusterEventsRequest*,
                           grpc::ServerWriter<v1::ClusterEvent>*) override;
  grpc::Status CreateToken(grpc::ServerContext*, const v1::CreateTokenRequest*,
                           v1::CreateTokenResponse*) override;
  grpc::Status CreateJoinToken(grpc::ServerContext*, const v1::CreateJoinTokenRequest*,
                               v1::CreateJoinTokenResponse*) override;
  grpc::Status ListTokens(grpc::ServerContext*, const v1::ListTokensRequest*,
                          v1::ListTokensResponse*) override;
  grpc::Status RevokeToken(grpc::ServerContext*, const v1::RevokeTokenRequest*,
                           v1::RevokeTokenResponse*) override;

 private:
  Controller& controller_;
  StateStore& store_;
  EventHub& hub_;
  auth::TokenStore* const token_store_;
  auth::EnrolledNodes* const enrolled_nodes_;
  StreamLimiter streams_;
};

}  // namespace phoenix::supervisor::api
