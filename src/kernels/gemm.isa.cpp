// GEMM / GEMV kernels written in the tile layer (compiled once per ISA).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "kernels/gemm.h"
#include "tile/panel.h"

namespace dsinfer::DSINFER_ISA_NS {

using namespace tile;

namespace {

// Per-thread scratch that only grows (slot 0: packed A, 1: packed B, 2: GEMV x,
// 3: GEMV partial sums): decode calls this many
// times per token, and allocating (and zero-filling) panels each time cost more than the math.
template <class T>
T* scratch(int slot, size_t elems) {
  struct Buf {
    T* p = nullptr;
    size_t n = 0;
    ~Buf() { std::free(p); }
  };
  thread_local Buf bufs[4];
  Buf& b = bufs[slot];
  if (b.n < elems) {
    std::free(b.p);
    b.p = static_cast<T*>(std::aligned_alloc(64, (elems * sizeof(T) + 63) / 64 * 64));
    if (!b.p) throw std::bad_alloc();
    b.n = elems;
  }
  return b.p;
}
// ---- GEMV (M <= kGemvMaxRows): y[m, n] = x[m, :] . W[n, :] ---------------------------------
// Weight rows are streamed one at a time in storage order: a single sequential stream, which the
// hardware prefetcher follows, plus a software prefetch kPrefetchBytes ahead. (Streaming 8 rows at
// once to share x's loads measured 2x slower on the model's 1.5 KB fp8 rows: 8 short streams.)
// All M rows of x ride along, so every weight is converted once per call.
// x is first copied, as f32 padded with zeros to whole steps, into a per-thread buffer xs. For FP8
// that copy also carries the weights' block scale and 2^120 (see load_fp8_raw), redone per block
// of 128 weight rows, so the inner loop is convert + FMA. With M >= 3, K is cut into chunks whose
// x rows stay in L1 (all rows of a task per chunk), partial sums kept in a per-thread buffer.
constexpr int kStep = 4 * kLanes;           // weights per row per inner step
constexpr int64_t kPrefetchBytes = 2048;    // software prefetch distance in the weight stream
constexpr int64_t kXChunkBytes = 16 << 10;  // x's rows of one K chunk (M >= 3)
constexpr int64_t kGemvMaxGrain = 256;      // weight rows per task, at most (longer streams)

// Independent accumulators per x row: enough FMA chains in flight to hide the FMA latency.
template <int RM>
constexpr int kAccs = RM <= 2   ? 4
                      : RM <= 4 ? 2
                                : 1;

// Where the software prefetch points while one row segment is read: it walks from `pf` to the end
// of its segment `end`, then continues at `next` (0: stop). Addresses only, never dereferenced.
struct PrefetchRun {
  uintptr_t pf = 0, end = UINTPTR_MAX, next = 0;
  void advance(int64_t bytes) {
    pf += uintptr_t(bytes);
    if (pf >= end) pf = next ? next + (pf - end) : 0, end = UINTPTR_MAX;
  }
};

// out[i] = xs[i, 0 : len) . row[0 : len), len a multiple of kStep.
template <DType WT, int RM>
void dot_row(const float* xs, int64_t ldxs, const char* row, int64_t len, PrefetchRun pr,
             float* out) {
  constexpr int A = kAccs<RM>;
  constexpr int64_t step_bytes = kStep * int64_t(dtype_size(WT));
  VF acc[RM][A];
#pragma GCC unroll 8
  for (int i = 0; i < RM; ++i)
#pragma GCC unroll 4
    for (int a = 0; a < A; ++a) acc[i][a] = zero();
  for (int64_t k = 0; k < len; k += kStep) {
    if (pr.pf) {
#pragma GCC unroll 4
      for (int64_t b = 0; b < step_bytes; b += 64)
        prefetch(reinterpret_cast<const void*>(pr.pf + b));
      pr.advance(step_bytes);
    }
    VF wv[4];
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) wv[v] = load_weights_raw<WT>(row, k + v * kLanes);
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v)
#pragma GCC unroll 8
      for (int i = 0; i < RM; ++i)
        acc[i][v % A] = fma(load(xs + i * ldxs + k + v * kLanes), wv[v], acc[i][v % A]);
  }
#pragma GCC unroll 8
  for (int i = 0; i < RM; ++i) {
    VF s = acc[i][0];
#pragma GCC unroll 4
    for (int a = 1; a < A; ++a) s = add(s, acc[i][a]);
    out[i] = reduce_add(s);
  }
}

