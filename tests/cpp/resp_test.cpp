// The RESP2/RESP3 engine: every reply type, chunk boundaries anywhere,
// limits, malformed input, and the command encoder.
#include "proto/resp.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using evo::resp::Item;
using evo::resp::Limits;
using evo::resp::Parser;
using evo::resp::Reader;
using evo::resp::Type;

namespace {

// Renders one item (and its elements) as text: the tests compare strings.
// Returns whether it was an attribute, which annotates the item after it.
bool render(Reader& r, std::string& out) {
  Item it = r.next();
  out.push_back(static_cast<char>(it.type));
  if (it.null) {
    out += "null";
    return false;
  }
  switch (it.type) {
    case Type::Integer:
    case Type::Boolean:
      out += std::to_string(it.integer);
      return false;
    case Type::Double:
      out += std::to_string(it.number);
      return false;
    default:
      break;
  }
  if (!it.aggregate()) {
    out += "[" + std::string(it.text) + "]";
    return false;
  }
  out += "{";
  for (int64_t i = 0; i < it.children(); ++i) {
    if (i > 0) out += ",";
    while (render(r, out)) out += ",";  // an attribute is not one of the elements
  }
  out += "}";
  return it.type == Type::Attribute;
}

// Every reply in `wire`, fed `chunk` bytes at a time.
std::vector<std::string> parse_all(std::string_view wire, size_t chunk, Limits limits = {}) {
  Parser p(limits);
  std::vector<std::string> out;
  for (size_t i = 0; i < wire.size(); i += chunk) {
    p.feed(wire.substr(i, chunk));
    while (p.poll() == Parser::Status::Ready) {
      Reader r = p.reply();
      std::string s;
      while (!r.done()) render(r, s);  // a top-level attribute, then its value
      out.push_back(s);
      p.consume();
    }
    if (p.poll() == Parser::Status::Invalid) {
      out.push_back("INVALID: " + p.error());
      break;
    }
  }
  return out;
}

const std::string kMixed =
    "+OK\r\n-ERR unknown command\r\n:42\r\n:-9223372036854775808\r\n$5\r\nhello\r\n$0\r\n\r\n$-1\r\n"
    "*-1\r\n*0\r\n*3\r\n:1\r\n$2\r\nab\r\n*1\r\n+x\r\n_\r\n,3.5\r\n,inf\r\n,-inf\r\n#t\r\n#f\r\n"
    "!10\r\nSYNTAX bad\r\n=8\r\ntxt:some\r\n(3492890328409238509324850943850943825024385\r\n"
    "%2\r\n+a\r\n:1\r\n+b\r\n*2\r\n:2\r\n:3\r\n~2\r\n+x\r\n+y\r\n>3\r\n+message\r\n+ch\r\n$1\r\nm\r\n"
    "|1\r\n+ttl\r\n:3600\r\n$3\r\nval\r\n*2\r\n|1\r\n+k\r\n+v\r\n:7\r\n:8\r\n$4\r\na\r\nb\r\n";

const std::vector<std::string> kMixedWant = {
    "+[OK]",
    "-[ERR unknown command]",
    ":42",
    ":-9223372036854775808",
    "$[hello]",
    "$[]",
    "$null",
    "*null",
    "*{}",
    "*{:1,$[ab],*{+[x]}}",
    "_null",
    ",3.500000",
    ",inf",
    ",-inf",
    "#1",
    "#0",
    "![SYNTAX bad]",
    "=[some]",
    "([3492890328409238509324850943850943825024385]",
    "%{+[a],:1,+[b],*{:2,:3}}",
    "~{+[x],+[y]}",
    ">{+[message],+[ch],$[m]}",
    // An attribute is framed with the value it annotates; the Reader shows both.
    "|{+[ttl],:3600}$[val]",
    "*{|{+[k],+[v]},:7,:8}",
    "$[a\r\nb]",
};

}  // namespace

TEST(Resp, EveryTypeInOneRead) { EXPECT_EQ(parse_all(kMixed, kMixed.size()), kMixedWant); }

TEST(Resp, AnyChunkBoundaryGivesTheSameReplies) {
  auto whole = parse_all(kMixed, kMixed.size());
  for (size_t chunk = 1; chunk < 40; ++chunk) {
    EXPECT_EQ(parse_all(kMixed, chunk), whole) << "chunk " << chunk;
  }
}

