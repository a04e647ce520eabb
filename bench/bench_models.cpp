#include "bench_models.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>

#include "synthetic/gen_model.h"

namespace dsinfer::bench {

namespace {

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

size_t linear_bytes(const LinearWeight& w) {
  return w.w.nbytes() + (w.scale_inv.defined() ? w.scale_inv.nbytes() : 0);
}
size_t mlp_bytes(const MlpWeights& m) {
  return linear_bytes(m.gate_proj) + linear_bytes(m.up_proj) + linear_bytes(m.down_proj);
}

int moe_layers(const Model& m) {
  int n = 0;
  for (int l = 0; l < m.weights().num_layers(); ++l) n += m.weights().layer(l).moe.has_value();
  return n;
}

}  // namespace

std::string default_model_dir() {
  const char* env = std::getenv("DSINFER_MODELS");
  const std::string dir = std::string(env && *env ? env : "models") + "/mini-v32-fp8";
  if (!exists(dir + "/config.json")) {
    std::fprintf(stderr, "bench: generating the mini model into %s (once)\n", dir.c_str());
    GenModelOptions o;
    o.preset = GenPreset::mini;
    o.output_dir = dir;
    o.force = true;
    generate_model(o);
  }
  return dir;
}

double shared_weight_bytes(const Model& m) {
  const ModelConfig& c = m.config();
  const CheckpointWeights& w = m.weights();
  double bytes = double(linear_bytes(w.lm_head())) + double(w.norm().nbytes());
  bytes += double(w.embed_tokens().nbytes()) / c.vocab_size;
  for (int l = 0; l < w.num_layers(); ++l) {
    const LayerWeights& L = w.layer(l);
    const AttentionWeights& a = L.attn;
    bytes += linear_bytes(a.q_a_proj) + linear_bytes(a.q_b_proj) +
             linear_bytes(a.kv_a_proj_with_mqa) + linear_bytes(a.kv_b_proj) +
             linear_bytes(a.o_proj);
    if (a.indexer)
      bytes += linear_bytes(a.indexer->wq_b) + linear_bytes(a.indexer->wk) +
               linear_bytes(a.indexer->weights_proj);
    if (L.mlp) bytes += mlp_bytes(*L.mlp);
    if (L.moe) {
      bytes += L.moe->gate.nbytes();
      if (L.moe->shared_experts) bytes += mlp_bytes(*L.moe->shared_experts);
    }
  }
  return bytes;
}

double routed_expert_bytes(const Model& m) {
  for (int l = 0; l < m.weights().num_layers(); ++l)
    if (m.weights().layer(l).moe) return double(mlp_bytes(m.weights().layer(l).moe->experts[0]));
  return 0;
}

double decode_weight_bytes(const Model& m) {
  return shared_weight_bytes(m) +
         routed_expert_bytes(m) * m.config().num_experts_per_tok * moe_layers(m);
}

}  // namespace dsinfer::bench
