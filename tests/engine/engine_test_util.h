// Helpers for the engine tests: synthetic checkpoints made once per process, engines over them,
// and collecting a request's whole output.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

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

}  // namespace dsinfer::testing
