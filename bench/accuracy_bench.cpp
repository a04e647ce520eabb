// `dsinfer bench accuracy`: the numerical fidelity of every quantization scheme against the
// unquantized model (synthetic weights measure the arithmetic, not task quality). The model
// (default: mini, --quick: tiny) is quantized by `dsinfer quantize` into a scratch directory per
// scheme; both run the same random prompt (whole-prompt prefill, every position's logits) and
// then the same continuation one token at a time (decode), and each phase is compared: median
// relative logit error, argmax agreement and mean KL(base || quantized). The C8 rows keep the
// weights and store the latent cache in 8 bits (--kv-cache-dtype).
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "bench_harness.h"
#include "bench_models.h"
#include "core/thread_pool.h"
#include "fidelity.h"
#include "quant/quantize.h"
#include "synthetic/gen_model.h"

namespace dsinfer::bench {
namespace {

namespace fs = std::filesystem;

struct Logits {
  std::vector<float> prefill, decode;  // [prompt, vocab], [continuation, vocab]
  double seconds = 0;
};

Logits run_logits(const std::string& dir, const ModelOptions& mo,
                  const std::vector<int32_t>& prompt, const std::vector<int32_t>& cont) {
  std::unique_ptr<Model> m = Model::load(dir, mo);
  Logits out;
  const double t0 = now_s();
  const int seq = m->create_sequence();
  BatchEntry e{seq, prompt, true};
  ForwardOutput r = m->forward({e});
  out.prefill.assign(r.logits.data<float>(), r.logits.data<float>() + r.logits.numel());
  for (int32_t t : cont) {
    BatchEntry d{seq, {t}, false};
    r = m->forward({d});
    out.decode.insert(out.decode.end(), r.logits.data<float>(),
                      r.logits.data<float>() + r.logits.numel());
  }
  m->free_sequence(seq);
  out.seconds = now_s() - t0;
  return out;
}

struct Scheme {
  const char* name;
  bool quantize;  // false: the weights as they are, the cache changed
  QuantScheme scheme = QuantScheme::w4a16;
  QuantTargets targets = QuantTargets::experts;
  bool channel = false;
  KvCacheDtype cache = KvCacheDtype::automatic;
};

void run_accuracy(const Options& opts, Report& report) {
  const int threads = opts.threads.front();
  report.probe(threads);
  set_num_threads(threads);
  const bool quick = opts.quick;
  std::string dir = opts.model_dir;
  char tmpl[] = "/tmp/dsinfer-accuracy-XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("bench accuracy: cannot create a scratch directory");
  const std::string scratch = tmpl;
  struct Cleanup {
    std::string d;
    ~Cleanup() { fs::remove_all(d); }
  } cleanup{scratch};
  if (dir.empty() && quick) {
    GenModelOptions g;
    g.preset = GenPreset::tiny, g.dtype = GenDtype::fp8, g.output_dir = scratch + "/base",
    g.seed = 3;
    generate_model(g);
    dir = g.output_dir;
  } else if (dir.empty()) {
    dir = default_model_dir();
  }
  // tiny's expert projections have 32 inputs: groups of 32 there, 128 (the default) otherwise.
  const int group = quick ? 32 : 128;
  const Scheme schemes[] = {
      {"w4a16", true, QuantScheme::w4a16, QuantTargets::experts},
      {"w4a16", true, QuantScheme::w4a16, QuantTargets::mlp},
      {"w4a8", true, QuantScheme::w4a8, QuantTargets::experts},
      {"w8a16", true, QuantScheme::w8a16, QuantTargets::all_linear},
      {"w8a8", true, QuantScheme::w8a8, QuantTargets::all_linear, true},
      {"c8-fp8", false, {}, {}, false, KvCacheDtype::fp8},
      {"c8-int8", false, {}, {}, false, KvCacheDtype::int8},
  };

  const ModelConfig c = load_config(dir + "/config.json");
  const int64_t P = quick ? 3 * c.index_topk + 5 : 1024, D = quick ? 8 : 16;
  const std::vector<int32_t> prompt = random_tokens(P, int(c.vocab_size), 21),
                             cont = random_tokens(D, int(c.vocab_size), 22);
  const Logits base = run_logits(dir, ModelOptions{}, prompt, cont);

  for (const Scheme& s : schemes) {
    std::string qdir = dir;
    ModelOptions mo;
    mo.kv_cache_dtype = s.cache;
    if (s.quantize) {
      QuantizeOptions q;
      q.src = dir, q.dst = scratch + "/" + s.name + quant_targets_name(s.targets);
      q.scheme = s.scheme, q.targets = s.targets;
      q.group = s.channel ? -1 : group;
      // Only the targeted layers change: the other FP8 projections stay FP8.
      q.keep_fp8 = true;
      quantize_checkpoint(q);
      qdir = q.dst;
    }
    const Logits got = run_logits(qdir, mo, prompt, cont);
    if (s.quantize) fs::remove_all(qdir);
    for (int phase = 0; phase < 2; ++phase) {
      const Fidelity f = compare_logits(phase ? got.decode : got.prefill,
                                        phase ? base.decode : base.prefill, c.vocab_size);
      Result r;
      r.name = "accuracy";
      r.params = {{"scheme", s.name},
                  {"targets", s.quantize ? quant_targets_name(s.targets) : "kv-cache"},
                  {"phase", phase ? "decode" : "prefill"},
                  {"positions", f.positions}};
      if (s.quantize)
        r.params["group"] = s.channel ? std::string("channel") : std::to_string(group);
      r.median_ms = got.seconds * 1e3;
      r.extra["median_rel"] = f.median_rel;
      r.extra["argmax_agree"] = f.argmax_agree;
      r.extra["mean_kl"] = f.mean_kl;
      report.add(std::move(r), threads);
    }
  }
}

SuiteRegistrar accuracy_suite("accuracy",
                              "logit fidelity of each quantization scheme (INT4/INT8 weights, "
                              "C8 cache) against the unquantized model",
                              run_accuracy);

}  // namespace
}  // namespace dsinfer::bench
