#include "core/thread_pool.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace dsinfer {
namespace {

using namespace std::chrono_literals;

// Aborts the whole binary (with a message) if the scope is not left within `limit`: a deadlocked
// pool must fail the run rather than hang it.
class Watchdog {
 public:
  explicit Watchdog(std::string what, std::chrono::seconds limit = 60s)
      : what_(std::move(what)), thread_([this, limit] {
          std::unique_lock<std::mutex> lock(mutex_);
          if (!cv_.wait_for(lock, limit, [&] { return done_; })) {
            std::fprintf(stderr, "thread_pool_test: %s did not finish in %llds (deadlock?)\n",
                         what_.c_str(), static_cast<long long>(limit.count()));
            std::abort();
          }
        }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::string what_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// Each caller counts itself in, then waits (up to `timeout`) until `count` callers have arrived.
// Returns whether they all did: true only if `count` callers ran at the same time.
bool arrive_and_wait(std::atomic<int>& arrived, int count,
                     std::chrono::milliseconds timeout = 10s) {
  arrived.fetch_add(1);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (arrived.load() < count) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(100us);
  }
  return true;
}

// Records which thread holds each worker id; flags two different threads using one id at once
// (which would break per-worker scratch buffers). One thread may hold an id re-entrantly (nested
// calls run on the calling worker).
class WorkerOwnership {
 public:
  explicit WorkerOwnership(int n) : owners_(size_t(n)) {}
  void enter(int w) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (w < 0 || w >= int(owners_.size())) {
      ++bad_ids_;
      return;
    }
    Owner& o = owners_[size_t(w)];
    if (o.depth > 0 && o.thread != std::this_thread::get_id()) {
      ++conflicts_;
      return;
    }
    o.thread = std::this_thread::get_id();
    ++o.depth;
  }
  void leave(int w) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (w < 0 || w >= int(owners_.size())) return;
    Owner& o = owners_[size_t(w)];
    if (o.depth > 0 && o.thread == std::this_thread::get_id()) --o.depth;
  }
  int conflicts() const { return conflicts_; }
  int bad_ids() const { return bad_ids_; }

 private:
  struct Owner {
    std::thread::id thread;
    int depth = 0;
  };
  std::mutex mutex_;
  std::vector<Owner> owners_;
  std::atomic<int> conflicts_{0}, bad_ids_{0};
};

// Runs parallel_for(n, grain) and checks every index is visited exactly once, chunks are
// non-empty, at most `grain` long (grain < 1 counts as 1), and worker ids are in range.
void check_coverage(ThreadPool& pool, int64_t n, int64_t grain) {
  SCOPED_TRACE("pool " + std::to_string(pool.size()) + ", n " + std::to_string(n) + ", grain " +
               std::to_string(grain));
  const int64_t max_chunk = grain < 1 ? 1 : grain;
  std::vector<std::atomic<int>> hits(size_t(n > 0 ? n : 0));
  std::atomic<int> bad_chunks{0}, bad_workers{0};
  std::atomic<int64_t> calls{0};
  pool.parallel_for(n, grain, [&](int64_t b, int64_t e, int w) {
    calls.fetch_add(1);
    if (b < 0 || e > n || b >= e || e - b > max_chunk) {
      bad_chunks.fetch_add(1);
      return;
    }
    if (w < 0 || w >= pool.size()) bad_workers.fetch_add(1);
    for (int64_t i = b; i < e; ++i) hits[size_t(i)].fetch_add(1);
  });
  EXPECT_EQ(bad_chunks.load(), 0);
  EXPECT_EQ(bad_workers.load(), 0);
  int64_t wrong = 0, first_wrong = -1;
  for (int64_t i = 0; i < n; ++i)
    if (hits[size_t(i)].load() != 1 && wrong++ == 0) first_wrong = i;
  EXPECT_EQ(wrong, 0) << "first index not visited exactly once: " << first_wrong;
  // Every chunk holds at most max_chunk items, so at least ceil(n / max_chunk) calls are needed.
  if (n <= 0) {
    EXPECT_EQ(calls.load(), 0);
  } else {
    EXPECT_GE(calls.load(), (n + max_chunk - 1) / max_chunk);
  }
}

