// The HTTP/1.1 request parser: requests, pipelining, limits, smuggling.
#include <gtest/gtest.h>

#include <algorithm>

#include <string>

#include "proto/http_parser.h"

namespace evo::http {
namespace {

// Parses one complete request (fed whole, or byte by byte); returns the
// parser's result and leaves the parser for inspection.
// A request with a body stops once at HeadersComplete; this goes on past it.
RequestParser::Result parse(RequestParser& p, const std::string& wire, bool bytewise = false) {
  size_t used = 0;
  std::string_view rest(wire);
  size_t step = bytewise ? 1 : rest.size();
  RequestParser::Result r = RequestParser::Result::NeedMore;
  while (!rest.empty()) {
    r = p.feed(rest.substr(0, step), &used);
    rest.remove_prefix(used);
    if (r == RequestParser::Result::HeadersComplete) {
      p.resume_body();
      r = RequestParser::Result::NeedMore;
      continue;
    }
    if (r != RequestParser::Result::NeedMore) return r;
  }
  return r;
}

int status_of(const std::string& wire, Limits limits = Limits()) {
  RequestParser p(limits);
  return parse(p, wire) == RequestParser::Result::Error ? p.error_status() : 0;
}

TEST(HttpParser, ParsesARequestWithHeadersAndBody) {
  for (bool bytewise : {false, true}) {
    RequestParser p;
    auto r = parse(p,
                   "POST /submit?x=1 HTTP/1.1\r\nHost: example\r\nX-Thing:  spaced  \r\n"
                   "Content-Length: 5\r\n\r\nhello",
                   bytewise);
    ASSERT_EQ(r, RequestParser::Result::Complete) << p.error_reason();
    const Request& req = p.request();
    EXPECT_EQ(req.method, "POST");
    EXPECT_EQ(req.target, "/submit?x=1");
    EXPECT_EQ(req.body, "hello");
    ASSERT_TRUE(req.header("x-thing").has_value());
    EXPECT_EQ(*req.header("x-thing"), "spaced");
    EXPECT_TRUE(req.keep_alive);
  }
}

TEST(HttpParser, StopsAfterEachPipelinedRequest) {
  RequestParser p;
  std::string wire = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  size_t used = 0;
  ASSERT_EQ(p.feed(wire, &used), RequestParser::Result::Complete);
  EXPECT_EQ(p.request().target, "/a");
  p.next();
  size_t used2 = 0;
  ASSERT_EQ(p.feed(std::string_view(wire).substr(used), &used2), RequestParser::Result::Complete);
  EXPECT_EQ(p.request().target, "/b");
  EXPECT_EQ(used + used2, wire.size());
}

TEST(HttpParser, PausesAfterTheHeadersOfARequestWithABody) {
  RequestParser p;
  std::string wire = "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhel";
  size_t used = 0;
  ASSERT_EQ(p.feed(wire, &used), RequestParser::Result::HeadersComplete);
  EXPECT_EQ(wire.substr(used), "hel");  // the body is not consumed yet
  EXPECT_EQ(p.request().target, "/up");
  EXPECT_TRUE(p.request().body.empty());
  p.resume_body();
  ASSERT_EQ(p.feed(std::string_view(wire).substr(used), &used), RequestParser::Result::NeedMore);
  EXPECT_EQ(p.request().body, "hel");
  p.request().body.clear();  // a server takes the body out as it arrives
  ASSERT_EQ(p.feed("lo", &used), RequestParser::Result::Complete);
  EXPECT_EQ(p.request().body, "lo");
}

TEST(HttpParser, CountsAStreamedBodyAgainstTheLimit) {
  Limits small;
  small.max_body = 8;
  RequestParser p(small);
  size_t used = 0;
  std::string head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  ASSERT_EQ(p.feed(head, &used), RequestParser::Result::HeadersComplete);
  p.resume_body();
  ASSERT_EQ(p.feed("5\r\nhello\r\n", &used), RequestParser::Result::NeedMore);
  p.request().body.clear();  // taken out: the limit still counts it
  ASSERT_EQ(p.feed("5\r\nworld\r\n", &used), RequestParser::Result::Error);
  EXPECT_EQ(p.error_status(), 413);
}

TEST(HttpParser, RefusesWhatRfc9112Forbids) {
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nX-A: 1\r\n\r\n"), 400);              // no Host
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);  // two
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost : x\r\n\r\n"), 400);            // space before colon
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n"), 400);      // empty name
  EXPECT_EQ(status_of("GET /\r\n\r\n"), 400);                                 // HTTP/0.9
  EXPECT_EQ(status_of("GET / HTTP/1.0\r\n\r\n"), 0);                          // 1.0 needs no Host
  EXPECT_EQ(status_of("GET / HTTP/2.0\r\nHost: x\r\n\r\n"), 505);
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 501);
  RequestParser p;
  ASSERT_EQ(parse(p,
                  "POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "1\r\na\r\n0\r\n\r\n"),
            RequestParser::Result::Complete);
  EXPECT_FALSE(p.request().keep_alive);  // faulty framing in 1.0: close after it (RFC 9112 6.1)
}

TEST(HttpParser, DecodesChunkedBodiesAndKeepsTrailersApart) {
  for (bool bytewise : {false, true}) {
    RequestParser p;
    auto r = parse(p,
                   "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t \r\nHost: y\r\n"
                   "Content-Length: 5\r\n\r\n",
                   bytewise);
    ASSERT_EQ(r, RequestParser::Result::Complete) << p.error_reason();
    EXPECT_EQ(p.request().body, "hello world");
    EXPECT_TRUE(p.request().chunked);
    // Trailers are not headers: a second Host or a Content-Length there
    // routes and frames nothing (and is no smuggling error).
    HeaderList want_headers = {{"host", "x"}, {"transfer-encoding", "chunked"}};
    EXPECT_EQ(p.request().headers, want_headers);
    HeaderList want_trailers = {{"x-trailer", "t"}, {"host", "y"}, {"content-length", "5"}};
    EXPECT_EQ(p.request().trailers, want_trailers);
    // The next request starts with none.
    p.next();
    size_t used = 0;
    ASSERT_EQ(p.feed("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &used), RequestParser::Result::Complete);
    EXPECT_TRUE(p.request().trailers.empty());
  }
}

TEST(HttpParser, TrailersCountAgainstTheHeaderLimitAndAreChecked) {
  Limits small;
  small.max_header_bytes = 200;
  std::string head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n";
  EXPECT_EQ(status_of(head + "X-Big: " + std::string(300, 'v') + "\r\n\r\n", small), 431);
  EXPECT_EQ(status_of(head + "X-Ok: " + std::string(100, 'v') + "\r\n\r\n", small), 0);
  EXPECT_EQ(status_of(head + "Bad Name: v\r\n\r\n"), 400);
  EXPECT_EQ(status_of(head + "X-Fold: a\r\n b\r\n\r\n"), 400);
}

TEST(HttpParser, KnowsHttp10AndConnectionClose) {
  RequestParser p;
  ASSERT_EQ(parse(p, "GET / HTTP/1.0\r\n\r\n"), RequestParser::Result::Complete);
  EXPECT_FALSE(p.request().keep_alive);
  RequestParser q;
  ASSERT_EQ(parse(q, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            RequestParser::Result::Complete);
  EXPECT_FALSE(q.request().keep_alive);
  RequestParser e;
  ASSERT_EQ(parse(e, "PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx"),
            RequestParser::Result::Complete);
  EXPECT_TRUE(e.request().expect_continue);
}

TEST(HttpParser, AcceptsAValueSplitAcrossReadsButNotAFoldedOne) {
  RequestParser p;
  ASSERT_EQ(parse(p, "GET / HTTP/1.1\r\nHost: x\r\nX-Split: a b c\r\n\r\n", /*bytewise=*/true),
            RequestParser::Result::Complete)
      << p.error_reason();
  EXPECT_EQ(*p.request().header("x-split"), "a b c");
  RequestParser q;
  EXPECT_EQ(parse(q, "GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n  b\r\n\r\n", /*bytewise=*/true),
            RequestParser::Result::Error);
}

TEST(HttpParser, EnforcesItsLimitsWithTheRightStatus) {
  Limits small;
  small.max_header_bytes = 200;
  small.max_uri = 50;
  small.max_body = 10;
  EXPECT_EQ(status_of("GET /" + std::string(100, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n", small), 414);
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(300, 'b') + "\r\n\r\n", small),
            431);
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n", small), 413);
  EXPECT_EQ(
      status_of(
          "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n0\r\n\r\n",
          small),
      413);
}

TEST(HttpParser, RefusesMalformedRequestsAndSmugglingAttempts) {
  const char* cases[] = {
      "GARBAGE\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n  b\r\n\r\n",
      "GET / HTTP/1.1\nHost: x\n\n",
      "GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",
  };
  for (const char* c : cases) {
    EXPECT_EQ(status_of(c), 400) << "accepted: " << c;
  }
  // A NUL written out explicitly (a C string would stop at it).
  std::string nul = std::string("GET / HTTP/1.1\r\nHost: x\r\nX-Nul: a") + '\0' + "b\r\n\r\n";
  EXPECT_EQ(status_of(nul), 400);
}

// A Complete request is handed over whole (the server's exchange takes it):
// the parser goes on with the request it got back, emptied, and parses the
// next request into it with nothing of the other left.
TEST(HttpParser, SwapRequestHandsOverTheRequestAndParsesTheNextIntoTheOneGivenBack) {
  RequestParser p;
  std::string in =
      "POST /first?a=1 HTTP/1.1\r\nHost: one\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nhi"
      "GET /second HTTP/1.1\r\nHost: two\r\n\r\n";
  size_t used = 0;
  std::string_view rest(in);
  RequestParser::Result r = p.feed(rest, &used);
  while (r == RequestParser::Result::HeadersComplete) {
    p.resume_body();
    rest.remove_prefix(used);
    r = p.feed(rest, &used);
  }
  ASSERT_EQ(r, RequestParser::Result::Complete);
  rest.remove_prefix(used);
  // What a recycled exchange gives back: a used request, emptied.
  auto given = std::make_unique<Request>();
  given->method = "PROPFIND-LONGER-THAN-SSO";
  given->target = std::string(40, 't');
  given->headers = {{"x-old", "1"}, {"x-old2", "2"}};
  given->clear();
  Request* given_ptr = given.get();
  p.swap_request(given);
  EXPECT_EQ(&p.request(), given_ptr);
  EXPECT_EQ(given->method, "POST");
  EXPECT_EQ(given->target, "/first?a=1");
  EXPECT_EQ(given->body, "hi");
  ASSERT_EQ(given->headers.size(), 3U);
  EXPECT_EQ(given->headers[1], (HeaderList::Field{"x-a", "1"}));
  p.next();
  EXPECT_EQ(p.feed(rest, &used), RequestParser::Result::Complete);
  const Request& second = p.request();
  EXPECT_EQ(second.method, "GET");
  EXPECT_EQ(second.target, "/second");
  EXPECT_TRUE(second.body.empty());
  ASSERT_EQ(second.headers.size(), 1U);
  EXPECT_EQ(second.headers[0].second, "two");
  EXPECT_TRUE(second.keep_alive);
  // The first is untouched by the second's parse.
  EXPECT_EQ(given->target, "/first?a=1");
  EXPECT_EQ(given->headers[0].second, "one");
}

// llhttp, as built (not LLHTTP_STRICT_MODE), lets a space into a header
// name ("H ost", "Expect :"): the parser's own check refuses it.
TEST(HttpParser, RefusesANameThatIsNoToken) {
  for (bool bytewise : {false, true}) {
    for (const char* c : {"H ost: x\r\n", "Expect : x\r\n", "X-A\"b: x\r\n", "X(y): z\r\n"}) {
      RequestParser p;
      EXPECT_EQ(parse(p, std::string("GET / HTTP/1.1\r\nHost: x\r\n") + c + "\r\n", bytewise),
                RequestParser::Result::Error)
          << c;
      EXPECT_EQ(p.error_status(), 400);
    }
    RequestParser p;
    EXPECT_EQ(parse(p, "GET / HTTP/1.1\r\nHost: x\r\nH ost: x\r\n\r\n", bytewise),
              RequestParser::Result::Error);
    EXPECT_EQ(p.error_reason(), "invalid character in a header name");  // ours, not llhttp's
  }
  RequestParser p;
  ASSERT_EQ(parse(p, "GET / HTTP/1.1\r\nHOST: x\r\nX-MiXeD_~!#$%&'*+.^`|9: v\r\n\r\n", true),
            RequestParser::Result::Complete);
  HeaderList want = {{"host", "x"}, {"x-mixed_~!#$%&'*+.^`|9", "v"}};
  EXPECT_EQ(p.request().headers, want);
}

// HeaderCollector::value_piece trusts llhttp to refuse NUL, CR, LF and the
// other controls in a value, in each of its value states (plain, Connection,
// Content-Length, Transfer-Encoding, Upgrade): pinned here.
TEST(HttpParser, LlhttpRefusesControlsInEveryKindOfValue) {
  const char* names[] = {"X-A",     "Connection",      "Content-Length", "Transfer-Encoding",
                         "Upgrade", "Proxy-Connection"};
  const char* values[] = {"1", "close", "chunked", "keep-alive"};
  for (const char* name : names) {
    for (const char* value : values) {
      std::string v(value);
      for (size_t at = 0; at <= v.size(); ++at) {
        for (char bad : {'\0', '\r', '\n', '\x01', '\x1f', '\x7f'}) {
          // (Not a CR first: llhttp 8.1 takes "\r?" there for a line end,
          // a gap of its own that never reaches a value piece.)
          if (bad == '\r' && at == 0) continue;
          std::string bent = v.substr(0, at) + bad + v.substr(at);
          for (bool bytewise : {false, true}) {
            RequestParser p;
            std::string wire =
                std::string("POST / HTTP/1.1\r\nHost: x\r\n") + name + ": " + bent + "\r\n\r\n";
            EXPECT_EQ(parse(p, wire, bytewise), RequestParser::Result::Error) << wire;
            EXPECT_EQ(p.error_status(), 400) << wire;
          }
        }
      }
    }
  }
}

// Gaps of llhttp 8.1 as built (found for issue 13, not fixed: a fix refuses
// requests served today). After a CR in a value's leading whitespace (an
// empty value too) and after the CR of the head's blank line it takes any
// byte for the LF; an obs-fold whose first line is empty reaches us as one
// value piece, so HeaderCollector sees no gap. Each case below is accepted
// (the first two give "b" and a header "Y" a front end may not see); all
// must be 400. Enable once the parser checks the bytes llhttp skips.
TEST(HttpParser, DISABLED_RefusesABareCrAndAFoldAfterAnEmptyValue) {
  const char* cases[] = {
      "GET / HTTP/1.1\r\nHost: x\r\nX-A: \rZ b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nX-A: \rZY: z\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nX-A:\r\n b\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n 5\r\n\r\nhello",
      "GET / HTTP/1.1\r\nHost: x\r\n\rZ",
  };
  for (const char* c : cases) {
    for (bool bytewise : {false, true}) {
      RequestParser p;
      EXPECT_EQ(parse(p, c, bytewise), RequestParser::Result::Error) << c;
    }
  }
}

// Issue 8 item 31: an Upgrade request served without switching protocols
// must not be reported again; what follows it is the next request.
TEST(HttpParser, AnUpgradeNotTakenIsFollowedByTheNextRequest) {
  RequestParser p;
  std::string wire =
      "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n"
      "GET /next HTTP/1.1\r\nHost: x\r\n\r\n";
  size_t used = 0;
  ASSERT_EQ(p.feed(wire, &used), RequestParser::Result::Complete);
  EXPECT_TRUE(p.request().upgrade);
  EXPECT_EQ(p.request().target, "/");
  std::string_view rest = std::string_view(wire).substr(used);
  p.next();
  ASSERT_EQ(p.feed(rest, &used), RequestParser::Result::Complete);
  EXPECT_EQ(p.request().target, "/next");
  EXPECT_FALSE(p.request().upgrade);
  EXPECT_EQ(used, rest.size());
}

TEST(HttpParser, AConnectRequestIsNotKeptAlive) {
  RequestParser p;
  ASSERT_EQ(parse(p, "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n"), RequestParser::Result::Complete);
  EXPECT_TRUE(p.request().upgrade);
  EXPECT_FALSE(p.request().keep_alive);
}

// Header names are lower-cased and checked in one pass (HeaderCollector's
// table): every byte value at every place of names of 1 to 40 bytes, in one
// piece and split in two, must come out as the token rules say (RFC 9110
// 5.6.2): lower-cased, or refused.
TEST(HeaderNames, EveryByteAtEveryPlaceIsLowerCasedOrRefusedAsTheTokenRulesSay) {
  auto tchar = [](unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
  };
  const std::string base = "Sec-Fetch-Mode-X-Upgrade-Insecure-Reque";  // 39 bytes
  int refused = 0;
  for (size_t len = 1; len <= 40; ++len) {
    for (size_t at = 0; at < len; ++at) {
      for (int c = 0; c < 256; ++c) {
        std::string name = (base + "Z").substr(0, len);
        name[at] = static_cast<char>(c);
        std::string want;
        for (char ch : name) want += static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch + ('a' - 'A') : ch);
        bool ok = std::all_of(name.begin(), name.end(),
                              [&](char ch) { return tchar(static_cast<unsigned char>(ch)); });
        for (size_t split : {len, len / 2}) {
          HeaderList headers;
          HeaderCollector collector;
          const char* why = collector.name_piece(headers, name.data(), split);
          if (why == nullptr && split < len)
            why = collector.name_piece(headers, name.data() + split, len - split);
          ASSERT_EQ(why == nullptr, ok) << "byte " << c << " at " << at << " of " << len;
          if (ok) {
            ASSERT_EQ(headers.back().first, want) << "byte " << c << " at " << at << " of " << len;
          } else {
            ++refused;
          }
        }
      }
    }
  }
  EXPECT_GT(refused, 100000);  // (most byte values are no token characters)
}

// A long name in three pieces (as three reads bring it), each lower-cased
// where it lands in the list; a byte past the first 64 (the old stack
// buffer's size) refuses it as one early does.
TEST(HeaderNames, ALongNameInPiecesIsLowerCasedWholeOrRefused) {
  std::string name;
  for (int i = 0; name.size() < 200; ++i) name += (i % 2 == 0) ? "X-Long-Name-" : "Part-";
  name.resize(200);
  std::string want;
  for (char ch : name) want += static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch + ('a' - 'A') : ch);
  auto collect = [](const std::string& n, const char** why) {
    HeaderList headers;
    HeaderCollector collector;
    *why = nullptr;
    for (auto [from, to] : {std::pair<size_t, size_t>{0, 50}, {50, 130}, {130, n.size()}}) {
      if (*why == nullptr) *why = collector.name_piece(headers, n.data() + from, to - from);
    }
    return headers.empty() ? std::string() : std::string(headers.back().first);
  };
  const char* why = nullptr;
  EXPECT_EQ(collect(name, &why), want);
  EXPECT_EQ(why, nullptr);
  for (size_t at : {size_t{70}, size_t{140}, size_t{199}}) {
    std::string bad = name;
    bad[at] = ' ';
    collect(bad, &why);
    ASSERT_NE(why, nullptr) << "a space at " << at;
    EXPECT_STREQ(why, "invalid character in a header name");
  }
}

}  // namespace
}  // namespace evo::http
