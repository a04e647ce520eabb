// The DeepSeek-V3.2 model (spec §3–4) over a memory-mapped HF checkpoint: MLA + DSA + MoE, the
// MTP draft head, and paged caches for many sequences. One forward() call takes a batch of
// (sequence, new tokens) entries, mixing prefill chunks of any size and decode steps: the tokens
// of all entries go through every projection and expert together (weights are read once per
// step); attention and the indexer run per sequence over that sequence's cache.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"
#include "dist/communicator.h"
#include "dist/layout.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/kv_cache.h"

namespace dsinfer {

enum class Precision {
  bf16,  // bf16 activations into the projections and a bf16 MLA cache; f32 norms/softmax/router
  f32,   // the same graph in f32: the reference mode
};

enum class AttentionMode {
  sparse,  // DSA: the lightning indexer selects index_topk keys (dense while a sequence is short)
  dense,   // plain causal MLA over every key, indexer skipped (the baseline; V3 checkpoints)
};

// The form attention is computed in (the same math, different rounding and cost): absorbed MLA
// over the latent cache, or non-absorbed MHA over per-head keys and values expanded from it
// (cheaper for prompt chunks of up to several thousand tokens). The form is a property of each
// token, never of the batch it happens to run in (see Model::uses_mha): `automatic` gives MHA to
// the prompt tokens of mha_segment-token segments below a position limit found by cost, when the
// prompt has enough tokens in that segment for the MHA form to pay (a cached prefix's tail, e.g.),
// `mha` to every prompt token, `absorbed` to none. Decode tokens are always absorbed.
enum class AttentionForm { automatic, absorbed, mha };
// "auto", "absorbed" or "mha" (anything else: std::invalid_argument naming the value).
AttentionForm attention_form_from_name(const std::string& name);

// How the MLA latent cache stores its rows (kernels/kv_cache_view.h): `automatic` as the
// precision computes (f32 or bf16); bf16; or 8-bit codes with one f32 scale per 128 values, FP8
// e4m3 or INT8 ("C8": 656 bytes per token and layer for V3.2 instead of 1,152), k_pe then in
// bf16. The indexer's key cache is FP8 as the model defines it, whatever this says.
enum class KvCacheDtype { automatic, bf16, fp8, int8 };
// "auto", "bf16", "fp8" or "int8" (anything else: std::invalid_argument naming the value).
KvCacheDtype kv_cache_dtype_from_name(const std::string& name);

// The automatic form's MHA region for a config (see Model::uses_mha): prompt positions below
// `limit` (a multiple of `segment`) may use MHA; segment i does when the prompt has at least
// min_tokens[i] tokens in it. sparse: DSA in use (the absorbed form then reads index_topk keys).
struct MhaRegion {
  int64_t limit = 0;
  std::vector<int64_t> min_tokens;
};
MhaRegion mha_region(const ModelConfig& c, bool sparse, int64_t segment);

struct ModelOptions {
  Precision precision = Precision::bf16;
  bool indexer_fp8 = true;  // false: the indexer runs on f32 q/k with unit scales
  AttentionMode attention = AttentionMode::sparse;
  AttentionForm attention_form = AttentionForm::automatic;
  int64_t mha_segment = 512;  // automatic form: prompt segment size (a multiple of 64)
  // Quantize the activations entering every FP8 linear layer to FP8 (per 128-element group,
  // ue8m0 scales) as the release's inference code does, instead of keeping them bf16 / f32
  // (weight-only FP8, the default; see docs/checkpoints.md for what it changes).
  bool fp8_activations = false;
  KvCacheDtype kv_cache_dtype = KvCacheDtype::automatic;
  int64_t kv_cache_tokens = 0;  // the cache budget; 0: kv_cache_bytes, else the default
  double kv_cache_gib = 0;      // the budget in GiB when kv_cache_tokens is 0 (0: the default,
                                // half the free memory: default_kv_cache_tokens())
  // How the ranks of an MPI job share the model (src/dist/layout.h; one process: all 1).
  dist::Layout dist;
  // This process alone, even inside an MPI job (a baseline measured next to a distributed run).
  bool one_process = false;
  // Context parallelism: gather the cache rows while the query projections run (false: a
  // blocking gather before them, which bench dist times to measure the overlap).
  bool cp_overlap = true;
};

// Seconds spent per operator class since the last reset (for `bench model` and `eval -v`).
struct OpTimes {
  // projections: the MLA q/kv/o GEMMs and absorption; indexer_prolog: the indexer's projections,
  // norm, RoPE, Hadamard and FP8 quantization; indexer: scores + top-k; cache: new rows in the
  // cache format, written or (context parallelism) gathered; attention: the attention kernels.
  double projections = 0, indexer_prolog = 0, indexer = 0, cache = 0, attention = 0, moe = 0,
         head = 0, other = 0;
  double total() const {
    return projections + indexer_prolog + indexer + cache + attention + moe + head + other;
  }
  // Routed experts run (one per layer and expert with at least one token) and their weight bytes.
  int64_t experts_run = 0;
  double expert_bytes = 0;
  // Expert parallelism: (row, remote EP rank) dispatches and (row, remote expert) pairs sent by
  // this rank, and MoE exchanges joined (what the dispatch volume formula counts).
  int64_t ep_remote_rows = 0, ep_remote_pairs = 0, ep_exchanges = 0;
  // Adds another step's times (the counters too).
  void add(const OpTimes& o) {
    projections += o.projections, indexer_prolog += o.indexer_prolog, indexer += o.indexer;
    cache += o.cache, attention += o.attention, moe += o.moe, head += o.head, other += o.other;
    experts_run += o.experts_run, expert_bytes += o.expert_bytes;
    ep_remote_rows += o.ep_remote_rows, ep_remote_pairs += o.ep_remote_pairs;
    ep_exchanges += o.ep_exchanges;
  }
  // What was added since `before` (a snapshot of the same counters).
  OpTimes since(const OpTimes& before) const {
    OpTimes d = *this;
    d.projections -= before.projections, d.indexer -= before.indexer;
    d.indexer_prolog -= before.indexer_prolog, d.cache -= before.cache;
    d.attention -= before.attention, d.moe -= before.moe, d.head -= before.head;
    d.other -= before.other, d.experts_run -= before.experts_run;
    d.expert_bytes -= before.expert_bytes, d.ep_remote_rows -= before.ep_remote_rows;
    d.ep_remote_pairs -= before.ep_remote_pairs, d.ep_exchanges -= before.ep_exchanges;
    return d;
  }
};

inline constexpr int64_t kAllPrompt = INT64_MAX;

struct BatchEntry {
  int seq = 0;
  std::vector<int32_t> tokens;  // new tokens, appended after the sequence's cached ones
  bool all_logits = false;      // logits for every new token, else only the last
  bool no_logits = false;       // no logits at all (a prompt chunk that is not the last)
  // Positions below prompt_len are prompt tokens (their attention form may be MHA), the rest
  // are generated ones (always absorbed).
  int64_t prompt_len = kAllPrompt;
};

struct ForwardOutput {
  Tensor logits;                   // [rows, vocab] f32, entries in order
  std::vector<int64_t> first_row;  // logits row of each entry's first output (-1: none)
  Tensor hidden;                   // [T_total, hidden] final-normed states (the MTP input)
};

class Model {
 public:
  // Reads config.json and the safetensors in `dir`, checks every tensor, maps the weights.
  // In an MPI job (dist::world() has several ranks) every rank calls it: the ranks check that
  // they load the same checkpoint with the same options (a clear error on every rank otherwise),
  // agree on one cache budget, and each keeps only its share of the routed experts.
  static std::unique_ptr<Model> load(const std::string& dir, const ModelOptions& options = {});
  ~Model();

