// libFuzzer target: the HTTP request parser fed arbitrary bytes in arbitrary
// pieces, with pipelining. It must never crash, read out of bounds, leak,
// or consume more than it was given, and a chunked body's trailers stay
// apart from the headers and within max_header_bytes. Run by `make test-fuzz`.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proto/http_headers.h"

#include "proto/http_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte chooses the piece size, so splits are explored too.
  size_t piece = 1 + data[0] % 64;
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  evo::http::Limits limits;
  limits.max_header_bytes = 1024;
  limits.max_uri = 256;
  limits.max_body = 4096;
  evo::http::RequestParser parser(limits);
  size_t pos = 0;
  int requests = 0;
  while (pos < input.size()) {
    std::string_view chunk = input.substr(pos, piece);
    size_t used = 0;
    auto result = parser.feed(chunk, &used);
    if (used > chunk.size()) __builtin_trap();
    pos += used;
    if (result == evo::http::RequestParser::Result::Error) {
      int status = parser.error_status();
      if (status != 400 && status != 413 && status != 414 && status != 431 && status != 501 &&
          status != 505) {
        __builtin_trap();
      }
      break;
    }
    if (result == evo::http::RequestParser::Result::HeadersComplete) {
      parser.resume_body();
      continue;
    }
    if (result == evo::http::RequestParser::Result::Complete) {
      ++requests;
      const evo::http::Request& r = parser.request();
      if (r.body.size() > limits.max_body) __builtin_trap();
      // Trailers come only after a chunked body; each field's bytes were
      // counted against the limit (line ends and colons on top).
      if (!r.trailers.empty() && !r.chunked) __builtin_trap();
      size_t trailer_bytes = 0;
      for (const auto& [name, value] : r.trailers) trailer_bytes += name.size() + value.size();
      if (trailer_bytes > limits.max_header_bytes) __builtin_trap();
      parser.next();
      if (parser.request().upgrade) break;
    }
  }
  (void)requests;
  return 0;
}
