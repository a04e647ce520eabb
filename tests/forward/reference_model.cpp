#include "reference_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/reference/fp8_quant.h"
#include "kernels/reference/hadamard.h"
#include "kernels/reference/indexer.h"
#include "kernels/reference/mla_absorb.h"
#include "kernels/reference/moe_router.h"
#include "kernels/reference/norms.h"
#include "kernels/reference/rope.h"
#include "kernels/reference/topk.h"

namespace dsinfer::testing {

namespace {

using Vec = std::vector<float>;

float elem(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::f32:
      return t.data<float>()[i];
    case DType::bf16:
      return bf16_to_f32(t.data<bf16>()[i]);
    case DType::f16:
      return f16_to_f32(t.data<f16>()[i]);
    default:
      return fp8_e4m3_to_f32(t.data<fp8_e4m3>()[i]);
  }
}

Vec param(const Tensor& t) {
  Vec v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = elem(t, i);
  return v;
}

// [out, in] f32, FP8 block scales applied; integer weights (compressed-tensors) decoded here from
// their own bytes: pack-quantized I32 words hold 32 / bits codes each, lowest bits first, offset
// by 2^(bits - 1); int-quantized I8 codes are signed; asymmetric weights subtract their zero
// point zero[r][c / group]; times weight_scale[r][c / group]. With group activation ordering the
// loader's codes hold the columns sorted by group: stored column c is input perm[c].
Vec dequant(const LinearWeight& w) {
  const int64_t out = w.out_features(), in = w.in_features();
  Vec v(static_cast<size_t>(out * in));
  for (int64_t r = 0; r < out; ++r)
    for (int64_t c = 0; c < in; ++c) {
      float x;
      if (w.is_int()) {
        int code;
        if (w.w.dtype() == DType::i8) {
          code = w.w.data<int8_t>()[r * in + c];
        } else {
          const int bits = w.codes == DType::u4 ? 4 : 8, per = 32 / bits;
          const uint32_t word = uint32_t(w.w.data<int32_t>()[r * w.w.size(1) + c / per]);
          code = int((word >> (bits * (c % per))) & ((1u << bits) - 1)) - (1 << (bits - 1));
        }
        if (w.zero.defined()) code -= w.zero.data<int8_t>()[r * w.zero.size(1) + c / w.group];
        x = float(code) * elem(w.scale, r * w.scale.size(1) + c / w.group);
      } else {
        x = elem(w.w, r * in + c);
        if (w.is_fp8()) x *= w.scale_inv.data<float>()[(r / 128) * w.scale_inv.size(1) + c / 128];
      }
      v[r * in + (w.perm.defined() ? w.perm.data<int32_t>()[c] : c)] = x;
    }
  return v;
}

// y[T, out] = x[T, in] . W^T, sums in double.
Vec matmul(const Vec& x, int64_t T, const Vec& w, int64_t out, int64_t in) {
  Vec y(static_cast<size_t>(T * out));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t o = 0; o < out; ++o) {
      double acc = 0;
      for (int64_t i = 0; i < in; ++i) acc += double(x[t * in + i]) * w[o * in + i];
      y[t * out + o] = float(acc);
    }
  return y;
}
Vec linear(const Vec& x, int64_t T, const LinearWeight& w) {
  return matmul(x, T, dequant(w), w.out_features(), w.in_features());
}

Vec rms(const Vec& x, int64_t T, int64_t dim, const Tensor& w, float eps) {
  Vec out(x.size());
  const Vec wf = param(w);
  ref::rms_norm(x.data(), T, dim, wf.data(), eps, out.data());
  return out;
}

Vec mlp(const MlpWeights& m, const Vec& x, int64_t T) {
  Vec g = linear(x, T, m.gate_proj), u = linear(x, T, m.up_proj);
  for (size_t i = 0; i < g.size(); ++i)
    g[i] = float(double(g[i]) / (1 + std::exp(-double(g[i]))) * u[i]);
  return linear(g, T, m.down_proj);
}

