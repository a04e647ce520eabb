// `dsinfer bench probe`: just the peak probe, at each thread count.
#include "bench_harness.h"

namespace dsinfer::bench {
namespace {

SuiteRegistrar probe_suite("probe", "peak probe only", [](const Options& opts, Report& report) {
  for (int t : opts.threads) report.probe(t);
});

}  // namespace
}  // namespace dsinfer::bench
