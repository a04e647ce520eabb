// `dsinfer bench engine`: the serving engine offline (no HTTP), as a load tool would drive a
// server: N requests of input_len random tokens after a shared_prefix common to all, output_len
// tokens each (EOS ignored), at most `concurrency` in flight (a finished one is replaced at once).
// Reports throughput, TTFT / TPOT / ITL percentiles, the prefix-cache hit rate, the engine's
// overhead share of its steps, and the weight bytes each decode step reads (routed experts are
// read once per step for all sequences: the batching gain's ceiling).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench_harness.h"
#include "bench_models.h"
#include "core/thread_pool.h"
#include "engine/engine.h"

namespace dsinfer::bench {
namespace {

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double at = p * double(v.size() - 1);
  const size_t i = size_t(at);
  const double f = at - double(i);
  return i + 1 < v.size() ? v[i] * (1 - f) + v[i + 1] * f : v[i];
}

// Prompt ids that avoid 0 and 1 (the synthetic tokenizer's BOS and EOS).
std::vector<int32_t> random_prompt(int64_t n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = int32_t(2 + rng() % uint32_t(vocab - 2));
  return t;
}

struct Load {
  int concurrency = 1, requests = 0;
  int64_t input_len = 256, output_len = 128, shared_prefix = 0;
};

struct Track {
  RequestHandle h;
  double submitted = 0;
  std::vector<double> token_times;
  int64_t completion = 0;
};

void run_load(Engine& engine, const Load& load, int threads, Report& report) {
  const Model& model = engine.model();
  const int vocab = int(model.config().vocab_size);
  const int n_req = load.requests > 0 ? load.requests : std::max(4, 2 * load.concurrency);
  const std::vector<int32_t> prefix = random_prompt(load.shared_prefix, vocab, 4242);
  auto make = [&](int i) {
    Request r;
    r.prompt = prefix;
    const auto own = random_prompt(load.input_len, vocab, 1000 + uint32_t(i) * 7919u);
    r.prompt.insert(r.prompt.end(), own.begin(), own.end());
    r.max_tokens = load.output_len;
    r.ignore_eos = true;
    r.sampling.seed = uint64_t(i);
    return r;
  };
  // Warm up on other tokens (first touches of weights and cache pages), so nothing measured
  // pays for them and the shared prefix is not cached yet.
  {
    Request w;
    w.prompt = random_prompt(std::min<int64_t>(64, load.input_len + 1), vocab, 7);
    w.max_tokens = 4;
    w.ignore_eos = true;
    RequestHandle h = engine.submit(w);
    while (h.next()) {
    }
  }
  engine.wait_idle(60);
  const EngineStats s0 = engine.stats();
  const OpTimes m0 = model.op_times();

  std::vector<Track> tracks(static_cast<size_t>(n_req));
  double uncached_ttft = -1;
  // Each request is followed by a client that blocks on its events (as a server's connection
  // thread does), so the compute cores are not interrupted by a polling loop: polling every
  // 200 us cost ~5% of the 8-sequence decode rate.
  auto run_one = [&](int i) {
    Track& t = tracks[size_t(i)];
    t.submitted = now_s();
    t.h = engine.submit(make(i));
    while (auto ev = t.h.next()) {
      const double at = now_s();
      for (size_t k = 0; k < ev->tokens.size(); ++k) t.token_times.push_back(at);
      if (ev->kind == RequestEvent::Kind::finished) {
        t.completion = ev->usage.completion_tokens;
        break;
      }
    }
  };
  const double t0 = now_s();
  std::atomic<int> next{0};
  if (load.shared_prefix > 0) {
    // The first request computes the shared prefix alone (its TTFT is the uncached one); the
    // others find it in the cache.
    run_one(next++);
    if (!tracks[0].token_times.empty())
      uncached_ttft = tracks[0].token_times[0] - tracks[0].submitted;
  }
  // `concurrency` clients, each taking the next request as soon as its last one finished.
  std::vector<std::thread> clients;
  for (int c = 0; c < load.concurrency; ++c)
    clients.emplace_back([&] {
      for (int i = next++; i < n_req; i = next++) run_one(i);
    });
  for (std::thread& c : clients) c.join();
  const double wall = now_s() - t0;
  engine.wait_idle(60);
  const EngineStats s1 = engine.stats();
  const OpTimes& m1 = model.op_times();

  std::vector<double> ttft, tpot, itl, ttft_cached;
  int64_t out_tokens = 0;
  for (size_t i = 0; i < tracks.size(); ++i) {
    const Track& t = tracks[i];
    out_tokens += t.completion;
    if (t.token_times.empty()) continue;
    const double first = t.token_times.front() - t.submitted;
    ttft.push_back(first * 1e3);
    if (load.shared_prefix > 0 && i > 0) ttft_cached.push_back(first * 1e3);
    if (t.token_times.size() > 1)
      tpot.push_back((t.token_times.back() - t.token_times.front()) /
                     double(t.token_times.size() - 1) * 1e3);
    for (size_t k = 1; k < t.token_times.size(); ++k)
      itl.push_back((t.token_times[k] - t.token_times[k - 1]) * 1e3);
  }
  const double steps = double(s1.steps - s0.steps);
  const double forward_s = s1.forward_s - s0.forward_s, overhead_s = s1.overhead_s - s0.overhead_s;
  const double decode_steps = double(s1.decode_steps - s0.decode_steps);
  const double experts_per_step = steps > 0 ? double(m1.experts_run - m0.experts_run) / steps : 0;
  const double expert_bytes_step = steps > 0 ? (m1.expert_bytes - m0.expert_bytes) / steps : 0;
  const double shared_bytes = shared_weight_bytes(model);

  Result r;
  r.name = "engine";
  r.params = {{"concurrency", load.concurrency},
              {"requests", n_req},
              {"input_len", load.input_len},
              {"output_len", load.output_len},
              {"shared_prefix", load.shared_prefix}};
  r.median_ms = percentile(tpot, 0.5);
  r.peak = PeakKind::read;
  // Weight bytes a decode step reads over its time: how close batching gets to streaming once.
  const double decode_step_s =
      decode_steps > 0 ? (s1.decode_step_s - s0.decode_step_s) / decode_steps : 0;
  r.gbs = decode_step_s > 0 ? (shared_bytes + expert_bytes_step) / decode_step_s / 1e9 : 0;
  r.extra["output_tok_s"] = double(out_tokens) / wall;
  r.extra["decode_tok_s"] = s1.decode_step_s > s0.decode_step_s
                                ? double(s1.decode_step_tokens - s0.decode_step_tokens) /
                                      (s1.decode_step_s - s0.decode_step_s)
                                : 0;
  r.extra["ttft_p50_ms"] = percentile(ttft, 0.5);
  r.extra["ttft_p90_ms"] = percentile(ttft, 0.9);
  r.extra["ttft_p99_ms"] = percentile(ttft, 0.99);
  r.extra["tpot_p50_ms"] = percentile(tpot, 0.5);
  r.extra["tpot_p90_ms"] = percentile(tpot, 0.9);
  r.extra["tpot_p99_ms"] = percentile(tpot, 0.99);
  r.extra["itl_p50_ms"] = percentile(itl, 0.5);
  r.extra["itl_p90_ms"] = percentile(itl, 0.9);
  r.extra["itl_p99_ms"] = percentile(itl, 0.99);
  const double prompt = double(s1.prompt_tokens - s0.prompt_tokens);
  r.extra["prefix_hit_rate"] =
      prompt > 0 ? double(s1.cached_prompt_tokens - s0.cached_prompt_tokens) / prompt : 0;
  r.extra["overhead_pct"] =
      forward_s + overhead_s > 0 ? 100 * overhead_s / (forward_s + overhead_s) : 0;
  r.extra["experts_per_step"] = experts_per_step;
  r.extra["weight_mb_per_step"] = (shared_bytes + expert_bytes_step) / 1e6;
  r.extra["preemptions"] = double(s1.preemptions - s0.preemptions);
  if (load.shared_prefix > 0) {
    r.extra["ttft_uncached_ms"] = uncached_ttft * 1e3;
    r.extra["ttft_cached_p50_ms"] = percentile(ttft_cached, 0.5);
  }
  report.add(r, threads);
}

int64_t arg_value(const Options& opts, const std::string& key, int64_t fallback) {
  for (size_t i = 0; i + 1 < opts.args.size(); ++i)
    if (opts.args[i] == key) return std::stoll(opts.args[i + 1]);
  return fallback;
}

SuiteRegistrar engine_suite(
    "engine",
    "the serving engine offline: throughput, TTFT/TPOT/ITL, prefix cache (--sweep: concurrency "
    "1-16, shared prefix 0 vs 2048)",
    [](const Options& opts, Report& report) {
      const std::string dir = opts.model_dir.empty() ? default_model_dir() : opts.model_dir;
      const bool sweep =
          std::find(opts.args.begin(), opts.args.end(), "--sweep") != opts.args.end();
      Load base;
      base.input_len = arg_value(opts, "--input-len", opts.quick ? 32 : 256);
      base.output_len = arg_value(opts, "--output-len", opts.quick ? 8 : 128);
      base.shared_prefix = arg_value(opts, "--shared-prefix", 0);
      base.requests = int(arg_value(opts, "--requests", 0));
      base.concurrency = int(arg_value(opts, "--concurrency", 1));
      std::vector<Load> loads;
      if (!sweep) {
        loads.push_back(base);
      } else {
        for (int c : {1, 2, 4, 8, 16}) {
          Load l = base;
          l.concurrency = c;
          l.shared_prefix = 0;
          loads.push_back(l);
        }
        for (int c : {1, 8}) {
          Load l = base;
          l.concurrency = c;
          l.shared_prefix = opts.quick ? 128 : 2048;
          loads.push_back(l);
        }
      }
      for (int t : opts.threads) {
        report.probe(t);
        set_num_threads(t);
        int max_c = 1;
        for (const Load& l : loads) max_c = std::max(max_c, l.concurrency);
        EngineOptions eo;
        eo.max_running = std::max(16, max_c);
        eo.max_batch_tokens = std::max<int64_t>(2048, eo.max_running);
        for (const Load& l : loads) {
          // A fresh engine per load: no prefix cache carried over.
          Engine engine(Model::load(dir), std::nullopt, eo);
          run_load(engine, l, t, report);
        }
      }
    });

}  // namespace
}  // namespace dsinfer::bench
