#include "model/model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>

#include <fmt/format.h>
#include "core/cpu_features.h"
#include "core/log.h"
#include "core/thread_pool.h"
#include "dist/expert_parallel.h"
#include "kernels/convert.h"
#include "kernels/gemm.h"
#include "kernels/gemm_int8.h"
#include "kernels/indexer.h"
#include "kernels/indexer_prolog.h"
#include "kernels/mha_attention.h"
#include "kernels/mla_attention.h"
#include "kernels/moe_router.h"
#include "kernels/norms.h"
#include "kernels/rope.h"

namespace dsinfer {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Adds the wall time of its scope to one OpTimes field.
struct ScopedTime {
  double* slot;
  double t0 = now_s();
  ~ScopedTime() { *slot += now_s() - t0; }
};

std::vector<float> to_f32(const Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) {
    switch (t.dtype()) {
      case DType::f32:
        out[i] = t.data<float>()[i];
        break;
      case DType::bf16:
        out[i] = bf16_to_f32(t.data<bf16>()[i]);
        break;
      case DType::f16:
        out[i] = f16_to_f32(t.data<f16>()[i]);
        break;
      default:
        throw std::runtime_error("unexpected dtype for a parameter tensor");
    }
  }
  return out;
}

// The release's act_quant of one group of n <= 128 activations: scale = 2^ceil(log2(amax / 448))
// (amax at least 1e-4), codes = e4m3(x / scale); returns the scale.
float act_quant_group(const float* x, int64_t n, fp8_e4m3* codes) {
  float amax = 0;
  for (int64_t k = 0; k < n; ++k) amax = std::max(amax, std::fabs(x[k]));
  const float scale = fp8_block_scale(amax, true);
  for (int64_t k = 0; k < n; ++k)
    codes[k] = f32_to_fp8_e4m3(std::clamp(x[k] / scale, -448.0f, 448.0f));
  return scale;
}

void rms_norm(const float* x, int64_t rows, int64_t dim, int64_t ld_x, const std::vector<float>& w,
              float eps, float* out, int64_t ld_out) {
  dsinfer::rms_norm(x, rows, dim, ld_x, w.data(), eps, out, ld_out);
}

}  // namespace

// ---- per-call scratch -------------------------------------------------------------------------
// One layer's attention stages' results; every layer of a call reuses the buffers (no page
// faults after the first layer).
struct Model::AttentionScratch {
  std::vector<float> kv;                // [T, C + rope] new latent + k_pe rows (§3.1)
  std::vector<float> ki, kscale;        // [T, 128] indexer keys, [T] their FP8 scales (§3.2)
  std::vector<uint8_t> k8;              // [T, 128] FP8 indexer keys
  std::vector<uint8_t> rows, gathered;  // new cache rows in the cache's format; CP: all ranks'
  size_t row_bytes = 0;
  std::vector<float> qr, q;  // [T, q_lora] latent, [T, H, nope + rope] queries (§3.1)
  // Indexer queries [Q, HI, 128], head weights and scales of the Q tokens that select keys.
  std::vector<float> qi, wts, qscale;
  std::vector<uint8_t> q8;   // [Q, HI, 128] FP8 indexer queries
  std::vector<int32_t> idx;  // [T, index_topk] selected keys (§3.3)
  std::vector<float> o;      // [T, H, v] attention output (§3.4)
};

struct Model::Batch {
  const std::vector<BatchEntry>* entries = nullptr;
  int64_t T = 0;                   // tokens in the batch
  std::vector<int32_t> positions;  // [T] absolute position of each token
  std::vector<int32_t> entry_of;   // [T] entry index of each token
  std::vector<int64_t> first;      // [entries + 1] first token of each entry
  std::vector<int64_t> end;        // [entries] position after each entry's last token
  std::vector<int64_t> n_mha;      // [entries] leading tokens of each entry in the MHA form
  std::vector<float> h;            // [T, D] residual stream
  // Distributed steps. split: context parallelism, this rank has its CP share of the step's
  // tokens (the fields above describe those; `local` holds their entries) and every layer
  // gathers all CP ranks' cache rows: gather_counts tokens per CP rank, in CP-rank order, to
  // (gathered_seq, gathered_pos); gathered_token is each one's index in the whole step.
  bool split = false;
  std::vector<BatchEntry> local;
  std::vector<int64_t> gather_counts, gathered_token;
  std::vector<int32_t> gathered_seq, gathered_pos;
  int64_t T_step = 0;  // tokens in the whole step
  // The ranks computing the same tokens as this one (they split the MoE rows), null: none.
  dist::Communicator* replicas = nullptr;
  AttentionScratch attn;
  std::vector<float> x, y;  // [T, D] a layer's normed input and its sublayers' outputs
};

namespace {

CacheLayout cache_layout(const ModelConfig& c, const ModelOptions& o, bool has_mtp) {
  CacheLayout l;
  l.n_layers = c.num_hidden_layers + (has_mtp ? 1 : 0);
  l.latent = c.kv_lora_rank;
  l.rope = c.qk_rope_head_dim;
  const DType compute = o.precision == Precision::f32 ? DType::f32 : DType::bf16;
  switch (o.kv_cache_dtype) {
    case KvCacheDtype::automatic:
      l.latent_dtype = l.rope_dtype = compute;
      break;
    case KvCacheDtype::bf16:
      l.latent_dtype = l.rope_dtype = DType::bf16;
      break;
    case KvCacheDtype::fp8:
      l.latent_dtype = DType::fp8_e4m3, l.rope_dtype = DType::bf16;
      break;
    case KvCacheDtype::int8:
      l.latent_dtype = DType::i8, l.rope_dtype = DType::bf16;
      break;
  }
  l.has_indexer = c.has_indexer;
  l.indexer_fp8 = o.indexer_fp8;
  return l;
}

int64_t cache_budget(const ModelConfig& c, const ModelOptions& o, const CheckpointWeights& w) {
  if (o.kv_cache_tokens > 0) return o.kv_cache_tokens;
  const KvCache probe(cache_layout(c, o, !w.mtp().empty()), 1);
  if (o.kv_cache_gib > 0)
    return std::max<int64_t>(kKvBlockTokens, int64_t(o.kv_cache_gib * double(1 << 30) /
                                                     double(probe.bytes_per_token())));
  return default_kv_cache_tokens(probe.bytes_per_token(), w.resident_bytes());
}

}  // namespace

Model::Model(ModelConfig config, ModelOptions options, SafetensorsCheckpoint checkpoint)
    : config_(std::move(config)),
      options_(options),
      checkpoint_(std::move(checkpoint)),
      weights_(CheckpointWeights::load(config_, checkpoint_)),
      cache_(cache_layout(config_, options_, !weights_.mtp().empty()),
             cache_budget(config_, options_, weights_)) {
  if (options_.mha_segment < kKvBlockTokens || options_.mha_segment % kKvBlockTokens != 0)
    throw std::invalid_argument("mha_segment " + std::to_string(options_.mha_segment) +
                                " is not a positive multiple of " + std::to_string(kKvBlockTokens));
  inv_freq_ = config_.rope_inv_freq();
  mha_limit_ = compute_mha_limit();
  setup_distribution();
  const double t0 = now_s();
  weights_.check_fp8_codes();  // after setup_distribution: only the experts this rank keeps
  log_debug("FP8 weight codes checked in %.2f s", now_s() - t0);
}

// The groups of src/dist/layout.h, and this rank's share of the routed experts.
void Model::setup_distribution() {
  if (options_.one_process) own_world_ = dist::make_local_communicator();
  world_ = options_.one_process ? own_world_.get() : &dist::world();
  const dist::Layout& l = options_.dist;
  bool moe = false;
  for (int i = 0; i < weights_.num_layers(); ++i) moe |= bool(weights_.layer(i).moe);
  dist::check_layout(l, world_->size(), moe ? config_.n_routed_experts : 0);
  expert_begin_ = 0;
  expert_end_ = config_.n_routed_experts;
  if (world_->size() == 1) return;
  const int r = world_->rank();
  place_ = dist::place_of(l, world_->size(), r);
  cp_comm_ = world_->split(r / l.cp, r);
  replica_comm_ = world_->split(place_.group * l.cp + place_.cp, r);
  ep_comm_ = world_->split(r / l.ep, r);
  if (l.ep > 1) {
    std::tie(expert_begin_, expert_end_) =
        dist::expert_range(config_.n_routed_experts, l.ep, ep_comm_->rank());
    weights_.keep_experts(expert_begin_, expert_end_);
  }
}

dist::Traffic Model::traffic() const {
  dist::Traffic t = world_->traffic();
  for (const auto* c : {&cp_comm_, &replica_comm_, &ep_comm_}) {
    if (!*c) continue;
    const dist::Traffic& s = (*c)->traffic();
    for (int k = 0; k < dist::Traffic::n_kinds; ++k) {
      t.sent[k] += s.sent[k];
      t.received[k] += s.received[k];
      t.seconds[k] += s.seconds[k];
      t.calls[k] += s.calls[k];
    }
  }
  return t;
}

void Model::reset_traffic() {
  world_->traffic().reset();
  for (const auto* c : {&cp_comm_, &replica_comm_, &ep_comm_})
    if (*c) (*c)->traffic().reset();
}

const std::vector<float>& Model::param(const Tensor& t) {
  auto it = params_.find(t.raw());
  if (it == params_.end()) it = params_.emplace(t.raw(), to_f32(t)).first;
  return it->second;
}

