// regex: PCRE2 (Debian's libpcre2-8) behind OpenResty's option letters, sans
// I/O: a pattern and a subject in, offsets out. The Lua binding
// (src/bind/pcre.cpp, ngx.re in lib/ngx/re.lua) and the fuzz target share it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace evo::proto::regex {

// What OpenResty's option letters ask for (ngx.re.match(s, re, "ijo")).
struct Options {
  uint32_t compile = 0;  // PCRE2 compile options (i, m, s, x, u, U, a, D, J)
  bool jit = false;      // j: compile with PCRE2's JIT (falls back to the interpreter if it fails)
  bool dfa = false;      // d: the DFA matcher: the longest match, no captures
  bool cache = false;    // o: the caller may keep the compiled regex (the binding always caches)
};

// Parses the letters; on an unknown one returns false and sets err to
// OpenResty's message: unknown flag "z" (flags "iz").
bool parse_options(std::string_view flags, Options* out, std::string* err);

class Regex {
 public:
  // nullptr and err = "pcre2_compile() failed: <reason> in \"<pattern>\" at \"<rest>\""
  static std::unique_ptr<Regex> compile(std::string_view pattern, const Options& opts, std::string* err);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Matches from byte `offset` (0-based). Returns the number of offset pairs
  // filled in ovec (whole match first; an unset group is (npos, npos)), 0
  // when nothing matched, or -1 with err set (bad UTF-8, match limit...).
  int match(std::string_view subject, size_t offset, std::vector<size_t>* ovec, std::string* err) const;

  // Number of capturing groups (not counting the whole match).
  int captures() const { return captures_; }
  // (name, group number) for every named group, in table order; a name
  // appears once per group when duplicates are allowed (D).
  std::vector<std::pair<std::string, int>> names() const;
  bool utf() const;

  static constexpr size_t npos = static_cast<size_t>(-1);

 private:
  struct Impl;
  explicit Regex(std::unique_ptr<Impl> impl, int captures, bool dfa);
  std::unique_ptr<Impl> impl_;
  int captures_;
  bool dfa_;
};

}  // namespace evo::proto::regex
