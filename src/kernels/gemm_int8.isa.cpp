// W8A8 / W4A8 GEMM on int8 dot products (gemm_int8.h), compiled once per ISA.
//
// Weights: per block of kNB rows, the codes are packed (transposed in registers, 16 x 16 words
// on AVX-512) into bp[quad][row]: one VQ holds the same 4 consecutive columns (a "quad") of
// kLanes rows, so a row's dot product runs down one lane and the activations are broadcast 4
// bytes at a time -- per group of columns no horizontal sums, one scale vector per kLanes rows.
// INT4 codes are split into bytes while packing: a word of 8 nibbles (columns 8t .. 8t + 7)
// gives the quad of its even columns (low nibbles) and the quad of its odd ones (high), so the
// activation panel stores every 8 columns as x0 x2 x4 x6 x1 x3 x5 x7. INT8 (I8) codes are
// flipped to offset-binary. Codes are then unsigned (value + off: 8 for INT4, 128 for INT8),
// activations signed, and per row the sum of its codes in each group removes the offset (and an
// asymmetric checkpoint's zero point z of the weight row and group):
//   sum_k (w + off) x = sum_k (w - z) x + (off + z) * sum_k x   (seeded into each group's
// accumulator: -(off + z) * sum_k x, per lane).
//
// Up to MR rows (decode) skip the packed copy: the transposed codes are used from registers, in
// the same order. Per (row, weight row) pair the arithmetic is the same whatever tile, task or
// path it falls in:
// exact int32 sums per group, then total = fma(f32(sum), scale, total) in group order and one
// product by the row's activation scale. So results do not depend on M, the thread count or the
// split (batch invariant).
#include <algorithm>
#include <utility>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/gemm_int8.h"
#include "tile/backend.h"

