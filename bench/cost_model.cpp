#include "cost_model.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

namespace dsinfer::bench {

Hardware parse_hardware(const std::string& spec, Hardware h) {
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == std::string::npos)
      throw std::invalid_argument("--hw: '" + item + "' is not key=value");
    const std::string k = item.substr(0, eq);
    double v = 0;
    try {
      v = std::stod(item.substr(eq + 1));
    } catch (const std::exception&) {
      throw std::invalid_argument("--hw: " + k + " is not a number");
    }
    if (v <= 0) throw std::invalid_argument("--hw: " + k + " must be positive");
    if (k.rfind("eff_", 0) == 0) continue;  // parse_efficiency's
    if (k == "ranks")
      h.ranks = int(v);
    else if (k == "cores")
      h.cores = v;
    else if (k == "gflops")
      h.gflops_core = v;
    else if (k == "dram")
      h.dram_gbs = v;
    else if (k == "net")
      h.net_gbs = v;
    else if (k == "lat")
      h.net_us = v;
    else
      throw std::invalid_argument("--hw: unknown key '" + k +
                                  "' (ranks, cores, gflops, dram, net, lat)");
  }
  return h;
}

Efficiency parse_efficiency(const std::string& spec, Efficiency e) {
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos || item.rfind("eff_", 0) != 0) continue;
    const std::string k = item.substr(0, eq);
    const double v = std::stod(item.substr(eq + 1));
    if (v <= 0 || v > 1) throw std::invalid_argument("--hw: " + k + " must be in (0, 1]");
    if (k == "eff_gemm")
      e.gemm = v;
    else if (k == "eff_attention")
      e.attention = e.decode_attention = v;
    else if (k == "eff_indexer")
      e.indexer = v;
    else if (k == "eff_weights")
      e.weights = v;
    else
      throw std::invalid_argument("--hw: unknown key '" + k +
                                  "' (eff_gemm, eff_attention, eff_indexer, eff_weights)");
  }
  return e;
}

bool ModelCounts::uses_mha(int64_t pos, int64_t prompt) const {
  const int64_t S = 512, seg = pos / S;
  if ((seg + 1) * S > mha.limit) return false;
  return std::min(S, prompt - seg * S) >= mha.min_tokens[size_t(seg)];
}

ModelCounts model_counts(const ModelConfig& c, const StepBytes& bytes) {
  ModelCounts m;
  m.config = c;
  m.bytes = bytes;
  const double D = c.hidden_size, H = c.num_attention_heads, C = c.kv_lora_rank,
               R = c.qk_rope_head_dim, nope = c.qk_nope_head_dim, v = c.v_head_dim;
  const double qk = nope + R;
  double attn = (c.has_q_lora() ? D * c.q_lora_rank + double(c.q_lora_rank) * H * qk : D * H * qk) +
                D * (C + R) + H * (nope + v) * C + H * v * D;
  if (c.has_indexer)
    attn += double(c.q_lora_rank) * c.index_n_heads * c.index_head_dim + D * c.index_head_dim +
            D * c.index_n_heads;
  m.expert_params = 3.0 * D * c.moe_intermediate_size;
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    m.dense_params += attn;
    if (c.is_moe_layer(l)) {
      ++m.moe_layers;
      m.dense_params += m.expert_params * c.n_shared_experts + D * c.n_routed_experts;
    } else {
      m.dense_params += 3.0 * D * c.intermediate_size;
    }
  }
  m.head_params = double(c.vocab_size) * D;
  m.mla_cache_bytes = (C + R) * 2;
  m.mha = mha_region(c, c.has_indexer, 512);
  return m;
}

namespace {

// Remote EP ranks one token reaches, expected, when its k experts are uniform over E ranks.
double remote_destinations(int E, int k) {
  if (E <= 1) return 0;
  return (E - 1) * (1.0 - std::pow(1.0 - 1.0 / E, k));
}

double cache_row_bytes(const ModelCounts& m) {
  return m.mla_cache_bytes + (m.config.has_indexer ? 132.0 : 0.0);
}

}  // namespace

