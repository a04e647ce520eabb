#include "dist/layout.h"

#include <stdexcept>

namespace dsinfer::dist {

void check_layout(const Layout& l, int n, int64_t n_experts) {
  auto need = [&](int v, const char* flag) {
    if (v < 1)
      throw std::invalid_argument(std::string(flag) + " " + std::to_string(v) + " must be >= 1");
    if (n % v != 0)
      throw std::invalid_argument(std::string(flag) + " " + std::to_string(v) +
                                  " does not divide the " + std::to_string(n) +
                                  " ranks of this job (mpirun -np)");
  };
  need(l.ep, "--ep");
  need(l.cp, "--cp");
  need(l.dp, "--dp");
  if (l.ep > 1 && n_experts > 0 && n_experts % l.ep != 0)
    throw std::invalid_argument("--ep " + std::to_string(l.ep) + " does not divide the model's " +
                                std::to_string(n_experts) + " routed experts");
  if (l.ep > 1 && n_experts == 0)
    throw std::invalid_argument("--ep " + std::to_string(l.ep) +
                                ": the model has no routed experts");
  if ((n / l.dp) % l.cp != 0)
    throw std::invalid_argument("--cp " + std::to_string(l.cp) + " does not divide the " +
                                std::to_string(n / l.dp) +
                                " ranks of a data-parallel attention group (mpirun -np / --dp)");
}

RankPlace place_of(const Layout& l, int n, int rank) {
  const int G = n / l.dp, q = rank % G;
  return RankPlace{rank / G, q % l.cp, q / l.cp};
}

std::vector<int64_t> cp_segment_bounds(int64_t n, int cp) {
  const int64_t segs = 2 * int64_t(cp), base = n / segs, extra = n % segs;
  std::vector<int64_t> b(static_cast<size_t>(segs + 1), 0);
  for (int64_t s = 0; s < segs; ++s) b[size_t(s + 1)] = b[size_t(s)] + base + (s < extra ? 1 : 0);
  return b;
}

std::vector<int64_t> cp_tokens_of(int64_t n, int cp, int r) {
  const std::vector<int64_t> b = cp_segment_bounds(n, cp);
  std::vector<int64_t> out;
  for (int64_t s : {int64_t(r), int64_t(2 * cp - 1 - r)})
    for (int64_t t = b[size_t(s)]; t < b[size_t(s + 1)]; ++t) out.push_back(t);
  return out;
}

int cp_owner(int64_t n, int cp, int64_t t) {
  const std::vector<int64_t> b = cp_segment_bounds(n, cp);
  for (int s = 0; s < 2 * cp; ++s)
    if (t < b[size_t(s + 1)]) return s < cp ? s : 2 * cp - 1 - s;
  throw std::out_of_range("cp_owner: token " + std::to_string(t) + " of " + std::to_string(n));
}

std::pair<int64_t, int64_t> split_range(int64_t n, int parts, int i) {
  const int64_t base = n / parts, extra = n % parts;
  const int64_t first = i * base + std::min<int64_t>(i, extra);
  return {first, first + base + (i < extra ? 1 : 0)};
}

std::pair<int64_t, int64_t> expert_range(int64_t n_experts, int ep, int r) {
  const int64_t per = n_experts / ep;
  return {r * per, (r + 1) * per};
}

}  // namespace dsinfer::dist