// The whole-row dot products of all M rows of x: groups of up to 8 rows share each weight load.
template <DType WT>
void dot_row_all(const float* xs, int64_t ldxs, int64_t M, const char* row, int64_t len,
                 const PrefetchRun& pr, float* out) {
  for (int64_t m = 0; m < M;) {
    const int64_t left = M - m;
    const float* xm = xs + m * ldxs;
    // Only the first group prefetches: the others re-read the row from L1.
    const PrefetchRun p = m == 0 ? pr : PrefetchRun{};
    if (left >= 8)
      dot_row<WT, 8>(xm, ldxs, row, len, p, out + m), m += 8;
    else if (left >= 4)
      dot_row<WT, 4>(xm, ldxs, row, len, p, out + m), m += 4;
    else if (left >= 2)
      dot_row<WT, 2>(xm, ldxs, row, len, p, out + m), m += 2;
    else
      dot_row<WT, 1>(xm, ldxs, row, len, p, out + m), m += 1;
  }
}

// Row m of x as f32.
inline void x_row_f32(const GemmInput& x, int64_t m, float* dst) {
  if (x.dtype == DType::bf16) {
    const bf16* src = static_cast<const bf16*>(x.data) + m * x.ld;
    for (int64_t k = 0; k < x.cols; ++k) dst[k] = bf16_to_f32(src[k]);
  } else {
    std::copy_n(static_cast<const float*>(x.data) + m * x.ld, x.cols, dst);
  }
}

// The FP8 fast decode leaves weights 2^-120 too small; x carries the factor back. When the
// largest |x * scale| is large, 2^120 would overflow: x takes 2^(120 - d) (`raw`) so that it stays
// below 2^126 (products with the weights, at most 448 * 2^-120, and their sums stay finite), and
// y is multiplied by `post` = 2^d.
struct Fp8Headroom {
  float raw, post;
  explicit Fp8Headroom(float max_x_scale) {
    const int e = std::isfinite(max_x_scale) && max_x_scale > 0 ? std::ilogb(max_x_scale) : 0;
    const int d = std::max(0, e - 5);
    raw = std::ldexp(kFp8RawScale, -d), post = std::ldexp(1.0f, d);
  }
};

// Per-thread copy of x for one call (and, for FP8, one block of 128 weight rows).
struct GemvX {
  uint64_t call = 0;
  int64_t block = -1;
  float post = 1.0f;  // y = dot * post (FP8: undoes the headroom taken from 2^120)
};

// Fills xs [M, ldxs] from x, zero-padded; for FP8 times the block scales of weight row n and the
// Fp8Headroom factor (whose post it returns in *post).
template <DType WT>
void fill_x(const GemmInput& x, const WeightView& w, int64_t n, float* xs, int64_t ldxs,
            float* post) {
  const int64_t M = x.rows, K = x.cols;
  for (int64_t m = 0; m < M; ++m) {
    x_row_f32(x, m, xs + m * ldxs);
    std::fill(xs + m * ldxs + K, xs + (m + 1) * ldxs, 0.0f);
  }
  *post = 1.0f;
  if constexpr (WT == DType::fp8_e4m3) {
    // Segments of K inside one scale block (the view may start mid-block).
    float amax = 0;
    for (int64_t kb = 0, kend; kb < K; kb = kend) {
      kend = scale_block_end(kb, K, w.col0);
      const float sc = std::fabs(w.scale_at(n, kb));
      for (int64_t m = 0; m < M; ++m)
        for (int64_t k = kb; k < kend; ++k) amax = std::max(amax, sc * std::fabs(xs[m * ldxs + k]));
    }
    const Fp8Headroom hr(amax);
    *post = hr.post;
    for (int64_t kb = 0, kend; kb < K; kb = kend) {
      kend = scale_block_end(kb, K, w.col0);
      const float f = w.scale_at(n, kb) * hr.raw;
      for (int64_t m = 0; m < M; ++m)
        for (int64_t k = kb; k < kend; ++k) xs[m * ldxs + k] *= f;
    }
  }
}

