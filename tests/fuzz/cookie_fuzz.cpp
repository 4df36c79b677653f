// libFuzzer target: the Cookie header parser and the cookie checks
// (src/proto/cookie). Run by `make test-fuzz`.
//
// The input is a Cookie header. Invariants: every pair has a non-empty
// name without ';' or '=' and trimmed of whitespace, a value without ';';
// decoding never grows a value; a pair made of a name and value the checks
// accept parses back to exactly that pair, alone or amid the input's pairs.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proto/cookie.h"

namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

Pairs parse(std::string_view header) {
  Pairs out;
  evo::cookie::parse(header, [&](std::string_view n, std::string_view v) { out.emplace_back(n, v); });
  return out;
}

bool space(char c) { return c == ' ' || c == '\t'; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view header(reinterpret_cast<const char*>(data), size);
  Pairs pairs = parse(header);
  for (const auto& [name, value] : pairs) {
    if (name.empty() || name.find_first_of(";=") != std::string::npos) std::abort();
    if (space(name.front()) || space(name.back())) std::abort();
    if (value.find(';') != std::string::npos) std::abort();
    if (evo::cookie::decode(value).size() > value.size()) std::abort();
  }
  // The input's first half as a name, the second as a value: when the
  // checks accept both, the pair must survive a header of its own and one
  // between the input's pairs.
  std::string_view name = header.substr(0, size / 2);
  std::string_view value = header.substr(size / 2);
  if (evo::cookie::valid_name(name) && evo::cookie::valid_value(value)) {
    std::string expect(value);
    if (expect.size() >= 2 && expect.front() == '"' && expect.back() == '"')
      expect = expect.substr(1, expect.size() - 2);
    Pairs one = parse(std::string(name) + "=" + std::string(value));
    if (one.size() != 1 || one[0].first != name || one[0].second != expect) std::abort();
    Pairs mixed = parse("a=1; " + std::string(name) + "=" + std::string(value) + "; z=2");
    if (mixed.size() != 3 || mixed[1].first != name || mixed[1].second != expect) std::abort();
  }
  return 0;
}