TEST(ThreadPool, SizeIsAtLeastOne) {
  EXPECT_EQ(ThreadPool(1).size(), 1);
  EXPECT_EQ(ThreadPool(5).size(), 5);
  EXPECT_EQ(ThreadPool(0).size(), 1);
  EXPECT_EQ(ThreadPool(-3).size(), 1);
}

TEST(ThreadPool, ParallelForCoversEveryIndexExactlyOnce) {
  Watchdog watchdog("coverage");
  const int64_t ns[] = {-5, 0, 1, 2, 3, 7, 8, 63, 64, 65, 100, 1000, 4097};
  const int64_t grains[] = {-1, 0, 1, 2, 3, 7, 64, 1000, 5000};
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    for (int64_t n : ns)
      for (int64_t grain : grains) check_coverage(pool, n, grain);
  }
}

TEST(ThreadPool, NegativeOrZeroGrainMeansSingleItems) {
  ThreadPool pool(3);
  for (int64_t grain : {int64_t(0), int64_t(-7)}) {
    std::atomic<int> calls{0}, longer{0};
    pool.parallel_for(50, grain, [&](int64_t b, int64_t e, int) {
      calls.fetch_add(1);
      if (e - b != 1) longer.fetch_add(1);
    });
    EXPECT_EQ(calls.load(), 50);
    EXPECT_EQ(longer.load(), 0);
  }
}

TEST(ThreadPool, SingleChunkRunsOnCallingThreadAsWorkerZero) {
  ThreadPool pool(4);
  const auto caller = std::this_thread::get_id();
  int calls = 0;
  pool.parallel_for(10, 10, [&](int64_t b, int64_t e, int w) {
    ++calls;
    EXPECT_EQ(b, 0);
    EXPECT_EQ(e, 10);
    EXPECT_EQ(w, 0);
    EXPECT_EQ(std::this_thread::get_id(), caller);
  });
  EXPECT_EQ(calls, 1);
}

TEST(ThreadPool, WorkerIdsMapToDistinctStableThreads) {
  Watchdog watchdog("worker ids");
  ThreadPool pool(4);
  std::mutex m;
  std::vector<std::set<std::thread::id>> threads_of(4);
  std::atomic<int> bad{0};
  pool.parallel_for(4000, 1, [&](int64_t, int64_t, int w) {
    if (w < 0 || w >= 4) {
      bad.fetch_add(1);
      return;
    }
    std::lock_guard<std::mutex> lock(m);
    threads_of[size_t(w)].insert(std::this_thread::get_id());
  });
  EXPECT_EQ(bad.load(), 0);
  std::set<std::thread::id> all;
  for (const auto& s : threads_of) {
    EXPECT_LE(s.size(), 1u) << "one worker id used by several threads in one call";
    all.insert(s.begin(), s.end());
  }
  // Distinct ids never share a thread.
  size_t used = 0;
  for (const auto& s : threads_of) used += s.size();
  EXPECT_EQ(all.size(), used);
  // Worker 0 is the calling thread.
  if (!threads_of[0].empty()) {
    EXPECT_EQ(*threads_of[0].begin(), std::this_thread::get_id());
  }
}

TEST(ThreadPool, ParallelForRunsChunksConcurrently) {
  Watchdog watchdog("concurrency");
  ThreadPool pool(2);
  // Each of the two chunks waits for the other: they finish only if two threads run them at once.
  std::atomic<int> arrived{0}, together{0};
  pool.parallel_for(2, 1, [&](int64_t, int64_t, int) {
    if (arrive_and_wait(arrived, 2, 5s)) together.fetch_add(1);
  });
  EXPECT_EQ(together.load(), 2);
}

TEST(ThreadPool, RunOnAllRunsExactlyOncePerWorkerConcurrently) {
  Watchdog watchdog("run_on_all");
  for (int threads : {1, 2, 5, 16}) {
    ThreadPool pool(threads);
    std::vector<std::atomic<int>> runs(static_cast<size_t>(threads));
    std::atomic<int> arrived{0}, together{0}, bad{0};
    std::mutex m;
    std::set<std::thread::id> ids;
    pool.run_on_all([&](int w) {
      if (w < 0 || w >= threads) {
        bad.fetch_add(1);
        return;
      }
      runs[size_t(w)].fetch_add(1);
      {
        std::lock_guard<std::mutex> lock(m);
        ids.insert(std::this_thread::get_id());
      }
      if (arrive_and_wait(arrived, threads)) together.fetch_add(1);
    });
    EXPECT_EQ(bad.load(), 0);
    for (int w = 0; w < threads; ++w) EXPECT_EQ(runs[size_t(w)].load(), 1) << "worker " << w;
    EXPECT_EQ(int(ids.size()), threads);
    EXPECT_EQ(together.load(), threads) << "workers of a " << threads << "-thread pool";
  }
}