namespace dsinfer::DSINFER_ISA_NS {

using namespace simd;

namespace {

constexpr int kVQ = 4 * kLanes;           // bytes per VQ: one quad per lane
constexpr int kNV = 2;                    // weight vectors (kLanes rows each) per block
constexpr int kNB = kNV * kLanes;         // weight rows per block
constexpr int MR = kLanes == 16 ? 6 : 3;  // activation rows per micro-tile
constexpr int64_t kMChunk = 240;          // activation rows per pass over a packed block

struct Plan {
  const WeightView* w;
  int64_t M, N, K, group, G;
  const int8_t* xq;     // [M][K] in the packed column order
  const float* sx;      // [M]
  const int32_t* sumx;  // [M][G]
  float* y;
  int64_t ldy;
  int32_t offset;     // of the unsigned weight codes
  int64_t op_stride;  // pack_offsets' entries between groups: kNB, or 0 (no zero points)
};

// What each group's sums start from, per weight row j of a block of kNB rows (rows past N: 0):
// the code offset plus the row's zero point, times minus the activation row's code sum
// (seed_at). op[g * op_stride + j]: without zero points every group has the same offsets, so one
// row of kNB is filled (op_stride 0) -- filling G of them cost ~8% of an M = 1 W4A8 GEMV.
void pack_offsets(const Plan& p, int64_t n0, int32_t* op) {
  const WeightView& w = *p.w;
  const int64_t g0 = w.col0 / w.group;  // the view's first group (col0 is a multiple of it)
  for (int j = 0; j < kNB; ++j) {
    const bool real = n0 + j < p.N;
    if (!w.qzero)
      op[j] = real ? p.offset : 0;
    else
      for (int64_t g = 0; g < p.G; ++g)
        op[g * kNB + j] = real ? p.offset + w.zero_of_group(n0 + j, g0 + g) : 0;
  }
}
[[gnu::always_inline]] inline VI seed_at(const int32_t* op, int32_t sumx) {
  return mul_i(load_i(op), set1_i(-sumx));
}

// One transposed word T of a chunk as its quads: sink.step<q % 4>(q, codes), the codes of quad q
// of every row as unsigned bytes (the chain index is a constant for sinks that keep per-chain
// state in registers).
template <DType WT, int T, class Sink>
[[gnu::always_inline]] inline void quad_word(Sink& sink, const VF (&r)[kLanes], int64_t q0) {
  VQ w = as_quads(r[T]);
  if constexpr (WT == DType::i8) w = flip_bytes(w);
  if constexpr (WT == DType::u4) {
    sink.template step<(2 * T) % 4>(q0 + 2 * T, low_nibbles(w));
    sink.template step<(2 * T + 1) % 4>(q0 + 2 * T + 1, high_nibbles(w));
  } else {
    sink.template step<T % 4>(q0 + T, w);
  }
}

template <DType WT, class Sink, int... T>
[[gnu::always_inline]] inline void quad_words(Sink& sink, const VF (&r)[kLanes], int64_t q0,
                                              std::integer_sequence<int, T...>) {
  (quad_word<WT, T>(sink, r, q0), ...);
}

// Weight vector v of the block at n0 (kLanes rows; rows past N: zero codes), quad by quad in
// column order, into sink (each chunk of a row's codes loaded and transposed in registers).
template <DType WT, class Sink>
[[gnu::always_inline]] inline void for_each_quad(const Plan& p, int64_t n0, int v, int64_t pf_end,
                                                 Sink& sink) {
  constexpr bool u4 = WT == DType::u4;
  constexpr int64_t chunk = u4 ? 2 * kVQ : kVQ;  // columns per VQ of a row
  const uint8_t* rows[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    const int64_t n = n0 + v * kLanes + l;
    rows[l] = n < p.N ? reinterpret_cast<const uint8_t*>(p.w->element_ptr(n, 0)) : nullptr;
  }
  // The next kLanes rows (the next vector's, or the next block's) into L2 at the columns this
  // pass reads: sixteen short row streams at once are more than the hardware prefetchers follow.
  // Only rows this task reads next (before pf_end): L2 is per core.
  const int64_t row_bytes = p.w->ld * dtype_bits(WT) / 8;
  const bool prefetch_next = n0 + v * kLanes + 2 * kLanes <= pf_end;
  for (int64_t c = 0; c < p.K; c += chunk) {
    VF r[kLanes];
    if (prefetch_next)
      for (int l = 0; l < kLanes; ++l) prefetch_l2(rows[l] + kLanes * row_bytes + (u4 ? c / 2 : c));
    for (int l = 0; l < kLanes; ++l)
      r[l] = rows[l] ? as_words(load_q(rows[l] + (u4 ? c / 2 : c))) : zero();
    transpose(r);  // r[t]: word t (columns c + 4t.., or 8t.. for INT4) of every row
    quad_words<WT>(sink, r, c / 4, std::make_integer_sequence<int, kLanes>{});
  }
}

// Stores quads into bp[quad][kNB] (4 bytes each) at vector v's lanes.
struct PackSink {
  uint8_t* bp;
  int v;
  template <int C>
  [[gnu::always_inline]] void step(int64_t q, VQ w) {
    store_q(bp + (q * kNB + v * kLanes) * 4, w);
  }
};

// Weight rows [n0, n0 + kNB) into bp[quad][kNB].
template <DType WT>
void pack_block(const Plan& p, int64_t n0, int64_t pf_end, uint8_t* bp) {
  for (int v = 0; v < kNV; ++v) {
    PackSink sink{bp, v};
    for_each_quad<WT>(p, n0, v, pf_end, sink);
  }
}

// y[dst, dst + cnt) = the first cnt lanes of out (cnt <= 0: nothing).
inline void store_lanes(float* dst, VF out, int64_t cnt) {
  if (cnt >= kLanes)
    store(dst, out);
  else if (cnt > 0)
    store_n(dst, out, int(cnt));
}

// One row's scales of kLanes groups from g as f32 (rows past N: zero).
inline VF scale_lanes(const WeightView& w, int64_t at) {
  switch (w.qscale_dtype) {
    case DType::bf16:
      return load_bf16(static_cast<const uint16_t*>(w.qscale) + at);
    case DType::f16:
      return load_f16(static_cast<const uint16_t*>(w.qscale) + at);
    default:
      return load(static_cast<const float*>(w.qscale) + at);
  }
}

// The group scales of weight rows [n0, n0 + kNB) as sp[g][kNB] (rows past N: 0). kLanes x
// kLanes tiles transposed in registers where G allows (an element at a time, this was ~8% of an
// M = 1 W4A8 GEMV).
void pack_scales(const Plan& p, int64_t n0, float* sp) {
  const WeightView& w = *p.w;
  const int64_t g0 = w.col0 / w.group;  // the view's first group (col0 is a multiple of it)
  if (p.G % kLanes == 0) {
    for (int v = 0; v < kNV; ++v)
      for (int64_t gc = 0; gc < p.G; gc += kLanes) {
        VF r[kLanes];
        for (int l = 0; l < kLanes; ++l) {
          const int64_t n = n0 + v * kLanes + l;
          r[l] = n < p.N ? scale_lanes(w, (w.row0 + n) * w.qscale_ld + g0 + gc) : zero();
        }
        transpose(r);
        for (int t = 0; t < kLanes; ++t) store(sp + (gc + t) * kNB + v * kLanes, r[t]);
      }
    return;
  }
  for (int j = 0; j < kNB; ++j) {
    if (n0 + j >= p.N) {
      for (int64_t g = 0; g < p.G; ++g) sp[g * kNB + j] = 0.0f;
      continue;
    }
    const int64_t at = (w.row0 + n0 + j) * w.qscale_ld + g0;
    switch (w.qscale_dtype) {
      case DType::bf16: {
        const bf16* q = static_cast<const bf16*>(w.qscale) + at;
        for (int64_t g = 0; g < p.G; ++g) sp[g * kNB + j] = bf16_to_f32(q[g]);
        break;
      }
      case DType::f16: {
        const f16* q = static_cast<const f16*>(w.qscale) + at;
        for (int64_t g = 0; g < p.G; ++g) sp[g * kNB + j] = f16_to_f32(q[g]);
        break;
      }
      default: {
        const float* q = static_cast<const float*>(w.qscale) + at;
        for (int64_t g = 0; g < p.G; ++g) sp[g * kNB + j] = q[g];
        break;
      }
    }
  }
}

// Rows [m0, m0 + mr) x weight rows [n0, n0 + kNB) of y from a packed block.
template <int mr>
void micro_tile(const Plan& p, const uint8_t* bp, const float* sp, const int32_t* op, int64_t m0,
                int64_t n0) {
  const int8_t* xr[mr];
  for (int i = 0; i < mr; ++i) xr[i] = p.xq + (m0 + i) * p.K;
  VF total[mr][kNV];
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < kNV; ++j) total[i][j] = zero();
  const int64_t quads = p.group / 4;
  VI acc[mr][kNV];
  for (int64_t g = 0; g < p.G; ++g) {
    for (int i = 0; i < mr; ++i)
      for (int j = 0; j < kNV; ++j)
        acc[i][j] = seed_at(op + g * p.op_stride + j * kLanes, p.sumx[(m0 + i) * p.G + g]);
    const uint8_t* bq = bp + g * quads * kNB * 4;
    for (int64_t q = g * quads; q < (g + 1) * quads; ++q, bq += kNB * 4) {
      VQ b[kNV];
      for (int j = 0; j < kNV; ++j) b[j] = load_q(bq + j * kVQ);
      for (int i = 0; i < mr; ++i) {
        const VQ xb = broadcast_quad(xr[i] + 4 * q);
        for (int j = 0; j < kNV; ++j) acc[i][j] = dot_u8s8(acc[i][j], b[j], xb);
      }
    }
    for (int j = 0; j < kNV; ++j) {
      const VF s = load(sp + g * kNB + j * kLanes);
      for (int i = 0; i < mr; ++i) total[i][j] = fma(to_f32(acc[i][j]), s, total[i][j]);
    }
  }
  for (int i = 0; i < mr; ++i) {
    const VF sx = set1(p.sx[m0 + i]);
    for (int j = 0; j < kNV; ++j) {
      const int64_t n = n0 + j * kLanes;
      store_lanes(p.y + (m0 + i) * p.ldy + n, mul(total[i][j], sx), p.N - n);
    }
  }
}

// Few rows (decode): the same arithmetic as pack_block + micro_tile, pair by pair, on the
// transposed codes straight from registers (no packed copy). Each row keeps four int32 partial
// sums, quads round robin -- four dependency chains instead of one; integer sums are exact, so
// each group's total is the packed path's bit for bit.
template <int mr>
struct FusedSums {
  static constexpr int kChains = 4;
  const Plan& p;
  const float* sc;    // this vector's scales of group 0 (kNB apart per group)
  const int32_t* op;  // its offsets (pack_offsets), the same way
  int64_t quads, g = 0, left;
  VF total[mr];
  VI acc[mr][kChains];

