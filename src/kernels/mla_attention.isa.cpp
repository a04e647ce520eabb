// Absorbed MLA flash attention (sparse top-k and dense causal), compiled once per ISA.
//
// Work unit = (query t, key split s, head-group range). For each block of kBK keys the unit
// gathers the key rows [c | k_pe] once, converted to f32 (kf; 8-bit latent codes times their
// block scales), and reuses them for every head
// group of the unit (heads form the M dimension; V is the first C columns of the same rows):
//   S^T[key, heads] = kf[key, :] . Qp[:, heads]      keys broadcast, heads in vector lanes
//   online softmax per head, vectorized across the heads (no horizontal reductions)
//   O^T[v, heads]   = O^T * alpha + kf[key, v] . P[key, heads]
// Qp (the scaled query, [group][d][kHG]) and O^T ([group][v][kHG]) are packed per unit and stay
// in L2; the micro-kernels keep their accumulators in registers. Invalid (-1) indices are
// dropped up front, so no masking is needed inside the blocks.
//
// Batch invariance: a query's key splits depend only on its own key count (split_count), and
// its splits are merged by log-sum-exp weights in split order, whether the splits ran as
// parallel units (few queries: decode) or one after another inside one unit (many queries).
// So a query's output is bitwise the same whatever else is in the call and however many
// threads run it; and a dense query equals a sparse one whose index list is 0 .. n-1.
//
// The bf16-pair form (a bf16 cache, where vdpbf16ps is native and preferred; --precision bf16):
// the key rows stay bf16 and the scaled query is rounded to bf16, so S^T takes dot_pairs over
// pairs of dimensions; P is rounded to bf16 (as FlashMLA does; the row sums l stay f32) and
// O^T += V^T . P takes dot_pairs over pairs of keys, V's rows zipped two keys at a time. The
// form depends only on the query's cache dtype, so batch invariance holds as above.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "kernels/mla_attention.h"
#include "tile/mma.h"
#include "tile/tile.h"
#include "tile/tile_ops.h"