namespace {

uint64_t fnv1a(const void* data, size_t n, uint64_t h = 1469598103934665603ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

// What every rank of a job must agree on before any of them builds the model.
struct RankFingerprint {
  int32_t ok = 0;  // 0: this rank could not read the checkpoint
  int32_t isa = 0, bf16_dot = 0;
  uint64_t config = 0, tensors = 0;
  int32_t precision = 0, indexer_fp8 = 0, attention = 0, form = 0, fp8_activations = 0;
  int32_t kv_cache_dtype = 0;
  int32_t ep = 0, cp = 0, dp = 0;
  int64_t mha_segment = 0, kv_cache_tokens = 0;
  double kv_cache_gib = 0;
};

RankFingerprint fingerprint(const std::string& dir, const SafetensorsCheckpoint& ckpt,
                            const ModelOptions& o) {
  RankFingerprint f;
  std::ifstream in(dir + "/config.json", std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  f.config = fnv1a(text.data(), text.size());
  uint64_t h = fnv1a("", 0);
  for (const std::string& name : ckpt.names()) {
    const TensorInfo* t = ckpt.info(name);
    h = fnv1a(name.data(), name.size(), h);
    const int64_t meta[2] = {int64_t(t->dtype), int64_t(t->nbytes)};
    h = fnv1a(meta, sizeof(meta), h);
    h = fnv1a(t->shape.data(), t->shape.size() * 8, h);
  }
  f.ok = 1;
  f.tensors = h;
  f.isa = int32_t(active_isa());
  f.bf16_dot = bf16_dot_preferred();
  f.precision = int32_t(o.precision);
  f.indexer_fp8 = o.indexer_fp8;
  f.attention = int32_t(o.attention);
  f.form = int32_t(o.attention_form);
  f.fp8_activations = o.fp8_activations;
  f.kv_cache_dtype = int32_t(o.kv_cache_dtype);
  f.ep = o.dist.ep, f.cp = o.dist.cp, f.dp = o.dist.dp;
  f.mha_segment = o.mha_segment;
  f.kv_cache_tokens = o.kv_cache_tokens;
  f.kv_cache_gib = o.kv_cache_gib;
  return f;
}

// Throws on every rank (with the same message) when any rank differs from rank 0.
void check_ranks_agree(dist::Communicator& world, const RankFingerprint& mine,
                       const std::string& my_error) {
  const std::vector<RankFingerprint> all = world.allgather_value(mine);
  std::string problems;
  for (size_t r = 0; r < all.size(); ++r) {
    const RankFingerprint &a = all[r], &z = all[0];
    std::vector<std::string> diff;
    if (!a.ok) {
      problems += fmt::format("\n  rank {} could not open the model{}", r,
                              int(r) == world.rank() ? ": " + my_error : " (see its error)");
      continue;
    }
    if (!z.ok) continue;
    if (a.config != z.config) diff.push_back("config.json");
    if (a.tensors != z.tensors) diff.push_back("checkpoint tensors (names, dtypes or shapes)");
    if (a.isa != z.isa)
      diff.push_back(fmt::format("ISA ({} vs {})", isa_name(Isa(a.isa)), isa_name(Isa(z.isa))));
    if (a.bf16_dot != z.bf16_dot)
      diff.push_back(fmt::format("the bf16 dot product ({} vs {}; DSINFER_BF16_DOT)",
                                 a.bf16_dot ? "native" : "fma", z.bf16_dot ? "native" : "fma"));
    if (a.precision != z.precision) diff.push_back("--precision");
    if (a.indexer_fp8 != z.indexer_fp8) diff.push_back("--indexer-quant");
    if (a.attention != z.attention) diff.push_back("--attention");
    if (a.form != z.form) diff.push_back("--attention-form");
    if (a.fp8_activations != z.fp8_activations) diff.push_back("--fp8-activations");
    if (a.kv_cache_dtype != z.kv_cache_dtype) diff.push_back("--kv-cache-dtype");
    if (a.ep != z.ep || a.cp != z.cp || a.dp != z.dp) diff.push_back("--ep/--cp/--dp");
    if (a.mha_segment != z.mha_segment) diff.push_back("the MHA segment");
    if (a.kv_cache_tokens != z.kv_cache_tokens || a.kv_cache_gib != z.kv_cache_gib)
      diff.push_back("--kv-cache-tokens / --kv-cache-gb");
    if (diff.empty()) continue;
    std::string d;
    for (const std::string& s : diff) d += (d.empty() ? "" : ", ") + s;
    problems += fmt::format("\n  rank {} differs from rank 0 in: {}", r, d);
  }
  if (!problems.empty())
    throw std::runtime_error("the ranks of this job do not run the same model:" + problems);
}

}  // namespace

std::unique_ptr<Model> Model::load(const std::string& dir, const ModelOptions& options) {
  const double t0 = now_s();
  std::unique_ptr<dist::Communicator> alone =
      options.one_process ? dist::make_local_communicator() : nullptr;
  dist::Communicator& world = alone ? *alone : dist::world();
  std::optional<ModelConfig> config;
  std::optional<SafetensorsCheckpoint> ckpt;
  if (world.size() == 1) {
    config = load_config(dir + "/config.json");
    ckpt = SafetensorsCheckpoint::open(dir);
  } else {
    // Every rank reaches the agreement check, even one that cannot read the model: a rank that
    // stopped here alone would leave the others waiting.
    std::string error;
    RankFingerprint f;
    try {
      config = load_config(dir + "/config.json");
      ckpt = SafetensorsCheckpoint::open(dir);
      f = fingerprint(dir, *ckpt, options);
    } catch (const std::exception& e) {
      error = e.what();
    }
    check_ranks_agree(world, f, error);
  }
  std::unique_ptr<Model> m;
  try {
    m.reset(new Model(std::move(*config), options, std::move(*ckpt)));
  } catch (const std::exception& e) {
    if (world.size() == 1) throw;
    world.abort(dir + ": " + e.what());
  }
  if (world.size() > 1) {
    // One cache budget for all: the root's block ids address every rank's cache.
    const std::vector<int64_t> caps = world.allgather_value(m->cache_.capacity_tokens());
    const int64_t cap = *std::min_element(caps.begin(), caps.end());
    // The root's pool covers every attention group (--dp), each group's rows stay on its ranks.
    const int groups = world.is_root() ? options.dist.dp : 1;
    if (cap != m->cache_.capacity_tokens() || groups > 1)
      m->cache_ = KvCache(m->cache_.layout(), cap, groups);
  }
  const std::string who =
      world.size() > 1 ? fmt::format("rank {}/{}: ", world.rank(), world.size()) : "";
  log_info("%sloaded %s: %d layers, %.2f GiB of weights mapped, in %.2f s", who.c_str(),
           dir.c_str(), m->config_.num_hidden_layers,
           double(m->weights_.resident_bytes()) / (1 << 30), now_s() - t0);
  if (options.dist.ep > 1)
    log_info("%sexperts %lld..%lld of %lld (%.2f GiB of weights this rank touches)", who.c_str(),
             (long long)m->expert_begin_, (long long)m->expert_end_ - 1,
             (long long)m->config_.n_routed_experts,
             double(m->weights_.resident_bytes()) / (1 << 30));
  if (!world.is_root()) return m;
  log_info("kv cache: %lld tokens (%.2f GiB at %zu bytes/token)%s",
           (long long)m->cache_.capacity_tokens(), double(m->cache_.bytes_reserved()) / (1 << 30),
           m->cache_.bytes_per_token(),
           options.kv_cache_tokens > 0 || options.kv_cache_gib > 0 ? "" : ", the default");
  if (m->mha_limit_ > 0 && m->mha_limit_ < kAllPrompt)
    log_info("attention: prompt segments of %lld tokens below position %lld in the MHA form",
             (long long)options.mha_segment, (long long)m->mha_limit_);
  return m;
}

void Model::write_cache_rows(KvCache& cache, int cl, const std::vector<int32_t>& seqs,
                             const std::vector<int32_t>& positions, const uint8_t* rows,
                             size_t row_bytes) const {
  const size_t lat = size_t(cache.layout().latent_bytes()),
               pe = size_t(cache.layout().rope_bytes());
  const bool index = row_bytes > lat + pe;
  parallel_for(int64_t(seqs.size()), 64, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      const uint8_t* src = rows + size_t(i) * row_bytes;
      const int seq = seqs[size_t(i)];
      const int64_t pos = positions[size_t(i)];
      std::memcpy(cache.c_row(cl, seq, pos), src, lat);
      std::memcpy(cache.k_pe_row(cl, seq, pos), src + lat, pe);
      if (!index) continue;
      src += lat + pe;
      if (options_.indexer_fp8)
        std::memcpy(cache.indexer_token(cl, seq, pos), src, kIndexerDim + 4);
      else
        std::memcpy(cache.indexer_key_f32(cl, seq, pos), src, kIndexerDim * 4);
    }
  });
}

namespace {

// dst[r][j] = src[r][perm[j]] for rows [0, rows) (perm: a LinearWeight's, i32 [n]).
template <class T>
void gather_columns(const T* src, int64_t rows, int64_t ld, const Tensor& perm, T* dst) {
  const int32_t* p = perm.data<int32_t>();
  const int64_t n = perm.numel();
  parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n)),
               [&](int64_t r0, int64_t r1, int) {
                 for (int64_t r = r0; r < r1; ++r)
                   for (int64_t j = 0; j < n; ++j) dst[r * n + j] = src[r * ld + p[j]];
               });
}

// The same for whole rows of v ([rows, perm.numel()]), in place.
template <class T>
void gather_columns(std::vector<T>& v, int64_t rows, const Tensor& perm) {
  std::vector<T> g(v.size());
  gather_columns(v.data(), rows, perm.numel(), perm, g.data());
  v.swap(g);
}

// The inverse in place: row r (ld apart) becomes row[perm[j]] = old row[j].
void scatter_columns(float* rows_data, int64_t rows, int64_t ld, const Tensor& perm) {
  const int32_t* p = perm.data<int32_t>();
  const int64_t n = perm.numel();
  parallel_for(rows, 16, [&](int64_t r0, int64_t r1, int) {
    std::vector<float> tmp(static_cast<size_t>(n));
    for (int64_t r = r0; r < r1; ++r) {
      float* row = rows_data + r * ld;
      std::copy(row, row + n, tmp.begin());
      for (int64_t j = 0; j < n; ++j) row[p[j]] = tmp[size_t(j)];
    }
  });
}

}  // namespace

// y[rows, N] = x[rows, K] . W^T; bf16 precision rounds the activations to bf16 first, as the
// release feeds its projections.
void Model::linear(const float* x, int64_t rows, int64_t ldx, const LinearWeight& w, float* y,
                   int64_t ldy) {
  if (rows == 0) return;  // a rank with no tokens in a distributed step
  std::vector<float> gathered;
  if (w.perm.defined()) {  // group activation ordering: x's columns in the codes' order
    gathered.resize(size_t(rows * w.in));
    gather_columns(x, rows, ldx, w.perm, gathered.data());
    x = gathered.data(), ldx = w.in;
  }
  const WeightView v = w.view();
  if (w.int8_activations) {  // W8A8 / W4A8: int8 dot products on per-row quantized activations
    gemm_int8_activations(x, rows, ldx, v, y, ldy);
    return;
  }
  if (options_.fp8_activations && v.dtype == DType::fp8_e4m3) {
    // The release's act_quant per row and 128-column group (act_quant_group). x8 * scale is exact
    // in bf16, so the bf16 GEMM computes with exactly those values.
    std::vector<bf16> xq(static_cast<size_t>(rows * v.cols));
    parallel_for(rows, 16, [&](int64_t r0, int64_t r1, int) {
      fp8_e4m3 codes[kFp8BlockSize];
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t k0 = 0; k0 < v.cols; k0 += kFp8BlockSize) {
          const int64_t n = std::min<int64_t>(v.cols - k0, kFp8BlockSize);
          const float scale = act_quant_group(x + r * ldx + k0, n, codes);
          for (int64_t k = 0; k < n; ++k)
            xq[size_t(r * v.cols + k0 + k)] = f32_to_bf16(fp8_e4m3_to_f32(codes[k]) * scale);
        }
    });
    gemm(GemmInput{DType::bf16, xq.data(), rows, v.cols, v.cols}, v, y, ldy);
    return;
  }
  if (options_.precision == Precision::f32) {
    gemm(GemmInput{DType::f32, x, rows, v.cols, ldx}, v, y, ldy);
    return;
  }
  std::vector<bf16> xb(static_cast<size_t>(rows * v.cols));
  to_bf16(x, rows, v.cols, ldx, xb.data(), v.cols);
  gemm(GemmInput{DType::bf16, xb.data(), rows, v.cols, v.cols}, v, y, ldy);
}

void Model::embed(const Tensor& table, const std::vector<int32_t>& tokens, float* out) const {
  const int64_t D = config_.hidden_size;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const Tensor row = table.select(tokens[i]);
    for (int64_t d = 0; d < D; ++d) {
      switch (row.dtype()) {
        case DType::f32:
          out[i * D + d] = row.data<float>()[d];
          break;
        case DType::bf16:
          out[i * D + d] = bf16_to_f32(row.data<bf16>()[d]);
          break;
        default:
          out[i * D + d] = f16_to_f32(row.data<f16>()[d]);
          break;
      }
    }
  }
}

