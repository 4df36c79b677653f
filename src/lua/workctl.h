// evo.workctl: cancelling task.work jobs on the thread pool (workctl.cpp).
#pragma once

#include <lua.hpp>

namespace evo {

int open_workctl(lua_State* L);  // "evo.workctl", available in worker states too

namespace workctl {
// Cancels every job (running and queued); returns how many are still running.
int stop_all();
// How many jobs run Lua code now.
int running();
}  // namespace workctl

}  // namespace evo
