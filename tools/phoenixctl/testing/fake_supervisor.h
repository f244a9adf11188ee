// Test double for the supervisor's admin API: a real grpc::Server on 127.0.0.1 (port 0; plaintext,
// or TLS with the given server credentials) serving a small in-memory Supervisor service that
// records every request together with the "authorization" metadata it came with, and answers from
// canned state. Services live in a map (CreateService makes every replica pending; tests put richer
// services in with AddService); nodes likewise; cluster events are appended with increasing
// sequence numbers and streamed to watchers. It checks no token: tests assert on what reached it,
// and script refusals with FailNext.
//
// Threading: handlers run on gRPC threads; all state is guarded by mu_. Tests read the recorded
// requests through the accessors, which copy under the lock.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>

#include "phoenix/v1/supervisor.grpc.pb.h"
#include "tools/phoenixctl/cli.h"
#include "tools/phoenixctl/testing/fake_agent.h"  // CliResult

namespace phoenix::ctl::testing {

class FakeSupervisor final : public v1::Supervisor::Service {
 public:
  explicit FakeSupervisor(
      std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials()) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", credentials, &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~FakeSupervisor() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // The next call of `method` ("CreateService", ...) fails with `status`.
  void FailNext(std::string method, grpc::Status status) {
    std::lock_guard lock(mu_);
    failures_[std::move(method)] = std::move(status);
  }
  void AddService(v1::Service service) {
    std::lock_guard lock(mu_);
    services_[service.spec().name()] = std::move(service);
  }
  void AddNode(v1::Node node) {
    std::lock_guard lock(mu_);
    nodes_[node.name()] = std::move(node);
  }
  void Emit(v1::ClusterEventType type, std::string service, std::string node,
            std::string message = {}) {
    std::lock_guard lock(mu_);
    v1::ClusterEvent event;
    event.set_sequence(events_.size() + 1);
    *event.mutable_time() = google::protobuf::util::TimeUtil::GetCurrentTime();
    event.set_type(type);
    event.set_service(std::move(service));
    event.set_node(std::move(node));
    event.set_message(std::move(message));
    events_.push_back(std::move(event));
    cv_.notify_all();
  }
  void SetMintedToken(std::string token) {
    std::lock_guard lock(mu_);
    minted_token_ = std::move(token);
  }

  // "Method" -> the authorization metadata of each call, in order ("" when absent).
  std::vector<std::string> authorization(const std::string& method) const {
    std::lock_guard lock(mu_);
    auto it = authorization_.find(method);
    return it == authorization_.end() ? std::vector<std::string>{} : it->second;
  }
  int calls() const {
    std::lock_guard lock(mu_);
    int total = 0;
    for (const auto& [method, values] : authorization_) total += static_cast<int>(values.size());
    return total;
  }
  std::vector<v1::CreateServiceRequest> create_requests() const { return Copy(create_requests_); }
  std::vector<v1::ScaleServiceRequest> scale_requests() const { return Copy(scale_requests_); }
  std::vector<v1::SetAutoscaleRequest> autoscale_requests() const {
    return Copy(autoscale_requests_);
  }
  std::vector<std::string> deleted() const { return Copy(deleted_); }
  std::vector<std::string> drained() const { return Copy(drained_); }
  std::vector<std::string> undrained() const { return Copy(undrained_); }
  std::vector<v1::WatchClusterEventsRequest> watch_requests() const {
    return Copy(watch_requests_);
  }
  std::vector<v1::CreateTokenRequest> token_requests() const { return Copy(token_requests_); }
  std::vector<v1::CreateJoinTokenRequest> join_token_requests() const {
    return Copy(join_token_requests_);
  }

