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
#include "model/generate.h"
#include "model/model.h"
#include "model/sampler.h"
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
  bool chat = false, raw = false, think = false, quiet = false;
  int64_t max_tokens = 256, ctx = 0, prefill_chunk = 2048;
  int threads = 0;
  SamplingParams sampling;
  std::vector<std::string> stop;
};

double peak_rss_gib() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / (1 << 20);  // KiB -> GiB
}

void print_stats(const GenerateStats& st) {
  const double prefill_tps = st.prefill_s > 0 ? st.prompt_tokens / st.prefill_s : 0;
  const double tpot = st.generated_tokens > 1 ? st.decode_s / double(st.generated_tokens - 1) : 0;
  std::fprintf(stderr,
               "\n[prompt %lld tokens | TTFT %.2f s | prefill %.1f tok/s | generated %lld tokens | "
               "TPOT %.1f ms | decode %.1f tok/s | peak memory %.2f GiB | stop: %s]\n",
               (long long)st.prompt_tokens, st.ttft_s, prefill_tps, (long long)st.generated_tokens,
               tpot * 1e3, tpot > 0 ? 1.0 / tpot : 0.0, peak_rss_gib(),
               stop_reason_name(st.reason));
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

class Session {
 public:
  explicit Session(const RunArgs& a) : args_(a) {
    struct stat st;
    if (::stat(a.model.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      throw std::runtime_error(a.model + ": no such model directory");
    if (::stat((a.model + "/tokenizer.json").c_str(), &st) != 0)
      throw std::runtime_error(a.model + ": no tokenizer.json in the model directory");
    ModelOptions mo;
    mo.precision = a.precision == "f32" ? Precision::f32 : Precision::bf16;
    mo.attention = a.attention == "dense" ? AttentionMode::dense : AttentionMode::sparse;
    mo.attention_form = attention_form_from_name(a.form);
    if (!a.quiet) std::fprintf(stderr, "loading %s ...\n", a.model.c_str());
    model_ = Model::load(a.model, mo);
    tokenizer_.emplace(Tokenizer::load(a.model));
    format_ = a.format.empty() ? default_chat_format(a.model)
                               : chat_format_from_name(a.format).value_or(ChatFormat::deepseek_v3);
    if (!a.format.empty() && !chat_format_from_name(a.format))
      throw std::runtime_error("--format " + a.format + ": expected v3, v3.1 or v3.2");
    seq_ = model_->create_sequence();
    if (!a.quiet)
      std::fprintf(stderr, "model: %s, %d layers, %.2f GiB of weights mapped; chat format %s\n",
                   model_->config().architecture.c_str(), model_->config().num_hidden_layers,
                   double(model_->weights().resident_bytes()) / (1 << 30),
                   std::string(chat_format_name(format_)).c_str());
  }

  // One user turn (chat) or one raw completion; streams the answer to stdout.
  GenerateStats turn(const std::string& user_text, bool chat) {
    std::vector<int32_t> full;
    if (chat) {
      ChatMessage m;
      m.role = "user";
      m.content = user_text;
      history_.push_back(m);
      full = encode_chat(*tokenizer_, format_, history_, ChatOptions{true, args_.think});
    } else {
      full = cached_;
      const auto more = tokenizer_->encode(user_text, true);
      if (cached_.empty()) full.push_back(tokenizer_->bos_id());
      full.insert(full.end(), more.begin(), more.end());
    }
    // Reuse the cache for the common prefix with what it holds; feed the rest.
    size_t common = 0;
    while (common < cached_.size() && common < full.size() && cached_[common] == full[common])
      ++common;
    if (common == full.size()) --common;  // always feed at least one token
    model_->truncate_sequence(seq_, int64_t(common));
    cached_.resize(common);
    const std::vector<int32_t> prompt(full.begin() + common, full.end());

    Sampler sampler(args_.sampling, model_->config().vocab_size);
    for (size_t i = 0; i < common; ++i) sampler.accept(cached_[i]);
    StreamingDecoder decoder(*tokenizer_, true);
    GenerateOptions go;
    go.max_tokens = args_.max_tokens;
    go.context_limit = args_.ctx;
    go.prefill_chunk = args_.prefill_chunk;
    go.stop = args_.stop;
    GenerateCallbacks cb;
    cb.on_text = [](const std::string& t) {
      std::fwrite(t.data(), 1, t.size(), stdout);
      std::fflush(stdout);
    };
    if (!args_.quiet) cb.on_prefill = progress;
    cb.interrupt = &g_interrupt;
    g_interrupt = false;
    auto old = std::signal(SIGINT, on_sigint);
    GenerateStats st;
    try {
      st = generate(*model_, seq_, prompt, sampler, decoder, go, cb);
    } catch (...) {
      std::signal(SIGINT, old);
      throw;
    }
    std::signal(SIGINT, old);
    // What the cache now holds: the prompt and every generated token that was fed back.
    cached_.insert(cached_.end(), prompt.begin(), prompt.end());
    const int64_t fed = model_->sequence_length(seq_) - int64_t(cached_.size());
    cached_.insert(cached_.end(), st.tokens.begin(), st.tokens.begin() + fed);
    if (chat) {
      ChatMessage m;
      m.role = "assistant";
      m.content = st.text;
      history_.push_back(m);
    }
    return st;
  }

 private:
  const RunArgs& args_;
  std::unique_ptr<Model> model_;
  std::optional<Tokenizer> tokenizer_;
  ChatFormat format_ = ChatFormat::deepseek_v3;
  int seq_ = 0;
  std::vector<int32_t> cached_;
  std::vector<ChatMessage> history_;
};

int run_main(const RunArgs& a) {
  if (a.threads > 0) set_num_threads(a.threads);
  if (!a.prompt.empty() && !a.file.empty()) throw std::runtime_error("give -p or -f, not both");
  Session session(a);
  const bool chat = !a.raw;
  if (!a.prompt.empty() || !a.file.empty()) {
    const std::string text = a.prompt.empty() ? read_file(a.file) : a.prompt;
    GenerateStats st = session.turn(text, chat);
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
    GenerateStats st = session.turn(line, chat);
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
       app.add_flag("-q,--quiet", a->quiet, "No progress or timing lines on stderr");
       return std::function<int()>([a] {
         if (a->chat && a->raw) throw std::runtime_error("give --chat or --raw, not both");
         return run_main(*a);
       });
     }});

}  // namespace
}  // namespace dsinfer::cli
