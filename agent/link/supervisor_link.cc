#include "agent/link/supervisor_link.h"

#include "agent/link/front_door_convert.h"

#include <random>

#include <spdlog/spdlog.h>

#include "agent/api/convert.h"

namespace phoenix::agent::link {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kHubPoll{100};
// A full page of events since the last look: something surely changed, no need to read further.
constexpr size_t kEventPage = 1000;

std::string StatusText(const grpc::Status& s) {
  return "gRPC " + std::to_string(static_cast<int>(s.error_code())) +
         (s.error_message().empty() ? std::string() : ": " + s.error_message());
}

}  // namespace

SupervisorLink::SupervisorLink(GuestManager& guests, AgentStore& store, ImageStore& images,
                               EventHub& hub, Options options)
    : guests_(guests),
      store_(store),
      images_(images),
      hub_(hub),
      options_(std::move(options)),
      applier_(guests, store, hub),
      heartbeat_ms_(static_cast<uint32_t>(options_.default_heartbeat.count())) {}

SupervisorLink::~SupervisorLink() { Stop(); }

Result<void> SupervisorLink::Start() {
  PHX_CHECK(!started_);
  if (!options_.credentials || !options_.node_info) {
    return InvalidArgument("options", "the supervisor link needs credentials and node_info");
  }
  PHX_TRY(applier_.Load());
  started_ = true;
  spdlog::info("supervisor link to {}: holding assignment version {} ({} managed guests)",
               options_.target, applier_.applied_version(), applier_.managed().size());
  apply_thread_ = std::thread([this] { ApplyLoop(); });
  link_thread_ = std::thread([this] { LinkLoop(); });
  return {};
}

void SupervisorLink::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (active_context_ != nullptr) active_context_->TryCancel();
  }
  cv_.notify_all();
  if (link_thread_.joinable()) link_thread_.join();
  if (apply_thread_.joinable()) apply_thread_.join();
}

SupervisorLink::Stats SupervisorLink::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

bool SupervisorLink::SleepUnlessStopping(milliseconds d) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, d, [&] { return stopping_.load(); });
  return !stopping_;
}

milliseconds SupervisorLink::NextBackoff(milliseconds& current) {
  // "Equal jitter": half fixed, half random, so agents that lost the same supervisor at the same
  // moment do not all redial together, yet none retries sooner than half the backoff.
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<int64_t> jitter(0, current.count() / 2);
  milliseconds sleep{current.count() - current.count() / 2 + jitter(rng)};
  current = std::min(current * 2, options_.max_backoff);
  return sleep;
}

void SupervisorLink::LinkLoop() {
  milliseconds backoff = options_.initial_backoff;
  std::string last_failure;
  while (!stopping_) {
    bool welcomed = false;
    std::string reason;
    auto creds = options_.credentials();
    if (!creds) {
      reason = creds.error().ToString();
    } else {
      reason = RunSession(*creds, welcomed);
    }
    if (stopping_) break;
    if (welcomed) {
      backoff = options_.initial_backoff;
      last_failure = reason;
      spdlog::warn("supervisor link to {} lost: {}; reconnecting (guests keep running)",
                   options_.target, reason);
    } else if (reason != last_failure) {
      // Logged once per distinct reason, not per attempt: a supervisor down for an hour is one
      // line.
      last_failure = reason;
      spdlog::warn("cannot link to supervisor {}: {}; retrying every {}-{} ms until it answers",
                   options_.target, reason, options_.initial_backoff.count(),
                   options_.max_backoff.count());
    } else {
      spdlog::debug("supervisor {} still unreachable: {}", options_.target, reason);
    }
    SleepUnlessStopping(NextBackoff(backoff));
  }
}

