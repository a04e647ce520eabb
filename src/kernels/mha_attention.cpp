#include "kernels/mha_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "core/dispatch.h"
#include "core/dtype.h"

namespace dsinfer {

DSINFER_DECLARE_PER_ISA(void, mha_head_kernel, (const MhaHeadArgs&));

namespace {

void check_args(const MhaHeadArgs& a) {
  auto fail = [](const char* what) {
    throw std::invalid_argument(std::string("mha_attention_head: ") + what);
  };
  if (a.n_queries < 0 || a.n_keys < 0 || a.dqk <= 0 || a.dv <= 0) fail("bad shape");
  if (a.n_queries == 0) return;
  const bool pairs = a.kt2 || a.v2;
  if (pairs && !(a.kt2 && a.v2)) fail("kt2 and v2 go together");
  if (!a.q || !a.o || !a.positions || (a.n_keys > 0 && !pairs && (!a.kt || !a.v)))
    fail("null pointer");
  if (a.ldq < a.dqk || a.ldo < a.dv || (!pairs && a.ldv < a.dv) ||
      (a.mask && a.ldmask < (a.n_keys + 63) / 64))
    fail("bad leading dimension");
}

float key_at(const MhaHeadArgs& a, int64_t s, int d) {
  return a.kt2 ? bf16_to_f32(bf16{a.kt2[mha_key_pair_index(s, d, a.dqk)]})
               : a.kt[mha_key_index(s, d, a.dqk)];
}
float value_at(const MhaHeadArgs& a, int64_t s, int c) {
  return a.v2 ? bf16_to_f32(bf16{a.v2[mha_value_pair_index(s, c, a.dv)]}) : a.v[s * a.ldv + c];
}

bool visible(const MhaHeadArgs& a, int64_t t, int64_t s) {
  if (s > a.positions[t]) return false;
  return !a.mask || (a.mask[t * a.ldmask + s / 64] >> (s % 64) & 1);
}

}  // namespace

void mha_attention_head(const MhaHeadArgs& a) {
  check_args(a);
  if (a.n_queries == 0) return;
  DSINFER_DISPATCH(mha_head_kernel)(a);
}

void mha_pack_pairs(const float* k, int64_t ldk, int dk, const float* pe, int64_t ldpe, int dpe,
                    const float* v, int64_t ldv, int dv, int64_t n, uint16_t* kt2, uint16_t* v2) {
  // One 32-bit word per pair: a key's pair p lands one block row (64 words) after pair p - 1;
  // two keys' values sit side by side.
  const int dqk = dk + dpe;
  const int64_t qkp = (dqk + 1) / 2, vw = mha_value_pair_width(dv);
  const int64_t n_pad = (n + kMhaKeyBlock - 1) / kMhaKeyBlock * kMhaKeyBlock;
  uint32_t* k32 = reinterpret_cast<uint32_t*>(kt2);
  uint32_t* v32 = reinterpret_cast<uint32_t*>(v2);
  std::vector<float> row(static_cast<size_t>(2 * qkp), 0.0f);  // [k | pe | 0]
  for (int64_t s = 0; s < n_pad; ++s) {
    uint32_t* kw = k32 + (s / kMhaKeyBlock) * qkp * kMhaKeyBlock + s % kMhaKeyBlock;
    if (s >= n) {
      for (int64_t p = 0; p < qkp; ++p) kw[p * kMhaKeyBlock] = 0;
      continue;
    }
    std::copy(k + s * ldk, k + s * ldk + dk, row.begin());
    std::copy(pe + s * ldpe, pe + s * ldpe + dpe, row.begin() + dk);
    for (int64_t p = 0; p < qkp; ++p)
      kw[p * kMhaKeyBlock] = f32_to_bf16_pair(row[2 * p], row[2 * p + 1]);
  }
  for (int64_t s = 0; s < n_pad; s += 2) {
    uint32_t* vw32 = v32 + (s / 2) * vw;
    const float* a = s < n ? v + s * ldv : nullptr;
    const float* b = s + 1 < n ? v + (s + 1) * ldv : nullptr;
    for (int64_t c = 0; c < vw; ++c)
      vw32[c] = c < dv ? f32_to_bf16_pair(a ? a[c] : 0.0f, b ? b[c] : 0.0f) : 0u;
  }
}

void mha_attention_head_reference(const MhaHeadArgs& a) {
  check_args(a);
  std::vector<double> score(size_t(a.n_keys));
  for (int64_t t = 0; t < a.n_queries; ++t) {
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t s = 0; s < a.n_keys; ++s) {
      if (!visible(a, t, s)) continue;
      double d = 0;
      for (int i = 0; i < a.dqk; ++i) d += double(a.q[t * a.ldq + i]) * key_at(a, s, i);
      score[s] = d * a.scale;
      mx = std::max(mx, score[s]);
    }
    std::vector<double> acc(size_t(a.dv), 0.0);
    double l = 0;
    for (int64_t s = 0; s < a.n_keys; ++s) {
      if (!visible(a, t, s)) continue;
      const double p = std::exp(score[s] - mx);
      l += p;
      for (int c = 0; c < a.dv; ++c) acc[c] += p * value_at(a, s, c);
    }
    for (int c = 0; c < a.dv; ++c) a.o[t * a.ldo + c] = l > 0 ? float(acc[c] / l) : 0.0f;
  }
}

}  // namespace dsinfer
