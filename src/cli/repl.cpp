#include "cli/repl.h"

#include <editline/readline.h>
#include <termios.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/handle.h"
#include "lua/errors.h"
#include "lua/interrupt.h"
#include "lua/luv_glue.h"
#include "lua/runtime.h"

namespace evo::repl {
namespace {

// Calls require("evo.repl")[fn](arg). Returns its result, the next prompt, or
// "" when it returned none (an evaluation is running and will call ready()).
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
  bool ok = errors::call_and_report(L, nargs, 1, "repl");
  if (!ok) return "> ";
  std::string prompt = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
  lua_pop(L, 1);
  return prompt;
}

std::string history_path() {
  const char* home = std::getenv("HOME");
  return home != nullptr && *home != '\0' ? std::string(home) + "/.evo_history" : std::string();
}

// The terminal as it was before libedit changed it, restored at exit even
// when the script leaves through os.exit while a line is being read.
struct termios g_saved_termios {};
bool g_termios_saved = false;
void restore_terminal() {
  if (g_termios_saved) tcsetattr(STDIN_FILENO, TCSANOW, &g_saved_termios);
}

// What the reader thread and the loop share. Held by both through a
// shared_ptr, so that neither outlives it.
struct Exchange {
  std::mutex mutex;
  std::condition_variable prompt_ready_cv;
  std::string prompt = "> ";
  bool prompt_ready = true;  // the reader may read the next line
  bool line_ready = false;   // a line (or end of input) waits for the loop
  bool eof = false;
  bool quit = false;  // the loop is done with the reader: return
  std::string line;
  bool abandoned = false;  // the loop side is gone: never touch the async again
  uv_async_t* async = nullptr;
};

// Reads lines on its own thread (libedit's readline() on a terminal, plain
// lines otherwise), so the event loop keeps running on the main thread while
// the user types: timers and sockets started at the prompt go on working.
// Each line is handed to the loop, evaluated there, and the reader waits for
// the next prompt before reading again.
class Repl final : public NativeHandle {
 public:
  Repl(Runtime& rt, bool tty) : rt_(rt), tty_(tty), exchange_(std::make_shared<Exchange>()) {
    uv_async_init(rt.loop(), &async_, on_line);
    exchange_->async = &async_;
  }
  uv_handle_t* uv_handle() override { return reinterpret_cast<uv_handle_t*>(&async_); }
  // Hidden from uv.walk and the exit sweep, yet referenced: the REPL keeps the
  // process alive until the user leaves it.
  [[nodiscard]] bool internal() const override { return true; }

  void begin() {
    active = this;
    interrupt::set_repl_mode([this] { on_interrupt(); });
    luv_glue::set_callback_errors_fatal(false);  // report and go on, like Node's REPL
    auto* args = new_thread_args();
    if (uv_thread_create(&thread_, reader_main, args) != 0) {
      delete_thread_args(args);
      std::fprintf(stderr, "evo: cannot start the REPL's reader thread\n");
      close();
      return;
    }
    thread_started_ = true;
  }

 private:
  struct ThreadArgs {
    std::shared_ptr<Exchange> exchange;
    bool tty;
  };
  // The thread takes ownership of its arguments through a unique_ptr.
  ThreadArgs* new_thread_args() {
    return std::make_unique<ThreadArgs>(ThreadArgs{exchange_, tty_}).release();
  }
  static void delete_thread_args(ThreadArgs* args) { std::unique_ptr<ThreadArgs> owned(args); }

  static bool read_plain(const std::string& prompt, std::string& out) {
    std::fputs(prompt.c_str(), stdout);
    std::fflush(stdout);
    out.clear();
    int c = 0;
    while ((c = std::fgetc(stdin)) != EOF && c != '\n') out.push_back(static_cast<char>(c));
    return c != EOF || !out.empty();
  }

  static bool read_tty(const std::string& prompt, std::string& out, const std::string& history) {
    char* raw = readline(prompt.c_str());
    if (raw == nullptr) return false;
    std::unique_ptr<char, decltype(&std::free)> owned(raw, &std::free);
    out = raw;
    if (!out.empty()) {
      add_history(raw);
      if (!history.empty()) write_history(history.c_str());
    }
    return true;
  }

  static void reader_main(void* arg) {
    std::unique_ptr<ThreadArgs> args(static_cast<ThreadArgs*>(arg));
    Exchange& ex = *args->exchange;
    const std::string history = args->tty ? history_path() : std::string();
    if (args->tty) {
      using_history();
      stifle_history(1000);
      if (!history.empty()) read_history(history.c_str());
    }
    for (;;) {
      std::string prompt;
      {
        std::unique_lock lock(ex.mutex);
        ex.prompt_ready_cv.wait(lock, [&] { return ex.prompt_ready || ex.abandoned || ex.quit; });
        if (ex.abandoned || ex.quit) return;
        ex.prompt_ready = false;
        prompt = ex.prompt;
      }
      std::string line;
      bool got = args->tty ? read_tty(prompt, line, history) : read_plain(prompt, line);
      std::lock_guard lock(ex.mutex);
      if (ex.abandoned) return;
      ex.line = std::move(line);
      ex.eof = !got;
      ex.line_ready = true;
      uv_async_send(ex.async);
      // On a terminal, Ctrl-D ends only this read: the loop decides whether
      // the REPL ends (it may have work left and ask for a second Ctrl-D).
      if (!got && !args->tty) return;
    }
  }

