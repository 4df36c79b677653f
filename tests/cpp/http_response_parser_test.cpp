// The HTTP/1 response parser of the client: framing, interim responses,
// HEAD, limits, and the strictness that keeps a server from fooling it.
#include <gtest/gtest.h>

#include <string>

#include "proto/http_response_parser.h"

namespace evo::http {
namespace {

struct Parsed {
  ResponseParser::Result result = ResponseParser::Result::NeedMore;
  std::string body;
  std::string rest;  // what followed the response
};

// Feeds `wire` whole or byte by byte, collecting the body as it comes;
// `eof`: the connection ends after it.
Parsed parse(ResponseParser& p, const std::string& wire, bool bytewise, bool eof = false) {
  Parsed out;
  std::string_view rest(wire);
  size_t step = bytewise ? 1 : (rest.empty() ? 1 : rest.size());
  while (!rest.empty()) {
    size_t used = 0;
    std::string_view piece = rest.substr(0, step);
    out.result = p.feed(piece, &used);
    out.body += p.body();
    p.body().clear();
    EXPECT_LE(used, piece.size());
    if (out.result == ResponseParser::Result::Complete) {
      out.rest = std::string(rest.substr(used));
      return out;
    }
    if (out.result == ResponseParser::Result::Error) return out;
    rest.remove_prefix(used);
  }
  if (eof) {
    out.result = p.finish();
    out.body += p.body();
    p.body().clear();
  }
  return out;
}

// The error of a response fed whole and byte by byte (the same for both),
// or "" when it parsed.
std::string error_of(const std::string& wire, bool head = false) {
  std::string first;
  for (bool bytewise : {false, true}) {
    ResponseParser p;
    p.reset(head);
    Parsed r = parse(p, wire, bytewise);
    std::string e = r.result == ResponseParser::Result::Error ? p.error() : "";
    if (!bytewise) {
      first = e;
    } else {
      EXPECT_EQ(e.empty(), first.empty()) << wire;
    }
  }
  return first;
}

TEST(HttpResponseParser, ParsesStatusHeadersAndALengthBody) {
  for (bool bytewise : {false, true}) {
    ResponseParser p;
    Parsed r = parse(p,
                     "HTTP/1.1 201 Made It\r\nContent-Length: 5\r\nX-One: a \r\nSet-Cookie: a=1\r\n"
                     "set-cookie: b=2\r\n\r\nhello",
                     bytewise);
    ASSERT_EQ(r.result, ResponseParser::Result::Complete);
    const Response& res = p.response();
    EXPECT_EQ(res.status, 201);
    EXPECT_EQ(res.reason, "Made It");
    EXPECT_EQ(res.version_major, 1);
    EXPECT_EQ(res.version_minor, 1);
    ASSERT_EQ(res.headers.size(), 4U);
    EXPECT_EQ(res.headers[0].first, "content-length");
    EXPECT_EQ(res.headers[1], (HeaderList::Field{"x-one", "a"}));
    EXPECT_EQ(res.headers[2].first, "set-cookie");
    EXPECT_EQ(res.headers[3], (HeaderList::Field{"set-cookie", "b=2"}));
    EXPECT_EQ(res.framing, Framing::Length);
    EXPECT_EQ(res.content_length, 5U);
    EXPECT_TRUE(res.keep_alive);
    EXPECT_EQ(r.body, "hello");
    EXPECT_EQ(r.rest, "");
  }
}

TEST(HttpResponseParser, StopsAtTheEndOfTheResponse) {
  ResponseParser p;
  Parsed r = parse(p, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", false);
  ASSERT_EQ(r.result, ResponseParser::Result::Complete);
  EXPECT_EQ(r.body, "ok");
  EXPECT_EQ(r.rest, "EXTRA");
  size_t used = 1;
  EXPECT_EQ(p.feed("more", &used), ResponseParser::Result::Complete);
  EXPECT_EQ(used, 0U);
}

TEST(HttpResponseParser, ReadsAChunkedBodyAndKeepsTrailersApart) {
  for (bool bytewise : {false, true}) {
    ResponseParser p;
    Parsed r = parse(p,
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Head: h\r\n\r\n"
                     "4\r\none,\r\n4;ext=1\r\ntwo,\r\n5\r\nthree\r\n0\r\nX-Trailer: t \r\n"
                     "Content-Length: 99\r\n\r\n",
                     bytewise);
    ASSERT_EQ(r.result, ResponseParser::Result::Complete) << p.error();
    EXPECT_EQ(p.response().framing, Framing::Chunked);
    EXPECT_EQ(r.body, "one,two,three");
    EXPECT_TRUE(p.response().keep_alive);
    // The trailers are not headers: a Content-Length there frames nothing.
    HeaderList want_headers = {{"transfer-encoding", "chunked"}, {"x-head", "h"}};
    EXPECT_EQ(p.response().headers, want_headers);
    HeaderList want_trailers = {{"x-trailer", "t"}, {"content-length", "99"}};
    EXPECT_EQ(p.trailers(), want_trailers);
  }
}

TEST(HttpResponseParser, RefusesMalformedOrOversizedTrailers) {
  EXPECT_FALSE(
      error_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nno colon\r\n\r\n").empty());
  EXPECT_FALSE(error_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX A: b\r\n\r\n").empty());
  ResponseLimits small;
  small.max_header_bytes = 100;
  std::string big =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Big: " + std::string(200, 'v') +
      "\r\n\r\n";
  ResponseParser p(small);
  Parsed r = parse(p, big, false);
  EXPECT_EQ(r.result, ResponseParser::Result::Error);
  EXPECT_EQ(p.error(), "response header block too large");
}

TEST(HttpResponseParser, DeliversTheBodyAsItArrives) {
  ResponseParser p;
  size_t used = 0;
  ASSERT_EQ(p.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40000000\r\n", &used),
            ResponseParser::Result::NeedMore);
  EXPECT_TRUE(p.headers_done());
  std::string piece(1000, 'x');
  ASSERT_EQ(p.feed(piece, &used), ResponseParser::Result::NeedMore);
  EXPECT_EQ(p.body().size(), 1000U);  // a 1 GiB chunk is not waited for
  EXPECT_EQ(p.body_bytes(), 1000U);
}

TEST(HttpResponseParser, ABodyUntilTheEndCompletesAtFinish) {
  for (bool bytewise : {false, true}) {
    ResponseParser p;
    Parsed r = parse(p, "HTTP/1.0 200 OK\r\n\r\nall of it", bytewise, true);
    ASSERT_EQ(r.result, ResponseParser::Result::Complete);
    EXPECT_EQ(p.response().framing, Framing::UntilEof);
    EXPECT_FALSE(p.response().keep_alive);
    EXPECT_EQ(r.body, "all of it");
  }
}

TEST(HttpResponseParser, AnEndTooEarlyIsAnEofError) {
  const char* cut[] = {"", "HTTP/1.1 200", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",
                       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"};
  for (const char* wire : cut) {
    ResponseParser p;
    Parsed r = parse(p, wire, false, true);
    EXPECT_EQ(r.result, ResponseParser::Result::Error) << wire;
    EXPECT_TRUE(p.eof()) << wire;
  }
  ResponseParser p;
  parse(p, "", false, true);
  EXPECT_EQ(p.error(), "the connection closed before a response");
}

TEST(HttpResponseParser, SkipsInterimResponses) {
  for (bool bytewise : {false, true}) {
    ResponseParser p;
    Parsed r = parse(p,
                     "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
                     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                     bytewise);
    ASSERT_EQ(r.result, ResponseParser::Result::Complete) << p.error();
    EXPECT_EQ(p.response().status, 200);
    ASSERT_EQ(p.response().headers.size(), 1U);
    EXPECT_EQ(r.body, "ok");
  }
  std::string many;
  for (int i = 0; i < 40; ++i) many += "HTTP/1.1 100 Continue\r\n\r\n";
  EXPECT_EQ(error_of(many), "too many interim responses");
}

TEST(HttpResponseParser, A101EndsTheParseWithTheNewProtocolsBytes) {
  for (bool bytewise : {false, true}) {
    ResponseParser p;
    Parsed r = parse(p,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                     "\x81\x02hi",
                     bytewise);
    ASSERT_EQ(r.result, ResponseParser::Result::Complete) << p.error();
    EXPECT_EQ(p.response().status, 101);
    EXPECT_TRUE(p.response().upgrade);
    EXPECT_FALSE(p.response().keep_alive);
    EXPECT_EQ(r.body, "");
    if (!bytewise) EXPECT_EQ(r.rest, "\x81\x02hi");
  }
}

TEST(HttpResponseParser, ResponsesWithoutABody) {
  for (bool bytewise : {false, true}) {
    ResponseParser p;
    p.reset(true);  // HEAD
    Parsed r = parse(p, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", bytewise);
    ASSERT_EQ(r.result, ResponseParser::Result::Complete);
    EXPECT_EQ(p.response().framing, Framing::None);
    EXPECT_TRUE(p.response().keep_alive);
    ResponseParser q;
    r = parse(q, "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\nNEXT", bytewise);
    ASSERT_EQ(r.result, ResponseParser::Result::Complete);
    EXPECT_EQ(r.body, "");
    if (!bytewise) EXPECT_EQ(r.rest, "NEXT");
    ResponseParser n;
    r = parse(n, "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", bytewise);
    ASSERT_EQ(r.result, ResponseParser::Result::Complete);
  }
}

TEST(HttpResponseParser, KeepAliveFollowsVersionAndConnection) {
  struct Case {
    const char* wire;
    bool keep_alive;
  } cases[] = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", true},
  };
  for (const auto& c : cases) {
    ResponseParser p;
    ASSERT_EQ(parse(p, c.wire, false).result, ResponseParser::Result::Complete) << c.wire;
    EXPECT_EQ(p.response().keep_alive, c.keep_alive) << c.wire;
  }
}

TEST(HttpResponseParser, RefusesBadContentLengths) {
  for (const char* cl : {"0x3", "2.5", "-1", "+3", "3 3", "", "99999999999999999999999"}) {
    std::string wire = std::string("HTTP/1.1 200 OK\r\nContent-Length: ") + cl + "\r\n\r\nabc";
    EXPECT_NE(error_of(wire), "") << cl;
  }
  EXPECT_NE(error_of("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"), "");
  EXPECT_NE(error_of("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            "");
}

TEST(HttpResponseParser, RefusesBadChunkSizes) {
  EXPECT_NE(error_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000000\r\n"), "");
  EXPECT_NE(error_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), "");
  EXPECT_NE(error_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n"), "");
}

TEST(HttpResponseParser, RefusesBadHeaderBytes) {
  const char* bad[] = {
      "X-A: a\rb",       // bare CR
      "X-A: a\nX-B: b",  // bare LF
      "X-A: a\r\n b",    // obs-fold
      "X A: b",          // not a token
      "X-A : b",         // whitespace before the colon
      ": b",             // empty name
  };
  for (const char* h : bad) {
    std::string wire = std::string("HTTP/1.1 200 OK\r\n") + h + "\r\nContent-Length: 0\r\n\r\n";
    EXPECT_NE(error_of(wire), "") << h;
  }
  std::string nul("HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 0\r\n\r\n", 48);
  EXPECT_NE(error_of(nul), "");
}

TEST(HttpResponseParser, RefusesBadStatusLines) {
  for (const char* line : {"HTTP/1.1 2000 OK", "HTTP/1.1 20 OK", "HTTP/2.0 200 OK", "HTTP/1.1 abc OK",
                           "HTTP/1.1 099 Low", "ICY 200 OK", "HTTP/1.1200 OK"}) {
    std::string wire = std::string(line) + "\r\nContent-Length: 0\r\n\r\n";
    EXPECT_NE(error_of(wire), "") << line;
  }
  EXPECT_EQ(error_of("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"), "");
}

TEST(HttpResponseParser, LimitsTheHeaderBlock) {
  ResponseLimits limits;
  limits.max_header_bytes = 100;
  ResponseParser p(limits);
  std::string wire = "HTTP/1.1 200 OK\r\nX-Big: " + std::string(200, 'b') + "\r\n\r\n";
  EXPECT_EQ(parse(p, wire, false).result, ResponseParser::Result::Error);
  EXPECT_EQ(p.error(), "response header block too large");
  std::string many = "HTTP/1.1 200 OK\r\n";
  for (int i = 0; i < 201; ++i) many += "X-H: v\r\n";
  EXPECT_EQ(error_of(many + "\r\n"), "too many response headers");
}

TEST(HttpResponseParser, ResetStartsOver) {
  ResponseParser p;
  parse(p, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false);
  p.reset(false);
  Parsed r = parse(p, "HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nx", false);
  ASSERT_EQ(r.result, ResponseParser::Result::Complete);
  EXPECT_EQ(p.response().status, 404);
  EXPECT_EQ(r.body, "x");
}

}  // namespace
}  // namespace evo::http
