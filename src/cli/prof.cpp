#include "cli/prof.h"

#include <pthread.h>
#include <sys/resource.h>
#include <ucontext.h>

#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cli/symbols.h"
#include "lua/runtime.h"
#include "proto/flamegraph.h"

namespace evo::cli::prof {
namespace {

constexpr int kDepth = 200;    // frames kept per sample, from the top
constexpr char kSep = '\x1f';  // between frames in dumpstack's output: never in a name

// --- native leaves ---------------------------------------------------------
// LuaJIT's profiler only sees Lua stacks: a sample taken while C code runs is
// delivered once the VM is back in Lua, with the state 'C'. To name that C
// code, Evo's own SIGPROF handler runs in front of LuaJIT's and notes the
// interrupted instruction address (main thread only: a thread-pool thread's
// address says nothing of the Lua stack). The sample callback takes the
// addresses noted since the last one. Only the handler (which interrupts the
// main thread and runs to its end) and the callback (on the main thread)
// touch these, hence no lock: the callback copies, then resets with a
// compare-exchange that fails if the handler added one in between.
constexpr unsigned kMaxPcs = 64;
std::array<std::atomic<uintptr_t>, kMaxPcs> g_pcs;
std::atomic<unsigned> g_pc_count{0};
pthread_t g_main_thread;
struct sigaction g_luajit_action {};

uintptr_t interrupted_pc(void* ucontext) {
  const auto* uc = static_cast<const ucontext_t*>(ucontext);
#if defined(__x86_64__)
  return static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
  return static_cast<uintptr_t>(uc->uc_mcontext.pc);
#else
  (void)uc;
  return 0;
#endif
}

void on_sigprof(int sig, siginfo_t* info, void* ucontext) {
  int saved_errno = errno;
  if (pthread_equal(pthread_self(), g_main_thread) != 0) {
    unsigned n = g_pc_count.load(std::memory_order_relaxed);
    if (n < kMaxPcs) {
      g_pcs[n].store(interrupted_pc(ucontext), std::memory_order_relaxed);
      g_pc_count.store(n + 1, std::memory_order_relaxed);
    }
  }
  errno = saved_errno;
  if ((g_luajit_action.sa_flags & SA_SIGINFO) != 0) {
    g_luajit_action.sa_sigaction(sig, info, ucontext);
  } else if (g_luajit_action.sa_handler != SIG_DFL && g_luajit_action.sa_handler != SIG_IGN) {
    g_luajit_action.sa_handler(sig);
  }
}

unsigned take_pcs(uintptr_t* out) {
  for (;;) {
    unsigned n = g_pc_count.load(std::memory_order_relaxed);
    for (unsigned i = 0; i < n; ++i) out[i] = g_pcs[i].load(std::memory_order_relaxed);
    if (g_pc_count.compare_exchange_strong(n, 0)) return n;
  }
}

// Puts on_sigprof in front of the handler luaJIT_profile_start installed.
// luaJIT_profile_stop later restores what was there before LuaJIT's, which
// removes both.
bool install_native_leaves() {
  g_main_thread = pthread_self();
  if (sigaction(SIGPROF, nullptr, &g_luajit_action) != 0) return false;
  struct sigaction sa {};
  sa.sa_sigaction = on_sigprof;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  return sigaction(SIGPROF, &sa, nullptr) == 0;
}

// --- the profile -------------------------------------------------------------
struct Profiler {
  lua_State* L = nullptr;
  Options o;
  // Opened by start() so an unwritable path fails before the run; written
  // by finish().
  std::ofstream folded;
  std::ofstream svg;
  // vmstate, then the native address (8 bytes, 0 if none), then the Lua
  // stack as dumpstack gave it -> samples. Cleaned up only at the end.
  std::unordered_map<std::string, uint64_t> raw;
  uint64_t samples = 0;
  double cpu_at_start = 0;                        // seconds of CPU (user + system) when sampling started
  std::unordered_map<int, std::string> builtins;  // fast-function id -> "string.rep"
  std::string key;                                // scratch
};
std::unique_ptr<Profiler> g_prof;

void add(Profiler& p, int vmstate, uintptr_t pc, const char* stack, size_t len, uint64_t n) {
  p.key.assign(1, static_cast<char>(vmstate));
  p.key.append(reinterpret_cast<const char*>(&pc), sizeof pc);
  p.key.append(stack, len);
  p.raw[p.key] += n;
}

// Runs in the VM, on the coroutine that was running (a task's own stack),
// at the first Lua instruction after a sample.
void on_sample(void* data, lua_State* L, int samples, int vmstate) {
  auto& p = *static_cast<Profiler*>(data);
  size_t len = 0;
  const char fmt[] = {'p', 'F', kSep, '\0'};
  const char* stack = luaJIT_profile_dumpstack(L, fmt, -kDepth, &len);
  std::array<uintptr_t, kMaxPcs> pcs{};
  unsigned n = take_pcs(pcs.data());
  auto count = static_cast<uint64_t>(samples);
  p.samples += count;
  if (vmstate == 'C') {
    for (unsigned i = 0; i < n && count > 0; ++i, --count) add(p, vmstate, pcs[i], stack, len, 1);
  }
  if (count > 0) add(p, vmstate, 0, stack, len, count);
}

// Names of LuaJIT's built-in (fast) functions by id (dumpstack says
// "[builtin#21]" for one it cannot name from the call site): the table
// --jit-trace names them from too (lib/evo/jittrace.lua).
const char kBuiltinNames[] = "return require('evo.jittrace').builtinNames()";

void load_builtin_names(Profiler& p) {
  lua_State* L = p.L;
  int top = lua_gettop(L);
  if (luaL_loadbuffer(L, kBuiltinNames, sizeof kBuiltinNames - 1, "=[evo prof]") == 0 &&
      lua_pcall(L, 0, 1, 0) == 0 && lua_istable(L, -1)) {
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
      if (lua_isnumber(L, -2) != 0 && lua_isstring(L, -1) != 0) {
        p.builtins[static_cast<int>(lua_tointeger(L, -2))] = lua_tostring(L, -1);
      }
      lua_pop(L, 1);
    }
  }
  lua_settop(L, top);
}

// --- the end -------------------------------------------------------------
const char* state_name(char vmstate) {
  switch (vmstate) {
    case 'N':
      return "Compiled";
    case 'I':
      return "Interpreted";
    case 'C':
      return "C code";
    case 'G':
      return "Garbage Collector";
    case 'J':
      return "JIT Compiler";
    default:
      return "Unknown";
  }
}

// The name a function defined at `line` of a source file is given there:
// "function M.name(" -> "name", "local name = function(" -> "name"; "" if
// none. For the frames dumpstack cannot name from their call site (tail
// calls, the task's own function), so they merge with the named ones.
std::string name_at_definition(const std::string& text) {
  auto ident = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; };
  auto last_part = [&](size_t end) {  // the identifier that ends at `end`
    size_t begin = end;
    while (begin > 0 && ident(text[begin - 1])) --begin;
    return text.substr(begin, end - begin);
  };
  size_t at = text.find("function");
  if (at == std::string::npos) return {};
  size_t paren = text.find('(', at);
  if (paren == std::string::npos) return {};
  size_t end = paren;
  while (end > at + 8 && text[end - 1] == ' ') --end;
  if (end > at + 8) return last_part(end);  // function a.b:name (
  end = at;                                 // name = function (
  while (end > 0 && text[end - 1] == ' ') --end;
  if (end == 0 || text[end - 1] != '=' || (end >= 2 && text[end - 2] == '=')) return {};
  --end;
  while (end > 0 && text[end - 1] == ' ') --end;
  return last_part(end);
}

