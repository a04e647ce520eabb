// The caller's side of a submitted request: a thread-safe queue of its events (block on it or
// poll it) and cancel(). Handles are cheap to copy; the engine holds the other end.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "engine/request.h"

namespace dsinfer {

// Shared between the engine and every copy of the handle.
class RequestChannel {
 public:
  explicit RequestChannel(uint64_t id, std::function<void()> wake_engine)
      : id_(id), wake_engine_(std::move(wake_engine)) {}

  void push(RequestEvent ev);  // engine side; a `finished` event closes the channel
  std::optional<RequestEvent> next(double timeout_s);
  std::optional<RequestEvent> poll();
  void cancel();
  bool cancel_requested() const { return cancel_.load(std::memory_order_acquire); }
  bool closed() const;
  uint64_t id() const { return id_; }

 private:
  const uint64_t id_;
  std::function<void()> wake_engine_;
  std::atomic<bool> cancel_{false};
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<RequestEvent> events_;
  bool closed_ = false;
};

class RequestHandle {
 public:
  RequestHandle() = default;
  explicit RequestHandle(std::shared_ptr<RequestChannel> ch) : ch_(std::move(ch)) {}

  // The next event, waiting for it (timeout_s < 0: without limit); nullopt after the timeout or
  // once the finished event has been taken.
  std::optional<RequestEvent> next(double timeout_s = -1) { return ch_->next(timeout_s); }
  // The next event if one is ready.
  std::optional<RequestEvent> poll() { return ch_->poll(); }
  // Stops the request at the next step and frees its cache blocks; it then finishes with
  // FinishReason::cancelled (unless it finished first). Safe at any time, from any thread.
  void cancel() { ch_->cancel(); }
  // Whether the finished event has been queued.
  bool finished() const { return ch_->closed(); }
  uint64_t id() const { return ch_->id(); }
  bool valid() const { return ch_ != nullptr; }

 private:
  std::shared_ptr<RequestChannel> ch_;
};

}  // namespace dsinfer
