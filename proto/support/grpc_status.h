// Maps Phoenix Errors onto gRPC statuses and back, and runs handler bodies so that no exception
// escapes into gRPC. Used only by API layers and clients.
#pragma once

#include <functional>

#include <grpcpp/grpcpp.h>

#include "proto/support/error.h"

namespace phoenix {

// The message carries the offending field first ("spec.name: ...") so CLI users see it.
grpc::Status ToGrpcStatus(const Error& error);
Error FromGrpcStatus(const grpc::Status& status);

// Runs body and converts an escaped exception into INTERNAL. Every gRPC handler goes through it.
grpc::Status GuardHandler(const std::function<grpc::Status()>& body);

}  // namespace phoenix
