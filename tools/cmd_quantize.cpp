// `dsinfer quantize`: an FP8 / BF16 checkpoint to compressed-tensors INT4 / INT8
// (quant/quantize.h).
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "command.h"
#include "core/thread_pool.h"
#include "quant/quantize.h"

namespace dsinfer::cli {
namespace {

struct QuantizeArgs {
  std::string src, dst, scheme = "w4a16", targets = "experts";
  int group = 0;
  bool channel = false, keep_fp8 = false, force = false, asymmetric = false;
  double shard_gb = 2.0;
};

// One line redrawn in place on a terminal; on a pipe, a line per 10%.
void show_progress(size_t done, size_t total, size_t bytes, size_t total_bytes) {
  static int last_decile = -1;
  const double f = total_bytes ? double(bytes) / double(total_bytes) : 1.0;
  if (isatty(STDERR_FILENO)) {
    const int width = 30, filled = int(f * width);
    std::fprintf(stderr, "\r[%.*s%*s] %5.1f%%  %zu/%zu tensors  %.2f/%.2f GB", filled,
                 "##############################", width - filled, "", 100 * f, done, total,
                 double(bytes) / 1e9, double(total_bytes) / 1e9);
    if (done == total) std::fputc('\n', stderr);
  } else if (int(f * 10) != last_decile || done == total) {
    last_decile = int(f * 10);
    std::fprintf(stderr, "quantize: %3.0f%%  %zu/%zu tensors  %.2f/%.2f GB\n", 100 * f, done, total,
                 double(bytes) / 1e9, double(total_bytes) / 1e9);
  }
}

int run_quantize(const QuantizeArgs& a) {
  QuantizeOptions o;
  o.src = a.src, o.dst = a.dst;
  o.scheme = parse_quant_scheme(a.scheme);
  o.targets = parse_quant_targets(a.targets);
  o.group = a.channel ? -1 : a.group;
  o.keep_fp8 = a.keep_fp8;
  o.asymmetric = a.asymmetric;
  o.force = a.force;
  if (!(a.shard_gb > 0)) throw std::invalid_argument("--shard-gb must be positive");
  o.max_shard_bytes = size_t(a.shard_gb * double(1 << 30));
  o.progress = show_progress;
  const QuantizeResult r = quantize_checkpoint(o);
  std::printf("%s: %s%s, targets %s%s\n", a.dst.c_str(), quant_scheme_name(o.scheme),
              a.asymmetric ? " asymmetric" : "", quant_targets_name(o.targets),
              a.keep_fp8 ? ", the other FP8 layers kept" : "");
  std::printf("  %zu tensors in, %zu out: %zu quantized, %zu kept FP8, %zu FP8 -> BF16\n",
              r.tensors_in, r.tensors_out, r.quantized, r.kept_fp8, r.to_bf16);
  std::printf("  %.3f GiB -> %.3f GiB in %zu shards, %.2f s with %d threads\n",
              double(r.bytes_in) / (1 << 30), double(r.bytes_out) / (1 << 30), r.shards.size(),
              r.seconds, num_threads());
  return 0;
}

CommandRegistrar quantize_cmd(
    {"quantize", "Write an INT4 / INT8 compressed-tensors checkpoint from an FP8 or BF16 one",
     [](CLI::App& app) {
       auto a = std::make_shared<QuantizeArgs>();
       app.add_option("-m,--model", a->src, "Source checkpoint directory")->required();
       app.add_option("-o,--output", a->dst, "Output directory (created; must be empty)")
           ->required();
       app.add_option("--scheme", a->scheme,
                      "w4a16 | w4a8 (INT4 weights) | w8a16 | w8a8 (INT8 weights); a8: int8 "
                      "activations per token")
           ->capture_default_str()
           ->check(CLI::IsMember({"w4a16", "w4a8", "w8a16", "w8a8"}));
       app.add_option("--group", a->group,
                      "Inputs per scale: 32, 64 or 128 (default 128; w8a8: per channel)")
           ->check(CLI::IsMember({32, 64, 128}));
       app.add_flag("--channel", a->channel, "One scale per output channel");
       app.add_flag("--asymmetric", a->asymmetric,
                    "A zero point per scale (weight_zero_point): min/max ranges instead of +-amax");
       app.add_option("--targets", a->targets,
                      "experts (routed experts) | mlp (+ shared experts and dense MLPs) | "
                      "all-linear")
           ->capture_default_str()
           ->check(CLI::IsMember({"experts", "mlp", "all-linear"}));
       app.add_flag("--keep-fp8,--keep-fp8-attention", a->keep_fp8,
                    "FP8 projections left unquantized stay FP8: attention, and with --targets "
                    "experts the shared experts and dense MLPs (else they become BF16)");
       app.add_option("--shard-gb", a->shard_gb, "Largest output shard in GiB")
           ->capture_default_str();
       app.add_flag("--force", a->force, "Write into a non-empty output directory");
       return [a] { return run_quantize(*a); };
     }});

}  // namespace
}  // namespace dsinfer::cli
