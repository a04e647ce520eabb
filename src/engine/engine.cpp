#include "engine/engine.h"

#include <algorithm>
#include <chrono>

#include "core/log.h"
#include "engine/logprobs.h"
#include "engine/prefix_cache.h"

namespace dsinfer {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

SchedulerOptions scheduler_options(const EngineOptions& o) {
  SchedulerOptions s;
  s.max_running = o.max_running;
  s.max_batch_tokens = o.max_batch_tokens;
  s.prefix_cache = o.prefix_cache;
  return s;
}

}  // namespace

Engine::Engine(std::unique_ptr<Model> model, std::optional<Tokenizer> tokenizer,
               const EngineOptions& options)
    : model_(std::move(model)),
      tokenizer_(std::move(tokenizer)),
      options_(options),
      context_limit_(
          options.context_limit > 0
              ? std::min<int64_t>(options.context_limit, model_->config().max_position_embeddings)
              : model_->config().max_position_embeddings),
      scheduler_(*model_, model_->cache(), scheduler_options(options)) {
  if (options.max_queue < 1) throw std::invalid_argument("max_queue must be at least 1");
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() {
  shutdown(false);
}

void Engine::wake() {
  { std::lock_guard<std::mutex> lock(mutex_); }
  wake_.notify_all();
}

RequestHandle Engine::submit(Request r) {
  const ModelConfig& c = model_->config();
  auto bad = [](const std::string& what) { throw std::invalid_argument(what); };
  if (r.prompt.empty()) bad("the prompt is empty");
  for (size_t i = 0; i < r.prompt.size(); ++i)
    if (r.prompt[i] < 0 || r.prompt[i] >= c.vocab_size)
      bad("prompt token " + std::to_string(i) + " has id " + std::to_string(r.prompt[i]) +
          ", outside the vocabulary [0, " + std::to_string(c.vocab_size) + ")");
  for (int32_t t : r.stop_tokens)
    if (t < 0 || t >= c.vocab_size)
      bad("stop token id " + std::to_string(t) + " is outside the vocabulary");
  if (r.max_tokens <= 0)
    bad("max_tokens must be positive (got " + std::to_string(r.max_tokens) + ")");
  if (r.top_logprobs < 0 || r.top_logprobs > kMaxTopLogprobs)
    bad("top_logprobs must be in [0, " + std::to_string(kMaxTopLogprobs) + "] (got " +
        std::to_string(r.top_logprobs) + ")");
  validate_sampling_params(r.sampling);
  for (const std::string& s : r.stop)
    if (!s.empty() && !tokenizer_) bad("stop strings need the engine to have a tokenizer");
  const int64_t n = int64_t(r.prompt.size());
  if (n >= context_limit_)
    bad("the prompt (" + std::to_string(n) + " tokens) does not fit the context of " +
        std::to_string(context_limit_) + " tokens (the prompt and at least one generated token)");
  const KvCache& cache = model_->cache();
  if ((n + 1 + kKvBlockTokens - 1) / kKvBlockTokens > cache.capacity_blocks())
    bad("the prompt (" + std::to_string(n) + " tokens) does not fit the whole KV cache budget of " +
        std::to_string(cache.capacity_tokens()) + " tokens");

  std::optional<StreamingDecoder> dec;
  if (tokenizer_) dec.emplace(*tokenizer_, true);
  std::unique_lock<std::mutex> lock(mutex_);
  if (stopping_) throw EngineBusy("the engine is shutting down");
  const int64_t queued = int64_t(inbox_.size()) + stats_.waiting;
  if (queued >= options_.max_queue)
    throw EngineBusy("the queue is full (" + std::to_string(queued) + " requests wait)");
  const uint64_t id = next_id_++;
  auto ch = std::make_shared<RequestChannel>(id, [this] { wake(); });
  auto s =
      std::make_unique<SequenceState>(id, id, std::move(r), ch, int(c.vocab_size), std::move(dec));
  s->submitted_s = now_s();
  inbox_.push_back(std::move(s));
  idle_now_ = false;
  ++stats_.requests_submitted;
  lock.unlock();
  wake_.notify_all();
  return RequestHandle(ch);
}

void Engine::shutdown(bool drain) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!stopping_) drain_ = drain;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Engine::wait_idle(double timeout_s) const {
  std::unique_lock<std::mutex> lock(mutex_);
  return idle_.wait_for(lock, std::chrono::duration<double>(timeout_s),
                        [&] { return idle_now_ && inbox_.empty(); });
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void Engine::check_cache_consistency() const {
  std::lock_guard<std::mutex> lock(step_mutex_);
  model_->cache().pool().check_consistency();
}

void Engine::loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] {
        if (stopping_ || !inbox_.empty()) return true;
        // Work to do: a live request that can run or was cancelled.
        return !live_.empty();
      });
      if (stopping_ && !drain_) {
        lock.unlock();
        take_new_requests();
        while (!live_.empty()) finish(live_.back().get(), FinishReason::cancelled);
        std::lock_guard<std::mutex> relock(mutex_);
        stats_ = local_;
        idle_now_ = true;
        idle_.notify_all();
        return;
      }
      if (stopping_ && drain_ && inbox_.empty() && live_.empty()) return;
    }
    {
      std::lock_guard<std::mutex> step_lock(step_mutex_);
      try {
        step();
      } catch (const std::exception& e) {
        // A forward that failed leaves its batch's caches undefined: fail every live request.
        log_error("engine step failed: %s", e.what());
        fail_all(e.what());
      }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    local_.running = scheduler_.running();
    local_.waiting = scheduler_.waiting();
    const BlockPool& pool = model_->cache().pool();
    local_.cache_blocks = pool.capacity();
    local_.cache_blocks_free = pool.available();
    local_.cache_blocks_cached = pool.cached();
    local_.prefix_lookups = pool.stats().lookups;
    local_.prefix_hits = pool.stats().hits;
    local_.preemptions = scheduler_.preemptions();
    local_.requests_submitted = stats_.requests_submitted;
    stats_ = local_;
    idle_now_ = live_.empty() && inbox_.empty();
    if (idle_now_) idle_.notify_all();
  }
}

