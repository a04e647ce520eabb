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
  s.speculative = o.speculative_draft_tokens > 0;
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
  if (options.speculative_draft_tokens < 0 || options.speculative_draft_tokens > 8)
    throw std::invalid_argument("draft tokens must be in [0, 8]");
  if (options.speculative_draft_tokens > 0 && !model_->has_mtp())
    throw std::invalid_argument(
        "speculative decoding with MTP: the checkpoint has no MTP module "
        "(num_nextn_predict_layers)");
  if (options.speculative_draft_tokens > 0 && model_->attention_groups() > 1)
    throw std::invalid_argument(
        "speculative decoding with data-parallel attention (--dp) is not supported");
  // Only drafting reads the hidden states: a distributed model need not collect them.
  model_->set_hidden_outputs(options.speculative_draft_tokens > 0);
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
  if ((n + 1 + kKvBlockTokens - 1) / kKvBlockTokens > cache.group_capacity_blocks())
    bad("the prompt (" + std::to_string(n) + " tokens) does not fit the whole KV cache budget of " +
        std::to_string(cache.group_capacity_tokens()) + " tokens");

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
    // submit() counts the queue as inbox + the published waiting count: until the step ends and
    // publishes the scheduler's own count, the requests moved out of the inbox still wait.
    stats_.waiting += int(fresh.size());
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
  ev.usage.draft_tokens = s->drafted;
  ev.usage.accepted_tokens = s->accepted;
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
  // Kept alive until the step ends (callers may still hold the pointer); `finished` says it.
  s->finished = true;
  for (size_t i = 0; i < live_.size(); ++i)
    if (live_[i].get() == s) {
      done_.push_back(std::move(live_[i]));
      live_.erase(live_.begin() + long(i));
      break;
    }
}

void Engine::fail_all(const std::string& error) {
  while (!live_.empty()) finish(live_.back().get(), FinishReason::error, error);
}

// Streams `tok`, chosen from the logits row `logits`, as the next token of `s` (or finishes the
// request on EOS, a stop token or string, the token limit or the context). False once finished.
bool Engine::emit_token(SequenceState* s, int32_t tok, const float* logits) {
  const ModelConfig& c = model_->config();
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
    finish(s, eos ? FinishReason::eos : FinishReason::stop, {},
           s->req.return_logits ? std::optional<GeneratedToken>(std::move(end)) : std::nullopt);
    return false;
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
  if (hit) {
    finish(s, FinishReason::stop);
    return false;
  }
  if (s->generated >= s->req.max_tokens || int64_t(s->tokens.size()) >= context_limit_) {
    finish(s, FinishReason::length);
    return false;
  }
  return true;
}

// Speculative decoding's verification of s->drafts against the target rows [1 + drafts, vocab]
// (row i: the distribution of the token after the i-th fed token). Greedy: a draft is accepted
// when it is the target's argmax. Sampling: accepted with probability min(1, p(d) / q(d)), else
// the token is drawn from max(0, p - q) normalized, so every emitted token follows the target
// distribution exactly. The first rejection emits its corrected token and ends; if every draft
// is accepted, a bonus token comes from the last row. Penalties see the accepted tokens as the
// sampler accepts them, as in plain decoding.
bool Engine::verify_drafts(SequenceState* s, const float* rows) {
  const int64_t V = model_->config().vocab_size;
  const size_t k = s->drafts.size();
  const bool greedy = s->sampler.greedy();
  std::vector<double> p, r;
  for (size_t i = 0; i <= k; ++i) {
    const float* row = rows + int64_t(i) * V;
    if (i == k) return emit_token(s, s->sampler.sample(row), row);
    const int32_t d = s->drafts[i];
    int32_t tok;
    bool accepted;
    if (greedy) {
      tok = s->sampler.sample(row);
      accepted = tok == d;
    } else {
      s->sampler.probabilities(row, p);
      const std::vector<double>& q = s->draft_probs[i];
      accepted =
          q[size_t(d)] > 0 && s->sampler.uniform() < std::min(1.0, p[size_t(d)] / q[size_t(d)]);
      if (accepted) {
        tok = d;
      } else {
        r.resize(p.size());
        double sum = 0;
        for (size_t j = 0; j < p.size(); ++j) sum += (r[j] = std::max(0.0, p[j] - q[j]));
        tok = s->sampler.draw(sum > 0 ? r : p);
      }
    }
    ++s->drafted, ++local_.spec_draft_tokens;
    if (accepted) ++s->accepted, ++local_.spec_accepted_tokens;
    if (!emit_token(s, tok, row)) return false;
    if (!accepted) return true;
  }
  return true;
}

