// libsimdjson, loaded on first use. Debian ships simdjson only as a shared
// library, and a one-file executable (`evo build`, docs/build.md) should need
// nothing but glibc and libstdc++; so evo does not link it. Almost all of
// simdjson is inline in <simdjson.h> and calls through the active
// implementation's virtual functions; evo's code imports just two functions
// from the library, simdjson::validate_utf8 and
// simdjson::get_active_implementation. simdjson_lib.cpp defines both (hidden,
// so the library never binds to them) forwarding to the library's own,
// found with dlopen + dlsym the first time either is called.
//
// Where the library comes from, first match wins:
//   1. EVO_LIBSIMDJSON, when set: that file (the tests point it at a missing
//      one to check the error);
//   2. in a built app, the copy `evo build` embedded in the archive (loaded
//      from a memfd, as embedded C modules are);
//   3. the system's libsimdjson.so.14 (Debian's libsimdjson14).
//
// Without it, json.decode returns nil, err (LibraryUnavailable) and
// validate_utf8 (json.encode's check of non-ASCII text) falls back to
// proto/json_write's scalar validator; nothing else uses simdjson.
#pragma once

#include <string>

namespace evo::simdjson_lib {

// The soname the runtime was compiled against (<simdjson.h> 3.0.x).
inline constexpr const char* kSoname = "libsimdjson.so.14";

// Loads the library the first time it is called (once per process,
// thread-safe: worker states decode too; a failure is remembered). Returns ""
// when it is loaded, else why not, naming Debian's libsimdjson14 package.
const std::string& load_error();

inline bool available() { return load_error().empty(); }

// The file the library was loaded from ("/lib/x86_64-linux-gnu/...", or
// "/proc/self/fd/N" for a built app's embedded copy); "" when it could not be
// loaded. `evo build` copies this file into the app.
const std::string& path();

}  // namespace evo::simdjson_lib
