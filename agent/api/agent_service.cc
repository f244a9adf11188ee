#include "agent/api/agent_service.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <spdlog/spdlog.h>

#include "agent/api/convert.h"
#include "proto/support/grpc_status.h"

namespace phoenix::agent::api {

namespace {

using std::chrono::milliseconds;

constexpr milliseconds kStreamPoll{250};
constexpr size_t kLogChunkBytes = 32 * 1024;

grpc::Status Fail(const Error& e) { return ToGrpcStatus(e); }

Result<void> RequireName(const std::string& name) {
  if (name.empty()) return InvalidArgument("name", "is required");
  return {};
}

}  // namespace

AgentServiceImpl::AgentServiceImpl(GuestManager& guests, ImageStore& images, AgentStore& store,
                                   EventHub& hub, std::map<RuntimeKind, Runtime*> runtimes,
                                   Options options)
    : guests_(guests),
      images_(images),
      store_(store),
      hub_(hub),
      runtimes_(std::move(runtimes)),
      options_(std::move(options)) {}

grpc::Status AgentServiceImpl::RunGuest(grpc::ServerContext*, const v1::RunGuestRequest* req,
                                        v1::Guest* resp) {
  return GuardHandler([&] {
    auto spec = spec::ParseGuestSpec(req->spec());
    if (!spec) return Fail(spec.error());
    auto rec = guests_.Run(std::move(*spec));
    if (!rec) return Fail(rec.error());
    GuestToProto(*rec, options_.node.name, resp);
    return grpc::Status::OK;
  });
}

grpc::Status AgentServiceImpl::GetGuest(grpc::ServerContext*, const v1::GetGuestRequest* req,
                                        v1::Guest* resp) {
  return GuardHandler([&] {
    if (auto ok = RequireName(req->name()); !ok) return Fail(ok.error());
    auto rec = guests_.Get(req->name());
    if (!rec) return Fail(rec.error());
    GuestToProto(*rec, options_.node.name, resp);
    return grpc::Status::OK;
  });
}

grpc::Status AgentServiceImpl::ListGuests(grpc::ServerContext*, const v1::ListGuestsRequest*,
                                          v1::ListGuestsResponse* resp) {
  return GuardHandler([&] {
    for (const GuestRecord& rec : guests_.List()) {
      GuestToProto(rec, options_.node.name, resp->add_guests());
    }
    return grpc::Status::OK;
  });
}

grpc::Status AgentServiceImpl::StartGuest(grpc::ServerContext*, const v1::StartGuestRequest* req,
                                          v1::Guest* resp) {
  return GuardHandler([&] {
    if (auto ok = RequireName(req->name()); !ok) return Fail(ok.error());
    auto rec = guests_.Start(req->name());
    if (!rec) return Fail(rec.error());
    GuestToProto(*rec, options_.node.name, resp);
    return grpc::Status::OK;
  });
}

grpc::Status AgentServiceImpl::StopGuest(grpc::ServerContext*, const v1::StopGuestRequest* req,
                                         v1::Guest* resp) {
  return GuardHandler([&] {
    if (auto ok = RequireName(req->name()); !ok) return Fail(ok.error());
    auto grace = spec::StopGrace(req->timeout_ms());
    if (!grace) return Fail(grace.error());
    auto rec = guests_.Stop(req->name(), *grace);
    if (!rec) return Fail(rec.error());
    GuestToProto(*rec, options_.node.name, resp);
    return grpc::Status::OK;
  });
}

grpc::Status AgentServiceImpl::DeleteGuest(grpc::ServerContext*, const v1::DeleteGuestRequest* req,
                                           v1::DeleteGuestResponse*) {
  return GuardHandler([&] {
    if (auto ok = RequireName(req->name()); !ok) return Fail(ok.error());
    if (auto r = guests_.Delete(req->name()); !r) return Fail(r.error());
    return grpc::Status::OK;
  });
}

grpc::Status AgentServiceImpl::KillGuest(grpc::ServerContext*, const v1::KillGuestRequest* req,
                                         v1::KillGuestResponse* resp) {
  return GuardHandler([&] {
    if (auto ok = RequireName(req->name()); !ok) return Fail(ok.error());
    auto pid = guests_.Kill(req->name());
    if (!pid) return Fail(pid.error());
    resp->set_pid(*pid);
    return grpc::Status::OK;
  });
}

grpc::Status AgentServiceImpl::GuestLogs(grpc::ServerContext* ctx, const v1::GuestLogsRequest* req,
                                         grpc::ServerWriter<v1::LogChunk>* writer) {
  return GuardHandler([&] {
    auto slot = streams_.TryAcquire();
    if (!slot) return streams_.Exhausted("GuestLogs");
    if (auto ok = RequireName(req->name()); !ok) return Fail(ok.error());
    auto path = guests_.LogPath(req->name());
    if (!path) return Fail(path.error());
    int fd = -1;
    // The log appears with the first instance; a follower waits for it.
    while ((fd = ::open(path->c_str(), O_RDONLY | O_CLOEXEC)) < 0) {
      if (errno != ENOENT) return Fail(ErrnoError("open " + path->string()).error());
      if (!req->follow()) return grpc::Status::OK;
      if (ctx->IsCancelled()) return grpc::Status::OK;
      std::this_thread::sleep_for(kStreamPoll);
    }
    struct stat st {};
    if (::fstat(fd, &st) == 0 && req->tail_bytes() > 0 &&
        static_cast<uint64_t>(st.st_size) > req->tail_bytes()) {
      ::lseek(fd, st.st_size - static_cast<off_t>(req->tail_bytes()), SEEK_SET);
    }
    std::string buf(kLogChunkBytes, '\0');
    grpc::Status status = grpc::Status::OK;
    while (!ctx->IsCancelled()) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        status = Fail(ErrnoError("read " + path->string()).error());
        break;
      }
      if (n == 0) {
        if (!req->follow()) break;
        // Stop following when the guest is deleted.
        if (!guests_.Get(req->name())) break;
        // The log was rotated (truncated in place): go on from its new start.
        if (struct stat now{}; ::fstat(fd, &now) == 0 && now.st_size < ::lseek(fd, 0, SEEK_CUR)) {
          ::lseek(fd, 0, SEEK_SET);
        }
        std::this_thread::sleep_for(kStreamPoll);
        continue;
      }
      v1::LogChunk chunk;
      chunk.set_data(buf.data(), static_cast<size_t>(n));
      if (!writer->Write(chunk)) break;
    }
    ::close(fd);
    return status;
  });
}

