// Test double for the agent: a real grpc::Server on a Unix socket in a fresh temp dir (phoenixctl
// talks to TCP agents only over TLS or with --insecure) serving a small in-memory
// AgentService that records every request and answers from canned state. Guests live in a map;
// events are appended with increasing sequence numbers and streamed to watchers; a kill can be
// scripted to emit CRASHED/RUNNING/HEALTHY after delays, as the real agent would.
//
// Threading: handlers run on gRPC threads; all state is guarded by mu_. Tests read the recorded
// requests through the accessors, which copy under the lock.
#pragma once

#include <stdlib.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>

#include "phoenix/v1/agent.grpc.pb.h"
#include "tools/phoenixctl/cli.h"

namespace phoenix::ctl::testing {

class FakeAgent final : public v1::AgentService::Service {
 public:
  struct KillScript {
    std::chrono::milliseconds running_after{30};
    std::chrono::milliseconds healthy_after{60};
  };

  FakeAgent() {
    char dir[] = "/tmp/phoenixctl-fake-agent-XXXXXX";
    PHX_CHECK(mkdtemp(dir) != nullptr);
    dir_ = dir;
    grpc::ServerBuilder builder;
    builder.AddListeningPort(endpoint(), grpc::InsecureServerCredentials());
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
    PHX_CHECK(server_ != nullptr);
  }
  ~FakeAgent() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    for (std::thread& t : timers_) t.join();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string endpoint() const { return "unix:" + dir_ + "/agent.sock"; }

  // The next call of `method` ("RunGuest", ...) fails with `status`.
  void FailNext(std::string method, grpc::Status status) {
    std::lock_guard lock(mu_);
    failures_[std::move(method)] = std::move(status);
  }
  void AddGuest(v1::Guest guest) {
    std::lock_guard lock(mu_);
    guests_[guest.spec().name()] = std::move(guest);
  }
  void AddImage(v1::Image image) {
    std::lock_guard lock(mu_);
    *images_.add_images() = std::move(image);
  }
  void SetNodeInfo(v1::NodeInfo info) {
    std::lock_guard lock(mu_);
    node_ = std::move(info);
  }
  void SetLogs(std::string data) {
    std::lock_guard lock(mu_);
    logs_ = std::move(data);
  }
  void SetBuildLines(std::vector<std::string> lines) {
    std::lock_guard lock(mu_);
    build_lines_ = std::move(lines);
  }
  // RunGuest and KillGuest then emit the events a healthy restart would.
  void ScriptRestarts(KillScript script) {
    std::lock_guard lock(mu_);
    kill_script_ = script;
  }
  void Emit(v1::EventType type, std::string guest, std::string message = {}) {
    std::lock_guard lock(mu_);
    EmitLocked(type, std::move(guest), std::move(message));
  }

  std::vector<v1::RunGuestRequest> run_requests() const { return Copy(run_requests_); }
  std::vector<std::string> deleted() const { return Copy(deleted_); }
  std::vector<std::string> killed() const { return Copy(killed_); }
  std::vector<v1::StopGuestRequest> stop_requests() const { return Copy(stop_requests_); }
  std::vector<v1::GuestLogsRequest> log_requests() const { return Copy(log_requests_); }
  std::vector<v1::WatchEventsRequest> watch_requests() const { return Copy(watch_requests_); }
  std::vector<v1::BuildImageRequest> build_requests() const { return Copy(build_requests_); }
  std::vector<v1::ImportImageRequest> import_requests() const { return Copy(import_requests_); }

  grpc::Status RunGuest(grpc::ServerContext*, const v1::RunGuestRequest* request,
                        v1::Guest* response) override {
    std::lock_guard lock(mu_);
    run_requests_.push_back(*request);
    if (auto failure = TakeFailure("RunGuest")) return *failure;
    const std::string& name = request->spec().name();
    if (guests_.contains(name)) {
      return grpc::Status(grpc::StatusCode::ALREADY_EXISTS, "guest " + name + " already exists");
    }
    v1::Guest guest;
    guest.set_id("g-" + name);
    *guest.mutable_spec() = request->spec();
    guest.set_state(v1::GUEST_STATE_PENDING);
    *guest.mutable_created_at() = google::protobuf::util::TimeUtil::GetCurrentTime();
    for (const v1::PortMapping& port : request->spec().ports()) {
      v1::Endpoint* endpoint = guest.add_endpoints();
      endpoint->set_guest_port(port.guest_port());
      endpoint->set_host_ip(port.host_ip());
      endpoint->set_host_port(port.host_port() == 0 ? 40000 + port.guest_port() : port.host_port());
    }
    guests_[name] = guest;
    *response = guest;
    EmitLocked(v1::EVENT_TYPE_GUEST_CREATED, name, "");
    if (kill_script_) ScheduleRestartLocked(name);
    return grpc::Status::OK;
  }