std::string SupervisorLink::RunSession(const std::shared_ptr<grpc::ChannelCredentials>& creds,
                                       bool& welcomed) {
  grpc::ChannelArguments args;
  // Our own backoff paces redials: a private subchannel pool keeps gRPC's (up to 120 s) out of it.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
              static_cast<int>(options_.initial_backoff.count()));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
              static_cast<int>(options_.initial_backoff.count()));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, static_cast<int>(options_.max_backoff.count()));
  auto channel = grpc::CreateCustomChannel(options_.target, creds, args);
  auto stub = v1::AgentLink::NewStub(channel);

  grpc::ClientContext context;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return "stopping";
    active_context_ = &context;
  }
  auto stream = stub->Connect(&context);
  std::atomic<bool> got_welcome{false};
  std::atomic<bool> read_ended{false};
  std::string reason;
  std::thread reader;
  if (!stream->Write(MakeHello())) {
    reason = "the stream closed before Hello was sent";
  } else {
    reader = std::thread([&] { ReadLoop(stream.get(), got_welcome, read_ended); });
    uint64_t seen = hub_.last();
    auto next_status = Clock::now();  // the first Status goes out right after Hello
    auto next_renewal_check = Clock::now() + options_.renewal_check;
    while (!stopping_ && !read_ended) {
      if (options_.renewal_due && Clock::now() >= next_renewal_check) {
        next_renewal_check = Clock::now() + options_.renewal_check;
        if (std::chrono::steady_clock::now() >= next_renewal_reconnect_ && options_.renewal_due()) {
          next_renewal_reconnect_ = std::chrono::steady_clock::now() + options_.renewal_retry;
          // The next dial's credentials() renews the certificate first.
          reason = "the client certificate is due for renewal; reconnecting";
          break;
        }
      }
      if (got_welcome && !welcomed) {
        welcomed = true;
        std::lock_guard lock(mu_);
        ++stats_.sessions;
        stats_.connected = true;
        spdlog::info("supervisor link to {} up (heartbeat every {} ms, assignment version {})",
                     options_.target, heartbeat_ms_.load(), applier_.applied_version());
      }
      bool changed = ManagedGuestChanged(seen);  // waits up to kHubPoll
      bool due = status_due_.exchange(false);
      if (!changed && !due && Clock::now() < next_status) continue;
      if (!stream->Write(MakeStatus())) {
        reason = "writing a Status failed";
        break;
      }
      next_status = Clock::now() + milliseconds(heartbeat_ms_.load());
      std::lock_guard lock(mu_);
      ++stats_.statuses;
    }
  }
  if (!read_ended) context.TryCancel();
  if (reader.joinable()) reader.join();
  grpc::Status status = stream->Finish();
  {
    std::lock_guard lock(mu_);
    active_context_ = nullptr;
    stats_.connected = false;
  }
  if (stopping_) return "stopping";
  // The server's status says more than our side's view (e.g. "connection refused", an auth error).
  if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) return StatusText(status);
  if (status.ok()) return "the supervisor closed the stream";
  return reason.empty() ? StatusText(status) : reason;
}

void SupervisorLink::ReadLoop(
    grpc::ClientReaderWriter<v1::AgentMessage, v1::SupervisorMessage>* stream,
    std::atomic<bool>& welcomed, std::atomic<bool>& ended) {
  v1::SupervisorMessage message;
  while (stream->Read(&message)) {
    if (message.has_welcome()) {
      uint32_t ms = message.welcome().heartbeat_interval_ms();
      heartbeat_ms_ = ms > 0 ? ms : static_cast<uint32_t>(options_.default_heartbeat.count());
      welcomed = true;
    } else if (message.has_assignment()) {
      {
        std::lock_guard lock(mu_);
        // Assignments are full lists: only the newest one still pending matters.
        if (!pending_ || pending_->version() < message.assignment().version()) {
          pending_ = message.assignment();
        }
      }
      cv_.notify_all();
    } else if (message.has_front_door()) {
      if (options_.on_node_routes)
        options_.on_node_routes(PeerRoutesFromProto(message.front_door()));
      if (options_.on_front_door) {
        options_.on_front_door(FrontDoorTableFromProto(message.front_door()));
      }
    }
  }
  ended = true;
}

