// What a caller gives the engine (Request) and what it gets back (RequestEvent), in order:
// zero or more `tokens` events, each with one or more generated tokens, the text they complete
// and their log-probabilities, then exactly one `finished` event with the reason and usage.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/sampler.h"

namespace dsinfer {

inline constexpr int kMaxTopLogprobs = 20;

struct Request {
  std::vector<int32_t> prompt;       // token ids, at least one
  SamplingParams sampling;           // per request, seeded
  bool penalize_prompt = true;       // the penalties' window starts with the prompt (llama.cpp);
                                     // false: generated tokens only (OpenAI)
  int64_t max_tokens = 256;          // > 0
  std::vector<std::string> stop;     // stop strings (never part of the text)
  std::vector<int32_t> stop_tokens;  // besides the model's EOS ids
  bool ignore_eos = false;           // keep going past EOS (benchmarks)
  bool logprobs = false;             // the sampled token's log-probability
  int top_logprobs = 0;              // and the N most likely tokens', N <= kMaxTopLogprobs
  bool return_logits = false;        // every generated token's whole logits row (tests, research)
  int priority = 0;                  // lower runs first; preemption takes the highest first
  bool report_prefill = false;       // also send `prefill` events while the prompt is computed
  std::string tag;                   // the caller's name for the request, for logs
};

enum class FinishReason {
  stop,       // a stop string or stop token
  length,     // max_tokens, or the context is full
  eos,        // the model's end-of-sequence token
  cancelled,  // cancel() or engine shutdown
  error,      // see RequestEvent::error
};
const char* finish_reason_name(FinishReason reason);

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;
};

struct GeneratedToken {
  int32_t token = 0;
  float logprob = 0;              // when Request::logprobs
  std::vector<TokenLogprob> top;  // Request::top_logprobs entries, most likely first
  std::vector<float> logits;      // Request::return_logits: the raw logits row [vocab]
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;  // prompt tokens whose cache came from the prefix cache
  int64_t completion_tokens = 0;
  int64_t draft_tokens = 0, accepted_tokens = 0;  // speculative decoding: verified, accepted
};

// Seconds from submit() to the first scheduled step, the first token and the end.
struct RequestTimes {
  double queued_s = 0, ttft_s = 0, total_s = 0;
};

struct RequestEvent {
  enum class Kind { tokens, prefill, finished } kind = Kind::tokens;
  std::vector<GeneratedToken> tokens;  // tokens: the new tokens (EOS / stop tokens excluded);
                                       // finished: with return_logits, the EOS / stop token
  std::string text;                    // the text they release (valid UTF-8; may lag the tokens
                                       // while it could still become a stop string)
  int64_t prefilled = 0;               // prefill: prompt tokens computed so far, of prompt_tokens
  FinishReason reason = FinishReason::stop;  // finished
  std::string error;                         // finished with FinishReason::error
  Usage usage;                               // finished (prefill: prompt_tokens)
  RequestTimes times;                        // finished
};

}  // namespace dsinfer