// The values the attention reads back from the cache: the latent rounded to bf16, or in blocks
// of 128 values as 8-bit codes times scale = max(amax, 1e-4) / qmax (FP8 e4m3: 448, INT8: 127);
// k_pe rounded to bf16 unless the cache is f32.
void store_latent(DType dt, Vec& cc, int64_t T, int64_t C, Vec& kpe) {
  if (dt == DType::f32) return;
  for (float& v : kpe) v = bf16_to_f32(f32_to_bf16(v));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t b = 0; b < C; b += 128) {
      float* x = &cc[t * C + b];
      const int64_t n = std::min<int64_t>(128, C - b);
      float amax = 0;
      for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
      const float scale = std::max(amax, 1e-4f) / (dt == DType::i8 ? 127.0f : 448.0f);
      for (int64_t i = 0; i < n; ++i) {
        if (dt == DType::bf16)
          x[i] = bf16_to_f32(f32_to_bf16(x[i]));
        else if (dt == DType::i8)
          x[i] = std::clamp(std::nearbyint(x[i] / scale), -127.0f, 127.0f) * scale;
        else
          x[i] = fp8_e4m3_to_f32(f32_to_fp8_e4m3(x[i] / scale)) * scale;
      }
    }
}

}  // namespace

std::vector<float> dequantize_linear(const LinearWeight& w) {
  return dequant(w);
}

