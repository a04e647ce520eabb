#include "kernels/mla_attention.h"

#include <stdexcept>
#include <string>

#include "core/dispatch.h"

namespace dsinfer {

DSINFER_DECLARE_PER_ISA(void, mla_attention_kernel,
                        (const MlaAttnArgs&, const int32_t* idx, int k, const int32_t* positions));

namespace {

const MlaCacheView& cache_of(const MlaAttnArgs& a, int64_t t) {
  return a.caches[a.cache_of_query ? a.cache_of_query[t] : 0];
}

void check_args(const MlaAttnArgs& a, const char* who) {
  auto fail = [&](const std::string& what) { throw std::invalid_argument(who + (": " + what)); };
  if (a.n_queries < 0 || a.n_heads <= 0 || a.latent_dim <= 0 || a.rope_dim < 0) fail("bad shape");
  if (a.n_queries == 0) return;
  if (!a.q || !a.o_lat || !a.lse || !a.caches) fail("null pointer");
  for (int64_t t = 0; t < a.n_queries; ++t) {
    if (a.cache_of_query && a.cache_of_query[t] < 0) fail("negative cache index");
    if (t > 0 && a.cache_of_query == nullptr) break;
    const MlaCacheView& c = cache_of(a, t);
    if (c.c_dtype != DType::f32 && c.c_dtype != DType::bf16 && !latent_is_coded(c.c_dtype))
      fail("latent cache dtype is not f32, bf16, fp8_e4m3 or i8");
    if (c.pe_dtype != DType::f32 && c.pe_dtype != DType::bf16)
      fail("rope cache dtype is not f32 or bf16");
    const int64_t min_ld_c =
        latent_is_coded(c.c_dtype) ? latent_row_bytes(c.c_dtype, a.latent_dim) : a.latent_dim;
    if (c.n_tokens < 0 || c.ld_c < min_ld_c || c.ld_pe < a.rope_dim) fail("bad cache view");
    if (c.n_tokens > 0 && (!c.c || (a.rope_dim > 0 && !c.k_pe))) fail("null cache pointer");
  }
}

}  // namespace

void sparse_mla_attention(const MlaAttnArgs& a, const int32_t* idx, int k) {
  check_args(a, "sparse_mla_attention");
  if (a.n_queries == 0) return;
  if (k < 0 || (k > 0 && !idx)) throw std::invalid_argument("sparse_mla_attention: bad indices");
  for (int64_t t = 0; t < a.n_queries; ++t) {
    const int64_t n = cache_of(a, t).n_tokens;
    for (int j = 0; j < k; ++j)
      if (idx[t * k + j] >= n)
        throw std::out_of_range("sparse_mla_attention: index " + std::to_string(idx[t * k + j]) +
                                " >= n_tokens " + std::to_string(n));
  }
  DSINFER_DISPATCH(mla_attention_kernel)(a, idx, k, nullptr);
}

void dense_mla_attention(const MlaAttnArgs& a, const int32_t* positions) {
  check_args(a, "dense_mla_attention");
  if (a.n_queries == 0) return;
  if (!positions) throw std::invalid_argument("dense_mla_attention: null positions");
  DSINFER_DISPATCH(mla_attention_kernel)(a, nullptr, 0, positions);
}

}  // namespace dsinfer
