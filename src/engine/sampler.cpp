#include "engine/sampler.h"

#include "engine/sampler_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <ranges>
#include <stdexcept>
#include <string>

namespace dsinfer {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kPosInf = std::numeric_limits<float>::infinity();

[[noreturn]] void bad_param(const char* name, const std::string& rule, double got) {
  throw std::invalid_argument(std::string("SamplingParams.") + name + " must be " + rule +
                              ", got " + std::to_string(got));
}

// Order-preserving map of a canonical float (no NaN, no -0) to u32: larger float, larger key.
inline uint32_t order_key(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// The draw every sampler makes: walking `ids` in order over their positive weights, the first id
// at which the running total exceeds u; the last positive one when rounding lets u reach the
// total; -1 when none is positive.
template <class Ids, class Weight>
int32_t walk(const Ids& ids, const Weight& weight, double u) {
  double cum = 0;
  int32_t last = -1;
  for (int32_t id : ids) {
    const double x = weight(id);
    if (x <= 0) continue;
    cum += x;
    last = id;
    if (cum > u) return id;
  }
  return last;
}

}  // namespace

void validate_sampling_params(const SamplingParams& p) {
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature))
    bad_param("temperature", "finite and >= 0 (0 = greedy)", p.temperature);
  if (p.top_k < 0) bad_param("top_k", ">= 0 (0 = off)", p.top_k);
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) bad_param("top_p", "in (0, 1] (1 = off)", p.top_p);
  if (!(p.min_p >= 0.0f && p.min_p < 1.0f)) bad_param("min_p", "in [0, 1) (0 = off)", p.min_p);
  if (!(p.repetition_penalty > 0.0f) || !std::isfinite(p.repetition_penalty))
    bad_param("repetition_penalty", "finite and > 0 (1 = off)", p.repetition_penalty);
  if (!std::isfinite(p.presence_penalty))
    bad_param("presence_penalty", "finite (0 = off)", p.presence_penalty);
  if (!std::isfinite(p.frequency_penalty))
    bad_param("frequency_penalty", "finite (0 = off)", p.frequency_penalty);
  if (p.penalty_last_n < -1)
    bad_param("penalty_last_n", ">= -1 (-1 = all tokens, 0 = off)", p.penalty_last_n);
}

Sampler::Sampler(const SamplingParams& params, int vocab_size)
    : params_(params), vocab_(vocab_size), rng_(params.seed) {
  if (vocab_size <= 0)
    throw std::invalid_argument("Sampler: vocab_size must be > 0, got " +
                                std::to_string(vocab_size));
  validate_sampling_params(params);
  x_.resize(vocab_);
  w_.resize(vocab_);
  cand_.reserve(vocab_);
  keep_.reserve(vocab_);
}

void Sampler::accept(int32_t token) {
  if (token < 0 || token >= vocab_)
    throw std::invalid_argument("Sampler::accept: token " + std::to_string(token) +
                                " is outside [0, vocab_size=" + std::to_string(vocab_) + ")");
  if (params_.penalty_last_n == 0) return;
  window_.push_back(token);
  ++counts_[token];
  if (params_.penalty_last_n > 0 && window_.size() > size_t(params_.penalty_last_n)) {
    const int32_t old = window_.front();
    window_.pop_front();
    auto it = counts_.find(old);
    if (--it->second == 0) counts_.erase(it);
  }
}

int Sampler::count_in_window(int32_t token) const {
  auto it = counts_.find(token);
  return it == counts_.end() ? 0 : it->second;
}

void Sampler::reset() {
  window_.clear();
  counts_.clear();
  rng_.seed_with(params_.seed);
}

float Sampler::prepare(const float* logits) {
  if (!logits) throw std::invalid_argument("Sampler::sample: logits is null");
  float* x = x_.data();
  sampler_canonicalize(logits, x, vocab_);
  const float rep = params_.repetition_penalty;
  const float pres = params_.presence_penalty, freq = params_.frequency_penalty;
  if (rep != 1.0f || pres != 0.0f || freq != 0.0f) {
    for (const auto& [tok, count] : counts_) {
      float v = x[tok];
      if (v == kNegInf) continue;
      if (rep != 1.0f) v = v > 0.0f ? v / rep : v * rep;
      v -= float(count) * freq + pres;
      x[tok] = std::isnan(v) ? kNegInf : v + 0.0f;
    }
  }
  const float m = sampler_max(x, vocab_);
  if (m == kNegInf)
    throw std::invalid_argument(
        "Sampler::sample: logits: every logit is -inf or NaN (after penalties); no token can be "
        "sampled");
  best_ = int32_t(std::find(x, x + vocab_, m) - x);  // first max: ties -> smallest id
  dense_ = true;
  return m;
}