void Engine::take_new_requests() {
  std::deque<std::unique_ptr<SequenceState>> fresh;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    fresh.swap(inbox_);
  }
  for (auto& s : fresh) {
    scheduler_.add(s.get());
    live_.push_back(std::move(s));
  }
}

void Engine::cancel_requested() {
  for (size_t i = 0; i < live_.size();) {
    SequenceState* s = live_[i].get();
    if (s->channel->cancel_requested())
      finish(s, FinishReason::cancelled);  // removes it from live_
    else
      ++i;
  }
}

void Engine::finish(SequenceState* s, FinishReason reason, const std::string& error,
                    std::optional<GeneratedToken> end_token) {
  RequestEvent ev;
  ev.kind = RequestEvent::Kind::finished;
  if (end_token) ev.tokens.push_back(std::move(*end_token));
  ev.reason = reason;
  ev.error = error;
  if (s->decoder && reason != FinishReason::stop) {
    bool hit = false;
    ev.text = s->stops.push(s->decoder->flush(), &hit);
    if (!hit) ev.text += s->stops.flush();
  }
  ev.usage.prompt_tokens = s->prompt_len;
  ev.usage.cached_tokens = std::max<int64_t>(0, s->cached_tokens);
  ev.usage.completion_tokens = s->generated;
  const double t = now_s();
  ev.times.queued_s = s->scheduled_s >= 0 ? s->scheduled_s - s->submitted_s : t - s->submitted_s;
  ev.times.ttft_s = s->first_token_s >= 0 ? s->first_token_s - s->submitted_s : 0;
  ev.times.total_s = t - s->submitted_s;
  log_debug("request %llu%s%s: prompt %lld (cached %lld), completion %lld, ttft %.3f s, %s",
            (unsigned long long)s->id, s->req.tag.empty() ? "" : " ", s->req.tag.c_str(),
            (long long)s->prompt_len, (long long)ev.usage.cached_tokens, (long long)s->generated,
            ev.times.ttft_s, finish_reason_name(reason));
  scheduler_.remove(s);
  s->channel->push(std::move(ev));
  ++local_.requests_finished;
  for (size_t i = 0; i < live_.size(); ++i)
    if (live_[i].get() == s) {
      live_.erase(live_.begin() + long(i));
      break;
    }
}

void Engine::fail_all(const std::string& error) {
  while (!live_.empty()) finish(live_.back().get(), FinishReason::error, error);
}