template <DType WT>
void gemv(const GemmInput& x, const WeightView& w, float* y, int64_t ldy) {
  constexpr int64_t esize = int64_t(dtype_size(WT));
  const int64_t M = x.rows, K = w.cols;
  const int64_t ldxs = (K + kStep - 1) / kStep * kStep;
  const int64_t row_bytes = w.ld * esize;
  const char* base = static_cast<const char*>(w.data);
  // K chunk: all of K for M <= 2 (x is read from L2 at a rate DRAM cannot outrun); otherwise
  // M rows x kc f32 of x stay in L1.
  const int64_t kc =
      M <= 2 ? ldxs : std::max<int64_t>(kStep, kXChunkBytes / (4 * M) / kStep * kStep);
  static std::atomic<uint64_t> calls{0};
  const uint64_t call = ++calls;

  // Rows [n0, n1) (inside one FP8 scale block) against xs, chunk by chunk; partial sums in part.
  auto run = [&](int64_t n0, int64_t n1, const float* xs, float post, float* part) {
    const int64_t rows = n1 - n0;
    alignas(64) char tail[kStep * 4] = {};
    for (int64_t c0 = 0; c0 < K; c0 += kc) {
      const int64_t len = std::min(kc, K - c0);
      const int64_t body = len / kStep * kStep, seg_bytes = len * esize;
      const int64_t ahead_segs = kPrefetchBytes / seg_bytes, ahead_off = kPrefetchBytes % seg_bytes;
      // Prefetch kPrefetchBytes ahead in visit order: segment j is row j of this chunk, then
      // row j - rows of the next chunk (no divisions: this runs once per row segment).
      auto segment = [&](int64_t j) -> uintptr_t {
        int64_t c = c0;
        if (j >= rows) j -= rows, c += kc;
        if (j >= rows || c >= K) return 0;
        return reinterpret_cast<uintptr_t>(base + (n0 + j) * row_bytes + c * esize);
      };
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t n = n0 + r;
        const char* row = base + n * row_bytes + c0 * esize;
        PrefetchRun pr;
        if (const uintptr_t at = segment(r + ahead_segs))
          pr = {at + uintptr_t(ahead_off), at + uintptr_t(seg_bytes), segment(r + ahead_segs + 1)};
        float out[kGemvMaxRows], out_tail[kGemvMaxRows];
        dot_row_all<WT>(xs + c0, ldxs, M, row, body, pr, out);
        if (body < len) {  // the row's last < kStep weights, from a zero-padded copy
          std::memcpy(tail, row + body * esize, size_t((len - body) * esize));
          std::memset(tail + (len - body) * esize, 0, size_t((kStep - (len - body)) * esize));
          dot_row_all<WT>(xs + c0 + body, ldxs, M, tail, kStep, PrefetchRun{}, out_tail);
          for (int64_t m = 0; m < M; ++m) out[m] += out_tail[m];
        }
        float* p = part + r * M;
        const bool first = c0 == 0, last = c0 + kc >= K;
        for (int64_t m = 0; m < M; ++m) {
          const float v = (first ? 0.0f : p[m]) + out[m];
          if (last)
            y[m * ldy + n] = v * post;
          else
            p[m] = v;
        }
      }
    }
  };

  // Tasks as long as possible (each is one stream) while every thread still gets about 4.
  const int64_t grain =
      std::clamp<int64_t>(w.rows / (4 * num_threads()) / 32 * 32, 32, kGemvMaxGrain);
  parallel_for(w.rows, grain, [&](int64_t n0, int64_t n1, int) {
    thread_local GemvX state;
    float* xs = scratch<float>(2, size_t(M * ldxs));
    float* part = scratch<float>(3, size_t((n1 - n0) * M));
    if (state.call != call) state = GemvX{call, -1, 1.0f};
    // FP8: runs of rows inside one block of 128, each with its x prescale (kept across tasks).
    for (int64_t s0 = n0, s1; s0 < n1; s0 = s1) {
      const int64_t block = WT == DType::fp8_e4m3 ? (w.row0 + s0) / kFp8BlockSize : 0;
      s1 = WT == DType::fp8_e4m3 ? std::min(n1, (block + 1) * kFp8BlockSize - w.row0) : n1;
      if (state.block != block) fill_x<WT>(x, w, s0, xs, ldxs, &state.post), state.block = block;
      run(s0, s1, xs, state.post, part);
    }
  });
}

