// Tells `evo --watch` which files a process loads (docs/cli.md#watch-mode).
//
// The watcher runs the real command as a child with EVO_WATCH_REPORT naming a
// file; every Evo process below it (the child, its workers, their threads)
// inherits the variable and appends each Lua file it loads to that file, one
// absolute path a line. Without the variable nothing is changed.
#pragma once

#include <lua.hpp>

namespace evo::loadreport {

inline constexpr const char kEnv[] = "EVO_WATCH_REPORT";

// When kEnv is set: wraps require's file searchers (package.loaders after
// the built-in one), loadfile and dofile so that they report each file.
// Call after the searchers and paths are in place.
void install(lua_State* L);

}  // namespace evo::loadreport
