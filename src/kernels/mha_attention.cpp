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
DSINFER_DECLARE_PER_ISA(void, mha_pack_pairs_kernel,
                        (const float*, int64_t, int, const float*, int64_t, int, const float*,
                         int64_t, int, int64_t, uint16_t*, uint16_t*));

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
  DSINFER_DISPATCH(mha_pack_pairs_kernel)(k, ldk, dk, pe, ldpe, dpe, v, ldv, dv, n, kt2, v2);
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
