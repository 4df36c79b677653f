#include "cli/cli.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "bind/appfs.h"
#include "cli/build.h"
#include "cli/prof.h"
#include "cli/repl.h"
#include "cli/rocks.h"
#include "cli/supervisor.h"
#include "cli/watch.h"
#include "io/io.h"
#include "io/workers.h"
#include "lua/errors.h"
#include "lua/runtime.h"
#include "lua/version.h"

namespace evo::cli {
namespace {

const char kUsage[] =
    "usage: evo [options] [script [args...]]\n"
    "       evo test [--watch] [files or dirs...] [--filter text]\n"
    "       evo rocks <luarocks arguments...>\n"
    "       evo prof [-o out.folded] [--interval MS] [--mode vm] script [args...]\n"
    "\n"
    "Runs a Lua script on LuaJIT over an event loop. With no script, starts a\n"
    "REPL when stdin is a terminal, and runs stdin otherwise.\n"
    "\n"
    "options:\n"
    "  -e chunk        run the Lua chunk (before the script)\n"
    "  -l name         require(name) into the global `name` (before the script)\n"
    "  -j cmd          LuaJIT control command: -joff, -jon, -jflush, -jv[=file]...\n"
    "  -O[opt]         LuaJIT optimizations: -O3, -O-fold, -Ohotloop=10...\n"
    "  -b ...          save or list bytecode (luajit -b; the rest goes to jit.bcsave)\n"
    "  -i              start the REPL after running the script\n"
    "  -E              ignore LUA_INIT, LUA_PATH and LUA_CPATH\n"
    "  -               run the script read from stdin\n"
    "  --              stop handling options\n"
    "  --debug         default event handlers print each event (also EVO_DEBUG=1)\n"
    "  --io=MODE       evented (default), blocking or uring: how blocking calls behave\n"
    "                  (also EVO_IO=MODE; see docs/concurrency.md, docs/io.md)\n"
    "  --workers N     run the script in N worker processes (N = auto: one per CPU)\n"
    "                  under a supervisor; SIGHUP reloads them (docs/workers.md)\n"
    "  --grace S       seconds a worker's graceful stop may take (default 10)\n"
    "  -v, --version   print versions of Evo and its libraries (then run the rest)\n"
    "  --watch         rerun the script when a file it loaded changes (docs/cli.md)\n"
    "  --watch-path D  also rerun when a file under directory D changes\n"
    "  --prof[=FILE]   sample the run with LuaJIT's profiler: folded stacks to FILE\n"
    "                  (default evo.prof.folded), a flame graph to FILE's .svg, a\n"
    "                  summary to stderr (docs/performance.md)\n"
    "  --prof-interval=MS  sampling interval (default 10)\n"
    "  --prof-mode=vm  time by VM state: compiled, interpreted, C, GC, JIT compiler\n"
    "  --jit-trace     print JIT traces, their aborts and why (also EVO_JIT_TRACE=1)\n"
    "  -h, --help      print this help\n"
    "\n"
    "commands:\n"
    "  test            run *.spec.lua and busted's *_spec.lua files (docs/testing.md)\n"
    "  rocks ...       luarocks on the project's lua_modules, for Evo (see docs/rocks.md)\n"
    "  build           evo build app.lua -o app: a one-file executable (docs/build.md)\n"
    "  prof            evo --prof, with -o FILE, --interval MS, --mode vm\n"
    "\n"
    "LUA_INIT (code, or @file) runs first, as under luajit.\n";

struct Invocation {
  // -e chunks, -l modules, -j commands and -O flags, in order
  std::vector<std::pair<char, std::string>> before;
  int script = -1;    // index in argv of the script ("-" = stdin)
  int bytecode = -1;  // index in argv of -b...: the rest is jit.bcsave's
  bool exec = false;  // an -e chunk was given (then neither stdin nor the REPL runs by default)
  bool version = false;
  bool no_env = false;  // -E
  bool interactive = false;
  bool debug = false;
  bool blocking = false;
  bool uring = false;
  bool test = false;
  int workers = 0;                   // --workers N (docs/workers.md)
  double grace = 10;                 // --grace S
  std::vector<int> supervisor_args;  // argv indices of those, left out of a worker's command line
  bool profile = false;              // --prof, --prof-interval, --prof-mode (src/cli/prof.cpp)
  prof::Options prof;
  bool jit_trace = false;  // --jit-trace or EVO_JIT_TRACE=1 (lib/evo/jittrace.lua)
};

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0 && std::strcmp(v, "false") != 0;
}

void print_versions() {
  auto list = versions();
  std::printf("Evo %s\n", list.front().second.c_str());
  for (size_t i = 1; i < list.size(); ++i) {
    std::printf("  %-8s %s\n", list[i].first.c_str(), list[i].second.c_str());
  }
}

[[noreturn]] void usage_error(const char* fmt, const char* what) {
  std::fprintf(stderr, "evo: ");
  std::fprintf(stderr, fmt, what);
  std::fprintf(stderr, "\n%s", kUsage);
  std::exit(2);
}

// --prof[=FILE], --prof-interval=MS (or MS as the next word), --prof-mode=vm|stack.
void parse_prof_option(int argc, char** argv, int* i, Invocation* inv) {
  const char* a = argv[*i];
  inv->profile = true;
  if (std::strcmp(a, "--prof") == 0) return;
  if (std::strncmp(a, "--prof=", 7) == 0) {
    if (a[7] == '\0') usage_error("'%s' needs a file name", a);
    inv->prof.folded_path = a + 7;
    return;
  }
  const char* eq = std::strchr(a, '=');
  std::string name = eq != nullptr ? std::string(a, eq) : std::string(a);
  if (name != "--prof-interval" && name != "--prof-mode") usage_error("unknown option '%s'", a);
  if (eq == nullptr && *i + 1 >= argc) usage_error("'%s' needs an argument", a);
  const char* value = eq != nullptr ? eq + 1 : argv[++*i];
  if (name == "--prof-mode") {
    if (std::strcmp(value, "vm") != 0 && std::strcmp(value, "stack") != 0) {
      usage_error("--prof-mode must be 'stack' or 'vm', not '%s'", value);
    }
    inv->prof.vm = std::strcmp(value, "vm") == 0;
    return;
  }
  char* end = nullptr;
  long ms = std::strtol(value, &end, 10);
  if (end == value || *end != '\0' || ms < 1 || ms > 1000) {
    usage_error("--prof-interval must be a whole number of milliseconds from 1 to 1000, not '%s'", value);
  }
  inv->prof.interval_ms = static_cast<int>(ms);
}

// --io=MODE / EVO_IO=MODE; false for an unknown mode.
bool set_io_mode(Invocation& inv, const char* mode) {
  if (std::strcmp(mode, "evented") != 0 && std::strcmp(mode, "blocking") != 0 &&
      std::strcmp(mode, "uring") != 0) {
    return false;
  }
  inv.blocking = std::strcmp(mode, "blocking") == 0;
  inv.uring = std::strcmp(mode, "uring") == 0;
  return true;
}

// Returns the parsed invocation, or exits for --help, --version and errors.
Invocation parse(int argc, char** argv) {
  Invocation inv;
  inv.debug = env_flag("EVO_DEBUG");
  inv.jit_trace = env_flag("EVO_JIT_TRACE");
  if (const char* io = std::getenv("EVO_IO"); io != nullptr && *io != '\0') {
    if (!set_io_mode(inv, io)) usage_error("EVO_IO must be 'evented', 'blocking' or 'uring', not '%s'", io);
  }
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (std::strcmp(a, "test") == 0 && inv.before.empty() && !inv.interactive) {
      // `evo [--debug] [--io=MODE] test ...`: the rest belongs to the runner.
      inv.test = true;
      inv.script = i;
      for (int j = i + 1; j < argc; ++j) {
        if (std::strcmp(argv[j], "--debug") == 0) inv.debug = true;
      }
      break;
    }
    if (a[0] != '-' || std::strcmp(a, "-") == 0) {
      inv.script = i;
      break;
    }
    if (std::strcmp(a, "--") == 0) {
      if (i + 1 < argc) inv.script = i + 1;
      break;
    }
    if (a[1] == 'e' || a[1] == 'l' || a[1] == 'j') {
      const char* value = a[2] != '\0' ? a + 2 : (i + 1 < argc ? argv[++i] : nullptr);
      if (value == nullptr) usage_error("'%s' needs an argument", a);
      inv.before.emplace_back(a[1], value);
      if (a[1] == 'e') inv.exec = true;
    } else if (a[1] == 'O') {
      inv.before.emplace_back('O', a + 2);
    } else if (a[1] == 'b') {
      if (inv.interactive) usage_error("'%s' cannot be combined with -i", a);
      inv.bytecode = i;
      break;
    } else if (std::strcmp(a, "-E") == 0) {
      inv.no_env = true;
    } else if (std::strcmp(a, "-i") == 0) {
      inv.interactive = true;
    } else if (std::strcmp(a, "--debug") == 0) {
      inv.debug = true;
    } else if (std::strncmp(a, "--io=", 5) == 0) {
      if (!set_io_mode(inv, a + 5))
        usage_error("--io must be 'evented', 'blocking' or 'uring', not '%s'", a + 5);
    } else if (std::strncmp(a, "--workers", 9) == 0 || std::strncmp(a, "--grace", 7) == 0) {
      // --workers N, --workers=N, --grace S, --grace=S
      const char* eq = std::strchr(a, '=');
      size_t name_len = eq != nullptr ? static_cast<size_t>(eq - a) : std::strlen(a);
      if (name_len != (a[2] == 'w' ? 9U : 7U)) usage_error("unknown option '%s'", a);
      if (eq == nullptr && i + 1 >= argc) usage_error("'%s' needs an argument", a);
      inv.supervisor_args.push_back(i);
      if (eq == nullptr) inv.supervisor_args.push_back(i + 1);
      const char* value = eq != nullptr ? eq + 1 : argv[++i];
      char* end = nullptr;
      if (a[2] == 'w' && (inv.workers = supervisor::parse_count(value)) == 0) {
        usage_error("--workers must be a number from 1 to 1024 or 'auto', not '%s'", value);
      } else if (a[2] == 'g' && ((inv.grace = std::strtod(value, &end)) <= 0 || *end != '\0')) {
        usage_error("--grace must be a positive number of seconds, not '%s'", value);
      }
    } else if (std::strncmp(a, "--prof", 6) == 0) {
      parse_prof_option(argc, argv, &i, &inv);
    } else if (std::strcmp(a, "--jit-trace") == 0) {
      inv.jit_trace = true;
    } else if (std::strcmp(a, "-v") == 0 || std::strcmp(a, "--version") == 0) {
      inv.version = true;  // printed before anything runs; then the rest runs, as luajit does
    } else if (std::strcmp(a, "-h") == 0 || std::strcmp(a, "--help") == 0) {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else {
      usage_error("unknown option '%s'", a);
    }
  }
  return inv;
}

std::string dir_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// The global `arg`, exactly as lua.c and luajit build it: arg[0] is the
// script, negative indices the interpreter and its options, positive ones the
// script's arguments. Without a script, arg[0] is absent and every word of
// the command line has a negative index.
void set_arg_table(lua_State* L, int argc, char** argv, int script) {
  int base = script >= 0 ? script : argc;
  lua_createtable(L, argc - base, base + 1);
  for (int i = 0; i < argc; ++i) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - base);
  }
  lua_setglobal(L, "arg");
}

