#include "dist/expert_parallel.h"

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "dist/layout.h"

namespace dsinfer::dist {

namespace {

// What one rank sends another: `tokens` wire rows, then `pairs` (index into those rows, expert).
struct Counts {
  int64_t tokens = 0, pairs = 0;
};

}  // namespace

ExpertExchange expert_parallel_moe(Communicator& ep, const ExpertDispatch& d, const ExpertFn& fn,
                                   float* out) {
  const int E = ep.size();
  if (d.n_experts % E != 0)
    throw std::invalid_argument("expert_parallel_moe: " + std::to_string(E) +
                                " ranks do not divide " + std::to_string(d.n_experts) + " experts");
  for (int64_t i = 0; i < d.rows * d.k; ++i)
    if (d.ids[i] < 0 || d.ids[i] >= d.n_experts)
      throw std::invalid_argument("expert_parallel_moe: expert id " + std::to_string(d.ids[i]) +
                                  " out of range");
  // Per destination: its tokens (home row index) and pairs (slot i * k + j), tokens ascending and
  // each token's experts in slot order.
  std::vector<std::vector<int64_t>> tok(static_cast<size_t>(E)), slot(static_cast<size_t>(E));
  std::vector<std::vector<int32_t>> pair_tok(static_cast<size_t>(E)),
      pair_exp(static_cast<size_t>(E));
  for (int64_t i = 0; i < d.rows; ++i)
    for (int j = 0; j < d.k; ++j) {
      const int32_t e = d.ids[i * d.k + j];
      const size_t dst = size_t(expert_owner(e, d.n_experts, E));
      if (tok[dst].empty() || tok[dst].back() != i) tok[dst].push_back(i);
      slot[dst].push_back(i * d.k + j);
      pair_tok[dst].push_back(int32_t(tok[dst].size() - 1));
      pair_exp[dst].push_back(e);
    }
  ExpertExchange sent;
  for (int r = 0; r < E; ++r)
    if (r != ep.rank()) {
      sent.remote_rows += int64_t(tok[size_t(r)].size());
      sent.remote_pairs += int64_t(slot[size_t(r)].size());
    }
  // Exchange counts.
  std::vector<Counts> send_n(static_cast<size_t>(E)), recv_n(static_cast<size_t>(E));
  for (int r = 0; r < E; ++r)
    send_n[size_t(r)] = {int64_t(tok[size_t(r)].size()), int64_t(slot[size_t(r)].size())};
  {
    std::vector<int64_t> c(static_cast<size_t>(E), sizeof(Counts)), disp = displacements(c);
    ep.alltoallv(send_n.data(), c, disp, recv_n.data(), c, disp, Traffic::ep_dispatch);
  }
  // Dispatch: per destination [tokens * row_bytes][pairs * 8].
  auto msg_bytes = [&](const Counts& n) { return n.tokens * int64_t(d.row_bytes) + n.pairs * 8; };
  std::vector<int64_t> sc(static_cast<size_t>(E)), rc(static_cast<size_t>(E));
  for (int r = 0; r < E; ++r) sc[size_t(r)] = msg_bytes(send_n[size_t(r)]);
  for (int r = 0; r < E; ++r) rc[size_t(r)] = msg_bytes(recv_n[size_t(r)]);
  const std::vector<int64_t> sd = displacements(sc), rd = displacements(rc);
  std::vector<uint8_t> sendbuf(size_t(sd.back() + sc.back())),
      recvbuf(size_t(rd.back() + rc.back()));
  for (int r = 0; r < E; ++r) {
    uint8_t* p = sendbuf.data() + sd[size_t(r)];
    for (int64_t i : tok[size_t(r)]) {
      std::memcpy(p, d.wire + i * int64_t(d.row_bytes), d.row_bytes);
      p += d.row_bytes;
    }
    for (size_t q = 0; q < slot[size_t(r)].size(); ++q) {
      std::memcpy(p, &pair_tok[size_t(r)][q], 4);
      std::memcpy(p + 4, &pair_exp[size_t(r)][q], 4);
      p += 8;
    }
  }
  ep.alltoallv(sendbuf.data(), sc, sd, recvbuf.data(), rc, rd, Traffic::ep_dispatch);

  // Run the local experts, ascending, on the rows that chose them (in source, then pair order),
  // writing each pair's output where its source expects it back.
  const auto [e0, e1] = expert_range(d.n_experts, E, ep.rank());
  std::vector<int64_t> back_c(static_cast<size_t>(E));
  for (int r = 0; r < E; ++r) back_c[size_t(r)] = recv_n[size_t(r)].pairs * d.out_dim * 4;
  const std::vector<int64_t> back_d = displacements(back_c);
  std::vector<float> back(size_t((back_d.back() + back_c.back()) / 4));
  struct Use {
    int src;
    int64_t pair;  // index in the source's pair list
    const uint8_t* row;
  };
  std::vector<std::vector<Use>> uses(static_cast<size_t>(e1 - e0));
  for (int r = 0; r < E; ++r) {
    const uint8_t* base = recvbuf.data() + rd[size_t(r)];
    const uint8_t* pairs = base + recv_n[size_t(r)].tokens * int64_t(d.row_bytes);
    for (int64_t q = 0; q < recv_n[size_t(r)].pairs; ++q) {
      int32_t t, e;
      std::memcpy(&t, pairs + q * 8, 4);
      std::memcpy(&e, pairs + q * 8 + 4, 4);
      if (e < e0 || e >= e1 || t < 0 || t >= recv_n[size_t(r)].tokens)
        throw std::runtime_error("expert_parallel_moe: rank " + std::to_string(r) +
                                 " sent a pair for expert " + std::to_string(e) + ", which rank " +
                                 std::to_string(ep.rank()) + " does not hold");
      uses[size_t(e - e0)].push_back({r, q, base + int64_t(t) * int64_t(d.row_bytes)});
    }
  }
  std::vector<uint8_t> rows;
  std::vector<float> y;
  for (int64_t e = e0; e < e1; ++e) {
    const auto& u = uses[size_t(e - e0)];
    if (u.empty()) continue;
    const int64_t n = int64_t(u.size());
    rows.resize(size_t(n) * d.row_bytes);
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(rows.data() + i * int64_t(d.row_bytes), u[size_t(i)].row, d.row_bytes);
    y.resize(size_t(n * d.out_dim));
    fn(e, n, rows.data(), y.data());
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(
          back.data() + back_d[size_t(u[size_t(i)].src)] / 4 + u[size_t(i)].pair * d.out_dim,
          y.data() + i * d.out_dim, size_t(d.out_dim) * 4);
  }

  // Combine: every pair's output back to its home, into its slot.
  std::vector<int64_t> home_c(static_cast<size_t>(E));
  for (int r = 0; r < E; ++r) home_c[size_t(r)] = send_n[size_t(r)].pairs * d.out_dim * 4;
  const std::vector<int64_t> home_d = displacements(home_c);
  std::vector<float> home(size_t((home_d.back() + home_c.back()) / 4));
  ep.alltoallv(back.data(), back_c, back_d, home.data(), home_c, home_d, Traffic::ep_combine);
  for (int r = 0; r < E; ++r)
    for (size_t q = 0; q < slot[size_t(r)].size(); ++q)
      std::memcpy(out + slot[size_t(r)][q] * d.out_dim,
                  home.data() + home_d[size_t(r)] / 4 + int64_t(q) * d.out_dim,
                  size_t(d.out_dim) * 4);
  return sent;
}

}  // namespace dsinfer::dist
