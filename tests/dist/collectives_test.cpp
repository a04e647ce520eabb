// The communicator's collectives and the expert-parallel exchange, on however many ranks this
// binary runs on: one process under ctest's discovery (the local communicator), and 2, 3 and 4
// ranks under mpirun (the dist_mpi_np* tests in CMakeLists.txt). Results are checked against a
// gather-everything reference every rank computes alone.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "dist/communicator.h"
#include "dist/expert_parallel.h"
#include "dist/layout.h"

namespace dsinfer::dist {
namespace {

// Rank r contributes (r * 7 + 3) % 5 bytes (some contribute none), each byte r * 16 + i.
std::vector<int64_t> counts_for(int n) {
  std::vector<int64_t> c(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) c[size_t(r)] = (r * 7 + 3) % 5;
  return c;
}
std::vector<int64_t> displs_for(const std::vector<int64_t>& c) {
  std::vector<int64_t> d(c.size(), 0);
  for (size_t i = 1; i < c.size(); ++i) d[i] = d[i - 1] + c[i - 1];
  return d;
}
std::vector<uint8_t> bytes_of(int r, int64_t n) {
  std::vector<uint8_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = uint8_t(r * 16 + i);
  return v;
}

TEST(Collectives, GathersBroadcastsAndAllToAll) {
  Communicator& w = world();
  const int n = w.size(), me = w.rank();
  const std::vector<int64_t> c = counts_for(n), d = displs_for(c);
  const int64_t total = d.back() + c.back();
  std::vector<uint8_t> expect(static_cast<size_t>(total));
  for (int r = 0; r < n; ++r) {
    const auto b = bytes_of(r, c[size_t(r)]);
    std::copy(b.begin(), b.end(), expect.begin() + d[size_t(r)]);
  }
  const auto mine = bytes_of(me, c[size_t(me)]);
  std::vector<uint8_t> out(static_cast<size_t>(total), 0xee);
  w.allgatherv(mine.data(), c, d, out.data(), Traffic::control);
  EXPECT_EQ(out, expect);
  std::fill(out.begin(), out.end(), 0xee);
  w.iallgatherv(mine.data(), c, d, out.data(), Traffic::control)->wait();
  EXPECT_EQ(out, expect);
  std::fill(out.begin(), out.end(), 0xee);
  w.gatherv(mine.data(), c, d, out.data(), 0, Traffic::control);
  if (me == 0) {
    EXPECT_EQ(out, expect);
  }

  int64_t v[2] = {me == 0 ? 42 : -1, me == 0 ? 7 : -1};
  w.broadcast(v, sizeof(v), 0, Traffic::control);
  EXPECT_EQ(v[0], 42);
  EXPECT_EQ(v[1], 7);
  const std::vector<int> ranks = w.allgather_value(me * 3);
  for (int r = 0; r < n; ++r) EXPECT_EQ(ranks[size_t(r)], r * 3);

  // All-to-all: rank s sends (s + t) % 3 bytes to rank t, each s * 16 + t.
  std::vector<int64_t> sc(static_cast<size_t>(n)), rc(static_cast<size_t>(n));
  for (int t = 0; t < n; ++t) sc[size_t(t)] = (me + t) % 3, rc[size_t(t)] = (t + me) % 3;
  const std::vector<int64_t> sd = displs_for(sc), rd = displs_for(rc);
  std::vector<uint8_t> send(static_cast<size_t>(sd.back() + sc.back())),
      recv(static_cast<size_t>(rd.back() + rc.back()));
  for (int t = 0; t < n; ++t)
    std::fill_n(send.begin() + sd[size_t(t)], sc[size_t(t)], uint8_t(me * 16 + t));
  w.alltoallv(send.data(), sc, sd, recv.data(), rc, rd, Traffic::control);
  for (int s = 0; s < n; ++s)
    for (int64_t i = 0; i < rc[size_t(s)]; ++i)
      EXPECT_EQ(recv[size_t(rd[size_t(s)] + i)], uint8_t(s * 16 + me));
}

TEST(Collectives, SplitGroupsRanksByColorInKeyOrder) {
  Communicator& w = world();
  const int n = w.size(), me = w.rank();
  std::unique_ptr<Communicator> odd_even = w.split(me % 2, -me);  // descending by rank
  const int group = (n - me % 2 + 1) / 2;
  EXPECT_EQ(odd_even->size(), group);
  const std::vector<int> members = odd_even->allgather_value(me);
  for (size_t i = 0; i + 1 < members.size(); ++i) EXPECT_GT(members[i], members[i + 1]);
  EXPECT_EQ(members[size_t(odd_even->rank())], me);
}

// A pure "expert": output d of expert e on a row x is x[d % D] * (e + 1) + sum(x) - d.
constexpr int64_t kDim = 6;
void expert_of(int64_t e, const float* x, float* y) {
  float s = 0;
  for (int64_t d = 0; d < kDim; ++d) s += x[d];
  for (int64_t d = 0; d < kDim; ++d) y[d] = x[d] * float(e + 1) + s - float(d);
}

enum class Routing { random, all_to_rank0, some_ranks_empty, nobody };

void check_exchange(Routing routing, int64_t n_experts, int k, uint32_t seed) {
  Communicator& w = world();
  const int E = w.size(), me = w.rank();
  std::mt19937 rng(seed * 131 + uint32_t(me));
  int64_t rows = int64_t(rng() % 24);
  if (routing == Routing::nobody || (routing == Routing::some_ranks_empty && me % 2 == 1)) rows = 0;
  const int64_t per = n_experts / E;
  std::vector<float> x(static_cast<size_t>(rows * kDim));
  for (auto& v : x) v = float(int(rng() % 200) - 100) / 8.0f;
  std::vector<int32_t> ids(static_cast<size_t>(rows * k));
  for (int64_t i = 0; i < rows; ++i) {
    std::vector<int32_t> pool(
        static_cast<size_t>(routing == Routing::all_to_rank0 ? per : n_experts));
    std::iota(pool.begin(), pool.end(), 0);
    std::shuffle(pool.begin(), pool.end(), rng);
    for (int j = 0; j < k; ++j) ids[size_t(i * k + j)] = pool[size_t(j)];
  }
  ExpertDispatch d;
  d.n_experts = n_experts;
  d.rows = rows;
  d.k = k;
  d.ids = ids.data();
  d.wire = reinterpret_cast<const uint8_t*>(x.data());
  d.row_bytes = kDim * 4;
  d.out_dim = kDim;
  std::vector<float> out(static_cast<size_t>(rows * k * kDim), -12345.0f);
  int64_t last_expert = -1;
  w.traffic().reset();
  expert_parallel_moe(
      w, d,
      [&](int64_t e, int64_t n, const uint8_t* in, float* y) {
        EXPECT_EQ(expert_owner(e, n_experts, E), me) << "expert " << e << " run on rank " << me;
        EXPECT_GT(e, last_expert) << "experts must run in ascending id";
        last_expert = e;
        for (int64_t r = 0; r < n; ++r)
          expert_of(e, reinterpret_cast<const float*>(in) + r * kDim, y + r * kDim);
      },
      out.data());
  // The gather-everything reference: every (row, expert) computed here.
  std::vector<float> ref(static_cast<size_t>(kDim));
  for (int64_t i = 0; i < rows; ++i)
    for (int j = 0; j < k; ++j) {
      expert_of(ids[size_t(i * k + j)], x.data() + i * kDim, ref.data());
      for (int64_t c = 0; c < kDim; ++c)
        ASSERT_EQ(out[size_t((i * k + j) * kDim + c)], ref[size_t(c)])
            << "rank " << me << " row " << i << " slot " << j;
    }
  // Volumes: each row once per destination rank holding one of its experts, 8 bytes per pair,
  // the counts (16 bytes per peer); outputs come back one per pair.
  double dispatch = 16.0 * (E - 1), combine = 0;
  for (int t = 0; t < E; ++t) {
    if (t == me) continue;
    for (int64_t i = 0; i < rows; ++i) {
      int pairs = 0;
      for (int j = 0; j < k; ++j) pairs += expert_owner(ids[size_t(i * k + j)], n_experts, E) == t;
      if (pairs > 0) dispatch += double(kDim * 4 + 8 * pairs);
      combine += double(pairs * kDim * 4);
    }
  }
  if (E > 1) {
    EXPECT_EQ(w.traffic().sent[Traffic::ep_dispatch], dispatch);
    EXPECT_EQ(w.traffic().received[Traffic::ep_combine], combine);
  }
}

TEST(ExpertParallel, MatchesGatherEverythingReference) {
  const int E = world().size();
  for (uint32_t seed = 0; seed < 6; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    check_exchange(Routing::random, 4 * E, 3, seed);
    check_exchange(Routing::random, 2 * E, 1, seed);
    check_exchange(Routing::all_to_rank0, 4 * E, 4, seed);
    check_exchange(Routing::some_ranks_empty, 8 * E, 2, seed);
    check_exchange(Routing::nobody, 4 * E, 2, seed);
  }
}

TEST(ExpertParallel, RejectsExpertCountsTheGroupDoesNotDivide) {
  const int E = world().size();
  if (E == 1) GTEST_SKIP() << "one rank divides every expert count";
  ExpertDispatch d;
  d.n_experts = 2 * E + 1;
  d.out_dim = kDim;
  EXPECT_THROW(expert_parallel_moe(world(), d, nullptr, nullptr), std::invalid_argument);
}

}  // namespace
}  // namespace dsinfer::dist
