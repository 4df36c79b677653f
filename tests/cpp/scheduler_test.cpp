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

}  // namespace
}  // namespace evo
