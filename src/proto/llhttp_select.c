// llhttp's entry point, as api.c calls it (llhttp_execute): the copy built
// for SSE4.2 where the CPU has it (llhttp_sse42.c), else the baseline one
// (llhttp.c, built with its entry point renamed evo_llhttp_execute_base).
// Both are the same state machine; the SSE4.2 copy scans a header value
// sixteen bytes at a time. tests/cpp/llhttp_select_test.cpp checks that they
// agree on every input it tries.
#include <llhttp.h>

int evo_llhttp_execute_base(llhttp__internal_t* s, const char* p, const char* endp);
#if defined(__x86_64__) && defined(EVO_LLHTTP_SSE42)
int evo_llhttp_execute_sse42(llhttp__internal_t* s, const char* p, const char* endp);

// (__builtin_cpu_supports reads what libgcc found at start-up: one load.)
int llhttp__internal_execute(llhttp__internal_t* s, const char* p, const char* endp) {
  if (__builtin_cpu_supports("sse4.2")) return evo_llhttp_execute_sse42(s, p, endp);
  return evo_llhttp_execute_base(s, p, endp);
}
#else
int llhttp__internal_execute(llhttp__internal_t* s, const char* p, const char* endp) {
  return evo_llhttp_execute_base(s, p, endp);
}
#endif
