// Conversions of the agent's records (guests, events, images) to phoenix.v1 protobuf messages. The
// only place (with agent_service.cc and proto/support/guest_spec.h, which converts and validates
// guest specs for every binary) where the agent touches protobuf.
#pragma once

#include "agent/guest/event.h"
#include "agent/guest/guest.h"
#include "agent/image/image_store.h"
#include "phoenix/v1/agent.pb.h"
#include "proto/support/error.h"

namespace phoenix::agent::api {

void GuestToProto(const GuestRecord& in, const std::string& node, v1::Guest* out);
void EventToProto(const EventRecord& in, v1::Event* out);
void ImageToProto(const ImageRecord& in, v1::Image* out);
using spec::RuntimeToProto;

}  // namespace phoenix::agent::api
