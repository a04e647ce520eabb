// `dsinfer bench attention`: absorbed-MLA flash attention over a bf16 latent cache (and the C8
// FP8 / INT8 latent at decode), sparse (DSA top-k) and dense causal, prefill and decode. FLOPs = 2
// * H * keys * (576 + 512) per query (spec §7); the percentage is of the probe's bf16 figure.
#include <algorithm>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "bench_harness.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
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
                                 for (int t : opts.threads)
                                   for (const Case& c : cases) run_case(c, t, opts, report);
                               });

}  // namespace
}  // namespace dsinfer::bench
