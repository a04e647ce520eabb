// `dsinfer bench gemm`: linear-layer shapes of the model, against the probe and OpenBLAS.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "bench_harness.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "kernels/gemm.h"
#include "kernels/gemm_int8.h"

#ifdef DSINFER_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace dsinfer::bench {
namespace {

struct Shape {
  int64_t M, N, K;
  DType x, w;
  int64_t group = 128;  // integer weights: inputs per scale (K: one per output channel)
};

// Random-ish data without the cost of a real RNG over 16M elements.
void fill_pattern(float* p, int64_t n, uint32_t seed) {
  uint32_t s = seed * 2654435761u + 1;
  for (int64_t i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    p[i] = float(int32_t(s >> 8) % 2001 - 1000) * 1e-3f;
  }
}

struct Operands {
  Tensor x, w, scales;
  GemmInput in;
  WeightView wv;
};

Operands make_operands(const Shape& s) {
  Operands o;
  Tensor xf = Tensor::empty(DType::f32, {s.M, s.K});
  fill_pattern(xf.data<float>(), s.M * s.K, 1);
  // x = i8: f32 activations that gemm_int8_activations quantizes per row (W8A8 / W4A8).
  if (s.x == DType::bf16) {
    o.x = Tensor::empty(DType::bf16, {s.M, s.K});
    for (int64_t i = 0; i < s.M * s.K; ++i) o.x.data<bf16>()[i] = f32_to_bf16(xf.data<float>()[i]);
  } else {
    o.x = xf;
  }
  Tensor wf = Tensor::empty(DType::f32, {s.N, s.K});
  fill_pattern(wf.data<float>(), s.N * s.K, 2);
  if (s.w == DType::f32) {
    o.w = wf;
  } else if (s.w == DType::bf16) {
    o.w = Tensor::empty(DType::bf16, {s.N, s.K});
    for (int64_t i = 0; i < s.N * s.K; ++i) o.w.data<bf16>()[i] = f32_to_bf16(wf.data<float>()[i]);
  } else if (WeightView::is_int_dtype(s.w)) {
    // Integer codes with one bf16 scale per `group` inputs (compressed-tensors group or channel
    // strategy): random bytes are valid codes of every width.
    const int64_t row_bytes = s.K * dtype_bits(s.w) / 8, groups = (s.K + s.group - 1) / s.group;
    o.w = Tensor::empty(DType::u8, {s.N, row_bytes});
    uint32_t st = 5;
    for (int64_t i = 0; i < s.N * row_bytes; ++i)
      st = st * 1664525u + 1013904223u, o.w.data<uint8_t>()[i] = uint8_t(st >> 24);
    o.scales = Tensor::empty(DType::bf16, {s.N, groups});
    for (int64_t i = 0; i < s.N * groups; ++i) o.scales.data<bf16>()[i] = f32_to_bf16(1.0f / 64);
  } else {
    o.w = Tensor::empty(DType::fp8_e4m3, {s.N, s.K});
    for (int64_t i = 0; i < s.N * s.K; ++i)
      o.w.data<fp8_e4m3>()[i] = f32_to_fp8_e4m3(wf.data<float>()[i] * 400.0f);
    const int64_t sr = (s.N + 127) / 128, sc = (s.K + 127) / 128;
    o.scales = Tensor::empty(DType::f32, {sr, sc});
    for (int64_t i = 0; i < sr * sc; ++i) o.scales.data<float>()[i] = 1.0f / 512;
  }
  o.in = GemmInput{s.x == DType::i8 ? DType::f32 : s.x, o.x.raw(), s.M, s.K, s.K};
  o.wv = WeightView{s.w,
                    o.w.raw(),
                    s.N,
                    s.K,
                    s.K,
                    s.w == DType::fp8_e4m3 ? o.scales.data<float>() : nullptr,
                    (s.K + 127) / 128};
  if (WeightView::is_int_dtype(s.w)) {
    o.wv.qscale = o.scales.raw(), o.wv.qscale_dtype = DType::bf16;
    o.wv.qscale_ld = (s.K + s.group - 1) / s.group, o.wv.group = s.group;
  }
  return o;
}

#ifdef DSINFER_HAVE_OPENBLAS
// The baseline for the same product. Debian's OpenBLAS is built without sbgemm, so bf16 and fp8
// operands are first widened to f32 (timed: a caller of OpenBLAS has to do it every call, since
// the weights stay bf16/fp8 in memory), then sgemm runs.
double openblas_ms(const Shape& s, const Operands& o, float* y, int threads, bool quick) {
  openblas_set_num_threads(threads);
  Tensor xf = s.x != DType::bf16 ? o.x : Tensor::empty(DType::f32, {s.M, s.K});
  Tensor wf = s.w == DType::f32 ? o.w : Tensor::empty(DType::f32, {s.N, s.K});
  const int64_t sc = (s.K + 127) / 128;
  const double ms = time_median_ms(
      [&] {
        if (s.x == DType::bf16)
          parallel_for(s.M, 16, [&](int64_t m0, int64_t m1, int) {
            for (int64_t i = m0 * s.K; i < m1 * s.K; ++i)
              xf.data<float>()[i] = bf16_to_f32(o.x.data<bf16>()[i]);
          });
        if (s.w != DType::f32)
          parallel_for(s.N, 64, [&](int64_t n0, int64_t n1, int) {
            for (int64_t n = n0; n < n1; ++n)
              for (int64_t k = 0; k < s.K; ++k) {
                const int64_t i = n * s.K + k;
                wf.data<float>()[i] = s.w == DType::bf16 ? bf16_to_f32(o.w.data<bf16>()[i])
                                      : o.wv.is_int()
                                          ? float(o.wv.value_at(n, k))
                                          : fp8_e4m3_to_f32(o.w.data<fp8_e4m3>()[i]) *
                                                o.scales.data<float>()[(n / 128) * sc + k / 128];
              }
          });
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s.M, s.N, s.K, 1.0f, xf.data<float>(),
                    s.K, wf.data<float>(), s.K, 0.0f, y, s.N);
      },
      quick ? 2 : 5);
  // OpenBLAS's workers spin for a while after a call: let them go to sleep before anything of
  // ours is timed on the same cores (a spinning worker halves what the next timing sees).
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  return ms;
}
#endif

