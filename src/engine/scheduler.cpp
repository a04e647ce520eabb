#include "engine/scheduler.h"

#include <algorithm>
#include <stdexcept>

#include "engine/prefix_cache.h"

namespace dsinfer {

namespace {

int64_t blocks_for(int64_t tokens) {
  return (tokens + kKvBlockTokens - 1) / kKvBlockTokens;
}

}  // namespace

Scheduler::Scheduler(const Model& model, KvCache& cache, const SchedulerOptions& options)
    : model_(model), cache_(cache), options_(options) {
  if (options.max_running < 1) throw std::invalid_argument("max_running must be at least 1");
  if (options.max_batch_tokens < options.max_running)
    throw std::invalid_argument("max_batch_tokens (" + std::to_string(options.max_batch_tokens) +
                                ") must be at least max_running (" +
                                std::to_string(options.max_running) + ")");
}

bool Scheduler::before(const SequenceState* a, const SequenceState* b) {
  return a->req.priority != b->req.priority ? a->req.priority < b->req.priority
                                            : a->arrival < b->arrival;
}

void Scheduler::add(SequenceState* s) {
  waiting_.insert(std::upper_bound(waiting_.begin(), waiting_.end(), s, before), s);
}

void Scheduler::remove(SequenceState* s) {
  if (s->admitted()) {
    cache_.free_sequence(s->seq);
    s->seq = -1;
  }
  running_.erase(std::remove(running_.begin(), running_.end(), s), running_.end());
  waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), s), waiting_.end());
}

void Scheduler::preempt(SequenceState* s) {
  s->clear_drafts();
  // Recompute later from prompt + generated tokens; its full blocks stay in the prefix cache
  // until evicted, so the recompute often finds most of them.
  cache_.free_sequence(s->seq);
  s->seq = -1;
  s->computed = 0;
  s->registered = 0;
  ++s->preemptions;
  ++preemptions_;
  running_.erase(std::remove(running_.begin(), running_.end(), s), running_.end());
  add(s);
}

bool Scheduler::admit(SequenceState* s) {
  const int64_t n = int64_t(s->tokens.size());
  const BlockPool& pool = cache_.pool();
  // At least the last token is computed (its logits are needed), so whole blocks before it.
  std::vector<int32_t> hit;
  if (options_.prefix_cache)
    hit = match_prefix(model_, cache_, s->tokens, s->prompt_len, n - 1, options_.speculative);
  // Data-parallel attention: a cached prefix keeps the request in the group holding it when that
  // group has room; otherwise the group with the most unreferenced blocks takes it, from scratch.
  auto fits = [&](int group, const std::vector<int32_t>& blocks) {
    int64_t revived = 0;  // hit blocks now unreferenced: attaching them uses up available blocks
    for (int32_t b : blocks) revived += pool.refs(b) == 0;
    return blocks_for(n) - int64_t(blocks.size()) + revived <= pool.available(group);
  };
  // The group with the most unreferenced blocks, `from` on a tie.
  auto emptiest = [&](int from) {
    int best = from;
    for (int g = 0; g < pool.groups(); ++g)
      if (pool.available(g) > pool.available(best)) best = g;
    return best;
  };
  int group = hit.empty() ? emptiest(0) : pool.group_of(hit[0]);
  if (!fits(group, hit)) {
    if (pool.groups() == 1) return false;
    hit.clear();
    group = emptiest(group);
    if (!fits(group, hit)) return false;
  }
  s->seq = cache_.create_sequence(group);
  cache_.attach_blocks(s->seq, hit);
  // With drafts the blocks' keys cover the token after them, so their MTP rows are right too.
  if (options_.speculative) cache_.set_mtp_length(s->seq, int64_t(hit.size()) * kKvBlockTokens);
  cache_.reserve(s->seq, n);
  s->computed = int64_t(hit.size()) * kKvBlockTokens;
  s->registered = int64_t(hit.size());
  if (s->cached_tokens < 0) s->cached_tokens = std::min<int64_t>(s->computed, s->prompt_len);
  return true;
}

