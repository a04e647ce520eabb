// Top-k key selection from indexer scores (spec §3.3).
#pragma once

#include <cstdint>

namespace dsinfer::ref {

// The number of keys a query at absolute position `pos` may see in a cache of n_keys keys:
// min(pos + 1, n_keys) (keys s <= pos, spec §3.3). Decode at the newest position sees all keys.
int64_t causal_valid_length(int32_t pos, int64_t n_keys);

// For each row t, selects the min(k, n_valid[t]) keys s < n_valid[t] with the largest
// scores[t, s]. Order: score descending, then s ascending, so among equal scores the smaller s
// wins both the selection and the earlier slot. NaN counts as -inf; -inf keys inside the valid
// range are still keys and are selected (by ascending s) when fewer than k keys are finite.
// scores: [n_rows, n_keys] row-major; n_valid: [n_rows], each in [0, n_keys] (nullptr = n_keys).
// idx_out: [n_rows, k] int32, slots past min(k, n_valid[t]) are -1.
// score_out: [n_rows, k] (may be nullptr): the selected scores (NaN reported as -inf), -inf in
// the padding slots.
void topk_indices(const float* scores, int64_t n_rows, int64_t n_keys, const int64_t* n_valid,
                  int k, int32_t* idx_out, float* score_out);

}  // namespace dsinfer::ref