void run_shape(const Shape& s, int threads, const Options& opts, Report& report) {
  report.probe(threads);
  set_num_threads(threads);
  Operands o = make_operands(s);
  std::vector<float> y(s.M * s.N);
  // Decode shapes are memory-bound: cycle through copies of the weight totalling 256 MiB so no
  // call finds its weight in the last-level cache (here 32 MiB), as in a real model's layers.
  std::vector<Tensor> copies;
  std::vector<WeightView> views{o.wv};
  const size_t wbytes = o.w.nbytes();
  if (s.M <= kGemvMaxRows && !opts.quick) {
    for (size_t total = wbytes; total < (size_t(256) << 20); total += wbytes) {
      Tensor c = Tensor::empty(o.w.dtype(), o.w.shape());
      std::memcpy(c.raw(), o.w.raw(), wbytes);
      WeightView v = o.wv;
      v.data = c.raw();
      copies.push_back(c);
      views.push_back(v);
    }
  }
  size_t next = 0;
  const double ms = time_median_ms(
      [&] {
        if (s.x == DType::i8)
          gemm_int8_activations(o.x.data<float>(), s.M, s.K, views[next], y.data(), s.N);
        else
          gemm(o.in, views[next], y.data(), s.N);
        next = (next + 1) % views.size();
      },
      opts.quick ? 2 : 5);
  Result r;
  r.name = s.M <= kGemvMaxRows ? "gemv" : "gemm";
  r.params = {{"M", s.M},
              {"N", s.N},
              {"K", s.K},
              {"x", std::string(dtype_name(s.x))},
              {"w", std::string(dtype_name(s.w))}};
  if (o.wv.is_int())
    r.params["group"] = s.group == s.K ? std::string("channel") : std::to_string(s.group);
  r.median_ms = ms;
  r.gflops = 2.0 * s.M * s.N * s.K / ms / 1e6;
  // The bytes a call streams: codes, plus the integer formats' group scales.
  const double weight_bytes = double(wbytes) + (o.wv.is_int() ? double(o.scales.nbytes()) : 0.0);
  r.gbs = weight_bytes / ms / 1e6;
  r.peak = s.M <= kGemvMaxRows                        ? PeakKind::read
           : s.x == DType::i8                         ? PeakKind::int8
           : (s.x == DType::f32 || s.w == DType::f32) ? PeakKind::f32
                                                      : PeakKind::bf16;
#ifdef DSINFER_HAVE_OPENBLAS
  std::vector<float> yb(s.M * s.N);
  const double blas = openblas_ms(s, o, yb.data(), threads, opts.quick);
  r.extra["openblas_ms"] = blas;
  r.extra["speedup_vs_openblas"] = blas / ms;
#endif
  report.add(std::move(r), threads);
}