bool run_chunk(Runtime& rt, const std::string& chunk) {
  lua_State* L = rt.L();
  if (luaL_loadbuffer(L, chunk.data(), chunk.size(), "=(command line)") != 0) {
    errors::report(lua_tostring(L, -1));
    lua_pop(L, 1);
    rt.set_exit_code(1);
    return false;
  }
  return rt.start_main_task(0);
}

// -j, -O and -b, as luajit handles them: -jNAME[=a,b] calls jit.NAME(a, b)
// (on, off, flush...) or else require("jit.NAME").start(a, b); -O[a,b] calls
// jit.opt.start(a, b); -b[x] calls require("jit.bcsave").start("-x", rest...).
const char kJitOptions[] = R"lua(
local kind, text = ...
local function words(s)
  local out, n = {}, 0
  if s and s ~= "" then
    for w in (s .. ","):gmatch("([^,]*),") do
      n = n + 1
      if w ~= "" then out[n] = w end
    end
  end
  return unpack(out, 1, n)
end
local function starter(name)
  local ok, m = pcall(require, "jit." .. name)
  if not ok and not tostring(m):find("^module ") then error("JIT library error: " .. tostring(m), 0) end
  if not ok or type(m) ~= "table" or type(m.start) ~= "function" then
    error("unknown luaJIT command or jit.* modules not installed", 0)
  end
  return m.start