KvCacheDtype kv_cache_dtype_from_name(const std::string& name) {
  if (name == "auto") return KvCacheDtype::automatic;
  if (name == "bf16") return KvCacheDtype::bf16;
  if (name == "fp8") return KvCacheDtype::fp8;
  if (name == "int8") return KvCacheDtype::int8;
  throw std::invalid_argument("kv cache dtype '" + name + "': expected auto, bf16, fp8 or int8");
}

AttentionForm attention_form_from_name(const std::string& name) {
  if (name == "auto") return AttentionForm::automatic;
  if (name == "absorbed") return AttentionForm::absorbed;
  if (name == "mha") return AttentionForm::mha;
  throw std::invalid_argument("attention form '" + name + "': expected auto, absorbed or mha");
}

// ---- attention form and the MHA region ---------------------------------------------------------
// A token's attention form must not depend on its batch or chunk (batch invariance), so it is a
// rule on the token alone: prompt tokens of mha_segment-token segments below mha_limit() use MHA
// when the prompt has at least mha_min_tokens() of its tokens in that segment (a whole segment
// always qualifies; a partial last one, e.g. a cached prefix's tail, when it is long enough to pay
// for expanding its context), everything else the absorbed form. The limit is where MHA stops
// paying for itself even for a whole segment in a chunk of its own (its whole context is expanded
// for it): per head,
// MHA costs L * (nope + v) * C to expand L context tokens plus (qk + v) per causal key (top-k is a
// mask there, so it visits every causal key); the absorbed form projects each query in and out of
// the latent space ((nope + v) * C) and reads (2C + R) per visible key. The scheduler keeps
// segments whole, so real chunks amortize the expansion over more queries than that.
MhaRegion mha_region(const ModelConfig& c, bool sparse, int64_t S) {
  const int64_t max_pos = c.max_position_embeddings;
  const double C = double(c.kv_lora_rank), R = double(c.qk_rope_head_dim);
  const double qk = double(c.qk_nope_head_dim) + R, v = double(c.v_head_dim);
  const double expand = (double(c.qk_nope_head_dim) + v) * C;
  // Per segment [s, s + S): MHA expands the s + n keys once and attends over them, absorbed
  // attends over the latent (each token also pays its own absorption, `expand`). The first n
  // at which MHA is no dearer is the segment's minimum; past the first segment where even all S
  // tokens do not pay, MHA never does.
  MhaRegion r;
  for (int64_t s = 0; s + S <= max_pos; s += S) {
    double mha = double(s) * expand, absorbed = 0;
    int64_t need = 0;
    for (int64_t p = s; p < s + S; ++p) {
      const double keys = double(p + 1);
      mha += expand + keys * (qk + v);  // its own key's expansion and its causal keys
      absorbed += expand + (sparse ? std::min(keys, double(c.index_topk)) : keys) * (2 * C + R);
      if (mha <= absorbed && need == 0) need = p - s + 1;
    }
    if (mha > absorbed) {  // not even the whole segment pays
      r.limit = s;
      return r;
    }
    r.min_tokens.push_back(need);
  }
  r.limit = max_pos / S * S;
  return r;
}

int64_t Model::compute_mha_limit() {
  if (options_.attention_form == AttentionForm::absorbed) return 0;
  if (options_.attention_form == AttentionForm::mha) return kAllPrompt;
  MhaRegion r =
      mha_region(config_, options_.attention == AttentionMode::sparse && config_.has_indexer,
                 options_.mha_segment);
  mha_min_tokens_ = std::move(r.min_tokens);
  return r.limit;
}

bool Model::uses_mha(int64_t pos, int64_t prompt_len) const {
  if (pos >= prompt_len) return false;
  if (options_.attention_form == AttentionForm::mha) return true;
  const int64_t S = options_.mha_segment, seg = pos / S;
  if ((seg + 1) * S > mha_limit_) return false;
  return std::min(S, prompt_len - seg * S) >= mha_min_tokens_[size_t(seg)];
}

// ---- attention, in the stages of spec §3.1-3.4 -----------------------------------------------
// Each stage reads the layer input x and earlier stages' results from the batch's attention
// scratch and writes its own there; each has its own timing bucket. A backend or a distributed
// step hooks in at these boundaries (context parallelism: the cache rows are exchanged between
// store_cache_rows and mla_query_prolog).
void Model::attention(KvCache& cache, int cl, const AttentionWeights& w, Batch& b, const float* x,
                      float* out) {
  const ModelConfig& c = config_;
  const bool has_indexer = c.has_indexer && w.indexer;
  mla_kv_prolog(w, b, x);
  if (has_indexer) indexer_key_prolog(*w.indexer, b, x);
  std::unique_ptr<dist::PendingExchange> pending = store_cache_rows(cache, cl, b, has_indexer);
  mla_query_prolog(w, b, x);
  if (pending) {
    ScopedTime st{&times_.cache};
    pending->wait();
    write_cache_rows(cache, cl, b.gathered_seq, b.gathered_pos, b.attn.gathered.data(),
                     b.attn.row_bytes);
  }
  const bool any_sparse = has_indexer && indexer_select(cache, cl, *w.indexer, b, x);
  attention_core(cache, cl, w, b, any_sparse ? b.attn.idx.data() : nullptr);
  ScopedTime st{&times_.projections};
  linear(b.attn.o.data(), b.T, c.num_attention_heads * c.v_head_dim, w.o_proj, out, c.hidden_size);
}

// §3.1, keys: the new latent rows c_kv = RMSNorm(x W_dkv) and the shared rope key k_pe, [T, A].
void Model::mla_kv_prolog(const AttentionWeights& w, Batch& b, const float* x) {
  const ModelConfig& c = config_;
  const int64_t T = b.T, C = c.kv_lora_rank, A = C + c.qk_rope_head_dim;
  ScopedTime st{&times_.projections};
  std::vector<float>& kv = b.attn.kv;
  kv.resize(size_t(T * A));
  linear(x, T, c.hidden_size, w.kv_a_proj_with_mqa, kv.data(), A);
  rms_norm(kv.data(), T, C, A, param(w.kv_a_layernorm), float(c.rms_norm_eps), kv.data(), A);
  rope_interleaved(kv.data() + C, T, 1, A, int(c.qk_rope_head_dim), b.positions.data(),
                   inv_freq_.data());
}

// §3.2, keys: the indexer's key k = Hadamard(RoPE(LayerNorm(x W_k))), cached in every mode (a
// later sparse step needs it), FP8 with power-of-two scales whatever the checkpoint's weight
// format: the indexer's quantization is part of the model, not of how weights are stored.
void Model::indexer_key_prolog(const IndexerWeights& iw, Batch& b, const float* x) {
  const ModelConfig& c = config_;
  const int64_t T = b.T;
  ScopedTime st{&times_.indexer_prolog};
  AttentionScratch& s = b.attn;
  s.ki.resize(size_t(T * kIndexerDim));
  linear(x, T, c.hidden_size, iw.wk, s.ki.data(), kIndexerDim);
  layer_norm(s.ki.data(), T, kIndexerDim, param(iw.k_norm_weight).data(),
             param(iw.k_norm_bias).data(), 1e-6f, s.ki.data());
  indexer_rope(s.ki.data(), T, 1, b.positions.data());
  hadamard_128(s.ki.data(), T);
  if (options_.indexer_fp8) {
    s.k8.resize(size_t(T * kIndexerDim));
    s.kscale.resize(size_t(T));
    quantize_fp8_blocks(s.ki.data(), T, /*ue8m0=*/true, s.k8.data(), s.kscale.data());
  }
}

// The indexer's RoPE on the leading rope dims of T x heads 128-vectors (rotate-halves in V3.2).
void Model::indexer_rope(float* v, int64_t T, int64_t heads, const int32_t* positions) const {
  auto fn = config_.indexer_rope_interleave ? rope_interleaved : rope_halves;
  fn(v, T, int(heads), kIndexerDim, int(config_.qk_rope_head_dim), positions, inv_freq_.data());
}

// This rank's new cache rows in the cache's byte format [latent | k_pe | indexer key], written
// to the cache, or (context parallelism) sent to every CP rank: the returned exchange is in
// flight while the queries are projected.
std::unique_ptr<dist::PendingExchange> Model::store_cache_rows(KvCache& cache, int cl, Batch& b,
                                                               bool has_indexer) {
  const int64_t T = b.T, C = config_.kv_lora_rank, A = C + config_.qk_rope_head_dim;
  ScopedTime st{&times_.cache};
  AttentionScratch& s = b.attn;
  const CacheLayout& layout = cache.layout();
  const size_t lat = size_t(layout.latent_bytes()), pe = size_t(layout.rope_bytes());
  const size_t index_bytes =
      has_indexer ? (options_.indexer_fp8 ? kIndexerDim + 4 : kIndexerDim * 4) : 0;
  const size_t row_bytes = lat + pe + index_bytes;
  s.row_bytes = row_bytes;
  s.rows.resize(size_t(T) * row_bytes);
  parallel_for(T, 64, [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t) {
      uint8_t* dst = s.rows.data() + size_t(t) * row_bytes;
      const float* src = s.kv.data() + t * A;
      encode_latent_row(layout.latent_dtype, src, C, dst);
      encode_latent_row(layout.rope_dtype, src + C, A - C, dst + lat);
      dst += lat + pe;
      if (!has_indexer) continue;
      if (options_.indexer_fp8) {
        std::memcpy(dst, &s.k8[size_t(t * kIndexerDim)], kIndexerDim);
        std::memcpy(dst + kIndexerDim, &s.kscale[size_t(t)], 4);
      } else {
        std::memcpy(dst, &s.ki[size_t(t * kIndexerDim)], kIndexerDim * 4);
      }
    }
  });
  if (!b.split) {
    std::vector<int32_t> seqs(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) seqs[size_t(t)] = (*b.entries)[size_t(b.entry_of[t])].seq;
    write_cache_rows(cache, cl, seqs, b.positions, s.rows.data(), row_bytes);
    return nullptr;
  }
  // Context parallelism: every CP rank's rows into every rank's cache (MPI_Iallgatherv).
  const int R = cp_comm_->size();
  std::vector<int64_t> counts(static_cast<size_t>(R));
  for (int r = 0; r < R; ++r) counts[size_t(r)] = b.gather_counts[size_t(r)] * int64_t(row_bytes);
  const std::vector<int64_t> displs = dist::displacements(counts);
  s.gathered.resize(size_t(displs.back() + counts.back()));
  std::unique_ptr<dist::PendingExchange> pending = cp_comm_->iallgatherv(
      s.rows.data(), counts, displs, s.gathered.data(), dist::Traffic::cp_gather);
  if (!options_.cp_overlap) pending->wait();
  return pending;
}

