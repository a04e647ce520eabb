// `dsinfer bench SUITE`: kernel and model benchmarks with the in-process peak probe.
#include <memory>
#include <string>
#include <vector>

#include "bench_harness.h"
#include "command.h"
#include "core/thread_pool.h"

namespace dsinfer::cli {
namespace {

CommandRegistrar bench_cmd(
    {"bench", "Run benchmarks (probe, gemm, kernels, indexer, attention, model, engine, ...)",
     [](CLI::App& app) {
       auto suite = std::make_shared<std::string>("all");
       auto opts = std::make_shared<bench::Options>();
       auto threads = std::make_shared<std::vector<int>>();
       app.add_option("suite", *suite, "Suite name: probe, gemm, kernels, ... or all");
       app.add_option("-t,--threads", *threads,
                      "Thread counts to run at (default: 1 and all cores)")
           ->delimiter(',');
       app.add_option("--json", opts->json_path,
                      "Write JSON to this file ('-' prints JSON instead of the table)");
       app.add_flag("--quick", opts->quick, "Smaller shapes and fewer repeats");
       app.add_option("-m,--model", opts->model_dir,
                      "Model directory for `bench model` (default: generate the mini preset once)");
       app.add_option("--attention", opts->args, "For `bench model`: sparse, dense or both")
           ->check(CLI::IsMember({"sparse", "dense", "both"}));
       app.add_flag(
           "--sweep", [opts](int64_t) { opts->args.push_back("--sweep"); }, "Suite-specific sweep");
       app.add_option_function<std::string>(
           "--decode-depths",
           [opts](const std::string& v) {
             opts->args.insert(opts->args.end(), {"--decode-depths", v});
           },
           "For `bench model`: only decode, at these context depths (e.g. 16384,65536), with a "
           "DSA vs dense summary");
       app.add_flag(
           "--speculative", [opts](int64_t) { opts->args.push_back("--speculative"); },
           "For `bench model`: MTP verification cost against decode (docs/speculative.md)");
       app.add_option_function<std::string>(
              "--kv-cache-dtype",
              [opts](const std::string& v) {
                opts->args.insert(opts->args.end(), {"--kv-cache-dtype", v});
              },
              "For `bench model`: the latent cache's storage (auto, bf16, fp8, int8)")
           ->check(CLI::IsMember({"auto", "bf16", "fp8", "int8"}));
       app.add_option("--url", opts->url,
                      "For `bench serve`: the server (default http://127.0.0.1:8080)");
       app.add_option_function<double>(
           "--request-rate",
           [opts](double v) {
             opts->args.insert(opts->args.end(), {"--request-rate", std::to_string(v)});
           },
           "For `bench serve`: Poisson arrivals at this many requests/s (instead of "
           "--concurrency)");
       // `bench engine` / `bench serve` load shape.
       for (const char* name :
            {"--requests", "--concurrency", "--input-len", "--output-len", "--shared-prefix"})
         app.add_option_function<int64_t>(
             name,
             [opts, name](int64_t v) {
               opts->args.insert(opts->args.end(), {name, std::to_string(v)});
             },
             "For `bench engine` and `bench serve`");
       app.add_option_function<std::string>(
           "--hw",
           [opts](const std::string& v) {
             opts->args.insert(opts->args.end(), {"--hw", v});
           },
           "For `bench project`: the cluster, ranks=,cores=,gflops=,dram=,net=,lat= (per rank; "
           "default one Zen 5 class socket per rank, 64 ranks)");
       add_dist_options(app, opts->dist);
       return std::function<int()>([=] {
         opts->threads = *threads;
         if (opts->threads.empty()) {
           int all = num_threads();
           opts->threads = all > 1 ? std::vector<int>{all, 1} : std::vector<int>{1};
         }
         return bench::run_suite(*suite, *opts);
       });
     }});

}  // namespace
}  // namespace dsinfer::cli
