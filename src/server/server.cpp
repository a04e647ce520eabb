#include "server/server.h"

#include <chrono>
#include <ctime>
#include <filesystem>
#include <random>

#include "core/log.h"
#include "server/context.h"
#include "server/web_page.h"

namespace dsinfer::server {

using json = nlohmann::json;

std::string random_id(const std::string& prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string s = prefix;
  for (int i = 0; i < 24; ++i) s += hex[rng() % 16];
  return s;
}

int64_t unix_time() {
  return int64_t(std::time(nullptr));
}

json usage_json(int64_t prompt, int64_t cached, int64_t completion, int64_t drafted,
                int64_t accepted) {
  json u = {{"prompt_tokens", prompt},
            {"completion_tokens", completion},
            {"total_tokens", prompt + completion},
            {"prompt_tokens_details", {{"cached_tokens", cached}}}};
  if (drafted > 0)  // speculative decoding (an extension field)
    u["spec_decode"] = {{"draft_tokens", drafted}, {"accepted_tokens", accepted}};
  return u;
}

std::string openai_finish_reason(FinishReason r) {
  switch (r) {
    case FinishReason::stop:
    case FinishReason::eos:
      return "stop";
    case FinishReason::length:
      return "length";
    case FinishReason::cancelled:
      return "abort";
    case FinishReason::error:
      return "error";
  }
  return "stop";
}

void record_finish(ServerContext& ctx, const std::string& id, int index, const RequestEvent& ev) {
  const std::string reason = openai_finish_reason(ev.reason);
  ctx.metrics->request_finished(reason, ev.usage.prompt_tokens, ev.usage.completion_tokens,
                                ev.times.queued_s, ev.times.ttft_s, ev.times.total_s);
  const int64_t n = ev.usage.completion_tokens;
  const double tpot = n > 1 ? (ev.times.total_s - ev.times.ttft_s) / double(n - 1) : 0;
  log_info("%s/%d: prompt %lld (cached %lld), completion %lld, ttft %.3f s, tpot %.1f ms, %s%s%s",
           id.c_str(), index, (long long)ev.usage.prompt_tokens, (long long)ev.usage.cached_tokens,
           (long long)n, ev.times.ttft_s, tpot * 1e3, reason.c_str(), ev.error.empty() ? "" : ": ",
           ev.error.c_str());
}

void record_disconnect(ServerContext& ctx, const std::string& id, int unfinished) {
  if (unfinished <= 0) return;
  ctx.metrics->client_disconnected(unfinished);
  log_info("%s: the client went away; %d choice(s) cancelled", id.c_str(), unfinished);
}

void check_model_name(const ServerContext& ctx, const json& body) {
  auto m = string_field(body, "model");
  if (m && !m->empty() && *m != ctx.model_name)
    throw ApiError(
        404, "not_found_error",
        "The model `" + *m + "` does not exist; this server serves `" + ctx.model_name + "`",
        "model", "model_not_found");
}

int64_t resolve_max_tokens(const ServerContext& ctx, int64_t prompt, std::optional<int64_t> want) {
  const int64_t n_ctx = ctx.context_limit();
  if (prompt >= n_ctx || (want && prompt + *want > n_ctx)) {
    ApiError e(400, "invalid_request_error",
               "This model's maximum context length is " + std::to_string(n_ctx) +
                   " tokens. However, you requested " + std::to_string(prompt + want.value_or(1)) +
                   " tokens (" + std::to_string(prompt) + " in the prompt, " +
                   std::to_string(want.value_or(1)) + " for the completion).",
               want ? "max_tokens" : "messages", "context_length_exceeded");
    e.extra = {{"n_prompt_tokens", prompt}, {"n_ctx", n_ctx}};
    throw e;
  }
  return want.value_or(n_ctx - prompt);
}

struct Server::Context : ServerContext {};

Server::Server(ServerOptions options)
    : options_(std::move(options)), ctx_(std::make_unique<Context>()) {
  ctx_->options = &options_;
  ctx_->model_name = options_.served_model_name.empty()
                         ? std::filesystem::path(options_.model_dir).filename().string()
                         : options_.served_model_name;
  if (ctx_->model_name.empty()) ctx_->model_name = "dsinfer";
  ctx_->metrics = std::make_unique<Metrics>(ctx_->model_name);
  http_ = std::make_unique<HttpServer>(options_.http);
  add_routes();
}

Server::~Server() {
  stop();
  if (loader_.joinable()) loader_.join();
}

void Server::load() {
  try {
    std::unique_ptr<Model> model = Model::load(options_.model_dir, options_.model);
    ctx_->tokenizer.emplace(Tokenizer::load(options_.model_dir));
    ctx_->format = default_chat_format(options_.model_dir);
    ctx_->sampling = load_sampling_defaults(options_.model_dir);
    ctx_->engine = std::make_unique<Engine>(std::move(model), *ctx_->tokenizer, options_.engine);
    ctx_->created = unix_time();
    ready_ = true;
  } catch (const std::exception& e) {
    std::lock_guard<std::mutex> lock(mutex_);
    load_error_ = e.what();
    failed_ = true;
    log_error("loading %s failed: %s", options_.model_dir.c_str(), e.what());
  }
  loaded_.notify_all();
}

bool Server::wait_ready(double timeout_s) {
  std::unique_lock<std::mutex> lock(mutex_);
  loaded_.wait_for(lock, std::chrono::duration<double>(timeout_s),
                   [&] { return ready_ || failed_; });
  return ready_;
}

int Server::start() {
  const int port = http_->bind();
  loader_ = std::thread([this] { load(); });
  return port;
}

void Server::serve() {
  http_->serve();
}

void Server::stop() {
  if (stopping_.exchange(true)) return;
  http_->stop();
  if (loader_.joinable()) loader_.join();
  if (ctx_->engine) {
    // Let in-flight requests finish for the grace period, then cancel what is left.
    const bool idle = ctx_->engine->wait_idle(options_.shutdown_grace_s);
    ctx_->engine->shutdown(idle);
  }
}

HttpResponse Server::handle(const HttpRequest& request) {
  HttpResponse res;
  auto it = routes_.find(request.method + " " + request.path);
  if (it == routes_.end()) {
    res.status = 404;
    res.body = ApiError(404, "not_found_error", "no such endpoint").to_json().dump();
    return res;
  }
  it->second(request, res);
  return res;
}

namespace {

// Compares without an early exit, so the time does not tell how much of a key was right.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? a[i] : 0, y = i < b.size() ? b[i] : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

}  // namespace

void Server::add_routes() {
  // Every API route: authentication, readiness, errors as OpenAI error bodies.
  auto api = [this](bool needs_model, auto fn) {
    return [this, needs_model, fn](const HttpRequest& req, HttpResponse& res) {
      try {
        if (!options_.api_key.empty()) {
          const std::string auth = req.header("authorization");
          const std::string want = "Bearer " + options_.api_key;
          if (!same_secret(auth, want))
            throw ApiError(
                401, "authentication_error",
                auth.empty() ? "missing API key (Authorization: Bearer ...)" : "invalid API key",
                "", "invalid_api_key");
        }
        if (needs_model && !ready_)
          throw ApiError(
              503, "server_busy",
              failed_ ? "the model failed to load: " + load_error_ : "the model is still loading");
        if (stopping_) throw ApiError(503, "server_busy", "the server is shutting down");
        fn(req, res);
      } catch (const ApiError& e) {
        res = HttpResponse{};
        res.status = e.status;
        res.body = e.to_json().dump(-1, ' ', false, json::error_handler_t::replace);
        ctx_->metrics->request_rejected(e.type);
      } catch (const std::exception& e) {
        res = HttpResponse{};
        res.status = 500;
        res.body = ApiError(500, "internal_error", e.what())
                       .to_json()
                       .dump(-1, ' ', false, json::error_handler_t::replace);
        ctx_->metrics->request_rejected("internal_error");
      }
    };
  };
  auto add = [this](const std::string& method, const std::string& path, HttpHandler h) {
    routes_[method + " " + path] = h;
    http_->route(method, path, h);
  };

  add("GET", "/health", [this](const HttpRequest&, HttpResponse& res) {
    if (ready_ && !stopping_) {
      res.body = R"({"status":"ok"})";
      return;
    }
    res.status = 503;
    const std::string why = failed_     ? "the model failed to load: " + load_error_
                            : stopping_ ? "the server is shutting down"
                                        : "the model is still loading";
    res.body = ApiError(503, "server_busy", why).to_json().dump();
  });
  add("GET", "/", [](const HttpRequest&, HttpResponse& res) {
    res.content_type = "text/html; charset=utf-8";
    res.body = std::string(kWebPage);
  });
  add("GET", "/v1/models", api(true, [this](const HttpRequest&, HttpResponse& res) {
        json m = {{"id", ctx_->model_name},
                  {"object", "model"},
                  {"created", ctx_->created},
                  {"owned_by", "dsinfer"},
                  {"max_model_len", ctx_->context_limit()},
                  {"vocab_size", ctx_->engine->model().config().vocab_size}};
        res.body = json{{"object", "list"}, {"data", json::array({m})}}.dump();
      }));
  add("GET", "/metrics", api(false, [this](const HttpRequest&, HttpResponse& res) {
        res.content_type = "text/plain; version=0.0.4";
        res.body = ctx_->metrics->render(ctx_->engine ? ctx_->engine->stats() : EngineStats{});
      }));
  add("POST", "/v1/completions", api(true, [this](const HttpRequest& req, HttpResponse& res) {
        handle_completions(*ctx_, req, res);
      }));
  add("POST", "/v1/chat/completions", api(true, [this](const HttpRequest& req, HttpResponse& res) {
        handle_chat_completions(*ctx_, req, res);
      }));
  add("POST", "/tokenize", api(true, [this](const HttpRequest& req, HttpResponse& res) {
        handle_tokenize(*ctx_, req, res);
      }));
  add("POST", "/detokenize", api(true, [this](const HttpRequest& req, HttpResponse& res) {
        handle_detokenize(*ctx_, req, res);
      }));
}

}  // namespace dsinfer::server
