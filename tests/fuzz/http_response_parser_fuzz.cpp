// libFuzzer target: the HTTP client's response parser fed arbitrary bytes in
// arbitrary pieces, as a response to GET or HEAD, with the connection ending
// after them. It must never crash, read out of bounds, leak, consume more
// than it was given, deliver more body than the framing allows, or report
// trailers other than a chunked body's, beyond the header limits. Run by
// `make test-fuzz`.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proto/http_response_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte chooses the piece size (so splits are explored too) and
  // whether the request was a HEAD.
  size_t piece = 1 + (data[0] & 0x3f);
  bool head = (data[0] & 0x40) != 0;
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  evo::http::ResponseLimits limits;
  limits.max_header_bytes = 1024;
  limits.max_headers = 20;
  evo::http::ResponseParser parser(limits);
  parser.reset(head);
  using Result = evo::http::ResponseParser::Result;
  Result result = Result::NeedMore;
  uint64_t body = 0;
  size_t pos = 0;
  while (pos < input.size() && result == Result::NeedMore) {
    std::string_view chunk = input.substr(pos, piece);
    size_t used = 0;
    result = parser.feed(chunk, &used);
    if (used > chunk.size()) __builtin_trap();
    if (result == Result::NeedMore && used != chunk.size()) __builtin_trap();
    body += parser.body().size();
    parser.body().clear();
    pos += used;
  }
  if (result == Result::NeedMore) result = parser.finish();
  body += parser.body().size();
  if (body != parser.body_bytes()) __builtin_trap();
  if (result == Result::Error && parser.error().empty()) __builtin_trap();
  if (result == Result::Complete) {
    const auto& r = parser.response();
    if (!parser.headers_done() || r.status < 100 || r.status > 999) __builtin_trap();
    if (r.status < 200 && r.status != 101) __builtin_trap();  // interim responses are skipped
    if (r.framing == evo::http::Framing::Length && body != r.content_length) __builtin_trap();
    if (r.framing == evo::http::Framing::None && body != 0) __builtin_trap();
    if (head && body != 0) __builtin_trap();
    if (r.headers.size() > limits.max_headers) __builtin_trap();
    auto& trailers = parser.trailers();
    if (!trailers.empty() && r.framing != evo::http::Framing::Chunked) __builtin_trap();
    if (trailers.size() > limits.max_headers) __builtin_trap();
    size_t trailer_bytes = 0;
    for (const auto& [name, value] : trailers) trailer_bytes += name.size() + value.size();
    if (trailer_bytes > limits.max_header_bytes) __builtin_trap();
  }
  return 0;
}