  // Distributed jobs: rank 0 (the root) drives the model through the calls below, which it
  // broadcasts to the other ranks as steps; every other rank calls run_worker(), which executes
  // those steps until the root's Model is destroyed. One process: the root, no workers.
  bool is_root() const { return world_->is_root(); }
  void run_worker();
  dist::Communicator& world() { return *world_; }
  // Distributed steps: whether forward() returns ForwardOutput::hidden (the MTP drafts' input).
  // Off, only the rows with logits are sent to the root and `hidden` is left undefined; one
  // process always returns it. On by default; an engine that does not draft turns it off.
  void set_hidden_outputs(bool on) { hidden_outputs_ = on; }
  // This rank's exchanges since the last reset, over all its communicators.
  dist::Traffic traffic() const;
  void reset_traffic();
  // Routed experts this rank holds: [first, second).
  std::pair<int64_t, int64_t> local_experts() const { return {expert_begin_, expert_end_}; }

  const ModelConfig& config() const { return config_; }
  const ModelOptions& options() const { return options_; }
  const CheckpointWeights& weights() const { return weights_; }

  // A sequence in attention group `group` (data-parallel attention: its cache lives on that group's
  // ranks; one process or no --dp: group 0).
  int create_sequence(int group = 0) { return cache_.create_sequence(group); }
  int attention_groups() const { return options_.dist.dp; }
  void free_sequence(int seq) { cache_.free_sequence(seq); }
  int64_t sequence_length(int seq) const { return cache_.length(seq); }
  // Forgets the tokens of `seq` past `length` (e.g. where a new chat turn diverges).
  void truncate_sequence(int seq, int64_t length) { cache_.truncate(seq, length); }