void SupervisorLink::ApplyLoop() {
  // Static stability: converge on what we last accepted before the supervisor is even reached.
  if (auto r = applier_.Reapply(); !r) {
    spdlog::error("re-applying the stored assignment: {}", r.error().ToString());
  }
  auto next_reconverge = Clock::now() + options_.reconverge_interval;
  while (!stopping_) {
    std::optional<v1::Assignment> assignment;
    {
      std::unique_lock lock(mu_);
      cv_.wait_until(lock, next_reconverge,
                     [&] { return stopping_.load() || pending_.has_value(); });
      if (stopping_) break;
      assignment = std::move(pending_);
      pending_.reset();
    }
    if (assignment) {
      auto r = applier_.Apply(*assignment);
      if (!r) spdlog::error("applying the supervisor's assignment: {}", r.error().ToString());
      status_due_ = true;
    } else {
      auto r = applier_.Reapply();
      if (!r) {
        spdlog::error("re-applying the stored assignment: {}", r.error().ToString());
      } else if (r->ran + r->removed + r->forgotten > 0) {
        status_due_ = true;
      }
      next_reconverge = Clock::now() + options_.reconverge_interval;
    }
  }
}

std::vector<std::string> SupervisorLink::ImageRefs() {
  std::vector<std::string> out;
  auto images = images_.List();
  if (!images) {
    spdlog::warn("listing images for the supervisor: {}", images.error().ToString());
    return out;
  }
  for (const ImageRecord& image : *images) {
    if (!image.name.empty()) out.push_back(image.name + ":" + image.tag);
    out.push_back(image.id);
  }
  return out;
}

v1::AgentMessage SupervisorLink::MakeHello() {
  v1::AgentMessage message;
  v1::Hello* hello = message.mutable_hello();
  *hello->mutable_node() = options_.node_info();
  hello->set_applied_version(applier_.applied_version());
  for (std::string& ref : ImageRefs()) hello->add_images(std::move(ref));
  return message;
}

v1::AgentMessage SupervisorLink::MakeStatus() {
  v1::AgentMessage message;
  v1::Status* status = message.mutable_status();
  status->set_applied_version(applier_.applied_version());
  NodeResources used = guests_.Allocated();
  status->mutable_allocated()->set_vcpus(used.vcpus);
  status->mutable_allocated()->set_memory_mib(used.memory_mib);
  std::set<std::string> managed = applier_.managed();
  std::set<std::string> reported;
  for (const GuestRecord& rec : guests_.List()) {
    if (managed.contains(rec.spec.name)) {
      api::GuestToProto(rec, options_.node_name, status->add_guests());
      reported.insert(rec.spec.name);
    }
  }
  // An assigned guest this node refused is reported FAILED with why, so the replica shows the
  // reason (phoenixctl service show) instead of sitting ASSIGNED without a word.
  for (const auto& [name, reason] : applier_.refused()) {
    if (reported.contains(name)) continue;
    v1::Guest* refused = status->add_guests();
    refused->mutable_spec()->set_name(name);
    refused->set_node(options_.node_name);
    refused->set_state(v1::GUEST_STATE_FAILED);
    refused->set_last_exit_reason("refused by node " + options_.node_name + ": " + reason);
  }
  for (std::string& ref : ImageRefs()) status->add_images(std::move(ref));
  if (options_.front_door_load) FrontDoorLoadToProto(options_.front_door_load(), status);
  if (options_.front_door_blocked) {
    for (const frontdoor::BlockedFrontend& b : options_.front_door_blocked()) {
      v1::BlockedFrontDoor* p = status->add_front_door_blocked();
      p->set_service(b.service);
      p->set_port(b.port);
      p->set_reason(b.reason);
    }
  }
  return message;
}

bool SupervisorLink::ManagedGuestChanged(uint64_t& seen) {
  uint64_t newest = hub_.WaitNewerThan(seen, kHubPoll);
  if (newest <= seen) return false;
  auto events = store_.EventsSince(seen + 1, kEventPage);
  seen = newest;
  if (!events || events->size() >= kEventPage) return true;  // cannot tell cheaply: report
  std::set<std::string> managed = applier_.managed();
  for (const EventRecord& e : *events) {
    if (managed.contains(e.guest)) return true;
  }
  return false;
}

}  // namespace phoenix::agent::link