end
if kind == "O" then return require("jit.opt").start(words(text)) end
if kind == "b" then return starter("bcsave")(select(2, ...)) end
local name, eq, rest = text:match("^([^=]*)(=?)(.*)$")
local f = jit[name]
if type(f) ~= "function" then f = starter(name) end
return f(words(eq ~= "" and rest or nil))
)lua";

bool run_jit_option(Runtime& rt, char kind, const std::vector<std::string>& values) {
  lua_State* L = rt.L();
  luaL_loadbuffer(L, kJitOptions, sizeof(kJitOptions) - 1, "=[evo options]");
  char k[2] = {kind, '\0'};
  lua_pushstring(L, k);
  luaL_checkstack(L, static_cast<int>(values.size()), "too many arguments");
  for (const auto& v : values) lua_pushstring(L, v.c_str());
  return rt.start_main_task(static_cast<int>(values.size()) + 1);
}

// LUA_INIT, as luajit runs it: "@file" runs the file, anything else is a chunk.
bool run_lua_init(Runtime& rt) {
  const char* init = std::getenv("LUA_INIT");
  if (init == nullptr) return true;
  lua_State* L = rt.L();
  int rc =
      init[0] == '@' ? luaL_loadfile(L, init + 1) : luaL_loadbuffer(L, init, std::strlen(init), "=LUA_INIT");
  if (rc != 0) {
    errors::report(lua_tostring(L, -1));
    lua_pop(L, 1);
    rt.set_exit_code(1);
    return false;
  }
  return rt.start_main_task(0);
}