template <class Weight>
void Sampler::select_prefix(double target, Weight weight) {
  static constexpr int kShift[3] = {21, 10, 0};
  static constexpr int kBits[3] = {11, 11, 10};
  const float* x = x_.data();
  keep_.clear();
  double acc = 0;  // weight of everything already kept (all of it ranks above `bucket_`)
  for (int level = 0; level < 3; ++level) {
    const int shift = kShift[level];
    const uint32_t mask = (1u << kBits[level]) - 1;
    // Visits the candidates of this level: every finite token of the vocabulary (dense, level 0),
    // the list cand_ (level 0), or the crossing bucket of the previous level.
    auto for_each = [&](auto&& f) {
      if (level > 0) {
        for (int32_t id : bucket_) f(id);
      } else if (dense_) {
        for (int32_t id = 0; id < vocab_; ++id)
          if (x[id] > kNegInf) f(id);
      } else {
        for (int32_t id : cand_) f(id);
      }
    };
    // Four interleaved histograms break the add-to-same-bucket dependency chains (flat logits).
    const size_t nb = size_t(mask) + 1;
    hist_.assign(4 * nb, 0.0);
    uint32_t lane = 0;
    for_each([&](int32_t id) {
      hist_[(lane++ & 3) * nb + ((order_key(x[id]) >> shift) & mask)] += weight(id);
    });
    for (size_t b = 0; b < nb; ++b)
      hist_[b] += hist_[nb + b] + hist_[2 * nb + b] + hist_[3 * nb + b];
    int cross = -1;
    for (int b = int(mask); b >= 0; --b) {
      if (hist_[b] == 0.0) continue;
      if (acc + hist_[b] >= target) {
        cross = b;
        break;
      }
      acc += hist_[b];
    }
    if (cross < 0) {  // rounding left the target out of reach: the whole set is the prefix
      for_each([&](int32_t id) { keep_.push_back(id); });
      std::swap(cand_, keep_);
      dense_ = false;
      return;
    }
    next_.clear();
    for_each([&](int32_t id) {
      const uint32_t b = (order_key(x[id]) >> shift) & mask;
      if (b > uint32_t(cross))
        keep_.push_back(id);
      else if (b == uint32_t(cross))
        next_.push_back(id);
    });
    std::swap(bucket_, next_);
  }
  // One logit value left: cut in id order.
  if (!std::is_sorted(bucket_.begin(), bucket_.end())) std::sort(bucket_.begin(), bucket_.end());
  for (int32_t id : bucket_) {
    keep_.push_back(id);
    acc += weight(id);
    if (acc >= target) break;
  }
  std::swap(cand_, keep_);
  dense_ = false;
}

double Sampler::build_candidates(const float* logits) {
  const float m = prepare(logits);
  const float* x = x_.data();
  float* w = w_.data();
  if (params_.top_k > 0 && params_.top_k < vocab_)
    select_prefix(double(params_.top_k), [](int32_t) { return 1.0; });

  // Softmax weights relative to the max token (weight 1).
  double z = 0;
  if (m == kPosInf) {  // the limit of the softmax: uniform over the +inf tokens
    if (dense_) {
      for (int32_t id = 0; id < vocab_; ++id) z += (w[id] = x[id] == kPosInf ? 1.0f : 0.0f);
    } else {
      for (int32_t id : cand_) z += (w[id] = x[id] == kPosInf ? 1.0f : 0.0f);
    }
  } else {
    // A temperature so small that 1/T overflows acts as 1/T = FLT_MAX (still only the max counts).
    const float inv_t = std::min(1.0f / params_.temperature, std::numeric_limits<float>::max());
    if (dense_) {
      z = sampler_softmax_weights(x, w, vocab_, m, inv_t);
    } else {  // gather the few candidates so they get the very same exp as the dense path
      const size_t n = cand_.size();
      xs_.resize(n);
      ws_.resize(n);
      for (size_t j = 0; j < n; ++j) xs_[j] = x[cand_[j]];
      z = sampler_softmax_weights(xs_.data(), ws_.data(), int64_t(n), m, inv_t);
      for (size_t j = 0; j < n; ++j) w[cand_[j]] = ws_[j];
    }
  }
  if (params_.top_p < 1.0f)
    select_prefix(double(params_.top_p) * z, [w](int32_t id) { return double(w[id]); });
  if (params_.min_p > 0.0f) {
    const float min_p = params_.min_p;
    if (dense_) {
      cand_.clear();
      for (int32_t id = 0; id < vocab_; ++id)
        if (w[id] >= min_p) cand_.push_back(id);
      dense_ = false;
    } else {
      std::erase_if(cand_, [w, min_p](int32_t id) { return w[id] < min_p; });
    }
  }
  if (dense_) return z;
  double s = 0;
  for (int32_t id : cand_) s += w[id];
  return s;
}

int32_t Sampler::sample(const float* logits) {
  if (greedy()) {
    prepare(logits);
    return best_;
  }
  const double s = build_candidates(logits);
  const double u = rng_.next_double() * s;
  return with_candidates([&](const auto& ids) {
    return walk(
        ids, [&](int32_t id) { return double(w_[size_t(id)]); }, u);
  });
}

void Sampler::probabilities(const float* logits, std::vector<double>& p) {
  p.assign(size_t(vocab_), 0.0);
  if (greedy()) {
    prepare(logits);
    p[size_t(best_)] = 1.0;
    return;
  }
  const double s = build_candidates(logits);
  with_candidates([&](const auto& ids) {
    for (int32_t id : ids)
      if (w_[size_t(id)] > 0.0f) p[size_t(id)] = double(w_[size_t(id)]) / s;
  });
}

int32_t Sampler::draw(const std::vector<double>& weights) {
  double total = 0;
  for (double w : weights) total += w;
  const double u = rng_.next_double() * total;
  const int32_t id = walk(
      std::views::iota(0, int32_t(weights.size())), [&](int32_t i) { return weights[size_t(i)]; },
      u);
  if (id < 0) throw std::invalid_argument("Sampler::draw: no positive weight");
  return id;
}

std::vector<TokenProb> Sampler::distribution(const float* logits) {
  std::vector<TokenProb> out;
  if (greedy()) {
    prepare(logits);
    out.push_back({best_, 1.0});
    return out;
  }
  const double s = build_candidates(logits);
  with_candidates([&](const auto& ids) {
    for (int32_t id : ids)
      if (w_[size_t(id)] > 0.0f) out.push_back({id, double(w_[size_t(id)]) / s});
  });
  std::sort(out.begin(), out.end(), [](const TokenProb& a, const TokenProb& b) {
    return a.prob != b.prob ? a.prob > b.prob : a.token < b.token;
  });
  return out;
}

}  // namespace dsinfer