// ---- GEMV for [K, N] storage: y[m, :] += x[m, k] * W[k, :] --------------------------------
// Storage rows (one per k) are streamed in order, kKnRows at a time, each converted once and
// multiplied into all M rows of y, which stay in L1. A task is a range of columns (all of N when
// the call is already inside a parallel task, e.g. one head of MLA's absorbed W_UK).
constexpr int kKnRows = 4;

template <DType WT>
void gemv_kn(const GemmInput& x, const WeightView& w, float* y, int64_t ldy) {
  constexpr int64_t esize = int64_t(dtype_size(WT));
  const int64_t M = x.rows, K = w.cols, N = w.rows;
  const char* base = static_cast<const char*>(w.data);
  auto scale = [&](int64_t k, int64_t n) {
    return WT == DType::fp8_e4m3 ? w.scale_at(k, n) : 1.0f;
  };
  // x as f32; for FP8 the Fp8Headroom factor is folded into the broadcast x values.
  std::vector<float> xf(size_t(M * K));
  for (int64_t m = 0; m < M; ++m) x_row_f32(x, m, &xf[m * K]);
  float raw = 1.0f, post = 1.0f;
  if constexpr (WT == DType::fp8_e4m3) {
    float amax = 0, smax = 0;
    for (float v : xf) amax = std::max(amax, std::fabs(v));
    for (int64_t k = 0; k < K; k = scale_block_end(k, K, w.row0))
      for (int64_t n = 0; n < N; n = scale_block_end(n, N, w.col0))
        smax = std::max(smax, std::fabs(scale(k, n)));
    const Fp8Headroom hr(amax * smax);
    raw = hr.raw, post = hr.post;
  }
  const int64_t cw = thread_pool().inside_task()
                         ? N
                         : std::clamp<int64_t>(
                               (N / (4 * num_threads()) + kLanes - 1) / kLanes * kLanes, 128, 1024);
  parallel_for((N + cw - 1) / cw, 1, [&](int64_t t0, int64_t t1, int) {
    float* acc = scratch<float>(3, size_t(M * cw));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n0 = t * cw, nn = std::min(cw, N - n0);
      std::fill(acc, acc + M * nn, 0.0f);
      for (int64_t k = 0; k < K; k += kKnRows) {
        const int rk = int(std::min<int64_t>(kKnRows, K - k));
        const char* rows[kKnRows];
        for (int r = 0; r < kKnRows; ++r)
          rows[r] = base + (k + std::min(r, rk - 1)) * w.ld * esize + n0 * esize;
        // Column segments inside one scale block: the broadcast x values carry that block's scale.
        for (int64_t c = 0; c < nn;) {
          const int64_t cend = scale_block_end(c, nn, w.col0 + n0);
          // The next group of rows, segment by segment: one group (~kKnRows rows) ahead.
          for (int r = 0; r < kKnRows; ++r)
            for (int64_t b = c * esize; b < cend * esize; b += 64)
              prefetch(rows[r] + kKnRows * w.ld * esize + b);
          alignas(64) float bx[kGemvMaxRows][kKnRows];
          for (int64_t m = 0; m < M; ++m)
            for (int r = 0; r < kKnRows; ++r)
              bx[m][r] = r < rk ? xf[m * K + k + r] * scale(k + r, n0 + c) * raw : 0.0f;
          for (int64_t j = c; j < cend; j += kLanes) {
            VF wv[kKnRows];
#pragma GCC unroll 4
            for (int r = 0; r < kKnRows; ++r) wv[r] = load_weights_raw<WT>(rows[r], j);
            for (int64_t m = 0; m < M; ++m) {
              VF a = load(acc + m * nn + j);
#pragma GCC unroll 4
              for (int r = 0; r < kKnRows; ++r) a = fma(set1(bx[m][r]), wv[r], a);
              store(acc + m * nn + j, a);
            }
          }
          c = cend;
        }
      }
      for (int64_t m = 0; m < M; ++m)
        for (int64_t j = 0; j < nn; ++j) y[m * ldy + n0 + j] = acc[m * nn + j] * post;
    }
  });
}

