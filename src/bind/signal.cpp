// evo.signal: the native side of the Signal class (lib/Signal.lua).
//
// A started Signal reports SIGNAL_RECEIVED {signal = "SIGINT", signum = 2}.
// Watching SIGINT this way (or with luv's uv.new_signal) replaces Evo's
// default "exit 130 on Ctrl-C": the script has taken charge of it.
#include <csignal>
#include <cstring>
#include <memory>
#include <string>

#include "lua/modules.h"
#include "lua/runtime.h"
#include "lua/twin.h"

namespace evo {
namespace {

struct SignalName {
  const char* name;
  int number;
};

const SignalName kSignals[] = {
    {"SIGHUP", SIGHUP},   {"SIGINT", SIGINT},   {"SIGQUIT", SIGQUIT},     {"SIGABRT", SIGABRT},
    {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2}, {"SIGPIPE", SIGPIPE},     {"SIGALRM", SIGALRM},
    {"SIGTERM", SIGTERM}, {"SIGCHLD", SIGCHLD}, {"SIGCONT", SIGCONT},     {"SIGTSTP", SIGTSTP},
    {"SIGTTIN", SIGTTIN}, {"SIGTTOU", SIGTTOU}, {"SIGWINCH", SIGWINCH},   {"SIGPROF", SIGPROF},
    {"SIGXCPU", SIGXCPU}, {"SIGXFSZ", SIGXFSZ}, {"SIGVTALRM", SIGVTALRM},
};

const char* signal_name(int signum) {
  for (const auto& s : kSignals) {
    if (s.number == signum) return s.name;
  }
  return "SIGUNKNOWN";
}

// Accepts "SIGINT", "sigint", "INT", "int" or a number.
int check_signal(lua_State* L, int idx) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    int n = static_cast<int>(lua_tointeger(L, idx));
    luaL_argcheck(L, n > 0 && n < NSIG, idx, "invalid signal number");
    return n;
  }
  std::string name = luaL_checkstring(L, idx);
  for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (name.rfind("SIG", 0) != 0) name = "SIG" + name;
  for (const auto& s : kSignals) {
    if (name == s.name) return s.number;
  }
  luaL_argerror(L, idx, lua_pushfstring(L, "unknown signal '%s'", lua_tostring(L, idx)));
  return 0;
}

class Signal final : public TwinHandle {
 public:
  static const char kClassKey;
  static constexpr const char* kClassName = "Signal";

  // `deliver`: the stack index of lib/Signal.lua's deliverer, or 0.
  Signal(lua_State* L, int twin, int deliver, uv_loop_t* loop)
      : TwinHandle(L, twin, &kClassKey, deliver), init_status_(uv_signal_init(loop, &signal_)) {}
  [[nodiscard]] int init_status() const { return init_status_; }
  uv_handle_t* uv_handle() override { return reinterpret_cast<uv_handle_t*>(&signal_); }

  int start(int signum) { return uv_signal_start(&signal_, on_signal, signum); }
  void stop() { uv_signal_stop(&signal_); }

 private:
  static void on_signal(uv_signal_t* s, int signum) {
    auto* self = static_cast<Signal*>(NativeHandle::from(reinterpret_cast<uv_handle_t*>(s)));
    const char* name = signal_name(signum);
    auto number = static_cast<double>(signum);
    self->emit_values(
        "SIGNAL_RECEIVED",
        [name, number](lua_State* L) {
          lua_pushstring(L, name);
          lua_pushnumber(L, number);
          return 2;
        },
        [name, number](lua_State* L) {
          events::field(L, "signal", name);
          events::field(L, "signum", number);
        },
        2);
  }

  uv_signal_t signal_{};
  int init_status_;
};

const char Signal::kClassKey = 0;

int signal_open(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  auto signal = std::make_unique<Signal>(L, 1, 2, Runtime::from(L).loop());
  if (int rc = signal->init_status(); rc != 0) {
    signal.reset();  // unbinds from the twin
    return luaL_error(L, "Signal: %s", uv_strerror(rc));
  }
  NativeHandle::release_to_loop(std::move(signal));
  return 0;
}

int signal_start(lua_State* L) {
  auto* s = check_twin<Signal>(L, 1);
  int rc = s->start(check_signal(L, 2));
  if (rc != 0) return luaL_error(L, "Signal:start: %s", uv_strerror(rc));
  lua_settop(L, 1);
  return 1;
}

int signal_stop(lua_State* L) {
  check_twin<Signal>(L, 1)->stop();
  lua_settop(L, 1);
  return 1;
}

int signal_close(lua_State* L) {
  if (auto* s = check_twin<Signal>(L, 1, /*allow_closed=*/true)) s->close();
  return 0;
}

int signal_name_of(lua_State* L) {
  lua_pushstring(L, signal_name(check_signal(L, 1)));
  return 1;
}

}  // namespace

int open_signal(lua_State* L) {
  const luaL_Reg functions[] = {
      {"open", signal_open},   {"start", signal_start},  {"stop", signal_stop},
      {"close", signal_close}, {"name", signal_name_of}, {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace evo
