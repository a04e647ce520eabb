// INT4 / INT8 weights ([N, K], group scales) times bf16 x in the bf16-pair form, where the native
// dot is the faster way (W4A16 / W8A16 decode and prefill): the codes' values v = code - offset -
// zero are small integers, exact in bf16, so they enter vdpbf16ps as they are, and each group's
// scale multiplies the group's sum once (instead of every weight: fewer operations per byte, and
// no scaled weight rounded to bf16).
//
// Canonical order (per ISA; the same for every M, row, thread count and work split): for each K
// block b of kKc columns (from k = 0), per lane: t = 0; for each segment of the block (the
// columns sharing one scale: a group, cut at the block's ends) in order: g = the dot_pairs chain
// over the segment's pair vectors of x and v, in the order CodePairs steps give them (8-bit: 2 *
// kLanes columns in order, lane l taking columns 2l, 2l + 1; INT4: steps of 4 * kLanes columns,
// the even ones then the odd ones -- lane l taking 4l, 4l + 2, then 4l + 1, 4l + 3 -- which is how
// nibbles unpack without lane crossing; x is split to match), the last step zero-padded;
// t = fma(g, scale, t). Then s_b = reduce_lanes(t) and y = s_0, y = s_b + y, ... The small-M
// kernel (codes decoded in registers, every row of x at once) and the GEMM (codes decoded into an
// L2 panel, x packed) follow it to the bit.
//
// Applies where segments start on whole steps (int_pairs_apply: INT4 groups of 64 columns or more
// on AVX-512, 8-bit ones of 32); gemm_rows.isa.cpp's f32 form takes the rest.
#include <algorithm>
#include <cstring>

#include "kernels/gemm_rows_parts.h"

