// Versions of Evo and of the libraries it is built on (evo --version).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace evo {

// {"evo", "0.1.0"}, {"luajit", "LuaJIT 2.1.0-beta3"}, {"libuv", ...}, ...
std::vector<std::pair<std::string, std::string>> versions();

}  // namespace evo
