// Per-ISA drivers of the tile ops (see tile_ops_driver.h).
#include <cstring>

#include "tile/mma.h"
#include "tile/panel.h"
#include "tile/tile_ops.h"
#include "tile_ops_driver.h"

namespace dsinfer::DSINFER_ISA_NS {

using tile_test::kCols;
using tile_test::kRows;
using T = tile::Tile<kRows, kCols>;

namespace {
void to_array(const T& t, float* out) {
  std::memcpy(out, t.v, sizeof t.v);
}
void from_array(T& t, const float* in, int rows, int cols) {
  std::memcpy(t.v, in, sizeof t.v);
  t.rows = rows, t.cols = cols;
}
}  // namespace

void tt_load_f32(const float* src, int64_t ld, int rows, int cols, float* out) {
  T t;
  tile::fill(t, 99.0f);
  tile::load(t, src, ld, rows, cols);
  to_array(t, out);
}
void tt_load_bf16(const bf16* src, int64_t ld, int rows, int cols, float* out) {
  T t;
  tile::fill(t, 99.0f);
  tile::load(t, src, ld, rows, cols);
  to_array(t, out);
}
void tt_load_fp8_scaled(const fp8_e4m3* src, int64_t ld, const float* scale, int rows, int cols,
                        float* out) {
  T t;
  tile::load_scaled(t, src, ld, scale, rows, cols);
  to_array(t, out);
}
void tt_load_fp8_raw(const uint8_t* src, int n, float* out) {
  for (int i = 0; i < n; i += simd::kLanes) simd::store(out + i, simd::load_fp8_raw(src + i));
}
int tt_lanes() {
  return simd::kLanes;
}
void tt_int8_dots(const uint8_t* u, const uint8_t* s, const int32_t* acc, int32_t m, int32_t* out) {
  using namespace simd;
  const VI a = load_i(acc);
  const VQ uq = as_quads(as_words(load_q(u))), sq = load_q(s);  // the reinterpretations too
  const VI r[5] = {dot_u8s8(a, uq, sq), dot_u8s8(a, low_nibbles(uq), sq),
                   dot_u8s8(a, high_nibbles(uq), sq),
                   dot_u8s8(a, flip_bytes(uq), broadcast_quad(s)), mul_i(a, set1_i(m))};
  for (int i = 0; i < 5; ++i) std::memcpy(out + i * kLanes, &r[i], sizeof r[i]);
}
// n codes as whole vectors, then a tail of `tail` codes (the rest of that vector zero).
void tt_load_i8(const int8_t* src, int n, int tail, float* out) {
  int i = 0;
  for (; i + simd::kLanes <= n; i += simd::kLanes) simd::store(out + i, simd::load_i8(src + i));
  simd::store(out + i, simd::load_i8_n(src + i, tail));
}
// Lane i of reduce_lanes over kLanes vectors in[i * kLanes ...].
void tt_reduce_lanes(const float* in, float* out) {
  simd::VF v[simd::kLanes];
  for (int i = 0; i < simd::kLanes; ++i) v[i] = simd::load(in + i * simd::kLanes);
  simd::store(out, simd::reduce_lanes(v));
}
// Lane i of reduce_lanes_i over kLanes int32 vectors in[i * kLanes ...].
void tt_reduce_lanes_i(const int32_t* in, int32_t* out) {
  simd::VI v[simd::kLanes];
  for (int i = 0; i < simd::kLanes; ++i) v[i] = simd::load_i(in + i * simd::kLanes);
  const simd::VI r = simd::reduce_lanes_i(v);
  std::memcpy(out, &r, sizeof r);
}
uint32_t tt_fp8_to_bf16_pow2(const uint8_t* codes, int c, uint16_t* out) {
  simd::VB v;
  const uint32_t subnormal = simd::fp8_to_bf16_pow2(codes, c, v);
  simd::store_pairs(out, v);
  return subnormal;
}
void tt_fp8_to_bf16_normal(const uint8_t* codes, int c, uint16_t* out) {
  simd::store_pairs(out, simd::fp8_to_bf16_normal(codes, c));
}
bool tt_fp8_any_zero_exponent(const uint8_t* codes, int n) {
  return simd::fp8_any_zero_exponent(codes, n);
}
void tt_column_pairs(const float* rows, int64_t ld, uint16_t* out) {
  simd::VB pairs[simd::kLanes];
  tile::column_pairs(rows, ld, pairs);
  for (int j = 0; j < simd::kLanes; ++j) simd::store_pairs(out + j * 2 * simd::kLanes, pairs[j]);
}
// zip_pairs of rows a, b (2 * kLanes each): lo then hi into out[4 * kLanes].
void tt_zip_pairs(const uint16_t* a, const uint16_t* b, uint16_t* out) {
  simd::VB lo, hi;
  simd::zip_pairs(simd::load_pairs(a), simd::load_pairs(b), lo, hi);
  simd::store_pairs(out, lo);
  simd::store_pairs(out + 2 * simd::kLanes, hi);
}
void tt_select_bits(uint32_t bits, const float* a, const float* b, float* out) {
  simd::store(out, simd::select_bits(bits, simd::load(a), simd::load(b)));
}
// n values (a multiple of kLanes) encoded by store_fp8.
void tt_store_fp8(const float* in, int n, uint8_t* out) {
  for (int i = 0; i < n; i += simd::kLanes) simd::store_fp8(out + i, simd::load(in + i));
}
void tt_load_uint(const uint8_t* p, bool u4, float* out) {
  simd::store(out, u4 ? simd::load_u4(p) : simd::load_u8(p));
}
int tt_code_pairs(DType dt, const uint8_t* p, int n, float bias, uint16_t* out) {
  int cols = 0;
  tile::dispatch_int_dtype(dt, [&]<DType WT>() {
    using Dec = tile::CodePairs<WT>;
    const Dec dec(bias);
    simd::VB v[Dec::kVecs];
    if (n == Dec::kCols)
      dec(p, v);
    else
      dec.first(p, n, v);
    for (int i = 0; i < Dec::kVecs; ++i) simd::store_pairs(out + i * 2 * simd::kLanes, v[i]);
    cols = Dec::kCols;
  });
  return cols;
}
int64_t tt_split_columns(DType dt, const uint16_t* src, int64_t n, uint16_t* dst) {
  int64_t padded = 0;
  tile::dispatch_int_dtype(dt, [&]<DType WT>() {
    tile::split_columns<WT>(src, n, dst);
    constexpr int S = tile::CodePairs<WT>::kCols;
    padded = (n + S - 1) / S * S;
  });
  return padded;
}
void tt_bf16_in_order(const float* a, const float* b, uint16_t* out) {
  simd::store_pairs(out, simd::bf16_in_order(simd::load(a), simd::load(b)));
}
int tt_gather(const float* base, int64_t ld, const int32_t* idx, int n, int cols, float* out,
              bool* valid) {
  T t;
  tile::fill(t, 99.0f);
  int real = tile::gather_rows(t, base, ld, idx, n, cols, valid);
  to_array(t, out);
  return real;
}
void tt_store_bf16(const float* in, int rows, int cols, bf16* dst, int64_t ld) {
  T t;
  from_array(t, in, rows, cols);
  tile::store(dst, ld, t);
}
void tt_map(tile_test::MapOp op, float s, const float* in, float* out) {
  T t;
  from_array(t, in, kRows, kCols);
  switch (op) {
    case tile_test::MapOp::scale:
      tile::scale(t, s);
      break;
    case tile_test::MapOp::relu:
      tile::relu(t);
      break;
    case tile_test::MapOp::exp:
      tile::exp(t);
      break;
    case tile_test::MapOp::silu:
      tile::silu(t);
      break;
  }
  to_array(t, out);
}
void tt_reduce(const float* in, int rows, int cols, float* rmax, float* rsum, float* cmax,
               float* csum) {
  T t;
  from_array(t, in, rows, cols);
  tile::row_max(t, rmax);
  tile::row_sum(t, rsum);
  tile::col_max(t, cmax);
  tile::col_sum(t, csum);
}
// out = ((in - rowv) * rowv2) * colv  (sub_row, mul_row, mul_col) then + colv (add_col)
void tt_broadcast(const float* in, const float* rowv, const float* colv, float* out) {
  T t;
  from_array(t, in, kRows, kCols);
  tile::sub_row(t, rowv);
  tile::mul_row(t, rowv);
  tile::mul_col(t, colv);
  tile::add_col(t, colv);
  to_array(t, out);
}
// c[kRows][kCols] = 1 + a[rows][k] . b[k][kCols]
void tt_mma_ab(const float* a, int rows, int k, const float* b, float* c) {
  T ta, tc;
  tile::Tile<kCols, kCols> tb;
  tile::load(ta, a, kCols, rows, k);
  tile::load(tb, b, kCols, k, kCols);
  tile::fill(tc, 1.0f);
  tile::mma_AB(tc, ta, tb);
  to_array(tc, c);
}
// c[kRows][32] = a[rows][k] . b[n][k]^T  (b given as n rows of kCols)
void tt_mma_abt(const float* a, int rows, int k, const float* b, int n, float* c) {
  T ta;
  tile::Tile<32, kCols> tb;
  tile::Tile<kRows, 32> tc;
  tile::load(ta, a, kCols, rows, k);
  tile::load(tb, b, kCols, n, k);
  tile::fill(tc, 0.0f);
  tile::mma_ABt(tc, ta, tb);
  std::memcpy(c, tc.v, sizeof tc.v);
}
// Softmax over `total` columns of each of `rows` rows (scores row-major with stride kCols * 4),
// fed in blocks of `block` columns through OnlineSoftmax; writes probabilities and lse.
void tt_softmax_blocks(const float* scores, int rows, int total, int block, float* probs,
                       float* lse) {
  tile::OnlineSoftmax<kRows> sm;
  sm.reset();
  // Probabilities of earlier blocks are rescaled by alpha as later blocks arrive, as an output
  // accumulator would be.
  const int ld = kCols * 4;
  for (int c0 = 0; c0 < total; c0 += block) {
    const int n = total - c0 < block ? total - c0 : block;
    T s;
    tile::load(s, scores + c0, ld, rows, n);
    float alpha[kRows];
    sm.step(s, alpha);
    for (int r = 0; r < rows; ++r) {
      for (int c = 0; c < c0; ++c) probs[r * ld + c] *= alpha[r];
      for (int c = 0; c < n; ++c) probs[r * ld + c0 + c] = s.v[r][c];
    }
  }
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < total; ++c)
      probs[r * ld + c] = sm.l[r] > 0 ? probs[r * ld + c] / sm.l[r] : 0;
    lse[r] = sm.lse(r);
  }
}

}  // namespace dsinfer::DSINFER_ISA_NS
