// Tile ops: load / gather / store with conversion, elementwise maps, reductions, broadcasts and
// the online-softmax step. Each op reads like the math and is checked against a scalar reference
// for every ISA in tests/tile.
#pragma once

#include "tile/tile.h"

namespace dsinfer::DSINFER_ISA_NS::tile {

// A kLanes x 2 kLanes block of f32 rows (row i at rows + i * ld) as bf16 column pairs: pairs[j]
// lane i = row i's elements (2j, 2j + 1) rounded to bf16. Two register transposes, then the
// rounding: the layout the pair-form kernels take queries and keys in (one dimension pair of
// kLanes heads or keys per vector).
inline void column_pairs(const float* rows, int64_t ld, VB (&pairs)[kLanes]) {
  VF lo[kLanes], hi[kLanes];  // columns 0 .. kLanes - 1 and the next kLanes
#pragma GCC unroll 16
  for (int i = 0; i < kLanes; ++i) {
    lo[i] = load(rows + i * ld);
    hi[i] = load(rows + i * ld + kLanes);
  }
  transpose(lo);
  transpose(hi);
#pragma GCC unroll 16
  for (int j = 0; j < kLanes; ++j) {
    const VF* half = j < kLanes / 2 ? lo : hi;
    const int jj = 2 * (j % (kLanes / 2));
    pairs[j] = bf16_pairs(half[jj], half[jj + 1]);
  }
}

// ---- load / store ----------------------------------------------------------------------------

// t[r, :cols] = src[r * ld + :cols] for r < rows; the rest of each row (and rows past `rows`)
// are zero, so reductions and mma over the full tile see no garbage.
template <int R, int C, class T>
inline void load(Tile<R, C>& t, const T* src, int64_t ld, int rows, int cols) {
  t.rows = rows;
  t.cols = cols;
  for (int r = 0; r < rows; ++r) convert_row<C>(t.v[r], src + r * ld, cols);
  for (int r = rows; r < R; ++r) convert_row<C>(t.v[r], src, 0);
}

// FP8 rows with one f32 scale per row (e.g. a key's k_scale): t[r] = src[r] * scale[r].
template <int R, int C>
inline void load_scaled(Tile<R, C>& t, const fp8_e4m3* src, int64_t ld, const float* row_scale,
                        int rows, int cols) {
  load(t, src, ld, rows, cols);
  for (int r = 0; r < rows; ++r) {
    const VF s = set1(row_scale[r]);
    for (int j = 0; j < Tile<R, C>::kVecs; ++j) t.set_vec(r, j, mul(t.vec(r, j), s));
  }
}

// Gathers rows base[idx[i] * ld] for i < n. Index -1 marks padding: that row is zero and
// valid[i] = false (valid may be null). Returns the number of real rows. t.rows = n.
template <int R, int C, class T>
inline int gather_rows(Tile<R, C>& t, const T* base, int64_t ld, const int32_t* idx, int n,
                       int cols, bool* valid = nullptr) {
  int real = 0;
  t.rows = n;
  t.cols = cols;
  for (int i = 0; i < n; ++i) {
    const bool ok = idx[i] >= 0;
    convert_row<C>(t.v[i], base + (ok ? idx[i] : 0) * ld, ok ? cols : 0);
    if (valid) valid[i] = ok;
    real += ok;
  }
  for (int i = n; i < R; ++i) convert_row<C>(t.v[i], base, 0);
  return real;
}

// dst[r * ld + :t.cols] = t[r] for r < t.rows, converted to T.
template <int R, int C, class T>
inline void store(T* dst, int64_t ld, const Tile<R, C>& t) {
  for (int r = 0; r < t.rows; ++r) store_row(dst + r * ld, t.v[r], t.cols);
}

template <int R, int C>
inline void fill(Tile<R, C>& t, float x) {
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < Tile<R, C>::kVecs; ++j) t.set_vec(r, j, set1(x));
}

// ---- elementwise maps (over the whole tile; padding stays whatever f(0) gives) ---------------
template <int R, int C, class F>
inline void map(Tile<R, C>& t, F f) {
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < Tile<R, C>::kVecs; ++j) t.set_vec(r, j, f(t.vec(r, j)));
}
template <int R, int C>
inline void scale(Tile<R, C>& t, float s) {
  const VF sv = set1(s);
  map(t, [&](VF x) { return mul(x, sv); });
}
template <int R, int C>
inline void add(Tile<R, C>& t, const Tile<R, C>& u) {
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < Tile<R, C>::kVecs; ++j)
      t.set_vec(r, j, simd::add(t.vec(r, j), u.vec(r, j)));
}
template <int R, int C>
inline void relu(Tile<R, C>& t) {
  map(t, [](VF x) { return max(x, zero()); });
}
template <int R, int C>
inline void exp(Tile<R, C>& t) {
  map(t, [](VF x) { return simd::exp(x); });
}
inline VF silu(VF x) {  // x * sigmoid(x) = x / (1 + e^-x)
  return div(x, simd::add(set1(1.0f), simd::exp(sub(zero(), x))));
}
template <int R, int C>
inline void silu(Tile<R, C>& t) {
  map(t, [](VF x) { return silu(x); });
}

