// Response building: reasons, header validation (no response splitting), Date.
#include <gtest/gtest.h>

#include <string>

#include "proto/http_response.h"

namespace evo::http {
namespace {

TEST(HttpResponse, WritesStatusLinesWithStandardReasons) {
  std::string out;
  append_status_line(out, 404);
  append_status_line(out, 200, "Fine");
  append_status_line(out, 299);
  EXPECT_EQ(out, "HTTP/1.1 404 Not Found\r\nHTTP/1.1 200 Fine\r\nHTTP/1.1 299 Unknown\r\n");
  EXPECT_EQ(reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(reason_phrase(413), "Content Too Large");
}

TEST(HttpResponse, RefusesHeaderValuesThatWouldSplitTheResponse) {
  EXPECT_TRUE(valid_header_value("text/html; charset=utf-8"));
  EXPECT_TRUE(valid_header_value("tab\tinside"));
  EXPECT_TRUE(valid_header_value(""));
  EXPECT_FALSE(valid_header_value("a\r\nSet-Cookie: evil=1"));
  EXPECT_FALSE(valid_header_value("a\nb"));
  EXPECT_FALSE(valid_header_value("a\rb"));
  EXPECT_FALSE(valid_header_value(std::string("a\0b", 3)));
  EXPECT_FALSE(valid_header_value("del\x7f"));
}

// The check goes eight bytes at a time: every byte value at every position
// of a long value, against the byte-by-byte rule.
TEST(HttpResponse, HeaderValueCheckMatchesTheRuleAtEveryPosition) {
  for (int c = 0; c < 256; ++c) {
    bool allowed = (c >= 0x20 || c == '\t') && c != 0x7f;
    for (size_t at = 0; at < 19; ++at) {
      std::string v(19, 'v');
      v[at] = static_cast<char>(c);
      EXPECT_EQ(valid_header_value(v), allowed) << "byte " << c << " at " << at;
    }
  }
  EXPECT_TRUE(valid_header_value("\x80\xff\xc3\xa9 high bytes are fine \x7e"));
}

TEST(HttpResponse, AppendsHeaderLines) {
  std::string out = "HTTP/1.1 200 OK\r\n";
  append_header(out, "content-type", "text/plain");
  append_header(out, "x-empty", "");
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-empty: \r\n");
}

TEST(HttpResponse, AcceptsOnlyTokensAsHeaderNames) {
  EXPECT_TRUE(valid_header_name("Content-Type"));
  EXPECT_TRUE(valid_header_name("X-Custom_1"));
  EXPECT_FALSE(valid_header_name(""));
  EXPECT_FALSE(valid_header_name("Bad Name"));
  EXPECT_FALSE(valid_header_name("Bad:Name"));
  EXPECT_FALSE(valid_header_name("Bad\r\nName"));
}

TEST(HttpResponse, FormatsAndCachesTheDateHeader) {
  DateCache cache;
  EXPECT_EQ(cache.at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(cache.at(1794000000), "Fri, 06 Nov 2026 21:20:00 GMT");  // as `date -u -d @1794000000`
  uint64_t before = cache.formats();
  EXPECT_EQ(cache.at(1794000000), "Fri, 06 Nov 2026 21:20:00 GMT");
  EXPECT_EQ(cache.formats(), before) << "the same second is not formatted again";
  EXPECT_EQ(cache.now().size(), 29U);
}

TEST(HttpResponse, TheOkLineIsTheStatusLineAndTheDateLineOfTheSameSecond) {
  DateCache cache;
  const std::string& ok = cache.ok_line();
  EXPECT_EQ(ok, "HTTP/1.1 200 OK\r\n" + cache.line());
  EXPECT_EQ(ok.size(), 17U + 6U + 29U + 2U);
  EXPECT_EQ(cache.line(), "Date: " + cache.now() + "\r\n");
}

}  // namespace
}  // namespace evo::http
