// AgentService: the agent's gRPC API (phoenix.v1.AgentService). Validates requests, converts
// between protobuf and domain values, and maps every Result onto a grpc::Status whose message names
// the offending field. It holds no guest state of its own: the GuestManager decides, the stores
// remember.
//
// Threading: handlers run on gRPC's threads and call only thread-safe collaborators (the manager's
// blocking bridge, the stores, the event hub). Streaming handlers poll with bounded waits and stop
// when the client cancels. No exception escapes a handler (GuardHandler).
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "agent/node/node_info.h"
#include "agent/reconcile/guest_manager.h"
#include "phoenix/v1/agent.grpc.pb.h"
#include "proto/support/event_hub.h"
#include "proto/support/server_limits.h"

namespace phoenix::agent::api {

class AgentServiceImpl final : public v1::AgentService::Service {
 public:
  struct Options {
    NodeIdentity node;
    HostCapacity capacity;
    std::filesystem::path state_dir;
    std::filesystem::path recipes_dir;  // image recipes: <recipes_dir>/<name>/build.sh
    std::string version;
    int max_streams = ServerLimits{}.max_streams;  // WatchEvents, GuestLogs, BuildImage at once
  };

  AgentServiceImpl(GuestManager& guests, ImageStore& images, AgentStore& store, EventHub& hub,
                   std::map<RuntimeKind, Runtime*> runtimes, Options options);

  grpc::Status RunGuest(grpc::ServerContext*, const v1::RunGuestRequest*, v1::Guest*) override;
  grpc::Status GetGuest(grpc::ServerContext*, const v1::GetGuestRequest*, v1::Guest*) override;
  grpc::Status ListGuests(grpc::ServerContext*, const v1::ListGuestsRequest*,
                          v1::ListGuestsResponse*) override;
  grpc::Status StartGuest(grpc::ServerContext*, const v1::StartGuestRequest*, v1::Guest*) override;
  grpc::Status StopGuest(grpc::ServerContext*, const v1::StopGuestRequest*, v1::Guest*) override;
  grpc::Status DeleteGuest(grpc::ServerContext*, const v1::DeleteGuestRequest*,
                           v1::DeleteGuestResponse*) override;
  grpc::Status KillGuest(grpc::ServerContext*, const v1::KillGuestRequest*,
                         v1::KillGuestResponse*) override;
  grpc::Status GuestLogs(grpc::ServerContext*, const v1::GuestLogsRequest*,
                         grpc::ServerWriter<v1::LogChunk>*) override;
  grpc::Status WatchEvents(grpc::ServerContext*, const v1::WatchEventsRequest*,
                           grpc::ServerWriter<v1::Event>*) override;
  grpc::Status ListImages(grpc::ServerContext*, const v1::ListImagesRequest*,
                          v1::ListImagesResponse*) override;
  grpc::Status BuildImage(grpc::ServerContext*, const v1::BuildImageRequest*,
                          grpc::ServerWriter<v1::BuildImageProgress>*) override;
  grpc::Status ImportImage(grpc::ServerContext*, const v1::ImportImageRequest*,
                           v1::Image*) override;
  grpc::Status GetNodeInfo(grpc::ServerContext*, const v1::GetNodeInfoRequest*,
                           v1::NodeInfo*) override;

 private:
  void RecordImageAdded(const ImageRecord& image);

  GuestManager& guests_;
  ImageStore& images_;
  AgentStore& store_;
  EventHub& hub_;
  const std::map<RuntimeKind, Runtime*> runtimes_;
  const Options options_;
  StreamLimiter streams_{options_.max_streams};
};

}  // namespace phoenix::agent::api
