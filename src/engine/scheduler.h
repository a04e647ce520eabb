// The step policy: which sequences run in the next forward and with how many tokens.
//
// Each step takes, within max_batch_tokens tokens and max_running admitted sequences:
//  1. one decode token for every admitted sequence whose prompt is computed (in priority order);
//     when the budget has no block for one, the lowest-priority, newest admitted sequence is
//     preempted (its blocks freed, back to the waiting queue, recomputed later);
//  2. the next prompt chunk of admitted sequences still computing their prompts (chunked
//     prefill: long prompts never stall running decodes for a whole prefill);
//  3. new sequences from the waiting queue, by priority then arrival, while their prompt's
//     blocks fit (after the prefix cache's hit): admission reserves every block of the prompt.
// A chunk ends on an MHA segment boundary when it can, so the MHA form's key expansion is paid
// once per segment (results do not depend on it: the form is per token).
#pragma once

#include <cstdint>
#include <vector>

#include "engine/sequence_state.h"
#include "model/model.h"

namespace dsinfer {

struct SchedulerOptions {
  int max_running = 16;
  int64_t max_batch_tokens = 2048;
  bool prefix_cache = true;
  // MTP drafts: block keys also cover the next token (see prefix_cache.h).
  bool speculative = false;
};

struct ScheduledChunk {
  SequenceState* s = nullptr;
  // tokens[s->computed, s->computed + n_tokens) run this step; a decode with drafts runs the
  // pending token then s->drafts (n_tokens = 1 + drafts).
  int64_t n_tokens = 0;
};

struct StepPlan {
  std::vector<ScheduledChunk> chunks;
  std::vector<SequenceState*> preempted;  // freed this step (now waiting again)
  std::vector<SequenceState*> failed;     // can never fit the budget: to be finished with an error
  int64_t tokens = 0;
};

class Scheduler {
 public:
  Scheduler(const Model& model, KvCache& cache, const SchedulerOptions& options);

  void add(SequenceState* s);     // to the waiting queue
  void remove(SequenceState* s);  // finished or cancelled, in any state: frees its blocks
  StepPlan schedule();

  int running() const { return int(running_.size()); }
  int waiting() const { return int(waiting_.size()); }
  int64_t preemptions() const { return preemptions_; }
  const SchedulerOptions& options() const { return options_; }

 private:
  bool admit(SequenceState* s);
  void preempt(SequenceState* s);
  int64_t chunk_size(const SequenceState* s, int64_t budget, bool have_prefill) const;
  static bool before(const SequenceState* a, const SequenceState* b);  // priority, arrival

  const Model& model_;
  KvCache& cache_;
  SchedulerOptions options_;
  std::vector<SequenceState*> running_;  // admitted, in priority order
  std::vector<SequenceState*> waiting_;  // in priority order
  int64_t preemptions_ = 0;
};

}  // namespace dsinfer
