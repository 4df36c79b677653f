// Debian's llhttp state machine (/usr/share/llhttp/llhttp.c) compiled a
// second time, for CPUs with SSE4.2. The generated code has one SIMD path,
// under __SSE4_2__: a header value is scanned sixteen bytes at a time
// (_mm_cmpestri) instead of one table lookup per byte. Debian builds for the
// x86-64 baseline, which lacks SSE4.2 (AMD's K10, for one), so the library
// keeps its baseline copy too and llhttp_select.c picks one at run time.
//
// Built with -msse4.2. The copy's global functions are renamed by the
// #defines CMakeLists.txt reads off llhttp.c (llhttp_sse42_names.h), so
// that the two copies link side by side; both call the one api.c and http.c
// (which LTO inlines into each).
#include "llhttp_sse42_names.h"  // (first: it renames what llhttp.c defines)

#include "llhttp.c"