// ---- reductions over the valid extent ---------------------------------------------------------
// out[r] = max over the valid columns of row r (-inf for an empty row).
template <int R, int C>
inline void row_max(const Tile<R, C>& t, float* out) {
  for (int r = 0; r < t.rows; ++r) {
    VF m = set1(-__builtin_inff());
    int j = 0;
    for (; (j + 1) * kLanes <= t.cols; ++j) m = max(m, t.vec(r, j));
    if (j * kLanes < t.cols) {  // partial vector: mask the padding with -inf
      float tmp[kLanes];
      simd::store(tmp, t.vec(r, j));
      for (int l = t.cols - j * kLanes; l < kLanes; ++l) tmp[l] = -__builtin_inff();
      m = max(m, simd::load(tmp));
    }
    out[r] = reduce_max(m);
  }
}
// out[r] = sum of row r (padding is zero, so the whole row can be summed).
template <int R, int C>
inline void row_sum(const Tile<R, C>& t, float* out) {
  for (int r = 0; r < t.rows; ++r) {
    VF s = zero();
    for (int j = 0; j < Tile<R, C>::kVecs; ++j) s = simd::add(s, t.vec(r, j));
    out[r] = reduce_add(s);
  }
}
// out[c] = max / sum over the valid rows of column c, for all C columns.
template <int R, int C>
inline void col_max(const Tile<R, C>& t, float* out) {
  for (int j = 0; j < Tile<R, C>::kVecs; ++j) {
    VF m = set1(-__builtin_inff());
    for (int r = 0; r < t.rows; ++r) m = max(m, t.vec(r, j));
    simd::store(out + j * kLanes, m);
  }
}
template <int R, int C>
inline void col_sum(const Tile<R, C>& t, float* out) {
  for (int j = 0; j < Tile<R, C>::kVecs; ++j) {
    VF s = zero();
    for (int r = 0; r < t.rows; ++r) s = simd::add(s, t.vec(r, j));
    simd::store(out + j * kLanes, s);
  }
}

// ---- broadcasts ---------------------------------------------------------------------------------
// t[r, c] op= v[r]: one value per row, broadcast along the row.
template <int R, int C>
inline void sub_row(Tile<R, C>& t, const float* v) {
  for (int r = 0; r < R; ++r) {
    const VF x = set1(r < t.rows ? v[r] : 0.0f);
    for (int j = 0; j < Tile<R, C>::kVecs; ++j) t.set_vec(r, j, sub(t.vec(r, j), x));
  }
}
template <int R, int C>
inline void mul_row(Tile<R, C>& t, const float* v) {
  for (int r = 0; r < R; ++r) {
    const VF x = set1(r < t.rows ? v[r] : 0.0f);
    for (int j = 0; j < Tile<R, C>::kVecs; ++j) t.set_vec(r, j, mul(t.vec(r, j), x));
  }
}
// t[r, c] op= v[c]: one value per column, broadcast down the columns.
template <int R, int C>
inline void mul_col(Tile<R, C>& t, const float* v) {
  for (int j = 0; j < Tile<R, C>::kVecs; ++j) {
    const VF x = simd::load(v + j * kLanes);
    for (int r = 0; r < R; ++r) t.set_vec(r, j, mul(t.vec(r, j), x));
  }
}
template <int R, int C>
inline void add_col(Tile<R, C>& t, const float* v) {
  for (int j = 0; j < Tile<R, C>::kVecs; ++j) {
    const VF x = simd::load(v + j * kLanes);
    for (int r = 0; r < R; ++r) t.set_vec(r, j, simd::add(t.vec(r, j), x));
  }
}

// ---- online softmax -----------------------------------------------------------------------------
// Running row max m and row sum l over key blocks (FlashAttention). For each new score tile S
// (rows = queries/heads, valid cols = keys; invalid keys must already be -inf):
//   m' = max(m, rowmax S);  P = exp(S - m');  alpha = exp(m - m');  l = l * alpha + rowsum P
// step() turns S into P in place and returns alpha per row, by which the caller rescales its
// output accumulator. A row that has seen only -inf keeps m = -inf, P = 0 and alpha = 1 (no NaN).
template <int R>
struct OnlineSoftmax {
  float m[R], l[R];
  void reset() {
    for (int r = 0; r < R; ++r) m[r] = -__builtin_inff(), l[r] = 0.0f;
  }
  template <int C>
  void step(Tile<R, C>& s, float* alpha) {
    float bmax[R], sum[R];
    row_max(s, bmax);
    for (int r = 0; r < s.rows; ++r) {
      const float m_new = bmax[r] > m[r] ? bmax[r] : m[r];
      const float shift = m_new == -__builtin_inff() ? 0.0f : m_new;  // all -inf so far
      alpha[r] = m[r] == -__builtin_inff() ? (m_new == -__builtin_inff() ? 1.0f : 0.0f)
                                           : __builtin_expf(m[r] - m_new);
      bmax[r] = shift;
      m[r] = m_new;
    }
    for (int r = s.rows; r < R; ++r) bmax[r] = 0.0f;
    // Padding columns hold 0, not -inf: mask them so they add nothing to the sums.
    for (int r = 0; r < R; ++r) {
      const VF sh = set1(bmax[r]);
      for (int j = 0; j < Tile<R, C>::kVecs; ++j) {
        VF p = simd::exp(sub(s.vec(r, j), sh));
        if ((j + 1) * kLanes > s.cols || r >= s.rows) {
          float tmp[kLanes];
          simd::store(tmp, p);
          for (int q = 0; q < kLanes; ++q)
            if (j * kLanes + q >= s.cols || r >= s.rows) tmp[q] = 0.0f;
          p = simd::load(tmp);
        }
        s.set_vec(r, j, p);
      }
    }
    row_sum(s, sum);
    for (int r = 0; r < s.rows; ++r) l[r] = l[r] * alpha[r] + sum[r];
  }
  // Natural-log sum of exp over everything seen (-inf when nothing valid was seen).
  float lse(int r) const { return l[r] > 0 ? m[r] + __builtin_logf(l[r]) : -__builtin_inff(); }
};

}  // namespace dsinfer::DSINFER_ISA_NS::tile
