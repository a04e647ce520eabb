// GEMM for weights stored [N, K] (every linear layer but MLA's W_UK view), in the dot form: vector
// lanes run along k, so a weight row is read as it lies in memory, with no transposes.
//
// Batch invariance: every y[m, n] is computed in one canonical order (per ISA), whatever M, the
// row's index, the thread count or the work split:
//   for each K block b of kKc columns (from k = 0): a vector accumulator over the block's chunks
//   in order (f32: kLanes columns per chunk, FMAs; pairs: 2 * kLanes columns, dot_pairs), lane l
//   taking chunk elements l (f32) or 2l, 2l + 1 (pairs), the last chunk zero-padded;
//   s_b = reduce_lanes of it (lane l's halving tree); then y = s_0, y = s_b + y, ...
// The operands are x as f32 (f32 form) or bf16 (pairs), and ŵ as panel.h's weight_row_f32
// defines it (pairs: rounded to bf16). Both algorithms below (small M, packed GEMM) run the same
// micro-kernel (dot_block) and reduce_lanes, so they give the same bits. Integer codes in the
// pair form (bf16 x where the native dot is preferred) have their own order and kernels:
// gemm_int_pairs.isa.cpp.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "kernels/gemm_rows_parts.h"

namespace dsinfer::DSINFER_ISA_NS {

using namespace tile;
using namespace gemm_rows_parts;

namespace {

constexpr int kPiece = 512;  // small M: columns decoded at a time (kKc a multiple of it)
// Whether small M decodes FP8 in registers pass by pass when M > kPass. Not on the scalar
// backend, whose vectors are arrays: there the unrolled passes only cost compile time (the
// sanitizer build's longest file).
#if defined(__AVX2__)
constexpr bool kRegisterPasses = true;
#else
constexpr bool kRegisterPasses = false;
#endif

// ---- weight rows as the chain's B operand ------------------------------------------------------
// Where the chain reads W's rows from: the weight itself (f32 form on f32 weights, pairs on bf16:
// already the operand), or a decoded copy.
template <bool kPairs>
bool rows_direct(const WeightView& w) {
  return w.dtype == (kPairs ? DType::bf16 : DType::f32);
}

// weight_row_f32 over any length (it takes kMaxSegment columns at a time).
inline void row_f32(const WeightView& w, int64_t r, int64_t c0, int len, float* out) {
  for (int k = 0; k < len; k += kMaxSegment)
    weight_row_f32(w, r, c0 + k, std::min(kMaxSegment, len - k), out + k);
}
// ŵ rounded to bf16 (round to nearest even, as store_bf16 does everywhere).
inline void to_bf16(uint16_t* d, const float* f, int n) {
  int k = 0;
  for (; k + kLanes <= n; k += kLanes) store_bf16(d + k, load(f + k));
  if (k < n) store_bf16_n(d + k, load_n(f + k, n - k), n - k);
}
inline bool fp8_pow2_scale(float sc, int& c) {  // sc = +2^e, 2^-117 <= 2^e < 2^7: c = e + 120
  const uint32_t bits = f32_bits(sc);
  if ((bits & 0x807fffffu) != 0 || bits < (10u << 23) || bits >= (134u << 23)) return false;
  c = int(bits >> 23) - 7;
  return true;
}
// Rows [n, n + rows) of W, columns [k0, k0 + kc), decoded into dst[r * ldd + kk] (ŵ; pairs: as
// bf16); rows from `rows` up to `pad_rows` are zero.
template <bool kPairs>
void decode_rows(typename Form<kPairs>::E* dst, int64_t ldd, const WeightView& w, int64_t n,
                 int rows, int pad_rows, int64_t k0, int kc) {
  alignas(64) float row[kKc];
  for (int r = 0; r < pad_rows; ++r) {
    auto* d = dst + r * ldd;
    if (r >= rows) {
      std::memset(d, 0, size_t(kc) * sizeof(*d));
      continue;
    }
    if (rows_direct<kPairs>(w)) {  // already the operand
      std::memcpy(d, w.element_ptr(n + r, k0), size_t(kc) * sizeof(*d));
      continue;
    }
    if constexpr (kPairs) {
      // FP8 with power-of-two scales (ue8m0 checkpoints, and our own): integer ops, 128-column
      // scale blocks at a time (chunks never straddle one when the view starts on a block).
      if (w.dtype == DType::fp8_e4m3 && (w.col0 + k0) % kFp8BlockSize == 0) {
        const uint8_t* p = reinterpret_cast<const uint8_t*>(w.element_ptr(n + r, k0));
        const float* srow = &w.scale_inv[((w.row0 + n + r) / kFp8BlockSize) * w.scale_ld +
                                         (w.col0 + k0) / kFp8BlockSize];
        constexpr int kBlock = int(kFp8BlockSize), kPer = kBlock / (2 * kLanes);
        for (int k = 0; k < kc; k += kBlock) {
          const int len = std::min(kBlock, kc - k);
          int c;
          uint32_t subnormal = 1;
          if (len == kBlock && fp8_pow2_scale(srow[k / kBlock], c)) {
            subnormal = 0;
            if (!fp8_any_zero_exponent(p + k, kBlock)) {  // the four-op decode
#pragma GCC unroll 8
              for (int q = 0; q < kPer; ++q)
                store_pairs(d + k + q * 2 * kLanes, fp8_to_bf16_normal(p + k + q * 2 * kLanes, c));
            } else {  // zeros pass, subnormal codes are flagged
#pragma GCC unroll 8
              for (int q = 0; q < kPer; ++q) {
                VB v;
                subnormal |= fp8_to_bf16_pow2(p + k + q * 2 * kLanes, c, v);
                store_pairs(d + k + q * 2 * kLanes, v);
              }
            }
          }
          if (subnormal) {  // through f32 (the same values where both apply, exactly)
            row_f32(w, n + r, k0 + k, len, row);
            to_bf16(d + k, row, len);
          }
        }
        continue;
      }
      row_f32(w, n + r, k0, kc, row);
      to_bf16(d, row, kc);
    } else {
      row_f32(w, n + r, k0, kc, d);
    }
  }
}

// FP8 rows decoded in registers (MR <= 4 rows of x, one pass of gemm_rows_small): acc continues the
// chain of R weight rows [n, n + R) with MR rows of x over columns [k0, k0 + kc), on exactly the
// values decode_rows makes, without the L1 copy. Only whole 128-column scale blocks and all R rows
// in one 128-row scale block (false, acc untouched, otherwise); pairs: power-of-two scales, and a
// block with a zero or subnormal code is taken from its decoded copy; f32: scales the raw decode
// takes.
template <bool kPairs, int MR, int R>
[[gnu::always_inline]] inline bool dot_fp8_rows(VF (&acc)[MR][R], int kc,
                                                const typename Form<kPairs>::E* a, int64_t lda,
                                                const WeightView& w, int64_t n, int64_t k0) {
  using F = Form<kPairs>;
  constexpr int kBlock = int(kFp8BlockSize), kPer = kBlock / F::kChunk;
  if (kc % kBlock != 0 || (w.col0 + k0) % kBlock != 0 ||
      (w.row0 + n) / kBlock != (w.row0 + n + R - 1) / kBlock)
    return false;
  const float* srow = &w.scale_inv[((w.row0 + n) / kBlock) * w.scale_ld + (w.col0 + k0) / kBlock];
  int cs[kPiece / kBlock];
  for (int b = 0; b < kc / kBlock; ++b) {
    if constexpr (kPairs) {
      if (!fp8_pow2_scale(srow[b], cs[b])) return false;
    } else if (!(std::fabs(srow[b]) < kFp8RawMaxScale)) {
      return false;
    }
  }
  const uint8_t* p = reinterpret_cast<const uint8_t*>(w.element_ptr(n, k0));
  const int64_t ld = w.ld;
  for (int b = 0; b < kc / kBlock; ++b) {
    if constexpr (kPairs) {
      // A block with a zero or subnormal code (rare: the scan costs a test per 64 codes) goes
      // through its decoded copy; every other takes the four-op decode.
      bool special = false;
#pragma GCC unroll 16
      for (int j = 0; j < R; ++j) special |= fp8_any_zero_exponent(p + j * ld + b * kBlock, kBlock);
      if (special) {
        alignas(64) uint16_t rows[R * kBlock];
        decode_rows<true>(rows, kBlock, w, n, R, R, k0 + b * kBlock, kBlock);
        dot_block<true, MR, R>(acc, kBlock, reinterpret_cast<const uint16_t*>(a) + b * kBlock, lda,
                               2 * kLanes, rows, kBlock, 2 * kLanes);
        continue;
      }
    }
    [[maybe_unused]] const VF s_raw = set1(srow[b] * kFp8RawScale);
#pragma GCC unroll 8
    for (int q = 0; q < kPer; ++q) {
      const int off = b * kBlock + q * F::kChunk;
      typename F::V av[MR];
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) av[i] = F::load(a + i * lda + off);
#pragma GCC unroll 16
      for (int j = 0; j < R; ++j) {
        typename F::V bv;
        if constexpr (kPairs)
          bv = fp8_to_bf16_normal(p + j * ld + off, cs[b]);
        else
          bv = mul(load_fp8_raw(p + j * ld + off), s_raw);  // weight_row_f32's product
#pragma GCC unroll 4
        for (int i = 0; i < MR; ++i) acc[i][j] = F::dot(acc[i][j], av[i], bv);
      }
    }
  }
  return true;
}

// INT4 / INT8 rows decoded in registers (f32 form, one pass over x, M <= 4): the values
// weight_row_f32 makes -- (code - offset - zero) * the row's group scale, by whole vectors -- fed
// straight into the chains. Only groups of whole chunks and kc a whole number of chunks.
template <DType WT, int MR, int R>
[[gnu::always_inline]] inline void dot_int_rows_as(VF (&acc)[MR][R], int kc, const float* a,
                                                   int64_t lda, const WeightView& w, int64_t n,
                                                   int64_t k0) {
  constexpr int chunk_bytes = kLanes * dtype_bits(WT) / 8;
  const uint8_t* p[R];
#pragma GCC unroll 16
  for (int j = 0; j < R; ++j) p[j] = reinterpret_cast<const uint8_t*>(w.element_ptr(n + j, k0));
  VF s[R], bias[R];
  for (int k = 0; k < kc;) {
    // One group (or what of it lies in [k, kc)) with its scales and zero points in registers.
    const int end = int(std::min<int64_t>(kc, k + (w.group - (w.col0 + k0 + k) % w.group)));
#pragma GCC unroll 16
    for (int j = 0; j < R; ++j) {
      s[j] = set1(w.qscale_at(n + j, k0 + k));
      bias[j] = set1(kIntOffset<WT> + float(w.zero_at(n + j, k0 + k)));
    }
    for (; k < end; k += kLanes) {
      VF av[MR];
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) av[i] = load(a + i * lda + k);
      const int64_t off = int64_t(k / kLanes) * chunk_bytes;
#pragma GCC unroll 16
      for (int j = 0; j < R; ++j) {
        const VF bv = mul(sub(load_int_codes<WT>(p[j] + off), bias[j]), s[j]);
#pragma GCC unroll 4
        for (int i = 0; i < MR; ++i) acc[i][j] = fma(av[i], bv, acc[i][j]);
      }
    }
  }
}
template <int MR, int R>
inline bool dot_int_rows(VF (&acc)[MR][R], int kc, const float* a, int64_t lda, const WeightView& w,
                         int64_t n, int64_t k0) {
  if (w.group % kLanes != 0 || (w.col0 + k0) % kLanes != 0 || kc % kLanes != 0) return false;
  dispatch_int_dtype(w.dtype, [&]<DType WT>() { dot_int_rows_as<WT>(acc, kc, a, lda, w, n, k0); });
  return true;
}

