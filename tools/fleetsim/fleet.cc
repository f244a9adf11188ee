#include "tools/fleetsim/fleet.h"

#include <algorithm>
#include <optional>
#include <queue>
#include <utility>

#include "phoenix/v1/supervisor.grpc.pb.h"
#include "tools/fleetsim/options.h"

namespace phoenix::fleetsim {

namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kDefaultHeartbeat{1000};

v1::AgentMessage MakeHello(const std::string& name, const std::string& zone) {
  v1::AgentMessage message;
  v1::NodeInfo* node = message.mutable_hello()->mutable_node();
  node->set_name(name);
  node->set_zone(zone);
  (*node->mutable_labels())["fleetsim"] = "true";
  node->mutable_capacity()->set_vcpus(16);
  node->mutable_capacity()->set_memory_mib(64 * 1024);
  node->set_version("fleetsim");
  v1::Accelerator* runtime = node->add_runtimes();
  runtime->set_runtime(v1::RUNTIME_CONTAINER);
  runtime->set_available(true);
  runtime->set_detail("simulated");
  return message;
}

}  // namespace

// One simulated agent's stream. Reactions run on gRPC's threads and never inline in a Start*
// call, so mu_ may be held across Start* calls; it guards the write side and the stream's phase
// against the heartbeat thread.
class SimAgent final : public grpc::ClientBidiReactor<v1::AgentMessage, v1::SupervisorMessage> {
 public:
  SimAgent(Fleet& fleet, std::string name, std::string zone, std::shared_ptr<grpc::Channel> channel)
      : fleet_(fleet),
        name_(std::move(name)),
        zone_(std::move(zone)),
        channel_(std::move(channel)),
        stub_(v1::AgentLink::NewStub(channel_)) {}

  void Start() {
    stub_->async()->Connect(&context_, this);
    std::lock_guard lock(mu_);
    StartRead(&in_);
    out_ = MakeHello(name_, zone_);
    writing_ = true;
    StartWrite(&out_);
    StartCall();
  }

  // Sends a heartbeat if the stream is up. Returns the interval until the next one, or nothing
  // once the stream is over.
  std::optional<std::chrono::milliseconds> Tick() {
    std::lock_guard lock(mu_);
    if (closed_ || writes_done_) return std::nullopt;
    if (up_) SendStatusLocked();
    return interval_;
  }

  void RequestStop() {
    std::lock_guard lock(mu_);
    stop_requested_ = true;
    MaybeWritesDoneLocked();
  }

  void Cancel() { context_.TryCancel(); }

  void OnReadDone(bool ok) override {
    std::lock_guard lock(mu_);
    if (!ok) {
      closed_ = true;
      return;
    }
    if (in_.has_welcome()) {
      if (in_.welcome().heartbeat_interval_ms() > 0) {
        interval_ = std::chrono::milliseconds(in_.welcome().heartbeat_interval_ms());
      }
      if (!up_) {
        up_ = true;
        fleet_.up_.fetch_add(1, std::memory_order_relaxed);
      }
    } else if (in_.has_assignment()) {
      fleet_.assignments_.fetch_add(1, std::memory_order_relaxed);
      applied_version_ = std::max(applied_version_, in_.assignment().version());
      SendStatusLocked();  // the acknowledgement: nothing to apply in a simulation
    }
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
    if (!ok) {
      closed_ = true;
      return;
    }
    if (out_.has_status()) fleet_.heartbeats_.fetch_add(1, std::memory_order_relaxed);
    if (status_wanted_) {
      SendStatusLocked();
    } else {
      MaybeWritesDoneLocked();
    }
  }

  void OnDone(const grpc::Status& status) override {
    bool was_up = false;
    bool ours = false;
    {
      std::lock_guard lock(mu_);
      was_up = up_;
      ours = stop_requested_;
    }
    std::string error;
    if (!status.ok() && !ours) {
      error = name_ + ": " + std::to_string(status.error_code()) + " " + status.error_message();
    }
    fleet_.AgentEnded(was_up, error);  // last touch of this object by gRPC
  }

 private:
  void SendStatusLocked() {
    if (closed_ || writes_done_) return;
    if (writing_) {
      status_wanted_ = true;
      return;
    }
    status_wanted_ = false;
    out_.Clear();
    v1::Status* status = out_.mutable_status();
    status->set_applied_version(applied_version_);
    status->mutable_allocated();  // a simulated node runs nothing
    writing_ = true;
    StartWrite(&out_);
  }

  void MaybeWritesDoneLocked() {
    if (!stop_requested_ || writing_ || writes_done_ || closed_) return;
    writes_done_ = true;
    StartWritesDone();
  }