// ---- GEMM: packed panels and the register micro-kernel ---------------------------------------
constexpr int kKc = 512;  // K block
// A strips per L2-resident group: about 96 rows x kc (~100 KB of f32).
constexpr int64_t kStripsPerMc = (48 + kPanelMR - 1) / kPanelMR;

template <bool kPairs>
void gemm_packed(const GemmInput& x, const WeightView& w, float* y, int64_t ldy) {
  using Elem = std::conditional_t<kPairs, uint16_t, float>;
  const int64_t M = x.rows, N = w.rows, K = x.cols;
  const int64_t strips = (M + kPanelMR - 1) / kPanelMR;
  const int64_t k_blocks = (K + kKc - 1) / kKc;
  // A panel element count for one (strip, k block): pairs pad kc up to even.
  const int64_t a_block = int64_t(kKc) * kPanelMR;

  // Pack all of x once, shared by every thread: [strip][k block][kc][MR].
  Elem* a_packed = scratch<Elem>(0, size_t(strips * k_blocks * a_block));
  parallel_for(strips * k_blocks, 1, [&](int64_t b0, int64_t b1, int) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t s = b / k_blocks, kb = b % k_blocks;
      const int rows = int(std::min<int64_t>(kPanelMR, M - s * kPanelMR));
      const int kc = int(std::min<int64_t>(kKc, K - kb * kKc));
      Elem* dst = a_packed + b * a_block;
      if constexpr (kPairs) {
        pack_a_pairs(dst, static_cast<const bf16*>(x.data) + s * kPanelMR * x.ld, x.ld, rows,
                     kb * kKc, kc);
      } else if (x.dtype == DType::bf16) {
        pack_a_f32(dst, static_cast<const bf16*>(x.data) + s * kPanelMR * x.ld, x.ld, rows,
                   kb * kKc, kc);
      } else {
        pack_a_f32(dst, static_cast<const float*>(x.data) + s * kPanelMR * x.ld, x.ld, rows,
                   kb * kKc, kc);
      }
    }
  });

  // Column blocks of W: enough of them for dynamic balance, each a whole number of NR panels.
  const int threads = num_threads();
  int64_t nc = (N + 4 * threads - 1) / (4 * threads);
  nc = std::clamp<int64_t>((nc + kPanelNR - 1) / kPanelNR * kPanelNR, kPanelNR, 256);
  const int64_t n_tasks = (N + nc - 1) / nc;
  const int64_t b_block = int64_t(kKc) * nc;

  parallel_for(n_tasks, 1, [&](int64_t t0, int64_t t1, int worker) {
    Elem* b_panel = scratch<Elem>(1, size_t(b_block));  // this thread's own
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n0 = t * nc, ncols = std::min(nc, N - n0);
      const int64_t panels = (ncols + kPanelNR - 1) / kPanelNR;
      for (int64_t kb = 0; kb < k_blocks; ++kb) {
        const int kc = int(std::min<int64_t>(kKc, K - kb * kKc));
        for (int64_t p = 0; p < panels; ++p) {  // B block: `panels` panels of kc x NR
          const int cols = int(std::min<int64_t>(kPanelNR, ncols - p * kPanelNR));
          Elem* dst = b_panel + p * int64_t(kKc) * kPanelNR;
          if constexpr (kPairs)
            pack_b_pairs(dst, w, n0 + p * kPanelNR, cols, kb * kKc, kc);
          else
            pack_b_f32(dst, w, n0 + p * kPanelNR, cols, kb * kKc, kc);
        }
        // A strips in groups that stay in L2 (kMc rows); each B panel stays in L1 while the
        // group's strips stream past it.
        for (int64_t s0 = 0; s0 < strips; s0 += kStripsPerMc) {
          const int64_t s1 = std::min(strips, s0 + kStripsPerMc);
          for (int64_t p = 0; p < panels; ++p) {
            const int cols = int(std::min<int64_t>(kPanelNR, ncols - p * kPanelNR));
            const Elem* b = b_panel + p * int64_t(kKc) * kPanelNR;
            for (int64_t s = s0; s < s1; ++s) {
              const int rows = int(std::min<int64_t>(kPanelMR, M - s * kPanelMR));
              const Elem* a = a_packed + (s * k_blocks + kb) * a_block;
              float* c = y + s * kPanelMR * ldy + n0 + p * kPanelNR;
              if constexpr (kPairs)
                mma_panel_pairs(kc, a, b, c, ldy, rows, cols, kb > 0);
              else
                mma_panel_f32(kc, a, b, c, ldy, rows, cols, kb > 0);
            }
          }
        }
      }
    }
  });
}

}  // namespace