namespace dsinfer::DSINFER_ISA_NS {

using namespace tile;

namespace {

// Micro-tiles: 6 keys (scores) or 4 value columns (P.V) x kHV head vectors. AVX-512 takes 64
// heads per group (measured against 32 heads x 12 keys / 8 columns: half the broadcasts per
// product; sparse decode 54% -> 64% of the bf16 peak in the pair form, the f32 form 35% -> 40%).
constexpr int kHV = kLanes == 16 ? 4 : 2;  // head vectors per micro-tile
constexpr int kHG = kHV * kLanes;          // heads per head group
constexpr int kRK = 6;                     // keys per score micro-tile
constexpr int kRV = 4;                     // value columns per PV micro-tile
constexpr int kBK = 24;                    // keys per block (softmax step)
constexpr int64_t kSplitKeys = 512;  // keys per split (measured: 256 was 4-7% slower at 1-2K keys)
constexpr int kMaxSplits = 16;       // beyond 8K keys, splits grow instead of multiplying
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct Workspace {
  std::vector<float> qp, ot, kf, st, m, l;
  // Pair form: qp2 [group][DQP][kHG] query pairs, kb [kBK][2 DQP] bf16 key rows, vp
  // [kBK / 2][C] value pairs of two keys, pp [kBK / 2][kHG] probability pairs.
  std::vector<uint32_t> qp2, vp, pp;
  std::vector<uint16_t> kb;
  std::vector<float> qrows;  // kLanes heads' scaled query rows before their transpose
};

struct Plan {
  const MlaAttnArgs* a;
  int H, C, R, DQ, G;
  int DQP;                           // pairs per key row (DQ rounded up to even, halved)
  bool pairs = false;                // the pair form is allowed (native and preferred bf16 dot)
  const int32_t* keys = nullptr;     // sparse: compacted valid indices
  const int64_t* key_off = nullptr;  // sparse: [T + 1] offsets into keys
  const int32_t* positions = nullptr;
  // Parallel splits (few queries): units are (query, split, head-group range), split_off[t] is
  // the first global split of query t, and splits of queries with more than one write their
  // partial results to part_o [split][H][C] / part_lse [split][H].
  bool parallel_splits = false;
  int HS = 1;
  const int64_t* split_off = nullptr;
  float* part_o = nullptr;
  float* part_lse = nullptr;
};

// Key splits of a query with n keys: a function of n alone (batch invariance).
int split_count(int64_t n) {
  return int(std::clamp<int64_t>((n + kSplitKeys - 1) / kSplitKeys, 1, kMaxSplits));
}

const MlaCacheView& cache_of(const MlaAttnArgs& a, int64_t t) {
  return a.caches[a.cache_of_query ? a.cache_of_query[t] : 0];
}

int64_t key_count(const Plan& p, int64_t t) {
  if (p.keys) return p.key_off[t + 1] - p.key_off[t];
  const int64_t n = cache_of(*p.a, t).n_tokens;
  return std::max<int64_t>(0, std::min<int64_t>(int64_t(p.positions[t]) + 1, n));
}

// dst[0, n) = src[0, n) as f32 (f32 or bf16 values).
inline void row_to_f32(float* dst, const void* src, DType dt, int n) {
  int j = 0;
  if (dt == DType::f32) {
    const float* s = static_cast<const float*>(src);
    for (; j + kLanes <= n; j += kLanes) store(dst + j, load(s + j));
    if (j < n) store_n(dst + j, load_n(s + j, n - j), n - j);
  } else {
    const uint16_t* s = static_cast<const uint16_t*>(src);
    for (; j + kLanes <= n; j += kLanes) store(dst + j, load_bf16(s + j));
    if (j < n) store_n(dst + j, load_bf16_n(s + j, n - j), n - j);
  }
}

// An 8-bit latent row (n codes, then one f32 scale per kLatentScaleBlock) as f32: code * scale,
// exactly as decode_latent_row computes it.
template <typename Load, typename LoadN>
inline void coded_row_to_f32(float* dst, const uint8_t* codes, int n, Load ld, LoadN ld_n) {
  for (int b0 = 0; b0 < n; b0 += int(kLatentScaleBlock)) {
    float sc;
    std::memcpy(&sc, codes + n + 4 * (b0 / kLatentScaleBlock), 4);
    const VF scale = set1(sc);
    const int b1 = std::min(n, b0 + int(kLatentScaleBlock));
    int j = b0;
    for (; j + kLanes <= b1; j += kLanes) store(dst + j, mul(ld(codes + j), scale));
    if (j < b1) store_n(dst + j, mul(ld_n(codes + j, b1 - j), scale), b1 - j);
  }
}

inline void latent_to_f32(float* dst, const void* src, DType dt, int n) {
  const uint8_t* codes = static_cast<const uint8_t*>(src);
  if (dt == DType::fp8_e4m3)
    coded_row_to_f32(
        dst, codes, n, [](const uint8_t* p) { return load_fp8(p); },
        [](const uint8_t* p, int m) { return load_fp8_n(p, m); });
  else if (dt == DType::i8)
    coded_row_to_f32(
        dst, codes, n, [](const uint8_t* p) { return load_i8(reinterpret_cast<const int8_t*>(p)); },
        [](const uint8_t* p, int m) { return load_i8_n(reinterpret_cast<const int8_t*>(p), m); });
  else
    row_to_f32(dst, src, dt, n);
}

inline const void* cache_row(const void* base, DType dt, int64_t row, int64_t ld) {
  return static_cast<const char*>(base) + row * ld * int64_t(dtype_size(dt));
}

// Key row s on its way into L1 (the first block), or into L2 only (the next block: the block in
// hand streams the head groups' packed queries and outputs, ~200 KiB each, through L1, which
// evicted rows fetched into L1 before their turn. Measured, sparse decode at 16K on mini, pair
// form, 2 threads, 5 runs each alternating: attention 6.9-7.2 ms per token against 7.5-8.2).
inline void prefetch_row(const MlaCacheView& cv, int64_t s, int C, int R, bool into_l1) {
  const int64_t row = cv.row(s);
  auto fetch = [into_l1](const char* p) { into_l1 ? prefetch(p) : prefetch_l2(p); };
  const char* pc = static_cast<const char*>(cache_row(cv.c, cv.c_dtype, row, cv.ld_c));
  for (int64_t b = 0; b < latent_row_bytes(cv.c_dtype, C); b += 64) fetch(pc + b);
  if (R > 0) {
    const char* pp = static_cast<const char*>(cache_row(cv.k_pe, cv.pe_dtype, row, cv.ld_pe));
    for (size_t b = 0; b < R * dtype_size(cv.pe_dtype); b += 64) fetch(pp + b);
  }
}

// st[r][heads] = kf[r] . qg[:, heads] for RK key rows (stride DQ); qg is [DQ][kHG].
template <int RK>
inline void score_tile(const float* qg, const float* kf, int DQ, float* st) {
  VF acc[RK][kHV];
  clear(acc);
  mma_outer(acc, DQ, kf, DQ, 1, qg, kHG);
#pragma GCC unroll 16
  for (int r = 0; r < RK; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < kHV; ++v) store(st + r * kHG + v * kLanes, acc[r][v]);
}

// og[v0 + r][heads] = og * alpha + sum_i kf[i][v0 + r] * st[i][heads], RV value columns.
template <int RV>
inline void pv_tile(float* og, const float* st, const float* kf, int DQ, int n, const VF* alpha,
                    int v0) {
  VF acc[RV][kHV];
#pragma GCC unroll 16
  for (int r = 0; r < RV; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < kHV; ++v) acc[r][v] = mul(load(og + (v0 + r) * kHG + v * kLanes), alpha[v]);
  for (int i = 0; i < n; ++i) {
    VF p[kHV];
#pragma GCC unroll 4
    for (int v = 0; v < kHV; ++v) p[v] = load(st + i * kHG + v * kLanes);
    const float* kr = kf + int64_t(i) * DQ + v0;
#pragma GCC unroll 16
    for (int r = 0; r < RV; ++r) {
      const VF vv = set1(kr[r]);
#pragma GCC unroll 4
      for (int v = 0; v < kHV; ++v) acc[r][v] = fma(vv, p[v], acc[r][v]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < RV; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < kHV; ++v) store(og + (v0 + r) * kHG + v * kLanes, acc[r][v]);
}

// Online-softmax step of head group g over the n scores in st (turned into P in place): the
// running max and sum move on; alpha gets the factor by which O^T is rescaled.
inline void softmax_step(Workspace& w, int g, int n, VF* alpha) {
  float* st = w.st.data();
  float* mg = w.m.data() + g * kHG;
  float* lg = w.l.data() + g * kHG;
  for (int v = 0; v < kHV; ++v) {
    const VF mo = load(mg + v * kLanes);
    VF m = mo;
    for (int k = 0; k < n; ++k) m = max(m, load(st + k * kHG + v * kLanes));
    alpha[v] = simd::exp(sub(mo, m));  // exp(-inf) = 0 on the first block
    VF sum = zero();
    for (int k = 0; k < n; ++k) {
      const VF e = simd::exp(sub(load(st + k * kHG + v * kLanes), m));
      store(st + k * kHG + v * kLanes, e);
      sum = simd::add(sum, e);
    }
    store(lg + v * kLanes, fma(load(lg + v * kLanes), alpha[v], sum));
    store(mg + v * kLanes, m);
  }
}

// One key block of n keys (rows of kf) for head group g: scores, softmax step, PV update.
void block_step(const Plan& p, Workspace& w, int g, int n) {
  const int DQ = p.DQ, C = p.C;
  const float* qg = w.qp.data() + int64_t(g) * DQ * kHG;
  float* og = w.ot.data() + int64_t(g) * C * kHG;
  float* st = w.st.data();
  const float* kf = w.kf.data();
  int i = 0;
  for (; i + kRK <= n; i += kRK) score_tile<kRK>(qg, kf + int64_t(i) * DQ, DQ, st + i * kHG);
  for (; i < n; ++i) score_tile<1>(qg, kf + int64_t(i) * DQ, DQ, st + i * kHG);

  VF alpha[kHV];
  softmax_step(w, g, n, alpha);
  int v0 = 0;
  for (; v0 + kRV <= C; v0 += kRV) pv_tile<kRV>(og, st, kf, DQ, n, alpha, v0);
  for (; v0 < C; ++v0) pv_tile<1>(og, st, kf, DQ, n, alpha, v0);
}

// The pair form of score_tile: kb rows of 2 DQP bf16, qg [DQP][kHG] pairs.
template <int RK>
inline void score_tile_pairs(const uint32_t* qg, const uint16_t* kb, int DQP, float* st) {
  VF acc[RK][kHV];
  clear(acc);
  mma_pairs(acc, DQP, kb, 2 * DQP, 2, reinterpret_cast<const uint16_t*>(qg), 2 * kHG);
#pragma GCC unroll 16
  for (int r = 0; r < RK; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < kHV; ++v) store(st + r * kHG + v * kLanes, acc[r][v]);
}

// The pair form of pv_tile over np key pairs: vp [np][C] value pairs, pp [np][kHG] P pairs.
template <int RV>
inline void pv_tile_pairs(float* og, const uint32_t* pp, const uint32_t* vp, int C, int np,
                          const VF* alpha, int v0) {
  VF acc[RV][kHV];
#pragma GCC unroll 16
  for (int r = 0; r < RV; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < kHV; ++v) acc[r][v] = mul(load(og + (v0 + r) * kHG + v * kLanes), alpha[v]);
  mma_pairs(acc, np, reinterpret_cast<const uint16_t*>(vp + v0), 2, 2 * C,
            reinterpret_cast<const uint16_t*>(pp), 2 * kHG);
#pragma GCC unroll 16
  for (int r = 0; r < RV; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < kHV; ++v) store(og + (v0 + r) * kHG + v * kLanes, acc[r][v]);
}

// block_step in the pair form: the n key rows are in w.kb, their value pairs in w.vp.
void block_step_pairs(const Plan& p, Workspace& w, int g, int n) {
  const int DQP = p.DQP, C = p.C;
  const uint32_t* qg = w.qp2.data() + int64_t(g) * DQP * kHG;
  float* og = w.ot.data() + int64_t(g) * C * kHG;
  float* st = w.st.data();
  const uint16_t* kb = w.kb.data();
  int i = 0;
  for (; i + kRK <= n; i += kRK)
    score_tile_pairs<kRK>(qg, kb + int64_t(i) * 2 * DQP, DQP, st + i * kHG);
  for (; i < n; ++i) score_tile_pairs<1>(qg, kb + int64_t(i) * 2 * DQP, DQP, st + i * kHG);
  VF alpha[kHV];
  softmax_step(w, g, n, alpha);
  // P as bf16 pairs of consecutive keys (the partner of an odd last key is 0).
  const int np = (n + 1) / 2;
  for (int k = 0; k < np; ++k)
    for (int v = 0; v < kHV; ++v) {
      const VF lo = load(st + 2 * k * kHG + v * kLanes);
      const VF hi = 2 * k + 1 < n ? load(st + (2 * k + 1) * kHG + v * kLanes) : zero();
      store_pairs(reinterpret_cast<uint16_t*>(w.pp.data() + k * kHG + v * kLanes),
                  bf16_pairs(lo, hi));
    }
  int v0 = 0;
  for (; v0 + kRV <= C; v0 += kRV)
    pv_tile_pairs<kRV>(og, w.pp.data(), w.vp.data(), C, np, alpha, v0);
  for (; v0 < C; ++v0) pv_tile_pairs<1>(og, w.pp.data(), w.vp.data(), C, np, alpha, v0);
}

// Key row s of a bf16 cache into kb[2 DQP] (zero past DQ).
inline void gather_row_bf16(const MlaCacheView& cv, int64_t s, int C, int R, uint16_t* kb) {
  const int64_t row = cv.row(s);
  std::memcpy(kb, cache_row(cv.c, cv.c_dtype, row, cv.ld_c), size_t(C) * 2);
  if (R > 0) std::memcpy(kb + C, cache_row(cv.k_pe, cv.pe_dtype, row, cv.ld_pe), size_t(R) * 2);
  if ((C + R) % 2) kb[C + R] = 0;
}

// vp[k][c] = (kb[2k][c], kb[2k + 1][c]) for the n rows of kb (row n zero when n is odd).
inline void zip_values(const uint16_t* kb, int ldk, int C, int n, uint32_t* vp) {
  for (int k = 0; 2 * k < n; ++k) {
    const uint16_t* a = kb + int64_t(2 * k) * ldk;
    const uint16_t* b = a + ldk;
    const bool odd = 2 * k + 1 == n;
    uint32_t* dst = vp + int64_t(k) * C;
    int c = 0;
    for (; c + 2 * kLanes <= C; c += 2 * kLanes) {
      VB lo, hi;
      zip_pairs(load_pairs(a + c), odd ? VB{} : load_pairs(b + c), lo, hi);
      store_pairs(reinterpret_cast<uint16_t*>(dst + c), lo);
      store_pairs(reinterpret_cast<uint16_t*>(dst + c + kLanes), hi);
    }
    for (; c < C; ++c) dst[c] = uint32_t(a[c]) | (odd ? 0u : uint32_t(b[c]) << 16);
  }
}

// Head h's query times the softmax scale (f32) into row, zero from DQ to pad (and for h >= H).
inline void scaled_query_row(const MlaAttnArgs& a, int64_t t, int h, int H, int DQ, int pad,
                             float* row) {
  int d = 0;
  if (h < H) {
    const float* qh = a.q + (t * H + h) * int64_t(DQ);
    const VF sc = set1(a.scale);
    for (; d + kLanes <= DQ; d += kLanes) store(row + d, mul(load(qh + d), sc));
    if (d < DQ) store_n(row + d, mul(load_n(qh + d, DQ - d), sc), DQ - d);
    d = DQ;
  }
  std::fill(row + d, row + pad, 0.0f);
}

// The scaled queries of head group g as columns, heads in lanes (zero past H): the f32 form
// qg[d * kHG + hl], the pair form qg2[p * kHG + hl] = dimensions (2p, 2p + 1) rounded to bf16
// (an odd last dimension paired with 0). kLanes heads at a time: their rows, then blocks of them
// transposed in registers (tile's column_pairs for the pair form).
void pack_query(const MlaAttnArgs& a, int64_t t, int g, int H, int DQ, bool pairs,
                std::vector<float>& rows, float* qg, uint32_t* qg2) {
  const int ld = (DQ + 2 * kLanes - 1) / (2 * kLanes) * (2 * kLanes);
  if (rows.size() < size_t(kLanes) * ld) rows.resize(size_t(kLanes) * ld);
  for (int hl0 = 0; hl0 < kHG; hl0 += kLanes) {
    for (int i = 0; i < kLanes; ++i)
      scaled_query_row(a, t, g * kHG + hl0 + i, H, DQ, ld, rows.data() + int64_t(i) * ld);
    for (int d0 = 0; d0 < DQ; d0 += 2 * kLanes) {
      if (pairs) {
        VB pr[kLanes];  // dimension pairs d0 / 2 .. d0 / 2 + kLanes - 1 of the kLanes heads
        column_pairs(rows.data() + d0, ld, pr);
        for (int j = 0; j < kLanes && 2 * (d0 / 2 + j) < DQ; ++j)
          store_pairs(reinterpret_cast<uint16_t*>(qg2 + (d0 / 2 + j) * kHG + hl0), pr[j]);
        continue;
      }
      for (int c0 = d0; c0 < std::min(DQ, d0 + 2 * kLanes); c0 += kLanes) {
        VF r[kLanes];
#pragma GCC unroll 16
        for (int i = 0; i < kLanes; ++i) r[i] = load(rows.data() + int64_t(i) * ld + c0);
        transpose(r);
        for (int j = 0; j < kLanes && c0 + j < DQ; ++j)
          store(qg + int64_t(c0 + j) * kHG + hl0, r[j]);
      }
    }
  }
}

// The normalized output of head group g: o_base[h * C + v] = O^T[g][v][hl] / l[h], and
// lse_base[h] = m + log l (zeros and -inf for a head that saw no key); kLanes x kLanes blocks of
// O^T transposed in registers.
void unpack_output(const Workspace& w, int g, int H, int C, float* o_base, float* lse_base) {
  const float* og = w.ot.data() + int64_t(g) * C * kHG;
  for (int hl0 = 0; hl0 < kHG && g * kHG + hl0 < H; hl0 += kLanes) {
    const int h0 = g * kHG + hl0, nh = std::min(kLanes, H - h0);
    float inv[kLanes];
    for (int j = 0; j < nh; ++j) {
      const float L = w.l[h0 + j];
      inv[j] = L > 0.0f ? 1.0f / L : 0.0f;
      lse_base[h0 + j] = L > 0.0f ? w.m[h0 + j] + std::log(L) : kNegInf;
    }
    int v0 = 0;
    for (; v0 + kLanes <= C; v0 += kLanes) {
      VF r[kLanes];
#pragma GCC unroll 16
      for (int i = 0; i < kLanes; ++i) r[i] = load(og + int64_t(v0 + i) * kHG + hl0);
      transpose(r);
      for (int j = 0; j < nh; ++j) {
        float* o = o_base + int64_t(h0 + j) * C + v0;
        store(o, w.l[h0 + j] > 0.0f ? mul(r[j], set1(inv[j])) : zero());
      }
    }
    for (; v0 < C; ++v0)
      for (int j = 0; j < nh; ++j)
        o_base[int64_t(h0 + j) * C + v0] =
            w.l[h0 + j] > 0.0f ? og[int64_t(v0) * kHG + hl0 + j] * inv[j] : 0.0f;
  }
}

// Split s of S of query t for head groups [g0, g1): the normalized output of those heads goes to
// o_base[h * C], its log-sum-exp to lse_base[h].
void run_split(const Plan& p, Workspace& w, int64_t t, int s, int S, int g0, int g1, float* o_base,
               float* lse_base) {
  const MlaAttnArgs& a = *p.a;
  const int H = p.H, C = p.C, R = p.R, DQ = p.DQ;
  const int64_t n = key_count(p, t);
  const int64_t kbeg = n * s / S, kend = n * (s + 1) / S;
  const MlaCacheView& cv = cache_of(a, t);
  const int32_t* keys = p.keys ? p.keys + p.key_off[t] : nullptr;
  auto key_at = [&](int64_t j) -> int64_t { return keys ? keys[j] : j; };
  const bool pairs = p.pairs && cv.c_dtype == DType::bf16 && (R == 0 || cv.pe_dtype == DType::bf16);
  const int DQP = p.DQP;

  // Pack the scaled query of the unit's heads: qp[g][d][hl] (pair form: qp2[g][d / 2][hl]), zero
  // for heads past H.
  for (int g = g0; g < g1; ++g) {
    pack_query(a, t, g, H, DQ, pairs, w.qrows,
               pairs ? nullptr : w.qp.data() + int64_t(g) * DQ * kHG,
               pairs ? w.qp2.data() + int64_t(g) * DQP * kHG : nullptr);
    std::fill(w.ot.begin() + int64_t(g) * C * kHG, w.ot.begin() + int64_t(g + 1) * C * kHG, 0.0f);
    std::fill(w.m.begin() + g * kHG, w.m.begin() + (g + 1) * kHG, kNegInf);
    std::fill(w.l.begin() + g * kHG, w.l.begin() + (g + 1) * kHG, 0.0f);
  }

  for (int64_t j = kbeg; j < kbeg + kBK && j < kend; ++j) prefetch_row(cv, key_at(j), C, R, true);
  for (int64_t kb = kbeg; kb < kend; kb += kBK) {
    const int nb = int(std::min<int64_t>(kBK, kend - kb));
    if (pairs) {
      for (int i = 0; i < nb; ++i)
        gather_row_bf16(cv, key_at(kb + i), C, R, w.kb.data() + int64_t(i) * 2 * DQP);
      zip_values(w.kb.data(), 2 * DQP, C, nb, w.vp.data());
      for (int64_t j = kb + kBK; j < kb + 2 * kBK && j < kend; ++j)
        prefetch_row(cv, key_at(j), C, R, false);
      for (int g = g0; g < g1; ++g) block_step_pairs(p, w, g, nb);
      continue;
    }
    for (int i = 0; i < nb; ++i) {
      const int64_t row = cv.row(key_at(kb + i));
      float* dst = w.kf.data() + int64_t(i) * DQ;
      latent_to_f32(dst, cache_row(cv.c, cv.c_dtype, row, cv.ld_c), cv.c_dtype, C);
      if (R > 0)
        row_to_f32(dst + C, cache_row(cv.k_pe, cv.pe_dtype, row, cv.ld_pe), cv.pe_dtype, R);
    }
    for (int64_t j = kb + kBK; j < kb + 2 * kBK && j < kend; ++j)
      prefetch_row(cv, key_at(j), C, R, false);
    for (int g = g0; g < g1; ++g) block_step(p, w, g, nb);
  }

  for (int g = g0; g < g1; ++g) unpack_output(w, g, H, C, o_base, lse_base);
}

// o_lat / lse of head h of query t from its S partial results (po [S][H][C], plse [S][H]),
// weighted by log-sum-exp and summed in split order.
void merge_head(const Plan& p, int64_t t, int h, int S, const float* po, const float* plse) {
  const int C = p.C, H = p.H;
  float mx = kNegInf;
  for (int s = 0; s < S; ++s) mx = std::max(mx, plse[s * H + h]);
  float* o = p.a->o_lat + (t * H + h) * int64_t(C);
  if (mx == kNegInf) {
    std::fill(o, o + C, 0.0f);
    p.a->lse[t * H + h] = kNegInf;
    return;
  }
  float wgt[kMaxSplits];
  float L = 0.0f;
  for (int s = 0; s < S; ++s) L += (wgt[s] = std::exp(plse[s * H + h] - mx));
  for (int s = 0; s < S; ++s) wgt[s] /= L;
  // Split by split, so the loop over v is contiguous (vectorized).
  std::fill(o, o + C, 0.0f);
  for (int s = 0; s < S; ++s) {
    const float* ps = po + (int64_t(s) * H + h) * C;
    const float ws = wgt[s];
    for (int v = 0; v < C; ++v) o[v] += ws * ps[v];
  }
  p.a->lse[t * H + h] = mx + std::log(L);
}

// All splits of query t, one after another, merged (many queries: one unit per query).
void run_query(const Plan& p, Workspace& w, int64_t t) {
  const MlaAttnArgs& a = *p.a;
  const int H = p.H, C = p.C;
  const int S = split_count(key_count(p, t));
  if (S == 1) {
    run_split(p, w, t, 0, 1, 0, p.G, a.o_lat + t * H * int64_t(C), a.lse + t * H);
    return;
  }
  thread_local std::vector<float> po, plse;
  if (po.size() < size_t(S) * H * C) po.resize(size_t(S) * H * C);
  if (plse.size() < size_t(S) * H) plse.resize(size_t(S) * H);
  for (int s = 0; s < S; ++s)
    run_split(p, w, t, s, S, 0, p.G, po.data() + int64_t(s) * H * C, plse.data() + s * H);
  for (int h = 0; h < H; ++h) merge_head(p, t, h, S, po.data(), plse.data());
}

// Unit u of the parallel-splits plan: global split u / HS, head-group range u % HS.
void run_split_unit(const Plan& p, Workspace& w, int64_t u, int64_t T) {
  const MlaAttnArgs& a = *p.a;
  const int H = p.H, C = p.C;
  const int hs = int(u % p.HS);
  const int64_t gs = u / p.HS;
  const int64_t t = std::upper_bound(p.split_off, p.split_off + T + 1, gs) - p.split_off - 1;
  const int s = int(gs - p.split_off[t]), S = int(p.split_off[t + 1] - p.split_off[t]);
  const int g0 = int(int64_t(p.G) * hs / p.HS), g1 = int(int64_t(p.G) * (hs + 1) / p.HS);
  if (g0 == g1) return;
  if (S == 1)
    run_split(p, w, t, 0, 1, g0, g1, a.o_lat + t * H * int64_t(C), a.lse + t * H);
  else
    run_split(p, w, t, s, S, g0, g1, p.part_o + gs * H * int64_t(C), p.part_lse + gs * H);
}

}  // namespace

void mla_attention_kernel(const MlaAttnArgs& a, const int32_t* idx, int k,
                          const int32_t* positions) {
  const int64_t T = a.n_queries;
  Plan p;
  p.a = &a;
  p.H = a.n_heads;
  p.C = a.latent_dim;
  p.R = a.rope_dim;
  p.DQ = p.C + p.R;
  p.DQP = (p.DQ + 1) / 2;
  p.pairs = a.bf16_products && kNativeBf16Dot && bf16_dot_preferred();
  p.G = (p.H + kHG - 1) / kHG;
  p.positions = positions;
  std::vector<int32_t> keys;
  std::vector<int64_t> key_off;
  if (idx) {  // compact the valid indices of every query
    key_off.resize(T + 1);
    keys.reserve(size_t(T) * k);
    for (int64_t t = 0; t < T; ++t) {
      key_off[t] = int64_t(keys.size());
      for (int j = 0; j < k; ++j)
        if (idx[t * k + j] >= 0) keys.push_back(idx[t * k + j]);
    }
    key_off[T] = int64_t(keys.size());
    p.keys = keys.data();
    p.key_off = key_off.data();
  }

  // Few queries (decode): every split of every query (and head-group ranges) is a unit, so all
  // threads have work. Many queries: one unit per query, its splits run in turn.
  const int P = num_threads();
  const int64_t target = 4 * int64_t(P);
  std::vector<int64_t> split_off;
  p.parallel_splits = T < target;
  if (p.parallel_splits) {
    split_off.resize(size_t(T) + 1);
    split_off[0] = 0;
    for (int64_t t = 0; t < T; ++t) split_off[t + 1] = split_off[t] + split_count(key_count(p, t));
    p.split_off = split_off.data();
    const int64_t splits = split_off[T];
    p.HS = int(std::min<int64_t>(p.G, std::max<int64_t>(1, (target + splits - 1) / splits)));
  }
  // Scratch persists per thread across calls (no page faults on every decode step).
  auto grow = [](auto& v, size_t n) {
    if (v.size() < n) v.resize(n);
  };
  thread_local std::vector<float> part_o, part_lse;
  if (p.parallel_splits) {
    grow(part_o, size_t(split_off[T]) * p.H * p.C);
    grow(part_lse, size_t(split_off[T]) * p.H);
    p.part_o = part_o.data();
    p.part_lse = part_lse.data();
  }
  auto workspace = [&]() -> Workspace& {
    thread_local Workspace w;
    grow(w.qp, size_t(p.G) * p.DQ * kHG);
    grow(w.ot, size_t(p.G) * p.C * kHG);
    grow(w.kf, size_t(kBK) * p.DQ + kLanes);
    grow(w.st, size_t(kBK) * kHG);
    grow(w.m, size_t(p.G) * kHG);
    grow(w.l, size_t(p.G) * kHG);
    if (p.pairs) {
      grow(w.qp2, size_t(p.G) * p.DQP * kHG);
      grow(w.kb, size_t(kBK) * 2 * p.DQP);
      grow(w.vp, size_t(kBK / 2) * p.C);
      grow(w.pp, size_t(kBK / 2) * kHG);
    }
    return w;
  };
  if (!p.parallel_splits) {
    parallel_for(T, 1, [&](int64_t t0, int64_t t1, int) {
      Workspace& w = workspace();
      for (int64_t t = t0; t < t1; ++t) run_query(p, w, t);
    });
    return;
  }
  parallel_for(split_off[T] * p.HS, 1, [&](int64_t u0, int64_t u1, int) {
    Workspace& w = workspace();
    for (int64_t u = u0; u < u1; ++u) run_split_unit(p, w, u, T);
  });
  parallel_for(T * p.H, 16, [&](int64_t b, int64_t e, int) {
    for (int64_t th = b; th < e; ++th) {
      const int64_t t = th / p.H;
      const int S = int(split_off[t + 1] - split_off[t]);
      if (S > 1)
        merge_head(p, t, int(th % p.H), S, p.part_o + split_off[t] * p.H * int64_t(p.C),
                   p.part_lse + split_off[t] * p.H);
    }
  });
}

}  // namespace dsinfer::DSINFER_ISA_NS
