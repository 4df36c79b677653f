// Ctrl-C and broken pipes, the way a command-line runtime should treat them.
//
// SIGPIPE is caught and dropped: a write to a closed pipe or socket comes back
// as EPIPE, and children (which exec) start with the default disposition.
// SIGINT exits with status 130, unless the script watches SIGINT itself (a
// Signal object or luv's uv.new_signal), in which case libuv takes the signal
// over and the script decides. The exit is clean when the loop is responsive;
// a second Ctrl-C while the first is still unhandled (a busy loop) exits at once.
// In the REPL, Ctrl-C interrupts the running evaluation instead.
// SIGTERM exits with status 143 the same way (unless the script watches it); a
// SIGALRM armed by the SIGTERM handler ends the process when Lua cannot take
// it within a second.
#pragma once

#include <functional>

namespace evo {
class Runtime;

namespace interrupt {

void install(Runtime& rt);
void uninstall();

// REPL mode: `on_idle` runs (from the loop) for a Ctrl-C at the prompt;
// during an evaluation (between evaluating(true) and evaluating(false)) a
// Ctrl-C raises the error "interrupted!" inside the running Lua code.
void set_repl_mode(std::function<void()> on_idle);
void evaluating(bool on);

// Ends the run from the REPL (a second Ctrl-C at the prompt).
void exit_repl(int code);

// A worker of `evo --workers` (src/cli/supervisor.cpp): SIGTERM and SIGINT
// call `stop` (from the loop, with the signal's number) instead of exiting,
// even when the script watches the signal too; the script's own watchers
// still get it. A pending SIGTERM no longer exits from the Lua hook.
void set_stop_handler(std::function<void(int)> stop);
// A SIGTERM or SIGINT arrived (async-signal-safe to read): blocking waits
// of a worker give up on it (src/io/blocking_io.cpp).
bool stop_requested();

}  // namespace interrupt
}  // namespace evo
