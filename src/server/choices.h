// The n choices of one API request as engine requests: the first is submitted at once and the
// others once it has computed the prompt, so they find its blocks in the prefix cache. Events of
// all choices come out of one next(); destroying the object cancels what is still running.
#pragma once

#include <optional>
#include <utility>
#include <vector>

#include "engine/engine.h"

namespace dsinfer::server {

class Choices {
 public:
  // Throws ApiError for a request the engine refuses (400) or a full queue (503).
  Choices(Engine& engine, std::vector<Request> requests, double timeout_s);
  ~Choices();
  Choices(const Choices&) = delete;
  Choices& operator=(const Choices&) = delete;

  // The next event of some choice, waiting up to wait_s; nullopt on timeout. done() afterwards
  // says whether every choice has finished.
  std::optional<std::pair<int, RequestEvent>> next(double wait_s);
  bool done() const { return finished_ == int(requests_.size()); }
  void cancel();
  int size() const { return int(requests_.size()); }

 private:
  void submit(size_t i);

  Engine& engine_;
  std::vector<Request> requests_;
  std::vector<RequestHandle> handles_;
  std::vector<bool> finished_flags_;
  int finished_ = 0;
  bool rest_submitted_ = false;
  double deadline_ = 0;
  size_t cursor_ = 0;
};

}  // namespace dsinfer::server
