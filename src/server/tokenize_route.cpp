// POST /tokenize and /detokenize (vLLM's shapes): a prompt, or messages rendered exactly as a chat
// completion would render them, to token ids; token ids back to text.
#include "server/chat_request.h"
#include "server/context.h"

namespace dsinfer::server {

using json = nlohmann::json;

void handle_tokenize(ServerContext& ctx, const HttpRequest& req, HttpResponse& res) {
  const json body = parse_body(req.body);
  check_model_name(ctx, body);
  std::vector<int32_t> ids;
  if (body.contains("messages")) {
    ids = render_chat_request(ctx, nlohmann::ordered_json::parse(req.body)).tokens;
  } else {
    auto prompt = string_field(body, "prompt");
    if (!prompt) throw bad_request("prompt", "give \"prompt\" or \"messages\"");
    // Special-token strings in the text become their tokens (as HF tokenizers treat added
    // tokens), so tokenizing a rendered chat's text gives the ids of rendering it.
    const bool special = bool_field(body, "add_special_tokens").value_or(true);
    if (special && ctx.tokenizer->bos_id() >= 0) ids.push_back(ctx.tokenizer->bos_id());
    try {
      const auto more = ctx.tokenizer->encode(*prompt, true);
      ids.insert(ids.end(), more.begin(), more.end());
    } catch (const std::invalid_argument& e) {
      throw bad_request("prompt", e.what());
    }
  }
  res.body =
      json{{"tokens", ids}, {"count", ids.size()}, {"max_model_len", ctx.context_limit()}}.dump();
}

void handle_detokenize(ServerContext& ctx, const HttpRequest& req, HttpResponse& res) {
  const json body = parse_body(req.body);
  check_model_name(ctx, body);
  auto it = body.find("tokens");
  if (it == body.end() || !it->is_array())
    throw bad_request("tokens", "expected an array of token ids");
  std::vector<int32_t> ids;
  const int64_t vocab = int64_t(ctx.tokenizer->vocab_size());
  for (size_t i = 0; i < it->size(); ++i) {
    const json& v = (*it)[i];
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= vocab)
      throw bad_request("tokens[" + std::to_string(i) + "]",
                        "expected a token id below " + std::to_string(vocab));
    ids.push_back(int32_t(v.get<int64_t>()));
  }
  res.body = json{{"prompt", ctx.tokenizer->decode(ids)}}.dump(-1, ' ', false,
                                                               json::error_handler_t::replace);
}

}  // namespace dsinfer::server
