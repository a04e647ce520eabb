// POST /v1/completions: a raw prompt (a string, token ids, or a list of either) completed as
// text, with echo, legacy logprobs and streaming.
#include <nlohmann/json.hpp>

#include <algorithm>

#include "server/choices.h"
#include "server/context.h"
#include "server/server.h"

namespace dsinfer::server {

namespace {

using json = nlohmann::json;

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// The prompts of the request as token ids (a string gets the BOS, as vLLM adds special tokens),
// and the text `echo` repeats: a string as given, token ids decoded.
std::vector<std::vector<int32_t>> prompts_of(const ServerContext& ctx, const json& body,
                                             std::vector<std::string>* echo_texts) {
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) throw bad_request("prompt", "is required");
  const Tokenizer& tok = *ctx.tokenizer;
  const int64_t vocab = ctx.engine->model().config().vocab_size;
  auto text = [&](const std::string& s) {
    std::vector<int32_t> ids;
    if (tok.bos_id() >= 0) ids.push_back(tok.bos_id());
    try {
      const auto more = tok.encode(s, true);
      ids.insert(ids.end(), more.begin(), more.end());
    } catch (const std::invalid_argument& e) {
      throw bad_request("prompt", e.what());
    }
    return ids;
  };
  auto ids = [&](const json& a, const std::string& where) {
    std::vector<int32_t> out;
    for (size_t i = 0; i < a.size(); ++i) {
      if (!a[i].is_number_integer())
        throw bad_request(where + "[" + std::to_string(i) + "]", "expected a token id");
      const int64_t v = a[i].get<int64_t>();
      if (v < 0 || v >= vocab)
        throw bad_request(where + "[" + std::to_string(i) + "]",
                          "token id " + std::to_string(v) + " is outside the vocabulary");
      out.push_back(int32_t(v));
    }
    return out;
  };
  std::vector<std::vector<int32_t>> out;
  if (it->is_string()) {
    out.push_back(text(it->get<std::string>()));
  } else if (it->is_array() && !it->empty() && it->front().is_number()) {
    out.push_back(ids(*it, "prompt"));
  } else if (it->is_array() && !it->empty()) {
    for (size_t i = 0; i < it->size(); ++i) {
      const json& p = (*it)[i];
      const std::string where = "prompt[" + std::to_string(i) + "]";
      if (p.is_string())
        out.push_back(text(p.get<std::string>()));
      else if (p.is_array())
        out.push_back(ids(p, where));
      else
        throw bad_request(where, "expected a string or an array of token ids");
    }
  } else {
    throw bad_request("prompt", "expected a string, token ids, or a list of them");
  }
  for (size_t i = 0; i < out.size(); ++i)
    if (out[i].empty()) throw bad_request("prompt", "is empty");
  // What echo repeats: each prompt string as given, token ids as their text.
  auto echo_of = [&](const json& p, size_t i) {
    return p.is_string() ? p.get<std::string>() : tok.decode(out[i]);
  };
  if (it->is_string() || (it->is_array() && it->front().is_number()))
    echo_texts->push_back(echo_of(*it, 0));
  else
    for (size_t i = 0; i < it->size(); ++i) echo_texts->push_back(echo_of((*it)[i], i));
  return out;
}

// The legacy logprobs object for some tokens starting at text offset `offset`.
json legacy_logprobs(const Tokenizer& tok, const std::vector<GeneratedToken>& tokens,
                     size_t offset) {
  json out = {{"tokens", json::array()},
              {"token_logprobs", json::array()},
              {"top_logprobs", json::array()},
              {"text_offset", json::array()}};
  for (const GeneratedToken& g : tokens) {
    const std::string s = tok.decode(std::vector<int32_t>{g.token});
    out["tokens"].push_back(s);
    out["token_logprobs"].push_back(g.logprob);
    json top = json::object();
    for (const TokenLogprob& t : g.top) top[tok.decode(std::vector<int32_t>{t.token})] = t.logprob;
    out["top_logprobs"].push_back(top);
    out["text_offset"].push_back(offset);
    offset += s.size();
  }
  return out;
}

}  // namespace

