// Lightning indexer with fused top-k, written in the tile layer (compiled once per ISA).
//
// Per work item (a group of G queries x a key range): the queries' heads are packed once into
// column strips Q^T[strip][d][NR] (f32; fp8 codes decoded exactly; heads padded to whole
// vectors so each vector belongs to one query). Keys are converted a block of NB at a time into
// f32 rows. For every strip and every MR keys, a register tile S[MR keys][NR heads] = K . Q^T is
// accumulated over d = 0..127 (keys broadcast, heads streamed), and its epilogue folds
// ReLU and the head weights into per-(query, key) vector partial sums. At the end of the block
// the partial sums are reduced, multiplied by k_scale and pushed into the query's running top-k.
//
// The bf16-pair form (fp8 queries and keys, where vdpbf16ps is native and preferred): e4m3
// values are exact in bf16, so keys and queries are converted to bf16 pairs (d = 2p, 2p + 1) and
// the tile accumulates dot_pairs over the 64 pairs, two products per lane and instruction. The
// products are the same numbers as in the f32 form; only the fixed summation order differs, and
// it depends on nothing but d, so a query's scores stay independent of the batch.
#include <algorithm>
#include <vector>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "kernels/indexer.h"
#include "kernels/topk_select.h"
#include "tile/mma.h"
#include "tile/tile.h"

