// `dsinfer bench indexer`: the lightning indexer with fused top-k (prefill causal, decode over a
// paged cache) and the standalone top-k, against the in-process peak probe.
// FLOPs: 2 * HI * 128 per (query, visible key) (spec §7); bytes: 132 per key read.
#include <algorithm>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "bench_harness.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/indexer.h"
#include "kernels/topk.h"

namespace dsinfer::bench {
namespace {

uint32_t lcg(uint32_t& s) {
  s = s * 1664525u + 1013904223u;
  return s >> 8;
}

std::vector<uint8_t> random_codes(int64_t n, uint32_t seed) {
  std::vector<uint8_t> v(static_cast<size_t>(n));
  uint32_t s = seed;
  for (auto& c : v) c = f32_to_fp8_e4m3(float(int(lcg(s) % 2001) - 1000) * 0.4f).bits;
  return v;
}
std::vector<float> random_vals(int64_t n, uint32_t seed, float lo, float hi) {
  std::vector<float> v(static_cast<size_t>(n));
  uint32_t s = seed;
  for (auto& x : v) x = lo + (hi - lo) * float(lcg(s) % 65536) / 65536.0f;
  return v;
}

void prefill(int64_t T, int HI, int K, int threads, const Options& opts, Report& report) {
  report.probe(threads);
  set_num_threads(threads);
  const int64_t N = T;
  auto q8 = random_codes(T * HI * 128, 1);
  auto k8 = random_codes(N * 128, 2);
  auto w = random_vals(T * HI, 3, -1e-3f, 1e-3f);
  auto ks = random_vals(N, 4, 1e-3f, 2e-3f);
  std::vector<int64_t> nv(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) nv[size_t(t)] = t + 1;
  std::vector<int32_t> idx(size_t(T * K));
  std::vector<float> sc(idx.size());
  IndexerQueries q{DType::fp8_e4m3, q8.data(), w.data(), T, HI};
  IndexerKeys k{DType::fp8_e4m3, N, k8.data(), ks.data(), nullptr, nullptr};
  const double ms = time_median_ms([&] { indexer_topk(q, k, nv.data(), K, idx.data(), sc.data()); },
                                   opts.quick ? 1 : 3, opts.quick ? 0.0 : 0.5);
  double pairs = 0;
  for (int64_t t = 0; t < T; ++t) pairs += double(nv[size_t(t)]);
  Result r;
  r.name = "indexer_prefill";
  r.params = {{"N", N}, {"T", T}, {"HI", HI}, {"K", K}, {"threads", threads}, {"q", "fp8"}};
  r.median_ms = ms;
  r.gflops = 2.0 * HI * 128 * pairs / ms / 1e6;
  r.gbs = 132.0 * N / ms / 1e6;
  r.peak = PeakKind::bf16;
  report.add(std::move(r), threads);
}

double decode(int64_t N, int HI, int K, int threads, const Options& opts, Report& report) {
  report.probe(threads);
  set_num_threads(threads);
  const int64_t n_pages = (N + kIndexerPageTokens - 1) / kIndexerPageTokens;
  std::vector<int32_t> table(static_cast<size_t>(n_pages));
  std::iota(table.begin(), table.end(), 0);
  std::reverse(table.begin(), table.end());
  std::vector<uint8_t> pages(size_t(n_pages) * kIndexerPageBytes);
  auto codes = random_codes(N * 128, 5);
  auto ks = random_vals(N, 6, 1e-3f, 2e-3f);
  for (int64_t s = 0; s < N; ++s) {
    uint8_t* dst = indexer_page_token(pages.data(), table.data(), s);
    std::memcpy(dst, codes.data() + s * 128, 128);
    std::memcpy(dst + 128, &ks[size_t(s)], 4);
  }
  auto q8 = random_codes(HI * 128, 7);
  auto w = random_vals(HI, 8, -1e-3f, 1e-3f);
  std::vector<int32_t> idx(static_cast<size_t>(K));
  std::vector<float> sc(idx.size());
  IndexerQueries q{DType::fp8_e4m3, q8.data(), w.data(), 1, HI};
  IndexerKeys k{DType::fp8_e4m3, N, nullptr, nullptr, pages.data(), table.data()};
  const double ms = time_median_ms([&] { indexer_topk(q, k, nullptr, K, idx.data(), sc.data()); },
                                   opts.quick ? 2 : 5);
  Result r;
  r.name = "indexer_decode";
  r.params = {{"N", N}, {"T", 1}, {"HI", HI}, {"K", K}, {"threads", threads}, {"q", "fp8"}};
  r.median_ms = ms;
  r.gflops = 2.0 * HI * 128 * double(N) / ms / 1e6;
  r.gbs = 132.0 * double(N) / ms / 1e6;
  r.peak = PeakKind::bf16;
  report.add(std::move(r), threads);
  return ms;
}

void topk_bench(int64_t N, int K, int threads, double decode_ms, const Options& opts,
                Report& report) {
  report.probe(threads);
  set_num_threads(threads);
  auto s = random_vals(N, 9, -1.0f, 1.0f);
  std::vector<int32_t> idx(static_cast<size_t>(K));
  std::vector<float> sc(idx.size());
  const double ms = time_median_ms(
      [&] { topk(s.data(), 1, N, N, nullptr, K, idx.data(), sc.data()); }, opts.quick ? 2 : 5);
  Result r;
  r.name = "topk";
  r.params = {{"N", N}, {"T", 1}, {"K", K}, {"threads", threads}};
  r.median_ms = ms;
  r.gbs = 4.0 * double(N) / ms / 1e6;
  r.peak = PeakKind::read;
  if (decode_ms > 0) r.extra["pct_of_indexer_decode"] = 100.0 * ms / decode_ms;
  report.add(std::move(r), threads);
}

SuiteRegistrar indexer_suite("indexer",
                             "lightning indexer with fused top-k (prefill, paged decode) and top-k",
                             [](const Options& opts, Report& report) {
                               for (int t : opts.threads) {
                                 if (opts.quick) {
                                   prefill(256, 64, 64, t, opts, report);
                                   const double d = decode(4096, 64, 256, t, opts, report);
                                   topk_bench(4096, 256, t, d, opts, report);
                                   continue;
                                 }
                                 prefill(8192, 64, 2048, t, opts, report);
                                 decode(65536, 64, 2048, t, opts, report);
                                 const double d = decode(131072, 64, 2048, t, opts, report);
                                 topk_bench(131072, 2048, t, d, opts, report);
                               }
                             });

}  // namespace
}  // namespace dsinfer::bench
