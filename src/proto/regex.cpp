#include "proto/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>

namespace evo::proto::regex {

namespace {

// OpenResty's letters and what each means for PCRE2.
uint32_t compile_flag(char c) {
  switch (c) {
    case 'i':
      return PCRE2_CASELESS;
    case 'm':
      return PCRE2_MULTILINE;
    case 's':
      return PCRE2_DOTALL;
    case 'x':
      return PCRE2_EXTENDED;
    // U skips nothing here: with PCRE2_NO_UTF_CHECK an invalid subject is
    // undefined behaviour, so both letters keep PCRE2's check (see docs/ngx.md).
    case 'u':
    case 'U':
      return PCRE2_UTF;
    case 'a':
      return PCRE2_ANCHORED;
    case 'D':
      return PCRE2_DUPNAMES;
    // JavaScript compatibility, as PCRE1's PCRE_JAVASCRIPT_COMPAT was.
    case 'J':
      return PCRE2_ALT_BSUX | PCRE2_ALLOW_EMPTY_CLASS | PCRE2_MATCH_UNSET_BACKREF;
    default:
      return 0;
  }
}

std::string error_text(int code) {
  std::array<PCRE2_UCHAR, 256> buf{};
  int n = pcre2_get_error_message(code, buf.data(), buf.size());
  if (n < 0) return "error " + std::to_string(code);
  return std::string(reinterpret_cast<const char*>(buf.data()), static_cast<size_t>(n));
}

}  // namespace

bool parse_options(std::string_view flags, Options* out, std::string* err) {
  Options o;
  for (char c : flags) {
    if (uint32_t f = compile_flag(c)) {
      o.compile |= f;
    } else if (c == 'j') {
      o.jit = true;
    } else if (c == 'd') {
      o.dfa = true;
    } else if (c == 'o') {
      o.cache = true;
    } else {
      *err = "unknown flag \"" + std::string(1, c) + "\" (flags \"" + std::string(flags) + "\")";
      return false;
    }
  }
  *out = o;
  return true;
}

struct Regex::Impl {
  pcre2_code* code = nullptr;
  pcre2_match_data* data = nullptr;
  ~Impl() {
    pcre2_match_data_free(data);
    pcre2_code_free(code);
  }
};

Regex::Regex(std::unique_ptr<Impl> impl, int captures, bool dfa)
    : impl_(std::move(impl)), captures_(captures), dfa_(dfa) {}
Regex::~Regex() = default;

std::unique_ptr<Regex> Regex::compile(std::string_view pattern, const Options& opts, std::string* err) {
  int code = 0;
  PCRE2_SIZE at = 0;
  auto impl = std::make_unique<Impl>();
  impl->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), opts.compile,
                             &code, &at, nullptr);
  if (impl->code == nullptr) {
    std::string_view rest = at <= pattern.size() ? pattern.substr(at) : std::string_view();
    *err = "pcre2_compile() failed: " + error_text(code) + " in \"" + std::string(pattern) + "\" at \"" +
           std::string(rest) + "\"";
    return nullptr;
  }
  // A failed JIT compile is not an error: the interpreter matches the same.
  if (opts.jit && !opts.dfa) pcre2_jit_compile(impl->code, PCRE2_JIT_COMPLETE);
  uint32_t count = 0;
  pcre2_pattern_info(impl->code, PCRE2_INFO_CAPTURECOUNT, &count);
  // The DFA matcher reports several matches (longest first) in the pairs:
  // room for a few is enough, only the first is used.
  impl->data = opts.dfa ? pcre2_match_data_create(8, nullptr)
                        : pcre2_match_data_create_from_pattern(impl->code, nullptr);
  if (impl->data == nullptr) {
    *err = "pcre2_match_data_create() failed: out of memory";
    return nullptr;
  }
  return std::unique_ptr<Regex>(new Regex(std::move(impl), static_cast<int>(count), opts.dfa));
}

int Regex::match(std::string_view subject, size_t offset, std::vector<size_t>* ovec, std::string* err) const {
  if (offset > subject.size()) return 0;
  auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data());
  int rc = 0;
  if (dfa_) {
    std::array<int, 100> workspace{};
    rc = pcre2_dfa_match(impl_->code, s, subject.size(), offset, 0, impl_->data, nullptr, workspace.data(),
                         workspace.size());
    if (rc == 0) rc = 1;  // more matches than pairs: the first (longest) is there
    if (rc > 0) rc = 1;   // only the longest counts, as in OpenResty
  } else {
    rc = pcre2_match(impl_->code, s, subject.size(), offset, 0, impl_->data, nullptr);
  }
  if (rc == PCRE2_ERROR_NOMATCH) return 0;
  if (rc < 0) {
    *err = std::string(dfa_ ? "pcre2_dfa_match" : "pcre2_match") + "() failed: " + error_text(rc);
    return -1;
  }
  // rc counts pairs up to the highest set group: report every group.
  int pairs = dfa_ ? 1 : captures_ + 1;
  PCRE2_SIZE* v = pcre2_get_ovector_pointer(impl_->data);
  ovec->assign(static_cast<size_t>(pairs) * 2, npos);
  for (int i = 0; i < pairs && i < rc; ++i) {
    if (v[2 * i] == PCRE2_UNSET) continue;
    (*ovec)[2 * i] = v[2 * i];
    (*ovec)[2 * i + 1] = v[2 * i + 1];
  }
  return pairs;
}

std::vector<std::pair<std::string, int>> Regex::names() const {
  uint32_t count = 0, entry = 0;
  PCRE2_SPTR table = nullptr;
  pcre2_pattern_info(impl_->code, PCRE2_INFO_NAMECOUNT, &count);
  pcre2_pattern_info(impl_->code, PCRE2_INFO_NAMEENTRYSIZE, &entry);
  pcre2_pattern_info(impl_->code, PCRE2_INFO_NAMETABLE, &table);
  std::vector<std::pair<std::string, int>> out;
  for (uint32_t i = 0; i < count; ++i) {
    PCRE2_SPTR e = table + static_cast<size_t>(i) * entry;
    int group = (e[0] << 8) | e[1];  // two bytes, most significant first
    out.emplace_back(reinterpret_cast<const char*>(e + 2), group);
  }
  return out;
}

bool Regex::utf() const {
  uint32_t all = 0;
  pcre2_pattern_info(impl_->code, PCRE2_INFO_ALLOPTIONS, &all);
  return (all & PCRE2_UTF) != 0;
}

}  // namespace evo::proto::regex
