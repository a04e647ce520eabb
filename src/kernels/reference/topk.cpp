#include "kernels/reference/topk.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <vector>

namespace dsinfer::ref {

int64_t causal_valid_length(int32_t pos, int64_t n_keys) {
  return std::clamp<int64_t>(int64_t(pos) + 1, 0, n_keys);
}

void topk_indices(const float* scores, int64_t n_rows, int64_t n_keys, const int64_t* n_valid,
                  int k, int32_t* idx_out, float* score_out) {
  if (k < 0) throw std::invalid_argument("topk_indices: k must be >= 0");
  const float neg_inf = -std::numeric_limits<float>::infinity();
  std::vector<int32_t> order;
  for (int64_t t = 0; t < n_rows; ++t) {
    const int64_t valid = n_valid ? n_valid[t] : n_keys;
    if (valid < 0 || valid > n_keys)
      throw std::invalid_argument("topk_indices: n_valid outside [0, n_keys]");
    const float* row = scores + t * n_keys;
    auto key_score = [&](int32_t s) { return std::isnan(row[s]) ? neg_inf : row[s]; };
    // A strict total order on keys: higher score first, then smaller index.
    auto before = [&](int32_t a, int32_t b) {
      float sa = key_score(a), sb = key_score(b);
      return sa != sb ? sa > sb : a < b;
    };
    order.resize(valid);
    std::iota(order.begin(), order.end(), 0);
    const int64_t n_sel = std::min<int64_t>(k, valid);
    std::partial_sort(order.begin(), order.begin() + n_sel, order.end(), before);
    for (int64_t j = 0; j < k; ++j) {
      bool used = j < n_sel;
      idx_out[t * k + j] = used ? order[j] : -1;
      if (score_out) score_out[t * k + j] = used ? key_score(order[j]) : neg_inf;
    }
  }
}

}  // namespace dsinfer::ref