// Turns dumpstack's frames into the names the graph shows.
struct Namer {
  const Profiler& p;
  Symbols syms;
  std::unordered_map<std::string, std::vector<std::string>> sources;  // path -> lines

  const std::string* source_line(const std::string& path, unsigned long line) {
    auto it = sources.find(path);
    if (it == sources.end()) {
      // Lines without their '\n': name_at_definition looks only before the
      // '(' of a definition. A file that cannot be read names nothing.
      std::vector<std::string> lines;
      std::ifstream f(path);
      std::string cur;
      while (lines.size() < 1000000 && std::getline(f, cur)) lines.push_back(std::move(cur));
      it = sources.emplace(path, std::move(lines)).first;
    }
    return line >= 1 && line <= it->second.size() ? &it->second[line - 1] : nullptr;
  }

  // "path:12" (a function dumpstack could not name) -> "path:name" or "path:(main)".
  void name_by_definition(std::string* frame) {
    size_t colon = frame->rfind(':');
    if (colon == std::string::npos || colon + 1 == frame->size() || (*frame)[0] == '[') return;
    char* end = nullptr;
    unsigned long line = std::strtoul(frame->c_str() + colon + 1, &end, 10);
    if (*end != '\0') return;
    std::string path = frame->substr(0, colon);
    if (line == 0) {
      *frame = path + ":(main)";
    } else if (const std::string* text = source_line(path, line)) {
      std::string name = name_at_definition(*text);
      if (!name.empty()) *frame = path + ":" + name;
    }
  }

