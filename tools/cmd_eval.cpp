// `dsinfer eval`: run a token sequence through the model and write the next-token logits of every
// position as raw little-endian f32, row-major [n_tokens, vocab_size].
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "command.h"
#include "core/thread_pool.h"
#include "model/model.h"

namespace dsinfer::cli {
namespace {

// "5,17,42" or "@path" (ids separated by commas and/or whitespace).
std::vector<int32_t> parse_tokens(const std::string& spec) {
  std::string text = spec;
  std::string source = "--tokens";
  if (!spec.empty() && spec[0] == '@') {
    source = spec.substr(1);
    std::ifstream in(source);
    if (!in) throw std::runtime_error(source + ": cannot read the token file");
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  std::vector<int32_t> out;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ',' || std::isspace(static_cast<unsigned char>(text[i]))) {
      ++i;
      continue;
    }
    size_t j = i;
    if (text[j] == '-') ++j;
    while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) ++j;
    if (j == i || (j == i + 1 && text[i] == '-') ||
        (j < text.size() && text[j] != ',' && !std::isspace(static_cast<unsigned char>(text[j]))))
      throw std::runtime_error(source + ": token " + std::to_string(out.size()) +
                               " is not an integer (near \"" + text.substr(i, 16) + "\")");
    const long long v = std::stoll(text.substr(i, j - i));
    if (v < INT32_MIN || v > INT32_MAX)
      throw std::runtime_error(source + ": token " + std::to_string(out.size()) +
                               " is out of range");
    out.push_back(int32_t(v));
    i = j;
  }
  if (out.empty()) throw std::runtime_error(source + ": the token list is empty");
  return out;
}

CommandRegistrar eval_cmd(
    {"eval", "Run tokens through a model and write every position's logits", [](CLI::App& app) {
       struct Args {
         std::string model, tokens, logits_out, precision = "bf16", indexer_quant = "fp8",
                                                attention = "sparse", form = "auto",
                                                kv_cache_dtype = "auto";
         int64_t chunk = 0;
         int threads = 0;
         bool verbose = false, fp8_activations = false;
         dist::Layout dist;
       };
       auto a = std::make_shared<Args>();
       app.add_option("-m,--model", a->model, "Model directory (config.json + safetensors)")
           ->required();
       app.add_option("--tokens", a->tokens, "Token ids: 5,17,42 or @file")->required();
       app.add_option("--logits-out", a->logits_out, "Output file: f32 [n_tokens, vocab]")
           ->required();
       app.add_option("--prefill-chunk", a->chunk,
                      "Tokens per forward call (0 = all at once, 1 = decode)");
       app.add_option("--precision", a->precision, "bf16 or f32")
           ->check(CLI::IsMember({"bf16", "f32"}));
       app.add_option("--indexer-quant", a->indexer_quant, "fp8 or none")
           ->check(CLI::IsMember({"fp8", "none"}));
       add_kv_cache_dtype_option(app, a->kv_cache_dtype);
       app.add_option("--attention", a->attention, "sparse (DSA) or dense")
           ->check(CLI::IsMember({"sparse", "dense"}));
       app.add_option("--attention-form", a->form,
                      "auto (by cost), absorbed (MLA over the latent cache) or mha (prefill over "
                      "expanded keys and values)")
           ->check(CLI::IsMember({"auto", "absorbed", "mha"}));
       app.add_option("-t,--threads", a->threads, "Threads (default: all cores)");
       app.add_flag("--fp8-activations", a->fp8_activations,
                    "Quantize FP8 layers' activations to FP8 as the release does");
       app.add_flag("-v,--verbose", a->verbose, "Report load time, memory and per-operator times");
       add_dist_options(app, a->dist);
       return std::function<int()>([a] {
         if (a->threads > 0) set_num_threads(a->threads);
         if (a->chunk < 0) throw std::runtime_error("--prefill-chunk must be >= 0");
         const std::vector<int32_t> tokens = parse_tokens(a->tokens);
         ModelOptions opt;
         opt.precision = a->precision == "f32" ? Precision::f32 : Precision::bf16;
         opt.indexer_fp8 = a->indexer_quant == "fp8";
         opt.attention = a->attention == "dense" ? AttentionMode::dense : AttentionMode::sparse;
         opt.attention_form = attention_form_from_name(a->form);
         opt.fp8_activations = a->fp8_activations;
         opt.kv_cache_dtype = kv_cache_dtype_from_name(a->kv_cache_dtype);
         opt.dist = a->dist;
         if (serve_as_worker(a->model, opt)) return 0;
         const auto t0 = std::chrono::steady_clock::now();
         std::unique_ptr<Model> model = Model::load(a->model, opt);
         const double load_s =
             std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
         const ModelConfig& c = model->config();
         if (int64_t(tokens.size()) > c.max_position_embeddings)
           throw std::runtime_error(std::to_string(tokens.size()) +
                                    " tokens exceed max_position_embeddings = " +
                                    std::to_string(c.max_position_embeddings));
         for (size_t i = 0; i < tokens.size(); ++i)
           if (tokens[i] < 0 || tokens[i] >= c.vocab_size)
             throw std::runtime_error("token " + std::to_string(tokens[i]) + " at position " +
                                      std::to_string(i) + " is outside the vocabulary [0, " +
                                      std::to_string(c.vocab_size) + ")");
         std::ofstream out(a->logits_out, std::ios::binary);
         if (!out) throw std::runtime_error(a->logits_out + ": cannot write");
         const int seq = model->create_sequence();
         const int64_t n = int64_t(tokens.size()), chunk = a->chunk == 0 ? n : a->chunk;
         const auto t1 = std::chrono::steady_clock::now();
         for (int64_t s = 0; s < n; s += chunk) {
           BatchEntry e;
           e.seq = seq;
           e.tokens.assign(tokens.begin() + s, tokens.begin() + std::min(n, s + chunk));
           e.all_logits = true;
           ForwardOutput r = model->forward({e});
           out.write(reinterpret_cast<const char*>(r.logits.raw()),
                     std::streamsize(r.logits.nbytes()));
         }
         if (!out) throw std::runtime_error(a->logits_out + ": write failed");
         const double run_s =
             std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
         if (a->verbose) {
           const OpTimes& t = model->op_times();
           std::fprintf(
               stderr,
               "load %.2f s, weights %.3f GiB mapped, cache %.1f MiB; %lld tokens in %.3f s "
               "(%.1f tok/s)\n",
               load_s, double(model->weights().resident_bytes()) / (1 << 30),
               double(model->cache_bytes()) / (1 << 20), (long long)n, run_s, n / run_s);
           std::fprintf(stderr,
                        "time: projections %.3f s, indexer prolog %.3f s, indexer scores+top-k "
                        "%.3f s, cache rows %.3f s, attention %.3f s, MLP/MoE %.3f s, head %.3f s, "
                        "other %.3f s\n",
                        t.projections, t.indexer_prolog, t.indexer, t.cache, t.attention, t.moe,
                        t.head, t.other);
         }
         return 0;
       });
     }});

}  // namespace
}  // namespace dsinfer::cli
