#include "server/metrics.h"

#include <fmt/format.h>

#include <algorithm>

namespace dsinfer::server {

namespace {

// vLLM's buckets (seconds).
const std::vector<double> kTtftBuckets = {0.001, 0.005, 0.01, 0.02,  0.04,  0.06,  0.08, 0.1,
                                          0.25,  0.5,   0.75, 1.0,   2.5,   5.0,   7.5,  10.0,
                                          20.0,  40.0,  80.0, 160.0, 640.0, 2560.0};
const std::vector<double> kItlBuckets = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,  0.3,  0.4, 0.5,
                                         0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
const std::vector<double> kE2eBuckets = {0.3,  0.5,   0.8,   1.0,   1.5,   2.0,    2.5,
                                         5.0,  10.0,  15.0,  20.0,  30.0,  40.0,   50.0,
                                         60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};

std::string number(double v) {
  return fmt::format("{}", v);
}

void header(std::string& out, const std::string& name, const char* type, const char* help) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

void Histogram::observe(double v) {
  const size_t b = size_t(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  ++counts_[b];
  sum_ += v;
  ++count_;
}

std::string Histogram::text(const std::string& name, const std::string& labels) const {
  std::string out;
  uint64_t cum = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cum += counts_[i];
    const std::string le = i < bounds_.size() ? number(bounds_[i]) : "+Inf";
    out += name + "_bucket{" + labels + ",le=\"" + le + "\"} " + std::to_string(cum) + "\n";
  }
  out += name + "_sum{" + labels + "} " + number(sum_) + "\n";
  out += name + "_count{" + labels + "} " + std::to_string(count_) + "\n";
  return out;
}

Metrics::Metrics(std::string model_name)
    : labels_("model_name=\"" + model_name + "\""),
      ttft_(kTtftBuckets),
      itl_(kItlBuckets),
      e2e_(kE2eBuckets),
      queue_(kE2eBuckets) {}

void Metrics::request_finished(const std::string& reason, int64_t prompt_tokens,
                               int64_t completion_tokens, double queue_s, double ttft_s,
                               double e2e_s) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++success_[reason];
  prompt_tokens_ += uint64_t(std::max<int64_t>(0, prompt_tokens));
  generation_tokens_ += uint64_t(std::max<int64_t>(0, completion_tokens));
  queue_.observe(queue_s);
  if (completion_tokens > 0) ttft_.observe(ttft_s);
  e2e_.observe(e2e_s);
}

void Metrics::inter_token_latency(double s) {
  std::lock_guard<std::mutex> lock(mutex_);
  itl_.observe(s);
}

void Metrics::request_rejected(const std::string& why) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++rejected_[why];
}

void Metrics::client_disconnected(int cancelled) {
  std::lock_guard<std::mutex> lock(mutex_);
  disconnected_ += uint64_t(cancelled);
  success_["abort"] += uint64_t(cancelled);
}

std::string Metrics::render(const EngineStats& st) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  auto gauge = [&](const char* name, const char* help, double v) {
    header(out, std::string("dsinfer:") + name, "gauge", help);
    out += std::string("dsinfer:") + name + "{" + labels_ + "} " + number(v) + "\n";
  };
  auto counter = [&](const char* name, const char* help, double v) {
    header(out, std::string("dsinfer:") + name, "counter", help);
    out += std::string("dsinfer:") + name + "{" + labels_ + "} " + number(v) + "\n";
  };
  gauge("num_requests_running", "Requests admitted to the engine (prefilling or decoding).",
        st.running);
  gauge("num_requests_waiting", "Requests waiting for admission.", st.waiting);
  const double used = st.cache_blocks > 0
                          ? double(st.cache_blocks - st.cache_blocks_free) / double(st.cache_blocks)
                          : 0;
  gauge("kv_cache_usage_perc", "Fraction of the KV cache blocks referenced by requests (0-1).",
        used);
  counter("prefix_cache_queries_total", "Prefix cache block lookups.", double(st.prefix_lookups));
  counter("prefix_cache_hits_total", "Prefix cache block lookups that found a block.",
          double(st.prefix_hits));
  counter("preemptions_total", "Requests preempted (to be recomputed) for lack of cache blocks.",
          double(st.preemptions));
  counter("spec_decode_num_draft_tokens_total", "Speculative draft tokens verified.",
          double(st.spec_draft_tokens));
  counter("spec_decode_num_accepted_tokens_total", "Speculative draft tokens accepted.",
          double(st.spec_accepted_tokens));
  counter("prompt_tokens_total", "Prompt tokens of finished requests.", double(prompt_tokens_));
  counter("generation_tokens_total", "Generated tokens of finished requests.",
          double(generation_tokens_));
  counter("request_disconnected_total",
          "Requests cancelled because their streaming client went away.", double(disconnected_));
  header(out, "dsinfer:request_success_total", "counter", "Finished requests by finish reason.");
  for (const auto& [reason, n] : success_)
    out += "dsinfer:request_success_total{" + labels_ + ",finished_reason=\"" + reason + "\"} " +
           std::to_string(n) + "\n";
  header(out, "dsinfer:request_rejected_total", "counter",
         "Requests refused before reaching the engine, by error type.");
  for (const auto& [why, n] : rejected_)
    out += "dsinfer:request_rejected_total{" + labels_ + ",error=\"" + why + "\"} " +
           std::to_string(n) + "\n";
  auto hist = [&](const char* name, const char* help, const Histogram& h) {
    header(out, std::string("dsinfer:") + name, "histogram", help);
    out += h.text(std::string("dsinfer:") + name, labels_);
  };
  hist("time_to_first_token_seconds", "Time from the request to its first token.", ttft_);
  hist("inter_token_latency_seconds", "Time between streamed tokens.", itl_);
  hist("e2e_request_latency_seconds", "Time from the request to its end.", e2e_);
  hist("request_queue_time_seconds", "Time a request waited before its first step.", queue_);
  return out;
}

}  // namespace dsinfer::server
