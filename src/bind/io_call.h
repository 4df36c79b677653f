// io_call: one Io operation (src/io/io.h) run for a Lua call under the wait
// contract (src/lua/tasks.h). A caller that can yield passes wait = true to
// the Io and suspends if the operation goes on — the task's cancel hook
// cancels the operation, so nothing reports to a cancelled task; any other
// caller gets the operation done inside the call. The native returns
// (true, results...) or the suspension; lib/evo/wait.lua finishes it.
#pragma once

#include <lua.hpp>

#include <functional>
#include <memory>

#include "io/io.h"
#include "lua/tasks.h"

namespace evo {

template <class Result>
using IoStart = std::function<IoOp*(bool wait, std::function<void(Result)> done)>;
// Pushes a result's values; returns how many.
template <class Result>
using IoPush = std::function<int(lua_State* L, Result result)>;

template <class Result>
int io_call(lua_State* L, int yieldable_idx, const IoStart<Result>& start, IoPush<Result> push) {
  TaskSystem& sys = TaskSystem::from(L);
  Task* t = sys.waiter(L, yieldable_idx);
  if (t != nullptr && sys.take_cancel(t)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  struct Call {
    bool now = true;
    int n = 0;
    std::shared_ptr<Waker> waker;
  };
  auto call = std::make_shared<Call>();
  lua_pushboolean(L, 1);  // the protocol's leading true, for an answer now
  IoOp* op = start(t != nullptr, [call, L, &sys, push = std::move(push)](Result r) {
    if (call->now) {
      call->n = push(L, std::move(r));
    } else if (call->waker != nullptr) {
      call->waker->wake(push(sys.L(), std::move(r)));
    }
  });
  call->now = false;
  if (op == nullptr) return call->n + 1;
  lua_pop(L, 1);
  call->waker = sys.begin_shared_wait(
      t, [](Task* /*t*/, void* arg) { static_cast<IoOp*>(arg)->cancel(); }, op);
  return sys.suspend(L, t);
}

}  // namespace evo
