// libsimdjson loaded on first use: see simdjson_lib.h.
#include "bind/simdjson_lib.h"

#include <dlfcn.h>
#include <link.h>
#include <simdjson.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "bind/appfs.h"
#include "proto/json_write.h"

namespace evo::simdjson_lib {
namespace {

using Active = simdjson::internal::atomic_ptr<const simdjson::implementation>;
using ActiveFn = decltype(&simdjson::get_active_implementation);

constexpr const char* kPackageHint =
    "json.decode needs Debian's libsimdjson14 package (apt install libsimdjson14)";
// The library's own definition, by its mangled name (nm -D
// libsimdjson.so.14): dlsym on the handle finds it in that object, never the
// hidden forwarder below. (Its validate_utf8 is get_active_implementation()
// ->validate_utf8(): the forwarder below makes that call itself.)
constexpr const char* kActiveSymbol = "_ZN8simdjson25get_active_implementationEv";

struct Library {
  std::string error;  // empty: loaded
  std::string path;
  // The library's active-implementation slot: a static inside it, so its
  // address never changes (the pointer in it does, once, when the first use
  // picks the best implementation for this CPU).
  Active* active = nullptr;
};

std::string dl_error() {
  const char* why = dlerror();
  return why != nullptr ? why : "unknown error";
}

// dlopen + dlsym of one candidate file; fills lib or says why it could not.
bool open_file(const std::string& file, const std::string& label, Library& lib) {
  // RTLD_LOCAL: simdjson's symbols stay out of the global scope, so nothing
  // loaded later binds to them by accident. The handle is never closed:
  // parsers keep pointers into the library until exit.
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    lib.error = label + " cannot be loaded: " + dl_error() + "; " + kPackageHint;
    return false;
  }
  void* active = dlsym(handle, kActiveSymbol);
  if (active == nullptr) {
    dlclose(handle);
    lib.error = label + " is not simdjson 3 (no simdjson::get_active_implementation); " + kPackageHint;
    return false;
  }
  // POSIX guarantees that dlsym's object pointer converts to the function's.
  lib.active = &reinterpret_cast<ActiveFn>(active)();
  // The file the loader actually mapped (a bare soname is searched for):
  // `evo build` copies it.
  link_map* map = nullptr;
  lib.path = dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map != nullptr ? map->l_name : file;
  lib.error.clear();
  return true;
}

Library open_library() {
  Library lib;
  if (const char* env = std::getenv("EVO_LIBSIMDJSON"); env != nullptr && *env != '\0') {
    open_file(env, env, lib);
    return lib;
  }
  // A built app's own copy first; should it fail to load, the system's.
  std::string embedded = appfs::library_path(kSoname);
  std::string first_error;
  if (!embedded.empty()) {
    if (open_file(embedded, std::string("the app's embedded ") + kSoname, lib)) return lib;
    first_error = lib.error;
  }
  if (!open_file(kSoname, kSoname, lib) && !first_error.empty()) lib.error = first_error + "; " + lib.error;
  return lib;
}

const Library& library() {
  static const Library lib = open_library();  // C++ runs this once, even across threads
  return lib;
}

}  // namespace

const std::string& load_error() { return library().error; }

const std::string& path() { return library().path; }

}  // namespace evo::simdjson_lib

// The two functions evo's code imports from libsimdjson (nm -D
// --undefined-only on an evo linked with it), defined here instead. Hidden:
// evo exports its symbols (-rdynamic, for C modules), and the library's own
// calls to these names must keep binding to its own definitions.
namespace simdjson {

[[gnu::visibility("hidden")]] bool validate_utf8(const char* buf, size_t len) noexcept {
  const auto& lib = evo::simdjson_lib::library();
  // What the library's own validate_utf8 does, one call shorter.
  if (lib.active != nullptr) return (*lib.active)->validate_utf8(buf, len);
  // Without the library, json.encode still checks non-ASCII text: slower,
  // same answer (tests/cpp/json_write_test.cpp compares the two).
  return evo::json::valid_utf8(std::string_view(buf, len));
}

[[gnu::visibility("hidden")]] internal::atomic_ptr<const implementation>& get_active_implementation() {
  const auto& lib = evo::simdjson_lib::library();
  if (lib.active == nullptr) {
    // Only a parser's allocate() gets here, and json.decode checks
    // available() before it makes one: a caller that did not is a bug.
    std::fprintf(stderr, "evo: simdjson used without its library: %s\n", lib.error.c_str());
    std::abort();
  }
  return *lib.active;
}

}  // namespace simdjson