  std::string frame(std::string frame) {
    int id = 0;
    unsigned long long addr = 0;
    if (std::sscanf(frame.c_str(), "[builtin#%d]", &id) == 1) {
      auto it = p.builtins.find(id);
      if (it != p.builtins.end()) frame = it->second;
    } else if (frame.rfind("@0x", 0) == 0 && std::sscanf(frame.c_str() + 1, "%llx", &addr) == 1) {
      const std::string& name = syms.name(static_cast<uintptr_t>(addr));  // a C function calling Lua
      if (!name.empty()) frame = "[C] " + name;
    } else {
      name_by_definition(&frame);
    }
    for (char& c : frame) {
      if (c == ';' || c == '\n' || c == '\r') c = ':';  // ';' separates frames in the folded format
    }
    return frame;
  }
};

// Evo's task machinery at the root of a task's stack: the body every task
// runs ("[evo task]", "[evo worker]") and its xpcall. Left out, so a task's
// stack starts with the task's own function.
bool task_machinery(const std::string& frame, bool first) {
  return frame.rfind("[evo task]", 0) == 0 || frame.rfind("[evo worker]", 0) == 0 ||
         (first && frame == "xpcall");
}

// The stack a raw sample key stands for, root first, with its leaf marker.
std::string clean_stack(Namer& namer, const std::string& key) {
  char vmstate = key[0];
  uintptr_t pc = 0;
  std::memcpy(&pc, key.data() + 1, sizeof pc);
  std::string_view stack(key.data() + 1 + sizeof pc, key.size() - 1 - sizeof pc);
  std::string out;
  bool at_root = true;
  while (!stack.empty()) {
    size_t end = stack.find(kSep);
    if (end == std::string_view::npos) end = stack.size();
    if (end > 0) {
      std::string name = namer.frame(std::string(stack.substr(0, end)));
      if (!at_root || !task_machinery(name, out.empty())) {
        at_root = false;
        if (!out.empty()) out += ';';
        out += name;
      }
    }
    stack.remove_prefix(std::min(end + 1, stack.size()));
  }
  std::string leaf;
  if (vmstate == 'C') {
    const std::string& name = pc != 0 ? namer.syms.name(pc) : std::string();
    leaf = name.empty() ? "[C]" : "[C] " + name;
  } else if (vmstate == 'G') {
    leaf = "[GC]";
  } else if (vmstate == 'J') {
    leaf = "[JIT compiler]";
  }
  // No Lua frame left: the sample came before a task's function was entered,
  // so what ran was the loop's native work (reads, parsing) or the GC.
  if (out.empty()) out = "[event loop]";
  if (!leaf.empty()) {
    for (char& c : leaf) c = c == ';' ? ':' : c;
    out += ";" + leaf;
  }
  return out;
}

bool write_file(std::ofstream& f, const std::string& path, const std::string& text) {
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  // The flush makes a full disk show here (errno from the failed write).
  const bool ok = !f.flush().fail();
  if (!ok) std::fprintf(stderr, "evo: --prof: cannot write '%s': %s\n", path.c_str(), std::strerror(errno));
  return ok;
}

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}

double percent(uint64_t part, uint64_t whole) {
  return whole == 0 ? 0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole);
}

void print_states(const std::array<uint64_t, 5>& states, uint64_t total, bool table) {
  const char order[] = "NICGJ";
  if (table) {
    std::fprintf(stderr, "  %-18s %8s %7s\n", "VM state", "samples", "share");
    for (int i = 0; i < 5; ++i) {
      std::fprintf(stderr, "  %-18s %8llu %6.1f%%\n", state_name(order[i]),
                   static_cast<unsigned long long>(states[i]), percent(states[i], total));
    }
    return;
  }
  std::fprintf(stderr,
               "  VM: %.1f%% compiled, %.1f%% interpreted, %.1f%% C, %.1f%% GC, %.1f%% JIT compiler\n",
               percent(states[0], total), percent(states[1], total), percent(states[2], total),
               percent(states[3], total), percent(states[4], total));
}

