// Non-absorbed (MHA) flash attention for one head, used for prefill chunks (spec §3.4 in its
// "naive" form): with many queries per chunk, expanding each head's keys and values from the
// latent cache (k_nope = W_UK c, v = W_UV c) and attending over 192-dim keys and 128-dim values
// costs about a third of the absorbed form's (576 + 512) per (query, key, head) product, so it is
// the cheaper way for prompts up to several thousand tokens (the model picks per batch).
//
//   score[t, s] = scale * q[t] . k[s]   for keys s <= positions[t] (and, with a mask, only the
//                                       keys whose bit is set: DSA's top-k as a -inf mask)
//   o[t] = sum_s softmax_s(score)[s] * v[s]          (no visible key: o = 0)
//
// Layouts: q row t at q + t * ldq (dqk f32); keys transposed in blocks of kMhaKeyBlock keys,
// each block contiguous: key s, dimension d at kt[(s / 64) * dqk * 64 + d * 64 + s % 64], zeros
// past n_keys (mha_key_index); values v[s * ldv + c] (c < dv); mask row t at mask + t * ldmask
// words, bit s % 64 of word s / 64; o row t at o + t * ldo (dv f32). Single-threaded: the caller
// runs heads in parallel.
#pragma once

#include <cstdint>

namespace dsinfer {

inline constexpr int kMhaKeyBlock = 64;
// Where key s, dimension d lives in the blocked transposed key layout.
inline int64_t mha_key_index(int64_t s, int d, int dqk) {
  return (s / kMhaKeyBlock) * dqk * kMhaKeyBlock + int64_t(d) * kMhaKeyBlock + s % kMhaKeyBlock;
}
// Floats the blocked key layout holds for n keys.
inline int64_t mha_keys_size(int64_t n, int dqk) {
  return (n + kMhaKeyBlock - 1) / kMhaKeyBlock * kMhaKeyBlock * dqk;
}

// The bf16-pair layouts (MhaHeadArgs::kt2 / v2). Keys: per block of 64 keys, per pair of
// dimensions (d = 2p, 2p + 1), the 64 keys' pairs: [block][p][64][2], dqk rounded up to even.
inline int64_t mha_key_pair_index(int64_t s, int d, int dqk) {
  const int64_t pairs = (dqk + 1) / 2;
  return (s / kMhaKeyBlock) * pairs * 2 * kMhaKeyBlock + int64_t(d / 2) * 2 * kMhaKeyBlock +
         (s % kMhaKeyBlock) * 2 + d % 2;
}
inline int64_t mha_key_pairs_size(int64_t n, int dqk) {
  return (n + kMhaKeyBlock - 1) / kMhaKeyBlock * kMhaKeyBlock * 2 * ((dqk + 1) / 2);
}
// Values: per pair of keys (s = 2k, 2k + 1), per column c, the two keys' values: [k][width][2],
// the width dv rounded up to 32 columns (whole vectors).
inline int64_t mha_value_pair_width(int dv) {
  return (dv + 31) / 32 * 32;
}
inline int64_t mha_value_pair_index(int64_t s, int c, int dv) {
  return (s / 2) * 2 * mha_value_pair_width(dv) + int64_t(c) * 2 + s % 2;
}
inline int64_t mha_value_pairs_size(int64_t n, int dv) {
  return (n + kMhaKeyBlock - 1) / kMhaKeyBlock * kMhaKeyBlock * mha_value_pair_width(dv);
}

// Fills both pair layouts for n keys from f32 rows, rounded to bf16: key s = [k row s (dk values)
// | pe row s (dpe values)], dqk = dk + dpe; value s = v row s (dv values). Every element up to the
// last key block's end is written (zero where no key, dimension or column is).
void mha_pack_pairs(const float* k, int64_t ldk, int dk, const float* pe, int64_t ldpe, int dpe,
                    const float* v, int64_t ldv, int dv, int64_t n, uint16_t* kt2, uint16_t* v2);

struct MhaHeadArgs {
  const float* q = nullptr;
  int64_t ldq = 0, n_queries = 0;
  int dqk = 0, dv = 0;
  const float* kt = nullptr;  // blocked, mha_keys_size(n_keys, dqk) floats
  const float* v = nullptr;
  int64_t ldv = 0, n_keys = 0;
  const int32_t* positions = nullptr;  // [n_queries]
  const uint64_t* mask = nullptr;      // optional
  int64_t ldmask = 0;
  float scale = 1.0f;
  float* o = nullptr;
  int64_t ldo = 0;
  // The bf16-pair form (--precision bf16, where the bf16 dot is native): keys and values as bf16
  // in the pair layouts above instead of kt / v (every element up to the last key block's end
  // written, zero past n_keys and past dv); the query is rounded to bf16 and so is P before
  // P . V (as FlashMLA does; the softmax sums stay f32).
  const uint16_t* kt2 = nullptr;
  const uint16_t* v2 = nullptr;
};

void mha_attention_head(const MhaHeadArgs& a);

// The plain reference (double accumulation), for tests.
void mha_attention_head_reference(const MhaHeadArgs& a);

}  // namespace dsinfer
