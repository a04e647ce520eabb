#include "model/generate.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>

namespace dsinfer {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Streams text while holding back any tail that could still become a stop string.
class StopFilter {
 public:
  explicit StopFilter(const std::vector<std::string>& stops) : stops_(stops) {}
  // Adds text; returns what can be released now. Sets `hit` when a stop string completed (the
  // text before it is released, the stop string and anything after it are not).
  std::string push(const std::string& text, bool* hit) {
    held_ += text;
    for (const std::string& s : stops_) {
      if (s.empty()) continue;
      const size_t at = held_.find(s);
      if (at != std::string::npos) {
        *hit = true;
        std::string out = held_.substr(0, at);
        held_.clear();
        return out;
      }
    }
    // Keep the longest suffix of held_ that is a proper prefix of a stop string.
    size_t keep = 0;
    for (const std::string& s : stops_)
      for (size_t n = std::min(s.size() - 1, held_.size()); n > keep; --n)
        if (held_.compare(held_.size() - n, n, s, 0, n) == 0) {
          keep = n;
          break;
        }
    std::string out = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return out;
  }
  std::string flush() {
    std::string out;
    out.swap(held_);
    return out;
  }

 private:
  const std::vector<std::string>& stops_;
  std::string held_;
};

}  // namespace

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::eos:
      return "eos";
    case StopReason::stop_string:
      return "stop string";
    case StopReason::max_tokens:
      return "max tokens";
    case StopReason::context_full:
      return "context full";
    case StopReason::interrupted:
      return "interrupted";
  }
  return "?";
}

GenerateStats generate(Model& model, int seq, const std::vector<int32_t>& prompt, Sampler& sampler,
                       StreamingDecoder& decoder, const GenerateOptions& opt,
                       const GenerateCallbacks& cb) {
  const ModelConfig& c = model.config();
  const int64_t limit = opt.context_limit > 0
                            ? std::min<int64_t>(opt.context_limit, c.max_position_embeddings)
                            : c.max_position_embeddings;
  const int64_t start = model.sequence_length(seq);
  if (prompt.empty()) throw std::invalid_argument("generate: empty prompt");
  if (start + int64_t(prompt.size()) >= limit)
    throw std::invalid_argument("the prompt (" + std::to_string(start + int64_t(prompt.size())) +
                                " tokens) does not fit the context of " + std::to_string(limit) +
                                " tokens");
  GenerateStats st;
  st.prompt_tokens = int64_t(prompt.size());
  for (int32_t t : prompt) sampler.accept(t);

  const double t0 = now_s();
  const int64_t chunk = std::max<int64_t>(1, opt.prefill_chunk);
  std::vector<float> logits;
  for (size_t s = 0; s < prompt.size(); s += size_t(chunk)) {
    BatchEntry e;
    e.seq = seq;
    e.tokens.assign(prompt.begin() + s,
                    prompt.begin() + std::min(prompt.size(), s + size_t(chunk)));
    ForwardOutput out = model.forward({e});
    if (s + size_t(chunk) >= prompt.size())
      logits.assign(out.logits.data<float>(), out.logits.data<float>() + c.vocab_size);
    if (cb.on_prefill)
      cb.on_prefill(int64_t(std::min(prompt.size(), s + size_t(chunk))), int64_t(prompt.size()));
    if (cb.interrupt && cb.interrupt->load()) {
      st.prefill_s = now_s() - t0;
      st.reason = StopReason::interrupted;
      return st;
    }
  }
  st.prefill_s = now_s() - t0;

  StopFilter filter(opt.stop);
  auto emit = [&](const std::string& text) {
    if (text.empty()) return;
    st.text += text;
    if (cb.on_text) cb.on_text(text);
  };
  double first_token_time = 0;
  for (;;) {
    const int32_t tok = sampler.sample(logits.data());
    if (st.generated_tokens == 0) {
      first_token_time = now_s();
      st.ttft_s = first_token_time - t0;
    }
    const bool is_stop_token =
        c.is_eos(tok) ||
        std::find(opt.stop_tokens.begin(), opt.stop_tokens.end(), tok) != opt.stop_tokens.end();
    if (is_stop_token) {
      st.reason = StopReason::eos;
      break;
    }
    sampler.accept(tok);
    st.tokens.push_back(tok);
    ++st.generated_tokens;
    bool hit = false;
    emit(filter.push(decoder.push(tok), &hit));
    if (hit) {
      st.reason = StopReason::stop_string;
      break;
    }
    if (st.generated_tokens >= opt.max_tokens) {
      st.reason = StopReason::max_tokens;
      break;
    }
    if (model.sequence_length(seq) + 1 >= limit) {
      st.reason = StopReason::context_full;
      break;
    }
    if (cb.interrupt && cb.interrupt->load()) {
      st.reason = StopReason::interrupted;
      break;
    }
    ForwardOutput out = model.forward({BatchEntry{seq, {tok}, false}});
    logits.assign(out.logits.data<float>(), out.logits.data<float>() + c.vocab_size);
  }
  if (st.reason != StopReason::stop_string) {
    bool hit = false;
    emit(filter.push(decoder.flush(), &hit));
    if (!hit) emit(filter.flush());
  } else {
    decoder.flush();
  }
  st.decode_s = st.generated_tokens > 0 ? now_s() - first_token_time : 0;
  return st;
}

}  // namespace dsinfer
