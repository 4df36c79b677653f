// json::Writer::string against a byte-at-a-time reference: its SIMD body
// and word-at-a-time tail must escape exactly what the reference does, at
// every length and position, and report invalid UTF-8 wherever it is.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "proto/json_write.h"

namespace {

std::string reference(std::string_view s) {
  static const char* const kHex = "0123456789abcdef";
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// Writes s after some text already in the buffer (the writer appends).
void expect_written(std::string_view s) {
  evo::json::Writer w;
  w.append("x");
  bool ok = w.string(s);
  std::string got(w.data() + 1, w.size() - 1);
  ASSERT_EQ(got, reference(s)) << testing::PrintToString(std::string(s));
  ASSERT_EQ(ok, evo::json::valid_utf8(s)) << testing::PrintToString(std::string(s));
}

TEST(JsonWrite, EveryByteAtEveryPositionOfShortStrings) {
  for (size_t len = 1; len <= 40; ++len) {
    for (size_t at = 0; at < len; ++at) {
      for (int c = 0; c < 256; ++c) {
        std::string s(len, 'a');
        s[at] = static_cast<char>(c);
        expect_written(s);
      }
    }
  }
}

TEST(JsonWrite, PlainStringsOfEveryLength) {
  for (size_t len = 0; len <= 70; ++len) {
    std::string s;
    for (size_t i = 0; i < len; ++i) s += static_cast<char>(0x20 + (i * 37) % 95);
    expect_written(s);
  }
}

TEST(JsonWrite, MultiByteCharactersAndTwoEscapes) {
  const std::string chars[] = {"\xc3\xa9", "\xe6\x9d\xb1", "\xf0\x9f\x98\x80",
                               "\xed\xa0\x80" /* a surrogate */};
  for (const auto& ch : chars) {
    for (size_t len = 0; len <= 24; ++len) {
      for (size_t at = 0; at <= len; ++at) {
        std::string s(len, 'b');
        s.insert(at, ch);
        expect_written(s);
        s.insert(0, "\n");
        s += '"';
        expect_written(s);
        expect_written(s.substr(0, s.size() - 2));  // a character cut short
      }
    }
  }
}

}  // namespace