  Fleet& fleet_;
  const std::string name_;
  const std::string zone_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AgentLink::Stub> stub_;
  grpc::ClientContext context_;

  v1::AgentMessage out_;  // the one write in flight
  v1::SupervisorMessage in_;

  std::mutex mu_;
  bool up_ = false;       // welcomed
  bool closed_ = false;   // a read or write failed: the stream is over
  bool writing_ = false;  // out_ is being written
  bool status_wanted_ = false;
  bool stop_requested_ = false;
  bool writes_done_ = false;
  uint64_t applied_version_ = 0;
  std::chrono::milliseconds interval_ = kDefaultHeartbeat;
};

Fleet::Fleet(std::string target, uint32_t zones) : target_(std::move(target)), zones_(zones) {
  heartbeat_thread_ = std::thread([this] { HeartbeatLoop(); });
}

Fleet::~Fleet() {
  if (heartbeat_thread_.joinable() || !agents_.empty()) Stop(std::chrono::seconds(10));
}

void Fleet::Add(uint32_t index, std::shared_ptr<grpc::ChannelCredentials> credentials) {
  grpc::ChannelArguments args;
  // Its own subchannel, hence its own TCP (and TLS) connection, like a real agent on its host.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt("phoenix.fleetsim.agent", static_cast<int>(index));
  auto channel = grpc::CreateCustomChannel(target_, std::move(credentials), args);
  auto agent = std::make_unique<SimAgent>(*this, NodeName(index), ZoneName(index, zones_), channel);
  SimAgent* raw = agent.get();
  {
    std::lock_guard lock(mu_);
    agents_.push_back(std::move(agent));
  }
  raw->Start();
}

void Fleet::HeartbeatLoop() {
  using Entry = std::pair<SteadyClock::time_point, SimAgent*>;
  auto later = [](const Entry& a, const Entry& b) { return a.first > b.first; };
  std::priority_queue<Entry, std::vector<Entry>, decltype(later)> due(later);
  size_t scheduled = 0;  // agents_[0, scheduled) are in `due` (or ended)
  std::vector<Entry> batch;
  std::unique_lock lock(mu_);
  while (!stopping_) {
    const auto now = SteadyClock::now();
    for (; scheduled < agents_.size(); ++scheduled) {
      // Spread first heartbeats over the interval instead of bunching them by start time.
      due.emplace(now + kDefaultHeartbeat * (scheduled % 100) / 100, agents_[scheduled].get());
    }
    batch.clear();
    while (!due.empty() && due.top().first <= now) {
      batch.push_back(due.top());
      due.pop();
    }
    if (batch.empty()) {
      auto wake = now + std::chrono::milliseconds(100);
      if (!due.empty()) wake = std::min(wake, due.top().first);
      cv_.wait_until(lock, wake);
      continue;
    }
    lock.unlock();
    for (auto& [when, agent] : batch) {
      if (auto interval = agent->Tick()) {
        // Keep the phase; after a stall, do not try to catch up with a burst.
        when = std::max(when + *interval, now);
      } else {
        agent = nullptr;
      }
    }
    lock.lock();
    for (const auto& entry : batch) {
      if (entry.second != nullptr) due.push(entry);
    }
  }
}

void Fleet::AgentEnded(bool was_up, const std::string& error) {
  if (was_up) up_.fetch_sub(1, std::memory_order_relaxed);
  ended_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  ++finished_;
  if (first_error_.empty() && !error.empty()) first_error_ = error;
  cv_.notify_all();
}

Fleet::Counts Fleet::Read() const {
  Counts counts;
  counts.up = up_.load(std::memory_order_relaxed);
  counts.ended = ended_.load(std::memory_order_relaxed);
  counts.heartbeats = heartbeats_.load(std::memory_order_relaxed);
  counts.assignments = assignments_.load(std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  counts.started = static_cast<uint32_t>(agents_.size());
  counts.first_error = first_error_;
  return counts;
}

bool Fleet::Stop(std::chrono::milliseconds timeout) {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
  for (auto& agent : agents_) agent->RequestStop();
  const auto start = SteadyClock::now();
  std::unique_lock lock(mu_);
  auto all_done = [&] { return finished_ == agents_.size(); };
  if (!cv_.wait_until(lock, start + timeout / 2, all_done)) {
    lock.unlock();
    for (auto& agent : agents_) agent->Cancel();
    lock.lock();
    cv_.wait_until(lock, start + timeout, all_done);
  }
  if (!all_done()) {
    // gRPC still owns some reactors: destroying them would be a use-after-free.
    for (auto& agent : agents_) (void)agent.release();
    agents_.clear();
    return false;
  }
  lock.unlock();
  agents_.clear();
  return true;
}

}  // namespace phoenix::fleetsim
