#include "server/choices.h"

#include <chrono>
#include <thread>

#include "server/api_error.h"

namespace dsinfer::server {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

Choices::Choices(Engine& engine, std::vector<Request> requests, double timeout_s)
    : engine_(engine),
      requests_(std::move(requests)),
      handles_(requests_.size()),
      finished_flags_(requests_.size(), false),
      deadline_(timeout_s > 0 ? now_s() + timeout_s : 0) {
  submit(0);
  if (requests_.size() == 1) rest_submitted_ = true;
}

Choices::~Choices() {
  cancel();
}

void Choices::submit(size_t i) {
  try {
    handles_[i] = engine_.submit(requests_[i]);
  } catch (const EngineBusy& e) {
    cancel();
    throw ApiError(503, "server_busy", e.what(), "", "queue_full");
  } catch (const std::invalid_argument& e) {
    cancel();
    throw bad_request("", e.what());
  }
}

void Choices::cancel() {
  for (auto& h : handles_)
    if (h.valid() && !h.finished()) h.cancel();
}

std::optional<std::pair<int, RequestEvent>> Choices::next(double wait_s) {
  const double until = now_s() + wait_s;
  for (;;) {
    if (deadline_ > 0 && now_s() > deadline_) cancel();  // they finish as cancelled
    // Single choice: block on it; several: poll them in turn.
    const bool single = handles_.size() == 1;
    for (size_t k = 0; k < handles_.size(); ++k) {
      const size_t i = (cursor_ + k) % handles_.size();
      if (!handles_[i].valid() || finished_flags_[i]) continue;
      std::optional<RequestEvent> ev =
          single ? handles_[i].next(std::max(0.0, std::min(wait_s, 0.25))) : handles_[i].poll();
      if (!ev) continue;
      cursor_ = i + 1;
      if (ev->kind == RequestEvent::Kind::finished) {
        finished_flags_[i] = true;
        ++finished_;
      }
      // The first choice has its prompt computed: the others can share it now.
      if (i == 0 && !rest_submitted_ && ev->kind != RequestEvent::Kind::prefill) {
        rest_submitted_ = true;
        for (size_t j = 1; j < requests_.size(); ++j) submit(j);
      }
      return std::make_pair(int(i), std::move(*ev));
    }
    if (done() || now_s() >= until) return std::nullopt;
    if (!single) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace dsinfer::server
