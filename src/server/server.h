// `dsinfer serve`: an OpenAI-compatible HTTP server on the engine. It listens at once and loads
// the model in the background (/health answers 503 until it is ready), then serves
// /v1/chat/completions, /v1/completions, /v1/models, /tokenize, /detokenize, /metrics, /health and
// the built-in chat page at /. See docs/server.md.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "engine/engine.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/request_fields.h"
#include "tokenizer/chat_format.h"
#include "tokenizer/tokenizer.h"

namespace dsinfer::server {

struct ServerOptions {
  std::string model_dir;
  std::string served_model_name;  // default: the model directory's name
  std::string api_key;            // "" = no authentication
  HttpOptions http;
  EngineOptions engine;
  ModelOptions model;
  double request_timeout_s = 0;  // a request running longer is cancelled (0: no limit)
  double shutdown_grace_s = 30;  // in-flight requests may finish this long after a stop
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();

  // Binds (throws std::runtime_error when it cannot), starts loading the model, and returns the
  // port. serve() then blocks until stop().
  int start();
  void serve();
  // Stops accepting, lets in-flight requests finish for up to the grace period, cancels the rest.
  void stop();
  bool ready() const { return ready_.load(); }
  // Waits until the model is loaded (or failed to load: false).
  bool wait_ready(double timeout_s);

  // For tests: one request through the routes without sockets.
  HttpResponse handle(const HttpRequest& request);

 private:
  struct Context;
  void load();
  void add_routes();

  ServerOptions options_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<Context> ctx_;
  std::atomic<bool> ready_{false}, failed_{false}, stopping_{false};
  std::string load_error_;
  std::mutex mutex_;
  std::condition_variable loaded_;
  std::thread loader_;
  std::map<std::string, HttpHandler> routes_;  // "POST /v1/completions" -> handler
};

}  // namespace dsinfer::server
