// Views of the per-layer MLA cache (spec §6): latent rows c[s] (kv_lora_rank wide) and rotated
// k_pe[s] (rope_dim wide), f32 or bf16, either contiguous (token s is row s) or paged in blocks of
// kKvBlockTokens tokens (token s is row block_table[s / 64] * 64 + s % 64 of the pools).
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace dsinfer {

inline constexpr int64_t kKvBlockTokens = 64;

struct MlaCacheView {
  DType dtype = DType::bf16;             // f32 or bf16, for both c and k_pe
  const void* c = nullptr;               // latent rows, ld_c elements apart
  const void* k_pe = nullptr;            // rope rows, ld_pe elements apart
  int64_t ld_c = 0, ld_pe = 0;           // elements between rows
  int64_t n_tokens = 0;                  // logical tokens held (valid key indices are < n_tokens)
  const int32_t* block_table = nullptr;  // null: contiguous; else physical block per 64 tokens

  int64_t row(int64_t s) const {
    return block_table
               ? int64_t(block_table[s / kKvBlockTokens]) * kKvBlockTokens + s % kKvBlockTokens
               : s;
  }
};

}  // namespace dsinfer
