// A plain f32 forward of the generated tiny model, checking the scaling that docs/gen-model.md
// promises: the residual stream stays O(1) layer after layer, attention and MLP updates neither
// vanish nor explode, routing spreads over the experts, and the logits are O(1) and varied.
// Dense causal attention: with T <= index_topk the sparse attention equals it (spec §3.4), so the
// indexer is not needed here.
#include <algorithm>
#include <cmath>
#include <set>

#include "genmodel_test_util.h"
#include "kernels/reference/mla_absorb.h"
#include "kernels/reference/moe_router.h"
#include "kernels/reference/norms.h"
#include "kernels/reference/rope.h"
#include "model/safetensors.h"

namespace dsinfer::testing {
namespace {

using Vec = std::vector<float>;

struct Mat {
  Vec w;  // [rows, cols]
  int64_t rows = 0, cols = 0;
};
Mat mat(const LinearWeight& lw) {
  return {to_f32(lw), lw.out_features(), lw.in_features()};
}
Mat mat(const Tensor& t) {
  return {to_f32(t), t.size(0), t.size(1)};
}

// x [T, m.cols] -> x . m^T [T, m.rows]
Vec matmul(const Vec& x, int64_t T, const Mat& m) {
  Vec y(size_t(T * m.rows));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t r = 0; r < m.rows; ++r) {
      double s = 0;
      for (int64_t k = 0; k < m.cols; ++k)
        s += double(x[size_t(t * m.cols + k)]) * m.w[size_t(r * m.cols + k)];
      y[size_t(t * m.rows + r)] = float(s);
    }
  return y;
}

Vec rms_norm(const Vec& x, int64_t T, int64_t dim, const Tensor& weight, double eps) {
  Vec w = to_f32(weight), out(x.size());
  ref::rms_norm(x.data(), T, dim, w.data(), float(eps), out.data());
  return out;
}

double rms(const Vec& v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  return std::sqrt(s / double(v.size()));
}

Vec mlp(const Vec& x, int64_t T, const MlpWeights& w) {
  Vec g = matmul(x, T, mat(w.gate_proj)), u = matmul(x, T, mat(w.up_proj));
  for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  return matmul(g, T, mat(w.down_proj));
}

struct LayerStats {
  double residual_rms = 0, attn_rms = 0, ffn_rms = 0;
  std::set<int> experts;  // routed experts chosen by any token (MoE layers)
};

Vec attention(const ModelConfig& c, const AttentionWeights& w, const Vec& x, int64_t T) {
  const int H = c.num_attention_heads, nope = c.qk_nope_head_dim, R = c.qk_rope_head_dim;
  const int C = c.kv_lora_rank, V = c.v_head_dim;
  const double eps = c.rms_norm_eps;
  const Vec inv_freq = c.rope_inv_freq();
  std::vector<int32_t> pos(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) pos[size_t(t)] = int32_t(t);

  Vec qr = rms_norm(matmul(x, T, mat(w.q_a_proj)), T, c.q_lora_rank, w.q_a_layernorm, eps);
  Vec q = matmul(qr, T, mat(w.q_b_proj));            // [T, H, nope + R]
  Vec kv = matmul(x, T, mat(w.kv_a_proj_with_mqa));  // [T, C + R]
  Vec latent(size_t(T * C)), k_pe(size_t(T * R));
  for (int64_t t = 0; t < T; ++t) {
    std::copy_n(kv.begin() + t * (C + R), C, latent.begin() + t * C);
    std::copy_n(kv.begin() + t * (C + R) + C, R, k_pe.begin() + t * R);
  }
  latent = rms_norm(latent, T, C, w.kv_a_layernorm, eps);
  ref::rope_interleaved(q.data() + nope, T, H, nope + R, R, pos.data(), inv_freq.data());
  ref::rope_interleaved(k_pe.data(), T, 1, R, R, pos.data(), inv_freq.data());

  std::vector<int32_t> idx(size_t(T * T), -1);  // causal: every s <= t
  for (int64_t t = 0; t < T; ++t)
    for (int64_t s = 0; s <= t; ++s) idx[size_t(t * T + s)] = int32_t(s);
  Mat kv_b = mat(w.kv_b_proj);
  Vec o(size_t(T * H * V)), lse(size_t(T * H));
  ref::MlaDims dims{H, nope, R, V, C};
  ref::mha_masked_attention(q.data(), T, dims, kv_b.w.data(), latent.data(), k_pe.data(), T,
                            idx.data(), int(T), float(c.softmax_scale()), o.data(), lse.data());
  return matmul(o, T, mat(w.o_proj));
}

Vec moe(const ModelConfig& c, const MoeWeights& w, const Vec& x, int64_t T, std::set<int>& used) {
  const int64_t D = c.hidden_size, k = c.num_experts_per_tok;
  Vec logits = matmul(x, T, mat(w.gate));
  Vec bias = to_f32(w.e_score_correction_bias);
  ref::MoeRouting cfg{c.n_routed_experts, c.n_group,
                      c.topk_group,       int(k),
                      c.norm_topk_prob,   float(c.routed_scaling_factor)};
  std::vector<int32_t> ids(size_t(T * k));
  Vec weights(size_t(T * k));
  ref::moe_route(logits.data(), bias.data(), T, cfg, ids.data(), weights.data());
  Vec y = w.shared_experts ? mlp(x, T, *w.shared_experts) : Vec(size_t(T * D), 0.0f);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < k; ++j) {
      const int e = ids[size_t(t * k + j)];
      used.insert(e);
      Vec xt(x.begin() + t * D, x.begin() + (t + 1) * D);
      Vec out = mlp(xt, 1, w.experts[size_t(e)]);
      for (int64_t i = 0; i < D; ++i)
        y[size_t(t * D + i)] += weights[size_t(t * k + j)] * out[size_t(i)];
    }
  return y;
}