  // Runs a batch. Each token's results are bitwise independent of the rest of the batch, of how
  // its sequence was cut into chunks and of the thread count. Throws std::invalid_argument for
  // bad entries and KvCacheFull when the budget cannot hold them (nothing is computed then).
  ForwardOutput forward(const std::vector<BatchEntry>& batch);

  // Whether the prompt token at `pos` of a sequence whose prompt has prompt_len tokens is
  // computed in the MHA form: a function of the two alone, the same for every token of an
  // mha_segment (so for every 64-token cache block).
  bool uses_mha(int64_t pos, int64_t prompt_len) const;
  // The automatic form's MHA region: prompt positions below this limit (a multiple of
  // mha_segment; 0: never MHA).
  int64_t mha_limit() const { return mha_limit_; }
  // The automatic form's MHA region: segment i below mha_limit is MHA when the prompt has at
  // least this many tokens in it (at most mha_segment: a whole segment always is).
  int64_t mha_min_tokens(int64_t segment) const { return mha_min_tokens_[size_t(segment)]; }

  // MTP draft (spec §4) for one sequence: given the main model's final-normed hidden states of
  // its newest tokens [n, hidden] and the tokens that followed each of them, returns the draft
  // logits [n, vocab] of the token after those. The MTP layer's cache is the last layer of the
  // sequence's blocks; its positions trail the main layers' (cache().mtp_length).
  Tensor mtp_forward(int seq, const float* hidden, const std::vector<int32_t>& next_tokens);
  bool has_mtp() const { return !weights_.mtp().empty(); }
  // The same for several sequences at once (the MTP layer's weights are read once): entry e's
  // n rows of hidden states (row stride hidden_size) with the token after each; its rows go to
  // the MTP positions from cache().mtp_length(seq) on. Logits of every row (all_logits) or of
  // each entry's last row; `hidden` is the MTP layer's output of every row (before its head's
  // norm), the input a chained draft takes in place of the main model's hidden state.
  struct MtpEntry {
    int seq = 0;
    const float* hidden = nullptr;
    std::vector<int32_t> next_tokens;
  };
  struct MtpOutput {
    Tensor logits;                   // [rows, vocab]
    Tensor hidden;                   // [T, hidden_size]
    std::vector<int64_t> first_row;  // first logits row / hidden row of each entry
    std::vector<int64_t> first_token;
  };
  MtpOutput mtp_forward_batch(const std::vector<MtpEntry>& batch, bool all_logits);

  // Fills `seq`'s caches up to `depth` tokens with synthetic keys (for depth benchmarks, like
  // llama-bench -d): every layer's rows are random, so attention and the indexer cost what they
  // would at that depth (the MTP layer's too, when the cache has it).
  void fill_cache_synthetic(int seq, int64_t depth, uint32_t seed);

  OpTimes& op_times() { return times_; }
  const OpTimes& op_times() const { return times_; }
  KvCache& cache() { return cache_; }
  const KvCache& cache() const { return cache_; }
  size_t cache_bytes() const { return cache_.bytes_reserved(); }

