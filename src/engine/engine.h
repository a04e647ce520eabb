// The serving engine: owns the model (and so its caches) and one scheduler thread that runs many
// requests at once. submit() is thread-safe and returns at once; every step the thread builds one
// forward batch (a decode token per running sequence plus prompt chunks, see scheduler.h), samples
// every sequence that produced a logits row and streams the results to the requests' handles.
//
// A request's tokens do not depend on what else runs: the forward is batch-invariant (see
// Model::forward), each request has its own seeded sampler, and a preempted request is recomputed
// from its prompt and generated tokens, so it continues exactly as if never preempted.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "engine/request.h"
#include "engine/request_handle.h"
#include "engine/scheduler.h"
#include "engine/sequence_state.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace dsinfer {

struct EngineOptions {
  int max_running = 16;             // sequences admitted at once
  int64_t max_batch_tokens = 2048;  // tokens per forward step
  int64_t max_queue = 4096;         // requests waiting beyond which submit() refuses more
  bool prefix_cache = true;
  int64_t context_limit = 0;  // 0: the model's max_position_embeddings
  // Speculative decoding with the checkpoint's MTP module: draft tokens verified per step (0:
  // off; K > 1 chains the MTP module on its own drafts). See docs/speculative.md.
  int speculative_draft_tokens = 0;
};

// submit() refuses a request because the queue is full (the request itself is fine).
struct EngineBusy : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct EngineStats {
  int64_t steps = 0, requests_submitted = 0, requests_finished = 0;
  int64_t prefill_tokens = 0, decode_tokens = 0;        // tokens run through the forward
  int64_t prompt_tokens = 0, cached_prompt_tokens = 0;  // of admitted requests (first time)
  int64_t preemptions = 0;
  int64_t prefix_lookups = 0, prefix_hits = 0;       // in blocks
  double forward_s = 0, overhead_s = 0;              // in steps: the forward, everything else
  int64_t decode_steps = 0, decode_step_tokens = 0;  // steps with decode tokens only
  double decode_step_s = 0;
  int running = 0, waiting = 0;
  int64_t cache_blocks = 0, cache_blocks_free = 0, cache_blocks_cached = 0;
  int64_t spec_draft_tokens = 0, spec_accepted_tokens = 0;  // verified drafts, accepted ones
};

class Engine {
 public:
  // Without a tokenizer, events carry no text and stop strings are refused.
  Engine(std::unique_ptr<Model> model, std::optional<Tokenizer> tokenizer,
         const EngineOptions& options = {});
  ~Engine();  // shutdown(false)
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request. Throws std::invalid_argument naming the problem (empty prompt, token id
  // out of range, a prompt that does not fit the context or the whole cache budget, bad sampling
  // parameters, max_tokens <= 0, ...) and EngineBusy when max_queue requests already wait.
  RequestHandle submit(Request request);

  // Stops accepting requests; with drain, runs every accepted one to its end, otherwise cancels
  // them; then joins the thread. Idempotent.
  void shutdown(bool drain);

  // As of the last finished step.
  EngineStats stats() const;
  // Waits until no request is queued or running and the stats cover every step so far; false
  // after timeout_s.
  bool wait_idle(double timeout_s) const;
  const Model& model() const { return *model_; }
  const EngineOptions& options() const { return options_; }
  int64_t context_limit() const { return context_limit_; }
  // Checks that every cache block is accounted for (for tests): throws std::logic_error.
  void check_cache_consistency() const;

 private:
  void loop();
  void step();
  void take_new_requests();
  void cancel_requested();
  void finish(SequenceState* s, FinishReason reason, const std::string& error = {},
              std::optional<GeneratedToken> end_token = std::nullopt);
  bool emit_token(SequenceState* s, int32_t token, const float* logits);
  bool verify_drafts(SequenceState* s, const float* rows);
  void update_drafts(const std::vector<ScheduledChunk>& chunks, const std::vector<int64_t>& start,
                     const std::vector<int64_t>& row0, const ForwardOutput& out);
  void fail_all(const std::string& error);
  void wake();

  std::unique_ptr<Model> model_;
  std::optional<Tokenizer> tokenizer_;
  EngineOptions options_;
  int64_t context_limit_;
  Scheduler scheduler_;

  mutable std::mutex mutex_;  // guards inbox_, stopping_, drain_, stats_, next_id_
  std::condition_variable wake_;
  mutable std::condition_variable idle_;
  bool idle_now_ = true;
  std::deque<std::unique_ptr<SequenceState>> inbox_;
  bool stopping_ = false, drain_ = false;
  uint64_t next_id_ = 1;
  EngineStats stats_;

  // Scheduler-thread state (step_mutex_ held while a step runs).
  mutable std::mutex step_mutex_;
  std::vector<std::unique_ptr<SequenceState>> live_;
  std::vector<std::unique_ptr<SequenceState>> done_;  // finished this step, freed at its end
  EngineStats local_;
  std::thread thread_;
};

}  // namespace dsinfer
