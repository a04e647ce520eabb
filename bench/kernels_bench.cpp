// `dsinfer bench kernels`: every DSA kernel (the indexer and attention suites), and with --sweep
// the per-token decode cost of DSA (indexer + fused top-k + sparse attention) against dense MLA
// attention for N = 4K .. 128K, at the 671B attention shapes (H = 128, HI = 64, K = 2048).
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "bench_harness.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/indexer.h"
#include "kernels/mla_attention.h"

namespace dsinfer::bench {
namespace {

constexpr int kH = 128, kHI = 64, kK = 2048, kC = 512, kR = 64;

uint32_t next(uint32_t& s) {
  return s = s * 1664525u + 1013904223u;
}

struct DecodeState {
  int64_t N;
  std::vector<bf16> c, pe;
  std::vector<uint8_t> pages;
  std::vector<int32_t> table;
  std::vector<float> q, w, o, lse;
  std::vector<uint8_t> q8;
  std::vector<int32_t> idx;
  MlaCacheView view;

  explicit DecodeState(int64_t n) : N(n) {
    uint32_t s = 7;
    c.resize(size_t(N) * kC), pe.resize(size_t(N) * kR);
    for (auto& x : c) x = f32_to_bf16(float(int32_t(next(s) >> 8) % 2001 - 1000) * 1e-3f);
    for (auto& x : pe) x = f32_to_bf16(float(int32_t(next(s) >> 8) % 2001 - 1000) * 1e-3f);
    const int64_t n_pages = (N + kIndexerPageTokens - 1) / kIndexerPageTokens;
    pages.resize(size_t(n_pages * kIndexerPageBytes));
    for (size_t i = 0; i < pages.size(); ++i) pages[i] = uint8_t(next(s) >> 24) & 0x77;  // finite
    for (int64_t p = 0; p < n_pages; ++p)
      for (int64_t t = 0; t < kIndexerPageTokens; ++t) {
        const float scale = 0.01f;
        std::copy_n(reinterpret_cast<const uint8_t*>(&scale), 4,
                    &pages[size_t(p * kIndexerPageBytes + t * kIndexerTokenBytes + kIndexerDim)]);
      }
    table.resize(size_t(n_pages));
    for (int64_t p = 0; p < n_pages; ++p) table[size_t(p)] = int32_t(n_pages - 1 - p);
    q.resize(size_t(kH) * (kC + kR));
    for (auto& x : q) x = float(int32_t(next(s) >> 8) % 2001 - 1000) * 1e-3f;
    q8.resize(size_t(kHI) * kIndexerDim);
    for (auto& x : q8) x = uint8_t(next(s) >> 24) & 0x77;
    w.assign(size_t(kHI), 0.01f);
    o.resize(size_t(kH) * kC), lse.resize(size_t(kH)), idx.resize(size_t(kK));
    view = MlaCacheView{DType::bf16, DType::bf16, c.data(), pe.data(), kC, kR, N, nullptr};
  }
  MlaAttnArgs attn_args() {
    MlaAttnArgs a;
    a.q = q.data();
    a.n_queries = 1;
    a.n_heads = kH;
    a.scale = 0.1f;
    a.bf16_products = true;  // the bf16 precision's attention
    a.caches = &view;
    a.o_lat = o.data();
    a.lse = lse.data();
    return a;
  }
  void indexer() {
    IndexerQueries iq{DType::fp8_e4m3, q8.data(), w.data(), 1, kHI};
    IndexerKeys keys;
    keys.dtype = DType::fp8_e4m3;
    keys.n_keys = N;
    keys.pages = pages.data();
    keys.block_table = table.data();
    indexer_topk(iq, keys, nullptr, kK, idx.data(), nullptr);
  }
};

void sweep(int threads, const Options& opts, Report& report) {
  report.probe(threads);
  set_num_threads(threads);
  std::printf("\nDSA vs dense MLA, decode, one token, H=%d HI=%d K=%d, %d thread(s)\n", kH, kHI, kK,
              threads);
  std::printf("%8s %12s %12s %12s %12s %8s\n", "N", "indexer_ms", "sparse_ms", "dsa_ms", "dense_ms",
              "speedup");
  std::vector<int64_t> ns = opts.quick
                                ? std::vector<int64_t>{4096, 8192}
                                : std::vector<int64_t>{4096, 8192, 16384, 32768, 65536, 131072};
  for (int64_t N : ns) {
    DecodeState st(N);
    const int reps = opts.quick ? 2 : 3;
    const double ind = time_median_ms([&] { st.indexer(); }, reps, 0.0);
    MlaAttnArgs a = st.attn_args();
    const double sp =
        time_median_ms([&] { sparse_mla_attention(a, st.idx.data(), kK); }, reps, 0.0);
    const int32_t pos = int32_t(N - 1);
    const double de = time_median_ms([&] { dense_mla_attention(a, &pos); }, reps, 0.0);
    const double dsa = ind + sp;
    std::printf("%8lld %12.3f %12.3f %12.3f %12.3f %7.1fx\n", (long long)N, ind, sp, dsa, de,
                de / dsa);
    // FLOPs as spec §7 counts them: indexer 2*HI*128*N, sparse 2*H*K*(576+512), dense 2*H*N*1088.
    const double f_dsa = 2.0 * kHI * 128 * N + 2.0 * kH * std::min<int64_t>(N, kK) * (kC + kR + kC);
    const double f_dense = 2.0 * kH * N * (kC + kR + kC);
    Result r;
    r.name = "dsa_decode";
    r.params = {{"N", N}, {"H", kH}, {"HI", kHI}, {"K", kK}};
    r.median_ms = dsa;
    r.gflops = f_dsa / dsa / 1e6;
    r.extra["dense_ms"] = de;
    r.extra["speedup_vs_dense"] = de / dsa;
    report.add(r, threads);
    Result d;
    d.name = "dense_decode";
    d.params = {{"N", N}, {"H", kH}};
    d.median_ms = de;
    d.gflops = f_dense / de / 1e6;
    report.add(d, threads);
  }
}

SuiteRegistrar kernels_suite(
    "kernels", "DSA kernels: indexer, top-k, sparse/dense attention (--sweep: DSA vs dense)",
    [](const Options& opts, Report& report) {
      const bool only_sweep =
          std::find(opts.args.begin(), opts.args.end(), "--sweep") != opts.args.end();
      if (!only_sweep) {
        suites().at("indexer").second(opts, report);
        suites().at("attention").second(opts, report);
      } else {
        for (int t : opts.threads) sweep(t, opts, report);
      }
    });

}  // namespace
}  // namespace dsinfer::bench
