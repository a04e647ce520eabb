// The HTTP server on the tiny preset through real sockets: every endpoint's shape, streaming,
// n, stops, logprobs, tokenize, metrics, errors with the right status, authentication, client
// disconnects, concurrency, and a randomized fuzz of request bodies.
#include <gtest/gtest.h>

#include <atomic>
#include <cctype>
#include <random>
#include <set>
#include <thread>

#include "server_test_util.h"

namespace dsinfer {
namespace {

using testing::json;
using testing::TestServer;

TestServer& shared_server() {
  static TestServer s;
  return s;
}

json chat(const std::string& text, int max_tokens) {
  return {{"messages", json::array({{{"role", "user"}, {"content", text}}})},
          {"max_tokens", max_tokens},
          {"temperature", 0},
          {"ignore_eos", true}};
}

TEST(Server, HealthModelsAndTheWebPage) {
  TestServer& s = shared_server();
  auto [st, body] = s.get("/health");
  EXPECT_EQ(st, 200);
  EXPECT_EQ(json::parse(body)["status"], "ok");
  auto [ms, models] = s.get("/v1/models");
  ASSERT_EQ(ms, 200);
  const json m = json::parse(models);
  EXPECT_EQ(m["object"], "list");
  EXPECT_EQ(m["data"][0]["id"], "model");
  EXPECT_EQ(m["data"][0]["max_model_len"], 4096);
  auto [ps, page] = s.get("/");
  EXPECT_EQ(ps, 200);
  EXPECT_NE(page.find("/v1/chat/completions"), std::string::npos);
  EXPECT_EQ(s.get("/nope").first, 404);
}

TEST(Server, ChatCompletionShapeAndUsage) {
  TestServer& s = shared_server();
  auto [st, r] = s.post("/v1/chat/completions", chat("Hello there", 12));
  ASSERT_EQ(st, 200) << r.dump();
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(r["model"], "model");
  const json& c = r["choices"][0];
  EXPECT_EQ(c["index"], 0);
  EXPECT_EQ(c["message"]["role"], "assistant");
  EXPECT_TRUE(c["message"]["content"].is_string());
  EXPECT_EQ(c["finish_reason"], "length");
  EXPECT_EQ(r["usage"]["completion_tokens"], 12);
  EXPECT_EQ(r["usage"]["total_tokens"].get<int>(), r["usage"]["prompt_tokens"].get<int>() + 12);
  EXPECT_TRUE(r["usage"]["prompt_tokens_details"]["cached_tokens"].is_number());
  // The same request again (greedy): the same answer.
  auto [st2, r2] = s.post("/v1/chat/completions", chat("Hello there", 12));
  EXPECT_EQ(r2["choices"][0]["message"]["content"], c["message"]["content"]);
}

TEST(Server, StreamingChunksAsOpenAISendsThem) {
  TestServer& s = shared_server();
  json body = chat("Tell me a story", 16);
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  const auto events = s.stream("/v1/chat/completions", body);
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  const json first = json::parse(events[0]);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  std::string text;
  std::string finish;
  json usage;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json e = json::parse(events[i]);
    EXPECT_EQ(e["id"], first["id"]);
    if (e.contains("usage") && !e["usage"].is_null()) {
      EXPECT_TRUE(e["choices"].empty());
      usage = e["usage"];
      continue;
    }
    const json& ch = e["choices"][0];
    if (ch["delta"].contains("content")) text += ch["delta"]["content"].get<std::string>();
    if (!ch["finish_reason"].is_null()) finish = ch["finish_reason"];
  }
  EXPECT_EQ(finish, "length");
  EXPECT_EQ(usage["completion_tokens"], 16);
  // The same text as without streaming.
  auto [st, whole] = s.post("/v1/chat/completions", chat("Tell me a story", 16));
  EXPECT_EQ(whole["choices"][0]["message"]["content"].get<std::string>(), text);
}

TEST(Server, ThinkingModeSeparatesTheReasoning) {
  TestServer& s = shared_server();
  json body = chat("Why?", 10);
  body["chat_template_kwargs"] = {{"thinking", true}};
  auto [st, r] = s.post("/v1/chat/completions", body);
  ASSERT_EQ(st, 200) << r.dump();
  const json& msg = r["choices"][0]["message"];
  // A random model rarely closes its reasoning: the text is reasoning, under both names.
  EXPECT_EQ(msg["reasoning_content"], msg["reasoning"]);
  EXPECT_TRUE(msg["reasoning_content"].is_string() || msg["content"].is_string());
  // The rendered prompt ends with <think> (vs </think> without thinking).
  json tk = {{"messages", body["messages"]}, {"chat_template_kwargs", {{"thinking", true}}}};
  auto [ts, t] = s.post("/tokenize", tk);
  ASSERT_EQ(ts, 200);
  json plain = {{"messages", body["messages"]}};
  auto [ps, p] = s.post("/tokenize", plain);
  EXPECT_NE(t["tokens"], p["tokens"]);
}

TEST(Server, NChoicesShareThePromptAndSeedsReproduce) {
  TestServer& s = shared_server();
  json body = chat(std::string(300, 'a') + " long shared prompt", 8);
  body["n"] = 3;
  body["temperature"] = 1.0;
  body["seed"] = 42;
  auto [st, r] = s.post("/v1/chat/completions", body);
  ASSERT_EQ(st, 200) << r.dump();
  ASSERT_EQ(r["choices"].size(), 3u);
  EXPECT_EQ(r["usage"]["completion_tokens"], 24);
  std::set<std::string> texts;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(r["choices"][i]["index"], i);
    texts.insert(r["choices"][i]["message"]["content"].get<std::string>());
  }
  EXPECT_GE(texts.size(), 2u);  // independent samples
  auto [st2, r2] = s.post("/v1/chat/completions", body);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(r2["choices"][i]["message"]["content"], r["choices"][i]["message"]["content"]);
  EXPECT_GT(r2["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), 0);
}

TEST(Server, StopsLogprobsAndCompletions) {
  TestServer& s = shared_server();
  auto [st, full] = s.post("/v1/completions", {{"prompt", "Once upon a time"},
                                               {"max_tokens", 30},
                                               {"temperature", 0},
                                               {"ignore_eos", true}});
  ASSERT_EQ(st, 200) << full.dump();
  EXPECT_EQ(full["object"], "text_completion");
  const std::string text = full["choices"][0]["text"];
  ASSERT_GT(text.size(), 8u);
  // Two ASCII letters from the middle on (random text: a stop string must be valid UTF-8).
  size_t at = text.size() / 2;
  while (at + 1 < text.size() &&
         !(std::isalpha((unsigned char)text[at]) && std::isalpha((unsigned char)text[at + 1])))
    ++at;
  ASSERT_LT(at + 1, text.size()) << text;
  const std::string stop = text.substr(at, 2);
  auto [st2, cut] = s.post(
      "/v1/completions",
      {{"prompt", "Once upon a time"}, {"max_tokens", 30}, {"temperature", 0}, {"stop", stop}});
  EXPECT_EQ(cut["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(cut["choices"][0]["text"], text.substr(0, text.find(stop)));
  // Echo and legacy logprobs.
  auto [st3, lp] = s.post("/v1/completions", {{"prompt", "Once upon a time"},
                                              {"max_tokens", 4},
                                              {"temperature", 0},
                                              {"echo", true},
                                              {"logprobs", 3}});
  ASSERT_EQ(st3, 200) << lp.dump();
  EXPECT_EQ(lp["choices"][0]["text"].get<std::string>().rfind("Once upon a time", 0), 0u);
  const json& l = lp["choices"][0]["logprobs"];
  EXPECT_EQ(l["tokens"].size(), 4u);
  EXPECT_EQ(l["top_logprobs"][0].size(), 3u);
  // Token-id prompts and chat logprobs.
  auto [st4, ids] = s.post("/v1/completions", {{"prompt", {5, 6, 7, 8}}, {"max_tokens", 3}});
  EXPECT_EQ(st4, 200) << ids.dump();
  json body = chat("hi", 3);
  body["logprobs"] = true;
  body["top_logprobs"] = 2;
  auto [st5, c] = s.post("/v1/chat/completions", body);
  ASSERT_EQ(st5, 200) << c.dump();
  const json& content = c["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 3u);
  EXPECT_EQ(content[0]["top_logprobs"].size(), 2u);
  EXPECT_LE(content[0]["logprob"].get<double>(), 0.0);
  EXPECT_TRUE(content[0]["bytes"].is_array());
}

TEST(Server, TokenizeMatchesTheChatPromptAndDetokenizeRoundTrips) {
  TestServer& s = shared_server();
  const json messages = json::array(
      {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi"}}});
  auto [st, t] = s.post("/tokenize", {{"messages", messages}});
  ASSERT_EQ(st, 200) << t.dump();
  EXPECT_EQ(t["count"], t["tokens"].size());
  auto [ds, d] = s.post("/detokenize", {{"tokens", t["tokens"]}});
  ASSERT_EQ(ds, 200);
  const std::string text = d["prompt"];
  // Tokenizing the rendered text (special-token strings included) gives the same ids.
  auto [st2, t2] = s.post("/tokenize", {{"prompt", text}, {"add_special_tokens", false}});
  EXPECT_EQ(t2["tokens"], t["tokens"]);
  auto [st3, t3] = s.post("/tokenize", {{"prompt", "hello"}});
  auto [st4, t4] = s.post("/tokenize", {{"prompt", "hello"}, {"add_special_tokens", false}});
  EXPECT_EQ(t3["count"].get<int>(), t4["count"].get<int>() + 1);  // the BOS
  // Content as text parts is the joined text; other part types are refused by name.
  const json parts = json::array({{{"role", "user"},
                                   {"content", json::array({{{"type", "text"}, {"text", "a"}},
                                                            {{"type", "text"}, {"text", "b"}}})}}});
  const json joined = json::array({{{"role", "user"}, {"content", "a\nb"}}});
  EXPECT_EQ(s.post("/tokenize", {{"messages", parts}}).second["tokens"],
            s.post("/tokenize", {{"messages", joined}}).second["tokens"]);
  const json image =
      json::array({{{"role", "user"},
                    {"content", json::array({{{"type", "image_url"}, {"image_url", "x"}}})}}});
  auto [is, ir] = s.post("/v1/chat/completions", {{"messages", image}});
  EXPECT_EQ(is, 400);
  EXPECT_EQ(ir["error"]["param"], "messages[0].content[0].type") << ir.dump();
  // The same prompt as a chat completion reports.
  auto [cs, c] = s.post("/v1/chat/completions", {{"messages", messages}, {"max_tokens", 1}});
  EXPECT_EQ(c["usage"]["prompt_tokens"], t["count"]);
}

TEST(Server, ErrorsHaveTheOpenAIShapeAndStatus) {
  TestServer& s = shared_server();
  auto expect = [&](const json& body, int status, const std::string& param,
                    const std::string& path = "/v1/chat/completions") {
    auto [st, r] = s.post(path, body);
    EXPECT_EQ(st, status) << body.dump() << " -> " << r.dump();
    ASSERT_TRUE(r.contains("error")) << r.dump();
    EXPECT_TRUE(r["error"]["message"].is_string());
    EXPECT_TRUE(r["error"].contains("type") && r["error"].contains("code"));
    if (!param.empty()) {
      EXPECT_EQ(r["error"]["param"], param) << r.dump();
    }
  };
  json b = chat("x", 4);
  b["temperature"] = "hot";
  expect(b, 400, "temperature");
  b = chat("x", 4);
  b["messages"][0]["role"] = "wizard";
  expect(b, 400, "messages[0]");
  expect({{"messages", json::array({{{"role", "tool"}, {"content", "42"}}})}}, 400, "messages[0]");
  b = chat("x", 5000);
  {
    auto [st, r] = s.post("/v1/chat/completions", b);
    EXPECT_EQ(st, 400);
    EXPECT_EQ(r["error"]["n_ctx"], 4096);
    EXPECT_TRUE(r["error"]["n_prompt_tokens"].is_number());
  }
  b = chat("x", 4);
  b["model"] = "gpt-9";
  expect(b, 404, "model");
  b = chat("x", 4);
  b["n"] = 0;
  expect(b, 400, "n");
  b = chat("x", 4);
  b["stop"] = 5;
  expect(b, 400, "stop");
  b = chat("x", 4);
  b["top_logprobs"] = 30;
  expect(b, 400, "top_logprobs");
  expect({{"max_tokens", 3}}, 400, "messages");
  expect({{"prompt", {1, 99999}}}, 400, "prompt[1]", "/v1/completions");
  // Malformed JSON and oversized bodies.
  httplib::Client c = s.client();
  auto r = c.Post("/v1/chat/completions", "{not json", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(json::parse(r->body)["error"]["type"], "invalid_request_error");
  r = c.Post("/v1/completions", std::string(33u << 20, ' '), "application/json");
  if (r) {  // the server may also close the connection on a body that large
    EXPECT_EQ(r->status, 413);
  }
}

TEST(Server, ApiKeyIsRequiredExceptForHealth) {
  server::ServerOptions o;
  o.api_key = "s3cret";
  TestServer s(o);
  EXPECT_EQ(s.get("/health").first, 200);
  EXPECT_EQ(s.get("/v1/models").first, 401);
  EXPECT_EQ(s.get("/v1/models", "wrong").first, 401);
  EXPECT_EQ(s.get("/v1/models", "s3cret").first, 200);
  auto [st, r] = s.post("/v1/chat/completions", chat("hi", 2));
  EXPECT_EQ(st, 401);
  EXPECT_EQ(r["error"]["type"], "authentication_error");
  EXPECT_EQ(s.post("/v1/chat/completions", chat("hi", 2), "s3cret").first, 200);
}

TEST(Server, HealthIs503UntilTheModelLoads) {
  server::ServerOptions o;
  o.model_dir = "/nonexistent/model";
  TestServer s(o);
  auto [st, body] = s.get("/health");
  EXPECT_EQ(st, 503);
  EXPECT_NE(body.find("failed to load"), std::string::npos) << body;
  EXPECT_EQ(s.post("/v1/chat/completions", chat("hi", 2)).first, 503);
}

TEST(Server, ADisconnectedStreamIsCancelled) {
  TestServer& s = shared_server();
  json body = chat("go on forever", 3000);
  body["stream"] = true;
  int seen = 0;
  s.stream("/v1/chat/completions", body, [&](const std::string&) { return ++seen < 5; });
  // The request is cancelled soon after: nothing keeps running, the abort is counted.
  for (int i = 0; i < 100; ++i) {
    const std::string m = s.get("/metrics").second;
    if (m.find("dsinfer:num_requests_running{model_name=\"model\"} 0") != std::string::npos &&
        m.find("request_disconnected_total{model_name=\"model\"} 0") == std::string::npos)
      return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ADD_FAILURE() << "the disconnected request kept running:\n" << s.get("/metrics").second;
}

TEST(Server, ConcurrentStreamsEachGetTheirOwnExactOutput) {
  TestServer& s = shared_server();
  const int kRequests = 32;
  std::vector<json> bodies;
  for (int i = 0; i < kRequests; ++i) {
    json b = {{"prompt", "request number " + std::to_string(i) + std::string(size_t(i * 7), 'z')},
              {"max_tokens", 5 + i % 11},
              {"temperature", i % 2 ? 0.9 : 0.0},
              {"seed", i},
              {"ignore_eos", true}};
    bodies.push_back(b);
  }
  // Alone first, then all at once, streaming.
  std::vector<std::string> alone(kRequests), together(kRequests);
  std::vector<int> counts(kRequests, 0);
  for (int i = 0; i < kRequests; ++i)
    alone[size_t(i)] = s.post("/v1/completions", bodies[size_t(i)]).second["choices"][0]["text"];
  std::vector<std::thread> threads;
  for (int i = 0; i < kRequests; ++i)
    threads.emplace_back([&, i] {
      json b = bodies[size_t(i)];
      b["stream"] = true;
      b["stream_options"] = {{"include_usage", true}};
      for (const std::string& e : s.stream("/v1/completions", b)) {
        if (e == "[DONE]") continue;
        const json j = json::parse(e);
        if (j.contains("usage") && !j["usage"].is_null())
          counts[size_t(i)] = j["usage"]["completion_tokens"];
        else
          together[size_t(i)] += j["choices"][0]["text"].get<std::string>();
      }
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < kRequests; ++i) {
    EXPECT_EQ(counts[size_t(i)], 5 + i % 11) << "request " << i;
    EXPECT_EQ(together[size_t(i)], alone[size_t(i)]) << "request " << i;
  }
}

TEST(Server, MetricsNameEverythingLikeVllm) {
  TestServer& s = shared_server();
  s.post("/v1/chat/completions", chat("metrics please", 3));
  auto [st, m] = s.get("/metrics");
  ASSERT_EQ(st, 200);
  for (const char* name :
       {"dsinfer:time_to_first_token_seconds_bucket", "dsinfer:inter_token_latency_seconds_count",
        "dsinfer:e2e_request_latency_seconds_sum", "dsinfer:request_queue_time_seconds_count",
        "dsinfer:num_requests_running", "dsinfer:num_requests_waiting",
        "dsinfer:kv_cache_usage_perc", "dsinfer:prefix_cache_queries_total",
        "dsinfer:prefix_cache_hits_total", "dsinfer:prompt_tokens_total",
        "dsinfer:generation_tokens_total",
        "dsinfer:request_success_total{model_name=\"model\",finished_reason=\"length\"}",
        "dsinfer:preemptions_total"})
    EXPECT_NE(m.find(name), std::string::npos) << name;
}

TEST(Server, SpeculativeDecodingKeepsGreedyAnswersAndCountsDrafts) {
  TestServer& plain = shared_server();
  server::ServerOptions o;
  o.engine.speculative_draft_tokens = 2;
  TestServer spec(o);
  for (const char* text : {"Hello there", "Another question entirely"}) {
    auto [st, a] = plain.post("/v1/chat/completions", chat(text, 16));
    auto [st2, b] = spec.post("/v1/chat/completions", chat(text, 16));
    ASSERT_EQ(st2, 200) << b.dump();
    EXPECT_EQ(b["choices"][0]["message"]["content"], a["choices"][0]["message"]["content"]);
    EXPECT_EQ(b["usage"]["completion_tokens"], 16);
    const json& sd = b["usage"]["spec_decode"];
    ASSERT_TRUE(sd.is_object()) << b.dump();
    EXPECT_GT(sd["draft_tokens"].get<int>(), 0);
    EXPECT_LE(sd["accepted_tokens"].get<int>(), sd["draft_tokens"].get<int>());
    EXPECT_FALSE(a["usage"].contains("spec_decode"));
  }
  // The legacy completions route reports the drafts too, streamed or not.
  const json body = {{"prompt", "Count the drafts"}, {"max_tokens", 12}, {"temperature", 0}};
  auto [stc, c] = spec.post("/v1/completions", body);
  ASSERT_EQ(stc, 200) << c.dump();
  ASSERT_TRUE(c["usage"]["spec_decode"].is_object()) << c.dump();
  EXPECT_GT(c["usage"]["spec_decode"]["draft_tokens"].get<int>(), 0);
  auto [stp, p] = plain.post("/v1/completions", body);
  EXPECT_EQ(c["choices"][0]["text"], p["choices"][0]["text"]);
  EXPECT_FALSE(p["usage"].contains("spec_decode"));
  auto [st, m] = spec.get("/metrics");
  ASSERT_EQ(st, 200);
  for (const char* name : {"dsinfer:spec_decode_num_draft_tokens_total",
                           "dsinfer:spec_decode_num_accepted_tokens_total"})
    EXPECT_NE(m.find(name), std::string::npos) << name;
}

// Random bodies built from pieces of valid requests, with types swapped and fields dropped: the
// server answers every one with 200 or a 4xx error object, never a crash or a 500.
TEST(Server, FuzzedBodiesNeverCrashIt) {
  TestServer& s = shared_server();
  std::mt19937 rng(77);
  const std::vector<json> values = {nullptr,
                                    true,
                                    -1,
                                    0,
                                    3,
                                    1e9,
                                    0.5,
                                    "",
                                    "x",
                                    "user",
                                    json::array(),
                                    json::object(),
                                    json::array({1, 2}),
                                    json::array({{{"role", "user"}, {"content", "hi"}}}),
                                    json::array({{{"type", "text"}, {"text", "hi"}}})};
  const std::vector<std::string> fields = {"messages",
                                           "prompt",
                                           "max_tokens",
                                           "temperature",
                                           "top_p",
                                           "n",
                                           "stop",
                                           "stream",
                                           "logprobs",
                                           "top_logprobs",
                                           "tools",
                                           "tool_choice",
                                           "response_format",
                                           "seed",
                                           "echo",
                                           "chat_template_kwargs",
                                           "model",
                                           "stream_options"};
  const std::vector<std::string> paths = {"/v1/chat/completions", "/v1/completions", "/tokenize",
                                          "/detokenize"};
  for (int i = 0; i < 400; ++i) {
    json b = i % 2 ? chat("fuzz", 2) : json{{"prompt", "fuzz"}, {"max_tokens", 2}};
    for (int k = int(rng() % 4); k >= 0; --k)
      b[fields[rng() % fields.size()]] = values[rng() % values.size()];
    if (rng() % 3 == 0 && b.contains("messages") && b["messages"].is_array() &&
        !b["messages"].empty() && b["messages"][0].is_object())
      b["messages"][0][rng() % 2 ? "content" : "role"] = values[rng() % values.size()];
    if (b.contains("max_tokens") && b["max_tokens"].is_number() &&
        b["max_tokens"].get<double>() > 8)
      b["max_tokens"] = 2;
    if (b.contains("n") && b["n"].is_number() && b["n"].get<double>() > 4) b["n"] = 2;
    b["stream"] = false;
    const std::string path = paths[rng() % paths.size()];
    auto [st, r] = s.post(path, b);
    EXPECT_TRUE(st == 200 || (st >= 400 && st < 500))
        << path << " " << b.dump() << " -> " << st << " " << r.dump();
    if (st != 200) {
      EXPECT_TRUE(r.contains("error")) << r.dump();
    }
  }
  EXPECT_EQ(s.get("/health").first, 200);
}

}  // namespace
}  // namespace dsinfer