void handle_completions(ServerContext& ctx, const HttpRequest& req, HttpResponse& res) {
  const json body = parse_body(req.body);
  check_model_name(ctx, body);
  GenerationFields g = generation_fields(body, false, ctx.sampling);
  const bool echo = bool_field(body, "echo").value_or(false);
  if (auto suffix = string_field(body, "suffix"); suffix && !suffix->empty())
    throw bad_request("suffix", "is not supported");
  std::vector<std::string> echo_texts;
  const auto prompts = prompts_of(ctx, body, &echo_texts);
  std::vector<Request> reqs;
  std::vector<size_t> prompt_of;
  for (size_t p = 0; p < prompts.size(); ++p)
    for (int i = 0; i < g.n; ++i) {
      Request r = g.request;
      r.prompt = prompts[p];
      r.max_tokens = resolve_max_tokens(ctx, int64_t(prompts[p].size()), g.max_tokens);
      if (g.seeded)
        r.sampling.seed += uint64_t(i);
      else if (i > 0)
        r.sampling.seed = std::hash<std::string>{}(random_id(""));
      reqs.push_back(r);
      prompt_of.push_back(p);
    }
  const std::string id = random_id("cmpl-");
  const int64_t created = unix_time();
  // Prompts of several texts run one after another (each with its n choices).
  auto choices = std::make_shared<std::vector<std::unique_ptr<Choices>>>();
  for (size_t p = 0; p < prompts.size(); ++p) {
    std::vector<Request> group(reqs.begin() + long(p * g.n), reqs.begin() + long((p + 1) * g.n));
    choices->push_back(
        std::make_unique<Choices>(*ctx.engine, group, ctx.options->request_timeout_s));
  }
  const Tokenizer& tok = *ctx.tokenizer;
  auto echo_text = [&](size_t p) { return echo_texts[p]; };

  struct Choice {
    std::string text;
    std::vector<GeneratedToken> tokens;
    RequestEvent finish;
    bool done = false;
  };
  const size_t total = reqs.size();
  if (!g.stream) {
    std::vector<Choice> out(total);
    for (size_t p = 0; p < choices->size(); ++p) {
      Choices& c = *(*choices)[p];
      while (!c.done()) {
        auto ev = c.next(0.25);
        if (!ev) continue;
        Choice& ch = out[p * size_t(g.n) + size_t(ev->first)];
        ch.text += ev->second.text;
        for (auto& t : ev->second.tokens) ch.tokens.push_back(std::move(t));
        if (ev->second.kind == RequestEvent::Kind::finished) ch.finish = ev->second, ch.done = true;
      }
    }
    json resp = {{"id", id},
                 {"object", "text_completion"},
                 {"created", created},
                 {"model", ctx.model_name},
                 {"choices", json::array()}};
    int64_t completion = 0, cached = 0, prompt_tokens = 0, drafted = 0, accepted = 0;
    for (size_t i = 0; i < total; ++i) {
      const Choice& ch = out[i];
      if (ch.finish.reason == FinishReason::error)
        throw ApiError(500, "internal_error", ch.finish.error);
      const std::string prefix = echo ? echo_text(prompt_of[i]) : "";
      json c = {{"index", i},
                {"text", prefix + ch.text},
                {"logprobs",
                 reqs[i].logprobs ? legacy_logprobs(tok, ch.tokens, prefix.size()) : json(nullptr)},
                {"finish_reason", openai_finish_reason(ch.finish.reason)}};
      resp["choices"].push_back(c);
      record_finish(ctx, id, int(i), ch.finish);
      completion += ch.finish.usage.completion_tokens;
      drafted += ch.finish.usage.draft_tokens, accepted += ch.finish.usage.accepted_tokens;
      if (i % size_t(g.n) == 0)
        prompt_tokens += ch.finish.usage.prompt_tokens, cached += ch.finish.usage.cached_tokens;
    }
    resp["usage"] = usage_json(prompt_tokens, cached, completion, drafted, accepted);
    res.body = dump(resp);
    return;
  }

  res.content_type = "text/event-stream";
  ServerContext* cp = &ctx;
  res.stream = [cp, choices, id, created, g, reqs, prompt_of, echo,
                echo_texts](const std::function<bool(const std::string&)>& write) {
    ServerContext& ctx = *cp;
    const Tokenizer& tok = *ctx.tokenizer;
    auto chunk = [&](size_t index, const std::string& text, const json& logprobs,
                     const json& finish) {
      return json{{"id", id},
                  {"object", "text_completion"},
                  {"created", created},
                  {"model", ctx.model_name},
                  {"choices", json::array({{{"index", index},
                                            {"text", text},
                                            {"logprobs", logprobs},
                                            {"finish_reason", finish}}})}};
    };
    int64_t completion = 0, cached = 0, prompt_tokens = 0, drafted = 0, accepted = 0;
    std::vector<size_t> offsets(reqs.size(), 0);
    std::vector<bool> finished(reqs.size(), false);
    // A client gone mid-stream: cancel what still runs (its blocks are freed) and count it.
    struct CancelOnExit {
      ServerContext& ctx;
      std::vector<std::unique_ptr<Choices>>& choices;
      const std::vector<bool>& finished;
      const std::string& id;
      ~CancelOnExit() {
        for (auto& c : choices) c->cancel();
        record_disconnect(ctx, id, int(std::count(finished.begin(), finished.end(), false)));
      }
    } guard{ctx, *choices, finished, id};
    for (size_t p = 0; p < choices->size(); ++p) {
      Choices& c = *(*choices)[p];
      if (echo)
        for (int i = 0; i < g.n; ++i) {
          const std::string& e = echo_texts[p];
          offsets[p * size_t(g.n) + size_t(i)] = e.size();
          if (!write(sse(chunk(p * size_t(g.n) + size_t(i), e, nullptr, nullptr)))) return;
        }
      while (!c.done()) {
        auto ev = c.next(1.0);
        if (!ev) {
          // Nothing for a while (a long prefill): a comment finds out whether the client is there.
          if (!write(": keep-alive\n\n")) return;
          continue;
        }
        const size_t index = p * size_t(g.n) + size_t(ev->first);
        const RequestEvent& e = ev->second;
        if (e.kind == RequestEvent::Kind::prefill) continue;
        const bool fin = e.kind == RequestEvent::Kind::finished;
        if (!e.text.empty() || (!e.tokens.empty() && !fin)) {
          const json lp =
              reqs[index].logprobs ? legacy_logprobs(tok, e.tokens, offsets[index]) : json(nullptr);
          offsets[index] += e.text.size();
          if (!write(sse(chunk(index, e.text, lp, nullptr)))) return;
        }
        if (fin) {
          if (e.reason == FinishReason::error) {
            write(sse(ApiError(500, "internal_error", e.error).to_json()));
            return;
          }
          record_finish(ctx, id, int(index), e);
          finished[index] = true;
          if (!write(sse(chunk(index, "", nullptr, openai_finish_reason(e.reason))))) return;
          completion += e.usage.completion_tokens;
          drafted += e.usage.draft_tokens, accepted += e.usage.accepted_tokens;
          if (ev->first == 0)
            prompt_tokens += e.usage.prompt_tokens, cached += e.usage.cached_tokens;
        }
      }
    }
    if (g.include_usage) {
      json u = {{"id", id},
                {"object", "text_completion"},
                {"created", created},
                {"model", ctx.model_name},
                {"choices", json::array()},
                {"usage", usage_json(prompt_tokens, cached, completion, drafted, accepted)}};
      if (!write(sse(u))) return;
    }
    write("data: [DONE]\n\n");
  };
}

}  // namespace dsinfer::server
