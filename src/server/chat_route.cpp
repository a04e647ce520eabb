// POST /v1/chat/completions: the conversation rendered in the model's chat format, the output
// parsed back into content, reasoning and tool calls, whole or streamed as OpenAI's SSE chunks.
#include <nlohmann/json.hpp>

#include "server/chat_request.h"
#include "server/choices.h"
#include "server/context.h"
#include "server/server.h"
#include "tokenizer/chat_output_parser.h"

namespace dsinfer::server {

namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

json token_bytes(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(int(c));
  return b;
}

// The chat logprobs entries of some tokens.
json chat_logprobs(const Tokenizer& tok, const std::vector<GeneratedToken>& tokens) {
  json content = json::array();
  for (const GeneratedToken& g : tokens) {
    const std::string s = tok.decode(std::vector<int32_t>{g.token});
    json top = json::array();
    for (const TokenLogprob& t : g.top) {
      const std::string ts = tok.decode(std::vector<int32_t>{t.token});
      top.push_back({{"token", ts}, {"logprob", t.logprob}, {"bytes", token_bytes(ts)}});
    }
    content.push_back(
        {{"token", s}, {"logprob", g.logprob}, {"bytes", token_bytes(s)}, {"top_logprobs", top}});
  }
  return content;
}

// One choice's output as it is parsed.
struct ChoiceState {
  ChatOutputParser parser;
  ParsedChatOutput parsed;
  std::vector<std::string> tool_ids;
  std::vector<GeneratedToken> tokens;  // for logprobs
  RequestEvent finish;
  bool done = false, started = false;
  double last_token = 0;
  ChoiceState(const ServerContext& ctx, const ChatPrompt& p)
      : parser(ctx.format, p.thinking, p.tools) {
    if (!p.forced_prefix.empty()) parser.push(p.forced_prefix);  // markup: no deltas
  }
};

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The usage of all the choices: the shared prompt once, the sum of their completions and drafts.
json choices_usage(const std::vector<ChoiceState>& states) {
  int64_t completion = 0, drafted = 0, accepted = 0;
  for (const ChoiceState& st : states) {
    completion += st.finish.usage.completion_tokens;
    drafted += st.finish.usage.draft_tokens, accepted += st.finish.usage.accepted_tokens;
  }
  const Usage& u0 = states[0].finish.usage;
  return usage_json(u0.prompt_tokens, u0.cached_tokens, completion, drafted, accepted);
}

}  // namespace