// §3.1, queries: q = RMSNorm(x W_dq) W_uq (or x W_q without a q latent), RoPE on each head's
// rope part, [T, H, nope + rope]; the q latent stays for the indexer.
void Model::mla_query_prolog(const AttentionWeights& w, Batch& b, const float* x) {
  const ModelConfig& c = config_;
  const int64_t T = b.T, D = c.hidden_size, H = c.num_attention_heads;
  const int64_t nope = c.qk_nope_head_dim, qk = nope + c.qk_rope_head_dim;
  ScopedTime st{&times_.projections};
  AttentionScratch& s = b.attn;
  s.q.resize(size_t(T * H * qk));
  if (c.has_q_lora()) {
    s.qr.resize(size_t(T * c.q_lora_rank));
    linear(x, T, D, w.q_a_proj, s.qr.data(), c.q_lora_rank);
    rms_norm(s.qr.data(), T, c.q_lora_rank, c.q_lora_rank, param(w.q_a_layernorm),
             float(c.rms_norm_eps), s.qr.data(), c.q_lora_rank);
    linear(s.qr.data(), T, c.q_lora_rank, w.q_b_proj, s.q.data(), H * qk);
  } else {
    linear(x, T, D, w.q_proj, s.q.data(), H * qk);
  }
  rope_interleaved(s.q.data() + nope, T, int(H), qk, int(c.qk_rope_head_dim), b.positions.data(),
                   inv_freq_.data());
}

// §3.2-3.3: which keys each token attends to. A query at position p sees every causal key while
// p < index_topk (the indexer would keep them all) and the indexer's top-k after that. Fills
// b.attn.idx [T, K] (-1 past a token's keys) and returns whether any token is sparse.
bool Model::indexer_select(KvCache& cache, int cl, const IndexerWeights& iw, Batch& b,
                           const float* x) {
  const ModelConfig& c = config_;
  const int64_t T = b.T, HI = c.index_n_heads, K = c.index_topk;
  const auto& entries = *b.entries;
  if (options_.attention != AttentionMode::sparse) return false;
  // Only the tokens past index_topk select (a suffix of each entry; the others take every causal
  // key): their queries alone are projected, row q of the scratch for the q-th such token. A
  // prompt of 2 x index_topk tokens projects half as many (each row's result is the same either
  // way: the GEMMs are batch invariant).
  std::vector<int64_t> selecting;
  for (int64_t t = 0; t < T; ++t)
    if (b.positions[t] + 1 > K) selecting.push_back(t);
  if (selecting.empty()) return false;
  const int64_t Q = int64_t(selecting.size());
  AttentionScratch& s = b.attn;
  {
    // Queries of the indexer: qi = qr W_qb [Q, HI, 128], RoPE first, Hadamard, FP8; the head
    // weights w = x W_w / sqrt(HI * 128), times each query block's FP8 scale.
    ScopedTime st{&times_.indexer_prolog};
    const float* qr = s.qr.data();
    const float* xs = x;
    std::vector<float> qr_sel, x_sel;
    std::vector<int32_t> pos_sel(static_cast<size_t>(Q));
    for (int64_t q = 0; q < Q; ++q) pos_sel[size_t(q)] = b.positions[selecting[size_t(q)]];
    if (Q < T) {
      const int64_t R = c.q_lora_rank, D = c.hidden_size;
      qr_sel.resize(size_t(Q * R)), x_sel.resize(size_t(Q * D));
      for (int64_t q = 0; q < Q; ++q) {
        std::memcpy(&qr_sel[size_t(q * R)], qr + selecting[size_t(q)] * R, size_t(R) * 4);
        std::memcpy(&x_sel[size_t(q * D)], x + selecting[size_t(q)] * D, size_t(D) * 4);
      }
      qr = qr_sel.data(), xs = x_sel.data();
    }
    s.qi.resize(size_t(Q * HI * kIndexerDim));
    s.wts.resize(size_t(Q * HI));
    linear(qr, Q, c.q_lora_rank, iw.wq_b, s.qi.data(), HI * kIndexerDim);
    indexer_rope(s.qi.data(), Q, HI, pos_sel.data());
    hadamard_128(s.qi.data(), Q * HI);
    linear(xs, Q, c.hidden_size, iw.weights_proj, s.wts.data(), HI);
    const float wscale = float(1.0 / std::sqrt(double(HI)) / std::sqrt(double(kIndexerDim)));
    if (options_.indexer_fp8) {
      s.qscale.resize(size_t(Q * HI));
      s.q8.resize(size_t(Q * HI * kIndexerDim));
      quantize_fp8_blocks(s.qi.data(), Q * HI, /*ue8m0=*/true, s.q8.data(), s.qscale.data());
      for (int64_t i = 0; i < Q * HI; ++i) s.wts[size_t(i)] *= wscale * s.qscale[size_t(i)];
    } else {
      for (int64_t i = 0; i < Q * HI; ++i) s.wts[size_t(i)] *= wscale;
    }
  }
  ScopedTime st{&times_.indexer};
  std::vector<int32_t>& idx = s.idx;
  idx.assign(size_t(T * K), -1);
  for (int64_t t = 0; t < T; ++t)  // early positions: every causal key, in order
    for (int64_t j = 0; j <= b.positions[t] && j < K; ++j) idx[size_t(t * K + j)] = int32_t(j);
  for (size_t e = 0; e < entries.size(); ++e) {
    // The entry's tokens past index_topk (positions grow along an entry: a suffix).
    int64_t t0 = b.first[e];
    const int64_t t1 = b.first[e + 1];
    while (t0 < t1 && b.positions[t0] + 1 <= K) ++t0;
    if (t0 == t1) continue;
    const int64_t n = t1 - t0;
    // This entry's first selecting token's row in the query scratch.
    const int64_t q0 = std::lower_bound(selecting.begin(), selecting.end(), t0) - selecting.begin();
    std::vector<int64_t> n_valid(static_cast<size_t>(n));
    for (int64_t t = 0; t < n; ++t) n_valid[size_t(t)] = b.positions[t0 + t] + 1;
    IndexerQueries iq;
    iq.n_tokens = n;
    iq.n_heads = int(HI);
    iq.w = s.wts.data() + q0 * HI;
    IndexerKeys keys;
    std::vector<float> kf;
    const int64_t N = b.end[e];
    if (options_.indexer_fp8) {
      iq.dtype = DType::fp8_e4m3;
      iq.q = s.q8.data() + q0 * HI * kIndexerDim;
      keys = cache.indexer_keys_fp8(cl, entries[e].seq, N);
    } else {
      iq.dtype = DType::f32;
      iq.q = s.qi.data() + q0 * HI * kIndexerDim;
      kf.resize(size_t(N * kIndexerDim));
      for (int64_t j = 0; j < N; ++j)
        std::memcpy(&kf[size_t(j * kIndexerDim)], cache.indexer_key_f32(cl, entries[e].seq, j),
                    kIndexerDim * 4);
      keys.dtype = DType::f32;
      keys.n_keys = N;
      keys.k = kf.data();
    }
    // In position order: the MHA form takes the set as a mask, the absorbed form attends over
    // the keys in the order given (ascending positions also walk the cache pages in order).
    indexer_topk(iq, keys, n_valid.data(), int(K), idx.data() + t0 * K, nullptr,
                 TopKOrder::by_position);
  }
  return true;
}

// §3.4: MHA for each entry's leading MHA tokens, the absorbed form for the rest, into
// b.attn.o [T, H, v]; idx: the selected keys, null for dense attention.
void Model::attention_core(KvCache& cache, int cl, const AttentionWeights& w, Batch& b,
                           const int32_t* idx) {
  const ModelConfig& c = config_;
  const auto& entries = *b.entries;
  AttentionScratch& s = b.attn;
  s.o.resize(size_t(b.T * c.num_attention_heads * c.v_head_dim));
  std::vector<int64_t> absorbed_rows;
  bool any_mha = false;
  for (size_t e = 0; e < entries.size(); ++e) {
    any_mha |= b.n_mha[e] > 0;
    for (int64_t t = b.first[e] + b.n_mha[e]; t < b.first[e + 1]; ++t) absorbed_rows.push_back(t);
  }
  if (any_mha) {
    ScopedTime st{&times_.attention};
    mha_attention(cache, cl, w, b, idx, s.q.data(), s.o.data());
  }
  if (!absorbed_rows.empty())
    absorbed_attention(cache, cl, w, b, absorbed_rows, idx, s.q.data(), s.o.data());
}

// Absorbed MLA over the latent cache for the batch tokens `rows` (ascending), from q [T, H, qk]
// into o [T, H, v]:
//   q_lat[h] = q_nope[h] . W_UK[h] (W_UK[h] = rows h * (nope + v) .. + nope of kv_b_proj, used as
//   stored: [K = nope, N = C]), then attention over the latent rows, then o[h] = W_UV[h] o_lat[h].
void Model::absorbed_attention(KvCache& cache, int cl, const AttentionWeights& w, const Batch& b,
                               const std::vector<int64_t>& rows, const int32_t* idx, const float* q,
                               float* o) {
  const ModelConfig& c = config_;
  const int64_t H = c.num_attention_heads, nope = c.qk_nope_head_dim, rope = c.qk_rope_head_dim;
  const int64_t vdim = c.v_head_dim, C = c.kv_lora_rank, qk = nope + rope, A = C + rope;
  const int64_t K = c.index_topk, n = int64_t(rows.size());
  const auto& entries = *b.entries;
  const bool all = n == b.T;  // rows are 0 .. T-1: no gathering
  // The rows' queries, their caches, positions and top-k lists, compacted.
  std::vector<float> qg;
  std::vector<int32_t> pos(static_cast<size_t>(n)), cache_of(static_cast<size_t>(n)), idx_g;
  if (!all) qg.resize(size_t(n * H * qk));
  if (idx && !all) idx_g.resize(size_t(n * K));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = rows[size_t(i)];
    pos[size_t(i)] = b.positions[t];
    cache_of[size_t(i)] = b.entry_of[t];
    if (!all) std::memcpy(&qg[i * H * qk], q + t * H * qk, size_t(H * qk) * 4);
    if (idx && !all) std::memcpy(&idx_g[i * K], idx + t * K, size_t(K) * 4);
  }
  const float* qr = all ? q : qg.data();
  std::vector<MlaCacheView> views(entries.size());
  for (size_t e = 0; e < entries.size(); ++e)
    views[e] = cache.mla_view(cl, entries[e].seq, b.end[e]);

  std::vector<float> q_abs(static_cast<size_t>(n * H * A));
  const WeightView kvb = w.kv_b_proj.view();
  {
    ScopedTime st{&times_.projections};
    // One head per task: each head's GEMM runs whole on one thread (nested calls are serial),
    // which beats 2 * H short parallel GEMMs at decode.
    parallel_for(H, 1, [&](int64_t h0, int64_t h1, int) {
      for (int64_t h = h0; h < h1; ++h) {
        WeightView uk = kvb.storage_rows(h * (nope + vdim), nope);
        uk.kn = true, uk.rows = C, uk.cols = nope;  // used as stored: [K = nope, N = C]
        gemm(GemmInput{DType::f32, qr + h * qk, n, nope, H * qk}, uk, q_abs.data() + h * A, H * A);
      }
    });
    // Group activation ordering: kv_b_proj's columns (the latent) are in its codes' order.
    if (w.kv_b_proj.perm.defined()) scatter_columns(q_abs.data(), n * H, A, w.kv_b_proj.perm);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t h = 0; h < H; ++h)
        std::memcpy(&q_abs[(i * H + h) * A + C], &qr[(i * H + h) * qk + nope], size_t(rope) * 4);
  }

  std::vector<float> o_lat(static_cast<size_t>(n * H * C)), lse(static_cast<size_t>(n * H));
  {
    ScopedTime st{&times_.attention};
    MlaAttnArgs a;
    a.q = q_abs.data();
    a.n_queries = n;
    a.n_heads = int(H);
    a.latent_dim = int(C);
    a.rope_dim = int(rope);
    a.scale = float(c.softmax_scale());
    a.bf16_products = options_.precision == Precision::bf16;
    a.caches = views.data();
    a.cache_of_query = cache_of.data();
    a.o_lat = o_lat.data();
    a.lse = lse.data();
    if (idx)
      sparse_mla_attention(a, all ? idx : idx_g.data(), int(K));
    else
      dense_mla_attention(a, pos.data());
  }

  ScopedTime st{&times_.projections};
  std::vector<float> og;
  if (!all) og.resize(size_t(n * H * vdim));
  float* od = all ? o : og.data();
  if (w.kv_b_proj.perm.defined())  // the latent in the codes' column order
    gather_columns(o_lat, n * H, w.kv_b_proj.perm);
  // --precision bf16: o_lat rounded to bf16, as every linear layer's input (and as the release
  // computes this product), so W_UV takes the bf16 GEMV / GEMM like them (the native pair dot
  // where there is one: the f32 form's 8-row FMAs were ~12% of an 8-sequence decode step).
  std::vector<bf16> o_lat16;
  if (options_.precision == Precision::bf16) {
    o_lat16.resize(o_lat.size());
    to_bf16(o_lat.data(), n * H, C, C, o_lat16.data(), C);
  }
  parallel_for(H, 1, [&](int64_t h0, int64_t h1, int) {
    for (int64_t h = h0; h < h1; ++h) {
      const WeightView uv = kvb.storage_rows(h * (nope + vdim) + nope, vdim);
      const GemmInput in = o_lat16.empty()
                               ? GemmInput{DType::f32, o_lat.data() + h * C, n, C, H * C}
                               : GemmInput{DType::bf16, o_lat16.data() + h * C, n, C, H * C};
      gemm(in, uv, od + h * vdim, H * vdim);
    }
  });
  if (!all)
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(o + rows[size_t(i)] * H * vdim, &og[i * H * vdim], size_t(H * vdim) * 4);
}