TEST(Resp, TopLevelAttributeFramesWithItsValue) {
  Parser p;
  p.feed("|1\r\n+ttl\r\n:3600\r\n");
  EXPECT_EQ(p.poll(), Parser::Status::NeedMore);  // the annotated value has not arrived
  p.feed("$3\r\nval\r\n");
  ASSERT_EQ(p.poll(), Parser::Status::Ready);
  Reader r = p.reply();
  std::string s;
  render(r, s);
  render(r, s);
  EXPECT_EQ(s, "|{+[ttl],:3600}$[val]");
  EXPECT_TRUE(r.done());
}

TEST(Resp, PartialReplyIsNotReady) {
  Parser p;
  p.feed("*2\r\n$5\r\nhel");
  EXPECT_EQ(p.poll(), Parser::Status::NeedMore);
  p.feed("lo\r\n");
  EXPECT_EQ(p.poll(), Parser::Status::NeedMore);
  p.feed(":1");
  EXPECT_EQ(p.poll(), Parser::Status::NeedMore);
  p.feed("\r\n+next");
  EXPECT_EQ(p.poll(), Parser::Status::Ready);
  p.consume();
  EXPECT_EQ(p.buffered(), 5u);
  EXPECT_EQ(p.poll(), Parser::Status::NeedMore);
}

TEST(Resp, MalformedInputIsInvalidAndStaysSo) {
  const char* bad[] = {
      "?\r\n",
      ":12a\r\n",
      ":+1\r\n",
      ":\r\n",
      "$-2\r\n",
      "$3\r\nabcd\r\n",
      "*-2\r\n",
      "#x\r\n",
      "_x\r\n",
      ",1.5x\r\n",
      "(12a\r\n",
      "=3\r\nabc\r\n",
      "=5\r\ntxtxx\r\n",
      "+OK\n",
      "\r\n",
      "!-1\r\n",
      "%-1\r\n",
      "+a\rb\r\n",
      ":99999999999999999999\r\n",
  };
  for (const char* b : bad) {
    Parser p;
    p.feed(b);
    EXPECT_EQ(p.poll(), Parser::Status::Invalid) << b;
    EXPECT_FALSE(p.error().empty()) << b;
    p.feed("+OK\r\n");
    EXPECT_EQ(p.poll(), Parser::Status::Invalid) << b;
  }
}

TEST(Resp, LimitsAreEnforced) {
  Limits small;
  small.max_depth = 3;
  small.max_bulk = 10;
  small.max_line = 16;
  small.max_elements = 100;
  EXPECT_EQ(parse_all("*1\r\n*1\r\n*1\r\n:1\r\n", 100, small), std::vector<std::string>{"*{*{*{:1}}}"});
  EXPECT_EQ(parse_all("*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", 100, small)[0].rfind("INVALID", 0), 0u);
  EXPECT_EQ(parse_all("$11\r\n", 100, small)[0].rfind("INVALID", 0), 0u);
  EXPECT_EQ(parse_all("*101\r\n", 100, small)[0].rfind("INVALID", 0), 0u);
  // A line without its end is refused once longer than the limit, before it all arrives.
  EXPECT_EQ(parse_all(std::string("+") + std::string(40, 'a'), 5, small)[0].rfind("INVALID", 0), 0u);
  // Defaults: a huge declared length is refused, not allocated.
  EXPECT_EQ(parse_all("$99999999999\r\n", 100)[0].rfind("INVALID", 0), 0u);
}

TEST(Resp, DeclaredCountsAllocateNothingUntilTheDataArrives) {
  Parser p;
  p.feed("*4294967295\r\n");  // at the default element limit
  EXPECT_EQ(p.poll(), Parser::Status::NeedMore);
  EXPECT_LT(p.buffered(), 64u);
}

TEST(Resp, EncodesCommands) {
  std::string out;
  std::vector<std::string_view> args = {"SET", "k", "", std::string_view("a\0b", 3)};
  evo::resp::encode_command(out, args);
  EXPECT_EQ(out, std::string("*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n$3\r\na\0b\r\n", 35));
}

TEST(Resp, EncodedCommandsParseBack) {
  std::string out;
  std::vector<std::string_view> args = {"HSET", "h", "f", "v\r\n"};
  evo::resp::encode_command(out, args);
  EXPECT_EQ(parse_all(out, 3), std::vector<std::string>{"*{$[HSET],$[h],$[f],$[v\r\n]}"});
}
