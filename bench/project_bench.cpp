// `dsinfer bench project [--hw ranks=64,cores=96,gflops=400,dram=480,net=50,lat=3]`: the cost
// model of bench/cost_model.h, calibrated on this machine and checked against it, then applied to
// the full DeepSeek-V3.2 (671B) on a CPU cluster: TTFT and TPOT at 4K / 32K / 128K context, and
// the smallest cluster of that hardware meeting the seed system's 128K target (TTFT < 2 s,
// TPOT < 30 ms).
//
// Calibration: `mini` (one process) prefills a prompt and decodes at one depth; the per-operator
// times against the model's FLOPs and bytes at the probe's peaks give the efficiencies. The model
// then predicts a longer prompt and a deeper decode, which are measured too (the error must stay
// under 25%).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bench_harness.h"
#include "bench_models.h"
#include "core/thread_pool.h"
#include "cost_model.h"
#include "kernels/kv_cache_view.h"
#include "model/model.h"
#include "quant/quantize.h"

namespace dsinfer::bench {
namespace {

double ratio(double ideal, double measured) {
  return measured > 0 && ideal > 0 ? ideal / measured : 1.0;
}

SuiteRegistrar project_suite(
    "project",
    "cost model: calibrated on mini here (predicted vs measured), then TTFT/TPOT of the 671B at "
    "4K/32K/128K on a CPU cluster (--hw ranks=,cores=,gflops=,dram=,net=,lat=)",
    [](const Options& opts, Report& report) {
      const int t = opts.threads.front();
      set_num_threads(t);
      const std::string dir = opts.model_dir.empty() ? default_model_dir() : opts.model_dir;
      ModelOptions mo;
      mo.one_process = true;
      std::unique_ptr<Model> model = Model::load(dir, mo);
      const ModelCounts mini =
          model_counts(model->config(), schema_step_bytes(model->config(), true));
      const Efficiency ideal{1, 1, 1, 1, 1, 0};
      const int64_t max_pos = model->config().max_position_embeddings;
      const int64_t cal_T = std::min<int64_t>(opts.quick ? 256 : 512, max_pos / 8);
      // Both calibration depths past index_topk, where DSA scores every key (below it attention is
      // dense and the indexer idle, which would skew the per-key slope).
      const ModelConfig& mc = model->config();
      const int64_t d1 = std::min<int64_t>(
                        std::max<int64_t>(opts.quick ? 1024 : 4096,
                                          mc.has_indexer ? 2 * int64_t(mc.index_topk) : 0),
                        max_pos / 16),
                    d2 = 4 * d1;
      const int steps = opts.quick ? 2 : 9;
      // Calibrate at a thread count: a prefill for the dense and attention work; decode at two
      // depths, whose difference is the indexer's per-key work, the rest at the first depth the
      // weights'. Returns this machine at that count and its efficiencies.
      auto calibrate = [&](int threads, Hardware& hw, Efficiency& eff) {
        const PeakProbe& pk = report.probe(threads);
        set_num_threads(threads);
        hw.name = "this machine";
        hw.cores = threads;
        hw.gflops_core = pk.bf16_gflops / threads;
        hw.dram_gbs = pk.read_gbs;
        const StepRun mp = time_prefill(*model, cal_T, uint32_t(cal_T)),
                      m1 = time_decode(*model, d1, steps), m2 = time_decode(*model, d2, steps);
        const CostBreakdown ip = prefill_cost(mini, cal_T, hw, ideal, {});
        eff.attention = ratio(ip.attention_s, mp.ops.attention);
        eff.gemm = ratio(ip.compute_s, mp.total_s - mp.ops.attention - mp.ops.indexer);
        const CostBreakdown i1 = decode_cost(mini, d1, 1, hw, ideal, {}),
                            i2 = decode_cost(mini, d2, 1, hw, ideal, {});
        eff.decode_attention = ratio(i1.attention_s, m1.ops.attention);
        eff.indexer = ratio(i2.indexer_s - i1.indexer_s, m2.total_s - m1.total_s);
        eff.weights =
            ratio(i1.memory_s, m1.total_s - m1.ops.attention - i1.indexer_s / eff.indexer);
        Result r;
        r.name = "project_calibration";
        r.params = {{"prefill", cal_T},
                    {"depths", std::to_string(d1) + "," + std::to_string(d2)},
                    {"calibrated_threads", threads}};
        r.extra = {{"eff_gemm", eff.gemm},
                   {"eff_attention", eff.attention},
                   {"eff_decode_attention", eff.decode_attention},
                   {"eff_indexer", eff.indexer},
                   {"eff_weights", eff.weights}};
        report.add(r, 0);
      };
      Hardware here;
      Efficiency eff;
      calibrate(t, here, eff);

      // Check: other shapes, predicted against measured.
      auto add_check = [&](const char* name, nlohmann::json params, const StepRun& m,
                           const CostBreakdown& c) {
        Result r;
        r.name = name;
        r.params = std::move(params);
        r.median_ms = m.total_s * 1e3;
        const double pred = c.total_s * 1e3;
        r.extra = {{"predicted_ms", pred},
                   {"error_pct", 100.0 * (pred - r.median_ms) / r.median_ms},
                   {"attention_ms", m.ops.attention * 1e3},
                   {"predicted_attention_ms", c.attention_s * 1e3},
                   {"indexer_ms", m.ops.indexer * 1e3},
                   {"predicted_indexer_ms", c.indexer_s * 1e3}};
        report.add(r, 0);
      };
      for (int64_t T : opts.quick ? std::vector<int64_t>{2 * cal_T}
                                  : std::vector<int64_t>{2 * cal_T, 4 * cal_T}) {
        add_check("project_check_prefill", {{"tokens", T}}, time_prefill(*model, T, uint32_t(T)),
                  prefill_cost(mini, T, here, eff, {}));
      }
      for (int64_t d :
           opts.quick ? std::vector<int64_t>{8 * d1} : std::vector<int64_t>{8 * d1, 16 * d1}) {
        if (d + steps + 2 > max_pos) continue;
        add_check("project_check_decode", {{"depth", d}}, time_decode(*model, d, steps),
                  decode_cost(mini, d, 1, here, eff, {}));
      }
      // The distributed layouts of `bench dist` on this machine (2 ranks sharing its cores,
      // exchanges through shared memory: ~10 GB/s, ~5 us per exchange assumed).
      {
        // Each rank runs t / 2 threads: this machine calibrated at that count (a thread pool of
        // fewer threads is more efficient per thread, which is part of what CP buys here).
        const int per = std::max(1, t / 2);
        Hardware two;
        Efficiency eff_two;
        calibrate(per, two, eff_two);
        set_num_threads(t);
        two.ranks = 2;
        const int64_t T = opts.quick ? 256 : 1024,
                      d = std::min<int64_t>(opts.quick ? 2048 : 8192, max_pos / 2);
        for (const auto& [name, p] :
             std::vector<std::pair<const char*, Parallel>>{{"ep=2", Parallel{2, 1, 1}},
                                                           {"cp=2", Parallel{1, 2, 1}},
                                                           {"cp=2 ep=2", Parallel{2, 2, 1}}}) {
          Result r;
          r.name = "project_mini_dist";
          r.params = {{"layout", name}, {"ranks", 2}, {"tokens", T}, {"depth", d}};
          const double pre = prefill_cost(mini, T, two, eff_two, p).total_s,
                       dec = decode_cost(mini, d, 1, two, eff_two, p).total_s;
          // One process on both ranks' cores, as bench dist compares against.
          const double pre1 = prefill_cost(mini, T, here, eff, {}).total_s,
                       dec1 = decode_cost(mini, d, 1, here, eff, {}).total_s;
          r.extra = {{"prefill_ms", pre * 1e3},
                     {"decode_ms", dec * 1e3},
                     {"prefill_speedup", pre1 / pre},
                     {"decode_speedup", dec1 / dec}};
          report.add(r, 0);
        }
      }

      // The 671B on a CPU cluster.
      const ModelConfig big_c = deepseek_v32_release_config();
      const ModelCounts big = model_counts(big_c, schema_step_bytes(big_c, true));
      Hardware hw;
      hw.name = "zen5-socket";
      hw.ranks = 64;
      hw.cores = 96;
      hw.gflops_core = 400;
      hw.dram_gbs = 480;
      hw.net_gbs = 50;
      hw.net_us = 3;
      for (size_t i = 0; i + 1 < opts.args.size(); ++i)
        if (opts.args[i] == "--hw") {
          hw = parse_hardware(opts.args[i + 1], hw);
          eff = parse_efficiency(opts.args[i + 1], eff);
        }
      auto layout = [](int n) { return Parallel{n, n, n}; };  // CP for prefill, DP for decode
      // Efficiencies are fractions of this machine's probe; a busy neighbour during the probe can
      // push one past 1, which no other machine would reach.
      for (double* x :
           {&eff.gemm, &eff.attention, &eff.decode_attention, &eff.indexer, &eff.weights})
        *x = std::min(*x, 1.0);
      // The release's FP8, INT4 routed experts (W4A16, the rest FP8) and W8A8 with the C8 cache,
      // as `dsinfer quantize` writes them (group 128; W8A8 per channel). The integer paths
      // decode to f32 in registers: compute is costed at the same efficiencies as FP8.
      struct Variant {
        const char* name;
        ModelCounts counts;
      };
      std::vector<Variant> variants = {{"fp8", big}};
      {
        const ModelConfig w4 = deepseek_v32_release_config(
            compressed_tensors_config(QuantScheme::w4a16, 128, QuantTargets::experts, true));
        variants.push_back({"w4a16-experts", model_counts(w4, schema_step_bytes(w4, true))});
        const ModelConfig w8 = deepseek_v32_release_config(
            compressed_tensors_config(QuantScheme::w8a8, -1, QuantTargets::all_linear, false));
        ModelCounts w8c8 = model_counts(w8, schema_step_bytes(w8, true));
        w8c8.mla_cache_bytes =
            double(latent_row_bytes(DType::fp8_e4m3, w8.kv_lora_rank)) + 2.0 * w8.qk_rope_head_dim;
        variants.push_back({"w8a8c8", w8c8});
      }
      for (const Variant& v : variants) {
        Result r;
        r.name = "project_671b_weights";
        r.params = {{"weights", v.name}};
        r.extra = {{"decode_weight_gb", v.counts.bytes.step(big_c.num_experts_per_tok) / 1e9},
                   {"expert_mb", v.counts.bytes.routed_expert / 1e6},
                   {"mla_cache_bytes_per_token_layer", v.counts.mla_cache_bytes}};
        report.add(r, 0);
      }
      for (const Variant& v : variants)
        for (int64_t ctx : {4096, 32768, 131072}) {
          const CostBreakdown pre = prefill_cost(v.counts, ctx, hw, eff, layout(hw.ranks));
          const CostBreakdown dec = decode_cost(v.counts, ctx, 1, hw, eff, layout(hw.ranks));
          Result r;
          r.name = "project_671b";
          r.params = {{"ctx", ctx},
                      {"weights", v.name},
                      {"ranks", hw.ranks},
                      {"cores", hw.cores},
                      {"gflops_core", hw.gflops_core},
                      {"dram_gbs", hw.dram_gbs},
                      {"net_gbs", hw.net_gbs}};
          r.extra = {{"ttft_s", pre.total_s},
                     {"ttft_compute_s", std::max(pre.compute_s, pre.memory_s)},
                     {"ttft_attention_s", pre.attention_s},
                     {"ttft_indexer_s", pre.indexer_s},
                     {"ttft_comm_s", pre.comm_s},
                     {"tpot_ms", dec.total_s * 1e3},
                     {"tpot_weights_ms", std::max(dec.memory_s, dec.compute_s) * 1e3},
                     {"tpot_comm_ms", dec.comm_s * 1e3}};
          report.add(r, 0);
        }
      // The smallest such cluster meeting the seed's 128K target, and what limits TPOT.
      Result r;
      r.name = "project_671b_target";
      r.params = {{"ctx", 131072}, {"ttft_s_max", 2.0}, {"tpot_ms_max", 30.0}};
      int need_ttft = 0, need_tpot = 0;
      for (int n = 1; n <= 4096; n *= 2) {
        Hardware h = hw;
        h.ranks = n;
        if (!need_ttft && prefill_cost(big, 131072, h, eff, layout(n)).total_s < 2.0) need_ttft = n;
        if (!need_tpot && decode_cost(big, 131072, 1, h, eff, layout(n)).total_s < 0.030)
          need_tpot = n;
      }
      r.extra = {{"ranks_for_ttft", need_ttft}, {"ranks_for_tpot", need_tpot}};
      Hardware h = hw;
      h.ranks = 4096;
      r.extra["tpot_floor_ms"] = decode_cost(big, 131072, 1, h, eff, layout(4096)).total_s * 1e3;
      // Every rank streams the replicated weights each step: the DRAM per rank TPOT needs.
      double lo = 1, hi = 1e5;
      for (int it = 0; it < 60; ++it) {
        h.dram_gbs = std::sqrt(lo * hi);
        (decode_cost(big, 131072, 1, h, eff, layout(4096)).total_s < 0.030 ? hi : lo) = h.dram_gbs;
      }
      r.extra["dram_gbs_for_tpot"] = hi;
      report.add(r, 0);
    });

}  // namespace
}  // namespace dsinfer::bench
