// libpq loaded on first use: see libpq.h.
#include "bind/libpq.h"

#include <dlfcn.h>

#include <cstdlib>
#include <iterator>
#include <type_traits>

namespace evo::libpq {
namespace {

constexpr const char* kDefaultLibrary = "libpq.so.5";
constexpr const char* kPackageHint = "the postgres module needs Debian's libpq5 package (apt install libpq5)";

// One entry per Api member: the symbol's name and how to store its address
// in the member, with the member's own type.
struct Symbol {
  const char* name;
  void (*store)(Api& api, void* address);
};

template <auto Member>
void store(Api& api, void* address) {
  using Fn = std::remove_reference_t<decltype(api.*Member)>;
  // POSIX guarantees that dlsym's object pointer converts to the function's.
  api.*Member = reinterpret_cast<Fn>(address);
}

// The stringizing macro keeps each name and its member the same word.
// clang-format off
#define EVO_PQ_SYMBOL(fn) Symbol{#fn, store<&Api::fn>}
// clang-format on
constexpr Symbol kSymbols[] = {
    EVO_PQ_SYMBOL(PQlibVersion),
    EVO_PQ_SYMBOL(PQconnectStartParams),
    EVO_PQ_SYMBOL(PQconnectPoll),
    EVO_PQ_SYMBOL(PQstatus),
    EVO_PQ_SYMBOL(PQerrorMessage),
    EVO_PQ_SYMBOL(PQsetNoticeProcessor),
    EVO_PQ_SYMBOL(PQsetnonblocking),
    EVO_PQ_SYMBOL(PQsocket),
    EVO_PQ_SYMBOL(PQfinish),
    EVO_PQ_SYMBOL(PQbackendPID),
    EVO_PQ_SYMBOL(PQserverVersion),
    EVO_PQ_SYMBOL(PQsslInUse),
    EVO_PQ_SYMBOL(PQenterPipelineMode),
    EVO_PQ_SYMBOL(PQexitPipelineMode),
    EVO_PQ_SYMBOL(PQpipelineStatus),
    EVO_PQ_SYMBOL(PQpipelineSync),
    EVO_PQ_SYMBOL(PQsendQuery),
    EVO_PQ_SYMBOL(PQsendQueryParams),
    EVO_PQ_SYMBOL(PQsendPrepare),
    EVO_PQ_SYMBOL(PQsendQueryPrepared),
    EVO_PQ_SYMBOL(PQflush),
    EVO_PQ_SYMBOL(PQconsumeInput),
    EVO_PQ_SYMBOL(PQisBusy),
    EVO_PQ_SYMBOL(PQgetResult),
    EVO_PQ_SYMBOL(PQresultStatus),
    EVO_PQ_SYMBOL(PQresultErrorField),
    EVO_PQ_SYMBOL(PQresultErrorMessage),
    EVO_PQ_SYMBOL(PQntuples),
    EVO_PQ_SYMBOL(PQnfields),
    EVO_PQ_SYMBOL(PQfname),
    EVO_PQ_SYMBOL(PQftype),
    EVO_PQ_SYMBOL(PQgetisnull),
    EVO_PQ_SYMBOL(PQgetvalue),
    EVO_PQ_SYMBOL(PQgetlength),
    EVO_PQ_SYMBOL(PQcmdTuples),
    EVO_PQ_SYMBOL(PQcmdStatus),
    EVO_PQ_SYMBOL(PQclear),
    EVO_PQ_SYMBOL(PQputCopyData),
    EVO_PQ_SYMBOL(PQputCopyEnd),
    EVO_PQ_SYMBOL(PQgetCopyData),
    EVO_PQ_SYMBOL(PQnotifies),
    EVO_PQ_SYMBOL(PQfreemem),
    EVO_PQ_SYMBOL(PQgetCancel),
    EVO_PQ_SYMBOL(PQcancel),
    EVO_PQ_SYMBOL(PQfreeCancel),
    EVO_PQ_SYMBOL(PQescapeIdentifier),
    EVO_PQ_SYMBOL(PQescapeLiteral),
};
#undef EVO_PQ_SYMBOL

// A member left out of the table would stay null and crash at its first
// call: every member is one function pointer, so the counts must agree.
static_assert(sizeof(Api) == std::size(kSymbols) * sizeof(void (*)()),
              "every Api member needs a kSymbols entry");

// Fills detail::table; returns why it could not (empty: loaded).
std::string open_library() {
  const char* env = std::getenv("EVO_LIBPQ");
  const std::string file = env != nullptr && *env != '\0' ? env : kDefaultLibrary;
  // RTLD_LOCAL: libpq's symbols (and those of its libssl.so) stay out of the
  // global scope, so nothing loaded later binds to them by accident. The
  // handle is never closed: connections may live until exit.
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    return file + " cannot be loaded: " + (why != nullptr ? why : "unknown error") + "; " + kPackageHint;
  }
  Api api{};
  for (const Symbol& s : kSymbols) {
    void* address = dlsym(handle, s.name);
    if (address == nullptr) {
      // A libpq older than 14 lacks the pipeline functions.
      dlclose(handle);
      return file + " has no " + s.name + " (libpq 14 or later is needed); " + kPackageHint;
    }
    s.store(api, address);
  }
  detail::table = api;
  return {};
}

const std::string& loaded() {
  static const std::string error = open_library();  // C++ runs this once, even across threads
  return error;
}

}  // namespace

Api detail::table{};

const Api* load() { return loaded().empty() ? &detail::table : nullptr; }

const std::string& load_error() { return loaded(); }

}  // namespace evo::libpq
