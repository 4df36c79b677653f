// llhttp's SSE4.2 copy (src/proto/llhttp_sse42.c) must do exactly what the
// baseline copy does: it scans a header value sixteen bytes at a time, so
// the values here put every kind of byte at every place around and across
// those sixteen bytes, in pieces of every size that matters.
#include <gtest/gtest.h>

#include <string>

#include "proto/llhttp_copies.h"

namespace {
using evo::http::llhttp_copies::trace;

int selected(llhttp_t* p, const char* at, const char* end) {
  return static_cast<int>(llhttp_execute(p, at, static_cast<size_t>(end - at)));
}

std::string request_with_value(const std::string& value) {
  return "GET /p?q=1 HTTP/1.1\r\nHost: example.com:8080\r\nX-Value: " + value +
         "\r\nAccept: */*\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n";
}
}  // namespace

#ifdef EVO_LLHTTP_SSE42
TEST(LlhttpCopies, AgreeOnEveryByteAtEveryPlaceOfAValue) {
  const std::string specials = {'\0', '\t',   '\n',   '\r',   ' ',    '"',
                                ',',  '\x01', '\x1f', '\x7f', '\x80', '\xff'};
  int errors = 0;
  int oks = 0;
  for (size_t len = 1; len <= 40; ++len) {
    for (size_t at = 0; at < len; ++at) {
      for (char c : specials) {
        std::string value(len, 'v');
        value[at] = c;
        std::string input = request_with_value(value);
        for (size_t piece : {input.size(), size_t{7}, size_t{16}, size_t{17}}) {
          std::string base = trace(evo_llhttp_execute_base, HTTP_REQUEST, input, piece);
          std::string sse = trace(evo_llhttp_execute_sse42, HTTP_REQUEST, input, piece);
          ASSERT_EQ(base, sse) << "value length " << len << ", byte " << static_cast<int>(c) << " at " << at
                               << ", pieces of " << piece;
          (base.find("| error") != std::string::npos ? errors : oks)++;
        }
      }
    }
  }
  // Both outcomes were tried: refused bytes (NUL, LF, DEL...) and allowed ones.
  EXPECT_GT(errors, 1000);
  EXPECT_GT(oks, 1000);
}

TEST(LlhttpCopies, AgreeOnABrowsersRequestAndItsValuesComeWhole) {
  std::string ua =
      "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
  std::string input = "GET /index.html HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: " + ua +
                      "\r\nAccept-Language: en-US,en;q=0.9\r\n\r\n";
  std::string base = trace(evo_llhttp_execute_base, HTTP_REQUEST, input, input.size());
  EXPECT_EQ(base, trace(evo_llhttp_execute_sse42, HTTP_REQUEST, input, input.size()));
  EXPECT_EQ(base, trace(selected, HTTP_REQUEST, input, input.size()));
  // The user agent's value is one span of its whole length.
  size_t offset = input.find(ua);
  EXPECT_NE(base.find("v" + std::to_string(offset) + ":" + std::to_string(ua.size()) + " "),
            std::string::npos)
      << base;
  EXPECT_NE(base.find("| ok"), std::string::npos) << base;
}
#else
TEST(LlhttpCopies, AgreeOnEveryByteAtEveryPlaceOfAValue) {
  GTEST_SKIP() << "one copy of llhttp on this CPU family";
}
#endif
