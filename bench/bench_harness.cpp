#include "bench_harness.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <stdexcept>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "dist/communicator.h"

namespace dsinfer::bench {

std::map<std::string, std::pair<std::string, Suite>>& suites() {
  static std::map<std::string, std::pair<std::string, Suite>> s;
  return s;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double time_median_ms(const std::function<void()>& fn, int min_repeats, double min_seconds) {
  using clock = std::chrono::steady_clock;
  fn();  // warm-up: page faults, caches, lazy packing
  std::vector<double> ms;
  auto start = clock::now();
  while (int(ms.size()) < min_repeats ||
         std::chrono::duration<double>(clock::now() - start).count() < min_seconds) {
    auto t0 = clock::now();
    fn();
    ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
    if (ms.size() >= 1000) break;
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

const PeakProbe& Report::probe(int threads) {
  auto it = probes_.find(threads);
  if (it != probes_.end()) return it->second;
  set_num_threads(threads);
  // 15 repeats: on a shared machine a neighbour can hold a core for a while, and only the best
  // run shows the peak.
  PeakProbe p = measure_peak(15);
  std::fprintf(
      stderr,
      "probe: %d thread(s), isa %s: bf16 %.1f GFLOP/s (native dot %.1f), f32 %.1f GFLOP/s, "
      "int8 %.1f GOP/s, read %.1f GB/s\n",
      threads, p.isa, p.bf16_gflops, p.bf16_dot_gflops, p.f32_gflops, p.int8_gops, p.read_gbs);
  return probes_[threads] = p;
}

void Report::probe_all(const std::vector<int>& threads) {
  const int saved = num_threads();
  const PeakProbe one = probe(1);
  for (int t : threads) {
    if (t <= 1) continue;
    const PeakProbe& p = probe(t);
    const std::pair<const char*, double> ratios[] = {{"bf16", p.bf16_gflops / one.bf16_gflops},
                                                     {"f32", p.f32_gflops / one.f32_gflops}};
    for (auto [what, ratio] : ratios) {
      if (ratio >= 1.6) continue;
      char buf[256];
      std::snprintf(buf, sizeof buf,
                    "the %d-thread %s probe is only %.3fx the 1-thread one (expected >= 1.6x): "
                    "another process holds a core; %%peak at %d threads reads high",
                    t, what, ratio, t);
      warnings_.push_back(buf);
      std::fprintf(stderr, "warning: %s\n", buf);
    }
  }
  set_num_threads(saved);
}

void Report::add(Result r, int threads) {
  if (threads <= 0) {  // measured elsewhere (another process): no probe, no percentage
    r.params["threads"] = 0;
    results_.push_back(std::move(r));
    return;
  }
  const PeakProbe& p = probe(threads);
  switch (r.peak) {
    case PeakKind::bf16:
      r.pct_peak = 100.0 * r.gflops / p.bf16_gflops;
      break;
    case PeakKind::f32:
      r.pct_peak = 100.0 * r.gflops / p.f32_gflops;
      break;
    case PeakKind::read:
      r.pct_peak = 100.0 * r.gbs / p.read_gbs;
      break;
    case PeakKind::int8:
      r.pct_peak = 100.0 * r.gflops / p.int8_gops;
      break;
  }
  r.params["threads"] = threads;
  results_.push_back(std::move(r));
}

namespace {
const char* peak_name(PeakKind k) {
  switch (k) {
    case PeakKind::bf16:
      return "bf16";
    case PeakKind::f32:
      return "f32";
    case PeakKind::read:
      return "read";
    case PeakKind::int8:
      return "int8";
  }
  return "?";
}
std::string params_string(const nlohmann::json& params) {
  std::string s;
  for (auto it = params.begin(); it != params.end(); ++it) {
    if (it.key() == "threads") continue;
    if (!s.empty()) s += " ";
    s += it.key() + "=" + (it->is_string() ? it->get<std::string>() : it->dump());
  }
  return s;
}
}  // namespace

void Report::print_table() const {
  for (auto& [threads, p] : probes_)
    std::printf(
        "probe %d thread(s) [%s]: bf16 %.1f GFLOP/s (native dot %.1f), f32 %.1f GFLOP/s, "
        "int8 %.1f GOP/s, read %.1f GB/s\n",
        threads, p.isa, p.bf16_gflops, p.bf16_dot_gflops, p.f32_gflops, p.int8_gops, p.read_gbs);
  for (const std::string& w : warnings_) std::printf("warning: %s\n", w.c_str());
  std::printf("%-22s %-44s %3s %10s %9s %8s %8s  %s\n", "name", "params", "thr", "median_ms",
              "GFLOP/s", "GB/s", "%peak", "extra");
  for (const Result& r : results_) {
    std::string extra;
    for (auto& [k, v] : r.extra) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%s%s=%.3g", extra.empty() ? "" : " ", k.c_str(), v);
      extra += buf;
    }
    std::printf("%-22s %-44s %3d %10.3f %9.1f %8.1f %6.1f%%%-1s  %s\n", r.name.c_str(),
                params_string(r.params).c_str(), r.params["threads"].get<int>(), r.median_ms,
                r.gflops, r.gbs, r.pct_peak, "",
                (std::string("of ") + peak_name(r.peak) + " " + extra).c_str());
  }
}

nlohmann::json Report::to_json() const {
  nlohmann::json j;
  // "machine" is the probe at the largest thread count; "probes" has one per thread count.
  nlohmann::json probes = nlohmann::json::array();
  for (auto& [threads, p] : probes_) {
    nlohmann::json m = {{"isa", p.isa},
                        {"threads", threads},
                        {"bf16_gflops", p.bf16_gflops},
                        {"bf16_dot_gflops", p.bf16_dot_gflops},
                        {"f32_gflops", p.f32_gflops},
                        {"int8_gops", p.int8_gops},
                        {"read_gbs", p.read_gbs}};
    probes.push_back(m);
    j["machine"] = m;
  }
  j["probes"] = probes;
  j["warnings"] = warnings_;
  j["results"] = nlohmann::json::array();
  for (const Result& r : results_) {
    nlohmann::json e = {
        {"name", r.name},           {"params", r.params}, {"median_ms", r.median_ms},
        {"gflops", r.gflops},       {"gbs", r.gbs},       {"pct_peak", r.pct_peak},
        {"peak", peak_name(r.peak)}};
    for (auto& [k, v] : r.extra) e[k] = v;
    j["results"].push_back(e);
  }
  return j;
}

int run_suite(const std::string& name, const Options& opts) {
  Report report;
  std::vector<std::string> names;
  if (name == "all") {
    for (auto& [n, s] : suites()) names.push_back(n);
  } else {
    if (!suites().count(name)) {
      std::string known;
      for (auto& [n, s] : suites()) known += " " + n;
      throw std::invalid_argument("unknown benchmark suite '" + name + "'; known:" + known +
                                  " all");
    }
    names.push_back(name);
  }
  // Every probe first, in isolation: before any suite or baseline library has run.
  // (Not for suites that time another process or run under mpirun, where every rank would probe
  // the same cores at once.)
  const bool probes = std::any_of(names.begin(), names.end(), [](const std::string& n) {
    return n != "dist" && n != "serve" && n != "tokenizer";
  });
  if (probes && !opts.threads.empty() && opts.threads.front() > 0) report.probe_all(opts.threads);
  for (auto& n : names) suites()[n].second(opts, report);
  if (!dist::world().is_root()) return 0;  // the root of an MPI job reports
  if (opts.json_path == "-") {
    std::printf("%s\n", report.to_json().dump(2).c_str());
  } else {
    report.print_table();
    if (!opts.json_path.empty()) {
      std::ofstream out(opts.json_path);
      if (!out) throw std::runtime_error(opts.json_path + ": cannot write");
      out << report.to_json().dump(2) << "\n";
    }
  }
  return 0;
}

}  // namespace dsinfer::bench
