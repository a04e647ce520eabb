// Views of the per-layer MLA cache (spec §6): latent rows c[s] (kv_lora_rank wide) and rotated
// k_pe[s] (rope_dim wide), either contiguous (token s is row s) or paged in blocks of
// kKvBlockTokens tokens (token s is row block_table[s / 64] * 64 + s % 64 of the pools).
//
// The latent is stored as f32 or bf16 values, or as 8-bit codes (FP8 e4m3 or INT8, "C8"): a row
// is then C code bytes followed by ceil(C / 128) f32 scales, one per 128 values (value = code *
// scale), and k_pe stays bf16 — 512 + 16 + 128 = 656 bytes per token for V3.2, FlashMLA's FP8
// layout size, instead of 1,152 in bf16.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace dsinfer {

inline constexpr int64_t kKvBlockTokens = 64;
inline constexpr int64_t kLatentScaleBlock = 128;  // latent values per scale (8-bit codes)

inline bool latent_is_coded(DType dt) {
  return dt == DType::fp8_e4m3 || dt == DType::i8;
}
inline int64_t latent_scale_count(int64_t C) {
  return (C + kLatentScaleBlock - 1) / kLatentScaleBlock;
}
// Bytes of one latent row of C values: codes + scales, or C values.
inline int64_t latent_row_bytes(DType dt, int64_t C) {
  return latent_is_coded(dt) ? C + 4 * latent_scale_count(C) : C * int64_t(dtype_size(dt));
}

// A latent row of C values into the storage format `dt` (f32, bf16, fp8_e4m3 or i8). 8-bit:
// each 128-value block gets scale = max(amax, 1e-4) / 448 (FP8) or / 127 (INT8), codes rounded
// to nearest (even), so dequantized values are code * scale.
void encode_latent_row(DType dt, const float* x, int64_t C, void* row);
// The inverse, value by value, in f32 (the plain reference of the kernels' gathers).
void decode_latent_row(DType dt, const void* row, int64_t C, float* out);

struct MlaCacheView {
  DType c_dtype = DType::bf16;           // the latent: f32, bf16, fp8_e4m3 or i8 (coded rows)
  DType pe_dtype = DType::bf16;          // k_pe: f32 or bf16
  const void* c = nullptr;               // latent rows, ld_c elements (8-bit: bytes) apart
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
