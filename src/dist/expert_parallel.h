// Expert-parallel MoE exchange (docs/distributed.md): each rank routes its home rows, sends every
// row once to each EP rank that holds one of its experts (MPI_Alltoallv: the rows in their wire
// format, then (row, expert) pairs), the holders run their experts, and every (row, expert)
// output comes back unreduced to the row's home, where the caller sums it in the reference's
// order. Each rank's results are those of one process because the expert kernels are batch
// invariant: a row's output does not depend on which other rows share its GEMM.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "dist/communicator.h"

namespace dsinfer::dist {

struct ExpertDispatch {
  int64_t n_experts = 0;          // all routed experts (divisible by the EP group's size)
  int64_t rows = 0;               // this rank's home rows
  int k = 0;                      // experts per row
  const int32_t* ids = nullptr;   // [rows, k] expert ids
  const uint8_t* wire = nullptr;  // [rows, row_bytes] the rows as the experts consume them
  size_t row_bytes = 0;
  int64_t out_dim = 0;  // floats per expert output
};

// Runs expert `expert` (one this rank holds) on n wire rows into out [n, out_dim].
using ExpertFn = std::function<void(int64_t expert, int64_t n, const uint8_t* rows, float* out)>;

// What this rank sent other ranks: (row, remote rank) dispatches and (row, remote expert) pairs.
struct ExpertExchange {
  int64_t remote_rows = 0, remote_pairs = 0;
};

// out [rows * k, out_dim]: the output of expert ids[i * k + j] on row i at row i * k + j. Every
// rank of `ep` must call it (with rows = 0 when it has none). Experts are called in ascending id.
ExpertExchange expert_parallel_moe(Communicator& ep, const ExpertDispatch& d, const ExpertFn& fn,
                                   float* out);

}  // namespace dsinfer::dist