  static void on_line(uv_async_t* a) {
    auto* self = static_cast<Repl*>(NativeHandle::from(reinterpret_cast<uv_handle_t*>(a)));
    std::string line;
    bool eof = false;
    {
      std::lock_guard lock(self->exchange_->mutex);
      if (!self->exchange_->line_ready) return;
      self->exchange_->line_ready = false;
      line = std::move(self->exchange_->line);
      eof = self->exchange_->eof;
    }
    if (eof) {
      std::fputs("\n", stdout);
      std::string work = self->tty_ ? self->pending_work() : std::string();
      if (!work.empty() && self->eofs_ == 0) {
        // A server or a timer would otherwise go on without a prompt and
        // without a word; say so, and leave on a second Ctrl-D in a row.
        self->eofs_ = 1;
        std::printf("(the event loop still has work: %s; press Ctrl-D again to exit)\n", work.c_str());
        std::fflush(stdout);
        self->release(call_repl(self->rt_.L(), "reset", nullptr));
        return;
      }
      std::fflush(stdout);
      bool stop_loop = !work.empty();
      self->finish();
      if (stop_loop) interrupt::exit_repl(0);
      return;
    }
    self->eofs_ = 0;
    self->interrupts_ = 0;
    std::string prompt = call_repl(self->rt_.L(), "feed", line.c_str());
    std::fflush(stdout);
    if (prompt.empty()) {
      self->evaluating_ = true;  // the evaluation task calls ready() when done
      interrupt::evaluating(true);
      return;
    }
    self->release(prompt);
  }

 public:
  // The next line may be read, with this prompt.
  void release(const std::string& prompt) {
    evaluating_ = false;
    interrupt::evaluating(false);
    std::lock_guard lock(exchange_->mutex);
    exchange_->prompt = prompt;
    exchange_->prompt_ready = true;
    exchange_->prompt_ready_cv.notify_one();
  }

  static Repl* active;

 private:
  // Ctrl-C at the prompt, or during an evaluation that waits (one running
  // Lua code is stopped by the signal hook with "interrupted!").
  void on_interrupt() {
    if (evaluating_) {
      lua_State* L = rt_.L();
      lua_getglobal(L, "require");
      lua_pushliteral(L, "evo.repl");
      if (errors::call_and_report(L, 1, 1, "repl")) {
        lua_getfield(L, -1, "interrupt");
        lua_remove(L, -2);
        errors::call_and_report(L, 0, 0, "repl");
      }
      return;
    }
    if (++interrupts_ >= 2) {
      interrupt::exit_repl(0);
      return;
    }
    call_repl(rt_.L(), "reset", nullptr);
    std::fputs("\n(To exit, press Ctrl+C again or Ctrl+D)\n", stdout);
    std::fflush(stdout);
  }

  // What keeps the loop alive besides the REPL: "1 tcp handle, 2 timer
  // handles, 1 request", or "" when nothing does.
  std::string pending_work() {
    struct Count {
      uv_handle_t* self;
      std::vector<std::pair<std::string, int>> types;
    } count{uv_handle(), {}};
    uv_walk(
        rt_.loop(),
        [](uv_handle_t* h, void* arg) {
          auto* c = static_cast<Count*>(arg);
          if (h == c->self || uv_is_active(h) == 0 || uv_has_ref(h) == 0 || uv_is_closing(h) != 0) return;
          std::string type = uv_handle_type_name(h->type);
          for (auto& [name, n] : c->types) {
            if (name == type) {
              ++n;
              return;
            }
          }
          c->types.emplace_back(type, 1);
        },
        &count);
    std::string out;
    auto add = [&out](int n, const std::string& what) {
      if (!out.empty()) out += ", ";
      out += std::to_string(n) + " " + what + (n == 1 ? "" : "s");
    };
    for (const auto& [name, n] : count.types) add(n, name + " handle");
    if (unsigned reqs = rt_.loop()->active_reqs.count; reqs > 0) add(static_cast<int>(reqs), "request");
    return out;
  }

  void finish() {
    if (active == this) active = nullptr;
    {
      std::lock_guard lock(exchange_->mutex);
      exchange_->quit = true;
      exchange_->prompt_ready_cv.notify_one();
    }
    if (thread_started_) {
      uv_thread_join(&thread_);  // it has returned after sending end of input
      thread_started_ = false;
    }
    close();
  }

  void on_closed() override {
    std::lock_guard lock(exchange_->mutex);
    exchange_->abandoned = true;
    exchange_->async = nullptr;
    exchange_->prompt_ready_cv.notify_one();
    // A reader still blocked in readline() (the process is exiting) is left
    // to the exit; it will see `abandoned` and touch nothing.
  }

  Runtime& rt_;
  bool tty_;
  uv_async_t async_{};
  uv_thread_t thread_{};
  bool thread_started_ = false;
  int interrupts_ = 0;
  int eofs_ = 0;  // Ctrl-D in a row while the loop had other work
  bool evaluating_ = false;
  std::shared_ptr<Exchange> exchange_;
};

Repl* Repl::active = nullptr;

// replnative.ready(prompt): an evaluation finished; read the next line.
int repl_ready(lua_State* L) {
  const char* prompt = luaL_optstring(L, 1, "> ");
  if (Repl::active != nullptr) Repl::active->release(prompt);
  return 0;
}

}  // namespace

int open_native(lua_State* L) {
  const luaL_Reg functions[] = {{"ready", repl_ready}, {nullptr, nullptr}};
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

void start(Runtime& rt) {
  bool tty = isatty(STDIN_FILENO) != 0;
  if (tty) {
    if (tcgetattr(STDIN_FILENO, &g_saved_termios) == 0 && !g_termios_saved) {
      g_termios_saved = true;
      std::atexit(restore_terminal);
    }
    std::printf("Evo %s (LuaJIT on libuv). Ctrl-D exits.\n", EVO_VERSION);
    std::fflush(stdout);
  }
  NativeHandle::release_to_loop(std::make_unique<Repl>(rt, tty))->begin();
}

}  // namespace evo::repl