  grpc::Status CreateService(grpc::ServerContext* context, const v1::CreateServiceRequest* request,
                             v1::Service* response) override {
    std::lock_guard lock(mu_);
    if (auto failure = Record("CreateService", context)) return *failure;
    create_requests_.push_back(*request);
    const std::string& name = request->spec().name();
    if (services_.contains(name)) {
      return grpc::Status(grpc::StatusCode::ALREADY_EXISTS, "service " + name + " already exists");
    }
    v1::Service service;
    *service.mutable_spec() = request->spec();
    service.set_version(1);
    *service.mutable_created_at() = google::protobuf::util::TimeUtil::GetCurrentTime();
    for (uint32_t i = 0; i < request->spec().replicas(); ++i) {
      v1::Replica* replica = service.add_replicas();
      replica->set_index(i);
      replica->set_state(v1::REPLICA_STATE_PENDING);
      replica->set_pending_reason("no nodes");
    }
    services_[name] = service;
    *response = service;
    return grpc::Status::OK;
  }

  grpc::Status GetService(grpc::ServerContext* context, const v1::GetServiceRequest* request,
                          v1::Service* response) override {
    std::lock_guard lock(mu_);
    if (auto failure = Record("GetService", context)) return *failure;
    auto it = services_.find(request->name());
    if (it == services_.end()) return ServiceNotFound(request->name());
    *response = it->second;
    return grpc::Status::OK;
  }

  grpc::Status ListServices(grpc::ServerContext* context, const v1::ListServicesRequest*,
                            v1::ListServicesResponse* response) override {
    std::lock_guard lock(mu_);
    if (auto failure = Record("ListServices", context)) return *failure;
    for (const auto& [name, service] : services_) *response->add_services() = service;
    return grpc::Status::OK;
  }

  grpc::Status ScaleService(grpc::ServerContext* context, const v1::ScaleServiceRequest* request,
                            v1::Service* response) override {
    std::lock_guard lock(mu_);
    if (auto failure = Record("ScaleService", context)) return *failure;
    scale_requests_.push_back(*request);
    auto it = services_.find(request->name());
    if (it == services_.end()) return ServiceNotFound(request->name());
    if (request->expected_version() != 0 && request->expected_version() != it->second.version()) {
      return grpc::Status(
          grpc::StatusCode::ABORTED,
          "service " + request->name() + " is at version " + std::to_string(it->second.version()));
    }
    it->second.mutable_spec()->set_replicas(request->replicas());
    it->second.set_version(it->second.version() + 1);
    *response = it->second;
    return grpc::Status::OK;
  }

  grpc::Status SetAutoscale(grpc::ServerContext* context, const v1::SetAutoscaleRequest* request,
                            v1::Service* response) override {
    std::lock_guard lock(mu_);
    if (auto failure = Record("SetAutoscale", context)) return *failure;
    autoscale_requests_.push_back(*request);
    auto it = services_.find(request->name());
    if (it == services_.end()) return ServiceNotFound(request->name());
    if (request->has_policy()) {
      *it->second.mutable_spec()->mutable_autoscale() = request->policy();
    } else {
      it->second.mutable_spec()->clear_autoscale();
    }
    it->second.set_version(it->second.version() + 1);
    *response = it->second;
    return grpc::Status::OK;
  }

  grpc::Status DeleteService(grpc::ServerContext* context, const v1::DeleteServiceRequest* request,
                             v1::DeleteServiceResponse*) override {
    std::lock_guard lock(mu_);
    if (auto failure = Record("DeleteService", context)) return *failure;
    deleted_.push_back(request->name());
    if (services_.erase(request->name()) == 0) return ServiceNotFound(request->name());
    return grpc::Status::OK;
  }

  grpc::Status ListNodes(grpc::ServerContext* context, const v1::ListNodesRequest*,
                         v1::ListNodesResponse* response) override {
    std::lock_guard lock(mu_);
    if (auto failure = Record("ListNodes", context)) return *failure;
    for (const auto& [name, node] : nodes_) *response->add_nodes() = node;
    return grpc::Status::OK;
  }

