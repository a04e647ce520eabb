#include "core/thread_pool.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <utility>

namespace dsinfer {

namespace {
// The pool whose task this thread is running (nullptr outside any task), and as which worker.
thread_local const ThreadPool* t_pool = nullptr;
thread_local int t_worker = 0;
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  threads_.reserve(size_t(n_threads_ - 1));
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

int ThreadPool::nested_worker() const {
  if (!t_pool) return -1;
  return t_pool == this ? t_worker : 0;
}

void ThreadPool::run_job(int worker) {
  t_pool = this;
  t_worker = worker;
  try {
    if (once_per_worker_) {
      (*fn_)(worker, worker + 1, worker);
    } else {
      for (;;) {
        int64_t begin = next_.fetch_add(grain_, std::memory_order_relaxed);
        if (begin >= n_) break;
        (*fn_)(begin, std::min(n_, begin + grain_), worker);
      }
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error_) error_ = std::current_exception();
    next_.store(n_, std::memory_order_relaxed);  // hand out no further chunks
  }
  t_pool = nullptr;
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

// Runs the job on every worker (the calling thread as worker 0), waits for all of them, then
// rethrows the first exception a task threw. The caller holds submit_.
void ThreadPool::run_parallel(const RangeFn& fn, int64_t n, int64_t grain, bool once_per_worker) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    fn_ = &fn;
    n_ = n;
    grain_ = grain;
    once_per_worker_ = once_per_worker;
    next_.store(0);
    active_.store(n_threads_ - 1);
    error_ = nullptr;
    ++generation_;
  }
  wake_.notify_all();
  run_job(0);
  std::exception_ptr error;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return active_.load(std::memory_order_acquire) == 0; });
    fn_ = nullptr;
    error = std::exchange(error_, nullptr);
  }
  if (error) std::rethrow_exception(error);
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const RangeFn& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  auto serial = [&](int worker) {
    for (int64_t b = 0; b < n; b += grain) fn(b, std::min(n, b + grain), worker);
  };
  if (int w = nested_worker(); w >= 0) return serial(w);
  std::lock_guard<std::recursive_mutex> submit(submit_);
  if (n_threads_ == 1 || n <= grain) return serial(0);
  run_parallel(fn, n, grain, false);
}

void ThreadPool::run_on_all(const std::function<void(int)>& fn) {
  if (int w = nested_worker(); w >= 0) return fn(w);
  std::lock_guard<std::recursive_mutex> submit(submit_);
  if (n_threads_ == 1) return fn(0);
  RangeFn range = [&](int64_t, int64_t, int worker) { fn(worker); };
  run_parallel(range, n_threads_, 1, true);
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
