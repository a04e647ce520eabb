// Log-probabilities of generated tokens, as OpenAI-style APIs report them: log_softmax of the
// model's raw logits (before temperature, penalties and filters), for the sampled token and the
// most likely ones.
#pragma once

#include <cstdint>

#include "engine/request.h"

namespace dsinfer {

// Fills out->logprob for out->token and out->top with the top_n most likely tokens (ties: the
// smaller id first). NaN logits count as -inf.
void token_logprobs(const float* logits, int vocab, int top_n, GeneratedToken* out);

}  // namespace dsinfer