void print_summary(const Profiler& p, const flame::Stacks& stacks, const std::array<uint64_t, 5>& states) {
  // The kernel counts CPU time in ticks: at short intervals there may be
  // fewer samples than the interval asks for; the CPU time says how many.
  std::fprintf(stderr, "evo --prof: %llu samples (every %d ms, %.2f s of CPU) -> %s, %s\n",
               static_cast<unsigned long long>(p.samples), p.o.interval_ms, cpu_seconds() - p.cpu_at_start,
               p.o.folded_path.c_str(), p.o.svg_path.c_str());
  print_states(states, p.samples, p.o.vm);
  auto totals = flame::frame_totals(stacks);
  if (totals.empty()) return;
  std::fprintf(stderr, "  %15s %15s  %s\n", "self", "total", "frame");
  for (size_t i = 0; i < totals.size() && i < static_cast<size_t>(p.o.top); ++i) {
    const auto& t = totals[i];
    std::fprintf(stderr, "  %7llu %6.1f%% %7llu %6.1f%%  %s\n", static_cast<unsigned long long>(t.self),
                 percent(t.self, p.samples), static_cast<unsigned long long>(t.total),
                 percent(t.total, p.samples), t.name.c_str());
  }
}

bool finish_now() { return finish(); }

}  // namespace

std::string svg_path_for(const std::string& folded_path) {
  const std::string ext = ".folded";
  if (folded_path.size() > ext.size() &&
      folded_path.compare(folded_path.size() - ext.size(), ext.size(), ext) == 0) {
    return folded_path.substr(0, folded_path.size() - ext.size()) + ".svg";
  }
  return folded_path + ".svg";
}

bool start(lua_State* L, const Options& options, std::string* error) {
  auto p = std::make_unique<Profiler>();
  p->L = L;
  p->o = options;
  if (p->o.svg_path.empty()) p->o.svg_path = svg_path_for(p->o.folded_path);
  for (auto [file, path] : {std::pair{&p->folded, &p->o.folded_path}, std::pair{&p->svg, &p->o.svg_path}}) {
    file->open(*path, std::ios::out | std::ios::trunc | std::ios::binary);
    if (!file->is_open()) {
      *error = "--prof: cannot write '" + *path + "': " + std::strerror(errno);
      return false;
    }
  }
  load_builtin_names(*p);
  std::string mode = "fi" + std::to_string(p->o.interval_ms);
  g_pc_count.store(0);
  p->cpu_at_start = cpu_seconds();
  luaJIT_profile_start(L, mode.c_str(), on_sample, p.get());
  install_native_leaves();
  g_prof = std::move(p);
  // Every way out writes the profile: the end of the run calls finish(),
  // os.exit and process.exit go through exit(), Ctrl-C and SIGTERM inside Lua
  // code through Runtime::exit_now.
  static bool hooked = false;
  if (!hooked) {
    hooked = true;
    std::atexit([] { finish_now(); });
    Runtime::profiler_exit_now = [] { finish_now(); };
  }
  return true;
}

bool finish() {
  if (g_prof == nullptr) return true;
  std::unique_ptr<Profiler> p = std::move(g_prof);
  luaJIT_profile_stop(p->L);
  Namer namer{*p, {}, {}};
  flame::Stacks stacks;  // the stack view (no state root)
  flame::Stacks shown;   // what the files hold: the same, or with the state as root (vm mode)
  std::array<uint64_t, 5> states{};
  const char order[] = "NICGJ";
  for (const auto& [key, n] : p->raw) {
    std::string stack = clean_stack(namer, key);
    const char* at = std::strchr(order, key[0]);
    if (at != nullptr && *at != '\0') states[static_cast<size_t>(at - order)] += n;
    if (p->o.vm) shown[std::string(state_name(key[0])) + ";" + stack] += n;
    stacks[std::move(stack)] += n;
  }
  if (!p->o.vm) shown = stacks;
  flame::SvgOptions so;
  so.title = p->o.vm ? "evo --prof-mode=vm" : "evo --prof";
  so.subtitle = std::to_string(p->samples) + " samples, " + std::to_string(p->o.interval_ms) + " ms interval";
  bool ok = write_file(p->folded, p->o.folded_path, flame::folded(shown));
  ok = write_file(p->svg, p->o.svg_path, flame::svg(shown, so)) && ok;
  print_summary(*p, stacks, states);
  std::fflush(stderr);
  return ok;
}

}  // namespace evo::cli::prof