namespace dsinfer::DSINFER_ISA_NS {

using namespace tile;

namespace {

// Register tile MR keys x NV head vectors; a block of NB keys (f32 rows) stays in L1 with one
// strip. AVX-512: 6 x 64 heads (measured against 12 x 32: half the key broadcasts per product,
// indexer decode 49-55% -> 56% of the bf16 peak in the pair form, prefill unchanged).
#if defined(__AVX512F__)
constexpr int kMR = 6, kNV = 4, kNB = 60;
#elif defined(__AVX2__)
constexpr int kMR = 6, kNV = 2, kNB = 30;
#else
constexpr int kMR = 4, kNV = 2, kNB = 20;
#endif
constexpr int kNR = kNV * kLanes;  // heads per column strip
constexpr int kD = kIndexerDim;
constexpr int kDP = kD / 2;  // bf16 pairs per row

struct Scratch {
  std::vector<float> qpanel;     // [n_strips][128][kNR]
  std::vector<float> wcol;       // [n_strips * kNR]
  std::vector<float> kblock;     // [kNB][128]
  std::vector<uint32_t> qpairs;  // pair form: [n_strips][64][kNR] (d = 2p, 2p + 1 per lane)
  std::vector<uint16_t> kpairs;  // pair form: [kNB][128] bf16
  std::vector<float> part;       // [G][kNB][kLanes] partial sums
  std::vector<float> scores;     // [G][kNB]
  std::vector<topk::RunningTopK> sel;
  std::vector<uint64_t> bits;  // emit_by_position's scratch
  std::vector<float> by_pos;
};

// Where fp8 key s's 128 codes are (contiguous or paged); its scale into *scale.
inline const uint8_t* fp8_key(const IndexerKeys& keys, int64_t s, float* scale) {
  if (keys.k) {
    *scale = keys.k_scale[s];
    return static_cast<const uint8_t*>(keys.k) + s * kD;
  }
  const uint8_t* src = indexer_page_token(keys.pages, keys.block_table, s);
  __builtin_memcpy(scale, src + kD, 4);
  return src;
}

// Row s of the keys as f32 (fp8 decoded exactly) into dst[128]; returns its scale.
inline float load_key(const IndexerKeys& keys, int64_t s, float* dst) {
  if (keys.dtype == DType::f32) {
    const float* src = static_cast<const float*>(keys.k) + s * kD;
    for (int j = 0; j < kD; j += kLanes) store(dst + j, load(src + j));
    return 1.0f;
  }
  float scale;
  const uint8_t* src = fp8_key(keys, s, &scale);
  for (int j = 0; j < kD; j += kLanes) store(dst + j, load_fp8(src + j));
  return scale;
}

// 128 e4m3 codes as bf16 (exact): by integer ops, or through f32 where a subnormal code is.
inline void fp8_row_to_bf16(const uint8_t* src, uint16_t* dst) {
  for (int j = 0; j < kD; j += 2 * kLanes) {
    VB b;
    if (fp8_to_bf16_pow2(src + j, 120, b) == 0) {
      store_pairs(dst + j, b);
    } else {
      store_bf16(dst + j, load_fp8(src + j));
      store_bf16(dst + j + kLanes, load_fp8(src + j + kLanes));
    }
  }
}

// Row s of the fp8 keys as bf16 into dst[128]; returns its scale.
inline float load_key_pairs(const IndexerKeys& keys, int64_t s, uint16_t* dst) {
  float scale;
  fp8_row_to_bf16(fp8_key(keys, s, &scale), dst);
  return scale;
}

// S[MR][NV] = kb[MR][128] . qp[128][kNR]
inline void score_tile(const float* kb, const float* qp, VF (&acc)[kMR][kNV]) {
  clear(acc);
  mma_outer(acc, kD, kb, kD, 1, qp, kNR);
}
// The same in the pair form: kb[MR][128] bf16, qp[64][kNR] bf16 pairs.
inline void score_tile(const uint16_t* kb, const uint32_t* qp, VF (&acc)[kMR][kNV]) {
  clear(acc);
  mma_pairs(acc, kDP, kb, kD, 2, reinterpret_cast<const uint16_t*>(qp), 2 * kNR);
}

struct Plan {
  int64_t T;
  int HI, HIp, G, n_strips;
  int64_t n_groups, n_chunks, chunk_len;
  bool pairs;  // the bf16-pair form
  // Pair form with many query groups (prefill): every key converted to bf16 once for the call,
  // [n + kNB][128] with zero rows past the keys, and the keys' scales.
  const uint16_t* kconv = nullptr;
  const float* kconv_scale = nullptr;
};

// Scores keys [s0, s1) for queries [t0, t0 + g) and pushes them into sel[0..g).
void run_item(const IndexerQueries& q, const IndexerKeys& keys, const int64_t* n_valid,
              const Plan& p, int64_t t0, int g, int64_t s0, int64_t s1, Scratch& sc) {
  const int HI = q.n_heads, HIp = p.HIp;
  const int ncols = g * HIp, n_strips = (ncols + kNR - 1) / kNR;
  // Pack Q^T strips and the column weights.
  if (p.pairs)
    sc.qpairs.assign(size_t(n_strips) * kDP * kNR, 0u);
  else
    sc.qpanel.assign(size_t(n_strips) * kD * kNR, 0.0f);
  sc.wcol.assign(size_t(n_strips) * kNR, 0.0f);
  alignas(64) float row[kD];
  alignas(64) uint32_t row_pairs[kDP];
  for (int j = 0; j < g; ++j)
    for (int h = 0; h < HI; ++h) {
      const int64_t qi = ((t0 + j) * HI + h) * kD;
      const int c = j * HIp + h, strip = c / kNR, lane = c % kNR;
      sc.wcol[size_t(c)] = q.w[(t0 + j) * HI + h];
      if (p.pairs) {
        fp8_row_to_bf16(static_cast<const uint8_t*>(q.q) + qi,
                        reinterpret_cast<uint16_t*>(row_pairs));
        uint32_t* dst = sc.qpairs.data() + size_t(strip) * kDP * kNR + lane;
        for (int d = 0; d < kDP; ++d) dst[d * kNR] = row_pairs[d];
        continue;
      }
      if (q.dtype == DType::f32) {
        for (int d = 0; d < kD; d += kLanes)
          store(row + d, load(static_cast<const float*>(q.q) + qi + d));
      } else {
        for (int d = 0; d < kD; d += kLanes)
          store(row + d, load_fp8(static_cast<const uint8_t*>(q.q) + qi + d));
      }
      float* dst = sc.qpanel.data() + size_t(strip) * kD * kNR + lane;
      for (int d = 0; d < kD; ++d) dst[d * kNR] = row[d];
    }
  int64_t lim[64];
  for (int j = 0; j < g; ++j) lim[j] = n_valid ? n_valid[t0 + j] : keys.n_keys;
  if (p.pairs)
    sc.kpairs.resize(size_t(kNB) * kD);
  else
    sc.kblock.resize(size_t(kNB) * kD);
  sc.part.resize(size_t(g) * kNB * kLanes);
  sc.scores.resize(size_t(g) * kNB);
  float kscale_block[kNB];
  for (int64_t b0 = s0; b0 < s1; b0 += kNB) {
    const int nb = int(std::min<int64_t>(kNB, s1 - b0));
    const float* kscale = kscale_block;
    const uint16_t* kpairs = sc.kpairs.data();
    if (p.kconv) {  // converted once for the call
      kscale = p.kconv_scale + b0;
      kpairs = p.kconv + b0 * kD;
    } else if (p.pairs) {
      for (int i = 0; i < nb; ++i)
        kscale_block[i] = load_key_pairs(keys, b0 + i, sc.kpairs.data() + i * kD);
      std::fill(sc.kpairs.begin() + nb * kD, sc.kpairs.end(), uint16_t(0));
    } else {
      for (int i = 0; i < nb; ++i)
        kscale_block[i] = load_key(keys, b0 + i, sc.kblock.data() + i * kD);
      for (int i = nb; i < kNB; ++i)
        for (int d = 0; d < kD; d += kLanes) store(sc.kblock.data() + i * kD + d, zero());
    }
    // One query whose heads fill one strip (HI = 64, the model's): each key's partial sums are
    // made in registers and stored once, the same chain of FMAs from 0 over v as the general
    // epilogue runs through memory (there, 4 dependent load-FMA-store steps on one address).
    const bool one_strip = g == 1 && n_strips == 1;
    if (!one_strip) std::fill(sc.part.begin(), sc.part.end(), 0.0f);
    const int nbr = (nb + kMR - 1) / kMR * kMR;
    for (int strip = 0; strip < n_strips; ++strip) {
      VF wv[kNV];
      int qj[kNV];
      for (int v = 0; v < kNV; ++v) {
        const int c0 = strip * kNR + v * kLanes;
        wv[v] = load(sc.wcol.data() + c0);
        qj[v] = std::min(c0 / HIp, g - 1);  // padding columns (w = 0) of the last strip
      }
      for (int i0 = 0; i0 < nbr; i0 += kMR) {
        VF acc[kMR][kNV];
        if (p.pairs)
          score_tile(kpairs + i0 * kD, sc.qpairs.data() + size_t(strip) * kDP * kNR, acc);
        else
          score_tile(sc.kblock.data() + i0 * kD, sc.qpanel.data() + size_t(strip) * kD * kNR, acc);
        if (one_strip) {
#pragma GCC unroll 16
          for (int i = 0; i < kMR; ++i) {
            VF sum = zero();
#pragma GCC unroll 16
            for (int v = 0; v < kNV; ++v) sum = fma(wv[v], max(acc[i][v], zero()), sum);
            store(sc.part.data() + size_t(i0 + i) * kLanes, sum);
          }
          continue;
        }
#pragma GCC unroll 16
        for (int i = 0; i < kMR; ++i)
#pragma GCC unroll 16
          for (int v = 0; v < kNV; ++v) {
            float* pp = sc.part.data() + (size_t(qj[v]) * kNB + i0 + i) * kLanes;
            store(pp, fma(wv[v], max(acc[i][v], zero()), load(pp)));
          }
      }
    }
    for (int j = 0; j < g; ++j) {
      const int nvalid = int(std::clamp<int64_t>(lim[j] - b0, 0, nb));
      if (nvalid == 0) continue;
      float* sj = sc.scores.data() + size_t(j) * kNB;
      for (int i = 0; i < nvalid; ++i) {
        const float sum = reduce_add(load(sc.part.data() + (size_t(j) * kNB + i) * kLanes));
        sj[i] = keys.dtype == DType::f32 ? sum : kscale[i] * sum;
      }
      sc.sel[size_t(j)].push_scores(sj, b0, nvalid);
    }
  }
}

}  // namespace

void indexer_topk_kernel(const IndexerQueries& q, const IndexerKeys& keys, const int64_t* n_valid,
                         int k, int32_t* idx_out, float* score_out, TopKOrder order) {
  Plan p;
  p.T = q.n_tokens;
  p.HI = q.n_heads;
  p.HIp = (p.HI + kLanes - 1) / kLanes * kLanes;
  p.pairs = kNativeBf16Dot && bf16_dot_preferred() && q.dtype == DType::fp8_e4m3;
  p.G = int(std::max<int64_t>(1, std::min<int64_t>(p.T, 64 / p.HIp)));
  p.n_groups = (p.T + p.G - 1) / p.G;
  const int threads = num_threads();
  int64_t max_n = 0;
  for (int64_t t = 0; t < p.T; ++t) max_n = std::max(max_n, n_valid ? n_valid[t] : keys.n_keys);
  // Few query groups (decode): split the keys into chunks so every thread has work.
  p.n_chunks = 1;
  if (p.n_groups < 2 * threads) {
    const int64_t want = (4 * threads + p.n_groups - 1) / p.n_groups;
    const int64_t min_len = std::max<int64_t>(4096, 2 * int64_t(k));
    p.n_chunks = std::clamp<int64_t>(max_n / min_len, 1, want);
  }
  p.chunk_len = (max_n + p.n_chunks - 1) / p.n_chunks;
  p.chunk_len = std::max<int64_t>(kNB, (p.chunk_len + kNB - 1) / kNB * kNB);
  p.n_chunks = std::max<int64_t>(1, (max_n + p.chunk_len - 1) / p.chunk_len);

  // Many query groups read every key several times: convert the keys once (in parallel).
  thread_local std::vector<uint16_t> kconv;
  thread_local std::vector<float> kconv_scale;
  if (p.pairs && p.n_groups > 1) {
    if (kconv.size() < size_t(max_n + kNB) * kD) kconv.resize(size_t(max_n + kNB) * kD);
    if (kconv_scale.size() < size_t(max_n + kNB)) kconv_scale.resize(size_t(max_n + kNB));
    // (Pointers, not the thread_local vectors, into the workers: they have their own.)
    uint16_t* kc = kconv.data();
    float* kcs = kconv_scale.data();
    parallel_for(max_n + kNB, 256, [&](int64_t s0, int64_t s1, int) {
      for (int64_t s = s0; s < s1; ++s) {
        if (s < max_n) {
          kcs[s] = load_key_pairs(keys, s, kc + s * kD);
        } else {
          std::fill(kc + s * kD, kc + (s + 1) * kD, uint16_t(0));
          kcs[s] = 0.0f;
        }
      }
    });
    p.kconv = kc;
    p.kconv_scale = kcs;
  }
  const bool by_score = order == TopKOrder::by_score;
  auto emit = [&](uint64_t* c, size_t n, int64_t t, Scratch& sc) {
    int32_t* idx = idx_out + t * k;
    float* score = score_out ? score_out + t * k : nullptr;
    if (by_score)
      topk::emit_sorted(c, n, k, idx, score);
    else
      topk::emit_by_position(c, n, k, idx, score, sc.bits, sc.by_pos);
  };
  std::vector<Scratch> scratch(size_t(threads) + 1);
  std::vector<uint64_t> partial;
  std::vector<int32_t> partial_n;
  if (p.n_chunks > 1) {
    partial.resize(size_t(p.T * p.n_chunks) * size_t(k));
    partial_n.assign(size_t(p.T * p.n_chunks), 0);
  }
  const int64_t n_items = p.n_groups * p.n_chunks;
  parallel_for(n_items, 1, [&](int64_t i0, int64_t i1, int worker) {
    Scratch& sc = scratch[size_t(worker)];
    if (sc.sel.size() < size_t(p.G)) sc.sel.resize(size_t(p.G));
    for (int64_t item = i0; item < i1; ++item) {
      const int64_t grp = item / p.n_chunks, chunk = item % p.n_chunks;
      const int64_t t0 = grp * p.G;
      const int g = int(std::min<int64_t>(p.G, p.T - t0));
      int64_t gmax = 0;
      for (int j = 0; j < g; ++j) gmax = std::max(gmax, n_valid ? n_valid[t0 + j] : keys.n_keys);
      const int64_t s0 = chunk * p.chunk_len, s1 = std::min(gmax, s0 + p.chunk_len);
      for (int j = 0; j < g; ++j) sc.sel[size_t(j)].reset(k, size_t(4) * k + 256);
      if (s1 > s0) run_item(q, keys, n_valid, p, t0, g, s0, s1, sc);
      for (int j = 0; j < g; ++j) {
        topk::RunningTopK& sel = sc.sel[size_t(j)];
        sel.finish();
        const int64_t t = t0 + j;
        if (p.n_chunks == 1) {
          emit(sel.data(), sel.size(), t, sc);
        } else {
          const size_t slot = size_t(t * p.n_chunks + chunk);
          std::copy(sel.data(), sel.data() + sel.size(), partial.data() + slot * size_t(k));
          partial_n[slot] = int32_t(sel.size());
        }
      }
    }
  });
  if (p.n_chunks == 1) return;
  parallel_for(p.T, 1, [&](int64_t t0, int64_t t1, int worker) {
    std::vector<uint64_t> all;
    for (int64_t t = t0; t < t1; ++t) {
      all.clear();
      for (int64_t c = 0; c < p.n_chunks; ++c) {
        const size_t slot = size_t(t * p.n_chunks + c);
        const uint64_t* src = partial.data() + slot * size_t(k);
        all.insert(all.end(), src, src + partial_n[slot]);
      }
      const size_t n = topk::keep_top(all.data(), all.size(), size_t(k));
      emit(all.data(), n, t, scratch[size_t(worker)]);
    }
  });
}

}  // namespace dsinfer::DSINFER_ISA_NS