  grpc::Status GetNode(grpc::ServerContext* context, const v1::GetNodeRequest* request,
                       v1::Node* response) override {
    std::lock_guard lock(mu_);
    if (auto failure = Record("GetNode", context)) return *failure;
    auto it = nodes_.find(request->name());
    if (it == nodes_.end()) return NodeNotFound(request->name());
    *response = it->second;
    return grpc::Status::OK;
  }

  grpc::Status DrainNode(grpc::ServerContext* context, const v1::DrainNodeRequest* request,
                         v1::Node* response) override {
    std::lock_guard lock(mu_);
    if (auto failure = Record("DrainNode", context)) return *failure;
    drained_.push_back(request->name());
    auto it = nodes_.find(request->name());
    if (it == nodes_.end()) return NodeNotFound(request->name());
    it->second.set_drained(true);
    *response = it->second;
    return grpc::Status::OK;
  }

  grpc::Status UndrainNode(grpc::ServerContext* context, const v1::UndrainNodeRequest* request,
                           v1::Node* response) override {
    std::lock_guard lock(mu_);
    if (auto failure = Record("UndrainNode", context)) return *failure;
    undrained_.push_back(request->name());
    auto it = nodes_.find(request->name());
    if (it == nodes_.end()) return NodeNotFound(request->name());
    it->second.set_drained(false);
    *response = it->second;
    return grpc::Status::OK;
  }

  grpc::Status RemoveNode(grpc::ServerContext* context, const v1::RemoveNodeRequest* request,
                          v1::RemoveNodeResponse* response) override {
    std::lock_guard lock(mu_);
    if (auto failure = Record("RemoveNode", context)) return *failure;
    if (nodes_.erase(request->name()) == 0) return NodeNotFound(request->name());
    response->set_name(request->name());
    response->set_revoked_serial("5e1a1");
    return grpc::Status::OK;
  }

  grpc::Status WatchEvents(grpc::ServerContext* context,
                           const v1::WatchClusterEventsRequest* request,
                           grpc::ServerWriter<v1::ClusterEvent>* writer) override {
    std::unique_lock lock(mu_);
    if (auto failure = Record("WatchEvents", context)) return *failure;
    watch_requests_.push_back(*request);
    uint64_t next = request->from_sequence() == 0 ? events_.size() + 1 : request->from_sequence();
    while (!stopping_ && !context->IsCancelled()) {
      while (next <= events_.size()) {
        v1::ClusterEvent event = events_[next - 1];
        ++next;
        if (!request->service().empty() && event.service() != request->service()) continue;
        if (!request->node().empty() && event.node() != request->node()) continue;
        lock.unlock();
        bool ok = writer->Write(event);
        lock.lock();
        if (!ok) return grpc::Status::OK;
      }
      cv_.wait_for(lock, std::chrono::milliseconds(20));
    }
    return grpc::Status::OK;
  }

  grpc::Status CreateToken(grpc::ServerContext* context, const v1::CreateTokenRequest* request,
                           v1::CreateTokenResponse* response) override {
    std::lock_guard lock(mu_);
    if (auto failure = Record("CreateToken", context)) return *failure;
    token_requests_.push_back(*request);
    response->set_token(minted_token_);
    return grpc::Status::OK;
  }

  grpc::Status CreateJoinToken(grpc::ServerContext* context,
                               const v1::CreateJoinTokenRequest* request,
                               v1::CreateJoinTokenResponse* response) override {
    std::lock_guard lock(mu_);
    if (auto failure = Record("CreateJoinToken", context)) return *failure;
    join_token_requests_.push_back(*request);
    response->set_token(minted_token_);
    *response->mutable_expires_at() =
        google::protobuf::util::TimeUtil::GetCurrentTime() +
        google::protobuf::util::TimeUtil::SecondsToDuration(request->ttl_seconds());
    return grpc::Status::OK;
  }