TEST(ThreadPool, NestedParallelForRunsSeriallyOnTheCallingWorker) {
  Watchdog watchdog("nested");
  ThreadPool pool(4);
  WorkerOwnership owners(4);
  std::vector<std::atomic<int>> hits(4 * 100);
  std::atomic<int> wrong_thread{0}, wrong_worker{0}, arrived{0};
  pool.parallel_for(4, 1, [&](int64_t ob, int64_t, int outer_worker) {
    arrive_and_wait(arrived, 4, 5s);  // one outer chunk on each worker, all running at once
    owners.enter(outer_worker);
    const auto me = std::this_thread::get_id();
    pool.parallel_for(100, 7, [&](int64_t b, int64_t e, int w) {
      owners.enter(w);
      if (std::this_thread::get_id() != me) wrong_thread.fetch_add(1);
      if (w != outer_worker) wrong_worker.fetch_add(1);
      for (int64_t i = b; i < e; ++i) hits[size_t(ob * 100 + i)].fetch_add(1);
      std::this_thread::sleep_for(50us);
      owners.leave(w);
    });
    owners.leave(outer_worker);
  });
  for (size_t i = 0; i < hits.size(); ++i) EXPECT_EQ(hits[i].load(), 1) << i;
  EXPECT_EQ(wrong_thread.load(), 0);
  EXPECT_EQ(wrong_worker.load(), 0) << "a nested call must keep the calling worker's id";
  EXPECT_EQ(owners.conflicts(), 0);
  EXPECT_EQ(owners.bad_ids(), 0);
}

TEST(ThreadPool, NestedRunOnAllRunsOnceAsTheCallingWorker) {
  Watchdog watchdog("nested run_on_all");
  ThreadPool pool(3);
  std::atomic<int> calls{0}, wrong{0};
  pool.run_on_all([&](int outer) {
    pool.run_on_all([&](int w) {
      calls.fetch_add(1);
      if (w != outer) wrong.fetch_add(1);
    });
  });
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ(wrong.load(), 0);
}

TEST(ThreadPool, CallIntoAnotherPoolFromATaskRunsSerially) {
  Watchdog watchdog("cross-pool");
  ThreadPool outer(3), inner(5);
  std::atomic<int64_t> sum{0};
  std::atomic<int> wrong_thread{0}, bad_worker{0};
  outer.parallel_for(6, 1, [&](int64_t, int64_t, int) {
    const auto me = std::this_thread::get_id();
    inner.parallel_for(1000, 10, [&](int64_t b, int64_t e, int w) {
      if (std::this_thread::get_id() != me) wrong_thread.fetch_add(1);
      if (w < 0 || w >= inner.size()) bad_worker.fetch_add(1);
      for (int64_t i = b; i < e; ++i) sum.fetch_add(i);
    });
  });
  EXPECT_EQ(sum.load(), 6 * (999 * 1000 / 2));
  EXPECT_EQ(wrong_thread.load(), 0);
  EXPECT_EQ(bad_worker.load(), 0);
}

TEST(ThreadPool, SerialRunsMayCallBackIntoThePool) {
  Watchdog watchdog("serial re-entry");
  // A job small enough to run serially on the caller is not a pool task: its fn may start a
  // parallel job on the same pool.
  ThreadPool pool(3);
  std::atomic<int> arrived{0}, together{0};
  pool.parallel_for(1, 1, [&](int64_t, int64_t, int) {
    pool.run_on_all([&](int) {
      if (arrive_and_wait(arrived, 3)) together.fetch_add(1);
    });
  });
  EXPECT_EQ(together.load(), 3);
}

TEST(ThreadPool, ManySmallJobsDoNotDeadlock) {
  Watchdog watchdog("10000 small jobs");
  ThreadPool pool(4);
  int64_t total = 0;
  for (int job = 0; job < 10000; ++job) {
    std::atomic<int64_t> sum{0};
    pool.parallel_for(8, 1, [&](int64_t b, int64_t, int) { sum.fetch_add(b + 1); });
    total += sum.load();
    if (job % 2 == 0) pool.run_on_all([&](int) { sum.fetch_add(0); });
  }
  EXPECT_EQ(total, 10000 * 36);
}

