// The engine's state of one request (internal to the engine and its scheduler).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "engine/request.h"
#include "engine/request_handle.h"
#include "engine/sampler.h"
#include "engine/stop_strings.h"
#include "tokenizer/streaming_decoder.h"

namespace dsinfer {

struct SequenceState {
  SequenceState(uint64_t id_, uint64_t arrival_, Request r, std::shared_ptr<RequestChannel> ch,
                int vocab, std::optional<StreamingDecoder> dec)
      : id(id_),
        arrival(arrival_),
        req(std::move(r)),
        channel(std::move(ch)),
        tokens(req.prompt),
        prompt_len(int64_t(req.prompt.size())),
        sampler(req.sampling, vocab),
        decoder(std::move(dec)),
        stops(req.stop) {
    // The penalties may see the prompt too (as llama.cpp's do): the last penalty_last_n tokens.
    if (req.penalize_prompt)
      for (int32_t t : req.prompt) sampler.accept(t);
  }

  const uint64_t id, arrival;
  Request req;
  std::shared_ptr<RequestChannel> channel;

  // Prompt, then generated tokens; the last generated one is fed at the next step.
  std::vector<int32_t> tokens;
  const int64_t prompt_len;
  int64_t computed = 0;        // tokens whose cache rows are written
  int seq = -1;                // cache sequence while admitted (-1: waiting or preempted)
  int64_t registered = 0;      // leading full blocks registered in the prefix cache
  int64_t generated = 0;       // tokens sampled (EOS / stop tokens included)
  int64_t cached_tokens = -1;  // prompt tokens found in the prefix cache at first admission
  int64_t preemptions = 0;
  bool finished = false;  // its finished event is out (the state lives until the step ends)

  // Speculative decoding: draft tokens proposed by the MTP head for the positions after the
  // pending token, with their draft distributions (sampling only; greedy needs none), verified at
  // the next step.
  std::vector<int32_t> drafts;
  std::vector<std::vector<double>> draft_probs;
  int64_t drafted = 0, accepted = 0;
  void clear_drafts() {
    drafts.clear();
    draft_probs.clear();
  }

  Sampler sampler;
  std::optional<StreamingDecoder> decoder;
  StopStrings stops;

  double submitted_s = 0, scheduled_s = -1, first_token_s = -1;

  bool admitted() const { return seq >= 0; }
  int64_t pending() const { return int64_t(tokens.size()) - computed; }
};

}  // namespace dsinfer
