// Helpers for the engine tests: synthetic checkpoints made once per process, engines over them,
// collecting a request's whole output, and comparing outputs bitwise.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "engine/engine.h"
#include "synthetic/gen_model.h"

namespace dsinfer::testing {

inline const std::string& synthetic_model(GenPreset preset) {
  static std::string dirs[2];
  static std::vector<std::string> roots;
  static struct Cleanup {
    ~Cleanup() {
      for (auto& d : roots) std::filesystem::remove_all(d);
    }
  } cleanup;
  std::string& d = dirs[int(preset)];
  if (d.empty()) {
    char tmpl[] = "/tmp/dsinfer-engine-XXXXXX";
    const char* root = mkdtemp(tmpl);
    if (!root) throw std::runtime_error("mkdtemp failed");
    roots.push_back(root);
    GenModelOptions o;
    o.preset = preset;
    o.output_dir = std::string(root) + "/model";
    o.seed = 13;
    generate_model(o);
    d = o.output_dir;
  }
  return d;
}

inline std::unique_ptr<Engine> make_engine(GenPreset preset, const EngineOptions& eo,
                                           ModelOptions mo = {}) {
  const std::string& dir = synthetic_model(preset);
  if (mo.kv_cache_tokens == 0) mo.kv_cache_tokens = 64 * 1024;
  return std::make_unique<Engine>(Model::load(dir, mo), Tokenizer::load(dir), eo);
}

inline std::vector<int32_t> random_prompt(int n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = int32_t(2 + rng() % uint32_t(vocab - 2));  // no BOS / EOS
  return t;
}

// Everything a request produced.
struct Output {
  std::vector<GeneratedToken> tokens;  // in order (with return_logits, the EOS / stop token last)
  std::string text;
  int events = 0, finished_events = 0;
  RequestEvent finish;
};

inline Output collect(RequestHandle h, double timeout_s = 600) {
  Output out;
  while (auto ev = h.next(timeout_s)) {
    ++out.events;
    for (auto& t : ev->tokens) out.tokens.push_back(t);
    out.text += ev->text;
    if (ev->kind == RequestEvent::Kind::finished) {
      ++out.finished_events;
      out.finish = *ev;
    }
  }
  return out;
}

// Submits every request at once and collects them in order.
inline std::vector<Output> run_together(Engine& engine, const std::vector<Request>& reqs) {
  std::vector<RequestHandle> hs;
  for (const Request& r : reqs) hs.push_back(engine.submit(r));
  std::vector<Output> out;
  for (auto& h : hs) out.push_back(collect(h));
  return out;
}

// Same tokens, text, finish reason, usage, logprobs and bitwise logits (return_logits) per request.
inline void expect_same(const std::vector<Output>& want, const std::vector<Output>& got,
                        const std::string& what) {
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(what + ", request " + std::to_string(i));
    ASSERT_EQ(got[i].finished_events, 1);
    ASSERT_EQ(got[i].finish.reason, want[i].finish.reason) << got[i].finish.error;
    ASSERT_EQ(got[i].tokens.size(), want[i].tokens.size());
    EXPECT_EQ(got[i].text, want[i].text);
    for (size_t t = 0; t < want[i].tokens.size(); ++t) {
      const GeneratedToken &a = want[i].tokens[t], &b = got[i].tokens[t];
      ASSERT_EQ(a.token, b.token) << "token " << t;
      ASSERT_EQ(a.logits.size(), b.logits.size());
      ASSERT_EQ(std::memcmp(a.logits.data(), b.logits.data(), a.logits.size() * 4), 0)
          << "logits of generated token " << t << " differ";
      EXPECT_EQ(a.logprob, b.logprob);
    }
    EXPECT_EQ(got[i].finish.usage.completion_tokens, want[i].finish.usage.completion_tokens);
  }
}

}  // namespace dsinfer::testing
