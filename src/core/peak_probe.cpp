#include "core/peak_probe.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <vector>

#include "core/dispatch.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

namespace dsinfer {

DSINFER_DECLARE_PER_ISA(double, probe_fma_loop, (int64_t));
DSINFER_DECLARE_PER_ISA(double, probe_fma_flops_per_iter, ());
DSINFER_DECLARE_PER_ISA(double, probe_bf16_loop, (int64_t));
DSINFER_DECLARE_PER_ISA(double, probe_bf16_flops_per_iter, ());
DSINFER_DECLARE_PER_ISA(double, probe_read_loop, (const float*, int64_t));
DSINFER_DECLARE_PER_ISA(double, probe_int8_loop, (int64_t));
DSINFER_DECLARE_PER_ISA(double, probe_int8_ops_per_iter, ());

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The best (shortest) of `repeats` wall times for every worker running body(worker) at once: a
// peak is what the machine can do, and on a shared machine only the best run shows it.
template <class Body>
double best_wall(int repeats, Body body) {
  std::vector<double> times;
  std::atomic<double> sink{0};
  for (int r = 0; r < repeats; ++r) {
    double t0 = now_s();
    thread_pool().run_on_all([&](int w) {
      double v = body(w);
      double cur = sink.load();
      sink.compare_exchange_weak(cur, cur + v);
    });
    times.push_back(now_s() - t0);
  }
  return *std::min_element(times.begin(), times.end());
}

}  // namespace

PeakProbe measure_peak(int repeats) {
  PeakProbe p;
  p.threads = num_threads();
  p.isa = isa_name(active_isa()).data();

  const int64_t iters = 2000000;
  auto fma_loop = DSINFER_DISPATCH(probe_fma_loop);
  double t = best_wall(repeats, [&](int) { return fma_loop(iters); });
  p.f32_gflops = DSINFER_DISPATCH(probe_fma_flops_per_iter)() * iters * p.threads / t / 1e9;

  if (active_isa() == Isa::avx512bf16) {
    auto bf16_loop = DSINFER_DISPATCH(probe_bf16_loop);
    t = best_wall(repeats, [&](int) { return bf16_loop(iters); });
    p.bf16_dot_gflops = DSINFER_DISPATCH(probe_bf16_flops_per_iter)() * iters * p.threads / t / 1e9;
  }
  // bf16 widens exactly to f32, so a bf16 product never costs more than an f32 FMA: the bf16 peak
  // is the faster of the two (the same loop's figure without a native dot product).
  p.bf16_gflops = std::max(p.bf16_dot_gflops, p.f32_gflops);

  auto int8_loop = DSINFER_DISPATCH(probe_int8_loop);
  t = best_wall(repeats, [&](int) { return int8_loop(iters / 2); });
  p.int8_gops = DSINFER_DISPATCH(probe_int8_ops_per_iter)() * (iters / 2) * p.threads / t / 1e9;

  // 64 MiB per thread: far beyond any last-level cache slice a thread gets.
  const int64_t per_thread = int64_t(16) << 20;  // floats
  Tensor buf = Tensor::empty(DType::f32, {per_thread * p.threads});
  float* base = buf.data<float>();
  for (int64_t i = 0; i < per_thread * p.threads; i += 1024) base[i] = 1.0f;  // fault pages in
  auto read_loop = DSINFER_DISPATCH(probe_read_loop);
  t = best_wall(repeats, [&](int w) { return read_loop(base + w * per_thread, per_thread); });
  p.read_gbs = double(per_thread) * 4 * p.threads / t / 1e9;
  return p;
}

}  // namespace dsinfer
