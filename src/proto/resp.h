// resp: the Redis serialization protocol, RESP2 and RESP3, sans I/O.
//
// Parser takes the bytes a server sends, in chunks cut anywhere, and finds
// whole replies in two passes: poll() frames (one scan per byte, resumable
// where the data ran out, checking syntax and the limits), and a Reader then
// walks the framed reply item by item, trusting what poll() checked. A reply
// is only converted (into Lua values, by src/bind/resp.cpp) once all of it
// has arrived, so a declared count or length never sizes anything by itself.
//
//   resp::Parser p;
//   p.feed(chunk);
//   while (p.poll() == resp::Parser::Status::Ready) {
//     resp::Reader r = p.reply();
//     resp::Item top = r.next();   // an aggregate's elements follow it
//     ...
//     p.consume();
//   }
//
// encode_command writes a command as clients send it: an array of bulks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace evo::resp {

enum class Type : char {
  SimpleString = '+',
  Error = '-',
  Integer = ':',
  Bulk = '$',
  Array = '*',
  Null = '_',
  Double = ',',
  Boolean = '#',
  BlobError = '!',
  Verbatim = '=',
  BigNumber = '(',
  Map = '%',
  Set = '~',
  Attribute = '|',
  Push = '>',
};

struct Limits {
  size_t max_depth = 32;                    // nested aggregates
  size_t max_bulk = size_t{512} << 20;      // one bulk string (Redis' proto-max-bulk-len)
  size_t max_line = size_t{64} << 10;       // a simple string, error or header line
  int64_t max_elements = int64_t{1} << 32;  // declared elements of one aggregate
};

// One item of a framed reply.
struct Item {
  Type type = Type::Null;
  bool null = false;      // $-1, *-1 (RESP2) and _ (RESP3)
  int64_t integer = 0;    // Integer; Boolean (0/1); aggregates: the element count (maps: pairs)
  double number = 0;      // Double
  std::string_view text;  // strings, errors, big numbers; Verbatim without its "txt:" prefix
  [[nodiscard]] bool aggregate() const;
  // Items that follow this one as its elements (maps and attributes: 2 per pair).
  [[nodiscard]] int64_t children() const;
};

// Reads the items of one complete reply, depth first. Only valid on bytes
// Parser::poll() framed, until the parser is fed or consumes.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}
  [[nodiscard]] bool done() const { return pos_ >= bytes_.size(); }
  Item next();

 private:
  std::string_view bytes_;
  size_t pos_ = 0;
};

class Parser {
 public:
  enum class Status { NeedMore, Ready, Invalid };

  explicit Parser(Limits limits = {}) : limits_(limits) {}

  void feed(std::string_view data);
  // Scans on from where the last call stopped. Ready: a whole reply is at
  // the front (poll() says Ready until consume()). Invalid stays Invalid:
  // the stream is out of step and the connection must be dropped.
  Status poll();
  [[nodiscard]] Reader reply() const;
  void consume();
  [[nodiscard]] const std::string& error() const { return error_; }
  [[nodiscard]] size_t buffered() const { return buf_.size() - start_; }

 private:
  struct Frame {
    int64_t remaining;
    bool attribute;  // an attribute's map does not count as an element of its parent
  };
  enum class Step { Item, Opened, NeedMore, Invalid };
  Step scan_item();
  Step fail(std::string message);
  bool finish_element();  // true when the whole reply is complete

  Limits limits_;
  std::string buf_;
  size_t start_ = 0;  // the first byte of the current reply
  size_t pos_ = 0;    // the next byte to scan
  std::vector<Frame> stack_;
  bool ready_ = false;
  bool invalid_ = false;
  std::string error_;
};

// Appends `*n\r\n` and a bulk per argument.
void encode_command(std::string& out, std::span<const std::string_view> args);

}  // namespace evo::resp
