// `dsinfer bench attention`: absorbed-MLA flash attention over a bf16 latent cache (and the C8
// FP8 / INT8 latent at decode), sparse (DSA top-k) and dense causal, prefill and decode. FLOPs = 2
// * H * keys * (576 + 512) per query (spec §7); the percentage is of the probe's bf16 figure.
// Also the MHA prefill form (expanded keys and values, 192 + 128 per causal key and head, heads
// in parallel as the model runs them), in the bf16-pair layouts where the bf16 dot is native.
#include <algorithm>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "bench_harness.h"
#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/mha_attention.h"
#include "kernels/mla_attention.h"

namespace dsinfer::bench {
namespace {

constexpr int kC = 512, kR = 64;

struct Case {
  const char* name;
  int64_t N, T;
  int H, K;                   // K = 0: dense causal (queries are the last T positions)
  DType cache = DType::bf16;  // the latent's storage: bf16, or 8-bit codes (C8: fp8_e4m3 / i8)
};

void fill_bf16(std::vector<bf16>& v, uint32_t seed) {
  uint32_t s = seed * 2654435761u + 1;
  for (auto& x : v) {
    s = s * 1664525u + 1013904223u;
    x = f32_to_bf16(float(int32_t(s >> 8) % 2001 - 1000) * 1e-3f);
  }
}

void run_case(const Case& c, int threads, const Options& opts, Report& report) {
  report.probe(threads);
  set_num_threads(threads);
  std::vector<bf16> cache_c(size_t(c.N) * kC), cache_pe(size_t(c.N) * kR);
  fill_bf16(cache_c, 1), fill_bf16(cache_pe, 2);
  std::vector<float> q(size_t(c.T) * c.H * (kC + kR));
  {
    uint32_t s = 3;
    for (auto& x : q) s = s * 1664525u + 1013904223u, x = float(int32_t(s >> 8) % 2001) * 1e-3f;
  }
  std::vector<int32_t> idx, pos(c.T);
  for (int64_t t = 0; t < c.T; ++t) pos[t] = int32_t(c.N - c.T + t);
  int64_t keys = 0;  // total (query, key) pairs
  if (c.K > 0) {
    idx.resize(size_t(c.T) * c.K);
    std::vector<int32_t> perm(c.N);
    std::iota(perm.begin(), perm.end(), 0);
    std::mt19937 rng(4);
    for (int64_t t = 0; t < c.T; ++t) {
      // The first K of a partial shuffle: distinct random keys, as the top-k emits.
      for (int j = 0; j < c.K; ++j) {
        std::swap(perm[j], perm[j + rng() % (c.N - j)]);
        idx[t * c.K + j] = perm[j];
      }
      keys += std::min<int64_t>(c.K, c.N);
    }
  } else {
    for (int64_t t = 0; t < c.T; ++t) keys += pos[t] + 1;
  }
  MlaCacheView view;
  view.c_dtype = c.cache, view.c = cache_c.data(), view.k_pe = cache_pe.data();
  view.ld_c = kC, view.ld_pe = kR, view.n_tokens = c.N;
  std::vector<uint8_t> coded;  // C8: the same values as 8-bit rows
  if (latent_is_coded(c.cache)) {
    const int64_t rb = latent_row_bytes(c.cache, kC);
    coded.resize(size_t(c.N * rb));
    std::vector<float> row(kC);
    for (int64_t s = 0; s < c.N; ++s) {
      for (int i = 0; i < kC; ++i) row[size_t(i)] = bf16_to_f32(cache_c[size_t(s * kC + i)]);
      encode_latent_row(c.cache, row.data(), kC, &coded[size_t(s * rb)]);
    }
    view.c = coded.data(), view.ld_c = rb;
  }
  std::vector<float> o(size_t(c.T) * c.H * kC), lse(size_t(c.T) * c.H);
  MlaAttnArgs a;
  a.q = q.data(), a.n_queries = c.T, a.n_heads = c.H, a.scale = 0.07f, a.caches = &view;
  a.bf16_products = true;  // the bf16 precision's attention (the pair form on a bf16 cache)
  a.o_lat = o.data(), a.lse = lse.data();
  const double ms = time_median_ms(
      [&] {
        if (c.K > 0)
          sparse_mla_attention(a, idx.data(), c.K);
        else
          dense_mla_attention(a, pos.data());
      },
      opts.quick ? 1 : 3, opts.quick ? 0.0 : 0.3);
  Result r;
  r.name = c.name;
  r.params = {{"N", c.N}, {"T", c.T},           {"H", c.H},
              {"K", c.K}, {"threads", threads}, {"cache", std::string(dtype_name(c.cache))}};
  r.median_ms = ms;
  r.gflops = 2.0 * c.H * double(keys) * (kC + kR + kC) / ms / 1e6;
  // key rows gathered (per query)
  r.gbs = double(keys) * double(latent_row_bytes(c.cache, kC) + 2 * kR) / ms / 1e6;
  r.peak = PeakKind::bf16;
  report.add(std::move(r), threads);
}

// The MHA form of a prefill chunk: T queries at the end of an L-token context, H heads.
void run_mha_case(int64_t T, int64_t L, int H, int threads, const Options& opts, Report& report) {
  constexpr int kQK = 192, kV = 128;
  report.probe(threads);
  set_num_threads(threads);
  const bool pairs = bf16_pairs_native();
  std::vector<float> q(size_t(T) * H * kQK), kt, v;
  std::vector<uint16_t> kt2, v2;
  uint32_t s = 5;
  auto next = [&] { return s = s * 1664525u + 1013904223u, float(int32_t(s >> 8) % 2001) * 1e-3f; };
  for (auto& x : q) x = next();
  if (pairs) {
    kt2.assign(size_t(mha_key_pairs_size(L, kQK)), 0);
    v2.assign(size_t(mha_value_pairs_size(L, kV)), 0);
    for (int64_t k = 0; k < L; ++k) {
      for (int d = 0; d < kQK; ++d)
        kt2[size_t(mha_key_pair_index(k, d, kQK))] = f32_to_bf16(next()).bits;
      for (int c = 0; c < kV; ++c)
        v2[size_t(mha_value_pair_index(k, c, kV))] = f32_to_bf16(next()).bits;
    }
  } else {
    kt.assign(size_t(mha_keys_size(L, kQK)), 0.0f);
    v.resize(size_t(L) * (kV + 16));
    for (int64_t k = 0; k < L; ++k)
      for (int d = 0; d < kQK; ++d) kt[size_t(mha_key_index(k, d, kQK))] = next();
    for (auto& x : v) x = next();
  }
  std::vector<int32_t> pos(static_cast<size_t>(T));
  int64_t keys = 0;
  for (int64_t t = 0; t < T; ++t) keys += (pos[size_t(t)] = int32_t(L - T + t)) + 1;
  std::vector<float> o(size_t(T) * H * kV);
  const double ms = time_median_ms(
      [&] {
        parallel_for(H, 1, [&](int64_t h0, int64_t h1, int) {
          for (int64_t h = h0; h < h1; ++h) {
            MhaHeadArgs a;
            a.q = q.data() + h * kQK, a.ldq = int64_t(H) * kQK, a.n_queries = T;
            a.dqk = kQK, a.dv = kV, a.n_keys = L, a.positions = pos.data(), a.scale = 0.07f;
            if (pairs)
              a.kt2 = kt2.data(), a.v2 = v2.data();
            else
              a.kt = kt.data(), a.v = v.data(), a.ldv = kV + 16;
            a.o = o.data() + h * kV, a.ldo = int64_t(H) * kV;
            mha_attention_head(a);
          }
        });
      },
      opts.quick ? 1 : 3, opts.quick ? 0.0 : 0.3);
  Result r;
  r.name = "mha_attn_prefill";
  r.params = {{"N", L},
              {"T", T},
              {"H", H},
              {"threads", threads},
              {"form", std::string(pairs ? "bf16 pairs" : "f32")}};
  r.median_ms = ms;
  r.gflops = 2.0 * H * double(keys) * (kQK + kV) / ms / 1e6;
  r.peak = PeakKind::bf16;
  report.add(std::move(r), threads);
}

SuiteRegistrar attention_suite("attention",
                               "sparse (DSA) and dense causal absorbed-MLA flash attention",
                               [](const Options& opts, Report& report) {
                                 std::vector<Case> cases;
                                 if (opts.quick) {
                                   cases = {{"sparse_attn_prefill", 4096, 8, 16, 256},
                                            {"sparse_attn_decode", 4096, 1, 16, 256},
                                            {"dense_attn_prefill", 1024, 4, 16, 0},
                                            {"dense_attn_decode", 1024, 1, 16, 0}};
                                 } else {
                                   cases = {
                                       {"sparse_attn_prefill", 32768, 512, 128, 2048},
                                       {"sparse_attn_decode", 32768, 1, 128, 2048},
                                       {"sparse_attn_decode", 32768, 4, 128, 2048},
                                       // C8 latent cache (--kv-cache-dtype fp8 / int8)
                                       {"sparse_attn_decode", 32768, 1, 128, 2048, DType::fp8_e4m3},
                                       {"sparse_attn_decode", 32768, 1, 128, 2048, DType::i8},
                                       {"dense_attn_prefill", 32768, 8, 128, 0},
                                       {"dense_attn_decode", 32768, 1, 128, 0},
                                       // the model's decode at 1K depth (dense: N <= topk)
                                       {"dense_attn_decode", 1024, 1, 128, 0}};
                                 }
                                 for (int t : opts.threads) {
                                   for (const Case& c : cases) run_case(c, t, opts, report);
                                   // a 2,048-token chunk after 2,048 cached tokens (mini: 128
                                   // heads)
                                   if (opts.quick)
                                     run_mha_case(64, 256, 4, t, opts, report);
                                   else
                                     run_mha_case(2048, 4096, 16, t, opts, report);
                                 }
                               });

}  // namespace
}  // namespace dsinfer::bench
