// llhttp's two builds, as src/proto/llhttp_select.c picks between them: the
// baseline copy and, on x86-64 (EVO_LLHTTP_SSE42), the one built for SSE4.2
// (src/proto/llhttp_sse42.c). Each runs one piece of input as
// llhttp_execute does. trace() writes down what a copy did with an input,
// so that tests and the fuzz target can check that the copies agree.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <string>
#include <string_view>

extern "C" {
int evo_llhttp_execute_base(llhttp__internal_t* s, const char* p, const char* endp);
#ifdef EVO_LLHTTP_SSE42
int evo_llhttp_execute_sse42(llhttp__internal_t* s, const char* p, const char* endp);
#endif
}

namespace evo::http::llhttp_copies {

using Execute = int (*)(llhttp__internal_t*, const char*, const char*);

namespace detail {
struct Recorder {
  const char* base;
  std::string out;
};
inline Recorder& of(llhttp_t* p) { return *static_cast<Recorder*>(p->data); }
template <char Tag>
int span(llhttp_t* p, const char* at, size_t n) {
  Recorder& r = of(p);
  r.out += Tag;
  r.out += std::to_string(at - r.base) + ':' + std::to_string(n) + ' ';
  return 0;
}
template <char Tag>
int mark(llhttp_t* p) {
  of(p).out += Tag;
  return 0;
}
}  // namespace detail

// Every callback with its span (offsets into `input`) in order, then how the
// run ended (its error and where), feeding `input` in pieces of `piece` bytes.
inline std::string trace(Execute run, llhttp_type_t type, std::string_view input, size_t piece) {
  using namespace detail;
  llhttp_settings_t s;
  llhttp_settings_init(&s);
  s.on_message_begin = mark<'B'>;
  s.on_url = span<'U'>;
  s.on_status = span<'S'>;
  s.on_method = span<'M'>;
  s.on_version = span<'V'>;
  s.on_header_field = span<'F'>;
  s.on_header_value = span<'v'>;
  s.on_chunk_extension_name = span<'n'>;
  s.on_chunk_extension_value = span<'x'>;
  s.on_body = span<'b'>;
  s.on_headers_complete = mark<'H'>;
  s.on_message_complete = mark<'C'>;
  s.on_url_complete = mark<'u'>;
  s.on_status_complete = mark<'s'>;
  s.on_method_complete = mark<'m'>;
  s.on_version_complete = mark<'w'>;
  s.on_header_field_complete = mark<'f'>;
  s.on_header_value_complete = mark<'e'>;
  s.on_chunk_header = mark<'K'>;
  s.on_chunk_complete = mark<'k'>;
  s.on_reset = mark<'R'>;
  Recorder rec{input.data(), {}};
  llhttp_t parser;
  llhttp_init(&parser, type, &s);
  parser.data = &rec;
  if (piece == 0) piece = 1;
  for (size_t at = 0; at < input.size(); at += piece) {
    size_t n = input.size() - at < piece ? input.size() - at : piece;
    int err = run(&parser, input.data() + at, input.data() + at + n);
    if (err != HPE_OK) {
      const char* pos = llhttp_get_error_pos(&parser);
      rec.out += "| error " + std::to_string(err) + " at " +
                 (pos == nullptr ? std::string("-") : std::to_string(pos - input.data()));
      return rec.out;
    }
  }
  rec.out += "| ok, flags " + std::to_string(parser.flags);
  return rec.out;
}

}  // namespace evo::http::llhttp_copies
