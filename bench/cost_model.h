// A cost model of DeepSeek-V3.2 inference on CPU clusters (docs/distributed.md): from a model
// config, a hardware description and the kernel efficiencies `bench` measures, the time of a
// prefill (TTFT) and of a decode step (TPOT) under an EP / CP / DP layout. Each operator class
// costs max(FLOPs / (peak x efficiency), bytes / (DRAM x efficiency)); exchanges cost a latency
// per call plus bytes / network bandwidth, not overlapped with compute (conservative).
#pragma once

#include <string>

#include "bench_models.h"
#include "model/config.h"
#include "model/model.h"

namespace dsinfer::bench {

struct Hardware {
  std::string name;
  int ranks = 1;             // one rank per socket (or per node)
  double cores = 1;          // per rank
  double gflops_core = 100;  // bf16 peak per core (f32 FMA rate where there is no bf16 dot)
  double dram_gbs = 20;      // per rank, streaming reads
  double net_gbs = 10;       // per rank, each direction
  double net_us = 2;         // per exchange (latency of one collective step)
  double peak_gflops() const { return cores * gflops_core; }
};
// "ranks=64,cores=96,gflops=400,dram=500,net=50,lat=3" over `base` (unknown keys: an error).
Hardware parse_hardware(const std::string& spec, Hardware base);

// Measured fractions of the probe's peaks (bench project calibrates them on `mini`).
struct Efficiency {
  double gemm = 0.5;       // prefill projections and experts: of the bf16 peak
  double attention = 0.3;  // prefill attention (MHA or absorbed): of the bf16 peak
  double decode_attention = 0.3;
  double indexer = 0.3;  // lightning indexer scoring: of the bf16 peak
  double weights = 0.5;  // decode weight streaming: of the DRAM read figure
  double step_ms = 0;    // fixed cost per step (sampling, scheduling, small ops)
};

// "eff_gemm=0.7,eff_attention=0.5,eff_indexer=0.6,eff_weights=0.8" over `base`; other keys of
// the spec (hardware ones) are skipped.
struct Efficiency;
Efficiency parse_efficiency(const std::string& spec, Efficiency base);

struct Parallel {
  int ep = 1, cp = 1, dp = 1;
};

struct CostBreakdown {
  double compute_s = 0, memory_s = 0, attention_s = 0, indexer_s = 0, comm_s = 0, total_s = 0;
};

// The FLOP and byte counts the model uses.
struct ModelCounts {
  ModelConfig config;
  StepBytes bytes;           // decode weight bytes (shared + per expert)
  double dense_params = 0;   // per token, all layers: attention, indexer, dense MLPs, shared
                             // experts (weights every token multiplies)
  double expert_params = 0;  // one routed expert
  double head_params = 0;    // lm_head
  int moe_layers = 0;
  // MLA cache bytes per token and layer (latent + k_pe): bf16 by default (1,152 for V3.2); the
  // C8 cache (--kv-cache-dtype fp8 / int8) 656. The indexer's 132-byte FP8 keys come on top.
  double mla_cache_bytes = 0;
  MhaRegion mha;  // the automatic attention form's MHA region (segments of 512)
  // Whether prompt position `pos` of a `prompt`-token prompt runs in the MHA form.
  bool uses_mha(int64_t pos, int64_t prompt) const;
};
ModelCounts model_counts(const ModelConfig& c, const StepBytes& bytes);

// Prefill of `tokens` prompt tokens from an empty cache, on hw.ranks ranks laid out as `p`.
CostBreakdown prefill_cost(const ModelCounts& m, int64_t tokens, const Hardware& hw,
                           const Efficiency& e, const Parallel& p);
// One decode step of `batch` sequences at context `depth` (spread over the DP groups).
CostBreakdown decode_cost(const ModelCounts& m, int64_t depth, int batch, const Hardware& hw,
                          const Efficiency& e, const Parallel& p);

}  // namespace dsinfer::bench