grpc::Status AgentServiceImpl::WatchEvents(grpc::ServerContext* ctx,
                                           const v1::WatchEventsRequest* req,
                                           grpc::ServerWriter<v1::Event>* writer) {
  return GuardHandler([&] {
    auto slot = streams_.TryAcquire();
    if (!slot) return streams_.Exhausted("WatchEvents");
    uint64_t next = req->from_sequence() == 0 ? hub_.last() + 1 : req->from_sequence();
    while (!ctx->IsCancelled()) {
      auto events = store_.EventsSince(next, 256);
      if (!events) return Fail(events.error());
      for (const EventRecord& e : *events) {
        next = e.sequence + 1;
        if (!req->guest().empty() && e.guest != req->guest()) continue;
        v1::Event out;
        EventToProto(e, &out);
        if (!writer->Write(out)) return grpc::Status::OK;
      }
      if (events->empty()) hub_.WaitNewerThan(next - 1, kStreamPoll * 4);
    }
    return grpc::Status::OK;
  });
}

grpc::Status AgentServiceImpl::ListImages(grpc::ServerContext*, const v1::ListImagesRequest*,
                                          v1::ListImagesResponse* resp) {
  return GuardHandler([&] {
    auto images = images_.List();
    if (!images) return Fail(images.error());
    for (const ImageRecord& image : *images) ImageToProto(image, resp->add_images());
    return grpc::Status::OK;
  });
}

