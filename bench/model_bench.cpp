// `dsinfer bench model`: prefill throughput and per-token decode time at context depths on a
// model (default: the `mini` preset, generated once under models/), DSA against dense attention,
// with a per-operator breakdown and the weight-streaming roofline.
#include <sys/stat.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "bench_harness.h"
#include "bench_models.h"
#include "core/thread_pool.h"
#include "model/model.h"
#include "synthetic/gen_model.h"

namespace dsinfer::bench {
namespace {

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

void add_breakdown(Result& r, const OpTimes& t, double scale_ms) {
  r.extra["proj_ms"] = t.projections * scale_ms;
  r.extra["indexer_prolog_ms"] = t.indexer_prolog * scale_ms;
  r.extra["indexer_topk_ms"] = t.indexer * scale_ms;
  r.extra["cache_ms"] = t.cache * scale_ms;
  r.extra["attn_ms"] = t.attention * scale_ms;
  r.extra["mlp_moe_ms"] = t.moe * scale_ms;
  r.extra["head_ms"] = t.head * scale_ms;
}

// One attention mode: prefill at several prompt lengths, then decode at several depths. A forced
// `form` (absorbed or MHA, instead of the model's per-batch choice) is a prefill comparison only:
// decode steps always take the absorbed form.
// --decode-depths D1,D2,...: decode only, at these depths (empty: the default prefill + decode).
std::vector<int64_t> decode_only_depths(const Options& opts) {
  std::vector<int64_t> depths;
  for (size_t i = 0; i + 1 < opts.args.size(); ++i) {
    if (opts.args[i] != "--decode-depths") continue;
    const std::string& list = opts.args[i + 1];
    for (size_t at = 0; at <= list.size();) {
      const size_t end = std::min(list.find(',', at), list.size());
      const std::string item = list.substr(at, end - at);
      size_t used = 0;
      long long v = -1;
      try {
        v = std::stoll(item, &used);
      } catch (const std::exception&) {
      }
      if (used != item.size() || v < 1)
        throw std::invalid_argument("--decode-depths: '" + item +
                                    "' is not a positive token count (e.g. 16384,65536)");
      depths.push_back(v);
      at = end + 1;
    }
  }
  return depths;
}

// --kv-cache-dtype NAME (auto when absent).
KvCacheDtype kv_cache_dtype_arg(const Options& opts) {
  for (size_t i = 0; i + 1 < opts.args.size(); ++i)
    if (opts.args[i] == "--kv-cache-dtype") return kv_cache_dtype_from_name(opts.args[i + 1]);
  return KvCacheDtype::automatic;
}

// Median decode ms per (mode name, depth), for the DSA vs dense summary.
using DecodeTimes = std::map<std::pair<std::string, int64_t>, double>;

void run_mode(const std::string& dir, AttentionMode mode, AttentionForm form, int threads,
              const Options& opts, Report& report, DecodeTimes* decode_times = nullptr) {
  const PeakProbe& probe = report.probe(threads);
  set_num_threads(threads);
  ModelOptions mo;
  mo.attention = mode;
  mo.attention_form = form;
  mo.kv_cache_dtype = kv_cache_dtype_arg(opts);
  std::unique_ptr<Model> model = Model::load(dir, mo);
  const ModelConfig& c = model->config();
  const char* mode_name = mode == AttentionMode::sparse ? "dsa" : "dense";

  // 16K-token prompts take minutes per mode on a 2-core machine: only with DSINFER_BENCH_LONG=1.
  const bool long_prompts = std::getenv("DSINFER_BENCH_LONG") != nullptr;
  const std::vector<int64_t> decode_only = decode_only_depths(opts);
  std::vector<int64_t> prompts =
      opts.quick ? std::vector<int64_t>{256} : std::vector<int64_t>{1024, 4096};
  if (long_prompts && !opts.quick) prompts.push_back(16384);
  if (!decode_only.empty()) prompts.clear();
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
  const std::vector<int64_t> depths = !decode_only.empty() ? decode_only
                                      : opts.quick
                                          ? std::vector<int64_t>{1024}
                                          : std::vector<int64_t>{1024, 16384, 65536, 131072};
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
      BatchEntry e{seq, {int32_t(i % c.vocab_size)}, false};
      e.prompt_len = depth;  // a generated token: the absorbed form, as decoding runs it
      model->forward({e});
      if (i > 0) {  // the first step warms up
        ms.push_back((now_s() - t0) * 1e3);
        sum.add(model->op_times());
      }
    }
    model->free_sequence(seq);
    std::sort(ms.begin(), ms.end());
    Result r;
    r.name = "model_decode";
    r.params = {{"depth", depth}, {"attention", mode_name}};
    if (mo.kv_cache_dtype != KvCacheDtype::automatic)
      r.params["kv_cache"] = std::string(dtype_name(model->cache().layout().latent_dtype));
    r.median_ms = ms[ms.size() / 2];
    // Memory: the cache's bytes per token (all layers) and this process's peak resident set.
    r.extra["kv_bytes_per_token"] = double(model->cache().bytes_per_token());
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    r.extra["peak_rss_gib"] = double(ru.ru_maxrss) / double(1 << 20);
    if (decode_times) (*decode_times)[{mode_name, depth}] = r.median_ms;
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

// Decoding tokens per verification step when each of K drafts is accepted with probability a
// given the ones before it were: 1 + a + ... + a^K.
double tokens_per_step(double a, int k) {
  double t = 0, p = 1;
  for (int i = 0; i <= k; ++i, p *= a) t += p;
  return t;
}

// `bench model --speculative` (docs/speculative.md): the cost of a verification step of K+1
// positions against a plain decode step at the same depth, next to the weight bytes each reads
// (measured: the routed experts the step actually ran), the MTP draft cost, and the decode
// speed-up they imply at given acceptance rates, for this model and, from its bytes alone, for
// the 671B release.
void run_speculative(const std::string& dir, int threads, const Options& opts, Report& report) {
  report.probe(threads);
  set_num_threads(threads);
  std::unique_ptr<Model> model = Model::load(dir, ModelOptions{});
  const ModelConfig& c = model->config();
  if (!model->has_mtp())
    throw std::runtime_error("bench model --speculative: " + dir + " has no MTP module");
  const double shared = shared_weight_bytes(*model);
  const int moe = moe_layers(*model);
  const ModelConfig big_config = deepseek_v32_release_config();
  const StepBytes big = schema_step_bytes(big_config, true);
  const double big_decode = big.step(big_config.num_experts_per_tok);
  const std::vector<int64_t> depths =
      opts.quick ? std::vector<int64_t>{1024} : std::vector<int64_t>{1024, 16384, 65536};
  const int steps = opts.quick ? 3 : 7;
  std::mt19937 rng(7);
  for (int64_t depth : depths) {
    if (depth + 16 > c.max_position_embeddings) continue;
    const int seq = model->create_sequence();
    model->fill_cache_synthetic(seq, depth, 1);
    std::vector<float> hidden;  // a decode step's final hidden state, the draft's input
    // One step of n generated tokens at `depth` (rolled back after): median ms, mean weight bytes.
    auto measure = [&](int n) {
      std::vector<double> ms;
      double bytes = 0, experts = 0;
      OpTimes sum;
      for (int i = 0; i <= steps; ++i) {
        BatchEntry e{seq, random_tokens(n, c.vocab_size, rng()), n > 1};
        e.prompt_len = depth;  // generated tokens: the absorbed form, as decoding runs them
        model->op_times() = OpTimes{};
        const double t0 = now_s();
        ForwardOutput out = model->forward({e});
        const double t = (now_s() - t0) * 1e3;
        model->truncate_sequence(seq, depth);
        if (hidden.empty())
          hidden.assign(out.hidden.data<float>(), out.hidden.data<float>() + c.hidden_size);
        if (i == 0) continue;  // warm-up
        ms.push_back(t);
        bytes += (shared + model->op_times().expert_bytes) / steps;
        experts += double(model->op_times().experts_run) / moe / steps;
        sum.add(model->op_times());
      }
      std::sort(ms.begin(), ms.end());
      OpTimes mean = sum;  // per step
      for (double* f : {&mean.projections, &mean.indexer_prolog, &mean.indexer, &mean.cache,
                        &mean.attention, &mean.moe, &mean.head, &mean.other})
        *f /= steps;
      return std::tuple{ms[ms.size() / 2], bytes, experts, mean};
    };
    const auto [decode_ms, decode_bytes, decode_experts, decode_times] = measure(1);
    // One MTP draft: one row through the MTP layer and the shared head.
    std::vector<double> draft;
    for (int i = 0; i <= steps; ++i) {
      model->cache().reserve(seq, depth + 1);
      const double t0 = now_s();
      model->mtp_forward_batch(
          {Model::MtpEntry{seq, hidden.data(), {int32_t(rng() % c.vocab_size)}}}, false);
      if (i > 0) draft.push_back((now_s() - t0) * 1e3);
      model->cache().set_mtp_length(seq, depth);
      model->truncate_sequence(seq, depth);
    }
    std::sort(draft.begin(), draft.end());
    const double draft_ms = draft[draft.size() / 2];
    for (int k = 1; k <= 3; ++k) {
      const auto [verify_ms, verify_bytes, verify_experts, verify_times] = measure(k + 1);
      Result r;
      r.name = "speculative";
      r.params = {{"depth", depth}, {"draft_tokens", k}};
      r.median_ms = verify_ms;
      r.gbs = verify_bytes / verify_ms / 1e6;
      r.peak = PeakKind::read;
      r.extra["decode_ms"] = decode_ms;
      r.extra["verify_ratio"] = verify_ms / decode_ms;
      r.extra["bytes_ratio"] = verify_bytes / decode_bytes;
      r.extra["verify_over_bytes"] = r.extra["verify_ratio"] / r.extra["bytes_ratio"];
      add_breakdown(r, verify_times, 1e3);  // the verification step's operators
      r.extra["decode_attn_ms"] = decode_times.attention * 1e3;
      r.extra["decode_indexer_topk_ms"] = decode_times.indexer * 1e3;
      r.extra["experts_decode"] = decode_experts;
      r.extra["experts_verify"] = verify_experts;
      r.extra["draft_ms"] = k * draft_ms;
      const double draft_ratio = k * draft_ms / decode_ms;
      r.extra["draft_ratio"] = draft_ratio;
      // The 671B: weight-streaming bound, so its step costs are its bytes.
      const double big_verify = big.step(expected_distinct_experts(
          big_config.n_routed_experts, big_config.num_experts_per_tok, k + 1));
      const double big_draft = k * big.draft(big_config.num_experts_per_tok);
      r.extra["bytes_ratio_671b"] = big_verify / big_decode;
      r.extra["draft_ratio_671b"] = big_draft / big_decode;
      for (const auto& [a, name] : {std::pair{0.5, "50"}, {0.7, "70"}, {0.85, "85"}}) {
        const double t = tokens_per_step(a, k);
        r.extra[std::string("speedup_a") + name] = t / (r.extra["verify_ratio"] + draft_ratio);
        r.extra[std::string("speedup_671b_a") + name] =
            t / (r.extra["bytes_ratio_671b"] + r.extra["draft_ratio_671b"]);
      }
      report.add(r, threads);
    }
    model->free_sequence(seq);
  }
}

SuiteRegistrar model_suite(
    "model",
    "whole-model prefill and decode at depth, DSA vs dense (--sweep: "
    "prefill with absorbed vs MHA attention; --speculative: MTP verification cost)",
    [](const Options& opts, Report& report) {
      const std::string dir = opts.model_dir.empty() ? default_model_dir() : opts.model_dir;
      bool sparse = true, dense = true, sweep = false, speculative = false;
      for (const std::string& a : opts.args) {
        if (a == "--speculative") speculative = true;
        if (a == "sparse") dense = false;
        if (a == "dense") sparse = false;
        if (a == "--sweep") sweep = true;
      }
      if (speculative) {
        for (int t : opts.threads) run_speculative(dir, t, opts, report);
        return;
      }
      std::vector<AttentionMode> modes;
      if (sparse) modes.push_back(AttentionMode::sparse);
      if (dense) modes.push_back(AttentionMode::dense);
      const std::vector<int64_t> decode_only = decode_only_depths(opts);
      for (int t : opts.threads) {
        DecodeTimes times;
        for (AttentionMode m : modes) {
          if (!sweep) {
            run_mode(dir, m, AttentionForm::automatic, t, opts, report, &times);
            continue;
          }
          for (AttentionForm f : {AttentionForm::absorbed, AttentionForm::mha})
            run_mode(dir, m, f, t, opts, report);
        }
        // With --decode-depths and both modes: the whole model's per-token cost, side by side.
        if (decode_only.empty() || !sparse || !dense || opts.json_path == "-") continue;
        std::printf("\nDSA vs dense attention, the whole model's decode per token, %d thread(s)\n",
                    t);
        std::printf("%10s %12s %12s %10s\n", "depth", "DSA ms", "dense ms", "DSA gain");
        for (int64_t d : decode_only) {
          auto a = times.find({"dsa", d}), b = times.find({"dense", d});
          if (a == times.end() || b == times.end()) continue;
          std::printf("%10lld %12.1f %12.1f %9.2fx\n", (long long)d, a->second, b->second,
                      b->second / a->second);
        }
        std::printf("\n");
      }
    });

}  // namespace
}  // namespace dsinfer::bench
