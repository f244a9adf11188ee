// Conversions between phoenix.v1 protobuf messages and the agent's domain values. The only place
// (with agent_service.cc) where the agent touches protobuf. Applies API defaults (vcpus 1, 256 MiB,
// restart always, ...) and rejects values the domain types cannot hold, naming the field.
#pragma once

#include "agent/guest/event.h"
#include "agent/guest/guest.h"
#include "agent/image/image_store.h"
#include "phoenix/v1/agent.pb.h"
#include "proto/support/error.h"

namespace phoenix::agent::api {

[[nodiscard]] Result<GuestSpec> SpecFromProto(const v1::GuestSpec& in);
void SpecToProto(const GuestSpec& in, v1::GuestSpec* out);
void GuestToProto(const GuestRecord& in, const std::string& node, v1::Guest* out);
void EventToProto(const EventRecord& in, v1::Event* out);
void ImageToProto(const ImageRecord& in, v1::Image* out);
v1::Runtime RuntimeToProto(RuntimeKind kind);

}  // namespace phoenix::agent::api