CostBreakdown prefill_cost(const ModelCounts& m, int64_t T, const Hardware& hw, const Efficiency& e,
                           const Parallel& p) {
  const ModelConfig& c = m.config;
  const int N = hw.ranks, C = p.cp, E = p.ep, k = c.num_experts_per_tok;
  const double peak = hw.peak_gflops() * 1e9, H = c.num_attention_heads;
  const double qk = c.qk_nope_head_dim + c.qk_rope_head_dim;
  const bool sparse = c.has_indexer;
  // Attention FLOPs per layer over the whole prompt, in the forms the model picks: an MHA token
  // attends to every causal key over expanded keys and values (its chunk expands the context
  // once per head: (nope + v) x kv_lora per context row, chunks of 2048 tokens as the engine
  // schedules them), an absorbed one to index_topk latent keys (its projections in and out of
  // the latent space are dense work, below).
  const double expand = H * 2.0 * (c.qk_nope_head_dim + c.v_head_dim) * c.kv_lora_rank;
  double attn = 0, index = 0, mha_tokens = 0;
  for (int64_t pos = 0; pos < T; ++pos) {
    const double keys = double(pos + 1);
    const bool mha = m.uses_mha(pos, T);
    if (mha) {
      attn += H * keys * 2 * (qk + c.v_head_dim);
      ++mha_tokens;
      const bool chunk_end = pos + 1 == T || (pos + 1) % 2048 == 0;
      if (chunk_end) attn += keys * expand;  // the chunk's context, expanded once
    } else {
      attn += H * (sparse ? std::min(keys, double(c.index_topk)) : keys) * 2 *
              (2.0 * c.kv_lora_rank + c.qk_rope_head_dim);
    }
    if (sparse && pos + 1 > c.index_topk) index += 2.0 * c.index_n_heads * c.index_head_dim * keys;
  }
  const double L = c.num_hidden_layers;
  CostBreakdown b;
  // Per rank: its CP share of the attention and dense projections, its share of the experts.
  // MHA tokens skip the absorption (their kv_b work is the expansion above).
  const double absorb = 2.0 * c.num_hidden_layers * H * (c.qk_nope_head_dim + c.v_head_dim) *
                        c.kv_lora_rank * mha_tokens;
  const double flops = (2.0 * m.dense_params * double(T) - absorb) / C +
                       2.0 * double(T) * k * m.expert_params * m.moe_layers / N +
                       2.0 * m.head_params;
  b.compute_s = flops / (peak * e.gemm);
  const double weights =
      m.bytes.shared + m.bytes.routed_expert * m.moe_layers *
                           std::min<double>(c.n_routed_experts / double(E), double(T) * k / N + 1);
  b.memory_s = weights / (hw.dram_gbs * 1e9 * e.weights);
  b.attention_s = L * attn / C / (peak * e.attention);
  b.indexer_s = L * index / C / (peak * e.indexer);
  // Exchanges: the CP gather of cache rows every layer, the EP dispatch/combine every MoE layer.
  const double lat = hw.net_us * 1e-6, bw = hw.net_gbs * 1e9;
  if (C > 1) b.comm_s += L * ((C - 1) * lat + double(C - 1) / C * T * cache_row_bytes(m) / bw);
  if (E > 1) {
    const double tokens = double(T) / N, D = c.hidden_size;
    const double bytes =
        tokens * remote_destinations(E, k) * D * 2 + tokens * k * double(E - 1) / E * D * 4;
    b.comm_s += m.moe_layers * (3 * lat + bytes / bw);
  }
  b.total_s =
      std::max(b.compute_s, b.memory_s) + b.attention_s + b.indexer_s + b.comm_s + e.step_ms * 1e-3;
  return b;
}

CostBreakdown decode_cost(const ModelCounts& m, int64_t d, int batch, const Hardware& hw,
                          const Efficiency& e, const Parallel& p) {
  const ModelConfig& c = m.config;
  const int N = hw.ranks, E = p.ep, k = c.num_experts_per_tok;
  const double peak = hw.peak_gflops() * 1e9, H = c.num_attention_heads, L = c.num_hidden_layers;
  const double per_group = std::ceil(double(batch) / p.dp);  // sequences on the busiest group
  const double keys = c.has_indexer ? std::min<double>(double(d), c.index_topk) : double(d);
  CostBreakdown b;
  // Weights: every rank streams the replicated part and the distinct local experts the step's
  // tokens (all groups') route to.
  const double local = double(c.n_routed_experts) / E;
  const double hit = local * (1.0 - std::pow(1.0 - double(k) / c.n_routed_experts, batch));
  double bytes = m.bytes.shared + hit * m.bytes.routed_expert * m.moe_layers;
  bytes += per_group * L * (keys * m.mla_cache_bytes + (c.has_indexer ? double(d) * 132 : 0.0));
  b.memory_s = bytes / (hw.dram_gbs * 1e9 * e.weights);
  b.compute_s = 2.0 *
                (m.dense_params * per_group + m.head_params * per_group +
                 double(batch) * k * m.expert_params * m.moe_layers / N) /
                (peak * e.gemm);
  b.attention_s = per_group * L * H * keys * 2 * (2.0 * c.kv_lora_rank + c.qk_rope_head_dim) /
                  (peak * e.decode_attention);
  if (c.has_indexer && d + 1 > c.index_topk)
    b.indexer_s =
        per_group * L * 2.0 * c.index_n_heads * c.index_head_dim * double(d) / (peak * e.indexer);
  const double lat = hw.net_us * 1e-6, bw = hw.net_gbs * 1e9;
  if (E > 1) {
    const double tokens = double(batch) / N, D = c.hidden_size;
    const double xfer =
        tokens * remote_destinations(E, k) * D * 2 + tokens * k * double(E - 1) / E * D * 4;
    b.comm_s += m.moe_layers * (3 * lat + xfer / bw);
  }
  if (N > 1) b.comm_s += 2 * lat;  // the step's broadcast and the output gather
  b.total_s =
      std::max(b.compute_s, b.memory_s) + b.attention_s + b.indexer_s + b.comm_s + e.step_ms * 1e-3;
  return b;
}

}  // namespace dsinfer::bench
