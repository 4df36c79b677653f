// libFuzzer target for src/proto/regex: option letters, PCRE2 compiling an
// arbitrary pattern, and matching it at every offset of a subject (the way
// gmatch and gsub walk one), interpreter, JIT and DFA alike.
//
// Input: the option letters, a NUL, the pattern, a NUL, the subject.
// Checks: no crash; every reported pair lies inside the subject, start <=
// end; an unknown letter is refused with a message.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proto/regex.h"

namespace rx = evo::proto::regex;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t a = in.find('\0');
  if (a == std::string_view::npos) return 0;
  size_t b = in.find('\0', a + 1);
  if (b == std::string_view::npos) return 0;
  std::string_view flags = in.substr(0, a), pattern = in.substr(a + 1, b - a - 1), subject = in.substr(b + 1);
  if (flags.size() > 8) return 0;
  rx::Options opts;
  std::string err;
  if (!rx::parse_options(flags, &opts, &err)) {
    if (err.empty()) abort();
    return 0;
  }
  auto re = rx::Regex::compile(pattern, opts, &err);
  if (!re) {
    if (err.empty()) abort();
    return 0;
  }
  std::vector<size_t> ovec;
  for (size_t off = 0; off <= subject.size(); ++off) {
    int pairs = re->match(subject, off, &ovec, &err);
    if (pairs <= 0) continue;
    for (int i = 0; i < pairs; ++i) {
      size_t s = ovec[2 * i], e = ovec[2 * i + 1];
      if (s == rx::Regex::npos) continue;
      if (s > e || e > subject.size()) abort();
    }
  }
  (void)re->names();
  return 0;
}