void AgentServiceImpl::RecordImageAdded(const ImageRecord& image) {
  auto stored =
      store_.AppendEvent(EventRecord{0, Clock::now(), EventType::kImageAdded, "",
                                     "image " + image.name + ":" + image.tag + " is " + image.id});
  if (stored) hub_.Published(stored->sequence);
}

grpc::Status AgentServiceImpl::BuildImage(grpc::ServerContext*, const v1::BuildImageRequest* req,
                                          grpc::ServerWriter<v1::BuildImageProgress>* writer) {
  return GuardHandler([&] {
    auto slot = streams_.TryAcquire();
    if (!slot) return streams_.Exhausted("BuildImage");
    const std::string recipe = req->recipe().empty() ? "demo" : req->recipe();
    const std::string name = req->name().empty() ? recipe : req->name();
    const std::string tag = req->tag().empty() ? "latest" : req->tag();
    auto image = images_.Build(options_.recipes_dir, recipe, name, tag, [&](std::string_view line) {
      v1::BuildImageProgress progress;
      progress.set_line(std::string(line));
      writer->Write(progress);  // a client that went away only loses progress lines
    });
    if (!image) return Fail(image.error());
    RecordImageAdded(*image);
    v1::BuildImageProgress last;
    ImageToProto(*image, last.mutable_image());
    writer->Write(last);
    return grpc::Status::OK;
  });
}

grpc::Status AgentServiceImpl::ImportImage(grpc::ServerContext*, const v1::ImportImageRequest* req,
                                           v1::Image* resp) {
  return GuardHandler([&] {
    if (req->directory().empty()) return Fail(InvalidArgument("directory", "is required").error());
    if (req->name().empty()) return Fail(InvalidArgument("name", "is required").error());
    auto image =
        images_.Import(req->directory(), req->name(), req->tag().empty() ? "latest" : req->tag());
    if (!image) return Fail(image.error());
    RecordImageAdded(*image);
    ImageToProto(*image, resp);
    return grpc::Status::OK;
  });
}

grpc::Status AgentServiceImpl::GetNodeInfo(grpc::ServerContext*, const v1::GetNodeInfoRequest*,
                                           v1::NodeInfo* resp) {
  return GuardHandler([&] {
    resp->set_name(options_.node.name);
    resp->set_zone(options_.node.zone);
    resp->set_advertise_address(options_.node.advertise_address);
    resp->set_instance_subnet(options_.node.instance_subnet);
    for (const auto& [k, v] : options_.node.labels) (*resp->mutable_labels())[k] = v;
    resp->mutable_capacity()->set_vcpus(options_.capacity.vcpus);
    resp->mutable_capacity()->set_memory_mib(options_.capacity.memory_mib);
    NodeResources used = guests_.Allocated();
    resp->mutable_allocated()->set_vcpus(used.vcpus);
    resp->mutable_allocated()->set_memory_mib(used.memory_mib);
    for (RuntimeKind kind : {RuntimeKind::kVm, RuntimeKind::kMicroVm, RuntimeKind::kContainer}) {
      auto* acc = resp->add_runtimes();
      acc->set_runtime(RuntimeToProto(kind));
      auto it = runtimes_.find(kind);
      if (it == runtimes_.end()) {
        acc->set_available(false);
        acc->set_detail("not supported by this agent yet");
      } else {
        acc->set_available(it->second->Available());
        acc->set_detail(it->second->Describe());
      }
    }
    resp->set_version(options_.version);
    resp->set_state_dir(options_.state_dir.string());
    resp->set_guests(static_cast<uint32_t>(guests_.List().size()));
    return grpc::Status::OK;
  });
}

}  // namespace phoenix::agent::api