SuiteRegistrar gemm_suite("gemm",
                          "GEMM/GEMV for linear layers (--sweep: the model's decode GEMV shapes)",
                          [](const Options& opts, Report& report) {
                            std::vector<Shape> shapes;
                            if (std::find(opts.args.begin(), opts.args.end(), "--sweep") !=
                                opts.args.end()) {
                              // The decode GEMVs of DeepSeek-V3.2 attention (the mini preset has
                              // these shapes): wq_b, wo, indexer wq_b, wq_a. Short rows (1.5 KB
                              // of fp8) are harder to stream than the 4K squares.
                              for (int64_t m : {1, 8})
                                for (auto [n, k] : {std::pair<int64_t, int64_t>{24576, 1536},
                                                    {1024, 16384},
                                                    {8192, 1536},
                                                    {1536, 1024}})
                                  shapes.push_back({m, n, k, DType::bf16, DType::fp8_e4m3});
                            } else if (opts.quick) {
                              shapes = {{256, 256, 256, DType::bf16, DType::bf16},
                                        {1, 512, 512, DType::bf16, DType::fp8_e4m3}};
                            } else {
                              shapes = {{2048, 2048, 2048, DType::bf16, DType::bf16},
                                        {2048, 2048, 2048, DType::f32, DType::f32},
                                        {512, 2048, 2048, DType::bf16, DType::fp8_e4m3},
                                        {1, 4096, 4096, DType::bf16, DType::bf16},
                                        {1, 4096, 4096, DType::bf16, DType::fp8_e4m3},
                                        {8, 4096, 4096, DType::bf16, DType::bf16},
                                        {8, 4096, 4096, DType::bf16, DType::fp8_e4m3},
                                        // compressed-tensors INT8 / INT4, group 128 (W8A16, W4A16)
                                        {1, 4096, 4096, DType::bf16, DType::u8},
                                        {1, 4096, 4096, DType::bf16, DType::u4},
                                        {8, 4096, 4096, DType::bf16, DType::u8},
                                        {8, 4096, 4096, DType::bf16, DType::u4},
                                        {512, 2048, 2048, DType::bf16, DType::u4},
                                        // W8A8 (per channel, as dsinfer quantize writes it)
                                        // and W4A8 (group 128): int8 dot products
                                        {512, 2048, 2048, DType::i8, DType::u8, 2048},
                                        {512, 2048, 2048, DType::i8, DType::u4},
                                        {1, 4096, 4096, DType::i8, DType::u8, 4096},
                                        {1, 4096, 4096, DType::i8, DType::u4},
                                        {8, 4096, 4096, DType::i8, DType::u8, 4096},
                                        {8, 4096, 4096, DType::i8, DType::u4}};
                            }
                            for (int t : opts.threads)
                              for (const Shape& s : shapes) run_shape(s, t, opts, report);
                          });

}  // namespace
}  // namespace dsinfer::bench
