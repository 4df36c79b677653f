// NativeHandle: ownership handed to libuv, and telling Evo's handles from others.
#include <gtest/gtest.h>

#include <memory>

#include "core/handle.h"
#include "core/loop.h"

namespace evo {
namespace {

class CountingTimer final : public NativeHandle {
 public:
  CountingTimer(uv_loop_t* loop, int* destroyed, int* closed) : destroyed_(destroyed), closed_(closed) {
    uv_timer_init(loop, &timer_);
  }
  ~CountingTimer() override { ++*destroyed_; }
  uv_handle_t* uv_handle() override { return reinterpret_cast<uv_handle_t*>(&timer_); }

 protected:
  void on_closed() override { ++*closed_; }

 private:
  uv_timer_t timer_{};
  int* destroyed_;
  int* closed_;
};

TEST(NativeHandle, IsDestroyedOnceAfterLibuvFinishesClosing) {
  Loop loop;
  int destroyed = 0;
  int closed = 0;
  auto* t = NativeHandle::release_to_loop(std::make_unique<CountingTimer>(loop.get(), &destroyed, &closed));
  t->close();
  t->close();  // a second close is a no-op, not a double free
  EXPECT_EQ(destroyed, 0) << "destroyed before libuv ran the close callback";
  loop.run();
  EXPECT_EQ(closed, 1);
  EXPECT_EQ(destroyed, 1);
}

TEST(NativeHandle, FromTellsEvoHandlesFromForeignOnes) {
  Loop loop;
  int destroyed = 0;
  int closed = 0;
  auto* ours =
      NativeHandle::release_to_loop(std::make_unique<CountingTimer>(loop.get(), &destroyed, &closed));
  EXPECT_EQ(NativeHandle::from(ours->uv_handle()), ours);

  // A luv handle's data starts with a small registry reference.
  struct LuvLike {
    int ref = 3;
    int callbacks[2] = {-2, -2};
  } luv_data;
  uv_timer_t foreign{};
  uv_timer_init(loop.get(), &foreign);
  foreign.data = &luv_data;
  EXPECT_EQ(NativeHandle::from(reinterpret_cast<uv_handle_t*>(&foreign)), nullptr);
  foreign.data = nullptr;
  EXPECT_EQ(NativeHandle::from(reinterpret_cast<uv_handle_t*>(&foreign)), nullptr);

  ours->close();
  uv_close(reinterpret_cast<uv_handle_t*>(&foreign), nullptr);
  loop.run();
  EXPECT_EQ(destroyed, 1);
}

TEST(Loop, DrainClosingFinishesPendingCloses) {
  Loop loop;
  int destroyed = 0;
  int closed = 0;
  for (int i = 0; i < 3; ++i) {
    NativeHandle::release_to_loop(std::make_unique<CountingTimer>(loop.get(), &destroyed, &closed))->close();
  }
  loop.drain_closing();
  EXPECT_EQ(destroyed, 3);
}

}  // namespace
}  // namespace evo