  grpc::Status GetGuest(grpc::ServerContext*, const v1::GetGuestRequest* request,
                        v1::Guest* response) override {
    std::lock_guard lock(mu_);
    if (auto failure = TakeFailure("GetGuest")) return *failure;
    auto it = guests_.find(request->name());
    if (it == guests_.end()) return NotFoundStatus(request->name());
    *response = it->second;
    return grpc::Status::OK;
  }

  grpc::Status ListGuests(grpc::ServerContext*, const v1::ListGuestsRequest*,
                          v1::ListGuestsResponse* response) override {
    std::lock_guard lock(mu_);
    if (auto failure = TakeFailure("ListGuests")) return *failure;
    for (const auto& [name, guest] : guests_) *response->add_guests() = guest;
    return grpc::Status::OK;
  }

  grpc::Status StartGuest(grpc::ServerContext*, const v1::StartGuestRequest* request,
                          v1::Guest* response) override {
    std::lock_guard lock(mu_);
    if (auto failure = TakeFailure("StartGuest")) return *failure;
    auto it = guests_.find(request->name());
    if (it == guests_.end()) return NotFoundStatus(request->name());
    it->second.set_state(v1::GUEST_STATE_STARTING);
    *response = it->second;
    return grpc::Status::OK;
  }

  grpc::Status StopGuest(grpc::ServerContext*, const v1::StopGuestRequest* request,
                         v1::Guest* response) override {
    std::lock_guard lock(mu_);
    stop_requests_.push_back(*request);
    if (auto failure = TakeFailure("StopGuest")) return *failure;
    auto it = guests_.find(request->name());
    if (it == guests_.end()) return NotFoundStatus(request->name());
    it->second.set_state(v1::GUEST_STATE_STOPPED);
    *response = it->second;
    return grpc::Status::OK;
  }

  grpc::Status DeleteGuest(grpc::ServerContext*, const v1::DeleteGuestRequest* request,
                           v1::DeleteGuestResponse*) override {
    std::lock_guard lock(mu_);
    deleted_.push_back(request->name());
    if (auto failure = TakeFailure("DeleteGuest")) return *failure;
    if (guests_.erase(request->name()) == 0) return NotFoundStatus(request->name());
    EmitLocked(v1::EVENT_TYPE_GUEST_DELETED, request->name(), "");
    return grpc::Status::OK;
  }

  grpc::Status KillGuest(grpc::ServerContext*, const v1::KillGuestRequest* request,
                         v1::KillGuestResponse* response) override {
    std::unique_lock lock(mu_);
    killed_.push_back(request->name());
    if (auto failure = TakeFailure("KillGuest")) return *failure;
    auto it = guests_.find(request->name());
    if (it == guests_.end()) return NotFoundStatus(request->name());
    response->set_pid(4242);
    it->second.set_restart_count(it->second.restart_count() + 1);
    EmitLocked(v1::EVENT_TYPE_GUEST_CRASHED, request->name(), "killed by signal 9");
    if (kill_script_) ScheduleRestartLocked(request->name());
    return grpc::Status::OK;
  }

  grpc::Status GuestLogs(grpc::ServerContext*, const v1::GuestLogsRequest* request,
                         grpc::ServerWriter<v1::LogChunk>* writer) override {
    std::string data;
    {
      std::lock_guard lock(mu_);
      log_requests_.push_back(*request);
      if (auto failure = TakeFailure("GuestLogs")) return *failure;
      if (!guests_.contains(request->name())) return NotFoundStatus(request->name());
      data = logs_;
    }
    if (request->tail_bytes() > 0 && request->tail_bytes() < data.size()) {
      data = data.substr(data.size() - request->tail_bytes());
    }
    v1::LogChunk chunk;
    chunk.set_data(data);
    writer->Write(chunk);
    return grpc::Status::OK;
  }

  grpc::Status WatchEvents(grpc::ServerContext* context, const v1::WatchEventsRequest* request,
                           grpc::ServerWriter<v1::Event>* writer) override {
    std::unique_lock lock(mu_);
    watch_requests_.push_back(*request);
    if (auto failure = TakeFailure("WatchEvents")) return *failure;
    uint64_t next = request->from_sequence() == 0 ? events_.size() + 1 : request->from_sequence();
    ++watchers_;
    cv_.notify_all();
    while (!stopping_ && !context->IsCancelled()) {
      while (next <= events_.size()) {
        v1::Event event = events_[next - 1];
        ++next;
        if (!request->guest().empty() && event.guest() != request->guest()) continue;
        lock.unlock();
        bool ok = writer->Write(event);
        lock.lock();
        if (!ok) {
          --watchers_;
          return grpc::Status::OK;
        }
      }
      cv_.wait_for(lock, std::chrono::milliseconds(20));
    }
    --watchers_;
    return grpc::Status::OK;
  }

  grpc::Status ListImages(grpc::ServerContext*, const v1::ListImagesRequest*,
                          v1::ListImagesResponse* response) override {
    std::lock_guard lock(mu_);
    if (auto failure = TakeFailure("ListImages")) return *failure;
    *response = images_;
    return grpc::Status::OK;
  }

