// How the ranks of a job share the work (docs/distributed.md):
// - expert parallelism (--ep E): the routed experts are cut into E contiguous ranges; rank r holds
//   range r % E and exchanges tokens with the E ranks r / E * E .. + E - 1 (its EP group);
// - context parallelism (--cp C): the ranks r / C * C .. + C - 1 (a CP group) split every step's
//   tokens: each entry's tokens are cut into 2C segments and CP rank i gets segments i and
//   2C - 1 - i (balanced causal work), while every rank keeps the whole cache;
// - data-parallel attention (--dp D): the ranks form D attention groups of N / D consecutive ranks;
//   each group owns disjoint sequences and their caches (the root's scheduler assigns them), and
//   the MoE layers exchange every group's tokens over the EP groups;
// - inside an attention group, its CP groups are replicas that compute the same tokens; they split
//   each step's MoE rows between them (the home rows of a rank) and gather the results back.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dsinfer::dist {

struct Layout {
  int ep = 1, cp = 1, dp = 1;
};

// Throws std::invalid_argument naming the flag when the layout does not fit `world_size` ranks
// and a model of `n_routed_experts` (0: no MoE layers).
void check_layout(const Layout& l, int world_size, int64_t n_routed_experts);

// Where a rank sits: its attention group, its CP rank there, and which replica it is.
struct RankPlace {
  int group = 0, cp = 0, replica = 0;
};
RankPlace place_of(const Layout& l, int world_size, int rank);

// Bounds of the 2C segments of n tokens: segment s is [b[s], b[s + 1]); the first n % 2C
// segments have one token more.
std::vector<int64_t> cp_segment_bounds(int64_t n, int cp);
// The token indices (ascending) CP rank `r` of `cp` owns among n tokens.
std::vector<int64_t> cp_tokens_of(int64_t n, int cp, int r);
// The CP rank that owns token t of n.
int cp_owner(int64_t n, int cp, int64_t t);

// The contiguous part `i` of `parts` of n items: [first, second), sizes differing by at most one.
std::pair<int64_t, int64_t> split_range(int64_t n, int parts, int i);

// Experts [first, second) of EP rank `r` of `ep` among n_experts (ep divides n_experts).
std::pair<int64_t, int64_t> expert_range(int64_t n_experts, int ep, int r);
inline int expert_owner(int64_t expert, int64_t n_experts, int ep) {
  return int(expert / (n_experts / ep));
}

}  // namespace dsinfer::dist
