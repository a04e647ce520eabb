// `dsinfer bench serve --url URL`: an OpenAI-protocol load generator, like `vllm bench serve`'s
// random dataset: N streaming /v1/completions requests whose prompts are random token ids
// (shared_prefix common ids, then input_len of their own), output_len tokens each (EOS ignored),
// at a fixed concurrency or with Poisson arrivals at request_rate. Reports request throughput,
// output tok/s, TTFT / TPOT / ITL / E2E percentiles, errors, and checks that every request got
// exactly its token count.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench_harness.h"

namespace dsinfer::bench {
namespace {

using json = nlohmann::json;

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double at = p * double(v.size() - 1);
  const size_t i = size_t(at);
  return i + 1 < v.size() ? v[i] + (at - double(i)) * (v[i + 1] - v[i]) : v[i];
}

struct Target {
  std::string host;
  int port = 8080;
  std::string model;
  int64_t vocab = 0;
};

Target parse_url(const std::string& url) {
  Target t;
  std::string rest = url;
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  if (rest.rfind("https://", 0) == 0)
    throw std::runtime_error("bench serve: https is not supported");
  const size_t slash = rest.find('/');
  if (slash != std::string::npos) rest = rest.substr(0, slash);
  const size_t colon = rest.rfind(':');
  t.host = colon == std::string::npos ? rest : rest.substr(0, colon);
  if (colon != std::string::npos) t.port = std::stoi(rest.substr(colon + 1));
  return t;
}

struct Outcome {
  bool ok = false;
  std::string error;
  double ttft = 0, e2e = 0;
  std::vector<double> itl;
  int64_t tokens = 0, expected = 0;
};

// One streaming request; token arrival times come from the SSE chunks.
Outcome send(const Target& t, const std::vector<int32_t>& prompt, int64_t max_tokens) {
  Outcome o;
  o.expected = max_tokens;
  httplib::Client c(t.host, t.port);
  c.set_read_timeout(3600, 0);
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.set_header("Content-Type", "application/json");
  if (const char* key = std::getenv("OPENAI_API_KEY"))
    req.set_header("Authorization", std::string("Bearer ") + key);
  req.body = json{{"model", t.model},
                  {"prompt", prompt},
                  {"max_tokens", max_tokens},
                  {"ignore_eos", true},
                  {"temperature", 0},
                  {"stream", true},
                  {"stream_options", {{"include_usage", true}}}}
                 .dump();
  const double t0 = now_s();
  double last = 0;
  std::string buf;
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    buf.append(data, n);
    size_t at;
    while ((at = buf.find("\n\n")) != std::string::npos) {
      const std::string ev = buf.substr(0, at);
      buf.erase(0, at + 2);
      if (ev.rfind("data: ", 0) != 0) continue;
      const std::string payload = ev.substr(6);
      if (payload == "[DONE]") continue;
      const json j = json::parse(payload, nullptr, false);
      if (j.is_discarded()) continue;
      if (j.contains("error")) {
        o.error = j["error"].value("message", "error");
        continue;
      }
      if (j.contains("usage") && j["usage"].is_object())
        o.tokens = j["usage"].value("completion_tokens", int64_t(0));
      if (!j.contains("choices") || j["choices"].empty()) continue;
      const std::string text = j["choices"][0].value("text", "");
      if (text.empty()) continue;
      const double at_s = now_s();
      if (last == 0)
        o.ttft = at_s - t0;
      else
        o.itl.push_back(at_s - last);
      last = at_s;
    }
    return true;
  };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  const bool sent = c.send(req, res, err);
  o.e2e = now_s() - t0;
  if (!sent)
    o.error = "connection: " + httplib::to_string(err);
  else if (res.status != 200)
    o.error = "HTTP " + std::to_string(res.status) + " " + res.body.substr(0, 200);
  o.ok = o.error.empty() && o.tokens == o.expected;
  if (o.error.empty() && o.tokens != o.expected)
    o.error =
        "got " + std::to_string(o.tokens) + " tokens, asked for " + std::to_string(o.expected);
  return o;
}

double arg_value(const Options& opts, const std::string& key, double fallback) {
  for (size_t i = 0; i + 1 < opts.args.size(); ++i)
    if (opts.args[i] == key) return std::stod(opts.args[i + 1]);
  return fallback;
}

