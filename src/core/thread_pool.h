// A persistent thread pool whose parallel_for hands out chunks dynamically (an atomic counter),
// so uneven work (causal attention rows, MoE experts) balances itself. The calling thread works
// too, as worker 0. Nested calls from inside a task run serially on the calling worker, under that
// worker's id when the task belongs to the same pool (under id 0 for a task of another pool).
//
// Calls from several outside threads at once are serialized, so each worker id belongs to one
// thread at a time and per-worker scratch indexed by it is safe.
//
// An exception thrown by a task stops the job from handing out further chunks; once every worker
// has finished, the first such exception is rethrown on the calling thread and the pool stays
// usable.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace dsinfer {

class ThreadPool {
 public:
  // fn(begin, end, worker): worker is in [0, size()) and stable for the duration of the call.
  using RangeFn = std::function<void(int64_t begin, int64_t end, int worker)>;

  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Runs fn over [0, n) in chunks of at most `grain` items (n <= 0: nothing; grain < 1: 1).
  void parallel_for(int64_t n, int64_t grain, const RangeFn& fn);
  // Runs fn(worker) exactly once on each of the size() workers, concurrently. Nested inside a
  // task, it runs fn once, serially, as the calling worker.
  void run_on_all(const std::function<void(int worker)>& fn);
  // True on a thread running one of this pool's tasks (where parallel_for runs serially).
  bool inside_task() const { return nested_worker() >= 0; }

 private:
  void worker_loop(int worker);
  void run_job(int worker);
  void run_parallel(const RangeFn& fn, int64_t n, int64_t grain, bool once_per_worker);
  // The worker id a serial run on this thread uses, or -1 when this thread is in no pool task.
  int nested_worker() const;

  int n_threads_;
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  uint64_t generation_ = 0;
  bool stop_ = false;
  // The current job.
  const RangeFn* fn_ = nullptr;
  int64_t n_ = 0, grain_ = 1;
  bool once_per_worker_ = false;
  std::atomic<int64_t> next_{0};
  std::atomic<int> active_{0};
  std::exception_ptr error_;  // the job's first exception; guarded by mutex_
  // Held by the outside thread that owns worker id 0 for the duration of a call. Recursive, so a
  // serial run's fn may call into the pool again.
  std::recursive_mutex submit_;
};

// The process-wide pool. Its size is DSINFER_THREADS or the number of online CPUs, until
// set_num_threads() replaces it.
ThreadPool& thread_pool();
void set_num_threads(int n);
int num_threads();
// Convenience wrapper over thread_pool().parallel_for.
void parallel_for(int64_t n, int64_t grain, const ThreadPool::RangeFn& fn);

}  // namespace dsinfer
