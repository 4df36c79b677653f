// The interactive REPL: `evo` on a terminal, or `evo -i`.
//
// Input is read while the event loop runs, so timers and I/O started from the
// prompt go on between lines. On a terminal, libedit gives line editing and
// history (~/.evo_history); otherwise lines are read plainly. Each input is
// evaluated by lib/evo/repl.lua: expressions print their values, incomplete
// chunks continue on the next line, errors are printed and the REPL goes on.
#pragma once

#include <lua.hpp>

namespace evo {
class Runtime;

namespace repl {

void start(Runtime& rt);

// "evo.replnative": lets lib/evo/repl.lua hand back the prompt.
int open_native(lua_State* L);

}  // namespace repl
}  // namespace evo