  [[gnu::always_inline]] FusedSums(const Plan& plan, const float* scales, const int32_t* offsets)
      : p(plan), sc(scales), op(offsets), quads(plan.group / 4), left(quads) {
    for (int i = 0; i < mr; ++i) total[i] = zero();
    seed();
  }
  [[gnu::always_inline]] void seed() {
    for (int i = 0; i < mr; ++i) {
      acc[i][0] = seed_at(op + g * p.op_stride, p.sumx[i * p.G + g]);
      for (int c = 1; c < kChains; ++c) acc[i][c] = set1_i(0);
    }
  }
  // Quad q of every row into chain C, then the group's end.
  template <int C>
  [[gnu::always_inline]] void step(int64_t q, VQ wq) {
    for (int i = 0; i < mr; ++i)
      acc[i][C] = dot_u8s8(acc[i][C], wq, broadcast_quad(p.xq + i * p.K + 4 * q));
    if (--left == 0) {
      const VF s = load(sc + g * kNB);
      for (int i = 0; i < mr; ++i)
        total[i] = fma(to_f32(add_i(add_i(acc[i][0], acc[i][1]), add_i(acc[i][2], acc[i][3]))), s,
                       total[i]);
      left = quads;
      if (++g < p.G) seed();
    }
  }
};

template <DType WT, int mr>
void fused_block(const Plan& p, const float* sp, const int32_t* op, int64_t n0, int64_t pf_end) {
  for (int v = 0; v < kNV; ++v) {
    FusedSums<mr> f(p, sp + v * kLanes, op + v * kLanes);
    for_each_quad<WT>(p, n0, v, pf_end, f);
    const int64_t n = n0 + v * kLanes;
    for (int i = 0; i < mr; ++i)
      store_lanes(p.y + i * p.ldy + n, mul(f.total[i], set1(p.sx[i])), p.N - n);
  }
}

template <DType WT, int mr>
void fused_rows(const Plan& p, const float* sp, const int32_t* op, int64_t n0, int64_t pf_end,
                int rows) {
  if (rows == mr)
    fused_block<WT, mr>(p, sp, op, n0, pf_end);
  else if constexpr (mr > 1)
    fused_rows<WT, mr - 1>(p, sp, op, n0, pf_end, rows);
}

// One row of x with groups of whole loads (rowdot_applies): the row-dot form. Each weight row's
// codes meet x's bytes in the same lanes (whole-vector dot products, no transpose), and at each
// group's end reduce_lanes_i gives the kLanes rows' exact group sums at once: the very integers
// of the transposed paths (integer sums do not depend on their order), so the totals are theirs
// bit for bit. Rows past N repeat the last real one (read, never stored).
constexpr bool rowdot_applies(bool u4, int64_t M, int64_t group) {
  return M == 1 && group % (u4 ? 2 * kVQ : kVQ) == 0;
}

// kLanes weight rows [r0, r0 + kLanes) into y[r0 ..]: rows at base + l * ld_bytes (all real), or
// for the last vector (kTail) through pointers, rows past N repeating the last real one.
template <DType WT, bool kTail>
void rowdot_vector(const Plan& p, const float* sp, const int32_t* op, int64_t r0, int v,
                   bool prefetch_next) {
  constexpr bool u4 = WT == DType::u4;
  constexpr int64_t step = u4 ? 2 * kVQ : kVQ;  // columns per load of a row
  const int64_t ld_bytes = p.w->ld * dtype_bits(WT) / 8;
  const uint8_t* const base = reinterpret_cast<const uint8_t*>(p.w->element_ptr(r0, 0));
  // One pointer per row only for the tail: sixteen of them would take the registers the
  // accumulators need (GCC moved them into vector registers and spilled the codes).
  const uint8_t* rows[kTail ? kLanes : 1];
  if constexpr (kTail)
    for (int l = 0; l < kLanes; ++l)
      rows[l] = reinterpret_cast<const uint8_t*>(p.w->element_ptr(std::min(r0 + l, p.N - 1), 0));
  auto row = [&](int l) { return kTail ? rows[kTail ? l : 0] : base + l * ld_bytes; };
  VF total = zero();
  for (int64_t g = 0; g < p.G; ++g) {
    VI acc[kLanes];
    for (int l = 0; l < kLanes; ++l) acc[l] = set1_i(0);
    for (int64_t c = g * p.group; c < (g + 1) * p.group; c += step) {
      const int64_t b = u4 ? c / 2 : c;
      // The next kLanes rows into L2, as in for_each_quad.
      if (prefetch_next)
        for (int l = 0; l < kLanes; ++l) prefetch_l2(base + (kLanes + l) * ld_bytes + b);
      const VQ x0 = load_q(p.xq + c);
      if constexpr (u4) {
        const VQ x1 = load_q(p.xq + c + kVQ);
        for (int l = 0; l < kLanes; ++l) {
          const VQ wq = load_q(row(l) + b);
          acc[l] = dot_u8s8(dot_u8s8(acc[l], low_nibbles(wq), x0), high_nibbles(wq), x1);
        }
      } else {
        for (int l = 0; l < kLanes; ++l) {
          VQ wq = load_q(row(l) + b);
          if constexpr (WT == DType::i8) wq = flip_bytes(wq);
          acc[l] = dot_u8s8(acc[l], wq, x0);
        }
      }
    }
    const VI sums =
        add_i(seed_at(op + g * p.op_stride + v * kLanes, p.sumx[g]), reduce_lanes_i(acc));
    total = fma(to_f32(sums), load(sp + g * kNB + v * kLanes), total);
  }
  store_lanes(p.y + r0, mul(total, set1(p.sx[0])), p.N - r0);
}

template <DType WT>
void rowdot_block(const Plan& p, const float* sp, const int32_t* op, int64_t n0, int64_t pf_end) {
  for (int v = 0; v < kNV; ++v) {
    const int64_t r0 = n0 + v * kLanes;
    if (r0 + kLanes <= p.N)
      rowdot_vector<WT, false>(p, sp, op, r0, v, r0 + 2 * kLanes <= pf_end);
    else if (r0 < p.N)
      rowdot_vector<WT, true>(p, sp, op, r0, v, false);
  }
}

template <int mr>
void micro_rows(const Plan& p, const uint8_t* bp, const float* sp, const int32_t* op, int64_t m0,
                int64_t n0, int rows) {
  if (rows == mr)
    micro_tile<mr>(p, bp, sp, op, m0, n0);
  else if constexpr (mr > 1)
    micro_rows<mr - 1>(p, bp, sp, op, m0, n0, rows);
}

}  // namespace

