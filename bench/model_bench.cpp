// `dsinfer bench model`: prefill throughput and per-token decode time at context depths on a
// model (default: the `mini` preset, generated once under models/), DSA against dense attention,
// with a per-operator breakdown and the weight-streaming roofline.
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench_harness.h"
#include "bench_models.h"
#include "core/thread_pool.h"
#include "model/model.h"
#include "synthetic/gen_model.h"

namespace dsinfer::bench {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// FLOPs one decode step spends on attention and the indexer at a context depth (spec §7):
// absorbed MLA reads (kv_lora + rope) per key for scores and kv_lora for P.V, per head; the
// indexer scores every key with index_n_heads x index_head_dim once DSA is active.
double decode_attention_flops(const ModelConfig& c, int64_t depth, bool dsa) {
  const bool sparse = dsa && c.has_indexer && depth + 1 > c.index_topk;
  const double keys = sparse ? double(c.index_topk) : double(depth + 1);
  double f = 2.0 * c.num_attention_heads * keys * (2.0 * c.kv_lora_rank + c.qk_rope_head_dim);
  if (sparse) f += 2.0 * c.index_n_heads * double(depth + 1) * c.index_head_dim;
  return f * c.num_hidden_layers;
}

std::vector<int32_t> random_tokens(int64_t n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(size_t(n), 0);
  for (auto& x : t) x = int32_t(rng() % uint32_t(vocab));
  return t;
}

void add_breakdown(Result& r, const OpTimes& t, double scale_ms) {
  r.extra["proj_ms"] = t.projections * scale_ms;
  r.extra["indexer_topk_ms"] = t.indexer * scale_ms;
  r.extra["attn_ms"] = t.attention * scale_ms;
  r.extra["mlp_moe_ms"] = t.moe * scale_ms;
  r.extra["head_ms"] = t.head * scale_ms;
}

// One attention mode: prefill at several prompt lengths, then decode at several depths. A forced
// `form` (absorbed or MHA, instead of the model's per-batch choice) is a prefill comparison only:
// decode steps always take the absorbed form.
void run_mode(const std::string& dir, AttentionMode mode, AttentionForm form, int threads,
              const Options& opts, Report& report) {
  const PeakProbe& probe = report.probe(threads);
  set_num_threads(threads);
  ModelOptions mo;
  mo.attention = mode;
  mo.attention_form = form;
  std::unique_ptr<Model> model = Model::load(dir, mo);
  const ModelConfig& c = model->config();
  const char* mode_name = mode == AttentionMode::sparse ? "dsa" : "dense";

  // 16K-token prompts take minutes per mode on a 2-core machine: only with DSINFER_BENCH_LONG=1.
  const bool long_prompts = std::getenv("DSINFER_BENCH_LONG") != nullptr;
  std::vector<int64_t> prompts =
      opts.quick ? std::vector<int64_t>{256} : std::vector<int64_t>{1024, 4096};
  if (long_prompts && !opts.quick) prompts.push_back(16384);
  for (int64_t P : prompts) {
    const auto tokens = random_tokens(P, c.vocab_size, uint32_t(P));
    const int seq = model->create_sequence();
    model->op_times() = OpTimes{};
    const double t0 = now_s();
    // Chunks of 2048 tokens, as a server would schedule a long prompt.
    for (int64_t s = 0; s < P; s += 2048) {
      BatchEntry e{seq, {tokens.begin() + s, tokens.begin() + std::min(P, s + 2048)}, false};
      model->forward({e});
    }
    const double sec = now_s() - t0;
    model->free_sequence(seq);
    Result r;
    r.name = "model_prefill";
    r.params = {{"prompt", P}, {"attention", mode_name}};
    if (form != AttentionForm::automatic)
      r.params["form"] = std::string(form == AttentionForm::mha ? "mha" : "absorbed");
    r.median_ms = sec * 1e3;
    r.extra["tokens_per_s"] = P / sec;
    add_breakdown(r, model->op_times(), 1e3);
    report.add(r, threads);
  }

  if (form != AttentionForm::automatic) return;
  const double wbytes = decode_weight_bytes(*model);
  const std::vector<int64_t> depths =
      opts.quick ? std::vector<int64_t>{1024} : std::vector<int64_t>{1024, 16384, 65536, 131072};
  for (int64_t depth : depths) {
    if (depth + 16 > c.max_position_embeddings) continue;
    const int seq = model->create_sequence();
    model->fill_cache_synthetic(seq, depth, 1);
    const int steps = opts.quick ? 3 : 6;
    std::vector<double> ms;
    OpTimes sum;
    for (int i = 0; i < steps + 1; ++i) {
      model->op_times() = OpTimes{};
      const double t0 = now_s();
      model->forward({BatchEntry{seq, {int32_t(i % c.vocab_size)}, false}});
      if (i > 0) {  // the first step warms up
        ms.push_back((now_s() - t0) * 1e3);
        const OpTimes& t = model->op_times();
        sum.projections += t.projections, sum.indexer += t.indexer, sum.attention += t.attention;
        sum.moe += t.moe, sum.head += t.head;
      }
    }
    model->free_sequence(seq);
    std::sort(ms.begin(), ms.end());
    Result r;
    r.name = "model_decode";
    r.params = {{"depth", depth}, {"attention", mode_name}};
    r.median_ms = ms[ms.size() / 2];
    r.gbs = wbytes / r.median_ms / 1e6;
    r.peak = PeakKind::read;
    r.extra["roofline_ms"] = wbytes / (probe.read_gbs * 1e9) * 1e3;
    r.extra["x_roofline"] = r.median_ms / r.extra["roofline_ms"];
    // The floor with attention counted too: weights at the read probe plus attention and indexer
    // FLOPs at the bf16 peak (at short depths on a small model the attention is not negligible).
    const double attn_peak_ms = decode_attention_flops(c, depth, mode == AttentionMode::sparse) /
                                (probe.bf16_gflops * 1e9) * 1e3;
    r.extra["attn_at_peak_ms"] = attn_peak_ms;
    r.extra["x_floor"] = r.median_ms / (r.extra["roofline_ms"] + attn_peak_ms);
    add_breakdown(r, sum, 1e3 / steps);
    report.add(r, threads);
  }
}

SuiteRegistrar model_suite(
    "model",
    "whole-model prefill and decode at depth, DSA vs dense (--sweep: "
    "prefill with absorbed vs MHA attention)",
    [](const Options& opts, Report& report) {
      const std::string dir = opts.model_dir.empty() ? default_model_dir() : opts.model_dir;
      bool sparse = true, dense = true, sweep = false;
      for (const std::string& a : opts.args) {
        if (a == "sparse") dense = false;
        if (a == "dense") sparse = false;
        if (a == "--sweep") sweep = true;
      }
      std::vector<AttentionMode> modes;
      if (sparse) modes.push_back(AttentionMode::sparse);
      if (dense) modes.push_back(AttentionMode::dense);
      for (int t : opts.threads)
        for (AttentionMode m : modes) {
          if (!sweep) {
            run_mode(dir, m, AttentionForm::automatic, t, opts, report);
            continue;
          }
          for (AttentionForm f : {AttentionForm::absorbed, AttentionForm::mha})
            run_mode(dir, m, f, t, opts, report);
        }
    });

}  // namespace
}  // namespace dsinfer::bench
