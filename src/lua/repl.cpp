#include "lua/repl.h"

#include <editline/readline.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "core/handle.h"
#include "lua/errors.h"
#include "lua/interrupt.h"
#include "lua/runtime.h"

namespace evo::repl {
namespace {

// Calls require("evo.repl")[fn](arg) and returns its string result (the next prompt).
std::string call_repl(lua_State* L, const char* fn, const char* arg) {
  lua_getglobal(L, "require");
  lua_pushstring(L, "evo.repl");
  if (!errors::call_and_report(L, 1, 1, "repl")) return "> ";
  lua_getfield(L, -1, fn);
  lua_remove(L, -2);
  int nargs = 0;
  if (arg != nullptr) {
    lua_pushstring(L, arg);
    nargs = 1;
  }
  interrupt::evaluating(true);
  bool ok = errors::call_and_report(L, nargs, 1, "repl");
  interrupt::evaluating(false);
  if (!ok) return "> ";
  std::string prompt = lua_isstring(L, -1) ? lua_tostring(L, -1) : "> ";
  lua_pop(L, 1);
  return prompt;
}

std::string history_path() {
  const char* home = std::getenv("HOME");
  return home != nullptr && *home != '\0' ? std::string(home) + "/.evo_history" : std::string();
}

// Terminal input through libedit's callback interface, driven by a poll on
// stdin so the loop keeps running between keystrokes.
class TerminalRepl final : public NativeHandle {
 public:
  TerminalRepl(Runtime& rt) : rt_(rt), history_(history_path()) {
    uv_poll_init(rt.loop(), &poll_, STDIN_FILENO);
  }
  uv_handle_t* uv_handle() override { return reinterpret_cast<uv_handle_t*>(&poll_); }
  [[nodiscard]] bool internal() const override {
    return true;
  }  // hidden from uv.walk, but keeps the loop alive

  void begin() {
    current = this;
    using_history();
    stifle_history(1000);
    if (!history_.empty()) read_history(history_.c_str());
    rl_callback_handler_install(prompt_.c_str(), on_line);
    uv_poll_start(&poll_, UV_READABLE, on_readable);
    interrupt::set_repl_mode([this] { on_interrupt(); });
  }

 private:
  static void on_readable(uv_poll_t* /*p*/, int status, int /*events*/) {
    if (status < 0) {
      current->finish();
      return;
    }
    rl_callback_read_char();
  }

  static void on_line(char* line) {
    TerminalRepl* self = current;
    if (line == nullptr) {  // Ctrl-D
      std::fputs("\n", stdout);
      self->finish();
      return;
    }
    std::unique_ptr<char, decltype(&std::free)> owned(line, &std::free);
    if (*line != '\0') {
      add_history(line);
      if (!self->history_.empty()) write_history(self->history_.c_str());
    }
    self->prompt_ = call_repl(self->rt_.L(), "feed", line);
    std::fflush(stdout);
    rl_set_prompt(self->prompt_.c_str());
  }

  void on_interrupt() {
    // Ctrl-C at the prompt drops the pending input, like Node's REPL.
    std::fputs("^C\n", stdout);
    prompt_ = call_repl(rt_.L(), "reset", nullptr);
    rl_callback_handler_remove();
    rl_callback_handler_install(prompt_.c_str(), on_line);
    std::fflush(stdout);
  }

  void finish() {
    if (closing()) return;
    rl_callback_handler_remove();
    current = nullptr;
    close();
  }

  static TerminalRepl* current;
  Runtime& rt_;
  uv_poll_t poll_{};
  std::string history_;
  std::string prompt_ = "> ";
};

TerminalRepl* TerminalRepl::current = nullptr;

// Not a terminal (evo -i < file): read lines plainly, in order, then let the
// loop finish whatever they started.
void run_plain(Runtime& rt) {
  std::string prompt = "> ";
  std::string line;
  int c = 0;
  std::fputs(prompt.c_str(), stdout);
  std::fflush(stdout);
  while ((c = std::fgetc(stdin)) != EOF) {
    if (c != '\n') {
      line.push_back(static_cast<char>(c));
      continue;
    }
    prompt = call_repl(rt.L(), "feed", line.c_str());
    line.clear();
    std::fputs(prompt.c_str(), stdout);
    std::fflush(stdout);
  }
  if (!line.empty()) call_repl(rt.L(), "feed", line.c_str());
  std::fputs("\n", stdout);
}

}  // namespace

void start(Runtime& rt) {
  if (isatty(STDIN_FILENO) == 0) {
    run_plain(rt);
    return;
  }
  std::printf("Evo %s (LuaJIT on libuv). Ctrl-D exits.\n", EVO_VERSION);
  auto repl = std::make_unique<TerminalRepl>(rt);
  NativeHandle::release_to_loop(std::move(repl))->begin();
}

}  // namespace evo::repl
