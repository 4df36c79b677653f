// libFuzzer target: llhttp's two copies (the baseline build and the SSE4.2
// one, src/proto/llhttp_select.c) must do the same with any input, requests
// and responses, in any pieces: the same callbacks with the same spans, the
// same end (an error at the same place). Run by `make test-fuzz`.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proto/llhttp_copies.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
#ifdef EVO_LLHTTP_SSE42
  if (size == 0) return 0;
  // The first byte chooses the piece size and the message type.
  size_t piece = 1 + data[0] % 64;
  llhttp_type_t type = (data[0] & 0x80) != 0 ? HTTP_RESPONSE : HTTP_REQUEST;
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  using evo::http::llhttp_copies::trace;
  if (trace(evo_llhttp_execute_base, type, input, piece) !=
      trace(evo_llhttp_execute_sse42, type, input, piece))
    __builtin_trap();
#else
  (void)data;
  (void)size;
#endif
  return 0;
}