bool gemm_int8_kernel(const float* x, int64_t M, int64_t ldx, const WeightView& w, float* y,
                      int64_t ldy) {
  const bool u4 = w.dtype == DType::u4;
  const int64_t K = w.cols, chunk = u4 ? 2 * kVQ : kVQ;
  const int64_t group = std::min(w.group, K);
  // Whole VQs per row, and groups of whole quads (INT4: of whole 8-column blocks).
  if (w.kn || w.col0 % std::max<int64_t>(1, w.group) != 0 || K % chunk != 0 ||
      group % (u4 ? 8 : 4) != 0 || K % group != 0)
    return false;
  Plan p;
  p.w = &w, p.M = M, p.N = w.rows, p.K = K, p.group = group, p.G = K / group;
  p.y = y, p.ldy = ldy;
  p.offset = u4 ? 8 : 128;
  p.op_stride = w.qzero ? kNB : 0;
  const bool rowdot = rowdot_applies(u4, M, group);
  // The calling thread's scratch (workers write through these pointers, not their own copies).
  thread_local std::vector<int8_t> xq_buf;
  thread_local std::vector<float> sx_buf;
  thread_local std::vector<int32_t> sumx_buf;
  xq_buf.resize(size_t(M * K)), sx_buf.resize(size_t(M)), sumx_buf.resize(size_t(M * p.G));
  int8_t* const xq = xq_buf.data();
  float* const sx = sx_buf.data();
  int32_t* const sumx = sumx_buf.data();
  // The activation panel: quantized, in the packed column order, with per-group code sums.
  parallel_for(M, 4, [&](int64_t m0, int64_t m1, int) {
    std::vector<int8_t> row(static_cast<size_t>(K));
    for (int64_t m = m0; m < m1; ++m) {
      sx[m] = quantize_int8_row(x + m * ldx, K, row.data());
      int8_t* dst = xq + m * K;
      if (u4 && rowdot) {  // per load: the even columns, then the odd ones
        for (int64_t b = 0; b < K; b += 2 * kVQ)
          for (int j = 0; j < kVQ; ++j) {
            dst[b + j] = row[size_t(b + 2 * j)];
            dst[b + kVQ + j] = row[size_t(b + 2 * j + 1)];
          }
      } else if (u4) {
        for (int64_t b = 0; b < K; b += 8)
          for (int j = 0; j < 4; ++j) {
            dst[b + j] = row[size_t(b + 2 * j)];
            dst[b + 4 + j] = row[size_t(b + 2 * j + 1)];
          }
      } else {
        std::copy(row.begin(), row.end(), dst);
      }
      for (int64_t g = 0; g < p.G; ++g) {
        int32_t s = 0;
        for (int64_t k = g * group; k < (g + 1) * group; ++k) s += row[size_t(k)];
        sumx[m * p.G + g] = s;
      }
    }
  });
  p.xq = xq, p.sx = sx, p.sumx = sumx;
  const int64_t blocks = (p.N + kNB - 1) / kNB;
  // Decode streams the weights: runs of blocks per task, so the rows each pass prefetches are the
  // ones its own core reads next (grain 1 interleaved the threads' blocks and sent half the
  // prefetches to the other core's L2). Measured: docs/checkpoints.md (W8A8 / W4A8 table).
  const int64_t grain = M <= MR ? std::clamp<int64_t>(blocks / (4 * num_threads()), 1, 16) : 1;
  parallel_for(blocks, grain, [&](int64_t b0, int64_t b1, int) {
    const int64_t pf_end = std::min(p.N, b1 * kNB);
    thread_local std::vector<uint8_t> bp;
    thread_local std::vector<float> sp;
    thread_local std::vector<int32_t> op;
    sp.resize(size_t(p.G * kNB)), op.resize(size_t(p.G * kNB));
    if (M > MR) bp.resize(size_t(K * kNB));
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n0 = b * kNB;
      pack_scales(p, n0, sp.data());
      pack_offsets(p, n0, op.data());
      if (rowdot) {
        switch (w.dtype) {
          case DType::u4:
            rowdot_block<DType::u4>(p, sp.data(), op.data(), n0, pf_end);
            break;
          case DType::u8:
            rowdot_block<DType::u8>(p, sp.data(), op.data(), n0, pf_end);
            break;
          default:
            rowdot_block<DType::i8>(p, sp.data(), op.data(), n0, pf_end);
            break;
        }
        continue;
      }
      if (M <= MR) {
        switch (w.dtype) {
          case DType::u4:
            fused_rows<DType::u4, MR>(p, sp.data(), op.data(), n0, pf_end, int(M));
            break;
          case DType::u8:
            fused_rows<DType::u8, MR>(p, sp.data(), op.data(), n0, pf_end, int(M));
            break;
          default:
            fused_rows<DType::i8, MR>(p, sp.data(), op.data(), n0, pf_end, int(M));
            break;
        }
        continue;
      }
      switch (w.dtype) {
        case DType::u4:
          pack_block<DType::u4>(p, n0, pf_end, bp.data());
          break;
        case DType::u8:
          pack_block<DType::u8>(p, n0, pf_end, bp.data());
          break;
        default:
          pack_block<DType::i8>(p, n0, pf_end, bp.data());
          break;
      }
      for (int64_t mc = 0; mc < M; mc += kMChunk)
        for (int64_t m = mc; m < std::min(M, mc + kMChunk); m += MR)
          micro_rows<MR>(p, bp.data(), sp.data(), op.data(), m, n0,
                         int(std::min<int64_t>(MR, M - m)));
    }
  });
  return true;
}

}  // namespace dsinfer::DSINFER_ISA_NS