namespace dsinfer::DSINFER_ISA_NS {

using namespace tile;
using namespace gemm_rows_parts;

namespace {

constexpr int C = 2 * kLanes;  // columns per pair vector

// Bytes from a storage row's column 0 to column k's (k a whole number of steps).
template <DType WT>
int64_t code_offset(int64_t k) {
  return WT == DType::u4 ? k >> 1 : k;
}

// x as the kernels here read it: rows of whole CodePairs steps (split_columns), zero-padded, in a
// copy shared by all threads. Small batches get a row stride off the power-of-two grid (rows of x
// and W 4 or 8 KB apart share L1 sets).
template <DType WT>
const uint16_t* x_operand(const GemmInput& x, int64_t& ldx) {
  constexpr int S = CodePairs<WT>::kCols;
  const int64_t M = x.rows, K = x.cols, padded = (K + S - 1) / S * S;
  ldx = M <= kGemvMaxRows ? padded + C : padded;
  uint16_t* dst = gemm_scratch<uint16_t>(0, size_t(M * ldx));
  const uint16_t* src = static_cast<const uint16_t*>(x.data);
  parallel_for(M, std::max<int64_t>(1, 4096 / padded), [&](int64_t m0, int64_t m1, int) {
    for (int64_t m = m0; m < m1; ++m) split_columns<WT>(src + m * x.ld, K, dst + m * ldx);
  });
  return dst;
}

// ---- small M (decode): R weight rows at a time along all of K, into every row of x ------------
// Rows of W per pass: as many as the registers hold next to M * R group chains (g), the scaled
// chains (t: in registers for one row of x, else in `part`, updated once a segment) and the
// decoders (one per row with zero points, else one for all). More rows per pass read x fewer times.
template <int M, bool kAsym>
constexpr int kIntRows = (M <= 2   ? 8
                          : M <= 4 ? 4
                                   : 2) /
                         (kAsym ? 2 : 1);
template <int M>
constexpr bool kTInRegisters = M == 1;

template <DType WT, int M, bool kAsym>
void int_pairs_small(const uint16_t* xs, int64_t ldx, const WeightView& w, float* y, int64_t ldy) {
  using Dec = CodePairs<WT>;
  constexpr int R = kIntRows<M, kAsym>, G = kLanes;  // G: rows per reduction group
  constexpr int D = kAsym ? R : 1;                   // decoders
  constexpr int S = Dec::kCols, V = Dec::kVecs;
  constexpr bool kPreload = M * V <= 8;  // x's vectors of a step in registers for all R rows
  constexpr bool kTRegs = kTInRegisters<M>;
  constexpr int TM = kTRegs ? M : 1;
  const int64_t N = w.rows, K = w.cols, k_blocks = (K + kKc - 1) / kKc;
  const int64_t groups = (N + G - 1) / G, row_bytes = w.ld * dtype_bits(WT) / 8;
  const int64_t grain = std::clamp<int64_t>(groups / (4 * num_threads()), 1, 16);
  parallel_for(groups, grain, [&](int64_t g0, int64_t g1, int) {
    VF* part = gemm_scratch<VF>(2, size_t(k_blocks) * M * G);
    for (int64_t g = g0; g < g1; ++g) {
      const int64_t n0 = g * G;
      const int rows = int(std::min<int64_t>(G, N - n0));
      for (int r0 = 0; r0 < G; r0 += R) {
        if (r0 >= rows) {  // past N: zero chains, never stored
          for (int64_t kb = 0; kb < k_blocks; ++kb)
            for (int m = 0; m < M; ++m)
              for (int r = 0; r < R; ++r) part[(kb * M + m) * G + r0 + r] = zero();
          continue;
        }
        int64_t row[R];  // rows past N repeat the last real one (read, then ignored)
        const uint8_t *p[R], *next[R];
#pragma GCC unroll 8
        for (int j = 0; j < R; ++j) {
          row[j] = n0 + std::min(r0 + j, rows - 1);
          p[j] = reinterpret_cast<const uint8_t*>(w.element_ptr(row[j], 0));
          next[j] = row[j] + R < N ? p[j] + R * row_bytes : nullptr;
        }
        Dec dec[D];
#pragma GCC unroll 8
        for (int j = 0; j < D; ++j) dec[j] = Dec(kIntOffset<WT>);
        for (int64_t kb = 0; kb < k_blocks; ++kb) {
          const int64_t end = std::min(K, (kb + 1) * kKc);
          VF t[TM][R];
          if constexpr (kTRegs)
#pragma GCC unroll 8
            for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
              for (int j = 0; j < R; ++j) t[i % TM][j] = zero();
          VF* tp = part + kb * M * G + r0;  // t[i][j] at tp[i * G + j] when not in registers
          for (int64_t k = kb * kKc; k < end;) {
            const bool first_segment = k == kb * kKc;
            const int64_t gi = (w.col0 + k) / w.group;
            const int64_t seg_end = std::min(end, (gi + 1) * w.group - w.col0);
            if constexpr (kAsym)
#pragma GCC unroll 8
              for (int j = 0; j < R; ++j)
                dec[j] = Dec(kIntOffset<WT> + float(w.zero_of_group(row[j], gi)));
            // The next pass's rows into L2 at the columns this one reads: the hardware
            // prefetchers alone lose time at the start of every row's short stream (measured, W4,
            // M = 1, 4096 x 4096, 2 threads: 0.61 -> 0.46 ms).
            for (int j = 0; j < R; ++j)
              if (next[j])
                for (int64_t b = code_offset<WT>(k) & ~int64_t(63); b < code_offset<WT>(seg_end);
                     b += 64)
                  prefetch_l2(next[j] + b);
            VF acc[M][R];
#pragma GCC unroll 8
            for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
              for (int j = 0; j < R; ++j) acc[i][j] = zero();
            // One step: x's vectors and each row's codes (whole, or the K tail's first n).
            auto step = [&](int64_t k, int n) {
              VB av[kPreload ? M : 1][V];
              if constexpr (kPreload)
#pragma GCC unroll 8
                for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
                  for (int v = 0; v < V; ++v) av[i][v] = load_pairs(xs + i * ldx + k + v * C);
#pragma GCC unroll 8
              for (int j = 0; j < R; ++j) {
                VB bv[V];
                if (n == S)
                  dec[kAsym ? j : 0](p[j] + code_offset<WT>(k), bv);
                else
                  dec[kAsym ? j : 0].first(p[j] + code_offset<WT>(k), n, bv);
#pragma GCC unroll 2
                for (int v = 0; v < V; ++v)
#pragma GCC unroll 8
                  for (int i = 0; i < M; ++i)
                    acc[i][j] = dot_pairs(
                        acc[i][j], kPreload ? av[i][v] : load_pairs(xs + i * ldx + k + v * C),
                        bv[v]);
              }
            };
            for (; k + S <= seg_end; k += S) step(k, S);
            if (k < seg_end) step(k, int(seg_end - k)), k = seg_end;  // the K tail
#pragma GCC unroll 8
            for (int j = 0; j < R; ++j) {
              const VF s = set1(w.qscale_of_group(row[j], gi));
#pragma GCC unroll 8
              for (int i = 0; i < M; ++i) {
                if constexpr (kTRegs)
                  t[i % TM][j] = fma(acc[i][j], s, t[i % TM][j]);
                else
                  tp[i * G + j] = fma(acc[i][j], s, first_segment ? zero() : tp[i * G + j]);
              }
            }
          }
          if constexpr (kTRegs)
            for (int i = 0; i < M; ++i)
              for (int j = 0; j < R; ++j) tp[i * G + j] = t[i % TM][j];
        }
      }
      reduce_group(part, K, M, n0, rows, y, ldy);
    }
  });
}

// ---- GEMM: the codes of a K block of Nc weight rows decoded into an L2 panel per thread --------
constexpr int kMaxSegments = kKc / C;  // segments per K block, at most

template <DType WT>
void int_pairs_packed(const uint16_t* xs, int64_t ldx, int64_t M, const WeightView& w, float* y,
                      int64_t ldy) {
  using Dec = CodePairs<WT>;
  constexpr int S = Dec::kCols, V = Dec::kVecs;
  const int64_t N = w.rows, K = w.cols, padded_k = (K + S - 1) / S * S;
  const int64_t strips = (M + kMR - 1) / kMR, k_blocks = (K + kKc - 1) / kKc;
  const int64_t a_block = int64_t(kKc) * kMR;
  const uint16_t* a_packed = pack_x<uint16_t, kMR, C>(xs, ldx, M, padded_k);

  const int64_t nc = task_rows<uint16_t>(N), n_tasks = (N + nc - 1) / nc;
  parallel_for(n_tasks, 1, [&](int64_t t0, int64_t t1, int) {
    uint16_t* panel = gemm_scratch<uint16_t>(1, size_t(nc) * kKc);      // [nc rows][kKc] values
    float* scales = gemm_scratch<float>(0, size_t(nc) * kMaxSegments);  // [row][segment]
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n0 = t * nc, rows = std::min(nc, N - n0);
      const int64_t quads = (rows + kNR - 1) / kNR;
      for (int64_t kb = 0; kb < k_blocks; ++kb) {
        const int64_t k0 = kb * kKc, end = std::min(K, k0 + kKc);
        const int padded = int((end - k0 + S - 1) / S * S);
        // Segments [seg[i], seg[i + 1]) of this block, relative to k0, and their scale groups.
        int seg[kMaxSegments + 1], n_seg = 0;
        int64_t group_of[kMaxSegments];
        for (int64_t k = k0; k < end; ++n_seg) {
          group_of[n_seg] = (w.col0 + k) / w.group;
          seg[n_seg] = int(k - k0);
          k = std::min(end, (group_of[n_seg] + 1) * w.group - w.col0);
        }
        seg[n_seg] = padded;
        for (int64_t r = 0; r < quads * kNR; ++r) {
          uint16_t* d = panel + r * kKc;
          if (r >= rows) {
            std::memset(d, 0, size_t(padded) * 2);
            for (int i = 0; i < n_seg; ++i) scales[r * kMaxSegments + i] = 0.0f;
            continue;
          }
          const uint8_t* p = reinterpret_cast<const uint8_t*>(w.element_ptr(n0 + r, 0));
          for (int i = 0; i < n_seg; ++i) {
            scales[r * kMaxSegments + i] = w.qscale_of_group(n0 + r, group_of[i]);
            const Dec dec(kIntOffset<WT> + float(w.zero_of_group(n0 + r, group_of[i])));
            const int64_t stop = std::min<int64_t>(k0 + seg[i + 1], end);
            for (int64_t c = k0 + seg[i]; c < stop; c += S) {
              VB bv[V];
              if (c + S <= stop)
                dec(p + code_offset<WT>(c), bv);
              else
                dec.first(p + code_offset<WT>(c), int(stop - c), bv);
              for (int v = 0; v < V; ++v) store_pairs(d + (c - k0) + v * C, bv[v]);
            }
          }
        }
        for (int64_t s0 = 0; s0 < strips; s0 += kStripsPerGroup<uint16_t>) {
          const int64_t s1 = std::min(strips, s0 + kStripsPerGroup<uint16_t>);
          for (int64_t q = 0; q < quads; ++q) {
            const int cols = int(std::min<int64_t>(kNR, rows - q * kNR));
            const float* sq = scales + q * kNR * kMaxSegments;
            for (int64_t st = s0; st < s1; ++st) {
              const int64_t m0 = st * kMR;
              const int mr = int(std::min<int64_t>(kMR, M - m0));
              const uint16_t* a = a_packed + (st * k_blocks + kb) * a_block;
              const uint16_t* b = panel + q * kNR * kKc;
              VF tot[kMR][kNR];
#pragma GCC unroll 16
              for (int i = 0; i < kMR; ++i)
#pragma GCC unroll 16
                for (int j = 0; j < kNR; ++j) tot[i][j] = zero();
              for (int i = 0; i < n_seg; ++i) {
                const int c0 = seg[i], len = (seg[i + 1] - c0 + S - 1) / S * S;
                VF acc[kMR][kNR];
#pragma GCC unroll 16
                for (int ii = 0; ii < kMR; ++ii)
#pragma GCC unroll 16
                  for (int j = 0; j < kNR; ++j) acc[ii][j] = zero();
                dot_block<true, kMR, kNR>(acc, len, a + int64_t(c0 / C) * kMR * C, C, kMR * C,
                                          b + c0, kKc, C);
#pragma GCC unroll 16
                for (int j = 0; j < kNR; ++j) {
                  const VF s = set1(sq[j * kMaxSegments + i]);
#pragma GCC unroll 16
                  for (int ii = 0; ii < kMR; ++ii) tot[ii][j] = fma(acc[ii][j], s, tot[ii][j]);
                }
              }
              reduce_block(tot, mr, cols, y, ldy, m0, n0 + q * kNR, kb == 0);
            }
          }
        }
      }
    }
  });
}

template <DType WT>
void int_pairs(const GemmInput& x, const WeightView& w, float* y, int64_t ldy) {
  int64_t ldx;
  const uint16_t* xs = x_operand<WT>(x, ldx);
  auto small = [&]<int M>() {
    w.qzero ? int_pairs_small<WT, M, true>(xs, ldx, w, y, ldy)
            : int_pairs_small<WT, M, false>(xs, ldx, w, y, ldy);
  };
  if (x.rows > kGemvMaxRows) return int_pairs_packed<WT>(xs, ldx, x.rows, w, y, ldy);
  with_small_m(x.rows, small);
}

}  // namespace

bool int_pairs_apply(const WeightView& w) {
  if (!w.is_int() || w.kn) return false;
  bool ok = false;
  dispatch_int_dtype(w.dtype, [&]<DType WT>() {
    constexpr int S = CodePairs<WT>::kCols;  // segments must start on whole steps
    ok = w.col0 % S == 0 && (w.group % S == 0 || w.col0 + w.cols <= w.group);
  });
  return ok;
}

void gemm_int_pairs_kernel(const GemmInput& x, const WeightView& w, float* y, int64_t ldy) {
  dispatch_int_dtype(w.dtype, [&]<DType WT>() { int_pairs<WT>(x, w, y, ldy); });
}

}  // namespace dsinfer::DSINFER_ISA_NS
