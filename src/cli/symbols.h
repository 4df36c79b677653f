// Names of native code addresses, for the profiler's [C] frames.
//
// An address in a shared library is named from its dynamic symbols
// (dladdr); one in the evo executable from its full symbol table (.symtab,
// read from /proc/self/exe once, when first needed), which also holds
// LuaJIT's, luv's and Evo's internal functions. C++ names are demangled and
// shortened (no parameter list, no "(anonymous namespace)::"). What has no
// symbol is named after its library ("libc.so.6").
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace evo::cli {

class Symbols {
 public:
  // The function containing `pc`, or "" when no object is mapped there (JIT
  // machine code, for one).
  const std::string& name(uintptr_t pc);

 private:
  struct Entry {
    uintptr_t start;
    uintptr_t end;
    std::string name;
  };
  void load_executable();
  const Entry* find_in_executable(uintptr_t pc) const;

  bool loaded_ = false;
  uintptr_t exe_base_ = 0;
  std::vector<Entry> exe_;  // sorted by start
  std::unordered_map<uintptr_t, std::string> cache_;
};

// "evo::http::Server::on_read" for "_ZN3evo4http6Server7on_readEv"; other
// names unchanged.
std::string short_symbol(const char* mangled);

}  // namespace evo::cli
