#include "engine/request_handle.h"

#include <chrono>

namespace dsinfer {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::stop:
      return "stop";
    case FinishReason::length:
      return "length";
    case FinishReason::eos:
      return "eos";
    case FinishReason::cancelled:
      return "cancelled";
    case FinishReason::error:
      return "error";
  }
  return "?";
}

void RequestChannel::push(RequestEvent ev) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;
    closed_ = ev.kind == RequestEvent::Kind::finished;
    events_.push_back(std::move(ev));
  }
  ready_.notify_all();
}

std::optional<RequestEvent> RequestChannel::next(double timeout_s) {
  std::unique_lock<std::mutex> lock(mutex_);
  auto ready = [&] { return !events_.empty() || closed_; };
  if (timeout_s < 0)
    ready_.wait(lock, ready);
  else if (!ready_.wait_for(lock, std::chrono::duration<double>(timeout_s), ready))
    return std::nullopt;
  if (events_.empty()) return std::nullopt;  // closed and drained
  RequestEvent ev = std::move(events_.front());
  events_.pop_front();
  return ev;
}

std::optional<RequestEvent> RequestChannel::poll() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (events_.empty()) return std::nullopt;
  RequestEvent ev = std::move(events_.front());
  events_.pop_front();
  return ev;
}

void RequestChannel::cancel() {
  cancel_.store(true, std::memory_order_release);
  if (wake_engine_) wake_engine_();
}

bool RequestChannel::closed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return closed_;
}

}  // namespace dsinfer
