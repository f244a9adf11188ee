#include "proto/support/grpc_status.h"

#include <exception>

#include <spdlog/spdlog.h>

namespace phoenix {

grpc::Status ToGrpcStatus(const Error& error) {
  return grpc::Status(static_cast<grpc::StatusCode>(error.code), error.ToString());
}

Error FromGrpcStatus(const grpc::Status& status) {
  return Error{static_cast<ErrorCode>(status.error_code()), status.error_message(), {}};
}

grpc::Status GuardHandler(const std::function<grpc::Status()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    spdlog::error("handler threw: {}", e.what());
    return grpc::Status(grpc::StatusCode::INTERNAL, std::string("internal error: ") + e.what());
  } catch (...) {
    spdlog::error("handler threw a non-standard exception");
    return grpc::Status(grpc::StatusCode::INTERNAL, "internal error");
  }
}

}  // namespace phoenix
