#include "cli/build.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "bind/appfs.h"
#include "cli/supervisor.h"
#include "io/io.h"
#include "io/workers.h"
#include "lua/errors.h"
#include "lua/modules.h"
#include "lua/runtime.h"
#include "lua/version.h"

namespace evo::cli::build {
namespace {

std::string dir_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0 && std::strcmp(v, "false") != 0;
}

// The entry script of `evo build`'s arguments: the first word that is
// neither an option nor an option's value. Its directory is searched first
// by require, as when `evo app.lua` runs it.
const char* entry_script(int argc, char** argv) {
  for (int i = 2; i < argc; ++i) {
    const char* a = argv[i];
    if (std::strcmp(a, "-o") == 0 || std::strcmp(a, "--output") == 0 || std::strcmp(a, "--include") == 0 ||
        std::strcmp(a, "--app-version") == 0 || std::strcmp(a, "--name") == 0) {
      ++i;
    } else if (a[0] != '-') {
      return a;
    }
  }
  return nullptr;
}

// Runs the main task to its end and returns the process's exit status, as
// cli::main does for a script.
int finish(Runtime& rt, bool ok) {
  if (ok) rt.run_loop();
  if (ok) rt.check_main_finished();
  rt.shutdown();
  int code = rt.exit_code();
  if (code == 0 && rt.unhandled_task_errors() > 0) code = 1;
  return code;
}

// EVO_WORKERS for a built app: the supervisor of docs/workers.md, whose
// workers run this executable with the same arguments.
int run_supervisor(const char* count, int argc, char** argv) {
  supervisor::Options o;
  o.workers = supervisor::parse_count(count);
  if (o.workers <= 0) {
    std::fprintf(stderr, "%s: EVO_WORKERS must be a number of workers or 'auto', not '%s'\n", argv[0], count);
    return 2;
  }
  if (const char* g = std::getenv("EVO_GRACE"); g != nullptr && *g != '\0') {
    char* end = nullptr;
    o.grace = std::strtod(g, &end);
    if (*end != '\0' || !(o.grace >= 0)) {
      std::fprintf(stderr, "%s: EVO_GRACE must be a number of seconds, not '%s'\n", argv[0], g);
      return 2;
    }
  }
  unsetenv("EVO_WORKERS");  // a worker's own children are not supervisors
  o.argv.assign(argv, argv + argc);
  return supervisor::run(o);
}

void print_app_versions(const app_archive::Meta& meta) {
  auto list = versions();
  std::printf("%s %s\nEvo %s\n", meta.name.c_str(), meta.version.c_str(), list.front().second.c_str());
  for (size_t i = 1; i < list.size(); ++i)
    std::printf("  %-8s %s\n", list[i].first.c_str(), list[i].second.c_str());
}

}  // namespace

int command(int argc, char** argv) {
  RuntimeOptions options;
  options.debug = env_flag("EVO_DEBUG");
  if (const char* entry = entry_script(argc, argv)) options.script_dir = dir_of(entry);
  Runtime rt(options);
  lua_State* L = rt.L();
  const char kBuilder[] = "return require('evo.build').main(...)";
  luaL_loadbuffer(L, kBuilder, sizeof(kBuilder) - 1, "=[evo build]");
  for (int i = 2; i < argc; ++i) lua_pushstring(L, argv[i]);
  return finish(rt, rt.start_main_task(argc - 2));
}

int run_app(int argc, char** argv) {
  const app_archive::Meta& meta = *appfs::meta();
  // The one option a built app takes for itself; every other word is the app's.
  if (argc == 2 && std::strcmp(argv[1], "--version") == 0) {
    print_app_versions(meta);
    return 0;
  }
  // A built app takes no --workers of its own (every word is the app's):
  // EVO_WORKERS=N|auto (and EVO_GRACE=seconds) make this process the
  // supervisor, and the workers it starts are this executable again.
  if (const char* n = std::getenv("EVO_WORKERS"); n != nullptr && *n != '\0' && !workers::active()) {
    return run_supervisor(n, argc, argv);
  }
  modules::set_app_searcher(appfs::searcher);
  RuntimeOptions options;
  options.debug = env_flag("EVO_DEBUG");
  const char* io = std::getenv("EVO_IO");
  options.blocking = io != nullptr && std::strcmp(io, "blocking") == 0;
  options.uring = io != nullptr && std::strcmp(io, "uring") == 0;
  options.no_env = true;  // what the app runs is what was built: LUA_PATH, LUA_CPATH, LUA_INIT ignored
  Runtime rt(options);
  if (std::string why; !start_io(rt.tasks(), &why)) {
    std::fprintf(stderr, "%s: EVO_IO=uring cannot run here: %s\n", argv[0], why.c_str());
    return 1;
  }
  if (workers::active()) supervisor::setup_worker(rt);
  lua_State* L = rt.L();
  appfs::install_io_hooks(L);

  // arg as a script gets it: arg[0] the program, arg[1..] its arguments.
  lua_createtable(L, argc, 1);
  for (int i = 0; i < argc; ++i) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  lua_setglobal(L, "arg");

  if (appfs::load_entry(L) != 0) {
    errors::report(lua_tostring(L, -1));
    lua_pop(L, 1);
    rt.shutdown();
    return 1;
  }
  luaL_checkstack(L, argc, "too many arguments");
  for (int i = 1; i < argc; ++i) lua_pushstring(L, argv[i]);
  bool ok = rt.start_main_task(argc - 1);
  if (ok && workers::active()) workers::started();  // the supervisor's readiness test
  return finish(rt, ok);
}

}  // namespace evo::cli::build