  grpc::Status ListTokens(grpc::ServerContext* context, const v1::ListTokensRequest*,
                          v1::ListTokensResponse* response) override {
    std::lock_guard lock(mu_);
    if (auto failure = Record("ListTokens", context)) return *failure;
    for (const auto& t : tokens_) *response->add_tokens() = t;
    return grpc::Status::OK;
  }

  grpc::Status RevokeToken(grpc::ServerContext* context, const v1::RevokeTokenRequest* request,
                           v1::RevokeTokenResponse* response) override {
    std::lock_guard lock(mu_);
    if (auto failure = Record("RevokeToken", context)) return *failure;
    for (auto it = tokens_.begin(); it != tokens_.end(); ++it) {
      if (it->id().starts_with(request->id())) {
        *response->mutable_revoked() = *it;
        tokens_.erase(it);
        return grpc::Status::OK;
      }
    }
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "no live token has id " + request->id());
  }
  void AddToken(v1::TokenInfo token) {
    std::lock_guard lock(mu_);
    tokens_.push_back(std::move(token));
  }

 private:
  template <typename T>
  T Copy(const T& value) const {
    std::lock_guard lock(mu_);
    return value;
  }
  static grpc::Status ServiceNotFound(const std::string& name) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "service " + name + " not found");
  }
  static grpc::Status NodeNotFound(const std::string& name) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "node " + name + " not found");
  }
  // Records the call's authorization metadata; returns the scripted failure, if any.
  std::optional<grpc::Status> Record(const std::string& method, grpc::ServerContext* context) {
    std::string value;
    const auto& metadata = context->client_metadata();
    if (auto it = metadata.find("authorization"); it != metadata.end()) {
      value.assign(it->second.data(), it->second.size());
    }
    authorization_[method].push_back(std::move(value));
    auto it = failures_.find(method);
    if (it == failures_.end()) return std::nullopt;
    grpc::Status status = it->second;
    failures_.erase(it);
    return status;
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::map<std::string, grpc::Status> failures_;
  std::map<std::string, std::vector<std::string>> authorization_;
  std::map<std::string, v1::Service> services_;
  std::map<std::string, v1::Node> nodes_;
  std::vector<v1::ClusterEvent> events_;
  std::string minted_token_ = "phx_minted_token";
  std::vector<v1::CreateServiceRequest> create_requests_;
  std::vector<v1::ScaleServiceRequest> scale_requests_;
  std::vector<v1::SetAutoscaleRequest> autoscale_requests_;
  std::vector<std::string> deleted_;
  std::vector<std::string> drained_;
  std::vector<std::string> undrained_;
  std::vector<v1::WatchClusterEventsRequest> watch_requests_;
  std::vector<v1::CreateTokenRequest> token_requests_;
  std::vector<v1::TokenInfo> tokens_;
  std::vector<v1::CreateJoinTokenRequest> join_token_requests_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// Runs a command group against `supervisor` the way main() would with the environment `env`,
// after inserting "--supervisor ADDRESS --insecure" (and "--token TOKEN" when not empty) right
// after the subcommand (or first, when args start with a flag: a command without subcommands),
// capturing stdout and stderr.
template <typename GroupFn>
CliResult RunSupervisorCli(GroupFn group, const FakeSupervisor& supervisor,
                           std::vector<std::string> args, const std::string& token = {},
                           SupervisorEnv env = {}) {
  std::vector<std::string> flags = {"--supervisor", supervisor.address(), "--insecure"};
  if (!token.empty()) {
    flags.push_back("--token");
    flags.push_back(token);
  }
  auto at = args.empty() || args[0].starts_with("-") ? args.begin() : args.begin() + 1;
  args.insert(at, flags.begin(), flags.end());
  std::ostringstream out;
  std::ostringstream err;
  Context ctx(out, err, /*env_endpoint=*/"", std::move(env));
  CliResult result;
  result.exit_code = group(ctx, std::span<const std::string>(args));
  result.out = out.str();
  result.err = err.str();
  return result;
}

}  // namespace phoenix::ctl::testing