TEST(ThreadPool, ConcurrentCallersShareThePoolSafely) {
  Watchdog watchdog("concurrent callers");
  ThreadPool pool(4);
  WorkerOwnership owners(4);
  constexpr int kCallers = 3, kJobs = 200;
  std::atomic<int> wrong{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c)
    callers.emplace_back([&, c] {
      for (int job = 0; job < kJobs; ++job) {
        const int64_t n = 1 + (job * 7 + c) % 40;
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        pool.parallel_for(n, 1 + job % 5, [&](int64_t b, int64_t e, int w) {
          owners.enter(w);
          for (int64_t i = b; i < e; ++i) hits[size_t(i)].fetch_add(1);
          owners.leave(w);
        });
        for (auto& h : hits)
          if (h.load() != 1) wrong.fetch_add(1);
      }
    });
  for (auto& t : callers) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(owners.conflicts(), 0) << "two threads used one worker id at once";
  EXPECT_EQ(owners.bad_ids(), 0);
}

// Exceptions: the first one a task throws is rethrown on the calling thread once every worker has
// finished; chunks not yet handed out are skipped; the pool stays usable.
TEST(ThreadPool, ExceptionInCallerChunkIsRethrownAfterWorkersFinish) {
  Watchdog watchdog("exception from caller");
  ThreadPool pool(4);
  std::atomic<int> running{0}, arrived{0};
  try {
    pool.parallel_for(4, 1, [&](int64_t, int64_t, int w) {
      running.fetch_add(1);
      arrive_and_wait(arrived, 4, 5s);  // every worker is inside a chunk before anyone throws
      if (w == 0) {
        running.fetch_sub(1);
        throw std::runtime_error("boom from the caller");
      }
      std::this_thread::sleep_for(30ms);
      running.fetch_sub(1);
    });
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "boom from the caller");
    EXPECT_EQ(running.load(), 0) << "rethrown while other workers were still running";
  }
  check_coverage(pool, 1000, 3);
}

TEST(ThreadPool, ExceptionOnWorkerThreadIsRethrownOnCaller) {
  Watchdog watchdog("exception from worker");
  ThreadPool pool(4);
  std::vector<std::atomic<int>> finished(4);
  try {
    pool.run_on_all([&](int w) {
      if (w == 3) throw std::out_of_range("worker 3 failed");
      std::this_thread::sleep_for(20ms);
      finished[size_t(w)].store(1);
    });
    ADD_FAILURE() << "no exception";
  } catch (const std::out_of_range& e) {
    EXPECT_STREQ(e.what(), "worker 3 failed");
  }
  for (int w = 0; w < 3; ++w) EXPECT_EQ(finished[size_t(w)].load(), 1) << w;
}

TEST(ThreadPool, OnlyOneOfManyExceptionsIsRethrownAndRemainingChunksAreSkipped) {
  Watchdog watchdog("many exceptions");
  ThreadPool pool(4);
  std::atomic<int> started{0};
  EXPECT_THROW(pool.parallel_for(100000, 1,
                                 [&](int64_t, int64_t, int) {
                                   started.fetch_add(1);
                                   throw std::logic_error("every chunk throws");
                                 }),
               std::logic_error);
  // Each worker stops at its first exception, so at most one chunk per worker ran.
  EXPECT_GE(started.load(), 1);
  EXPECT_LE(started.load(), pool.size());
}

TEST(ThreadPool, PoolStaysParallelAfterAnException) {
  Watchdog watchdog("after exception");
  ThreadPool pool(3);
  for (int round = 0; round < 3; ++round)
    EXPECT_THROW(pool.parallel_for(30, 1,
                                   [](int64_t b, int64_t, int) {
                                     if (b == 29) throw std::runtime_error("last");
                                   }),
                 std::runtime_error);
  // The calling thread must not be left marked as "inside a task" (which would make every later
  // call serial): three workers still run at once.
  std::atomic<int> arrived{0}, together{0};
  pool.run_on_all([&](int) {
    if (arrive_and_wait(arrived, 3)) together.fetch_add(1);
  });
  EXPECT_EQ(together.load(), 3);
  check_coverage(pool, 777, 5);
}

