// Error reporting: one format for every uncaught error in Evo.
//
//   evo: script.lua:3: boom
//   stack traceback:
//           [C]: in function 'error'
//           script.lua:3: in main chunk
#pragma once

#include <lua.hpp>

#include <string>

namespace evo::errors {

// lua_pcall message handler: converts the error value to a string (honouring
// __tostring) and appends a traceback of the failing stack.
int traceback_handler(lua_State* L);

// The error value at `idx` as text, without a traceback.
std::string describe(lua_State* L, int idx);

// The error value at `idx` of coroutine `co` with the traceback of `co`'s
// stack (which stays intact after a failed resume).
std::string describe_with_traceback(lua_State* L, lua_State* co, int idx);

// Writes "evo: <text>" and a newline to stderr.
void report(const std::string& text);

// lua_pcall with traceback_handler. On error leaves the message (with the
// traceback) on the stack and returns false.
bool pcall_traceback(lua_State* L, int nargs, int nresults);

// Registry field holding a function that takes the message of an uncaught
// error (in a luv callback or an event handler) instead of the usual
// handling; `evo test` installs one to fail the running test.
inline constexpr const char* kUncaughtHandlerKey = "evo.uncaught";
// Registry key of the function Runtime::run_loop calls when the loop runs out of work.
inline constexpr const char* kIdleHandlerKey = "evo.idle";

// Gives `text` to the uncaught-error handler if one is installed and returns
// true; returns false (having done nothing) otherwise.
bool deliver_to_uncaught_handler(lua_State* L, const std::string& text);

// An error nobody caught but that must not stop the loop (event handlers):
// goes to the uncaught-error handler if installed, else is reported.
void report_uncaught(lua_State* L, const std::string& text);

// Pushes an Evo error object {code, message} (lib/evo/errors.lua), the value
// operational failures return as `nil, err`.
void push_error(lua_State* L, const char* code, const std::string& message);

// push_error for a libuv status: code = uv_err_name, message = uv_strerror
// (followed by `detail`, such as a path, when given).
void push_uv_error(lua_State* L, int status, const std::string& detail = std::string());

// Calls the function below `nargs` arguments in protected mode with a
// traceback. On error reports "evo: <context>: <message + traceback>"
// (context may be null), pops it and returns false.
bool call_and_report(lua_State* L, int nargs, int nresults, const char* context);

}  // namespace evo::errors