void handle_chat_completions(ServerContext& ctx, const HttpRequest& req, HttpResponse& res) {
  const json body = parse_body(req.body);
  const ojson obody = ojson::parse(req.body);
  check_model_name(ctx, body);
  GenerationFields g = generation_fields(body, true, ctx.sampling);
  const ChatPrompt prompt = render_chat_request(ctx, obody);
  const int64_t max_tokens = resolve_max_tokens(ctx, int64_t(prompt.tokens.size()), g.max_tokens);
  std::vector<Request> reqs;
  for (int i = 0; i < g.n; ++i) {
    Request r = g.request;
    r.prompt = prompt.tokens;
    r.max_tokens = max_tokens;
    if (g.seeded)
      r.sampling.seed += uint64_t(i);
    else if (i > 0)
      r.sampling.seed = std::hash<std::string>{}(random_id(""));
    reqs.push_back(r);
  }
  auto choices = std::make_shared<Choices>(*ctx.engine, reqs, ctx.options->request_timeout_s);
  auto states = std::make_shared<std::vector<ChoiceState>>();
  for (int i = 0; i < g.n; ++i) states->emplace_back(ctx, prompt);
  const std::string id = random_id("chatcmpl-");
  const int64_t created = unix_time();
  const bool want_logprobs = g.request.logprobs;
  ServerContext* cp = &ctx;

  // Applies one engine event to its choice; calls emit(delta json) for each piece of the message.
  auto apply = [cp, states, id](int i, RequestEvent& ev,
                                const std::function<void(const json&)>& emit) {
    ServerContext& ctx = *cp;
    ChoiceState& st = (*states)[size_t(i)];
    std::vector<ChatOutputDelta> deltas = st.parser.push(ev.text);
    if (ev.kind == RequestEvent::Kind::finished) {
      auto last = st.parser.finish();
      deltas.insert(deltas.end(), last.begin(), last.end());
    }
    const double t = now_s();
    if (ev.kind == RequestEvent::Kind::tokens && !ev.tokens.empty()) {
      if (st.last_token > 0) ctx.metrics->inter_token_latency(t - st.last_token);
      st.last_token = t;
    }
    for (const ChatOutputDelta& d : deltas) {
      st.parsed.add(d);
      json delta;
      switch (d.kind) {
        case ChatOutputDelta::Kind::reasoning:
          delta = {{"reasoning_content", d.text}, {"reasoning", d.text}};
          break;
        case ChatOutputDelta::Kind::content:
          delta = {{"content", d.text}};
          break;
        case ChatOutputDelta::Kind::tool_call_start:
          st.tool_ids.push_back(random_id("call_"));
          delta = {
              {"tool_calls", json::array({{{"index", d.tool_index},
                                           {"id", st.tool_ids.back()},
                                           {"type", "function"},
                                           {"function", {{"name", d.text}, {"arguments", ""}}}}})}};
          break;
        case ChatOutputDelta::Kind::tool_call_arguments:
          delta = {{"tool_calls", json::array({{{"index", d.tool_index},
                                                {"function", {{"arguments", d.text}}}}})}};
          break;
      }
      if (emit) emit(delta);
    }
    if (ev.kind == RequestEvent::Kind::finished) {
      st.finish = ev;
      st.done = true;
      record_finish(ctx, id, i, ev);
    }
  };
  auto finish_reason = [states](int i) {
    const ChoiceState& st = (*states)[size_t(i)];
    if (!st.parsed.tool_calls.empty() && st.finish.reason != FinishReason::length)
      return std::string("tool_calls");
    return openai_finish_reason(st.finish.reason);
  };

  if (!g.stream) {
    while (!choices->done()) {
      auto ev = choices->next(0.25);
      if (!ev) continue;
      ChoiceState& st = (*states)[size_t(ev->first)];
      if (want_logprobs)
        for (const auto& t : ev->second.tokens) st.tokens.push_back(t);
      apply(ev->first, ev->second, nullptr);
    }
    json resp = {{"id", id},
                 {"object", "chat.completion"},
                 {"created", created},
                 {"model", ctx.model_name},
                 {"choices", json::array()}};
    for (int i = 0; i < g.n; ++i) {
      const ChoiceState& st = (*states)[size_t(i)];
      if (st.finish.reason == FinishReason::error)
        throw ApiError(500, "internal_error", st.finish.error);
      json msg = {{"role", "assistant"}};
      const ParsedChatOutput& p = st.parsed;
      msg["content"] = p.content.empty() && !p.tool_calls.empty() ? json(nullptr) : json(p.content);
      msg["reasoning_content"] =
          p.reasoning_content.empty() ? json(nullptr) : json(p.reasoning_content);
      msg["reasoning"] = msg["reasoning_content"];
      if (!p.tool_calls.empty()) {
        msg["tool_calls"] = json::array();
        for (size_t k = 0; k < p.tool_calls.size(); ++k)
          msg["tool_calls"].push_back(
              {{"id", st.tool_ids[k]},
               {"type", "function"},
               {"function",
                {{"name", p.tool_calls[k].name}, {"arguments", p.tool_calls[k].arguments}}}});
      }
      resp["choices"].push_back(
          {{"index", i},
           {"message", msg},
           {"logprobs", want_logprobs ? json{{"content", chat_logprobs(*ctx.tokenizer, st.tokens)}}
                                      : json(nullptr)},
           {"finish_reason", finish_reason(i)}});
    }
    resp["usage"] = choices_usage(*states);
    res.body = dump(resp);
    return;
  }

  res.content_type = "text/event-stream";
  res.stream = [cp, choices, states, id, created, g, want_logprobs, apply,
                finish_reason](const std::function<bool(const std::string&)>& write) {
    ServerContext& ctx = *cp;
    // A client gone mid-stream: cancel what still runs (its blocks are freed) and count it.
    struct CancelOnExit {
      ServerContext& ctx;
      Choices& c;
      const std::vector<ChoiceState>& states;
      const std::string& id;
      ~CancelOnExit() {
        int unfinished = 0;
        for (const ChoiceState& st : states) unfinished += !st.done;
        c.cancel();
        record_disconnect(ctx, id, unfinished);
      }
    } guard{ctx, *choices, *states, id};
    auto chunk = [&](int index, const json& delta, const json& logprobs, const json& finish) {
      return json{{"id", id},
                  {"object", "chat.completion.chunk"},
                  {"created", created},
                  {"model", ctx.model_name},
                  {"choices", json::array({{{"index", index},
                                            {"delta", delta},
                                            {"logprobs", logprobs},
                                            {"finish_reason", finish}}})}};
    };
    bool ok = true;
    while (ok && !choices->done()) {
      auto ev = choices->next(1.0);
      if (!ev) {
        ok = write(": keep-alive\n\n");  // finds out whether the client is still there
        continue;
      }
      const int i = ev->first;
      RequestEvent& e = ev->second;
      if (e.kind == RequestEvent::Kind::prefill) continue;
      ChoiceState& st = (*states)[size_t(i)];
      if (!st.started) {
        st.started = true;
        ok = write(sse(chunk(i, {{"role", "assistant"}, {"content", ""}}, nullptr, nullptr)));
      }
      // Logprobs ride on the first delta of the event (or a delta of their own).
      json lp = want_logprobs && !e.tokens.empty() && e.kind == RequestEvent::Kind::tokens
                    ? json{{"content", chat_logprobs(*ctx.tokenizer, e.tokens)}}
                    : json(nullptr);
      bool sent = false;
      apply(i, e, [&](const json& delta) {
        if (!ok) return;
        ok = write(sse(chunk(i, delta, sent ? json(nullptr) : lp, nullptr)));
        sent = true;
      });
      if (ok && !sent && !lp.is_null()) ok = write(sse(chunk(i, json::object(), lp, nullptr)));
      if (ok && st.done) {
        if (st.finish.reason == FinishReason::error) {
          write(sse(ApiError(500, "internal_error", st.finish.error).to_json()));
          return;
        }
        ok = write(sse(chunk(i, json::object(), nullptr, finish_reason(i))));
      }
    }
    if (!ok) return;
    if (g.include_usage) {
      json u = {{"id", id},
                {"object", "chat.completion.chunk"},
                {"created", created},
                {"model", ctx.model_name},
                {"choices", json::array()},
                {"usage", choices_usage(*states)}};
      if (!write(sse(u))) return;
    }
    write("data: [DONE]\n\n");
  };
}

}  // namespace dsinfer::server
