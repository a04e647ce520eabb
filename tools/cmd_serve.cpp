// `dsinfer serve`: the OpenAI-compatible HTTP server (src/server); this file only parses flags.
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "command.h"
#include "core/log.h"
#include "core/thread_pool.h"
#include "server/server.h"

namespace dsinfer::cli {
namespace {

struct ServeArgs {
  server::ServerOptions o;
  std::string api_key_file, precision = "bf16", attention = "sparse", form = "auto";
  std::string kv_cache_dtype = "auto";
  int threads = 0;
  double kv_cache_gb = 0;
  bool no_prefix_cache = false, fp8_activations = false;
  SpeculativeOptions speculative;
  dist::Layout dist;
};

// SIGINT / SIGTERM reach a handler on whatever thread the kernel picks (libraries such as
// OpenBLAS start threads before main, so blocking the signals cannot cover them all); it only
// writes the signal number to a pipe that the watcher thread reads.
int g_signal_pipe[2] = {-1, -1};
void on_stop_signal(int sig) {
  const char c = char(sig);
  [[maybe_unused]] ssize_t n = ::write(g_signal_pipe[1], &c, 1);
}

// The model options from the flags, into a.o.model.
void model_options(ServeArgs& a) {
  server::ServerOptions& o = a.o;
  o.model.precision = a.precision == "f32" ? Precision::f32 : Precision::bf16;
  o.model.attention = a.attention == "dense" ? AttentionMode::dense : AttentionMode::sparse;
  o.model.attention_form = attention_form_from_name(a.form);
  if (a.kv_cache_gb > 0 && o.model.kv_cache_tokens > 0)
    throw std::runtime_error("give --kv-cache-tokens or --kv-cache-gb, not both");
  o.model.kv_cache_gib = a.kv_cache_gb;
  o.model.fp8_activations = a.fp8_activations;
  o.model.kv_cache_dtype = kv_cache_dtype_from_name(a.kv_cache_dtype);
  o.model.dist = a.dist;
}

int serve_main(ServeArgs& a) {
  if (a.threads > 0) set_num_threads(a.threads);
  model_options(a);
  // The other ranks of an MPI job run the root's steps; only the root listens. A worker leaves
  // SIGINT to the root (mpirun forwards it to every rank): the root's shutdown ends its steps.
  if (!dist::world().is_root()) {
    ::signal(SIGINT, SIG_IGN);
    return serve_as_worker(a.o.model_dir, a.o.model) ? 0 : 1;
  }
  if (::pipe(g_signal_pipe) != 0) throw std::runtime_error("cannot create the signal pipe");
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  // One line per request at the info level, unless DSINFER_LOG says otherwise.
  if (!std::getenv("DSINFER_LOG")) set_log_level(LogLevel::info);
  if (a.threads > 0) set_num_threads(a.threads);
  server::ServerOptions& o = a.o;
  if (!a.api_key_file.empty()) {
    if (!o.api_key.empty()) throw std::runtime_error("give --api-key or --api-key-file, not both");
    std::ifstream in(a.api_key_file);
    if (!in) throw std::runtime_error(a.api_key_file + ": cannot read the API key file");
    std::getline(in, o.api_key);
    while (!o.api_key.empty() && (o.api_key.back() == '\r' || o.api_key.back() == ' '))
      o.api_key.pop_back();
    if (o.api_key.empty()) throw std::runtime_error(a.api_key_file + ": the API key file is empty");
  }
  o.engine.prefix_cache = !a.no_prefix_cache;
  o.engine.speculative_draft_tokens = a.speculative.engine_draft_tokens();
  server::Server srv(o);
  const int port = srv.start();
  std::fprintf(stderr, "dsinfer serve: listening on http://%s:%d (loading %s)\n",
               o.http.host.c_str(), port, o.model_dir.c_str());
  if (dist::world().size() > 1)
    std::fprintf(stderr,
                 "dsinfer serve: rank 0 of %d is pid %d: send SIGINT or SIGTERM to it for a "
                 "graceful stop (a signal to mpirun ends every rank at once)\n",
                 dist::world().size(), int(::getpid()));
  std::atomic<bool> served{false};
  std::thread watcher([&] {
    char c = 0;
    while (::read(g_signal_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    if (served) return;  // woken at the end below
    const int sig = c;
    std::fprintf(stderr, "dsinfer serve: %s, stopping (grace %.0f s)\n",
                 sig == SIGINT ? "SIGINT" : "SIGTERM", o.shutdown_grace_s);
    srv.stop();
  });
  std::thread ready([&] {
    if (srv.wait_ready(1e9)) std::fprintf(stderr, "dsinfer serve: ready\n");
  });
  srv.serve();
  served = true;
  srv.stop();
  on_stop_signal(0);  // wakes the watcher if no signal came
  watcher.join();
  ready.join();
  return 0;
}

CommandRegistrar serve_cmd(
    {"serve", "OpenAI-compatible HTTP server (chat, completions, metrics, web page)",
     [](CLI::App& app) {
       auto a = std::make_shared<ServeArgs>();
       server::ServerOptions& o = a->o;
       app.add_option("-m,--model", o.model_dir, "Model directory")->required();
       app.add_option("--host", o.http.host, "Address to listen on (default 127.0.0.1)");
       app.add_option("--port", o.http.port, "Port (default 8080; 0: any free port)");
       app.add_option("--api-key", o.api_key, "Require this key (Authorization: Bearer KEY)");
       app.add_option("--api-key-file", a->api_key_file, "Read the API key from a file");
       app.add_option("--served-model-name", o.served_model_name,
                      "The model name clients use (default: the directory name)");
       app.add_option("-t,--threads", a->threads, "Compute threads (default: all cores)");
       app.add_option("--max-running", o.engine.max_running, "Sequences run at once (default 16)");
       app.add_option("--max-batch-tokens", o.engine.max_batch_tokens,
                      "Tokens per forward step (default 2048)");
       app.add_option("--kv-cache-tokens", o.model.kv_cache_tokens,
                      "KV cache budget in tokens (default: half the free memory)");
       app.add_option("--kv-cache-gb", a->kv_cache_gb, "KV cache budget in GiB");
       add_kv_cache_dtype_option(app, a->kv_cache_dtype);
       app.add_flag("--no-prefix-cache", a->no_prefix_cache, "Do not reuse cached prompt prefixes");
       app.add_option("-c,--ctx", o.engine.context_limit, "Context limit (default: the model's)");
       app.add_option("--max-queue", o.engine.max_queue,
                      "Requests that may wait; more get 503 (default 4096)");
       app.add_option("--timeout", o.request_timeout_s,
                      "Cancel a request after this many seconds (default: no limit)");
       app.add_option("--grace", o.shutdown_grace_s,
                      "Seconds in-flight requests may finish after SIGINT/SIGTERM (default 30)");
       app.add_option("--http-threads", o.http.threads, "Connections served at once (default 64)");
       app.add_option("--precision", a->precision, "bf16 or f32")
           ->check(CLI::IsMember({"bf16", "f32"}));
       app.add_option("--attention", a->attention, "sparse (DSA) or dense")
           ->check(CLI::IsMember({"sparse", "dense"}));
       add_speculative_options(app, a->speculative);
       app.add_flag("--fp8-activations", a->fp8_activations,
                    "Quantize FP8 layers' activations to FP8 as the release does");
       app.add_option("--attention-form", a->form, "auto, absorbed or mha")
           ->check(CLI::IsMember({"auto", "absorbed", "mha"}));
       add_dist_options(app, a->dist);
       return std::function<int()>([a] { return serve_main(*a); });
     }});

}  // namespace
}  // namespace dsinfer::cli