// Runs the forward over the model in `dir` and checks the statistics.
void check_activations(const std::string& dir) {
  ModelConfig c = load_config(dir + "/config.json");
  SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(dir);
  CheckpointWeights w = CheckpointWeights::load(c, ckpt);
  // T <= index_topk: the sparse attention is the dense one.
  const int64_t T = c.has_indexer ? std::min(c.index_topk, 16) : 16, D = c.hidden_size;

  Mat embed = mat(w.embed_tokens());
  Vec h(size_t(T * D));
  std::vector<int> tokens;
  for (int64_t t = 0; t < T; ++t) tokens.push_back(int((t * 37 + 5) % c.vocab_size));
  for (int64_t t = 0; t < T; ++t)
    std::copy_n(embed.w.begin() + tokens[size_t(t)] * D, D, h.begin() + t * D);
  const double h0 = rms(h);
  EXPECT_NEAR(h0, 1.0, 0.1) << "embeddings ~ unit variance";

  std::vector<LayerStats> stats;
  for (int l = 0; l < w.num_layers(); ++l) {
    const LayerWeights& lw = w.layer(l);
    LayerStats s;
    Vec a = attention(c, lw.attn, rms_norm(h, T, D, lw.input_layernorm, c.rms_norm_eps), T);
    s.attn_rms = rms(a);
    for (size_t i = 0; i < h.size(); ++i) h[i] += a[i];
    Vec x = rms_norm(h, T, D, lw.post_attention_layernorm, c.rms_norm_eps);
    Vec f = lw.moe ? moe(c, *lw.moe, x, T, s.experts) : mlp(x, T, *lw.mlp);
    s.ffn_rms = rms(f);
    for (size_t i = 0; i < h.size(); ++i) h[i] += f[i];
    s.residual_rms = rms(h);
    stats.push_back(s);
  }
  for (size_t l = 0; l < stats.size(); ++l) {
    const LayerStats& s = stats[l];
    SCOPED_TRACE("layer " + std::to_string(l));
    // Each update is a visible but bounded fraction of the stream (scaled by 1/sqrt(2 * layers)).
    EXPECT_GT(s.attn_rms, 0.05);
    EXPECT_LT(s.attn_rms, 1.0);
    EXPECT_GT(s.ffn_rms, 0.05);
    EXPECT_LT(s.ffn_rms, 1.5);
    EXPECT_GT(s.residual_rms, 0.7 * h0);
    EXPECT_LT(s.residual_rms, 2.0 * h0);
    if (c.is_moe_layer(int(l))) {
      EXPECT_GE(int(s.experts.size()), c.n_routed_experts / 2) << "routing is degenerate";
    }
    std::printf("layer %zu: attn rms %.3f, ffn rms %.3f, residual rms %.3f, %zu experts used\n", l,
                s.attn_rms, s.ffn_rms, s.residual_rms, s.experts.size());
  }

  Vec logits = matmul(rms_norm(h, T, D, w.norm(), c.rms_norm_eps), T, mat(w.lm_head()));
  std::set<int> argmax;
  for (int64_t t = 0; t < T; ++t) {
    auto row = logits.begin() + t * c.vocab_size;
    argmax.insert(int(std::max_element(row, row + c.vocab_size) - row));
  }
  const double logit_rms = rms(logits);
  std::printf("logits rms %.3f, %zu distinct argmax over %lld tokens\n", logit_rms, argmax.size(),
              static_cast<long long>(T));
  EXPECT_GT(logit_rms, 0.5);
  EXPECT_LT(logit_rms, 2.0);
  EXPECT_GE(int(argmax.size()), int(T) / 2) << "every position predicts the same token";
}

class GenModelActivations : public ::testing::TestWithParam<GenDtype> {};

TEST_P(GenModelActivations, StayOrderOneThroughTheLayers) {
  TempDir dir;
  gen_tiny(dir.path(), GetParam(), GenArch::v32, 3);
  check_activations(dir.path());
}

INSTANTIATE_TEST_SUITE_P(Dtypes, GenModelActivations,
                         ::testing::Values(GenDtype::fp8, GenDtype::bf16), [](const auto& info) {
                           return std::string(info.param == GenDtype::fp8 ? "fp8" : "bf16");
                         });

// The same checks on any generated model directory, e.g. the mini preset (tens of seconds):
// DSINFER_GEN_MODEL_CHECK_DIR=DIR dsinfer_tests_genmodel --gtest_filter='*AnyDirectory*'
TEST(GenModelActivationsOf, AnyDirectory) {
  const char* dir = std::getenv("DSINFER_GEN_MODEL_CHECK_DIR");
  if (!dir || !*dir) GTEST_SKIP() << "DSINFER_GEN_MODEL_CHECK_DIR is not set";
  check_activations(dir);
}

}  // namespace
}  // namespace dsinfer::testing
