// Text generation on one sequence: prefill the new prompt tokens in chunks, then sample token by
// token, streaming valid UTF-8 text out as soon as it is complete, until EOS, a stop string, the
// token limit, the context limit, or an interrupt. Used by `dsinfer run` (and later the server).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/model.h"
#include "model/sampler.h"
#include "tokenizer/streaming_decoder.h"

namespace dsinfer {

struct GenerateOptions {
  int64_t max_tokens = 256;
  int64_t context_limit = 0;         // 0: the model's max_position_embeddings
  int64_t prefill_chunk = 512;       // tokens per forward call while prefilling
  std::vector<std::string> stop;     // stop strings (never printed)
  std::vector<int32_t> stop_tokens;  // besides the model's EOS ids
};

enum class StopReason { eos, stop_string, max_tokens, context_full, interrupted };

struct GenerateStats {
  int64_t prompt_tokens = 0, generated_tokens = 0;
  double prefill_s = 0;  // all prompt chunks
  double ttft_s = 0;     // prompt start to the first generated token
  double decode_s = 0;   // after the first token
  StopReason reason = StopReason::max_tokens;
  std::vector<int32_t> tokens;  // the generated tokens (EOS / stop token excluded)
  std::string text;             // the text streamed out
};

struct GenerateCallbacks {
  std::function<void(const std::string&)> on_text;              // streamed text pieces
  std::function<void(int64_t done, int64_t total)> on_prefill;  // after each prefill chunk
  const std::atomic<bool>* interrupt = nullptr;                 // polled between tokens
};

// Appends `prompt` to `seq` (which may already hold a conversation) and generates.
GenerateStats generate(Model& model, int seq, const std::vector<int32_t>& prompt, Sampler& sampler,
                       StreamingDecoder& decoder, const GenerateOptions& options,
                       const GenerateCallbacks& callbacks);

const char* stop_reason_name(StopReason reason);

}  // namespace dsinfer