bool require_global(Runtime& rt, const std::string& name) {
  lua_State* L = rt.L();
  lua_getglobal(L, "require");
  lua_pushstring(L, name.c_str());
  if (!errors::call_and_report(L, 1, 1, nullptr)) {
    rt.set_exit_code(1);
    return false;
  }
  lua_setglobal(L, name.c_str());
  return true;
}

bool run_script(Runtime& rt, int argc, char** argv, int script) {
  lua_State* L = rt.L();
  const char* name = argv[script];
  bool from_stdin = std::strcmp(name, "-") == 0;
  if (luaL_loadfile(L, from_stdin ? nullptr : name) != 0) {
    errors::report(lua_tostring(L, -1));
    lua_pop(L, 1);
    rt.set_exit_code(1);
    return false;
  }
  int nargs = argc - script - 1;
  luaL_checkstack(L, nargs + 1, "too many arguments to script");
  for (int i = script + 1; i < argc; ++i) lua_pushstring(L, argv[i]);
  return rt.start_main_task(nargs);
}

bool run_test_command(Runtime& rt, int argc, char** argv, int test_index) {
  lua_State* L = rt.L();
  const char kRunner[] = "return require('evo.test').main(...)";
  luaL_loadbuffer(L, kRunner, sizeof(kRunner) - 1, "=[evo test]");
  for (int i = test_index + 1; i < argc; ++i) lua_pushstring(L, argv[i]);
  return rt.start_main_task(argc - test_index - 1);
}

