// Benchmark harness shared by every `dsinfer bench` suite: medians over repeats, the peak probe
// measured in the same run, a table for people and JSON for machines.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/peak_probe.h"
#include "dist/layout.h"

namespace dsinfer::bench {

// Which probe figure a result is a percentage of.
enum class PeakKind { bf16, f32, read, int8 };

struct Result {
  std::string name;
  nlohmann::json params;  // shape, dtypes, threads, ...
  double median_ms = 0;
  double gflops = 0;  // 0 when not meaningful
  double gbs = 0;     // bytes the kernel must move / time; 0 when not meaningful
  PeakKind peak = PeakKind::bf16;
  double pct_peak = 0;                  // of the probe figure `peak`, same run, same thread count
  std::map<std::string, double> extra;  // e.g. ratio to a baseline
};

// Seconds on the steady clock (differences are wall time).
double now_s();

// Median wall time in ms of fn() over at least `min_repeats` runs and about `min_seconds`.
double time_median_ms(const std::function<void()>& fn, int min_repeats = 5,
                      double min_seconds = 0.3);

class Report {
 public:
  // Probes the machine for `threads` (and remembers it); call before timing at that count.
  const PeakProbe& probe(int threads);
  // Probes every count in `threads` and 1, before anything else runs (run_suite does this): a
  // probe taken while a baseline library's threads still spin on the other cores reads low.
  // Warns when an n-thread figure is under 1.6x the 1-thread one (a busy neighbour, or spinning
  // threads) -- percentages of such a probe are inflated.
  void probe_all(const std::vector<int>& threads);
  // Fills pct_peak from the probe of the result's thread count, then records it (threads <= 0:
  // a figure measured in another process, e.g. a server: recorded as it is).
  void add(Result r, int threads);
  void print_table() const;
  nlohmann::json to_json() const;

 private:
  std::map<int, PeakProbe> probes_;
  std::vector<std::string> warnings_;
  std::vector<Result> results_;
};

struct Options {
  std::vector<int> threads;  // thread counts to run at
  std::string json_path;     // "" = none, "-" = stdout instead of the table
  bool quick = false;        // smaller shapes / fewer repeats (tests use it)
  std::string model_dir;     // suites that run a model (bench model); "" = the built-in default
  std::string url;           // bench serve: the server
  std::vector<std::string> args;  // suite-specific extras (e.g. --sweep)
  dist::Layout dist;              // bench dist: the layout under mpirun
};

using Suite = std::function<void(const Options&, Report&)>;
std::map<std::string, std::pair<std::string, Suite>>& suites();
struct SuiteRegistrar {
  SuiteRegistrar(const char* name, const char* help, Suite fn) {
    suites()[name] = {help, std::move(fn)};
  }
};

// Runs one suite (or "all") and prints/writes the report. Returns an exit code.
int run_suite(const std::string& name, const Options& opts);

}  // namespace dsinfer::bench
