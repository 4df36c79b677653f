// The scheduler's invariants: FIFO order, no lost wake-ups, one resume per
// readiness, deferred tasks wait one loop iteration.
#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "core/loop.h"
#include "core/scheduler.h"

namespace evo {
namespace {

struct FakeTask : Schedulable {
  int id = 0;
};

struct Recorder {
  std::vector<int> order;
  // Optional behaviour run when a task is resumed.
  std::function<void(FakeTask*)> on_resume;
};

void record(Schedulable* t, void* context) {
  auto* r = static_cast<Recorder*>(context);
  auto* task = static_cast<FakeTask*>(t);
  r->order.push_back(task->id);
  if (r->on_resume) r->on_resume(task);
}

TEST(Scheduler, ResumesReadyTasksInFifoOrder) {
  Loop loop;
  Recorder rec;
  Scheduler s(loop.get(), record, &rec);
  std::vector<FakeTask> tasks(5);
  for (int i = 0; i < 5; ++i) {
    tasks[i].id = i;
    s.make_ready(&tasks[i]);
  }
  s.drain();
  EXPECT_EQ(rec.order, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(s.ready_count(), 0U);
}

TEST(Scheduler, ATaskMadeReadyTwiceBeforeItRunsIsResumedOnce) {
  Loop loop;
  Recorder rec;
  Scheduler s(loop.get(), record, &rec);
  FakeTask a;
  a.id = 1;
  s.make_ready(&a);
  s.make_ready(&a);
  s.defer(&a);
  s.drain();
  EXPECT_EQ(rec.order, (std::vector<int>{1}));
}

TEST(Scheduler, TasksMadeReadyDuringADrainRunInThatDrainAfterTheOthers) {
  Loop loop;
  Recorder rec;
  Scheduler s(loop.get(), record, &rec);
  FakeTask a, b, c;
  a.id = 1;
  b.id = 2;
  c.id = 3;
  rec.on_resume = [&](FakeTask* t) {
    if (t == &a) s.make_ready(&c);  // e.g. a finished and wakes its awaiter
  };
  s.make_ready(&a);
  s.make_ready(&b);
  s.drain();
  EXPECT_EQ(rec.order, (std::vector<int>{1, 2, 3})) << "no wake-up lost, FIFO kept";
}

TEST(Scheduler, ATaskMadeReadyAgainWhileRunningRunsAgain) {
  Loop loop;
  Recorder rec;
  Scheduler s(loop.get(), record, &rec);
  FakeTask a;
  a.id = 7;
  int runs = 0;
  rec.on_resume = [&](FakeTask* t) {
    if (++runs < 3) s.make_ready(t);  // each completion is a new readiness
  };
  s.make_ready(&a);
  s.drain();
  EXPECT_EQ(rec.order, (std::vector<int>{7, 7, 7}));
}

TEST(Scheduler, DeferredTasksWaitForTheNextLoopIteration) {
  Loop loop;
  Recorder rec;
  Scheduler s(loop.get(), record, &rec);
  FakeTask a;
  a.id = 1;
  int hops = 0;
  rec.on_resume = [&](FakeTask* t) {
    if (++hops < 5) s.defer(t);  // like task.yield(): once per iteration
  };
  s.make_ready(&a);
  s.drain();
  EXPECT_EQ(hops, 1) << "a deferred task must not run again in the same drain";
  // The loop's check phase drains once per iteration; the idle handle keeps
  // the poll from blocking while something is deferred.
  int iterations = 0;
  while (s.ready_count() > 0 && iterations < 100) {
    uv_run(loop.get(), UV_RUN_ONCE);
    ++iterations;
  }
  EXPECT_EQ(hops, 5);
  EXPECT_EQ(iterations, 4) << "one hop per loop iteration";
}

TEST(Scheduler, DrainHonoursItsBudgetAndLeavesTheRestReady) {
  Loop loop;
  Recorder rec;
  Scheduler s(loop.get(), record, &rec);
  std::vector<FakeTask> tasks(Scheduler::kDrainBudget + 5);
  for (size_t i = 0; i < tasks.size(); ++i) {
    tasks[i].id = static_cast<int>(i);
    s.make_ready(&tasks[i]);
  }
  s.drain();
  EXPECT_EQ(rec.order.size(), Scheduler::kDrainBudget);
  EXPECT_EQ(s.ready_count(), 5U);
  uv_run(loop.get(), UV_RUN_ONCE);  // the idle handle kept the loop from blocking
  EXPECT_EQ(rec.order.size(), tasks.size());
  EXPECT_EQ(rec.order.back(), static_cast<int>(tasks.size() - 1));
}

TEST(Scheduler, ForgetRemovesAQueuedTask) {
  Loop loop;
  Recorder rec;
  Scheduler s(loop.get(), record, &rec);
  FakeTask a, b, c;
  a.id = 1;
  b.id = 2;
  c.id = 3;
  s.make_ready(&a);
  s.make_ready(&b);
  s.defer(&c);
  s.forget(&b);
  s.forget(&c);
  s.drain();
  EXPECT_EQ(rec.order, (std::vector<int>{1}));
}

TEST(Scheduler, TheLoopEndsWhenNothingIsReady) {
  Loop loop;
  Recorder rec;
  Scheduler s(loop.get(), record, &rec);
  FakeTask a;
  a.id = 1;
  s.make_ready(&a);
  uv_run(loop.get(), UV_RUN_DEFAULT);  // must return: idle stops once drained
  EXPECT_EQ(rec.order, (std::vector<int>{1}));
}

// Corking: what was corked is flushed once, in the order corked, when a
// drain ends; outside a drain the loop does not block before flushing it.
struct FakeCorked : Corkable {
  std::vector<int>* log = nullptr;
  int id = 0;
  void flush_corked() override { log->push_back(id); }
};

TEST(Scheduler, CorkedObjectsAreFlushedOnceInOrderWhenADrainEnds) {
  Loop loop;
  Recorder rec;
  Scheduler s(loop.get(), record, &rec);
  std::vector<int> log;
  FakeCorked a, b;
  a.log = b.log = &log;
  a.id = 1;
  b.id = 2;
  FakeTask t;
  rec.on_resume = [&](FakeTask*) {
    s.cork(&b);
    s.cork(&a);
    s.cork(&b);                // already corked: flushed once, in its first place
    EXPECT_TRUE(log.empty());  // nothing is flushed while the drain runs
  };
  s.make_ready(&t);
  s.drain();
  EXPECT_EQ(log, (std::vector<int>{2, 1}));
  EXPECT_FALSE(a.corked());
  s.drain();
  EXPECT_EQ(log.size(), 2U);
}

TEST(Scheduler, ACorkedObjectDestroyedFirstLeavesTheList) {
  Loop loop;
  Recorder rec;
  Scheduler s(loop.get(), record, &rec);
  std::vector<int> log;
  FakeCorked a;
  a.log = &log;
  a.id = 1;
  {
    FakeCorked gone;
    gone.log = &log;
    gone.id = 2;
    s.cork(&gone);
    s.cork(&a);
  }
  s.flush_corked();
  EXPECT_EQ(log, (std::vector<int>{1}));
}

TEST(Scheduler, ACorkOutsideADrainIsFlushedBeforeTheLoopBlocks) {
  Loop loop;
  Recorder rec;
  Scheduler s(loop.get(), record, &rec);
  std::vector<int> log;
  FakeCorked a;
  a.log = &log;
  a.id = 7;
  // A referenced timer far away: a poll that blocked would wait for it.
  uv_timer_t timer;
  uv_timer_init(loop.get(), &timer);
  uv_timer_start(
      &timer, [](uv_timer_t*) {}, 60000, 0);
  s.cork(&a);
  uv_run(loop.get(), UV_RUN_ONCE);  // returns at once: flushed in prepare, or by the drain
  EXPECT_EQ(log, (std::vector<int>{7}));
  uv_close(reinterpret_cast<uv_handle_t*>(&timer), nullptr);
  uv_run(loop.get(), UV_RUN_NOWAIT);
}

TEST(Scheduler, CloseFlushesWhatIsCorked) {
  Loop loop;
  Recorder rec;
  std::vector<int> log;
  FakeCorked a;
  a.log = &log;
  a.id = 3;
  {
    Scheduler s(loop.get(), record, &rec);
    s.cork(&a);
    s.close();
    EXPECT_EQ(log, (std::vector<int>{3}));
  }
  EXPECT_FALSE(a.corked());
  uv_run(loop.get(), UV_RUN_NOWAIT);
}

}  // namespace
}  // namespace evo
