// Top-k key selection over score rows (spec §3.3): for each row the min(k, n_valid) keys with the
// largest scores, sorted by score descending then position ascending (ties go to the smaller
// position); unused slots are -1. NaN counts as -inf. Radix select over the score bits (three
// histogram passes), never a full sort of the row; threaded over rows.
#pragma once

#include <cstdint>

namespace dsinfer {

// scores: [n_rows, ld] (row t's keys are scores[t * ld + s], s < n_keys); n_valid: [n_rows] with
// each in [0, n_keys], keys s < n_valid[t] compete (nullptr = all n_keys); k in [0, 65536].
// idx_out: [n_rows, k] int32; score_out: [n_rows, k] or nullptr (padding slots: -inf; NaN: -inf).
void topk(const float* scores, int64_t n_rows, int64_t n_keys, int64_t ld, const int64_t* n_valid,
          int k, int32_t* idx_out, float* score_out);

}  // namespace dsinfer
