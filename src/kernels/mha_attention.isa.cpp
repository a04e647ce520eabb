// Non-absorbed MHA flash attention for one head (see mha_attention.h), compiled once per ISA.
//
// Query blocks of kBQ rows; for each block of kBK keys:
//   S[kBQ, kBK] = scale * Q . Kt[:, keys]        (mma_outer: Q broadcast, key columns in lanes)
//   causal / top-k mask -> -inf; OnlineSoftmax turns S into P and rescales O
//   O[kBQ, dv] += P . V[keys, :]                 (mma_outer: P broadcast, value columns in lanes)
// Keys come in zero-padded blocks and values are copied into one, so tails need no code.
//
// The bf16-pair form (kt2 / v2 given): the queries are rounded to bf16 pairs of dimensions, S
// takes dot_pairs against the keys' pair layout; P is rounded to bf16 (pairs of consecutive keys)
// and O takes dot_pairs against the values zipped two keys at a time. Row by row the same
// arithmetic whatever the block's other queries are, as in the f32 form.
#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/mha_attention.h"
#include "tile/mma.h"
#include "tile/tile_ops.h"

namespace dsinfer::DSINFER_ISA_NS {

using namespace tile;

namespace {

constexpr int kRM = kLanes == 16 ? 8 : 6;  // query rows per micro-tile
constexpr int kNV = 2;                     // vectors of columns per micro-tile
constexpr int kCW = kNV * kLanes;          // columns per micro-tile
constexpr int kBQ = 8 * kRM;               // queries per block (amortizes the block copies)
constexpr int kBK = kMhaKeyBlock;          // keys per block (one mask word)
static_assert(kBK % kCW == 0);
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The n lowest bits set (n <= 64).
inline uint64_t low_bits(int n) {
  return n >= 64 ? ~uint64_t(0) : (uint64_t(1) << n) - 1;
}

struct Workspace {
  std::vector<float> q, o, v;
  std::vector<uint16_t> q2, p2;  // pair form: queries [kBQ][2 dqkp], P [kBQ][kBK] in bf16
};

using ScoreTile = Tile<kBQ, kBK>;

// O[r] *= alpha[r] for the block's nq rows (dvp columns): the online-softmax rescale.
inline void rescale_rows(float* o, int nq, int dvp, const float* alpha) {
  for (int r = 0; r < nq; ++r) {
    const VF al = set1(alpha[r]);
    for (int c = 0; c < dvp; c += kLanes)
      store(o + size_t(r) * dvp + c, mul(load(o + size_t(r) * dvp + c), al));
  }
}

// S *= scale; causal and top-k mask: -inf for the keys past each query and (with a mask) the
// keys it did not select, a vector of lanes at a time from the mask's bits (blocks every query
// fully sees skip this; bit by bit, a third of a 4K DSA prefill's keys made the masking cost ~7%
// of its attention); then the online-softmax step turns S into P and gives each row's rescale
// factor.
void mask_and_softmax(const MhaHeadArgs& a, int64_t q0, int64_t k0, int nk, int nq, int64_t min_pos,
                      ScoreTile& s, OnlineSoftmax<kBQ>& sm, float* alpha) {
  s.rows = nq, s.cols = nk;
  scale(s, a.scale);
  const VF neg_inf = set1(kNegInf);
  if (a.mask || k0 + nk - 1 > min_pos)
    for (int r = 0; r < nq; ++r) {
      const int64_t pos = a.positions[q0 + r];
      const int n_causal = int(std::clamp<int64_t>(pos + 1 - k0, 0, nk));  // keys <= pos
      uint64_t visible = low_bits(n_causal);
      if (a.mask) visible &= a.mask[(q0 + r) * a.ldmask + k0 / kBK];
      const uint64_t keep = visible | ~low_bits(nk);  // past nk: the softmax step ignores them
      if (keep == ~uint64_t(0)) continue;
      for (int j = 0; j < kBK; j += kLanes) {
        const uint32_t bits = uint32_t(keep >> j) & uint32_t(low_bits(kLanes));
        if (bits != uint32_t(low_bits(kLanes)))
          store(&s.v[r][j], select_bits(bits, load(&s.v[r][j]), neg_inf));
      }
    }
  sm.step(s, alpha);
}

// One key block in the pair form: S = scale * Q2 . Kt2, mask, softmax, O = O * alpha + P2 . V2.
void block_pairs(const MhaHeadArgs& a, Workspace& w, int64_t q0, int64_t k0, int nk, int nq,
                 int64_t min_pos, int dqkp, int64_t ldv2, int dvp, ScoreTile& s,
                 OnlineSoftmax<kBQ>& sm, float* alpha) {
  const uint16_t* kt = a.kt2 + (k0 / kBK) * dqkp * 2 * kBK;
  for (int j0 = 0; j0 < kBK; j0 += kCW)
    for (int i0 = 0; i0 < kBQ; i0 += kRM)
      mma_pairs_at<kRM, kNV>(&s.v[i0][j0], kBK, false, dqkp, &w.q2[size_t(i0) * 2 * dqkp], 2 * dqkp,
                             2, kt + 2 * j0, 2 * kBK);
  mask_and_softmax(a, q0, k0, nk, nq, min_pos, s, sm, alpha);
  // P in bf16 (the softmax step zeroed it past nk: an odd last key's partner adds nothing).
  for (int r = 0; r < kBQ; ++r)
    for (int j = 0; j < kBK; j += kLanes) store_bf16(&w.p2[size_t(r) * kBK + j], load(&s.v[r][j]));
  rescale_rows(w.o.data(), nq, dvp, alpha);
  const uint16_t* vb = a.v2 + (k0 / 2) * ldv2;
  for (int j0 = 0; j0 < dvp; j0 += kCW)
    for (int i0 = 0; i0 < kBQ; i0 += kRM)
      mma_pairs_at<kRM, kNV>(&w.o[size_t(i0) * dvp + j0], dvp, true, (nk + 1) / 2,
                             &w.p2[size_t(i0) * kBK], kBK, 2, vb + 2 * j0, ldv2);
}

}  // namespace

void mha_head_kernel(const MhaHeadArgs& a) {
  const int dqk = a.dqk, dv = a.dv;
  const int dvp = (dv + kCW - 1) / kCW * kCW;
  const int64_t ldv = dvp + kLanes;  // the value block's row stride (no L1 set aliasing)
  thread_local Workspace w;
  w.q.resize(size_t(kBQ) * dqk);
  w.o.resize(size_t(kBQ) * dvp);
  const bool pairs = a.kt2 != nullptr;
  const int dqkp = (dqk + 1) / 2;                     // pair form: dimension pairs per key
  const int64_t ldv2 = 2 * mha_value_pair_width(dv);  // bf16 per key pair of v2
  if (pairs) {
    w.q2.resize(size_t(kBQ) * 2 * dqkp);
    w.p2.resize(size_t(kBQ) * kBK);
  } else {
    w.v.resize(size_t(kBK) * ldv);
  }
  ScoreTile s;
  OnlineSoftmax<kBQ> sm;
  float alpha[kBQ];

  for (int64_t q0 = 0; q0 < a.n_queries; q0 += kBQ) {
    const int nq = int(std::min<int64_t>(kBQ, a.n_queries - q0));
    int64_t max_pos = -1, min_pos = std::numeric_limits<int64_t>::max();
    for (int r = 0; r < nq; ++r) {
      max_pos = std::max<int64_t>(max_pos, a.positions[q0 + r]);
      min_pos = std::min<int64_t>(min_pos, a.positions[q0 + r]);
    }
    // The block's queries (pair form: rounded to bf16, an odd last dimension paired with 0),
    // zero rows past nq; O = 0.
    if (pairs) {
      std::fill(w.q2.begin(), w.q2.end(), uint16_t(0));
      for (int r = 0; r < nq; ++r)
        for (int d = 0; d < dqk; ++d)
          w.q2[size_t(r) * 2 * dqkp + d] = f32_to_bf16(a.q[(q0 + r) * a.ldq + d]).bits;
    } else {
      std::fill(w.q.begin(), w.q.end(), 0.0f);
      for (int r = 0; r < nq; ++r)
        std::memcpy(&w.q[size_t(r) * dqk], a.q + (q0 + r) * a.ldq, size_t(dqk) * 4);
    }
    std::fill(w.o.begin(), w.o.end(), 0.0f);
    sm.reset();

    const int64_t kend = std::min<int64_t>(a.n_keys, max_pos + 1);
    for (int64_t k0 = 0; k0 < kend; k0 += kBK) {
      const int nk = int(std::min<int64_t>(kBK, kend - k0));
      if (a.mask) {  // no query of the block selected any key here: nothing to do
        uint64_t any = 0;
        for (int r = 0; r < nq; ++r) any |= a.mask[(q0 + r) * a.ldmask + k0 / kBK];
        if (!any) continue;
      }
      if (pairs) {
        block_pairs(a, w, q0, k0, nk, nq, min_pos, dqkp, ldv2, dvp, s, sm, alpha);
        continue;
      }
      // The key block is read in place (contiguous, zero-padded by the layout). So is a whole
      // value block when its rows are whole micro-tiles and their stride does not alias in L1
      // (a multiple of 64 floats puts every row in the same few sets); otherwise it is copied
      // zero-padded, with such a stride.
      const float* kt = a.kt + (k0 / kBK) * dqk * kBK;
      const float* vb = a.v + k0 * a.ldv;
      int64_t ldvb = a.ldv;
      if (nk < kBK || dv != dvp || a.ldv % 64 == 0) {
        for (int j = 0; j < kBK; ++j) {
          float* dst = &w.v[size_t(j) * ldv];
          int c = 0;
          if (j < nk) {
            const float* src = a.v + (k0 + j) * a.ldv;
            for (; c + kLanes <= dv; c += kLanes) store(dst + c, load(src + c));
            for (; c < dv; ++c) dst[c] = src[c];
          }
          for (; c < dvp; ++c) dst[c] = 0.0f;
        }
        vb = w.v.data(), ldvb = ldv;
      }

      // The next block's values are wanted after this block's math: fetch them meanwhile.
      if (k0 + kBK < kend)
        for (int64_t j = k0 + kBK; j < std::min(kend, k0 + 2 * kBK); ++j)
          for (int c = 0; c < dv; c += 64 / int(sizeof(float))) prefetch(a.v + j * a.ldv + c);

      // S = scale * Q . Kt
      // Column slices outer: one slice of the key block (dqk x kCW) stays in L1 for all rows.
      for (int j0 = 0; j0 < kBK; j0 += kCW)
        for (int i0 = 0; i0 < kBQ; i0 += kRM)
          mma_outer_at<kRM, kNV>(&s.v[i0][j0], kBK, false, dqk, &w.q[size_t(i0) * dqk], dqk, 1,
                                 kt + j0, kBK);
      mask_and_softmax(a, q0, k0, nk, nq, min_pos, s, sm, alpha);

      // O = O * alpha + P . V
      rescale_rows(w.o.data(), nq, dvp, alpha);
      for (int j0 = 0; j0 < dvp; j0 += kCW)
        for (int i0 = 0; i0 < kBQ; i0 += kRM)
          mma_outer_at<kRM, kNV>(&w.o[size_t(i0) * dvp + j0], dvp, true, nk, &s.v[i0][0], kBK, 1,
                                 vb + j0, ldvb);
    }

    for (int r = 0; r < nq; ++r) {
      const float l = sm.l[r], inv = l > 0 ? 1.0f / l : 0.0f;
      float* o = a.o + (q0 + r) * a.ldo;
      for (int c = 0; c < dv; ++c) o[c] = w.o[size_t(r) * dvp + c] * inv;
    }
  }
}

// Pair layouts of mha_pack_pairs (mha_attention.h). Keys: kLanes keys at a time, each row
// [k | pe | 0] staged contiguously, as kLanes x kLanes tiles transposed so that one vector holds
// a dimension of kLanes keys; two dimensions' vectors rounded into pairs give the kLanes words
// of one pair row of the key block. Values: two keys' rows rounded into pairs lane by lane.
void mha_pack_pairs_kernel(const float* k, int64_t ldk, int dk, const float* pe, int64_t ldpe,
                           int dpe, const float* v, int64_t ldv, int dv, int64_t n, uint16_t* kt2,
                           uint16_t* v2) {
  static_assert(kMhaKeyBlock % kLanes == 0);
  const int dqk = dk + dpe;
  const int64_t qkp = (dqk + 1) / 2, vw = mha_value_pair_width(dv);
  const int64_t n_pad = (n + kMhaKeyBlock - 1) / kMhaKeyBlock * kMhaKeyBlock;
  const int width = (dqk + 2 * kLanes - 1) / (2 * kLanes) * (2 * kLanes);  // whole vector pairs
  std::vector<float> rows(size_t(kLanes) * size_t(width));
  for (int64_t s0 = 0; s0 < n_pad; s0 += kLanes) {
    for (int i = 0; i < kLanes; ++i) {
      float* r = rows.data() + size_t(i) * size_t(width);
      const int64_t s = s0 + i;
      if (s < n) {
        std::memcpy(r, k + s * ldk, size_t(dk) * sizeof(float));
        std::memcpy(r + dk, pe + s * ldpe, size_t(dpe) * sizeof(float));
      }
      std::fill(r + (s < n ? dqk : 0), r + width, 0.0f);
    }
    uint16_t* block = kt2 + 2 * ((s0 / kMhaKeyBlock) * qkp * kMhaKeyBlock + s0 % kMhaKeyBlock);
    for (int d0 = 0; d0 < width; d0 += 2 * kLanes) {
      VB pairs[kLanes];  // dimension pairs d0 / 2 .. d0 / 2 + kLanes - 1 of the kLanes keys
      column_pairs(rows.data() + d0, width, pairs);
      for (int j = 0; j < kLanes && d0 / 2 + j < qkp; ++j)
        store_pairs(block + 2 * (d0 / 2 + j) * kMhaKeyBlock, pairs[j]);
    }
  }
  for (int64_t s = 0; s < n_pad; s += 2) {
    const float* a = s < n ? v + s * ldv : nullptr;
    const float* b = s + 1 < n ? v + (s + 1) * ldv : nullptr;
    uint16_t* out = v2 + 2 * (s / 2) * vw;
    for (int64_t c = 0; c < vw; c += kLanes) {
      const int m = int(std::clamp<int64_t>(dv - c, 0, kLanes));
      auto row = [&](const float* x) {
        if (!x || m == 0) return zero();
        return m == kLanes ? load(x + c) : load_n(x + c, m);
      };
      store_pairs(out + 2 * c, bf16_pairs(row(a), row(b)));
    }
  }
}

}  // namespace dsinfer::DSINFER_ISA_NS
