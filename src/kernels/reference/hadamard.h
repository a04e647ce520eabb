// The indexer's Hadamard rotation (spec §3.2): v <- H_128 v / sqrt(128), applied to each indexer
// query head and each indexer key before FP8 quantization.
#pragma once

#include <cstdint>

namespace dsinfer::ref {

inline constexpr int kHadamardDim = 128;

// Entry (i, j) of the Sylvester Hadamard matrix (H_2n = [[H_n, H_n], [H_n, -H_n]]), unnormalized:
// (-1)^popcount(i & j), so row 0 is all +1 and row 1 alternates +1, -1.
int hadamard_sign(int i, int j);

// x: [n_rows, 128] row-major, rotated in place: x[r] <- H_128 x[r] / sqrt(128), by the plain
// matrix-vector product accumulated in double (rounded to f32 once per output).
void hadamard_128(float* x, int64_t n_rows);

}  // namespace dsinfer::ref
