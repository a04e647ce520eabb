// `mpirun -np N dsinfer bench dist --ep E --cp C`: what distributing the model costs and buys on
// `mini` (or -m DIR): per-layer bytes and time of the EP dispatch/combine and the CP cache gather,
// checked against the volume formulas of docs/distributed.md, the exposed (non-overlapped)
// exchange time, end-to-end prefill and decode time against one process using the same cores,
// and the weight memory of each rank.
#include <sched.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench_harness.h"
#include "bench_models.h"
#include "core/thread_pool.h"
#include "dist/communicator.h"
#include "model/model.h"

namespace dsinfer::bench {
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct Shape {
  int64_t prompt = 1024, depth = 8192;
  int prefill_reps = 2, decode_steps = 8;
};

// The root's measurements on a loaded model (every other rank runs its steps meanwhile): the
// median prefill of s.prompt tokens, and the median decode step at s.depth.
double prefill_ms(Model& m, const Shape& s) {
  std::vector<double> ms;
  for (int rep = 0; rep < s.prefill_reps; ++rep)
    ms.push_back(time_prefill(m, s.prompt, uint32_t(rep + 1)).total_s * 1e3);
  return median(ms);
}
double decode_ms(Model& m, const Shape& s) {
  return time_decode(m, s.depth, s.decode_steps).total_s * 1e3;
}

// What one rank did during a phase, exchanged with every rank at its end.
struct RankStats {
  double sent[dist::Traffic::n_kinds] = {}, received[dist::Traffic::n_kinds] = {},
         seconds[dist::Traffic::n_kinds] = {};
  int64_t remote_rows = 0, remote_pairs = 0, exchanges = 0;
  double weight_bytes = 0, peak_rss = 0;
};

RankStats stats_of(const Model& m) {
  RankStats r;
  const dist::Traffic t = m.traffic();
  for (int k = 0; k < dist::Traffic::n_kinds; ++k)
    r.sent[k] = t.sent[k], r.received[k] = t.received[k], r.seconds[k] = t.seconds[k];
  r.remote_rows = m.op_times().ep_remote_rows;
  r.remote_pairs = m.op_times().ep_remote_pairs;
  r.exchanges = m.op_times().ep_exchanges;
  r.weight_bytes = double(m.weights().resident_bytes());
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  r.peak_rss = double(ru.ru_maxrss) * 1024.0;
  return r;
}

// One phase of the distributed run: every rank loads the model; the root runs `fn` while the
// others execute its steps; then every rank's statistics go to every rank.
template <class Fn>
std::vector<RankStats> phase(const std::string& dir, const dist::Layout& layout, Fn fn,
                             bool cp_overlap = true) {
  ModelOptions mo;
  mo.dist = layout;
  mo.cp_overlap = cp_overlap;
  std::unique_ptr<Model> m = Model::load(dir, mo);
  m->reset_traffic();
  RankStats mine;
  if (m->is_root()) {
    fn(*m);
    mine = stats_of(*m);
    m.reset();  // ends the workers' loops
  } else {
    m->run_worker();
    mine = stats_of(*m);
    m.reset();
  }
  return dist::world().allgather_value(mine);
}

SuiteRegistrar dist_suite(
    "dist",
    "under mpirun (--ep E --cp C): EP/CP exchange volume and time per layer against the formulas, "
    "prefill and decode against one process on the same cores, weight memory per rank",
    [](const Options& opts, Report& report) {
      dist::Communicator& w = dist::world();
      const int N = w.size();
      // The root makes the default model once; the others wait for it.
      std::string dir = opts.model_dir;
      if (dir.empty() && w.is_root()) dir = default_model_dir();
      w.barrier();
      if (dir.empty()) dir = default_model_dir();
      const int t = opts.threads.front();
      Shape s;
      if (opts.quick) s = Shape{256, 2048, 1, 3};
      const dist::Layout L = opts.dist;

      // One process on the cores the job uses (N ranks x t threads), the others asleep.
      struct Timing {
        double prefill_ms = 0, decode_ms = 0;
      } one, many;
      std::optional<ModelConfig> config;  // the root's
      int moe = 0;
      if (w.is_root()) {
        // mpirun binds each rank to a core by default: the baseline would then run its N x t
        // threads on the root's core alone.
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) < N * t)
          std::fprintf(stderr,
                       "bench dist: warning: rank 0 may run on %d core(s), fewer than the %d "
                       "threads of the one-process baseline; launch with mpirun --bind-to none "
                       "for a fair comparison\n",
                       CPU_COUNT(&set), N * t);
        set_num_threads(std::max(1, std::min(N * t, int(std::thread::hardware_concurrency()))));
        ModelOptions mo;
        mo.one_process = true;
        std::unique_ptr<Model> m = Model::load(dir, mo);
        one.prefill_ms = prefill_ms(*m, s);
        one.decode_ms = decode_ms(*m, s);
        config = m->config();
        moe = moe_layers(*m);
      }
      w.quiet_barrier();
      set_num_threads(t);