// Non-absorbed attention of each entry's leading b.n_mha[e] tokens: the context's latent rows
// are gathered once; per head (in parallel), k_nope and v are expanded from them with W_UK /
// W_UV (kv_b_proj rows of the head), keys are laid out transposed with the shared k_pe, and the
// MHA flash kernel runs over those queries (DSA's top-k as a mask). o is [T, H, v].
void Model::mha_attention(KvCache& cache, int cl, const AttentionWeights& w, const Batch& b,
                          const int32_t* idx, const float* q, float* o) {
  const ModelConfig& c = config_;
  const int64_t H = c.num_attention_heads, nope = c.qk_nope_head_dim, rope = c.qk_rope_head_dim;
  const int64_t vdim = c.v_head_dim, C = c.kv_lora_rank, qk = nope + rope, K = c.index_topk;
  const auto& entries = *b.entries;
  const WeightView kvb = w.kv_b_proj.view();
  for (size_t e = 0; e < entries.size(); ++e) {
    const int64_t t0 = b.first[e], n = b.n_mha[e];
    if (n == 0) continue;
    const int seq = entries[e].seq;
    const int64_t L = b.positions[t0 + n - 1] + 1;  // the context of the MHA queries
    // The context's latent and rope rows, contiguous f32; in --precision bf16 with a bf16 cache
    // the latent rows as they are (the expansion GEMM then takes bf16 pairs).
    const bool lat_bf16 =
        options_.precision == Precision::bf16 && cache.layout().latent_dtype == DType::bf16;
    std::vector<float> lat(lat_bf16 ? 0 : static_cast<size_t>(L * C)),
        pe(static_cast<size_t>(L * rope));
    std::vector<bf16> lat16(lat_bf16 ? static_cast<size_t>(L * C) : 0);
    parallel_for(L, 256, [&](int64_t s0, int64_t s1, int) {
      for (int64_t s = s0; s < s1; ++s) {
        if (lat_bf16)
          std::memcpy(&lat16[s * C], cache.c_row(cl, seq, s), size_t(C) * sizeof(bf16));
        else
          decode_latent_row(cache.layout().latent_dtype, cache.c_row(cl, seq, s), C, &lat[s * C]);
        decode_latent_row(cache.layout().rope_dtype, cache.k_pe_row(cl, seq, s), rope,
                          &pe[s * rope]);
      }
    });
    if (w.kv_b_proj.perm.defined())  // the latent in the codes' column order
      lat_bf16 ? gather_columns(lat16, L, w.kv_b_proj.perm)
               : gather_columns(lat, L, w.kv_b_proj.perm);
    const GemmInput lat_in = lat_bf16 ? GemmInput{DType::bf16, lat16.data(), L, C, C}
                                      : GemmInput{DType::f32, lat.data(), L, C, C};
    // DSA: the queries' top-k lists as a bit mask over the context (early positions list every
    // causal key, which the causal mask gives anyway).
    const int64_t ldmask = (L + 63) / 64;
    std::vector<uint64_t> mask;
    if (idx && L > K) {
      mask.assign(static_cast<size_t>(n * ldmask), 0);
      for (int64_t t = 0; t < n; ++t)
        for (int64_t j = 0; j < K; ++j) {
          const int32_t s = idx[(t0 + t) * K + j];
          if (s >= 0) mask[t * ldmask + s / 64] |= uint64_t(1) << (s % 64);
        }
    }
    // --precision bf16 where the bf16 dot is native: keys and values in the kernel's bf16-pair
    // layouts (k_nope and v rounded to bf16, as the release computes them).
    const bool pairs = options_.precision == Precision::bf16 && bf16_pairs_native();
    const int64_t Lp = (L + kMhaKeyBlock - 1) / kMhaKeyBlock * kMhaKeyBlock;
    // Heads are expanded `group` at a time: one GEMM call per group packs the latent rows once
    // for all of its heads (per head, that packing cost about a quarter of the GEMM), with the
    // group's y rows bounded to about 8 MiB per thread.
    const int64_t hd = nope + vdim;
    const int64_t group =
        std::clamp<int64_t>((int64_t(8) << 20) / std::max<int64_t>(1, L * hd * 4), 1, 8);
    parallel_for(H, 1, [&](int64_t h0, int64_t h1, int) {
      // Per-thread buffers that persist across layers (fresh ones page-fault every time).
      // y rows [k_nope | v] of each head of the group, padded by 16 floats: a stride that is a
      // multiple of 64 floats would put the kernel's value rows in the same few L1 sets (it would
      // copy them instead).
      const int64_t ldy = group * hd + 16;
      thread_local std::vector<float> y, kt;
      thread_local std::vector<uint16_t> kt2, v2;
      if (y.size() < size_t(L * ldy)) y.resize(size_t(L * ldy));
      if (pairs) {
        const size_t nk = size_t(mha_key_pairs_size(L, int(qk)));
        const size_t nv = size_t(mha_value_pairs_size(L, int(vdim)));
        if (kt2.size() < nk) kt2.resize(nk);
        if (v2.size() < nv) v2.resize(nv);
      } else {
        if (kt.size() < size_t(mha_keys_size(L, int(qk))))
          kt.resize(size_t(mha_keys_size(L, int(qk))));
        // The last key block's padding must be zero.
        for (int64_t s = L; s < Lp; ++s)
          for (int64_t d = 0; d < qk; ++d) kt[mha_key_index(s, int(d), int(qk))] = 0.0f;
      }
      for (int64_t h = h0; h < h1; ++h) {
        // W_UK[h] then W_UV[h], for this head's group (from h0) when it starts
        const int64_t g = (h - h0) % group;
        if (g == 0) {
          const int64_t heads = std::min(group, h1 - h);
          gemm(lat_in, kvb.storage_rows(h * hd, heads * hd), y.data(), ldy);
        }
        const float* yh = y.data() + g * hd;
        // Keys [k_nope | k_pe], transposed in blocks, and values (mha_attention.h).
        if (pairs) {
          mha_pack_pairs(yh, ldy, int(nope), pe.data(), rope, int(rope), yh + nope, ldy, int(vdim),
                         L, kt2.data(), v2.data());
        } else {
          for (int64_t s = 0; s < L; ++s) {
            for (int64_t d = 0; d < nope; ++d)
              kt[mha_key_index(s, int(d), int(qk))] = yh[s * ldy + d];
            for (int64_t r = 0; r < rope; ++r)
              kt[mha_key_index(s, int(nope + r), int(qk))] = pe[s * rope + r];
          }
        }
        MhaHeadArgs a;
        a.q = q + (t0 * H + h) * qk, a.ldq = H * qk, a.n_queries = n;
        a.dqk = int(qk), a.dv = int(vdim);
        if (pairs)
          a.kt2 = kt2.data(), a.v2 = v2.data();
        else
          a.kt = kt.data(), a.v = yh + nope, a.ldv = ldy;
        a.n_keys = L;
        a.positions = b.positions.data() + t0;
        a.mask = mask.empty() ? nullptr : mask.data(), a.ldmask = ldmask;
        a.scale = float(c.softmax_scale());
        a.o = o + (t0 * H + h) * vdim, a.ldo = H * vdim;
        mha_attention_head(a);
      }
    });
  }
}

