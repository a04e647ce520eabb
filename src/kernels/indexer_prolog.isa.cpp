// Indexer prolog row ops in the tile layer (compiled once per ISA).
#include <cmath>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/indexer_prolog.h"
#include "tile/tile.h"

namespace dsinfer::DSINFER_ISA_NS {

using namespace tile;

namespace {

constexpr int kN = 128, kV = kN / kLanes;  // vectors per 128-row

// H_kLanes rows as sign vectors: sign[b][l] = (-1)^popcount(b & l).
struct LaneHadamard {
  alignas(64) float sign[kLanes][kLanes];
  LaneHadamard() {
    for (int b = 0; b < kLanes; ++b)
      for (int l = 0; l < kLanes; ++l) sign[b][l] = __builtin_popcount(b & l) & 1 ? -1.0f : 1.0f;
  }
};

// H_128 = H_(128/kLanes) (x) H_kLanes on index i = a * kLanes + l: butterflies across the kV
// vectors, then within each vector y = sum_b x[b] * sign row b (exact: +-x sums).
inline void hadamard_row(float* x, const LaneHadamard& lh) {
  VF v[kV];
#pragma GCC unroll 16
  for (int a = 0; a < kV; ++a) v[a] = load(x + a * kLanes);
#pragma GCC unroll 16
  for (int h = 1; h < kV; h *= 2)
#pragma GCC unroll 16
    for (int a = 0; a < kV; ++a)
      if ((a & h) == 0) {
        const VF u = v[a], w = v[a + h];
        v[a] = add(u, w);
        v[a + h] = sub(u, w);
      }
  alignas(64) float tmp[kN];
#pragma GCC unroll 16
  for (int a = 0; a < kV; ++a) store(tmp + a * kLanes, v[a]);
  const VF norm = set1(0.08838834764831845f);  // 1 / sqrt(128)
  for (int a = 0; a < kV; ++a) {
    VF y = mul(set1(tmp[a * kLanes]), load(lh.sign[0]));
#pragma GCC unroll 16
    for (int b = 1; b < kLanes; ++b) y = fma(set1(tmp[a * kLanes + b]), load(lh.sign[b]), y);
    store(x + a * kLanes, mul(y, norm));
  }
}

}  // namespace

void hadamard_128_kernel(float* x, int64_t n_rows) {
  static const LaneHadamard lh;
  parallel_for(n_rows, 64, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) hadamard_row(x + r * kN, lh);
  });
}

void quantize_fp8_blocks_kernel(const float* x, int64_t n_blocks, bool ue8m0_scale, uint8_t* q_out,
                                float* scale_out) {
  parallel_for(n_blocks, 64, [&](int64_t b0, int64_t b1, int) {
    alignas(64) float tmp[kN];
    for (int64_t b = b0; b < b1; ++b) {
      const float* xb = x + b * kN;
      // max |x|; NaN lanes are dropped (max(NaN, m) keeps m with the operand order used here).
      VF m = zero();
      for (int a = 0; a < kV; ++a) m = max(abs(load(xb + a * kLanes)), m);
      float amax = reduce_max(m);
      if (!(amax >= 1e-4f)) amax = 1e-4f;
      const float ratio = amax / kFp8E4m3Max;
      const float scale = ue8m0_scale ? ue8m0_to_f32(ue8m0_ceil_pow2(ratio)) : ratio;
      scale_out[b] = scale;
      const VF sv = set1(scale);
      for (int a = 0; a < kV; ++a) store(tmp + a * kLanes, div(load(xb + a * kLanes), sv));
      uint8_t* qb = q_out + b * kN;
      for (int j = 0; j < kN; ++j) {
        const float v = tmp[j];
        // clamp keeps NaN as NaN (encoded as the e4m3 NaN code).
        const float c = v < -kFp8E4m3Max ? -kFp8E4m3Max : (v > kFp8E4m3Max ? kFp8E4m3Max : v);
        qb[j] = f32_to_fp8_e4m3(c).bits;
      }
    }
  });
}

void rope_halves_kernel(float* x, int64_t n_tokens, int n_heads, int64_t head_stride, int rope_dim,
                        const int32_t* positions, const float* inv_freq) {
  const int half = rope_dim / 2;
  parallel_for(n_tokens, 16, [&](int64_t t0, int64_t t1, int) {
    std::vector<float> cs(size_t(half) + kLanes), sn(size_t(half) + kLanes);
    for (int64_t t = t0; t < t1; ++t) {
      for (int i = 0; i < half; ++i) {
        const float ang = float(positions[t]) * inv_freq[i];
        cs[size_t(i)] = float(std::cos(double(ang)));
        sn[size_t(i)] = float(std::sin(double(ang)));
      }
      for (int h = 0; h < n_heads; ++h) {
        float* v = x + (t * n_heads + h) * head_stride;
        int i = 0;
        for (; i + kLanes <= half; i += kLanes) {
          const VF a = load(v + i), b = load(v + half + i);
          const VF c = load(cs.data() + i), s = load(sn.data() + i);
          store(v + i, sub(mul(a, c), mul(b, s)));
          store(v + half + i, fma(a, s, mul(b, c)));
        }
        for (; i < half; ++i) {
          const float a = v[i], b = v[half + i];
          v[i] = a * cs[size_t(i)] - b * sn[size_t(i)];
          v[half + i] = b * cs[size_t(i)] + a * sn[size_t(i)];
        }
      }
    }
  });
}

void layer_norm_kernel(const float* x, int64_t n_rows, int64_t dim, const float* w, const float* b,
                       float eps, float* out) {
  parallel_for(n_rows, 64, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      float* yr = out + r * dim;
      VF s = zero();
      int64_t j = 0;
      for (; j + kLanes <= dim; j += kLanes) s = add(s, load(xr + j));
      if (j < dim) s = add(s, load_n(xr + j, int(dim - j)));
      const float mean = reduce_add(s) / float(dim);
      const VF mv = set1(mean);
      VF q = zero();
      for (j = 0; j + kLanes <= dim; j += kLanes) {
        const VF d = sub(load(xr + j), mv);
        q = fma(d, d, q);
      }
      float ss = reduce_add(q);
      for (; j < dim; ++j) ss += (xr[j] - mean) * (xr[j] - mean);
      const float rstd = 1.0f / std::sqrt(ss / float(dim) + eps);
      const VF rv = set1(rstd);
      for (j = 0; j + kLanes <= dim; j += kLanes)
        store(yr + j, fma(mul(sub(load(xr + j), mv), rv), load(w + j), load(b + j)));
      if (j < dim) {
        const int n = int(dim - j);
        const VF y = fma(mul(sub(load_n(xr + j, n), mv), rv), load_n(w + j, n), load_n(b + j, n));
        store_n(yr + j, y, n);
      }
    }
  });
}

}  // namespace dsinfer::DSINFER_ISA_NS