// ---- small M (decode): groups of kLanes weight rows, each read once -----------------------------
// R rows of a group at a time (as many as the registers hold next to kPass rows of x) stream
// along all of K and are multiplied into every row of x; each K block's accumulators wait in
// `part` and the group's are reduced together (one reduce_lanes per row of x and K block).
template <bool kPairs, int M, int kRows = 0>
void gemm_rows_small(const typename Form<kPairs>::E* xa, int64_t lda, const WeightView& w, float* y,
                     int64_t ldy) {
  using E = typename Form<kPairs>::E;
  using F = Form<kPairs>;
  constexpr int kAcc = kLanes == 16 ? 16 : 8;   // accumulator registers
  constexpr int kPass = std::min(M, kAcc / 4);  // rows of x per pass (then >= 4 rows of W)
  constexpr int R =
      kRows ? kRows : std::bit_floor(unsigned(std::min(kLanes, kAcc / kPass)));  // W rows at a time
  constexpr int G = kLanes;  // rows per group: one reduce_lanes per row of x
  static_assert(G % R == 0);
  const int64_t N = w.rows, K = w.cols;
  const int64_t groups = (N + G - 1) / G;
  const bool direct = rows_direct<kPairs>(w);
  const int64_t grain = std::clamp<int64_t>(groups / (4 * num_threads()), 1, 16);
  parallel_for(groups, grain, [&](int64_t g0, int64_t g1, int) {
    E* buf = gemm_scratch<E>(1, size_t(R) * kPiece);
    VF* part = gemm_scratch<VF>(2, size_t((K + kKc - 1) / kKc) * M * G);
    for (int64_t g = g0; g < g1; ++g) {
      const int64_t n0 = g * G;
      const int rows = int(std::min<int64_t>(G, N - n0));
      // R rows at a time, each streamed along all of K (long runs for the prefetchers); the
      // partial sums of every K block wait in `part` for the group's reduction.
      for (int r0 = 0; r0 < G; r0 += R) {
        const int nr = std::clamp(rows - r0, 0, R);
        // Pieces of kPiece columns (the decoded rows stay in L1); a K block's chain runs on
        // across its pieces through `part`.
        for (int64_t k0 = 0; k0 < K; k0 += kPiece) {
          const int64_t kb = k0 / kKc;
          const bool first = k0 % kKc == 0;
          const int kc = int(std::min<int64_t>(kPiece, std::min((kb + 1) * kKc, K) - k0));
          // The next R rows' same piece on its way into L2 (measured against prefetching these
          // rows' next piece, 4096 x 4096, 2 threads: FP8 M = 1 0.74 -> 0.62 ms, M = 8 1.63 ->
          // 1.31 ms; bf16 M = 8 1.58 -> 1.39 ms).
          if (nr > 0) {
            const int64_t nn = n0 + r0 + R, bytes = int64_t(kc) * dtype_bits(w.dtype) / 8;
            for (int64_t r = nn; r < std::min(nn + R, N); ++r)
              for (int64_t b = 0; b < bytes; b += 64) prefetch_l2(w.element_ptr(r, k0) + b);
          }
          VF* pk = part + kb * M * G;
          // The chains of x rows [m0, m0 + mp) and these R weight rows, from and back to `part`.
          auto load_chains = [&]<int mp>(VF(&acc)[mp][R], int m0) {
#pragma GCC unroll 8
            for (int m = 0; m < mp; ++m)
#pragma GCC unroll 16
              for (int r = 0; r < R; ++r) acc[m][r] = first ? zero() : pk[(m0 + m) * G + r0 + r];
          };
          auto store_chains = [&]<int mp>(const VF(&acc)[mp][R], int m0) {
#pragma GCC unroll 8
            for (int m = 0; m < mp; ++m)
#pragma GCC unroll 16
              for (int r = 0; r < R; ++r) pk[(m0 + m) * G + r0 + r] = acc[m][r];
          };
          // Codes decoded in registers, pass by pass: FP8 at any M (each pass of kPass rows of x
          // decodes the rows again, which measured 15-25% faster at M = 5..8 than one decoded L1
          // copy the passes share: 2 cores of a Zen 5 class EPYC, N x K = 24576 x 1536 and 4096 x
          // 4096, on all three vector ISAs), integer codes in one pass. Whether a piece can go
          // this way does not depend on the rows of x, so the first pass decides for all.
          if constexpr (M == kPass || kRegisterPasses) {
            if ((w.dtype == DType::fp8_e4m3 || (!kPairs && w.is_int() && M == kPass)) && nr == R) {
              bool done = true;
              [&]<int... P>(std::integer_sequence<int, P...>) {
                (
                    [&] {
                      constexpr int m0 = P * kPass, mp = std::min(kPass, M - m0);
                      if (!done) return;
                      VF acc[mp][R];
                      load_chains(acc, m0);
                      const auto* a = xa + m0 * lda + k0;
                      if constexpr (kPairs || M != kPass)  // FP8 (see the condition above)
                        done = dot_fp8_rows<kPairs, mp, R>(acc, kc, a, lda, w, n0 + r0, k0);
                      else
                        done = w.is_int()
                                   ? dot_int_rows<mp, R>(acc, kc, a, lda, w, n0 + r0, k0)
                                   : dot_fp8_rows<false, mp, R>(acc, kc, a, lda, w, n0 + r0, k0);
                      if (done) store_chains(acc, m0);
                    }(),
                    ...);
              }
              (std::make_integer_sequence<int, (M + kPass - 1) / kPass>{});
              if (done) continue;
            }
          }
          const E* b;
          int64_t ldb;
          if (direct && nr == R) {
            b = reinterpret_cast<const E*>(w.element_ptr(n0 + r0, k0)), ldb = w.ld;
          } else {
            decode_rows<kPairs>(buf, kPiece, w, n0 + r0, nr, R, k0, kc);
            b = buf, ldb = kPiece;
          }
          [&]<int... P>(std::integer_sequence<int, P...>) {  // passes of kPass rows of x
            (
                [&] {
                  constexpr int m0 = P * kPass, mp = std::min(kPass, M - m0);
                  VF acc[mp][R];
                  load_chains(acc, m0);
                  dot_block<kPairs, mp, R>(acc, kc, xa + m0 * lda + k0, lda, F::kChunk, b, ldb,
                                           F::kChunk);
                  store_chains(acc, m0);
                }(),
                ...);
          }
          (std::make_integer_sequence<int, (M + kPass - 1) / kPass>{});
        }
      }
      reduce_group(part, K, M, n0, rows, y, ldy);
    }
  });
}

