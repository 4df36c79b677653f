// Integers from 64-bit sources (SQLite, Postgres) into Lua: a number while a
// double holds the value exactly (|i| <= 2^53), else an int64_t cdata, so a
// large id comes back exact and still compares and prints as an integer.
#pragma once

#include <lua.hpp>

#include <cstdint>

namespace evo {

void push_int64(lua_State* L, int64_t i);

}  // namespace evo
