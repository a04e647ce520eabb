// `dsinfer gen-model`: writes a random DeepSeek-V3.2 / V3 model directory (synthetic/gen_model.h).
#include <cstdio>
#include <memory>
#include <string>

#include "command.h"
#include "core/thread_pool.h"
#include "synthetic/gen_model.h"

namespace dsinfer::cli {
namespace {

struct GenModelArgs {
  std::string preset = "tiny", dtype = "fp8", arch = "v32", output;
  uint64_t seed = 0;
  double shard_mb = 0;
  bool force = false;
};

int run_gen_model(const GenModelArgs& a) {
  GenModelOptions o;
  o.preset = parse_gen_preset(a.preset);
  o.dtype = parse_gen_dtype(a.dtype);
  o.arch = parse_gen_arch(a.arch);
  o.output_dir = a.output;
  o.seed = a.seed;
  o.shard_mb = a.shard_mb;
  o.force = a.force;
  GenModelResult r = generate_model(o);
  const ModelConfig& c = r.config;
  std::printf("%s: %s preset, %s, %s weights, seed %llu\n", a.output.c_str(), a.preset.c_str(),
              c.architecture.c_str(), a.dtype.c_str(), static_cast<unsigned long long>(a.seed));
  std::printf(
      "  %d layers (%d dense) + %d MTP, hidden %d, %d heads, %d routed experts (%d per "
      "token), vocab %d\n",
      c.num_hidden_layers, c.first_k_dense_replace, c.num_nextn_predict_layers, c.hidden_size,
      c.num_attention_heads, c.n_routed_experts, c.num_experts_per_tok, c.vocab_size);
  std::printf("  %zu tensors, %.2f M parameters, %zu shards, %.1f MiB on disk (%zu bytes)\n",
              r.num_tensors, double(r.parameters) / 1e6, r.shards.size(),
              double(r.file_bytes) / (1 << 20), r.file_bytes);
  std::printf("  generated in %.2f s with %d threads\n", r.seconds, num_threads());
  return 0;
}

CommandRegistrar gen_model_cmd(
    {"gen-model", "Write a random DeepSeek-V3.2 / V3 checkpoint with tokenizer", [](CLI::App& app) {
       auto a = std::make_shared<GenModelArgs>();
       app.add_option("--preset", a->preset,
                      "tiny (tests) or mini (benchmarks, real attention "
                      "shapes)")
           ->capture_default_str();
       app.add_option("-o,--output", a->output, "Output directory (created if missing)")
           ->required();
       app.add_option("--dtype", a->dtype, "Linear weights: fp8 (e4m3 + block scales) or bf16")
           ->capture_default_str();
       app.add_option("--arch", a->arch, "v32 (DeepSeek-V3.2, sparse attention) or v3")
           ->capture_default_str();
       app.add_option("--seed", a->seed, "Random seed; the same seed gives identical files")
           ->capture_default_str();
       app.add_option("--shard-mb", a->shard_mb,
                      "Largest safetensors shard in MiB (default: 0.25 tiny, 256 mini)")
           ->check(CLI::NonNegativeNumber);
       app.add_flag("--force", a->force, "Overwrite the model files in a non-empty directory");
       return std::function<int()>([a] { return run_gen_model(*a); });
     }});

}  // namespace
}  // namespace dsinfer::cli