std::vector<float> reference_forward(const ModelConfig& c, const CheckpointWeights& W,
                                     const std::vector<int32_t>& tokens,
                                     const ReferenceOptions& opt, std::vector<float>* hidden_out) {
  const int64_t T = int64_t(tokens.size()), D = c.hidden_size, H = c.num_attention_heads;
  const int64_t nope = c.qk_nope_head_dim, R = c.qk_rope_head_dim, V = c.v_head_dim;
  const int64_t C = c.kv_lora_rank, qk = nope + R;
  const float eps = float(c.rms_norm_eps);
  const std::vector<float> inv_freq = c.rope_inv_freq();
  std::vector<int32_t> pos(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) pos[t] = int32_t(t);

  Vec h(static_cast<size_t>(T * D));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t d = 0; d < D; ++d)
      h[t * D + d] = elem(W.embed_tokens(), int64_t(tokens[t]) * D + d);

  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const LayerWeights& L = W.layer(l);
    const AttentionWeights& A = L.attn;
    Vec x = rms(h, T, D, L.input_layernorm, eps);
    Vec qr = rms(linear(x, T, A.q_a_proj), T, c.q_lora_rank, A.q_a_layernorm, eps);
    Vec q = linear(qr, T, A.q_b_proj);  // [T, H, nope + R]
    ref::rope_interleaved(q.data() + nope, T, int(H), qk, int(R), pos.data(), inv_freq.data());
    Vec kv = linear(x, T, A.kv_a_proj_with_mqa);  // [T, C + R]
    Vec cc(static_cast<size_t>(T * C)), kpe(static_cast<size_t>(T * R));
    for (int64_t t = 0; t < T; ++t) {
      std::memcpy(&cc[t * C], &kv[t * (C + R)], size_t(C) * 4);
      std::memcpy(&kpe[t * R], &kv[t * (C + R) + C], size_t(R) * 4);
    }
    cc = rms(cc, T, C, A.kv_a_layernorm, eps);
    ref::rope_interleaved(kpe.data(), T, 1, R, int(R), pos.data(), inv_freq.data());
    store_latent(opt.latent_cache, cc, T, C, kpe);

    // Keys each query attends to: the indexer's top-k (spec §3.3), or every causal key.
    int64_t K = T;
    std::vector<int32_t> idx;
    const bool use_indexer = c.has_indexer && !opt.dense && T > c.index_topk;
    if (use_indexer) {
      const IndexerWeights& I = *A.indexer;
      const int64_t HI = c.index_n_heads;
      K = c.index_topk;
      Vec qi = linear(qr, T, I.wq_b);  // [T, HI, 128]
      Vec ki = linear(x, T, I.wk);     // [T, 128]
      const Vec knw = param(I.k_norm_weight), knb = param(I.k_norm_bias);
      ref::layer_norm(ki.data(), T, 128, knw.data(), knb.data(), 1e-6f, ki.data());
      auto rope = c.indexer_rope_interleave ? ref::rope_interleaved : ref::rope_halves;
      rope(qi.data(), T, int(HI), 128, int(R), pos.data(), inv_freq.data());
      rope(ki.data(), T, 1, 128, int(R), pos.data(), inv_freq.data());
      ref::hadamard_128(qi.data(), T * HI);
      ref::hadamard_128(ki.data(), T);
      Vec proj = linear(x, T, I.weights_proj), w(static_cast<size_t>(T * HI)),
          scores(static_cast<size_t>(T * T));
      std::vector<int64_t> n_valid(static_cast<size_t>(T));
      for (int64_t t = 0; t < T; ++t) n_valid[t] = t + 1;
      if (opt.indexer_fp8) {
        const bool ue8m0 = opt.indexer_ue8m0;
        std::vector<uint8_t> q8(static_cast<size_t>(T * HI * 128)),
            k8(static_cast<size_t>(T * 128));
        Vec qs(static_cast<size_t>(T * HI)), ks(static_cast<size_t>(T));
        ref::quantize_fp8_blocks(qi.data(), T * HI, ue8m0, q8.data(), qs.data());
        ref::quantize_fp8_blocks(ki.data(), T, ue8m0, k8.data(), ks.data());
        ref::indexer_head_weights(proj.data(), qs.data(), T, int(HI), w.data());
        ref::indexer_scores_fp8(q8.data(), w.data(), T, int(HI), k8.data(), ks.data(), T,
                                pos.data(), scores.data());
      } else {
        ref::indexer_head_weights(proj.data(), nullptr, T, int(HI), w.data());
        ref::indexer_scores_f32(qi.data(), w.data(), T, int(HI), ki.data(), T, pos.data(),
                                scores.data());
      }
      idx.resize(size_t(T * K));
      ref::topk_indices(scores.data(), T, T, n_valid.data(), int(K), idx.data(), nullptr);
    } else {
      idx.assign(size_t(T * K), -1);
      for (int64_t t = 0; t < T; ++t)
        for (int64_t s = 0; s <= t; ++s) idx[t * K + s] = int32_t(s);
    }
    Vec o(static_cast<size_t>(T * H * V)), lse(static_cast<size_t>(T * H));
    const Vec kvb = dequant(A.kv_b_proj);
    ref::MlaDims dims{int(H), int(nope), int(R), int(V), int(C)};
    ref::mha_masked_attention(q.data(), T, dims, kvb.data(), cc.data(), kpe.data(), T, idx.data(),
                              int(K), float(c.softmax_scale()), o.data(), lse.data());
    Vec attn = linear(o, T, A.o_proj);
    for (size_t i = 0; i < h.size(); ++i) h[i] += attn[i];

    x = rms(h, T, D, L.post_attention_layernorm, eps);
    Vec y;
    if (L.mlp) {
      y = mlp(*L.mlp, x, T);
    } else {
      const MoeWeights& M = *L.moe;
      const int64_t E = c.n_routed_experts, k = c.num_experts_per_tok;
      Vec logits = matmul(x, T, param(M.gate), E, D), bias = param(M.e_score_correction_bias);
      std::vector<int32_t> ids(static_cast<size_t>(T * k));
      Vec gw(static_cast<size_t>(T * k));
      ref::moe_route(logits.data(), bias.data(), T,
                     ref::MoeRouting{int(E), c.n_group, c.topk_group, int(k), c.norm_topk_prob,
                                     float(c.routed_scaling_factor)},
                     ids.data(), gw.data());
      y = M.shared_experts ? mlp(*M.shared_experts, x, T) : Vec(size_t(T * D), 0.0f);
      for (int64_t t = 0; t < T; ++t) {
        Vec xt(x.begin() + t * D, x.begin() + (t + 1) * D);
        for (int64_t j = 0; j < k; ++j) {
          Vec ye = mlp(M.experts[size_t(ids[t * k + j])], xt, 1);
          for (int64_t d = 0; d < D; ++d) y[t * D + d] += gw[t * k + j] * ye[d];
        }
      }
    }
    for (size_t i = 0; i < h.size(); ++i) h[i] += y[i];
  }
  Vec hn = rms(h, T, D, W.norm(), eps);
  if (hidden_out) *hidden_out = hn;
  return linear(hn, T, W.lm_head());
}

double worst_relative(const std::vector<float>& a, const std::vector<float>& b, int64_t vocab,
                      int64_t* bad_positions, double tol) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  int64_t bad = 0;
  for (size_t p = 0; p * vocab < b.size(); ++p) {
    double diff = 0, mag = 1e-30;
    for (int64_t v = 0; v < vocab; ++v) {
      diff = std::max(diff, double(std::fabs(a[p * vocab + v] - b[p * vocab + v])));
      mag = std::max(mag, double(std::fabs(b[p * vocab + v])));
    }
    worst = std::max(worst, diff / mag);
    bad += diff / mag > tol;
  }
  if (bad_positions) *bad_positions = bad;
  return worst;
}

}  // namespace dsinfer::testing
