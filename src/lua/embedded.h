// Evo's Lua library, compiled to bytecode at build time (tools/embed.cpp).
#pragma once

#include <cstddef>

namespace evo::embedded {

struct LuaModule {
  const char* name;  // "events", "evo.test", ...
  const unsigned char* bytecode;
  size_t size;
};

extern const LuaModule kLuaModules[];  // sorted by name
extern const size_t kLuaModuleCount;

}  // namespace evo::embedded
