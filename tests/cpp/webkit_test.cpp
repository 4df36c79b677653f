// The web-app kit's parsers: the Cookie header (src/proto/cookie) and the
// streaming multipart/form-data parser (src/proto/multipart), with RFC 7578
// examples fed in every piece size.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "proto/cookie.h"
#include "proto/multipart.h"

namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

Pairs cookies(std::string_view header) {
  Pairs out;
  evo::cookie::parse(header, [&](std::string_view n, std::string_view v) { out.emplace_back(n, v); });
  return out;
}

TEST(Cookie, ParsesPairsTolerantly) {
  EXPECT_EQ(cookies("a=1; b=2"), (Pairs{{"a", "1"}, {"b", "2"}}));
  EXPECT_EQ(cookies(" a = 1 ;b=\"q v\";; c ; =x; d="), (Pairs{{"a", "1"}, {"b", "q v"}, {"d", ""}}));
  EXPECT_EQ(cookies("e=a=b"), (Pairs{{"e", "a=b"}}));
  EXPECT_EQ(cookies("\"=1"), (Pairs{{"\"", "1"}}));
  EXPECT_TRUE(cookies("").empty());
  EXPECT_TRUE(cookies(";;;").empty());
}

TEST(Cookie, DecodesPercentEscapesLeavingBadOnes) {
  EXPECT_EQ(evo::cookie::decode("a%20b%3bc"), "a b;c");
  EXPECT_EQ(evo::cookie::decode("%zz%4%"), "%zz%4%");
  EXPECT_EQ(evo::cookie::decode("%E2%82%AC"), "\xE2\x82\xAC");
}

TEST(Cookie, ChecksNamesAndValues) {
  EXPECT_TRUE(evo::cookie::valid_name("session_id-1.x"));
  for (const char* bad : {"", "a b", "a;b", "a=b", "a,b", "a\r\n", "a\"", "(a)"}) {
    EXPECT_FALSE(evo::cookie::valid_name(bad)) << bad;
  }
  EXPECT_TRUE(evo::cookie::valid_value("s:abc.DEF-_/+="));
  EXPECT_TRUE(evo::cookie::valid_value(""));
  EXPECT_TRUE(evo::cookie::valid_value("\"quoted\""));
  for (const char* bad : {"a b", "a;b", "a,b", "a\\b", "a\"b", "\"", "a\r\nb", "\x7f", "\xc3\xa9"}) {
    EXPECT_FALSE(evo::cookie::valid_value(bad)) << bad;
  }
}

struct Record : evo::multipart::Sink {
  std::string log;
  void on_part(const evo::multipart::Part& p) override {
    log += "[" + p.name + (p.has_filename ? "|" + p.filename : "") + "|" + p.content_type + "]";
  }
  void on_data(std::string_view b) override { log += b; }
  void on_part_end() override { log += "[/]"; }
};

// Parses body in pieces of every size from 1 to its length; all must agree.
std::string parse_all_ways(std::string_view boundary, const std::string& body, bool* ok) {
  std::string first;
  for (size_t piece = 1; piece <= body.size(); ++piece) {
    evo::multipart::Parser p(boundary);
    Record r;
    bool good = true;
    for (size_t i = 0; i < body.size() && good; i += piece)
      good = p.feed(std::string_view(body).substr(i, piece), r);
    good = good && p.finish();
    if (piece == 1) {
      first = r.log;
      *ok = good;
    } else {
      EXPECT_EQ(r.log, first) << "piece " << piece;
      EXPECT_EQ(good, *ok) << "piece " << piece;
    }
  }
  return first;
}

TEST(Multipart, ParsesRfc7578Example) {
  // RFC 7578 4.4-style body: a field, a file, CRLFs and dashes in the data.
  std::string body =
      "--AaB03x\r\n"
      "Content-Disposition: form-data; name=\"submit-name\"\r\n\r\n"
      "Larry\r\n"
      "--AaB03x\r\n"
      "Content-Disposition: form-data; name=\"files\"; filename=\"file1.txt\"\r\n"
      "Content-Type: text/plain\r\n\r\n"
      "... contents of file1.txt ...\r\n--AaB03\r\n-- not a boundary\r\n"
      "--AaB03x--\r\n";
  bool ok = false;
  std::string log = parse_all_ways("AaB03x", body, &ok);
  EXPECT_TRUE(ok);
  EXPECT_EQ(
      log,
      "[submit-name|]Larry[/][files|file1.txt|text/plain]... contents of file1.txt ...\r\n--AaB03\r\n-- not "
      "a boundary[/]");
}

TEST(Multipart, HandlesPreambleEpilogueEmptyPartsAndExtParams) {
  std::string body =
      "preamble --b\r\n--b \t\r\n\r\n\r\n--b\r\n"
      "content-disposition: form-data; name=\"f\"; filename=\"a.txt\"; filename*=UTF-8''%E2%82%AC.txt\r\n"
      "X-Folded: one\r\n two\r\n\r\nx\r\n--b--epilogue\r\n--b\r\n";
  bool ok = false;
  std::string log = parse_all_ways("b", body, &ok);
  EXPECT_TRUE(ok);
  EXPECT_EQ(log, "[|][/][f|\xE2\x82\xAC.txt|]x[/]");
}

TEST(Multipart, RefusesMalformedBodies) {
  struct Case {
    const char* body;
    const char* error;
  };
  for (const Case& c : {
           Case{"--b\r\nno colon\r\n\r\nx\r\n--b--", "a malformed header line in a part"},
           Case{"--bx\r\n\r\nx\r\n--b--", "a boundary line does not end with CRLF"},
           Case{"--b\r\n\r\nx\r\n--b", "the body ended before the closing boundary"},
           Case{"no boundary at all", "the body ended before the closing boundary"},
       }) {
    evo::multipart::Parser p("b");
    Record r;
    bool good = p.feed(c.body, r) && p.finish();
    EXPECT_FALSE(good) << c.body;
    EXPECT_EQ(p.error(), c.error) << c.body;
  }
  evo::multipart::Parser p("b", {.max_header_bytes = 64});
  Record r;
  EXPECT_FALSE(p.feed("--b\r\nX: " + std::string(100, 'y') + "\r\n\r\n", r));
  EXPECT_EQ(p.error(), "a part's headers are too large");
}

TEST(Multipart, HoldsBackOnlyADelimiterWhileStreaming) {
  evo::multipart::Parser p("boundary");
  Record r;
  ASSERT_TRUE(p.feed("--boundary\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n", r));
  std::string chunk(65536, 'z');
  chunk[65535] = '\r';
  size_t seen = 0;
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(p.feed(chunk, r));
    EXPECT_LE(p.buffered(), 13U);
    seen = r.log.size();
  }
  EXPECT_GT(seen, 100U * 65535U);
  ASSERT_TRUE(p.feed("\n--boundary--", r));
  EXPECT_TRUE(p.finish());
}

TEST(Multipart, ValidatesBoundaries) {
  EXPECT_TRUE(evo::multipart::Parser::valid_boundary("----WebKitFormBoundary7MA4YWxkTrZu0gW"));
  EXPECT_TRUE(evo::multipart::Parser::valid_boundary("a'()+_,-./:=? b"));
  EXPECT_FALSE(evo::multipart::Parser::valid_boundary(""));
  EXPECT_FALSE(evo::multipart::Parser::valid_boundary(std::string(71, 'a')));
  EXPECT_FALSE(evo::multipart::Parser::valid_boundary("ends with space "));
  EXPECT_FALSE(evo::multipart::Parser::valid_boundary("semi;colon"));
}

}  // namespace
