-- The HTTP server's FFI fast path (src/bind/http.cpp, namespace fast): a
-- table of C function pointers that compiled Lua calls inside its trace,
-- where a classic native costs a trace exit and its arguments go through the
-- C API. Each function does the common case and answers "done" (1 for the
-- HttpServer functions, 0 for res:send's and a request's end; a header
-- added as its own line answers 2 and 1: lib/evo/checkedheaders.lua), or
-- refuses, and the caller then takes the classic native, which does it all
-- and raises the errors with their usual messages. Declared once here: ffi.cdef refuses
-- a second definition of the struct.
local ffi = require("ffi")
ffi.cdef[[
typedef struct evo_http_event {
  double id;
  const char* part[5];
  size_t len[5];
} evo_http_event;
typedef struct evo_http_fast {
  int (*status_code)(void*, double, double);
  int (*status_line)(void*, double, const char*, size_t);
  int (*header)(void*, double, const char*, size_t, const char*, size_t);
  int (*send)(void*, double, const char*, size_t);
  int (*send_begin)(double, double);
  int (*send_header)(const char*, size_t, const char*, size_t);
  void (*send_abort)(void);
  int (*send_end)(const char*, size_t);
  int (*done)(double);
  int (*request_part)(double, int, const char**);
  int (*next_event)(void*, evo_http_event*);
  double (*next_request)(void);
  int (*send_checked_header)(const char*, size_t, const char*, size_t);
  int (*checked_header)(void*, double, const char*, size_t, const char*, size_t);
  int (*send_line)(const char*, size_t);
  int (*header_line)(void*, double, const char*, size_t);
} evo_http_fast;
]]
return ffi.cast("const evo_http_fast*", require("evo.http").fastApi)
