// One error type for every failure a client can see, mapped to an HTTP status and the OpenAI error
// body {"error": {"message", "type", "param", "code"}}.
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace dsinfer::server {

struct ApiError : std::runtime_error {
  int status;
  std::string type;      // invalid_request_error, authentication_error, not_found_error, ...
  std::string param;     // the request field at fault ("" when none)
  std::string code;      // a short machine-readable code ("" when none)
  nlohmann::json extra;  // more fields for the error object (e.g. n_prompt_tokens, n_ctx)

  ApiError(int status_, std::string type_, const std::string& message, std::string param_ = {},
           std::string code_ = {})
      : std::runtime_error(message),
        status(status_),
        type(std::move(type_)),
        param(std::move(param_)),
        code(std::move(code_)) {}

  nlohmann::json to_json() const {
    nlohmann::json e = {{"message", what()},
                        {"type", type},
                        {"param", param.empty() ? nlohmann::json(nullptr) : nlohmann::json(param)},
                        {"code", code.empty() ? nlohmann::json(nullptr) : nlohmann::json(code)}};
    for (auto it = extra.begin(); it != extra.end(); ++it) e[it.key()] = it.value();
    return {{"error", e}};
  }
};

// 400 naming the field: bad_request("messages[2].content", "expected a string").
inline ApiError bad_request(const std::string& param, const std::string& message) {
  return ApiError(400, "invalid_request_error", param.empty() ? message : param + ": " + message,
                  param);
}

}  // namespace dsinfer::server