// down(silu(gate(x)) * up(x)) for `rows` rows of x.
void Model::run_mlp(const MlpWeights& m, const float* xin, int64_t rows, float* y) {
  const int64_t D = config_.hidden_size, F = m.gate_proj.out_features();
  std::vector<float> g(static_cast<size_t>(rows * F)), u(static_cast<size_t>(rows * F));
  linear(xin, rows, D, m.gate_proj, g.data(), F);
  linear(xin, rows, D, m.up_proj, u.data(), F);
  for (int64_t i = 0; i < rows * F; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  linear(g.data(), rows, F, m.down_proj, y, D);
}

// One routed expert run: counted with its weight bytes in op_times().
void Model::count_expert_run(const MlpWeights& m) {
  ++times_.experts_run;
  for (const LinearWeight* lw : {&m.gate_proj, &m.up_proj, &m.down_proj})
    times_.expert_bytes += double(lw->bytes());
}

// The routed experts of `rows` rows, all held here: out = sum over each row's experts in
// ascending id of gate weight * expert output, in f32 (the reference's order; the shared expert
// is added after, by the caller, who gets it in shared_out when this returns true).
bool Model::moe_local(const MoeWeights& moe, const float* x, int64_t rows, const int32_t* ids,
                      const float* gw, float* out, float* shared_out) {
  const int64_t D = config_.hidden_size, E = config_.n_routed_experts,
                k = config_.num_experts_per_tok;
  std::fill(out, out + rows * D, 0.0f);
  std::vector<std::vector<int64_t>> rows_of(static_cast<size_t>(E));
  for (int64_t i = 0; i < rows * k; ++i) rows_of[size_t(ids[i])].push_back(i);
  std::vector<int64_t> active;  // experts with rows, ascending
  int64_t most = 0;
  for (int64_t e = 0; e < E; ++e)
    if (!rows_of[size_t(e)].empty()) {
      active.push_back(e), most = std::max<int64_t>(most, int64_t(rows_of[size_t(e)].size()));
      count_expert_run(moe.experts[size_t(e)]);
    }
  // Expert e on its rows: ye[n, D] from its rows of x gathered into xe.
  auto run_expert = [&](int64_t e, std::vector<float>& xe, std::vector<float>& ye) {
    const auto& sel = rows_of[size_t(e)];
    const int64_t n = int64_t(sel.size());
    xe.resize(size_t(n * D));
    ye.resize(size_t(n * D));
    for (int64_t r = 0; r < n; ++r) std::memcpy(&xe[r * D], x + (sel[r] / k) * D, size_t(D) * 4);
    run_mlp(moe.experts[size_t(e)], xe.data(), n, ye.data());
  };
  // out += gate weight * ye for each of expert e's rows (called in ascending e).
  auto add_expert = [&](int64_t e, const std::vector<float>& ye) {
    const auto& sel = rows_of[size_t(e)];
    for (size_t r = 0; r < sel.size(); ++r) {
      float* dst = out + (sel[r] / k) * D;
      const float g = gw[size_t(sel[r])];
      for (int64_t d = 0; d < D; ++d) dst[d] += g * ye[r * D + d];
    }
  };
  // Few rows per expert (decode): the experts (and the shared one, into shared_out) run side by
  // side, one per task, each expert's GEMVs whole on its thread -- otherwise every one of a
  // layer's ~12 short GEMVs pays a parallel_for of its own. The same bits (a GEMM's result does not
  // depend on its thread count), summed into out in expert order all the same.
  if (num_threads() > 1 && active.size() > 1 && most <= kGemvMaxRows &&
      !thread_pool().inside_task()) {
    const size_t A = active.size();
    const bool shared = shared_out && moe.shared_experts && rows <= kGemvMaxRows;
    std::vector<std::vector<float>> outs(A);
    parallel_for(int64_t(A) + (shared ? 1 : 0), 1, [&](int64_t a0, int64_t a1, int) {
      std::vector<float> xe;
      for (int64_t a = a0; a < a1; ++a)
        if (size_t(a) == A)  // the shared expert, on every row
          run_mlp(*moe.shared_experts, x, rows, shared_out);
        else
          run_expert(active[size_t(a)], xe, outs[size_t(a)]);
    });
    for (size_t a = 0; a < A; ++a) add_expert(active[a], outs[a]);
    return shared;
  }
  std::vector<float> xe, ye;
  for (int64_t e : active) {
    run_expert(e, xe, ye);
    add_expert(e, ye);
  }
  return false;
}

// The same over the EP group (src/dist/expert_parallel.h): rows travel in the precision the
// experts consume (f32, bf16, or FP8 codes + ue8m0 scales with fp8_activations: each converts
// back to values the expert's linear layers quantize to the same numbers), outputs come back
// unreduced and are summed here in the order moe_local uses.
void Model::moe_expert_parallel(const MoeWeights& moe, const float* x, int64_t rows,
                                const int32_t* ids, const float* gw, float* out) {
  const int64_t D = config_.hidden_size, E = config_.n_routed_experts;
  const int k = config_.num_experts_per_tok;
  const MlpWeights& any_local = moe.experts[size_t(expert_begin_)];
  enum class Wire { f32, bf16, fp8 } wire = Wire::f32;
  if (options_.fp8_activations && any_local.gate_proj.is_fp8())
    wire = Wire::fp8;
  else if (options_.precision == Precision::bf16)
    wire = Wire::bf16;
  const int64_t groups = (D + kFp8BlockSize - 1) / kFp8BlockSize;
  const size_t row_bytes = wire == Wire::f32    ? size_t(D) * 4
                           : wire == Wire::bf16 ? size_t(D) * 2
                                                : size_t(D + groups * 4);
  std::vector<uint8_t> wx(static_cast<size_t>(rows) * row_bytes);
  parallel_for(rows, 16, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * D;
      uint8_t* dst = wx.data() + size_t(r) * row_bytes;
      if (wire == Wire::f32) {
        std::memcpy(dst, xr, size_t(D) * 4);
      } else if (wire == Wire::bf16) {
        for (int64_t d = 0; d < D; ++d) reinterpret_cast<bf16*>(dst)[d] = f32_to_bf16(xr[d]);
      } else {
        for (int64_t g = 0; g < groups; ++g) {
          const int64_t k0 = g * kFp8BlockSize;
          const float scale = act_quant_group(xr + k0, std::min<int64_t>(D - k0, kFp8BlockSize),
                                              reinterpret_cast<fp8_e4m3*>(dst + k0));
          std::memcpy(dst + D + g * 4, &scale, 4);
        }
      }
    }
  });
  auto decode = [&](const uint8_t* src, float* xr) {
    if (wire == Wire::f32) {
      std::memcpy(xr, src, size_t(D) * 4);
    } else if (wire == Wire::bf16) {
      for (int64_t d = 0; d < D; ++d) xr[d] = bf16_to_f32(reinterpret_cast<const bf16*>(src)[d]);
    } else {
      for (int64_t d = 0; d < D; ++d) {
        float scale;
        std::memcpy(&scale, src + D + (d / kFp8BlockSize) * 4, 4);
        xr[d] = fp8_e4m3_to_f32(fp8_e4m3{src[d]}) * scale;
      }
    }
  };
  dist::ExpertDispatch dd;
  dd.n_experts = E;
  dd.rows = rows;
  dd.k = k;
  dd.ids = ids;
  dd.wire = wx.data();
  dd.row_bytes = row_bytes;
  dd.out_dim = D;
  std::vector<float> routed(static_cast<size_t>(rows * k * D)), xe;
  const dist::ExpertExchange sent = dist::expert_parallel_moe(
      *ep_comm_, dd,
      [&](int64_t e, int64_t n, const uint8_t* in, float* y) {
        count_expert_run(moe.experts[size_t(e)]);
        xe.resize(size_t(n * D));
        for (int64_t r = 0; r < n; ++r) decode(in + size_t(r) * row_bytes, xe.data() + r * D);
        run_mlp(moe.experts[size_t(e)], xe.data(), n, y);
      },
      routed.data());
  ++times_.ep_exchanges;
  times_.ep_remote_rows += sent.remote_rows;
  times_.ep_remote_pairs += sent.remote_pairs;
  std::fill(out, out + rows * D, 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<int> order(static_cast<size_t>(k));
    for (int j = 0; j < k; ++j) order[size_t(j)] = j;
    std::sort(order.begin(), order.end(),
              [&](int a, int c) { return ids[r * k + a] < ids[r * k + c]; });
    float* dst = out + r * D;
    for (int j : order) {
      const float g = gw[r * k + j];
      const float* y = routed.data() + (r * k + j) * D;
      for (int64_t d = 0; d < D; ++d) dst[d] += g * y[d];
    }
  }
}

// ---- feed-forward: dense MLP or MoE with the group-limited sigmoid router ---------------------
void Model::mlp(const LayerWeights& lw, Batch& b, const float* x, float* out) {
  const ModelConfig& c = config_;
  const int64_t T = b.T, D = c.hidden_size;
  ScopedTime st{&times_.moe};
  if (lw.mlp) {
    run_mlp(*lw.mlp, x, T, out);
    return;
  }
  const MoeWeights& moe = *lw.moe;
  const int64_t E = c.n_routed_experts, k = c.num_experts_per_tok;
  // Replicas computing the same tokens split the MoE rows: this rank's home rows [h0, h1).
  const int R = b.replicas ? b.replicas->size() : 1;
  const auto [h0, h1] = dist::split_range(T, R, b.replicas ? b.replicas->rank() : 0);
  const int64_t n = h1 - h0;
  const float* xh = x + h0 * D;
  // Router in f32 (spec §3.5), whatever the precision mode.
  std::vector<float> logits(static_cast<size_t>(n * E));
  LinearWeight gate;
  gate.w = moe.gate;
  if (n > 0) gemm(GemmInput{DType::f32, xh, n, D, D}, gate.view(), logits.data(), E);
  std::vector<int32_t> ids(static_cast<size_t>(n * k));
  std::vector<float> gw(static_cast<size_t>(n * k));
  moe_route(logits.data(), param(moe.e_score_correction_bias).data(), n,
            MoeRouting{int(E), c.n_group, c.topk_group, int(k), c.norm_topk_prob,
                       float(c.routed_scaling_factor)},
            ids.data(), gw.data());
  std::vector<float> yh;
  float* y = R == 1 ? out : (yh.resize(size_t(n * D)), yh.data());
  std::vector<float> s(moe.shared_experts ? static_cast<size_t>(n * D) : 0);
  bool shared_done = false;
  if (ep_comm_ && ep_comm_->size() > 1)
    moe_expert_parallel(moe, xh, n, ids.data(), gw.data(), y);
  else
    shared_done = moe_local(moe, xh, n, ids.data(), gw.data(), y, s.data());
  // The shared expert last, as the reference adds it.
  if (moe.shared_experts && n > 0) {
    if (!shared_done) run_mlp(*moe.shared_experts, xh, n, s.data());
    for (int64_t i = 0; i < n * D; ++i) y[i] += s[i];
  }
  if (R > 1) {
    std::vector<int64_t> counts(static_cast<size_t>(R)), displs(static_cast<size_t>(R));
    for (int r = 0; r < R; ++r) {
      const auto [a, e] = dist::split_range(T, R, r);
      counts[size_t(r)] = (e - a) * D * 4;
      displs[size_t(r)] = a * D * 4;
    }
    b.replicas->allgatherv(y, counts, displs, out, dist::Traffic::replica_gather);
  }
}

void Model::decoder_layer(KvCache& cache, int cl, const LayerWeights& w, Batch& b) {
  const int64_t T = b.T, D = config_.hidden_size;
  const float eps = float(config_.rms_norm_eps);
  std::vector<float>&x = b.x, &y = b.y;
  x.resize(size_t(T * D));
  y.resize(size_t(T * D));
  {
    ScopedTime st{&times_.other};
    rms_norm(b.h.data(), T, D, D, param(w.input_layernorm), eps, x.data(), D);
  }
  attention(cache, cl, w.attn, b, x.data(), y.data());
  for (int64_t i = 0; i < T * D; ++i) b.h[i] += y[i];
  {
    ScopedTime st{&times_.other};
    rms_norm(b.h.data(), T, D, D, param(w.post_attention_layernorm), eps, x.data(), D);
  }
  mlp(w, b, x.data(), y.data());
  for (int64_t i = 0; i < T * D; ++i) b.h[i] += y[i];
}

// ---- steps: what the root broadcasts to the other ranks of a distributed job -------------------
enum class Model::Step : int64_t { stop = 0, forward = 1, mtp = 2, fill = 3 };

void Model::send_step(Step step, const std::vector<int64_t>& words,
                      const std::vector<float>& floats) {
  int64_t header[3] = {int64_t(step), int64_t(words.size()), int64_t(floats.size())};
  world_->broadcast(header, sizeof(header), 0, dist::Traffic::control);
  if (!words.empty())
    world_->broadcast(const_cast<int64_t*>(words.data()), words.size() * 8, 0,
                      dist::Traffic::control);
  if (!floats.empty())
    world_->broadcast(const_cast<float*>(floats.data()), floats.size() * 4, 0,
                      dist::Traffic::control);
}

// Per entry: seq, group, start, length, mtp length, flags, prompt_len, n tokens, tokens, n blocks,
// blocks (the cache state after the root reserved the step's blocks).
std::vector<int64_t> Model::describe_entries(const std::vector<BatchEntry>& batch,
                                             const std::vector<int64_t>& starts) const {
  std::vector<int64_t> w{int64_t(batch.size())};
  for (size_t e = 0; e < batch.size(); ++e) {
    const BatchEntry& en = batch[e];
    w.insert(w.end(),
             {int64_t(en.seq), int64_t(cache_.group(en.seq)), starts[e], cache_.length(en.seq),
              cache_.mtp_length(en.seq), int64_t(en.all_logits) | int64_t(en.no_logits) << 1,
              en.prompt_len, int64_t(en.tokens.size())});
    w.insert(w.end(), en.tokens.begin(), en.tokens.end());
    const std::vector<int32_t>& blocks = cache_.block_table(en.seq);
    w.push_back(int64_t(blocks.size()));
    w.insert(w.end(), blocks.begin(), blocks.end());
  }
  return w;
}

