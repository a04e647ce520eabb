// Reading an OpenAI request body field by field: every wrong type or value is a 400 naming the
// JSON path ("temperature: expected a number"), and the generation fields shared by chat and
// text completions (sampling, limits, stops, logprobs, n) map onto an engine Request.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/request.h"

namespace dsinfer::server {

using json = nlohmann::json;

// The body as a JSON object (400 for malformed JSON or a non-object).
json parse_body(const std::string& body);

std::optional<double> number_field(const json& body, const std::string& name);
std::optional<int64_t> integer_field(const json& body, const std::string& name);
std::optional<bool> bool_field(const json& body, const std::string& name);
std::optional<std::string> string_field(const json& body, const std::string& name);

// Defaults for the sampling fields (from the model's generation_config.json when present).
struct SamplingDefaults {
  float temperature = 1.0f, top_p = 1.0f;
  int top_k = 0;
};
SamplingDefaults load_sampling_defaults(const std::string& model_dir);

struct GenerationFields {
  Request request;                    // sampling, stop, logprobs, ignore_eos (prompt not set)
  std::optional<int64_t> max_tokens;  // max_tokens / max_completion_tokens
  int n = 1;
  bool stream = false, include_usage = false;
  bool seeded = false;  // a seed was given: choice i samples with seed + i
};

// Reads temperature, top_p, top_k, min_p, presence_penalty, frequency_penalty,
// repetition_penalty, seed, stop, n, max_tokens / max_completion_tokens, stream,
// stream_options.include_usage, ignore_eos, user (accepted, unused). `chat` selects the chat
// completions' logprobs fields (logprobs: bool, top_logprobs: int) over the legacy ones
// (logprobs: int).
GenerationFields generation_fields(const json& body, bool chat, const SamplingDefaults& defaults);

}  // namespace dsinfer::server