// After a step, with speculative decoding: the MTP layer catches up with every sequence's newly
// computed positions (position p reads the main model's hidden state at p and token p + 1), and
// decoding sequences get their next drafts: the first from the MTP head's last row, each further
// one by chaining the MTP layer on its own output (those MTP rows are rewritten next step).
void Engine::update_drafts(const std::vector<ScheduledChunk>& chunks,
                           const std::vector<int64_t>& start, const std::vector<int64_t>& row0,
                           const ForwardOutput& out) {
  KvCache& cache = model_->cache();
  const int64_t D = model_->config().hidden_size;
  std::vector<Model::MtpEntry> batch;
  std::vector<SequenceState*> who;
  for (size_t i = 0; i < chunks.size(); ++i) {
    SequenceState* s = chunks[i].s;
    if (s->finished) continue;
    s->clear_drafts();
    const int64_t from = cache.mtp_length(s->seq), to = s->computed;
    if (to <= from || from < start[i]) continue;
    Model::MtpEntry e;
    e.seq = s->seq;
    e.hidden = out.hidden.data<float>() + (row0[i] + from - start[i]) * D;
    e.next_tokens.assign(s->tokens.begin() + from + 1, s->tokens.begin() + to + 1);
    batch.push_back(std::move(e));
    who.push_back(s);
  }
  if (batch.empty()) return;
  Model::MtpOutput mo = model_->mtp_forward_batch(batch, false);
  const int64_t V = model_->config().vocab_size;
  const int K = options_.speculative_draft_tokens;
  for (int depth = 0; depth < K && !who.empty(); ++depth) {
    std::vector<Model::MtpEntry> next;
    std::vector<SequenceState*> next_who;
    for (size_t j = 0; j < who.size(); ++j) {
      SequenceState* s = who[j];
      // Only decoding sequences draft, never past their token limit or the context.
      const bool decoding = s->computed + 1 == int64_t(s->tokens.size()) && s->generated > 0;
      const int64_t room = std::min<int64_t>(s->req.max_tokens - s->generated - 1,
                                             context_limit_ - int64_t(s->tokens.size()) - 1);
      if (!decoding || int64_t(s->drafts.size()) >= room) continue;
      const float* row = mo.logits.data<float>() + mo.first_row[j] * V;
      int32_t d;
      if (s->sampler.greedy()) {
        d = s->sampler.sample(row);  // the argmax (penalties applied): no random draw
      } else {
        s->draft_probs.emplace_back();
        s->sampler.probabilities(row, s->draft_probs.back());
        d = s->sampler.draw(s->draft_probs.back());
      }
      s->drafts.push_back(d);
      if (depth + 1 < K && int64_t(s->drafts.size()) < room &&
          cache.try_reserve(s->seq, cache.mtp_length(s->seq) + 1)) {
        Model::MtpEntry e;
        e.seq = s->seq;
        e.hidden = mo.hidden.data<float>() +
                   (mo.first_token[j] + int64_t(batch[j].next_tokens.size()) - 1) * D;
        e.next_tokens = {d};
        next.push_back(std::move(e));
        next_who.push_back(s);
      }
    }
    if (next.empty()) break;
    batch = std::move(next);
    who = std::move(next_who);
    mo = model_->mtp_forward_batch(batch, false);
  }
  // Chained rows are tentative: the MTP layer's valid length stays at the computed positions.
  for (size_t i = 0; i < chunks.size(); ++i)
    if (!chunks[i].s->finished && cache.mtp_length(chunks[i].s->seq) > chunks[i].s->computed)
      cache.set_mtp_length(chunks[i].s->seq, chunks[i].s->computed);
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
               std::to_string(model_->cache().group_capacity_tokens()));
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
    const int64_t own = ch.n_tokens - int64_t(s->drafts.size());  // the rest are drafts
    e.tokens.assign(s->tokens.begin() + s->computed, s->tokens.begin() + s->computed + own);
    e.tokens.insert(e.tokens.end(), s->drafts.begin(), s->drafts.end());
    e.no_logits = s->computed + own < int64_t(s->tokens.size());
    e.all_logits = !s->drafts.empty();
    e.prompt_len = s->prompt_len;
    decode_only &= s->computed >= s->prompt_len && own == 1;
    batch.push_back(std::move(e));
  }
  // With speculation: where each entry's positions start and its hidden rows are (the MTP
  // layer's input, after the step has moved `computed` on).
  const bool spec = options_.speculative_draft_tokens > 0;
  std::vector<int64_t> start, row0;
  if (spec)
    for (size_t i = 0, r = 0; i < plan.chunks.size(); r += size_t(plan.chunks[i].n_tokens), ++i)
      start.push_back(plan.chunks[i].s->computed), row0.push_back(int64_t(r));
  const double t1 = now_s();
  ForwardOutput out = model_->forward(batch);
  const double t2 = now_s();

  const int64_t vocab = model_->config().vocab_size;
  for (size_t i = 0; i < plan.chunks.size(); ++i) {
    SequenceState* s = plan.chunks[i].s;
    const int64_t n = plan.chunks[i].n_tokens;
    (s->computed >= s->prompt_len ? local_.decode_tokens : local_.prefill_tokens) += n;
    const float* rows =
        out.first_row[i] >= 0 ? out.logits.data<float>() + out.first_row[i] * vocab : nullptr;
    if (!s->drafts.empty()) {
      // Verify the drafts; the positions of rejected ones are dropped from the cache.
      if (!verify_drafts(s, rows)) continue;
      s->computed = int64_t(s->tokens.size()) - 1;
      model_->cache().set_length(s->seq, s->computed);
      continue;
    }
    s->computed += n;
    if (s->req.report_prefill && s->computed <= s->prompt_len) {
      RequestEvent ev;
      ev.kind = RequestEvent::Kind::prefill;
      ev.prefilled = s->computed;
      ev.usage.prompt_tokens = s->prompt_len;
      s->channel->push(std::move(ev));
    }
    if (rows) emit_token(s, s->sampler.sample(rows), rows);
  }
  if (spec) update_drafts(plan.chunks, start, row0, out);
  if (scheduler_.options().prefix_cache)
    for (const ScheduledChunk& ch : plan.chunks)
      if (!ch.s->finished)
        ch.s->registered =
            register_full_blocks(*model_, model_->cache(), ch.s->seq, ch.s->tokens,
                                 ch.s->prompt_len, ch.s->computed, ch.s->registered, spec);
  done_.clear();
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
