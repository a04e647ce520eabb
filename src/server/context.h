// What the route handlers share (internal to the server).
#pragma once

#include <memory>
#include <string>

#include "engine/engine.h"
#include "server/api_error.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/request_fields.h"
#include "tokenizer/chat_format.h"
#include "tokenizer/tokenizer.h"

namespace dsinfer::server {

struct ServerOptions;

struct ServerContext {
  const ServerOptions* options = nullptr;
  std::string model_name;
  std::unique_ptr<Engine> engine;
  std::optional<Tokenizer> tokenizer;
  ChatFormat format = ChatFormat::deepseek_v3_2;
  SamplingDefaults sampling;
  std::unique_ptr<Metrics> metrics;
  int64_t created = 0;  // unix time the model was loaded

  int64_t context_limit() const { return engine->context_limit(); }
};

// A fresh id with a prefix: "chatcmpl-" + 24 hex digits.
std::string random_id(const std::string& prefix);
int64_t unix_time();

// The usage object of a response.
nlohmann::json usage_json(int64_t prompt, int64_t cached, int64_t completion, int64_t drafted = 0,
                          int64_t accepted = 0);
// "stop", "length", or "tool_calls" (chat) from an engine finish reason.
std::string openai_finish_reason(FinishReason r);
// The checks every generation does before it reaches the engine: the model name, and the
// context (prompt + max_tokens over the context is a 400 with n_prompt_tokens and n_ctx).
void check_model_name(const ServerContext& ctx, const nlohmann::json& body);
int64_t resolve_max_tokens(const ServerContext& ctx, int64_t prompt_tokens,
                           std::optional<int64_t> requested);

// A choice finished: metrics and the request's log line (id, tokens, cached, TTFT, TPOT, reason).
void record_finish(ServerContext& ctx, const std::string& id, int index, const RequestEvent& ev);
// A streaming client went away with `unfinished` choices still running (they are cancelled).
void record_disconnect(ServerContext& ctx, const std::string& id, int unfinished);

void handle_completions(ServerContext& ctx, const HttpRequest& req, HttpResponse& res);
void handle_chat_completions(ServerContext& ctx, const HttpRequest& req, HttpResponse& res);
void handle_tokenize(ServerContext& ctx, const HttpRequest& req, HttpResponse& res);
void handle_detokenize(ServerContext& ctx, const HttpRequest& req, HttpResponse& res);

// One SSE event: "data: <json>\n\n".
inline std::string sse(const nlohmann::json& j) {
  return "data: " + j.dump() + "\n\n";
}

}  // namespace dsinfer::server