  grpc::Status BuildImage(grpc::ServerContext*, const v1::BuildImageRequest* request,
                          grpc::ServerWriter<v1::BuildImageProgress>* writer) override {
    std::vector<std::string> lines;
    {
      std::lock_guard lock(mu_);
      build_requests_.push_back(*request);
      if (auto failure = TakeFailure("BuildImage")) return *failure;
      lines = build_lines_;
    }
    for (const std::string& line : lines) {
      v1::BuildImageProgress progress;
      progress.set_line(line);
      writer->Write(progress);
    }
    v1::BuildImageProgress last;
    v1::Image* image = last.mutable_image();
    image->set_id("sha256:0123456789abcdef0123456789abcdef");
    image->set_name(request->name().empty() ? request->recipe() : request->name());
    image->set_tag(request->tag().empty() ? "latest" : request->tag());
    writer->Write(last);
    return grpc::Status::OK;
  }

  grpc::Status ImportImage(grpc::ServerContext*, const v1::ImportImageRequest* request,
                           v1::Image* response) override {
    std::lock_guard lock(mu_);
    import_requests_.push_back(*request);
    if (auto failure = TakeFailure("ImportImage")) return *failure;
    response->set_id("sha256:feedface");
    response->set_name(request->name());
    response->set_tag(request->tag().empty() ? "latest" : request->tag());
    return grpc::Status::OK;
  }

  grpc::Status GetNodeInfo(grpc::ServerContext*, const v1::GetNodeInfoRequest*,
                           v1::NodeInfo* response) override {
    std::lock_guard lock(mu_);
    if (auto failure = TakeFailure("GetNodeInfo")) return *failure;
    *response = node_;
    return grpc::Status::OK;
  }

 private:
  template <typename T>
  T Copy(const T& value) const {
    std::lock_guard lock(mu_);
    return value;
  }
  static grpc::Status NotFoundStatus(const std::string& name) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "guest " + name + " not found");
  }
  std::optional<grpc::Status> TakeFailure(const std::string& method) {
    auto it = failures_.find(method);
    if (it == failures_.end()) return std::nullopt;
    grpc::Status status = it->second;
    failures_.erase(it);
    return status;
  }
  void EmitLocked(v1::EventType type, std::string guest, std::string message) {
    v1::Event event;
    event.set_sequence(events_.size() + 1);
    *event.mutable_time() = google::protobuf::util::TimeUtil::GetCurrentTime();
    event.set_type(type);
    event.set_guest(std::move(guest));
    event.set_message(std::move(message));
    events_.push_back(std::move(event));
    cv_.notify_all();
  }
  // Emits RUNNING then HEALTHY for `name` after the scripted delays, on a timer thread.
  void ScheduleRestartLocked(const std::string& name) {
    KillScript script = *kill_script_;
    timers_.emplace_back([this, name, script] {
      auto start = std::chrono::steady_clock::now();
      std::unique_lock lock(mu_);
      if (!cv_.wait_until(lock, start + script.running_after, [this] { return stopping_; })) {
        if (auto it = guests_.find(name); it != guests_.end()) {
          it->second.set_state(v1::GUEST_STATE_RUNNING);
        }
        EmitLocked(v1::EVENT_TYPE_GUEST_RUNNING, name, "");
      }
      if (!cv_.wait_until(lock, start + script.healthy_after, [this] { return stopping_; })) {
        if (auto it = guests_.find(name); it != guests_.end()) it->second.set_healthy(true);
        EmitLocked(v1::EVENT_TYPE_GUEST_HEALTHY, name, "");
      }
    });
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  int watchers_ = 0;
  std::map<std::string, grpc::Status> failures_;
  std::map<std::string, v1::Guest> guests_;
  v1::ListImagesResponse images_;
  v1::NodeInfo node_;
  std::string logs_;
  std::vector<std::string> build_lines_;
  std::vector<v1::Event> events_;
  std::optional<KillScript> kill_script_;
  std::vector<std::thread> timers_;
  std::vector<v1::RunGuestRequest> run_requests_;
  std::vector<std::string> deleted_;
  std::vector<std::string> killed_;
  std::vector<v1::StopGuestRequest> stop_requests_;
  std::vector<v1::GuestLogsRequest> log_requests_;
  std::vector<v1::WatchEventsRequest> watch_requests_;
  std::vector<v1::BuildImageRequest> build_requests_;
  std::vector<v1::ImportImageRequest> import_requests_;
  std::string dir_;
  std::unique_ptr<grpc::Server> server_;
};

// Runs one command group function the way main() would, capturing stdout and stderr.
struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

template <typename GroupFn>
CliResult RunCli(GroupFn group, const std::string& endpoint, std::vector<std::string> args) {
  std::ostringstream out;
  std::ostringstream err;
  Context ctx(out, err, /*env_endpoint=*/"");
  ctx.options().endpoint = endpoint;
  CliResult result;
  result.exit_code = group(ctx, std::span<const std::string>(args));
  result.out = out.str();
  result.err = err.str();
  return result;
}

}  // namespace phoenix::ctl::testing