 private:
  Model(ModelConfig config, ModelOptions options, SafetensorsCheckpoint checkpoint);
  struct AttentionScratch;
  struct Batch;  // per-call scratch, model.cpp
  struct MoeRows;
  enum class Step : int64_t;
  void send_step(Step step, const std::vector<int64_t>& words, const std::vector<float>& floats);
  std::vector<int64_t> describe_entries(const std::vector<BatchEntry>& batch,
                                        const std::vector<int64_t>& starts) const;
  std::vector<BatchEntry> mirror_entries(const std::vector<int64_t>& words, size_t& at,
                                         std::vector<int64_t>& starts, std::vector<int>& groups);
  // The step's tokens (indices in step order) that `rank` computes attention for.
  std::vector<int64_t> step_tokens(const std::vector<BatchEntry>& batch,
                                   const std::vector<int>& groups, int rank) const;
  Batch make_batch(const std::vector<BatchEntry>& batch, const std::vector<int64_t>& starts,
                   const std::vector<int>& groups) const;
  ForwardOutput forward_step(const std::vector<BatchEntry>& batch,
                             const std::vector<int64_t>& starts, const std::vector<int>& groups,
                             bool hidden_outputs);
  MtpOutput mtp_step(const std::vector<MtpEntry>& batch, const std::vector<int64_t>& starts,
                     bool all_logits);
  void fill_step(int seq, int64_t depth, uint32_t seed);
  void setup_distribution();
  void write_cache_rows(KvCache& cache, int cache_layer, const std::vector<int32_t>& seqs,
                        const std::vector<int32_t>& positions, const uint8_t* rows,
                        size_t row_bytes) const;
  // Returns whether it also ran the shared expert into shared_out (decode: one task beside the
  // routed ones); when false the caller runs it.
  bool moe_local(const MoeWeights& moe, const float* x, int64_t rows, const int32_t* ids,
                 const float* gw, float* out, float* shared_out = nullptr);
  void moe_expert_parallel(const MoeWeights& moe, const float* x, int64_t rows, const int32_t* ids,
                           const float* gw, float* out);
  void run_mlp(const MlpWeights& m, const float* x, int64_t rows, float* y);
  void count_expert_run(const MlpWeights& m);
  void decoder_layer(KvCache& cache, int cache_layer, const LayerWeights& w, Batch& b);
  void attention(KvCache& cache, int cache_layer, const AttentionWeights& w, Batch& b,
                 const float* x, float* out);
  // attention()'s stages (spec §3.1-3.4), in order; results in b.attn.
  void mla_kv_prolog(const AttentionWeights& w, Batch& b, const float* x);
  void indexer_key_prolog(const IndexerWeights& iw, Batch& b, const float* x);
  std::unique_ptr<dist::PendingExchange> store_cache_rows(KvCache& cache, int cache_layer, Batch& b,
                                                          bool has_indexer);
  void mla_query_prolog(const AttentionWeights& w, Batch& b, const float* x);
  bool indexer_select(KvCache& cache, int cache_layer, const IndexerWeights& iw, Batch& b,
                      const float* x);
  void attention_core(KvCache& cache, int cache_layer, const AttentionWeights& w, Batch& b,
                      const int32_t* idx);
  void indexer_rope(float* v, int64_t tokens, int64_t heads, const int32_t* positions) const;
  void mlp(const LayerWeights& w, Batch& b, const float* x, float* out);
  int64_t compute_mha_limit();  // also fills mha_min_tokens_
  void mha_attention(KvCache& cache, int cache_layer, const AttentionWeights& w, const Batch& b,
                     const int32_t* idx, const float* q, float* o);
  void absorbed_attention(KvCache& cache, int cache_layer, const AttentionWeights& w,
                          const Batch& b, const std::vector<int64_t>& rows, const int32_t* idx,
                          const float* q, float* o);
  void linear(const float* x, int64_t rows, int64_t ldx, const LinearWeight& w, float* y,
              int64_t ldy);
  void embed(const Tensor& table, const std::vector<int32_t>& tokens, float* out) const;

  ModelConfig config_;
  ModelOptions options_;
  SafetensorsCheckpoint checkpoint_;
  CheckpointWeights weights_;
  KvCache cache_;
  std::vector<float> inv_freq_;
  // f32 copies of the small parameter tensors (norm weights, biases), made once on first use
  // and keyed by the tensor's data, so hot paths never convert them again.
  const std::vector<float>& param(const Tensor& t);
  std::unordered_map<const void*, std::vector<float>> params_;
  int64_t mha_limit_ = 0;
  std::vector<int64_t> mha_min_tokens_;  // per segment below mha_limit_
  OpTimes times_;
  // Distribution (src/dist): the world, this rank's CP group, the replicas of its CP rank, and
  // its EP group; one process: the local communicator and no groups.
  dist::Communicator* world_ = nullptr;
  std::unique_ptr<dist::Communicator> own_world_;  // one_process
  std::unique_ptr<dist::Communicator> cp_comm_, replica_comm_, ep_comm_;
  int64_t expert_begin_ = 0, expert_end_ = 0;
  dist::RankPlace place_;  // this rank's attention group, CP rank and replica
  bool hidden_outputs_ = true;
};

}  // namespace dsinfer