// Samples the next token of `s` from its logits row and streams it (or finishes the request).
void Engine::emit_sample(SequenceState* s, const float* logits) {
  const ModelConfig& c = model_->config();
  const int32_t tok = s->sampler.sample(logits);
  ++s->generated;
  if (s->first_token_s < 0) s->first_token_s = now_s();
  const auto& st = s->req.stop_tokens;
  const bool eos = !s->req.ignore_eos && c.is_eos(tok);
  const bool stop_token = std::find(st.begin(), st.end(), tok) != st.end();
  if (eos || stop_token) {
    // Not part of the output; its logits still reach a caller who asked for them, in the
    // finished event.
    GeneratedToken end;
    end.token = tok;
    if (s->req.return_logits) end.logits.assign(logits, logits + c.vocab_size);
    return finish(
        s, eos ? FinishReason::eos : FinishReason::stop, {},
        s->req.return_logits ? std::optional<GeneratedToken>(std::move(end)) : std::nullopt);
  }
  s->sampler.accept(tok);
  s->tokens.push_back(tok);
  RequestEvent ev;
  GeneratedToken gt;
  gt.token = tok;
  if (s->req.logprobs || s->req.top_logprobs > 0)
    token_logprobs(logits, int(c.vocab_size), s->req.top_logprobs, &gt);
  if (s->req.return_logits) gt.logits.assign(logits, logits + c.vocab_size);
  ev.tokens.push_back(std::move(gt));
  bool hit = false;
  if (s->decoder) ev.text = s->stops.push(s->decoder->push(tok), &hit);
  s->channel->push(std::move(ev));
  if (hit) return finish(s, FinishReason::stop);
  if (s->generated >= s->req.max_tokens || int64_t(s->tokens.size()) >= context_limit_)
    return finish(s, FinishReason::length);
}

void Engine::step() {
  const double t0 = now_s();
  take_new_requests();
  cancel_requested();
  StepPlan plan = scheduler_.schedule();
  for (SequenceState* s : plan.failed)
    finish(s, FinishReason::error,
           "the request needs " + std::to_string(s->tokens.size() + 1) +
               " tokens of KV cache; the whole budget holds " +
               std::to_string(model_->cache().capacity_tokens()));
  if (plan.chunks.empty()) {
    // Nothing can run now (everything waits for blocks held by nobody would be a bug): sleep
    // until something changes.
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.wait_for(lock, std::chrono::milliseconds(50),
                   [&] { return stopping_ || !inbox_.empty(); });
    return;
  }

  std::vector<BatchEntry> batch;
  batch.reserve(plan.chunks.size());
  bool decode_only = true;
  for (const ScheduledChunk& ch : plan.chunks) {
    SequenceState* s = ch.s;
    if (s->scheduled_s < 0) {
      s->scheduled_s = t0;
      local_.prompt_tokens += s->prompt_len;
      local_.cached_prompt_tokens += s->cached_tokens;
    }
    BatchEntry e;
    e.seq = s->seq;
    e.tokens.assign(s->tokens.begin() + s->computed, s->tokens.begin() + s->computed + ch.n_tokens);
    e.no_logits = s->computed + ch.n_tokens < int64_t(s->tokens.size());
    e.prompt_len = s->prompt_len;
    decode_only &= s->computed >= s->prompt_len && ch.n_tokens == 1;
    batch.push_back(std::move(e));
  }
  const double t1 = now_s();
  ForwardOutput out = model_->forward(batch);
  const double t2 = now_s();

  const int64_t vocab = model_->config().vocab_size;
  for (size_t i = 0; i < plan.chunks.size(); ++i) {
    SequenceState* s = plan.chunks[i].s;
    const int64_t n = plan.chunks[i].n_tokens;
    (s->computed >= s->prompt_len ? local_.decode_tokens : local_.prefill_tokens) += n;
    s->computed += n;
    if (scheduler_.options().prefix_cache)
      s->registered = register_full_blocks(*model_, model_->cache(), s->seq, s->tokens,
                                           s->prompt_len, s->computed, s->registered);
    if (s->req.report_prefill && s->computed <= s->prompt_len) {
      RequestEvent ev;
      ev.kind = RequestEvent::Kind::prefill;
      ev.prefilled = s->computed;
      ev.usage.prompt_tokens = s->prompt_len;
      s->channel->push(std::move(ev));
    }
    if (out.first_row[i] >= 0) emit_sample(s, out.logits.data<float>() + out.first_row[i] * vocab);
  }
  const double t3 = now_s();
  ++local_.steps;
  local_.forward_s += t2 - t1;
  local_.overhead_s += (t1 - t0) + (t3 - t2);
  if (decode_only) {
    ++local_.decode_steps;
    local_.decode_step_tokens += int64_t(plan.chunks.size());
    local_.decode_step_s += t3 - t0;
  }
}

}  // namespace dsinfer