int64_t Scheduler::chunk_size(const SequenceState* s, int64_t budget, bool have_prefill) const {
  const int64_t n = std::min(s->pending(), budget);
  const int64_t end = s->computed + n;
  const int64_t S = model_.options().mha_segment;
  if (n == 0 || end == int64_t(s->tokens.size()) || end % S == 0 ||
      !model_.uses_mha(end - 1, s->prompt_len))
    return n;
  // The chunk would end inside an MHA segment: stop at the segment's start instead, or wait for
  // the next step when another prompt already has this one's budget.
  const int64_t cut = end / S * S - s->computed;
  if (cut > 0) return cut;
  return have_prefill ? 0 : n;
}

StepPlan Scheduler::schedule() {
  StepPlan plan;
  int64_t budget = options_.max_batch_tokens;
  bool have_prefill = false;
  // 1 + 2: admitted sequences in priority order (victims come from the back).
  for (size_t i = 0; i < running_.size();) {
    SequenceState* s = running_[i];
    const bool decoding = s->computed >= s->prompt_len && s->pending() == 1;
    if (decoding) {
      if (budget < 1) {
        ++i;
        continue;
      }
      // Drafts ride along when the budget and the cache have room for them (they only save time).
      if (!s->drafts.empty() &&
          (budget < 1 + int64_t(s->drafts.size()) ||
           !cache_.try_reserve(s->seq, s->computed + 1 + int64_t(s->drafts.size()))))
        s->clear_drafts();
      const int64_t n = 1 + int64_t(s->drafts.size());
      bool ok = cache_.try_reserve(s->seq, s->computed + 1);
      // Victims: the lowest-priority sequences after this one holding blocks of its group.
      const int group = cache_.group(s->seq);
      auto victim_after = [&]() -> SequenceState* {
        for (size_t j = running_.size(); j-- > i + 1;)
          if (cache_.group(running_[j]->seq) == group) return running_[j];
        return nullptr;
      };
      for (SequenceState* victim; !ok && (victim = victim_after()) != nullptr;) {
        preempt(victim);
        plan.preempted.push_back(victim);
        ok = cache_.try_reserve(s->seq, s->computed + 1);
      }
      if (!ok) {
        int in_group = 0;
        for (SequenceState* r : running_) in_group += cache_.group(r->seq) == group;
        if (in_group == 1) {  // alone and still no room: the budget is too small
          running_.erase(running_.begin() + long(i));
          cache_.free_sequence(s->seq);
          s->seq = -1;
          plan.failed.push_back(s);
        } else {
          preempt(s);
          plan.preempted.push_back(s);
        }
        continue;
      }
      plan.chunks.push_back({s, n});
      budget -= n;
      ++i;
      continue;
    }
    // A prompt (or a recompute after preemption) in progress: its blocks are reserved.
    const int64_t n = chunk_size(s, budget, have_prefill);
    if (n > 0) {
      plan.chunks.push_back({s, n});
      budget -= n;
      have_prefill = true;
    }
    ++i;
  }
  // 3: admissions.
  while (!waiting_.empty() && int(running_.size()) < options_.max_running && budget > 0) {
    SequenceState* s = waiting_.front();
    if (blocks_for(int64_t(s->tokens.size()) + 1) > cache_.group_capacity_blocks()) {
      waiting_.erase(waiting_.begin());
      plan.failed.push_back(s);
      continue;
    }
    if (!admit(s)) break;  // first come, first served: no overtaking by smaller requests
    waiting_.erase(waiting_.begin());
    running_.insert(std::upper_bound(running_.begin(), running_.end(), s, before), s);
    const int64_t n = chunk_size(s, budget, have_prefill);
    if (n > 0) {
      plan.chunks.push_back({s, n});
      budget -= n;
      have_prefill = true;
    }
  }
  plan.tokens = options_.max_batch_tokens - budget;
  return plan;
}

}  // namespace dsinfer
