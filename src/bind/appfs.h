// The archive of a one-file executable (`evo build`, docs/build.md), as the
// running program sees it: opened from /proc/self/exe once at start-up,
// mapped read-only, and served to require (a package searcher), fs, io.open,
// io.lines and http.static through the "evo.appfs" module.
#pragma once

#include <lua.hpp>

#include <string>
#include <string_view>

#include "proto/app_archive.h"

namespace evo::appfs {

// Checks this executable for an archive trailer (one open, one pread) and
// maps the archive when there is one. Returns whether there is. Call once,
// before any Lua state opens.
bool open_self();

// The archive's description (name, version, entry module), when open_self()
// found one; nullptr otherwise.
const app_archive::Meta* meta();

// "/proc/self/fd/N" holding the shared library `evo build` embedded under
// this soname (Kind::Library), or "" when there is none (a plain evo, or an
// app built without it). The memfd is made once and kept.
std::string library_path(std::string_view soname);

// Where the runtime image ends in /proc/self/exe: the whole file for a plain
// evo, archive_start for a built app (`evo build` run by a built app copies
// only the runtime).
uint64_t runtime_size();

// Pushes the loader of the embedded entry module (luaL_loadbuffer's result:
// 0 and the function, or an error code and the message).
int load_entry(lua_State* L);

// package.loaders entry for embedded Lua and C modules.
int searcher(lua_State* L);

// Replaces io.open and io.lines by versions that read embedded files first.
void install_io_hooks(lua_State* L);

}  // namespace evo::appfs
