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
#include <string>

#include "io/io.h"
#include "lua/errors.h"
#include "lua/tasks.h"

namespace evo {

// nil, err: an Io failure, from a libuv status or an Evo code. Returns 2.
inline int push_failure(lua_State* L, int status, const char* code, const std::string& detail) {
  lua_pushnil(L);
  if (code != nullptr) {
    errors::push_error(L, code, detail);
  } else {
    errors::push_uv_error(L, status, detail);
  }
  return 2;
}

// true, nil, err: a native call's answer now, for a failure. Returns 3.
inline int answer_failure(lua_State* L, int status, const std::string& detail = std::string()) {
  lua_pushboolean(L, 1);
  return push_failure(L, status, nullptr, detail) + 1;
}
inline int answer_failure(lua_State* L, const char* code, const std::string& message) {
  lua_pushboolean(L, 1);
  return push_failure(L, 0, code, message) + 1;
}

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
