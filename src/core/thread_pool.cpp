#include "core/thread_pool.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

namespace dsinfer {

namespace {
thread_local bool t_in_pool_task = false;
}

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  for (int w = 1; w < n_threads_; ++w) threads_.emplace_back([this, w] { worker_loop(w); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    ++generation_;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::run_job(int worker) {
  t_in_pool_task = true;
  if (once_per_worker_) {
    (*fn_)(worker, worker + 1, worker);
  } else {
    for (;;) {
      int64_t begin = next_.fetch_add(grain_, std::memory_order_relaxed);
      if (begin >= n_) break;
      (*fn_)(begin, std::min(n_, begin + grain_), worker);
    }
  }
  t_in_pool_task = false;
}

void ThreadPool::worker_loop(int worker) {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_ != seen; });
      seen = generation_;
      if (stop_) return;
    }
    run_job(worker);
    if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mutex_);
      done_.notify_all();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const RangeFn& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (n_threads_ == 1 || t_in_pool_task || n <= grain) {
    for (int64_t b = 0; b < n; b += grain) fn(b, std::min(n, b + grain), 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    fn_ = &fn;
    n_ = n;
    grain_ = grain;
    once_per_worker_ = false;
    next_.store(0);
    active_.store(n_threads_ - 1);
    ++generation_;
  }
  wake_.notify_all();
  run_job(0);
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [&] { return active_.load(std::memory_order_acquire) == 0; });
}

void ThreadPool::run_on_all(const std::function<void(int)>& fn) {
  RangeFn range = [&](int64_t, int64_t, int worker) { fn(worker); };
  if (n_threads_ == 1 || t_in_pool_task) {
    fn(0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    fn_ = &range;
    once_per_worker_ = true;
    active_.store(n_threads_ - 1);
    ++generation_;
  }
  wake_.notify_all();
  run_job(0);
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [&] { return active_.load(std::memory_order_acquire) == 0; });
}

namespace {
int default_threads() {
  if (const char* env = std::getenv("DSINFER_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? int(n) : 1;
}
std::unique_ptr<ThreadPool>& pool_slot() {
  static std::unique_ptr<ThreadPool> pool = std::make_unique<ThreadPool>(default_threads());
  return pool;
}
}  // namespace

ThreadPool& thread_pool() {
  return *pool_slot();
}
void set_num_threads(int n) {
  if (n <= 0) n = default_threads();
  if (pool_slot()->size() != n) pool_slot() = std::make_unique<ThreadPool>(n);
}
int num_threads() {
  return thread_pool().size();
}
void parallel_for(int64_t n, int64_t grain, const ThreadPool::RangeFn& fn) {
  thread_pool().parallel_for(n, grain, fn);
}

}  // namespace dsinfer
