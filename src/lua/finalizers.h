// Finalizers that raise.
//
// LuaJIT runs __gc finalizers inside whatever allocation starts a GC step,
// and propagates their errors from there: out of a script's own code at any
// allocation, and out of Evo's C++ calls into Lua (building a request or an
// event payload, waking a task) to the panic handler, killing the process.
// Evo guards every finalizer a script gives instead: it runs protected, and
// its error is reported ("evo: error in __gc metamethod: ...", or the
// uncaught-error handler of `evo test`) and goes no further, as in Lua 5.4.
//
// Guarded: the metatables of newproxy(true) (their __gc when first set),
// metatables given to userdata by debug.setmetatable (their __gc now, and
// when first set), and ffi.gc finalizers. Not seen: a __gc stored with rawset,
// or replacing one already set (the new one is stored as it is).
#pragma once

#include <lua.hpp>

namespace evo::finalizers {

// Replaces newproxy, debug.setmetatable and ffi.gc of L's globals and
// loaded modules with guarding versions.
void install(lua_State* L);

}  // namespace evo::finalizers
