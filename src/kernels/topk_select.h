// Top-k selection building blocks shared by the standalone top-k kernel and the lightning
// indexer's fused selection (compiled per ISA: include only from *.isa.cpp files).
//
// A candidate is one uint64 "composite": the score's order-preserving 32-bit key in the high half
// and ~position in the low half, so that plain unsigned comparison orders candidates exactly as
// the spec wants: score descending, then position ascending (ties go to the smaller position).
// NaN scores count as -inf, and -0 as +0.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

namespace dsinfer::DSINFER_ISA_NS::topk {

inline constexpr uint32_t kNegInfKey = 0x007fffffu;  // order key of -inf (= ~0xff800000)

// Order-preserving map f32 -> u32 (larger float, larger key).
inline uint32_t score_key(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return kNegInfKey;  // NaN -> -inf
  if (u == 0x80000000u) u = 0;                             // -0 -> +0
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
inline float key_score(uint32_t k) {
  const uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint64_t composite(uint32_t key, int64_t pos) {
  return (uint64_t(key) << 32) | uint64_t(~uint32_t(pos));
}
inline int32_t composite_pos(uint64_t c) {
  return int32_t(~uint32_t(c));
}
inline float composite_score(uint64_t c) {
  return key_score(uint32_t(c >> 32));
}

// The k-th largest of n 32-bit keys key(0 .. n-1) (0 < k <= n), by three histogram passes of
// 11 / 11 / 10 bits, each over the keys that share the bits found so far; *need: how many of the
// keys equal to it are among the k largest (the rest of the k are above it).
template <class Key>
inline uint32_t kth_largest_key(size_t n, size_t k, Key key, size_t* need) {
  uint32_t prefix = 0, prefix_mask = 0;
  size_t left = k;  // how many still to take at or below the current prefix
  static constexpr int kShift[3] = {21, 10, 0};
  static constexpr int kBits[3] = {11, 11, 10};
  uint32_t hist[2048];
  for (int pass = 0; pass < 3; ++pass) {
    const int bins = 1 << kBits[pass], sh = kShift[pass];
    std::memset(hist, 0, sizeof(uint32_t) * size_t(bins));
    for (size_t i = 0; i < n; ++i) {
      const uint32_t v = key(i);
      hist[(v >> sh) & uint32_t(bins - 1)] += (v & prefix_mask) == prefix;
    }
    int b = bins - 1;
    for (; b > 0; --b) {
      if (hist[b] >= left) break;
      left -= hist[b];
    }
    prefix |= uint32_t(b) << sh;
    prefix_mask |= uint32_t(bins - 1) << sh;
  }
  *need = left;
  return prefix;
}

// Keeps the k largest composites of c[0, n) in c[0, k) (unordered); returns min(k, n).
// Short lists by nth_element; longer ones by a radix select on the score keys (the high halves:
// three histogram passes of 11 / 11 / 10 bits find the k-th largest key, a fourth keeps every
// composite above it), ties at that key settled among themselves by position. Where k is most
// of n (the indexer's prefill: 2048 of a few thousand), that is several times faster than
// nth_element's data-dependent branches.
inline size_t keep_top(uint64_t* c, size_t n, size_t k) {
  if (n <= k) return n;
  if (k == 0) return 0;
  if (n < 512) {
    std::nth_element(c, c + (k - 1), c + n, std::greater<uint64_t>());
    return k;
  }
  size_t need;
  const uint32_t prefix = kth_largest_key(
      n, k, [c](size_t i) { return uint32_t(c[i] >> 32); }, &need);
  // prefix: the k-th largest key; `need` of the composites with that key are kept, the ones of
  // the smallest positions (the largest composites).
  thread_local std::vector<uint64_t> equal;
  equal.clear();
  size_t out = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint64_t v = c[i];
    const uint32_t key = uint32_t(v >> 32);
    if (key > prefix)
      c[out++] = v;
    else if (key == prefix)
      equal.push_back(v);
  }
  if (equal.size() > need)
    std::nth_element(equal.begin(), equal.begin() + std::ptrdiff_t(need - 1), equal.end(),
                     std::greater<uint64_t>());
  std::copy(equal.begin(), equal.begin() + std::ptrdiff_t(need), c + out);
  return k;
}

// Sorts c[0, n) (best first) and writes positions / scores into k output slots; slots past n
// get -1 / -inf.
inline void emit_sorted(uint64_t* c, size_t n, int k, int32_t* idx, float* score) {
  std::sort(c, c + n, std::greater<uint64_t>());
  for (int i = 0; i < k; ++i) {
    const bool ok = size_t(i) < n;
    idx[i] = ok ? composite_pos(c[i]) : -1;
    if (score) score[i] = ok ? composite_score(c[i]) : -__builtin_inff();
  }
}

// Writes the positions of c[0, n) in ascending order into k output slots, with their scores;
// slots past n get -1 / -inf. A bit per position up to the largest one (`bits`) and a score per
// position (`by_pos`, only with `score`) replace the sort: O(n + largest position / 64).
inline void emit_by_position(const uint64_t* c, size_t n, int k, int32_t* idx, float* score,
                             std::vector<uint64_t>& bits, std::vector<float>& by_pos) {
  int32_t last = -1;
  for (size_t i = 0; i < n; ++i) last = std::max(last, composite_pos(c[i]));
  bits.assign(size_t(last + 1 + 63) / 64, 0);  // none when n == 0
  if (score && by_pos.size() < size_t(last + 1)) by_pos.resize(size_t(last + 1));
  for (size_t i = 0; i < n; ++i) {
    const int32_t p = composite_pos(c[i]);
    bits[size_t(p) / 64] |= uint64_t(1) << (p % 64);
    if (score) by_pos[size_t(p)] = composite_score(c[i]);
  }
  int out = 0;
  for (size_t w = 0; w < bits.size(); ++w)
    for (uint64_t b = bits[w]; b != 0; b &= b - 1) {
      const int32_t p = int32_t(w * 64) + __builtin_ctzll(b);
      idx[out] = p;
      if (score) score[out] = by_pos[size_t(p)];
      ++out;
    }
  for (; out < k; ++out) {
    idx[out] = -1;
    if (score) score[out] = -__builtin_inff();
  }
}

// A running top-k over candidates arriving in increasing position order: a buffer with a
// threshold. Once k candidates have been kept, a new candidate enters only when its composite
// beats the k-th best so far (equal scores lose to the earlier key, so `>` is exact); when the
// buffer is full it is compacted to the best k and the threshold rises.
class RunningTopK {
 public:
  void reset(int k, size_t capacity) {
    k_ = size_t(k);
    cap_ = std::max(capacity, 2 * k_ + 64);
    if (buf_.size() < cap_) buf_.resize(cap_);
    n_ = 0;
    thr_ = 0;
    full_ = false;
  }
  // Lowest composite that can still enter, minus one (0 until k candidates were seen).
  uint64_t threshold() const { return thr_; }
  void push(uint64_t c) {
    if (c <= thr_ && full_) return;
    buf_[n_++] = c;
    if (n_ == cap_) compact();
  }
  void push_scores(const float* s, int64_t pos0, int n) {
    for (int i = 0; i < n; ++i) push(composite(score_key(s[i]), pos0 + i));
  }
  // The best k (unordered) in data()[0, size()).
  void finish() { n_ = keep_top(buf_.data(), n_, k_); }
  uint64_t* data() { return buf_.data(); }
  size_t size() const { return n_; }

 private:
  void compact() {
    n_ = keep_top(buf_.data(), n_, k_);
    if (n_ == k_ && k_ > 0) {
      thr_ = *std::min_element(buf_.data(), buf_.data() + n_);
      full_ = true;
    }
  }
  std::vector<uint64_t> buf_;
  size_t k_ = 0, cap_ = 0, n_ = 0;
  uint64_t thr_ = 0;
  bool full_ = false;
};

// Radix select over the 32-bit score keys of s[0, n): returns in `out` the composites of the
// min(k, n) best (unordered). Three passes of 11/11/10 bits find the exact k-th key; then all
// keys above it and the first (smallest-position) ones equal to it are taken.
inline size_t radix_select(const float* s, int64_t n, int k, std::vector<uint32_t>& keys,
                           std::vector<uint64_t>& out) {
  out.clear();
  if (k <= 0 || n <= 0) return 0;
  keys.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) keys[size_t(i)] = score_key(s[i]);
  if (n <= k) {
    for (int64_t i = 0; i < n; ++i) out.push_back(composite(keys[size_t(i)], i));
    return out.size();
  }
  size_t need;  // of the keys equal to the k-th largest, how many are taken
  const uint32_t thr = kth_largest_key(
      size_t(n), size_t(k), [&keys](size_t i) { return keys[i]; }, &need);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t key = keys[size_t(i)];
    if (key > thr) {
      out.push_back(composite(key, i));
    } else if (key == thr && need > 0) {
      out.push_back(composite(key, i));
      --need;
    }
  }
  return out.size();
}

}  // namespace dsinfer::DSINFER_ISA_NS::topk
