#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
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

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

inline uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

// Order-preserving map of a canonical float (no NaN, no -0) to u32: larger float, larger key.
inline uint32_t order_key(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
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

void Xoshiro256::seed_with(uint64_t seed) {
  uint64_t st = seed;
  for (auto& w : s_) w = splitmix64(st);
}

uint64_t Xoshiro256::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
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
  for (int i = 0; i < vocab_; ++i) {
    const float v = logits[i];
    x[i] = std::isnan(v) ? kNegInf : v + 0.0f;  // + 0.0f turns -0 into +0
  }
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
  // Finite candidates, the max, and the argmax (first index of the max: ties -> smallest id).
  cand_.resize(vocab_);
  int32_t* c = cand_.data();
  size_t n = 0;
  float m = kNegInf;
  int32_t best = -1;
  for (int i = 0; i < vocab_; ++i) {
    const float v = x[i];
    c[n] = i;
    n += v > kNegInf;
    if (v > m) {
      m = v;
      best = i;
    }
  }
  cand_.resize(n);
  if (n == 0)
    throw std::invalid_argument(
        "Sampler::sample: logits: every logit is -inf or NaN (after penalties); no token can be "
        "sampled");
  best_ = best;
  return m;
}

template <class Weight>
void Sampler::select_prefix(double target, Weight weight) {
  static constexpr int kShift[3] = {21, 10, 0};
  static constexpr int kBits[3] = {11, 11, 10};
  const float* x = x_.data();
  keep_.clear();
  double acc = 0;  // weight of everything already kept (all of it ranks above `bucket_`)
  const std::vector<int32_t>* cur = &cand_;
  for (int level = 0; level < 3; ++level) {
    const int shift = kShift[level];
    const uint32_t mask = (1u << kBits[level]) - 1;
    hist_.assign(size_t(mask) + 1, 0.0);
    for (int32_t id : *cur) hist_[(order_key(x[id]) >> shift) & mask] += weight(id);
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
      keep_.insert(keep_.end(), cur->begin(), cur->end());
      std::swap(cand_, keep_);
      return;
    }
    next_.clear();
    for (int32_t id : *cur) {
      const uint32_t b = (order_key(x[id]) >> shift) & mask;
      if (b > uint32_t(cross))
        keep_.push_back(id);
      else if (b == uint32_t(cross))
        next_.push_back(id);
    }
    std::swap(bucket_, next_);
    cur = &bucket_;
  }
  // One logit value left: cut in id order.
  std::sort(bucket_.begin(), bucket_.end());
  for (int32_t id : bucket_) {
    keep_.push_back(id);
    acc += weight(id);
    if (acc >= target) break;
  }
  std::swap(cand_, keep_);
}

double Sampler::build_candidates(const float* logits) {
  const float m = prepare(logits);
  const float* x = x_.data();
  float* w = w_.data();
  if (params_.top_k > 0 && size_t(params_.top_k) < cand_.size())
    select_prefix(double(params_.top_k), [](int32_t) { return 1.0; });

  // Softmax weights relative to the max token (weight 1).
  double z = 0;
  if (m == kPosInf) {  // the limit of the softmax: uniform over the +inf tokens
    for (int32_t id : cand_) z += (w[id] = x[id] == kPosInf ? 1.0f : 0.0f);
  } else {
    const float inv_t = 1.0f / params_.temperature;
    for (int32_t id : cand_) {
      const float d = x[id] - m;
      z += (w[id] = d == 0.0f ? 1.0f : std::exp(d * inv_t));
    }
  }
  if (params_.top_p < 1.0f)
    select_prefix(double(params_.top_p) * z, [w](int32_t id) { return double(w[id]); });
  if (params_.min_p > 0.0f) {
    const float min_p = params_.min_p;
    std::erase_if(cand_, [w, min_p](int32_t id) { return w[id] < min_p; });
  }
  double s = 0;
  for (int32_t id : cand_) s += w[id];
  return s;
}

int32_t Sampler::sample(const float* logits) {
  if (params_.temperature == 0.0f) {
    prepare(logits);
    return best_;
  }
  const double s = build_candidates(logits);
  const float* w = w_.data();
  const double u = rng_.next_double() * s;
  double cum = 0;
  int32_t last = -1;
  for (int32_t id : cand_) {
    if (w[id] <= 0.0f) continue;
    cum += w[id];
    last = id;
    if (cum > u) return id;
  }
  return last;  // u rounded up to s
}

std::vector<TokenProb> Sampler::distribution(const float* logits) {
  std::vector<TokenProb> out;
  if (params_.temperature == 0.0f) {
    prepare(logits);
    out.push_back({best_, 1.0});
    return out;
  }
  const double s = build_candidates(logits);
  for (int32_t id : cand_)
    if (w_[id] > 0.0f) out.push_back({id, double(w_[id]) / s});
  std::sort(out.begin(), out.end(), [](const TokenProb& a, const TokenProb& b) {
    return a.prob != b.prob ? a.prob > b.prob : a.token < b.token;
  });
  return out;
}

}  // namespace dsinfer