// ---- GEMM: a decoded K block of Nc weight rows per thread, x rows streaming past it -------------
template <bool kPairs>
void gemm_rows_packed(const typename Form<kPairs>::E* xa, int64_t lda, int64_t M,
                      const WeightView& w, float* y, int64_t ldy) {
  using F = Form<kPairs>;
  using E = typename F::E;
  constexpr int C = F::kChunk;
  const int64_t N = w.rows, K = w.cols;
  const int64_t strips = (M + kMR - 1) / kMR, k_blocks = (K + kKc - 1) / kKc;
  const int64_t a_block = int64_t(kKc) * kMR;

  const E* a_packed = pack_x<E, kMR, C>(xa, lda, M, K);

  const int64_t nc = task_rows<E>(N), n_tasks = (N + nc - 1) / nc;
  parallel_for(n_tasks, 1, [&](int64_t t0, int64_t t1, int) {
    E* panel = gemm_scratch<E>(1, size_t(nc) * kKc);  // [nc rows][kKc]: this K block of W, decoded
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n0 = t * nc, rows = std::min(nc, N - n0);
      const int64_t quads = (rows + kNR - 1) / kNR;
      for (int64_t kb = 0; kb < k_blocks; ++kb) {
        const int64_t k0 = kb * kKc;
        const int kc = int(std::min<int64_t>(kKc, K - k0)), padded = (kc + C - 1) / C * C;
        decode_rows<kPairs>(panel, kKc, w, n0, int(rows), int(quads * kNR), k0, kc);
        if (padded > kc)
          for (int64_t r = 0; r < quads * kNR; ++r)
            std::memset(panel + r * kKc + kc, 0, size_t(padded - kc) * sizeof(E));
        for (int64_t s0 = 0; s0 < strips; s0 += kStripsPerGroup<E>) {
          const int64_t s1 = std::min(strips, s0 + kStripsPerGroup<E>);
          for (int64_t q = 0; q < quads; ++q) {
            const int cols = int(std::min<int64_t>(kNR, rows - q * kNR));
            for (int64_t st = s0; st < s1; ++st) {
              const int64_t m0 = st * kMR;
              const int mr = int(std::min<int64_t>(kMR, M - m0));
              VF acc[kMR][kNR];
#pragma GCC unroll 16
              for (int i = 0; i < kMR; ++i)
#pragma GCC unroll 16
                for (int j = 0; j < kNR; ++j) acc[i][j] = zero();
              dot_block<kPairs, kMR, kNR>(acc, padded, a_packed + (st * k_blocks + kb) * a_block, C,
                                          kMR * C, panel + q * kNR * kKc, kKc, C);
              reduce_block(acc, mr, cols, y, ldy, m0, n0 + q * kNR, kb == 0);
            }
          }
        }
      }
    }
  });
}

