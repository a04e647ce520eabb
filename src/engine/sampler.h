// Token sampling over large vocabularies (129K for DeepSeek-V3.2), one Sampler per sequence.
//
// Pipeline per step, in the standard order:
//   penalties -> temperature -> top-k -> softmax -> top-p -> min-p -> renormalize -> draw.
//
// Penalties act on the tokens of the last `penalty_last_n` accepted tokens (the "window"; -1 =
// every accepted token, 0 = none). For a token seen c > 0 times in the window:
//   logit = logit > 0 ? logit / repetition_penalty : logit * repetition_penalty   (HF/llama.cpp)
//   logit -= c * frequency_penalty + presence_penalty                             (OpenAI)
//
// Logits that are NaN count as -inf; -inf tokens are never sampled. If some logit is +inf, the
// distribution is the limit of the softmax: uniform over the +inf tokens. Ties between equal
// logits are broken towards the smaller token id (greedy argmax, and the top-k / top-p cut).
//
// Candidate selection never sorts the vocabulary. Top-k and top-p are both "keep the shortest
// best-first prefix whose total weight reaches a target" (weight 1 and target k for top-k;
// weight softmax(z) and target top_p * sum for top-p), found exactly by a radix selection on the
// order-preserving 32-bit key of the logit: one pass builds a 2048-bucket histogram of weight by
// the key's top 11 bits; the bucket where the running total (best bucket first) reaches the
// target is the only one whose members need a closer look; the next pass refines it by the next
// 11 bits, then the last 10; what is left has one logit value, and is cut in token-id order. Every
// bucket above the crossing one is kept whole, so the result is exactly the prefix of the full
// sort (logit descending, id ascending), with sums accumulated in double. Each level visits only
// the survivors of the previous one, so the cost is about two passes over the vocabulary plus one
// vectorized exp per logit (needed anyway for the softmax normalizer); without top-k / top-p /
// min-p no candidate list is built at all. min-p keeps tokens whose weight exp((logit - max) / T)
// is >= min_p (the max token has weight exactly 1, so this is p >= min_p * p_max). Weights below
// float's normal range (p / p_max < 1.2e-38) count as 0.
//
// Determinism: a self-contained xoshiro256** generator seeded through splitmix64, and a draw that
// walks the final candidates in an order fixed by the logits, so a seed gives the same tokens on
// every platform and standard library.
#pragma once

#include "core/rng.h"

#include <array>
#include <cstdint>
#include <deque>
#include <ranges>
#include <unordered_map>
#include <vector>

namespace dsinfer {

struct SamplingParams {
  float temperature = 0.6f;         // 0 = greedy
  int top_k = 0;                    // 0 = off
  float top_p = 1.0f;               // 1 = off
  float min_p = 0.0f;               // 0 = off
  float repetition_penalty = 1.0f;  // 1 = off; > 0
  float presence_penalty = 0.0f;    // 0 = off
  float frequency_penalty = 0.0f;   // 0 = off
  int penalty_last_n = 64;          // window of recent tokens for the penalties (-1 = all, 0 = off)
  uint64_t seed = 0;
};

// Throws std::invalid_argument naming the first bad parameter.
void validate_sampling_params(const SamplingParams& p);

// One token of the final distribution (after every filter, renormalized).
struct TokenProb {
  int32_t token;
  double prob;
};

class Sampler {
 public:
  Sampler(const SamplingParams& params, int vocab_size);

  // Records a token of the context or of the generation (for the penalties). The sampler does
  // not record what it samples: the caller accepts the tokens it keeps.
  void accept(int32_t token);
  // logits[vocab_size] (not modified). Returns the sampled token id.
  int32_t sample(const float* logits);
  // The distribution sample() draws from (greedy: the argmax with probability 1), largest
  // probability first; for tests and log-probabilities. Does not advance the generator.
  std::vector<TokenProb> distribution(const float* logits);
  // The same distribution as a dense vector p[vocab] (no sorting; greedy: one-hot at the argmax).
  void probabilities(const float* logits, std::vector<double>& p);
  // Draws a token with probability weights[id] / sum (walked in id order; all weights >= 0, some
  // > 0), and a uniform number in [0, 1), from the sampler's generator (speculative decoding's
  // acceptance test and residual draw).
  int32_t draw(const std::vector<double>& weights);
  double uniform() { return rng_.next_double(); }
  // Forgets the history and reseeds the generator with params().seed.
  void reset();

  const SamplingParams& params() const { return params_; }
  bool greedy() const { return params_.temperature == 0.0f; }  // sample() is the argmax
  int vocab_size() const { return vocab_; }
  // Times `token` occurs in the current penalty window.
  int count_in_window(int32_t token) const;

 private:
  // Fills x_ with the penalized logits, best_ with the argmax; returns the max logit. The
  // candidates are then every finite token (dense_).
  float prepare(const float* logits);
  int32_t argmax() const;
  // Leaves the final candidates (dense_ or cand_) with their unnormalized weights in w_; returns
  // their sum.
  double build_candidates(const float* logits);
  // f(ids) over the final candidates' ids in order (after build_candidates): 0 .. vocab - 1
  // when dense_, else cand_.
  template <class F>
  decltype(auto) with_candidates(F f) const {
    return dense_ ? f(std::views::iota(0, vocab_)) : f(cand_);
  }
  // Keeps in cand_ the shortest best-first prefix whose weight total reaches `target`.
  template <class Weight>
  void select_prefix(double target, Weight weight);

  SamplingParams params_;
  int vocab_;
  Xoshiro256 rng_;
  std::deque<int32_t> window_;
  std::unordered_map<int32_t, int32_t> counts_;  // token -> occurrences in window_
  int32_t best_ = -1;                            // argmax of the last prepare()

  // Scratch, reused across steps.
  std::vector<float> x_;         // [vocab] penalized logits (NaN -> -inf, -0 -> +0)
  std::vector<float> w_;         // [vocab] softmax weights of candidates
  std::vector<int32_t> cand_;    // candidate ids
  std::vector<int32_t> keep_;    // selection output
  std::vector<int32_t> bucket_;  // selection: members of the crossing bucket
  std::vector<int32_t> next_;    // selection: members of the next level's crossing bucket
  std::vector<double> hist_;     // selection histogram
  std::vector<float> xs_, ws_;   // gathered logits / weights of a candidate list
  bool dense_ = true;            // candidates: every finite token (true) or cand_ (false)
};

}  // namespace dsinfer
