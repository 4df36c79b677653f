// evo.timer: the native side of the Timer class (lib/Timer.lua).
//
// A Timer reports TIMER_FIRED {count = n} each time it fires; n counts the
// firings since it was last started. Times are in seconds, as everywhere in Evo.
#include <cmath>
#include <memory>

#include "lua/modules.h"
#include "lua/runtime.h"
#include "lua/twin.h"

namespace evo {
namespace {

class Timer final : public TwinHandle {
 public:
  static const char kClassKey;
  static constexpr const char* kClassName = "Timer";

  // `deliver`, the stack index of lib/Timer.lua's deliverer or 0, makes the
  // payload in Lua (events::emit_values).
  Timer(lua_State* L, int twin, int deliver, uv_loop_t* loop) : TwinHandle(L, twin, &kClassKey, deliver) {
    uv_timer_init(loop, &timer_);
  }
  uv_handle_t* uv_handle() override { return reinterpret_cast<uv_handle_t*>(&timer_); }

  void start(uint64_t timeout_ms, uint64_t repeat_ms) {
    count_ = 0;
    uv_timer_start(&timer_, on_fire, timeout_ms, repeat_ms);
  }
  void stop() { uv_timer_stop(&timer_); }
  int again() { return uv_timer_again(&timer_); }
  bool active() { return uv_is_active(uv_handle()) != 0; }

 private:
  static void on_fire(uv_timer_t* t) {
    auto* self = static_cast<Timer*>(NativeHandle::from(reinterpret_cast<uv_handle_t*>(t)));
    ++self->count_;
    auto count = static_cast<double>(self->count_);
    self->emit_values(
        "TIMER_FIRED",
        [count](lua_State* L) {
          lua_pushnumber(L, count);
          return 1;
        },
        [count](lua_State* L) { events::field(L, "count", count); }, 1);
  }

  uv_timer_t timer_{};
  uint64_t count_ = 0;
};

const char Timer::kClassKey = 0;

uint64_t check_ms(lua_State* L, int idx) {
  double seconds = luaL_checknumber(L, idx);
  luaL_argcheck(L, seconds >= 0 && std::isfinite(seconds), idx, "seconds must be a finite number >= 0");
  return static_cast<uint64_t>(std::llround(seconds * 1000.0));
}

int timer_open(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int deliver = lua_type(L, 2) == LUA_TFUNCTION ? 2 : 0;
  auto timer = std::make_unique<Timer>(L, 1, deliver, Runtime::from(L).loop());
  NativeHandle::release_to_loop(std::move(timer));
  return 0;
}

int timer_start(lua_State* L) {
  auto* t = check_twin<Timer>(L, 1);
  uint64_t timeout = check_ms(L, 2);
  uint64_t repeat = lua_isnoneornil(L, 3) ? 0 : check_ms(L, 3);
  t->start(timeout, repeat);
  lua_settop(L, 1);
  return 1;
}

int timer_stop(lua_State* L) {
  check_twin<Timer>(L, 1)->stop();
  lua_settop(L, 1);
  return 1;
}

int timer_again(lua_State* L) {
  auto* t = check_twin<Timer>(L, 1);
  if (t->again() != 0) return luaL_error(L, "Timer:again() needs a repeating timer that was started");
  lua_settop(L, 1);
  return 1;
}

int timer_active(lua_State* L) {
  lua_pushboolean(L, check_twin<Timer>(L, 1)->active() ? 1 : 0);
  return 1;
}

int timer_ref(lua_State* L) {
  uv_ref(check_twin<Timer>(L, 1)->uv_handle());
  lua_settop(L, 1);
  return 1;
}

int timer_unref(lua_State* L) {
  uv_unref(check_twin<Timer>(L, 1)->uv_handle());
  lua_settop(L, 1);
  return 1;
}

int timer_close(lua_State* L) {
  if (auto* t = check_twin<Timer>(L, 1, /*allow_closed=*/true)) t->close();  // twice is harmless
  return 0;
}

}  // namespace

int open_timer(lua_State* L) {
  const luaL_Reg functions[] = {
      {"open", timer_open},   {"start", timer_start},     {"stop", timer_stop},
      {"again", timer_again}, {"isActive", timer_active}, {"ref", timer_ref},
      {"unref", timer_unref}, {"close", timer_close},     {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace evo