template <bool kPairs>
void gemm_rows(const GemmInput& x, const WeightView& w, float* y, int64_t ldy) {
  int64_t lda;
  const auto* xa = a_operand<kPairs>(x, lda);
  // FP8 and integer codes decoded in registers (dot_fp8_rows, dot_int_rows) stream best 4 rows at
  // a time (measured: FP8, 1 x row, 2 threads, 4096 x 4096: 0.52 ms against 0.55 with 16 rows,
  // 0.65 with 2); bf16 rows 16 at a time.
  auto small = [&]<int M>() {
    if (M <= 2 && (w.dtype == DType::fp8_e4m3 || w.is_int()))
      return gemm_rows_small<kPairs, M, 4>(xa, lda, w, y, ldy);
    return gemm_rows_small<kPairs, M>(xa, lda, w, y, ldy);
  };
  if (x.rows > kGemvMaxRows) return gemm_rows_packed<kPairs>(xa, lda, x.rows, w, y, ldy);
  with_small_m(x.rows, small);
}

}  // namespace

void gemm_rows_kernel(const GemmInput& x, const WeightView& w, float* y, int64_t ldy, bool pairs) {
  pairs ? gemm_rows<true>(x, w, y, ldy) : gemm_rows<false>(x, w, y, ldy);
}

}  // namespace dsinfer::DSINFER_ISA_NS