// `evo --workers N ...`: the supervisor runs instead of the script, and
// starts the workers with the same command line less --workers and --grace.
int run_supervisor(const Invocation& inv, int argc, char** argv) {
  if (inv.test || inv.interactive || inv.bytecode >= 0 || (inv.script < 0 && !inv.exec) ||
      (inv.script >= 0 && std::strcmp(argv[inv.script], "-") == 0)) {
    usage_error("%s needs a script file (or -e), not the REPL, stdin, test or -b", "--workers");
  }
  supervisor::Options o;
  o.workers = inv.workers;
  o.grace = inv.grace;
  const auto& skip = inv.supervisor_args;
  for (int i = 0; i < argc; ++i) {
    if (std::find(skip.begin(), skip.end(), i) == skip.end()) o.argv.emplace_back(argv[i]);
  }
  if (inv.script >= 0) o.script = argv[inv.script];
  return supervisor::run(o);
}

// `evo prof [-o FILE] [--interval MS] [--mode vm] [evo options] script
// [args]` is `evo --prof=FILE --prof-interval=MS --prof-mode=vm ...`: the
// words up to the script are translated into `words`, the rest copied.
void translate_prof_command(int argc, char** argv, std::vector<std::string>* words) {
  words->assign({argv[0], "--prof"});
  int i = 2;
  auto value_of = [&](const char* a, const char* name) -> const char* {
    size_t n = std::strlen(name);
    if (std::strncmp(a, name, n) != 0) return nullptr;
    if (a[n] == '=') return a + n + 1;
    if (a[n] != '\0') return nullptr;
    if (i + 1 >= argc) usage_error("'%s' needs an argument", a);
    return argv[++i];
  };
  for (; i < argc && argv[i][0] == '-' && std::strcmp(argv[i], "-") != 0; ++i) {
    const char* a = argv[i];
    const char* v = nullptr;
    if ((v = value_of(a, "-o")) != nullptr) {
      words->push_back(std::string("--prof=") + v);
    } else if ((v = value_of(a, "--interval")) != nullptr) {
      words->push_back(std::string("--prof-interval=") + v);
    } else if ((v = value_of(a, "--mode")) != nullptr) {
      words->push_back(std::string("--prof-mode=") + v);
    } else {
      words->emplace_back(a);
      if (std::strcmp(a, "--") == 0) break;
      // options whose value is the next word: copied with it
      for (const char* name :
           {"-e", "-l", "-j", "--workers", "--grace", "--watch-path", "--prof-interval", "--prof-mode"}) {
        if (std::strcmp(a, name) == 0 && i + 1 < argc) words->emplace_back(argv[++i]);
      }
    }
  }
  if (i >= argc) usage_error("%s needs a script", "evo prof");
  for (; i < argc; ++i) words->emplace_back(argv[i]);
}