std::vector<BatchEntry> Model::mirror_entries(const std::vector<int64_t>& w, size_t& at,
                                              std::vector<int64_t>& starts,
                                              std::vector<int>& groups) {
  auto next = [&]() {
    if (at >= w.size()) throw std::runtime_error("distributed step: truncated step message");
    return w[at++];
  };
  std::vector<BatchEntry> batch(static_cast<size_t>(next()));
  starts.assign(batch.size(), 0);
  groups.assign(batch.size(), 0);
  for (size_t e = 0; e < batch.size(); ++e) {
    BatchEntry& en = batch[e];
    en.seq = int(next());
    groups[e] = int(next());
    starts[e] = next();
    const int64_t length = next(), mtp_length = next(), flags = next();
    en.all_logits = flags & 1;
    en.no_logits = flags & 2;
    en.prompt_len = next();
    en.tokens.resize(size_t(next()));
    for (int32_t& t : en.tokens) t = int32_t(next());
    std::vector<int32_t> blocks(static_cast<size_t>(next()));
    for (int32_t& bl : blocks) bl = int32_t(next());
    // Only this rank's attention group holds the sequence's rows.
    if (groups[e] == place_.group)
      cache_.mirror(en.seq, std::move(blocks), length, mtp_length,
                    int32_t(groups[e] * cache_.group_capacity_blocks()));
  }
  return batch;
}

void Model::run_worker() {
  if (world_->is_root()) throw std::logic_error("run_worker on the root rank");
  for (;;) {
    int64_t header[3] = {};
    world_->broadcast(header, sizeof(header), 0, dist::Traffic::control);
    std::vector<int64_t> words(static_cast<size_t>(header[1]));
    std::vector<float> floats(static_cast<size_t>(header[2]));
    if (!words.empty())
      world_->broadcast(words.data(), words.size() * 8, 0, dist::Traffic::control);
    if (!floats.empty())
      world_->broadcast(floats.data(), floats.size() * 4, 0, dist::Traffic::control);
    try {
      size_t at = 0;
      std::vector<int64_t> starts;
      std::vector<int> groups;
      switch (Step(header[0])) {
        case Step::stop:
          return;
        case Step::forward: {
          const bool hidden = words.at(at++) != 0;
          const std::vector<BatchEntry> batch = mirror_entries(words, at, starts, groups);
          forward_step(batch, starts, groups, hidden);
          break;
        }
        case Step::mtp: {
          const bool all_logits = words[at++] != 0;
          const std::vector<BatchEntry> entries = mirror_entries(words, at, starts, groups);
          std::vector<MtpEntry> batch;
          size_t row = 0;
          for (const BatchEntry& en : entries) {
            batch.push_back(
                MtpEntry{en.seq, floats.data() + row * size_t(config_.hidden_size), en.tokens});
            row += en.tokens.size();
          }
          mtp_step(batch, starts, all_logits);
          break;
        }
        case Step::fill: {
          const int64_t depth = words[at++];
          const uint32_t seed = uint32_t(words[at++]);
          const std::vector<BatchEntry> entries = mirror_entries(words, at, starts, groups);
          if (groups.at(0) == place_.group) fill_step(entries.at(0).seq, depth, seed);
          break;
        }
        default:
          throw std::runtime_error("distributed step: unknown step " + std::to_string(header[0]));
      }
    } catch (const std::exception& e) {
      world_->abort(std::string("step failed on a worker rank: ") + e.what());
    }
  }
}

Model::~Model() {
  if (world_ && world_->size() > 1 && world_->is_root()) send_step(Step::stop, {}, {});
}

// ---- the forward --------------------------------------------------------------------------------
std::vector<int64_t> Model::step_tokens(const std::vector<BatchEntry>& batch,
                                        const std::vector<int>& groups, int rank) const {
  const dist::Layout& l = options_.dist;
  const dist::RankPlace p = dist::place_of(l, world_->size(), rank);
  std::vector<int64_t> out;
  int64_t first = 0;
  for (size_t e = 0; e < batch.size(); ++e) {
    const int64_t n = int64_t(batch[e].tokens.size());
    if (groups[e] == p.group) {
      if (l.cp > 1)
        for (int64_t t : dist::cp_tokens_of(n, l.cp, p.cp)) out.push_back(first + t);
      else
        for (int64_t t = 0; t < n; ++t) out.push_back(first + t);
    }
    first += n;
  }
  return out;
}

Model::Batch Model::make_batch(const std::vector<BatchEntry>& batch,
                               const std::vector<int64_t>& starts,
                               const std::vector<int>& groups) const {
  Batch b;
  b.first.push_back(0);
  const bool one = world_->size() == 1;
  // Every token of the step: its entry and position.
  std::vector<int32_t> entry_of, pos_of;
  for (size_t e = 0; e < batch.size(); ++e)
    for (size_t i = 0; i < batch[e].tokens.size(); ++i) {
      entry_of.push_back(int32_t(e));
      pos_of.push_back(int32_t(starts[e] + int64_t(i)));
    }
  b.T_step = int64_t(entry_of.size());
  const std::vector<int64_t> mine =
      one ? std::vector<int64_t>() : step_tokens(batch, groups, world_->rank());
  b.split = !one && cp_comm_->size() > 1;
  if (b.split) {
    // Every CP rank's share, in CP-rank order: the layout of each layer's cache gather.
    const int C = cp_comm_->size(), base = world_->rank() - cp_comm_->rank();
    for (int r = 0; r < C; ++r) {
      const std::vector<int64_t> theirs = step_tokens(batch, groups, base + r);
      b.gather_counts.push_back(int64_t(theirs.size()));
      for (int64_t t : theirs) {
        b.gathered_seq.push_back(batch[size_t(entry_of[size_t(t)])].seq);
        b.gathered_pos.push_back(pos_of[size_t(t)]);
        b.gathered_token.push_back(t);
      }
    }
  }
  // This rank's entries (those of its attention group) with its tokens of each.
  size_t at = 0;
  int64_t first = 0;
  for (size_t e = 0; e < batch.size(); ++e) {
    const BatchEntry& en = batch[e];
    const int64_t n = int64_t(en.tokens.size());
    if (!one && groups[e] != place_.group) {
      first += n;
      continue;
    }
    BatchEntry local = en;
    local.tokens.clear();
    int64_t n_mha = 0;
    for (; one ? int64_t(local.tokens.size()) < n : at < mine.size() && mine[at] < first + n;
         ++at) {
      const int64_t t = one ? int64_t(local.tokens.size()) : mine[at] - first;
      local.tokens.push_back(en.tokens[size_t(t)]);
      b.positions.push_back(int32_t(starts[e] + t));
      b.entry_of.push_back(int32_t(b.local.size()));
      // MHA tokens come first: the rule is monotone in the position within a sequence.
      n_mha += uses_mha(starts[e] + t, en.prompt_len) ? 1 : 0;
    }
    b.first.push_back(b.first.back() + int64_t(local.tokens.size()));
    b.end.push_back(starts[e] + n);
    b.n_mha.push_back(n_mha);
    b.local.push_back(std::move(local));
    first += n;
  }
  b.T = b.first.back();
  return b;
}

ForwardOutput Model::forward(const std::vector<BatchEntry>& batch) {
  const ModelConfig& c = config_;
  if (!world_->is_root()) throw std::logic_error("forward on a worker rank: use run_worker()");
  // Check every entry before anything changes.
  std::vector<int> seqs;
  std::vector<int64_t> starts, ends;
  for (size_t e = 0; e < batch.size(); ++e) {
    const BatchEntry& en = batch[e];
    if (!cache_.has_sequence(en.seq))
      throw std::invalid_argument("forward: no sequence " + std::to_string(en.seq));
    if (std::find(seqs.begin(), seqs.end(), en.seq) != seqs.end())
      throw std::invalid_argument("forward: sequence " + std::to_string(en.seq) +
                                  " has two entries in one batch");
    seqs.push_back(en.seq);
    if (en.tokens.empty()) throw std::invalid_argument("forward: an entry has no tokens");
    const int64_t start = cache_.length(en.seq), end = start + int64_t(en.tokens.size());
    if (end > c.max_position_embeddings)
      throw std::invalid_argument(
          "forward: sequence of " + std::to_string(end) +
          " tokens exceeds max_position_embeddings = " + std::to_string(c.max_position_embeddings));
    for (size_t i = 0; i < en.tokens.size(); ++i)
      if (en.tokens[i] < 0 || en.tokens[i] >= c.vocab_size)
        throw std::invalid_argument("forward: token id " + std::to_string(en.tokens[i]) +
                                    " at position " + std::to_string(start + int64_t(i)) +
                                    " is outside the vocabulary [0, " +
                                    std::to_string(c.vocab_size) + ")");
    starts.push_back(start);
    ends.push_back(end);
  }
  int64_t more_blocks = 0;
  for (size_t e = 0; e < batch.size(); ++e)
    more_blocks += cache_.blocks_needed(batch[e].seq, ends[e]);
  if (more_blocks > cache_.pool().available())
    throw KvCacheFull("forward: the batch needs " + std::to_string(more_blocks) +
                      " more cache blocks but only " + std::to_string(cache_.pool().available()) +
                      " of " + std::to_string(cache_.capacity_blocks()) + " are unreferenced");
  for (size_t e = 0; e < batch.size(); ++e) {
    cache_.reserve(batch[e].seq, ends[e]);
    cache_.set_length(batch[e].seq, ends[e]);
  }
  std::vector<int> groups;
  for (const BatchEntry& en : batch) groups.push_back(cache_.group(en.seq));
  if (world_->size() == 1) return forward_step(batch, starts, groups, true);
  // Every rank must agree on which hidden rows travel: the root's setting rides in the step.
  std::vector<int64_t> words{int64_t(hidden_outputs_)};
  const std::vector<int64_t> d = describe_entries(batch, starts);
  words.insert(words.end(), d.begin(), d.end());
  send_step(Step::forward, words, {});
  try {
    return forward_step(batch, starts, groups, hidden_outputs_);
  } catch (const std::exception& e) {
    // The other ranks are inside the same step: stopping alone would leave them waiting.
    world_->abort(std::string("forward failed on the root rank: ") + e.what());
  }
  return {};  // not reached: abort ends the job
}