TEST(ThreadPool, ExceptionsPropagateFromSerialAndNestedRuns) {
  Watchdog watchdog("serial exceptions");
  ThreadPool single(1), pool(3);
  EXPECT_THROW(single.parallel_for(10, 1,
                                   [](int64_t b, int64_t, int) {
                                     if (b == 5) throw std::runtime_error("serial");
                                   }),
               std::runtime_error);
  EXPECT_THROW(single.run_on_all([](int) { throw std::runtime_error("serial"); }),
               std::runtime_error);
  EXPECT_THROW(pool.parallel_for(6, 1,
                                 [&](int64_t, int64_t, int) {
                                   pool.parallel_for(10, 2, [](int64_t b, int64_t, int) {
                                     if (b == 4) throw std::runtime_error("nested");
                                   });
                                 }),
               std::runtime_error);
  check_coverage(pool, 100, 1);
}

TEST(ThreadPool, SixtyFourThreadsOnAFewCores) {
  Watchdog watchdog("64 threads", 120s);
  for (int threads : {64, 96}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    check_coverage(pool, 10000, 1);
    check_coverage(pool, 100, 1);  // fewer chunks than workers
    check_coverage(pool, 12345, 17);
    // All of them really run at once.
    std::atomic<int> arrived{0}, together{0};
    std::vector<std::atomic<int>> runs(static_cast<size_t>(threads));
    pool.run_on_all([&](int w) {
      runs[size_t(w)].fetch_add(1);
      if (arrive_and_wait(arrived, threads, 20s)) together.fetch_add(1);
    });
    EXPECT_EQ(together.load(), threads);
    for (int w = 0; w < threads; ++w) EXPECT_EQ(runs[size_t(w)].load(), 1) << w;
    for (int job = 0; job < 300; ++job) {
      std::atomic<int> n{0};
      pool.parallel_for(threads * 2, 1,
                        [&](int64_t b, int64_t e, int) { n.fetch_add(int(e - b)); });
      ASSERT_EQ(n.load(), threads * 2) << "job " << job;
    }
  }
}

TEST(ThreadPool, DestroyingAnIdleOrFreshPoolJoinsCleanly) {
  Watchdog watchdog("destruction");
  for (int i = 0; i < 50; ++i) {
    ThreadPool pool(1 + i % 7);
    if (i % 2) pool.parallel_for(20, 1, [](int64_t, int64_t, int) {});
  }
}

// The process-wide pool.
class GlobalPool : public ::testing::Test {
 protected:
  void SetUp() override { saved_ = num_threads(); }
  void TearDown() override { set_num_threads(saved_); }
  int saved_ = 1;
};

TEST_F(GlobalPool, SetNumThreadsChangesSize) {
  Watchdog watchdog("set_num_threads");
  for (int n : {3, 1, 6, 2}) {
    set_num_threads(n);
    EXPECT_EQ(num_threads(), n);
    EXPECT_EQ(thread_pool().size(), n);
    std::vector<std::atomic<int>> runs(static_cast<size_t>(n));
    thread_pool().run_on_all([&](int w) { runs[size_t(w)].fetch_add(1); });
    for (int w = 0; w < n; ++w) EXPECT_EQ(runs[size_t(w)].load(), 1);
    // The free parallel_for uses the global pool.
    std::atomic<int> bad{0};
    std::vector<std::atomic<int>> hits(500);
    parallel_for(500, 3, [&](int64_t b, int64_t e, int w) {
      if (w < 0 || w >= n) bad.fetch_add(1);
      for (int64_t i = b; i < e; ++i) hits[size_t(i)].fetch_add(1);
    });
    EXPECT_EQ(bad.load(), 0);
    for (auto& h : hits) EXPECT_EQ(h.load(), 1);
  }
}

TEST_F(GlobalPool, NonPositiveCountRestoresTheDefault) {
  int expect = int(sysconf(_SC_NPROCESSORS_ONLN));
  if (const char* env = std::getenv("DSINFER_THREADS"); env && std::atoi(env) > 0)
    expect = std::atoi(env);
  set_num_threads(expect == 1 ? 2 : 1);
  set_num_threads(0);
  EXPECT_EQ(num_threads(), expect);
  set_num_threads(expect == 1 ? 2 : 1);
  set_num_threads(-4);
  EXPECT_EQ(num_threads(), expect);
}

}  // namespace
}  // namespace dsinfer