      const std::vector<RankStats> pre =
          phase(dir, L, [&](Model& m) { many.prefill_ms = prefill_ms(m, s); });
      const std::vector<RankStats> dec =
          phase(dir, L, [&](Model& m) { many.decode_ms = decode_ms(m, s); });
      // CP: the same prefill with the gather waited for at once, to measure what the overlap
      // with the query projections hides.
      double blocking_ms = 0;
      std::vector<RankStats> pre_blocking;
      if (L.cp > 1)
        pre_blocking = phase(
            dir, L, [&](Model& m) { blocking_ms = prefill_ms(m, s); }, false);
      if (!w.is_root()) return;

      const ModelConfig& c = *config;
      const int layers = c.num_hidden_layers;
      const double row = double((c.kv_lora_rank + c.qk_rope_head_dim) * 2 + 132);
      const double D = double(c.hidden_size);
      const nlohmann::json params = {{"ranks", N}, {"ep", L.ep}, {"cp", L.cp}, {"threads", t}};
      auto sum = [](const std::vector<RankStats>& v, auto field) {
        double x = 0;
        for (const RankStats& r : v) x += field(r);
        return x;
      };
      using K = dist::Traffic;
      // Per phase: bytes per rank per layer (mean over ranks), formula, exposed time at the root.
      auto add_phase = [&](const char* name, const std::vector<RankStats>& st, double ms,
                           double one_ms, double tokens, int reps) {
        Result r;
        r.name = name;
        r.params = params;
        r.params["tokens"] = tokens;
        r.median_ms = ms;
        r.extra["one_process_ms"] = one_ms;
        r.extra["speedup"] = one_ms / ms;
        const double per = double(reps) * N;
        const double cp_recv = sum(st, [](const RankStats& x) { return x.received[K::cp_gather]; });
        r.extra["cp_gather_kb_per_layer"] = cp_recv / per / layers / 1e3;
        // (C-1)/C of the step's tokens' rows reach each rank, every layer.
        r.extra["cp_gather_formula_kb"] =
            L.cp > 1 ? double(L.cp - 1) / L.cp * tokens * row / 1e3 : 0.0;
        const double ep_sent = sum(st, [](const RankStats& x) { return x.sent[K::ep_dispatch]; });
        const double ep_back =
            sum(st, [](const RankStats& x) { return x.received[K::ep_combine]; });
        const double rows = sum(st, [](const RankStats& x) { return double(x.remote_rows); });
        const double pairs = sum(st, [](const RankStats& x) { return double(x.remote_pairs); });
        const double calls = sum(st, [](const RankStats& x) { return double(x.exchanges); });
        r.extra["ep_dispatch_kb_per_layer"] = ep_sent / per / moe / 1e3;
        r.extra["ep_combine_kb_per_layer"] = ep_back / per / moe / 1e3;
        // Each token once per remote destination (bf16 rows), 8 bytes per (token, expert) pair
        // and the 16-byte counts per peer; one f32 output per pair back.
        r.extra["ep_dispatch_formula_kb"] =
            (rows * D * 2 + pairs * 8 + calls * 16.0 * (L.ep - 1)) / per / moe / 1e3;
        r.extra["ep_combine_formula_kb"] = pairs * D * 4 / per / moe / 1e3;
        const RankStats& root = st[0];
        r.extra["cp_exposed_ms_per_layer"] = root.seconds[K::cp_gather] * 1e3 / reps / layers;
        r.extra["ep_ms_per_layer"] =
            (root.seconds[K::ep_dispatch] + root.seconds[K::ep_combine]) * 1e3 / reps / moe;
        r.extra["comm_share"] = (root.seconds[K::cp_gather] + root.seconds[K::ep_dispatch] +
                                 root.seconds[K::ep_combine] + root.seconds[K::replica_gather]) *
                                1e3 / reps / ms;
        report.add(r, 0);
      };
      add_phase("dist_prefill", pre, many.prefill_ms, one.prefill_ms, double(s.prompt),
                s.prefill_reps);
      if (L.cp > 1) {
        // The root's exposed gather time with and without the overlap.
        const double hidden = pre[0].seconds[K::cp_gather],
                     whole = pre_blocking[0].seconds[K::cp_gather];
        Result r;
        r.name = "dist_cp_overlap";
        r.params = params;
        r.params["tokens"] = s.prompt;
        r.median_ms = many.prefill_ms;
        r.extra["blocking_prefill_ms"] = blocking_ms;
        r.extra["exposed_ms_per_layer"] = hidden * 1e3 / s.prefill_reps / layers;
        r.extra["blocking_ms_per_layer"] = whole * 1e3 / s.prefill_reps / layers;
        r.extra["overlap"] = whole > 0 ? std::max(0.0, 1.0 - hidden / whole) : 0.0;
        report.add(r, 0);
      }
      add_phase("dist_decode", dec, many.decode_ms, one.decode_ms, 1.0, s.decode_steps + 1);
      for (int rank = 0; rank < N; ++rank) {
        Result r;
        r.name = "dist_rank_memory";
        r.params = params;
        r.params["rank"] = rank;
        r.extra["weights_gib"] = dec[size_t(rank)].weight_bytes / double(1 << 30);
        r.extra["peak_rss_gib"] = dec[size_t(rank)].peak_rss / double(1 << 30);
        report.add(r, 0);
      }
    });

}  // namespace
}  // namespace dsinfer::bench