ForwardOutput Model::forward_step(const std::vector<BatchEntry>& batch,
                                  const std::vector<int64_t>& starts,
                                  const std::vector<int>& groups, bool hidden_outputs) {
  const ModelConfig& c = config_;
  const int64_t D = c.hidden_size;
  const bool distributed = world_->size() > 1;
  Batch b = make_batch(batch, starts, groups);
  b.entries = &b.local;
  b.replicas = distributed ? replica_comm_.get() : nullptr;
  b.h.resize(size_t(b.T * D));
  for (size_t e = 0; e < b.local.size(); ++e)
    embed(weights_.embed_tokens(), b.local[e].tokens, b.h.data() + b.first[e] * D);

  for (int l = 0; l < c.num_hidden_layers; ++l) decoder_layer(cache_, l, weights_.layer(l), b);

  ForwardOutput out;
  ScopedTime st{&times_.head};
  // The rows with logits, in step order, and where each entry's first one is.
  std::vector<int64_t> rows;
  for (size_t e = 0, first = 0; e < batch.size(); first += batch[e].tokens.size(), ++e) {
    const int64_t n = int64_t(batch[e].tokens.size());
    out.first_row.push_back(batch[e].no_logits ? -1 : int64_t(rows.size()));
    if (batch[e].no_logits) continue;
    for (int64_t t = batch[e].all_logits ? 0 : n - 1; t < n; ++t)
      rows.push_back(int64_t(first) + t);
  }
  // The final norm of this rank's tokens; the root collects the whole step's (in step order) from
  // the first replica of every attention group's CP ranks and runs the head alone.
  Tensor normed = Tensor::empty(DType::f32, {b.T, D});
  rms_norm(b.h.data(), b.T, D, D, param(weights_.norm()), float(c.rms_norm_eps),
           normed.data<float>(), D);
  if (distributed && (b.split || options_.dist.dp > 1)) {
    // Without hidden outputs (an engine that does not draft) only the rows with logits travel.
    const int N = world_->size();
    std::vector<bool> wanted(static_cast<size_t>(b.T_step), hidden_outputs);
    for (int64_t t : rows) wanted[size_t(t)] = true;
    std::vector<std::vector<int64_t>> tokens_of(static_cast<size_t>(N));
    std::vector<int64_t> counts(static_cast<size_t>(N), 0);
    std::vector<float> send;
    const float* mine = normed.data<float>();
    for (int r = 0; r < N; ++r) {
      if (dist::place_of(options_.dist, N, r).replica != 0) continue;
      const std::vector<int64_t> theirs = step_tokens(batch, groups, r);
      for (size_t i = 0; i < theirs.size(); ++i) {
        if (!wanted[size_t(theirs[i])]) continue;
        tokens_of[size_t(r)].push_back(theirs[i]);
        if (r == world_->rank()) send.insert(send.end(), mine + i * D, mine + (i + 1) * D);
      }
      counts[size_t(r)] = int64_t(tokens_of[size_t(r)].size()) * D * 4;
    }
    const std::vector<int64_t> displs = dist::displacements(counts);
    std::vector<float> all(world_->is_root() ? size_t((displs.back() + counts.back()) / 4) : 0);
    world_->gatherv(send.data(), counts, displs, all.data(), 0, dist::Traffic::output_gather);
    if (world_->is_root()) {
      // Rows nobody sent (hidden outputs off) stay zero.
      normed = Tensor::empty(DType::f32, {b.T_step, D});
      std::memset(normed.raw(), 0, normed.nbytes());
      for (int r = 0; r < N; ++r)
        for (size_t i = 0; i < tokens_of[size_t(r)].size(); ++i)
          std::memcpy(normed.data<float>() + tokens_of[size_t(r)][i] * D,
                      &all[size_t(displs[size_t(r)] / 4) + i * size_t(D)], size_t(D) * 4);
    }
  }
  if (!world_->is_root()) return out;
  if (hidden_outputs || !distributed) out.hidden = normed;
  std::vector<float> hr(rows.size() * size_t(D));
  for (size_t i = 0; i < rows.size(); ++i)
    std::memcpy(&hr[i * D], normed.data<float>() + rows[i] * D, size_t(D) * 4);
  out.logits = Tensor::empty(DType::f32, {int64_t(rows.size()), c.vocab_size});
  linear(hr.data(), int64_t(rows.size()), D, weights_.lm_head(), out.logits.data<float>(),
         c.vocab_size);
  return out;
}

Tensor Model::mtp_forward(int seq, const float* hidden, const std::vector<int32_t>& next_tokens) {
  return mtp_forward_batch({MtpEntry{seq, hidden, next_tokens}}, true).logits;
}

Model::MtpOutput Model::mtp_forward_batch(const std::vector<MtpEntry>& batch, bool all_logits) {
  if (weights_.mtp().empty())
    throw std::runtime_error("mtp_forward: the checkpoint has no MTP module");
  if (!world_->is_root()) throw std::logic_error("mtp_forward on a worker rank");
  if (options_.dist.dp > 1)
    throw std::runtime_error("MTP drafts with data-parallel attention (--dp) are not supported");
  const ModelConfig& c = config_;
  std::vector<int64_t> starts;
  for (const MtpEntry& me : batch) {
    if (me.next_tokens.empty()) throw std::invalid_argument("mtp_forward: an entry has no tokens");
    for (int32_t t : me.next_tokens)
      if (t < 0 || t >= c.vocab_size)
        throw std::invalid_argument("mtp_forward: token id " + std::to_string(t) +
                                    " is outside the vocabulary");
    starts.push_back(cache_.mtp_length(me.seq));
  }
  for (size_t e = 0; e < batch.size(); ++e) {
    const int64_t end = starts[e] + int64_t(batch[e].next_tokens.size());
    cache_.reserve(batch[e].seq, end);
    cache_.set_mtp_length(batch[e].seq, end);
  }
  if (world_->size() == 1) return mtp_step(batch, starts, all_logits);
  std::vector<BatchEntry> entries;
  std::vector<float> hidden;
  for (const MtpEntry& me : batch) {
    entries.push_back(BatchEntry{me.seq, me.next_tokens});
    hidden.insert(hidden.end(), me.hidden,
                  me.hidden + me.next_tokens.size() * size_t(c.hidden_size));
  }
  std::vector<int64_t> words{int64_t(all_logits)};
  const std::vector<int64_t> d = describe_entries(entries, starts);
  words.insert(words.end(), d.begin(), d.end());
  send_step(Step::mtp, words, hidden);
  try {
    return mtp_step(batch, starts, all_logits);
  } catch (const std::exception& e) {
    world_->abort(std::string("MTP draft failed on the root rank: ") + e.what());
  }
  return {};  // not reached: abort ends the job
}

// Every rank computes every MTP token (drafts are a few tokens); replicas split its MoE rows.
Model::MtpOutput Model::mtp_step(const std::vector<MtpEntry>& batch,
                                 const std::vector<int64_t>& starts, bool all_logits) {
  const ModelConfig& c = config_;
  const MtpWeights& m = weights_.mtp()[0];
  const int64_t D = c.hidden_size;
  Batch b;
  b.entries = &b.local;
  b.first = {0};
  b.replicas = world_->size() > 1 ? world_ : nullptr;
  std::vector<int32_t> all_next;
  for (size_t i = 0; i < batch.size(); ++i) {
    const MtpEntry& me = batch[i];
    const int64_t n = int64_t(me.next_tokens.size());
    BatchEntry e{me.seq, me.next_tokens, all_logits};
    e.prompt_len = 0;  // drafts are decode tokens: absorbed form
    b.local.push_back(e);
    for (int64_t j = 0; j < n; ++j)
      b.positions.push_back(int32_t(starts[i] + j)), b.entry_of.push_back(int32_t(i));
    b.first.push_back(b.first.back() + n);
    b.end.push_back(starts[i] + n);
    b.n_mha.push_back(0);
    all_next.insert(all_next.end(), me.next_tokens.begin(), me.next_tokens.end());
  }
  const int64_t T = b.first.back();
  b.T = b.T_step = T;
  // m = eh_proj([RMSNorm_e(embed(next)) | RMSNorm_h(hidden)]), then one decoder layer.
  std::vector<float> emb(static_cast<size_t>(T * D)), cat(static_cast<size_t>(T * 2 * D));
  embed(m.embed_tokens, all_next, emb.data());
  const float eps = float(c.rms_norm_eps);
  rms_norm(emb.data(), T, D, D, param(m.enorm), eps, cat.data(), 2 * D);
  for (size_t e = 0; e < batch.size(); ++e)
    rms_norm(batch[e].hidden, b.first[e + 1] - b.first[e], D, D, param(m.hnorm), eps,
             cat.data() + b.first[e] * 2 * D + D, 2 * D);
  b.h.resize(size_t(T * D));
  linear(cat.data(), T, 2 * D, m.eh_proj, b.h.data(), D);
  decoder_layer(cache_, c.num_hidden_layers, m.layer, b);
  MtpOutput out;
  if (!world_->is_root()) return out;
  out.hidden = Tensor::empty(DType::f32, {T, D});
  std::memcpy(out.hidden.data<float>(), b.h.data(), size_t(T * D) * 4);
  std::vector<int64_t> rows;
  for (size_t e = 0; e < batch.size(); ++e) {
    out.first_row.push_back(int64_t(rows.size()));
    out.first_token.push_back(b.first[e]);
    if (all_logits)
      for (int64_t t = b.first[e]; t < b.first[e + 1]; ++t) rows.push_back(t);
    else
      rows.push_back(b.first[e + 1] - 1);
  }
  std::vector<float> hn(rows.size() * size_t(D));
  for (size_t i = 0; i < rows.size(); ++i)
    rms_norm(b.h.data() + rows[i] * D, 1, D, D, param(m.shared_head_norm), eps, hn.data() + i * D,
             D);
  out.logits = Tensor::empty(DType::f32, {int64_t(rows.size()), c.vocab_size});
  linear(hn.data(), int64_t(rows.size()), D, m.shared_head_head, out.logits.data<float>(),
         c.vocab_size);
  return out;
}

void Model::fill_cache_synthetic(int seq, int64_t depth, uint32_t seed) {
  if (!world_->is_root()) throw std::logic_error("fill_cache_synthetic on a worker rank");
  cache_.reserve(seq, depth);
  if (world_->size() > 1) {
    std::vector<int64_t> words{depth, int64_t(seed)};
    const std::vector<int64_t> d = describe_entries({BatchEntry{seq, {}}}, {cache_.length(seq)});
    words.insert(words.end(), d.begin(), d.end());
    send_step(Step::fill, words, {});
  }
  if (cache_.group(seq) == place_.group) fill_step(seq, depth, seed);
}

void Model::fill_step(int seq, int64_t depth, uint32_t seed) {
  const ModelConfig& c = config_;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t C = c.kv_lora_rank, R = c.qk_rope_head_dim;
  std::vector<float> row(static_cast<size_t>(std::max<int64_t>(C, kIndexerDim)));
  const int64_t from = cache_.length(seq), mtp_from = cache_.mtp_length(seq);
  for (int l = 0; l < cache_.layout().n_layers; ++l)
    for (int64_t s = l < c.num_hidden_layers ? from : mtp_from; s < depth; ++s) {
      for (auto& v : row) v = nd(rng);
      encode_latent_row(cache_.layout().latent_dtype, row.data(), C, cache_.c_row(l, seq, s));
      encode_latent_row(cache_.layout().rope_dtype, row.data(), R, cache_.k_pe_row(l, seq, s));
      if (c.has_indexer) {
        if (options_.indexer_fp8) {
          uint8_t* t = cache_.indexer_token(l, seq, s);
          float scale = 0.01f;
          quantize_fp8_blocks(row.data(), 1, true, t, &scale);
          std::memcpy(t + kIndexerDim, &scale, 4);
        } else {
          std::memcpy(cache_.indexer_key_f32(l, seq, s), row.data(), kIndexerDim * 4);
        }
      }
    }
  cache_.set_length(seq, depth);
  if (cache_.layout().n_layers > c.num_hidden_layers) cache_.set_mtp_length(seq, depth);
}

}  // namespace dsinfer