// --jit-trace: lib/evo/jittrace.lua prints trace events to stderr.
bool start_jit_trace(Runtime& rt) {
  lua_State* L = rt.L();
  const char kStart[] = "return require('evo.jittrace').start()";
  luaL_loadbuffer(L, kStart, sizeof(kStart) - 1, "=[evo --jit-trace]");
  if (!errors::call_and_report(L, 0, 0, nullptr)) {
    rt.set_exit_code(1);
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  bool worker = workers::init_from_env();  // first: it removes EVO_WORKER
  // A one-file executable runs its embedded app (src/cli/build.cpp).
  if (appfs::open_self()) return build::run_app(argc, argv);
  // `evo rocks ...` runs luarocks and no Lua: the rest is luarocks' (src/cli/rocks.cpp).
  if (argc >= 2 && std::strcmp(argv[1], "rocks") == 0) return rocks::main({argv + 2, argv + argc});
  if (argc >= 2 && std::strcmp(argv[1], "build") == 0) return build::command(argc, argv);
  std::vector<std::string> prof_words;  // `evo prof ...` as `evo --prof ...`
  std::vector<char*> prof_argv;
  if (argc >= 2 && std::strcmp(argv[1], "prof") == 0) {
    translate_prof_command(argc, argv, &prof_words);
    for (auto& w : prof_words) prof_argv.push_back(w.data());
    prof_argv.push_back(nullptr);
    argc = static_cast<int>(prof_words.size());
    argv = prof_argv.data();
  }
  if (watch::requested(argc, argv)) return watch::main(argc, argv);  // src/cli/watch.cpp
  Invocation inv = parse(argc, argv);
  if (inv.workers > 0 && inv.profile) {
    usage_error("%s profiles one process: not with --workers (docs/performance.md)", "--prof");
  }
  if (inv.workers > 0 && !worker) return run_supervisor(inv, argc, argv);
  if (inv.version) {
    print_versions();
    std::fflush(stdout);
    if (inv.script < 0 && inv.before.empty() && inv.bytecode < 0 && !inv.interactive) return 0;
  }
  RuntimeOptions options;
  options.debug = inv.debug;
  options.blocking = inv.blocking;
  options.uring = inv.uring;
  options.no_env = inv.no_env;
  bool have_file = inv.script >= 0 && !inv.test && std::strcmp(argv[inv.script], "-") != 0;
  if (have_file) options.script_dir = dir_of(argv[inv.script]);

  Runtime rt(options);
  if (std::string why; !start_io(rt.tasks(), &why)) {
    // Never a silent fallback to another Io: the run asked for this one.
    std::fprintf(stderr, "evo: --io=uring cannot run here: %s\n", why.c_str());
    return 1;
  }
  if (worker) supervisor::setup_worker(rt);
  set_arg_table(rt.L(), argc, argv, inv.script);

  if (inv.profile) {
    std::string error;
    if (!prof::start(rt.L(), inv.prof, &error)) {
      std::fprintf(stderr, "evo: %s\n", error.c_str());
      return 1;
    }
  }
  bool ok = !inv.jit_trace || start_jit_trace(rt);
  if (ok && !inv.test && !inv.no_env) ok = run_lua_init(rt);
  for (const auto& [kind, value] : inv.before) {
    if (!ok) break;
    if (kind == 'e') {
      ok = run_chunk(rt, value);
    } else if (kind == 'l') {
      ok = require_global(rt, value);
    } else {
      ok = run_jit_option(rt, kind, {value});
    }
  }
  if (ok) {
    if (inv.bytecode >= 0) {
      std::vector<std::string> values;
      if (argv[inv.bytecode][2] != '\0') values.push_back(std::string("-") + (argv[inv.bytecode] + 2));
      for (int i = inv.bytecode + 1; i < argc; ++i) values.emplace_back(argv[i]);
      ok = run_jit_option(rt, 'b', values);
    } else if (inv.test) {
      ok = run_test_command(rt, argc, argv, inv.script);
    } else if (inv.script >= 0) {
      ok = run_script(rt, argc, argv, inv.script);
    } else if (!inv.exec && !inv.interactive && !inv.version) {
      if (isatty(STDIN_FILENO) != 0) {
        inv.interactive = true;
      } else {
        char dash[] = "-";
        char* stdin_argv[] = {argv[0], dash};
        ok = run_script(rt, 2, stdin_argv, 1);
      }
    }
  }
  if (ok && worker) workers::started();  // the supervisor's readiness test (docs/workers.md)
  if (ok && inv.interactive) repl::start(rt);
  if (ok) rt.run_loop();
  if (ok && !inv.interactive) rt.check_main_finished();
  bool profile_written = !inv.profile || prof::finish();  // before the VM closes
  rt.shutdown();  // collects the last Futures: a failure nobody awaited is reported now
  int code = rt.exit_code();
  if (code == 0 && !profile_written) code = 1;
  // Like Node's unhandled rejections (the REPL reports them and goes on).
  if (code == 0 && rt.unhandled_task_errors() > 0 && !inv.interactive) code = 1;
  return code;
}

}  // namespace evo::cli
