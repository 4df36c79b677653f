// `evo rocks <luarocks args...>`: Debian's luarocks, configured for Evo
// (docs/rocks.md). The tree is the project's lua_modules (the nearest one
// from the current directory up, or ./lua_modules), the Lua version 5.1, C
// rocks compile against LuaJIT's headers and link no Lua library (the evo
// binary exports the Lua C API), and wrappers of rock scripts run `evo`.
#pragma once

#include <string>
#include <vector>

namespace evo::cli::rocks {

// Runs luarocks with `args` (the words after `evo rocks`); returns the exit
// status for evo (luarocks' own, 128+N for signal N, 127 when luarocks is
// missing).
int main(const std::vector<std::string>& args);

// The configuration file's text (Lua) for an `evo` at `evo_path` and the
// rocks tree `tree`.
std::string config_text(const std::string& evo_path, const std::string& tree);

}  // namespace evo::cli::rocks