SuiteRegistrar serve_suite(
    "serve",
    "an OpenAI-protocol load test of a running server (--url; --concurrency or --request-rate)",
    [](const Options& opts, Report& report) {
      Target t = parse_url(opts.url.empty() ? "http://127.0.0.1:8080" : opts.url);
      {  // The model's name and vocabulary, from /v1/models.
        httplib::Client c(t.host, t.port);
        httplib::Headers h;
        if (const char* key = std::getenv("OPENAI_API_KEY"))
          h.emplace("Authorization", std::string("Bearer ") + key);
        auto r = c.Get("/v1/models", h);
        if (!r || r->status != 200)
          throw std::runtime_error("bench serve: no server answers /v1/models at " + opts.url);
        const json m = json::parse(r->body)["data"][0];
        t.model = m.value("id", "");
        t.vocab = m.value("vocab_size", int64_t(32000));
      }
      const int64_t input_len = int64_t(arg_value(opts, "--input-len", opts.quick ? 32 : 256));
      const int64_t output_len = int64_t(arg_value(opts, "--output-len", opts.quick ? 8 : 128));
      const int64_t shared = int64_t(arg_value(opts, "--shared-prefix", 0));
      const int concurrency = int(arg_value(opts, "--concurrency", 8));
      const double rate = arg_value(opts, "--request-rate", 0);
      const int n = int(arg_value(opts, "--requests", std::max(4, 2 * concurrency)));
      std::mt19937 rng(4242);
      auto random_ids = [&](int64_t len, uint32_t seed) {
        std::mt19937 g(seed);
        std::vector<int32_t> v(static_cast<size_t>(len));
        for (auto& x : v) x = int32_t(2 + g() % uint32_t(std::max<int64_t>(3, t.vocab - 2)));
        return v;
      };
      const std::vector<int32_t> prefix = random_ids(shared, 99);
      std::vector<std::vector<int32_t>> prompts;
      for (int i = 0; i < n; ++i) {
        std::vector<int32_t> p = prefix;
        const auto own = random_ids(input_len, 1000 + uint32_t(i));
        p.insert(p.end(), own.begin(), own.end());
        prompts.push_back(std::move(p));
      }
      std::vector<Outcome> outcomes(static_cast<size_t>(n));
      double uncached_ttft = -1;
      int first = 0;
      if (shared > 0) {  // the first request computes the shared prefix alone
        outcomes[0] = send(t, prompts[0], output_len);
        uncached_ttft = outcomes[0].ttft;
        first = 1;
      }
      std::atomic<int> next{first};
      const double t0 = now_s();
      std::vector<std::thread> workers;
      if (rate > 0) {
        // Poisson arrivals: one thread per request, started at exponential gaps.
        std::exponential_distribution<double> gap(rate);
        double at = 0;
        for (int i = first; i < n; ++i) {
          at += gap(rng);
          workers.emplace_back([&, i, at] {
            std::this_thread::sleep_until(std::chrono::steady_clock::now() +
                                          std::chrono::duration<double>(t0 + at - now_s()));
            outcomes[size_t(i)] = send(t, prompts[size_t(i)], output_len);
          });
        }
      } else {
        for (int w = 0; w < concurrency; ++w)
          workers.emplace_back([&] {
            for (int i; (i = next++) < n;)
              outcomes[size_t(i)] = send(t, prompts[size_t(i)], output_len);
          });
      }
      for (auto& w : workers) w.join();
      const double wall = now_s() - t0;

      std::vector<double> ttft, tpot, itl, e2e, ttft_cached;
      int64_t out_tokens = 0;
      int errors = 0, ok = 0;
      std::string first_error;
      for (int i = first; i < n; ++i) {
        const Outcome& o = outcomes[size_t(i)];
        if (!o.ok) {
          ++errors;
          if (first_error.empty()) first_error = o.error;
          continue;
        }
        ++ok;
        out_tokens += o.tokens;
        ttft.push_back(o.ttft * 1e3);
        e2e.push_back(o.e2e * 1e3);
        if (o.tokens > 1) tpot.push_back((o.e2e - o.ttft) / double(o.tokens - 1) * 1e3);
        for (double g : o.itl) itl.push_back(g * 1e3);
      }
      if (!first_error.empty())
        std::fprintf(stderr, "bench serve: %d errors, first: %s\n", errors, first_error.c_str());
      Result r;
      r.name = "serve";
      r.params = {{"concurrency", rate > 0 ? 0 : concurrency},
                  {"request_rate", rate},
                  {"requests", n - first},
                  {"input_len", input_len},
                  {"output_len", output_len},
                  {"shared_prefix", shared}};
      r.median_ms = percentile(tpot, 0.5);
      r.extra["output_tok_s"] = double(out_tokens) / wall;
      r.extra["request_s"] = double(ok) / wall;
      r.extra["errors"] = errors;
      for (const auto& [name, v] : {std::pair<const char*, std::vector<double>*>{"ttft", &ttft},
                                    {"tpot", &tpot},
                                    {"itl", &itl},
                                    {"e2e", &e2e}}) {
        r.extra[std::string(name) + "_p50_ms"] = percentile(*v, 0.5);
        r.extra[std::string(name) + "_p90_ms"] = percentile(*v, 0.9);
        r.extra[std::string(name) + "_p99_ms"] = percentile(*v, 0.99);
      }
      if (shared > 0) r.extra["ttft_uncached_ms"] = uncached_ttft * 1e3;
      report.add(r, 0);
    });

}  // namespace
}  // namespace dsinfer::bench