void gemm_kernel(const GemmInput& x, const WeightView& w, float* y, int64_t ldy) {
  // [K, N] storage: a streaming GEMV when whole vectors of columns tile N and no vector straddles
  // a scale block (N a multiple of kLanes, the view starting on a vector boundary).
  const bool kn_gemv =
      w.kn && x.rows <= kGemvMaxRows && w.rows % kLanes == 0 && w.col0 % kLanes == 0;
  if (x.rows <= kGemvMaxRows && (!w.kn || kn_gemv)) {
    switch (w.dtype) {
      case DType::f32:
        return kn_gemv ? gemv_kn<DType::f32>(x, w, y, ldy) : gemv<DType::f32>(x, w, y, ldy);
      case DType::bf16:
        return kn_gemv ? gemv_kn<DType::bf16>(x, w, y, ldy) : gemv<DType::bf16>(x, w, y, ldy);
      case DType::f16:
        return kn_gemv ? gemv_kn<DType::f16>(x, w, y, ldy) : gemv<DType::f16>(x, w, y, ldy);
      default:
        return kn_gemv ? gemv_kn<DType::fp8_e4m3>(x, w, y, ldy)
                       : gemv<DType::fp8_e4m3>(x, w, y, ldy);
    }
  }
  // bf16 pair panels only where no precision is lost beyond bf16 activations: bf16 weights, and
  // fp8 weights (fp8 times a ue8m0 scale is exact in bf16).
  const bool pairs = kNativeBf16Dot && x.dtype == DType::bf16 &&
                     (w.dtype == DType::bf16 || w.dtype == DType::fp8_e4m3);
  if (pairs)
    gemm_packed<true>(x, w, y, ldy);
  else
    gemm_packed<false>(x, w, y, ldy);
}

}  // namespace dsinfer::DSINFER_ISA_NS
