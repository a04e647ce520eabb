// `dsinfer run`: generate text from a prompt (batch) or chat interactively, streaming tokens.
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "command.h"
#include "core/thread_pool.h"
#include "engine/engine.h"
#include "engine/sampler.h"
#include "model/model.h"
#include "tokenizer/chat_format.h"
#include "tokenizer/streaming_decoder.h"
#include "tokenizer/tokenizer.h"

namespace dsinfer::cli {
namespace {

std::atomic<bool> g_interrupt{false};
void on_sigint(int) {
  g_interrupt = true;
}

struct RunArgs {
  std::string model, prompt, file, format, precision = "bf16", attention = "sparse", form = "auto";
  std::string kv_cache_dtype = "auto";
  bool chat = false, raw = false, think = false, quiet = false, fp8_activations = false;
  int64_t max_tokens = 256, ctx = 0, prefill_chunk = 2048, kv_cache_tokens = 0;
  SpeculativeOptions speculative;
  dist::Layout dist;
  int threads = 0;
  SamplingParams sampling;
  std::vector<std::string> stop;
};

double peak_rss_gib() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / (1 << 20);  // KiB -> GiB
}

// What one turn produced, for the summary line.
struct TurnStats {
  int64_t prompt_tokens = 0, cached_tokens = 0, generated = 0, drafted = 0, accepted = 0;
  double ttft_s = 0, prefill_s = 0, decode_s = 0;
  FinishReason reason = FinishReason::length;
  std::string text, error;
};

void print_stats(const TurnStats& st) {
  const int64_t computed = st.prompt_tokens - st.cached_tokens;
  const double prefill_tps = st.prefill_s > 0 ? computed / st.prefill_s : 0;
  const double tpot = st.generated > 1 ? st.decode_s / double(st.generated - 1) : 0;
  std::fprintf(stderr,
               "\n[prompt %lld tokens (%lld cached) | TTFT %.2f s | prefill %.1f tok/s | generated "
               "%lld tokens | TPOT %.1f ms | decode %.1f tok/s | peak memory %.2f GiB | stop: "
               "%s]\n",
               (long long)st.prompt_tokens, (long long)st.cached_tokens, st.ttft_s, prefill_tps,
               (long long)st.generated, tpot * 1e3, tpot > 0 ? 1.0 / tpot : 0.0, peak_rss_gib(),
               finish_reason_name(st.reason));
  if (st.drafted > 0)
    std::fprintf(stderr, "[speculative: %lld of %lld drafts accepted (%.0f%%)]\n",
                 (long long)st.accepted, (long long)st.drafted, 100.0 * st.accepted / st.drafted);
}

void progress(int64_t done, int64_t total) {
  if (total < 1024 || !isatty(2)) return;
  const int width = 30, filled = int(width * done / total);
  std::fprintf(stderr, "\rprefill [%.*s%*s] %lld/%lld tokens", filled,
               "##############################", width - filled, "", (long long)done,
               (long long)total);
  if (done == total) std::fprintf(stderr, "\r%*s\r", 70, "");
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot read the prompt file");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One model behind an engine; each turn is one request (a chat turn re-sends the conversation,
// whose earlier turns the prefix cache holds).
ModelOptions model_options(const RunArgs& a) {
  ModelOptions mo;
  mo.precision = a.precision == "f32" ? Precision::f32 : Precision::bf16;
  mo.attention = a.attention == "dense" ? AttentionMode::dense : AttentionMode::sparse;
  mo.attention_form = attention_form_from_name(a.form);
  mo.kv_cache_tokens = a.kv_cache_tokens;
  mo.fp8_activations = a.fp8_activations;
  mo.kv_cache_dtype = kv_cache_dtype_from_name(a.kv_cache_dtype);
  mo.dist = a.dist;
  return mo;
}

class Session {
 public:
  explicit Session(const RunArgs& a) : args_(a) {
    struct stat st;
    if (::stat(a.model.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      throw std::runtime_error(a.model + ": no such model directory");
    if (::stat((a.model + "/tokenizer.json").c_str(), &st) != 0)
      throw std::runtime_error(a.model + ": no tokenizer.json in the model directory");
    const ModelOptions mo = model_options(a);
    if (!a.quiet) std::fprintf(stderr, "loading %s ...\n", a.model.c_str());
    std::unique_ptr<Model> model = Model::load(a.model, mo);
    tokenizer_.emplace(Tokenizer::load(a.model));
    format_ = a.format.empty() ? default_chat_format(a.model)
                               : chat_format_from_name(a.format).value_or(ChatFormat::deepseek_v3);
    if (!a.format.empty() && !chat_format_from_name(a.format))
      throw std::runtime_error("--format " + a.format + ": expected v3, v3.1 or v3.2");
    if (!a.quiet)
      std::fprintf(stderr,
                   "model: %s, %d layers, %.2f GiB of weights mapped; chat format %s; KV cache "
                   "%lld tokens (%.2f GiB)\n",
                   model->config().architecture.c_str(), model->config().num_hidden_layers,
                   double(model->weights().resident_bytes()) / (1 << 30),
                   std::string(chat_format_name(format_)).c_str(),
                   (long long)model->cache().capacity_tokens(),
                   double(model->cache().bytes_reserved()) / (1 << 30));
    EngineOptions eo;
    eo.max_running = 1;
    eo.max_batch_tokens = std::max<int64_t>(1, a.prefill_chunk);
    eo.context_limit = a.ctx;
    eo.speculative_draft_tokens = a.speculative.engine_draft_tokens();
    engine_.emplace(std::move(model), *tokenizer_, eo);
  }

  // One user turn (chat) or one raw completion; streams the answer to stdout.
  TurnStats turn(const std::string& user_text, bool chat) {
    std::vector<int32_t> prompt;
    if (chat) {
      ChatMessage m;
      m.role = "user";
      m.content = user_text;
      history_.push_back(m);
      prompt = encode_chat(*tokenizer_, format_, history_, ChatOptions{true, args_.think});
    } else {
      prompt = transcript_;
      if (prompt.empty()) prompt.push_back(tokenizer_->bos_id());
      const auto more = tokenizer_->encode(user_text, true);
      prompt.insert(prompt.end(), more.begin(), more.end());
    }
    Request r;
    r.prompt = prompt;
    r.sampling = args_.sampling;
    r.max_tokens = args_.max_tokens;
    r.stop = args_.stop;
    r.report_prefill = !args_.quiet;
    TurnStats st;
    st.prompt_tokens = int64_t(prompt.size());
    RequestHandle h = engine_->submit(std::move(r));
    std::vector<int32_t> generated;
    g_interrupt = false;
    auto old = std::signal(SIGINT, on_sigint);
    bool cancelled = false;
    for (;;) {
      std::optional<RequestEvent> ev = h.next(0.1);
      if (g_interrupt && !cancelled) h.cancel(), cancelled = true;
      if (!ev) continue;
      if (ev->kind == RequestEvent::Kind::prefill) {
        progress(ev->prefilled, ev->usage.prompt_tokens);
        continue;
      }
      write_out(ev->text);
      st.text += ev->text;
      for (const GeneratedToken& t : ev->tokens) generated.push_back(t.token);
      if (ev->kind != RequestEvent::Kind::finished) continue;
      st.reason = ev->reason;
      st.error = ev->error;
      st.cached_tokens = ev->usage.cached_tokens;
      st.generated = ev->usage.completion_tokens;
      st.drafted = ev->usage.draft_tokens;
      st.accepted = ev->usage.accepted_tokens;
      st.ttft_s = ev->times.ttft_s;
      st.prefill_s = ev->times.ttft_s - ev->times.queued_s;
      st.decode_s = ev->times.total_s - ev->times.ttft_s;
      break;
    }
    std::signal(SIGINT, old);
    if (st.reason == FinishReason::error) throw std::runtime_error(st.error);
    if (chat) {
      ChatMessage m;
      m.role = "assistant";
      m.content = st.text;
      history_.push_back(m);
    } else {
      transcript_ = prompt;
      transcript_.insert(transcript_.end(), generated.begin(), generated.end());
    }
    return st;
  }

 private:
  static void write_out(const std::string& t) {
    if (t.empty()) return;
    std::fwrite(t.data(), 1, t.size(), stdout);
    std::fflush(stdout);
  }

  const RunArgs& args_;
  std::optional<Tokenizer> tokenizer_;
  ChatFormat format_ = ChatFormat::deepseek_v3;
  std::optional<Engine> engine_;
  std::vector<int32_t> transcript_;  // raw mode: everything so far
  std::vector<ChatMessage> history_;
};

int run_main(const RunArgs& a) {
  if (a.threads > 0) set_num_threads(a.threads);
  if (!a.prompt.empty() && !a.file.empty()) throw std::runtime_error("give -p or -f, not both");
  if (serve_as_worker(a.model, model_options(a))) return 0;
  Session session(a);
  const bool chat = !a.raw;
  if (!a.prompt.empty() || !a.file.empty()) {
    const std::string text = a.prompt.empty() ? read_file(a.file) : a.prompt;
    TurnStats st = session.turn(text, chat);
    std::printf("\n");
    if (!a.quiet) print_stats(st);
    return 0;
  }
  // Interactive chat: a line per user turn; Ctrl-C stops the answer, Ctrl-D quits.
  std::fprintf(stderr,
               "interactive chat: type a message and press Enter; Ctrl-C stops an "
               "answer, Ctrl-D quits.\n");
  std::string line;
  for (;;) {
    std::fprintf(stderr, "> ");
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    TurnStats st = session.turn(line, chat);
    std::printf("\n");
    if (!a.quiet) print_stats(st);
  }
  std::fprintf(stderr, "\n");
  return 0;
}

CommandRegistrar run_cmd(
    {"run", "Generate text from a prompt or chat interactively", [](CLI::App& app) {
       auto a = std::make_shared<RunArgs>();
       app.add_option("-m,--model", a->model,
                      "Model directory (config.json, safetensors, tokenizer.json)")
           ->required();
       app.add_option("-p,--prompt", a->prompt, "Prompt text");
       app.add_option("-f,--file", a->file, "Read the prompt from a file");
       app.add_flag("--chat", a->chat, "Wrap the prompt in the model's chat format (default)");
       app.add_flag("--raw", a->raw, "Complete the prompt as plain text (BOS + prompt)");
       app.add_flag("--think", a->think, "Thinking mode (V3.1/V3.2 formats)");
       app.add_option("--format", a->format,
                      "Chat format: v3, v3.1, v3.2 (default: from the model)");
       app.add_option("-n,--max-tokens", a->max_tokens, "Tokens to generate at most (default 256)");
       app.add_option("-c,--ctx", a->ctx, "Context limit in tokens (default: the model's maximum)");
       app.add_option("-t,--threads", a->threads, "Threads (default: all cores)");
       app.add_option("--temp", a->sampling.temperature, "Temperature (0 = greedy; default 0.6)");
       app.add_option("--top-k", a->sampling.top_k, "Top-k (0 = off)");
       app.add_option("--top-p", a->sampling.top_p, "Top-p (1 = off)");
       app.add_option("--min-p", a->sampling.min_p, "Min-p (0 = off)");
       app.add_option("--repeat-penalty", a->sampling.repetition_penalty,
                      "Repetition penalty (1 = off)");
       app.add_option("--presence-penalty", a->sampling.presence_penalty, "Presence penalty");
       app.add_option("--frequency-penalty", a->sampling.frequency_penalty, "Frequency penalty");
       app.add_option("--seed", a->sampling.seed, "Sampling seed");
       app.add_option("--stop", a->stop, "Stop string (repeatable)");
       app.add_option("--precision", a->precision, "bf16 or f32")
           ->check(CLI::IsMember({"bf16", "f32"}));
       app.add_option("--attention", a->attention, "sparse (DSA) or dense")
           ->check(CLI::IsMember({"sparse", "dense"}));
       app.add_option("--attention-form", a->form,
                      "auto (by cost), absorbed (MLA over the latent cache) or mha (prefill over "
                      "expanded keys and values)")
           ->check(CLI::IsMember({"auto", "absorbed", "mha"}));
       app.add_option("--prefill-chunk", a->prefill_chunk,
                      "Prompt tokens per forward call (default 2048: long chunks keep the GEMMs "
                      "and MHA prefill efficient)");
       add_speculative_options(app, a->speculative);
       app.add_flag("--fp8-activations", a->fp8_activations,
                    "Quantize FP8 layers' activations to FP8 as the release does");
       app.add_option("--kv-cache-tokens", a->kv_cache_tokens,
                      "KV cache budget in tokens (default: half the free memory)");
       add_kv_cache_dtype_option(app, a->kv_cache_dtype);
       app.add_flag("-q,--quiet", a->quiet, "No progress or timing lines on stderr");
       add_dist_options(app, a->dist);
       return std::function<int()>([a] {
         if (a->chat && a->raw) throw std::runtime_error("give --chat or --raw, not both");
         return run_main(*a);
       });
     }});

}  // namespace
}  // namespace dsinfer::cli
