// Prometheus metrics of the server, named like vLLM's (with a `dsinfer:` prefix and a
// model_name label): latency histograms, token and request counters, and gauges read from the
// engine when scraped. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace dsinfer::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds)
      : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}
  void observe(double v);
  // The text exposition lines of `name` with `labels` ("model_name=\"x\"").
  std::string text(const std::string& name, const std::string& labels) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative), the last one +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  explicit Metrics(std::string model_name);

  // A finished request: its reason, token counts and times.
  void request_finished(const std::string& finish_reason, int64_t prompt_tokens,
                        int64_t completion_tokens, double queue_s, double ttft_s, double e2e_s);
  void inter_token_latency(double seconds);
  void request_rejected(const std::string& why);  // 4xx/5xx before reaching the engine
  void client_disconnected(int cancelled_choices);
  // The whole exposition; the gauges and engine counters come from `stats`.
  std::string render(const EngineStats& stats) const;

 private:
  std::string labels_;
  mutable std::mutex mutex_;
  Histogram ttft_, itl_, e2e_, queue_;
  std::map<std::string, uint64_t> success_, rejected_;
  uint64_t prompt_tokens_ = 0, generation_tokens_ = 0, disconnected_ = 0;
};

}  // namespace dsinfer::server
