// libFuzzer target: the RESP2/RESP3 reply parser (src/proto/resp). Run by
// `make test-fuzz`.
//
// Input: a byte choosing the chunk size and the limits, then the wire
// bytes. For any input the parser must not crash or read out of bounds, and:
//  - every Ready reply walks with the Reader to exactly its end (each
//    aggregate's elements, attributes not counted, are all there);
//  - feeding in chunks gives the same replies, and the same verdict, as
//    feeding everything at once;
//  - after Invalid, the parser stays Invalid.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proto/resp.h"

namespace {

using evo::resp::Item;
using evo::resp::Parser;
using evo::resp::Reader;
using evo::resp::Type;

void check(bool ok) {
  if (!ok) std::abort();
}

// Walks one framed reply; returns its item count.
size_t walk(Reader r) {
  size_t items = 0;
  int64_t pending = 1;  // values still to read at the top level and below
  while (pending > 0) {
    check(!r.done());
    Item it = r.next();
    ++items;
    pending += it.children() - (it.type == Type::Attribute ? 0 : 1);
  }
  check(r.done());
  return items;
}

struct Outcome {
  std::vector<std::string> replies;
  bool invalid = false;
};

Outcome run(std::string_view wire, size_t chunk, evo::resp::Limits limits) {
  Parser p(limits);
  Outcome out;
  for (size_t i = 0; i < wire.size() && !out.invalid; i += chunk) {
    p.feed(wire.substr(i, chunk));
    Parser::Status s;
    while ((s = p.poll()) == Parser::Status::Ready) {
      out.replies.emplace_back(std::to_string(walk(p.reply())));
      p.consume();
    }
    if (s == Parser::Status::Invalid) {
      out.invalid = true;
      check(!p.error().empty());
      p.feed("+OK\r\n");
      check(p.poll() == Parser::Status::Invalid);
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  uint8_t mode = data[0];
  std::string_view wire(reinterpret_cast<const char*>(data + 1), size - 1);
  evo::resp::Limits limits;
  if (mode & 0x80) {  // small limits, so the fuzzer reaches them
    limits.max_depth = 4;
    limits.max_bulk = 64;
    limits.max_line = 32;
    limits.max_elements = 16;
  }
  size_t chunk = (mode & 0x3f) + 1;
  Outcome whole = run(wire, wire.size() + 1, limits);
  Outcome pieces = run(wire, chunk, limits);
  check(whole.replies == pieces.replies);
  check(whole.invalid == pieces.invalid);
  return 0;
}
