#include "server/request_fields.h"

#include <fstream>
#include <random>

#include "server/api_error.h"

namespace dsinfer::server {

json parse_body(const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    throw bad_request("", std::string("the body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw bad_request("", "the body must be a JSON object");
  return j;
}

namespace {

const json* present(const json& body, const std::string& name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

}  // namespace

std::optional<double> number_field(const json& body, const std::string& name) {
  const json* v = present(body, name);
  if (!v) return std::nullopt;
  if (!v->is_number()) throw bad_request(name, "expected a number");
  return v->get<double>();
}

std::optional<int64_t> integer_field(const json& body, const std::string& name) {
  const json* v = present(body, name);
  if (!v) return std::nullopt;
  if (v->is_number_integer()) return v->get<int64_t>();
  if (v->is_number_float() && v->get<double>() == double(int64_t(v->get<double>())))
    return int64_t(v->get<double>());
  throw bad_request(name, "expected an integer");
}

std::optional<bool> bool_field(const json& body, const std::string& name) {
  const json* v = present(body, name);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) throw bad_request(name, "expected true or false");
  return v->get<bool>();
}

std::optional<std::string> string_field(const json& body, const std::string& name) {
  const json* v = present(body, name);
  if (!v) return std::nullopt;
  if (!v->is_string()) throw bad_request(name, "expected a string");
  return v->get<std::string>();
}

SamplingDefaults load_sampling_defaults(const std::string& model_dir) {
  SamplingDefaults d;
  std::ifstream in(model_dir + "/generation_config.json");
  if (!in) return d;
  try {
    const json g = json::parse(in);
    if (g.contains("temperature") && g["temperature"].is_number())
      d.temperature = g["temperature"].get<float>();
    if (g.contains("top_p") && g["top_p"].is_number()) d.top_p = g["top_p"].get<float>();
    if (g.contains("top_k") && g["top_k"].is_number_integer()) d.top_k = g["top_k"].get<int>();
  } catch (const json::exception&) {
    // A broken generation_config.json only loses its defaults.
  }
  return d;
}

GenerationFields generation_fields(const json& body, bool chat, const SamplingDefaults& defaults) {
  GenerationFields g;
  SamplingParams& s = g.request.sampling;
  s.temperature = float(number_field(body, "temperature").value_or(defaults.temperature));
  s.top_p = float(number_field(body, "top_p").value_or(defaults.top_p));
  const int64_t top_k = integer_field(body, "top_k").value_or(defaults.top_k);
  s.top_k = top_k < 0 ? 0 : int(top_k);  // -1 = off, as vLLM
  s.min_p = float(number_field(body, "min_p").value_or(0.0));
  s.presence_penalty = float(number_field(body, "presence_penalty").value_or(0.0));
  s.frequency_penalty = float(number_field(body, "frequency_penalty").value_or(0.0));
  s.repetition_penalty = float(number_field(body, "repetition_penalty").value_or(1.0));
  // OpenAI semantics: penalties count every generated token (not the prompt).
  s.penalty_last_n = -1;
  g.request.penalize_prompt = false;
  auto range = [](const char* field, double v, double lo, double hi) {
    if (!(v >= lo && v <= hi))
      throw bad_request(field, "must be in [" + nlohmann::json(lo).dump() + ", " +
                                   nlohmann::json(hi).dump() + "]");
  };
  range("temperature", s.temperature, 0, 2);
  range("top_p", s.top_p, 1e-9, 1);
  range("min_p", s.min_p, 0, 1);
  range("presence_penalty", s.presence_penalty, -2, 2);
  range("frequency_penalty", s.frequency_penalty, -2, 2);
  range("repetition_penalty", s.repetition_penalty, 1e-9, 1e9);
  if (auto seed = integer_field(body, "seed")) {
    s.seed = uint64_t(*seed);
    g.seeded = true;
  } else {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    s.seed = rng();
  }
  if (const json* stop = present(body, "stop")) {
    if (stop->is_string()) {
      g.request.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      if (stop->size() > 16) throw bad_request("stop", "at most 16 stop strings");
      for (size_t i = 0; i < stop->size(); ++i) {
        if (!(*stop)[i].is_string())
          throw bad_request("stop[" + std::to_string(i) + "]", "expected a string");
        g.request.stop.push_back((*stop)[i].get<std::string>());
      }
    } else {
      throw bad_request("stop", "expected a string or an array of strings");
    }
  }
  const int64_t n = integer_field(body, "n").value_or(1);
  if (n < 1 || n > 128) throw bad_request("n", "must be in [1, 128]");
  g.n = int(n);
  g.max_tokens = integer_field(body, chat && body.contains("max_completion_tokens") &&
                                             !body["max_completion_tokens"].is_null()
                                         ? "max_completion_tokens"
                                         : "max_tokens");
  if (g.max_tokens && *g.max_tokens < 1)
    throw bad_request(
        chat && body.contains("max_completion_tokens") ? "max_completion_tokens" : "max_tokens",
        "must be at least 1");
  g.stream = bool_field(body, "stream").value_or(false);
  if (const json* so = present(body, "stream_options")) {
    if (!so->is_object()) throw bad_request("stream_options", "expected an object");
    auto iu = so->find("include_usage");
    if (iu != so->end() && !iu->is_null()) {
      if (!iu->is_boolean())
        throw bad_request("stream_options.include_usage", "expected true or false");
      g.include_usage = iu->get<bool>();
    }
  }
  g.request.ignore_eos = bool_field(body, "ignore_eos").value_or(false);
  if (chat) {
    g.request.logprobs = bool_field(body, "logprobs").value_or(false);
    const int64_t top = integer_field(body, "top_logprobs").value_or(0);
    if (top < 0 || top > kMaxTopLogprobs)
      throw bad_request("top_logprobs", "must be in [0, " + std::to_string(kMaxTopLogprobs) + "]");
    if (top > 0 && !g.request.logprobs)
      throw bad_request("top_logprobs", "needs \"logprobs\": true");
    g.request.top_logprobs = int(top);
  } else if (auto lp = integer_field(body, "logprobs")) {
    if (*lp < 0 || *lp > kMaxTopLogprobs)
      throw bad_request("logprobs", "must be in [0, " + std::to_string(kMaxTopLogprobs) + "]");
    g.request.logprobs = true;
    g.request.top_logprobs = int(*lp);
  }
  if (const json* u = present(body, "user"))
    if (!u->is_string()) throw bad_request("user", "expected a string");
  return g;
}

}  // namespace dsinfer::server
