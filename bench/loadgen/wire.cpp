#include "wire.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstring>

namespace loadgen {
namespace {

// `name` (any case) equals `lower`, which is lower-case ASCII.
bool name_is(std::string_view name, std::string_view lower) {
  if (name.size() != lower.size()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + ('a' - 'A'));
    if (c != lower[i]) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// True if the comma-separated list `value` has the token `lower` (any case).
bool has_token(std::string_view value, std::string_view lower) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    if (name_is(trim(value.substr(0, comma)), lower)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

// The last element of a comma-separated list.
std::string_view last_token(std::string_view value) {
  size_t comma = value.rfind(',');
  return trim(comma == std::string_view::npos ? value : value.substr(comma + 1));
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string base64(const unsigned char* data, size_t size) {
  std::string out(4 * ((size + 2) / 3), '\0');
  EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  return out;
}

}  // namespace

// ------------------------------------------------------------------ HTTP/1.1

ResponseReader::ResponseReader(size_t max_head) : head_(max_head) {}

void ResponseReader::reset() {
  state_ = State::Head;
  head_size_ = 0;
  remaining_ = 0;
  chunk_digits_ = 0;
  error_ = nullptr;
}

ResponseReader::Step ResponseReader::fail(const char* why) {
  error_ = why;
  state_ = State::Failed;
  return Step::Error;
}

ResponseReader::Step ResponseReader::next(const char* data, size_t size, size_t* used, Response* response) {
  size_t at = 0;
  for (;;) {
    Step step = Step::NeedMore;
    size_t n = 0;
    switch (state_) {
      case State::Failed:
        *used = at;
        return Step::Error;
      case State::Head:
        step = read_head(data + at, size - at, &n, response);
        at += n;
        // a head whose body follows continues below; one without a body is a whole response
        if (step == Step::Response && state_ != State::Head) continue;
        if (step == Step::Response && h_.status < 200 && h_.status != 101) continue;  // 1xx interim
        *used = at;
        return step;
      case State::Body:
        n = static_cast<size_t>(std::min<uint64_t>(remaining_, size - at));
        at += n;
        remaining_ -= n;
        *used = at;
        if (remaining_ > 0) return Step::NeedMore;
        state_ = State::Head;
        response->status = h_.status;
        response->close = h_.close;
        return Step::Response;
      default:
        step = read_chunked(data + at, size - at, &n, response);
        *used = at + n;
        return step;
    }
  }
}

// Reads a head: straight from `data` when it is all there (the common case),
// else gathered in head_ across reads. Step::Response means the head is
// complete; state_ then says whether a body follows.
ResponseReader::Step ResponseReader::read_head(const char* data, size_t size, size_t* used,
                                               Response* response) {
  size_t consumed = 0;
  HeadStep h;
  if (head_size_ == 0) {
    // no further than a head gathered across reads could go, so that the
    // outcome never depends on how the bytes were split
    if (memo_size_ != 0 && size >= memo_size_ && std::memcmp(data, memo_.data(), memo_size_) == 0) {
      h_ = memo_head_;
      h = HeadStep::Done;
      consumed = memo_size_;
    } else {
      h = parse_head(data, std::min(size, head_.size()), &consumed);
      if (h == HeadStep::Done && consumed <= memo_.size()) {
        std::memcpy(memo_.data(), data, consumed);
        memo_size_ = consumed;
        memo_head_ = h_;
      }
    }
    if (h == HeadStep::NeedMore) {
      if (size >= head_.size()) return fail("response head too long");
      std::memcpy(head_.data(), data, size);
      head_size_ = size;
      *used = size;
      return Step::NeedMore;
    }
    *used = consumed;
  } else {
    size_t old = head_size_;
    size_t n = std::min(size, head_.size() - old);
    std::memcpy(head_.data() + old, data, n);
    head_size_ += n;
    h = parse_head(head_.data(), head_size_, &consumed);
    if (h == HeadStep::Error) {
      *used = n;
      return fail(error_);
    }
    if (h == HeadStep::NeedMore) {
      if (head_size_ == head_.size()) return fail("response head too long");
      *used = n;
      return Step::NeedMore;
    }
    *used = consumed - old;
    head_size_ = 0;
  }
  if (h == HeadStep::Error) return fail(error_);
  Step step = Step::Response;
  start_body(response, &step);
  return step;
}

ResponseReader::HeadStep ResponseReader::parse_head(const char* data, size_t size, size_t* consumed) {
  h_ = Head();
  size_t pos = 0;
  bool first = true;
  for (;;) {
    const void* nl = std::memchr(data + pos, '\n', size - pos);
    if (nl == nullptr) return HeadStep::NeedMore;
    size_t end = static_cast<const char*>(nl) - data;
    if (end == pos || data[end - 1] != '\r') {
      error_ = "line not ended by CRLF";
      return HeadStep::Error;
    }
    std::string_view line(data + pos, end - 1 - pos);
    pos = end + 1;
    if (first) {
      if (!parse_status_line(line)) return HeadStep::Error;
      first = false;
    } else if (line.empty()) {
      *consumed = pos;
      return HeadStep::Done;
    } else if (!parse_header(line)) {
      return HeadStep::Error;
    }
  }
}

// "HTTP/1.x NNN[ reason]"
bool ResponseReader::parse_status_line(std::string_view line) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || !digit(line[7]) || line[8] != ' ' ||
      !digit(line[9]) || !digit(line[10]) || !digit(line[11]) || (line.size() > 12 && line[12] != ' ')) {
    error_ = "malformed status line";
    return false;
  }
  h_.status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  if (h_.status < 100) {
    error_ = "status code below 100";
    return false;
  }
  return true;
}

// Only the headers that decide the framing (and the upgrade) are looked at.
bool ResponseReader::parse_header(std::string_view line) {
  const void* c = std::memchr(line.data(), ':', line.size());
  size_t colon = c == nullptr ? std::string_view::npos : static_cast<const char*>(c) - line.data();
  if (colon == std::string_view::npos || colon == 0 || line[colon - 1] == ' ' || line[colon - 1] == '\t') {
    error_ = "malformed header line";
    return false;
  }
  std::string_view name = line.substr(0, colon);
  auto value_of = [&] { return trim(line.substr(colon + 1)); };
  switch (name.size()) {
    case 14:
      if (name_is(name, "content-length")) {
        std::string_view value = value_of();
        if (value.empty() || value.size() > 15) {
          error_ = "bad Content-Length";
          return false;
        }
        int64_t n = 0;
        for (char c : value) {
          if (c < '0' || c > '9') {
            error_ = "bad Content-Length";
            return false;
          }
          n = n * 10 + (c - '0');
        }
        if (h_.content_length >= 0 && h_.content_length != n) {
          error_ = "conflicting Content-Length headers";
          return false;
        }
        h_.content_length = n;
      }
      break;
    case 17:
      if (name_is(name, "transfer-encoding")) {
        h_.chunked = name_is(last_token(value_of()), "chunked");
        h_.other_coding = !h_.chunked;
      }
      break;
    case 10:
      if (name_is(name, "connection")) h_.close = h_.close || has_token(value_of(), "close");
      break;
    case 7:
      if (name_is(name, "upgrade")) h_.upgrade_ok = name_is(value_of(), "websocket");
      break;
    case 20:
      if (name_is(name, "sec-websocket-accept"))
        h_.accept_ok = !expected_accept_.empty() && value_of() == expected_accept_;
      break;
    default:
      break;
  }
  return true;
}

// After a head: sets state_ for the body, or leaves it at Head when there is
// none (the response is complete: *step stays Response; Upgraded for a 101).
bool ResponseReader::start_body(Response* response, Step* step) {
  response->status = h_.status;
  response->close = h_.close;
  if (h_.status == 101) {
    *step = Step::Upgraded;
    return false;
  }
  if (h_.status < 200 || h_.status == 204 || h_.status == 304) return false;  // no body (requests are GETs)
  if (h_.chunked) {
    state_ = State::ChunkSize;
    remaining_ = 0;
    chunk_digits_ = 0;
    return true;
  }
  if (h_.other_coding) {
    *step = fail("transfer coding other than chunked (read until close) is not supported");
    return false;
  }
  if (h_.content_length < 0) {
    *step = fail("response without Content-Length or chunked framing (read until close) is not supported");
    return false;
  }
  if (h_.content_length == 0) return false;
  state_ = State::Body;
  remaining_ = static_cast<uint64_t>(h_.content_length);
  return true;
}

ResponseReader::Step ResponseReader::read_chunked(const char* data, size_t size, size_t* used,
                                                  Response* response) {
  size_t i = 0;
  while (i < size) {
    char c = data[i];
    switch (state_) {
      case State::ChunkSize: {
        int v = hex_value(c);
        if (v >= 0) {
          if (chunk_digits_ == 15) return fail("chunk size too large");
          remaining_ = remaining_ * 16 + static_cast<uint64_t>(v);
          ++chunk_digits_;
        } else if (chunk_digits_ == 0) {
          return fail("chunk size expected");
        } else if (c == ';' || c == ' ' || c == '\t') {
          state_ = State::ChunkExtension;
        } else if (c == '\r') {
          state_ = State::ChunkSizeLF;
        } else {
          return fail("malformed chunk size");
        }
        ++i;
        break;
      }
      case State::ChunkExtension: {
        const void* cr = std::memchr(data + i, '\r', size - i);
        if (cr == nullptr) {
          i = size;
        } else {
          i = static_cast<const char*>(cr) - data + 1;
          state_ = State::ChunkSizeLF;
        }
        break;
      }
      case State::ChunkSizeLF:
        if (c != '\n') return fail("chunk size line not ended by CRLF");
        ++i;
        chunk_digits_ = 0;
        state_ = remaining_ == 0 ? State::TrailerStart : State::ChunkData;
        break;
      case State::ChunkData: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, size - i));
        i += n;
        remaining_ -= n;
        if (remaining_ == 0) state_ = State::ChunkDataCR;
        break;
      }
      case State::ChunkDataCR:
        if (c != '\r') return fail("chunk data not followed by CRLF");
        ++i;
        state_ = State::ChunkDataLF;
        break;
      case State::ChunkDataLF:
        if (c != '\n') return fail("chunk data not followed by CRLF");
        ++i;
        state_ = State::ChunkSize;
        break;
      case State::TrailerStart:
        if (c == '\r') {
          ++i;
          state_ = State::TrailerEndLF;
        } else {
          state_ = State::TrailerLine;
        }
        break;
      case State::TrailerLine: {
        const void* nl = std::memchr(data + i, '\n', size - i);
        if (nl == nullptr) {
          i = size;
        } else {
          i = static_cast<const char*>(nl) - data + 1;
          state_ = State::TrailerStart;
        }
        break;
      }
      case State::TrailerEndLF:
        if (c != '\n') return fail("chunked body not ended by CRLF");
        *used = i + 1;
        state_ = State::Head;
        response->status = h_.status;
        response->close = h_.close;
        return Step::Response;
      default:
        return fail("internal: not in a chunked body");
    }
  }
  *used = i;
  return Step::NeedMore;
}

// ----------------------------------------------------------------- WebSocket

size_t frame_size(size_t payload) {
  size_t length_bytes = payload < 126 ? 0 : payload <= 0xFFFF ? 2 : 8;
  return 2 + length_bytes + 4 + payload;
}

size_t write_client_frame(char* out, std::string_view payload, bool binary, std::array<uint8_t, 4> mask) {
  auto* o = reinterpret_cast<uint8_t*>(out);
  size_t n = 0;
  o[n++] = binary ? 0x82 : 0x81;  // FIN, text or binary
  uint64_t size = payload.size();
  if (size < 126) {
    o[n++] = static_cast<uint8_t>(0x80 | size);
  } else if (size <= 0xFFFF) {
    o[n++] = 0x80 | 126;
    o[n++] = static_cast<uint8_t>(size >> 8);
    o[n++] = static_cast<uint8_t>(size);
  } else {
    o[n++] = 0x80 | 127;
    for (int shift = 56; shift >= 0; shift -= 8) o[n++] = static_cast<uint8_t>(size >> shift);
  }
  std::memcpy(o + n, mask.data(), 4);
  n += 4;
  // Mask eight bytes at a time: the key repeats every four, so a word of two
  // keys lines up with every eight-byte step.
  uint64_t key8 = 0;
  uint8_t key_bytes[8];
  for (int i = 0; i < 8; ++i) key_bytes[i] = mask[i % 4];
  std::memcpy(&key8, key_bytes, 8);
  const char* p = payload.data();
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    w ^= key8;
    std::memcpy(o + n + i, &w, 8);
  }
  for (; i < size; ++i) o[n + i] = static_cast<uint8_t>(p[i]) ^ mask[i % 4];
  return n + size;
}

FrameReader::Step FrameReader::fail(const char* why) {
  failed_ = true;
  error_ = why;
  return Step::Error;
}

bool FrameReader::reject(const char* why) {
  fail(why);
  return false;
}

FrameReader::Step FrameReader::next(const char* data, size_t size, size_t* used, Piece* piece) {
  size_t at = 0;
  for (;;) {
    if (failed_) {
      *used = at;
      return Step::Error;
    }
    if (in_payload_) {
      if (remaining_ > 0) {
        if (at == size) {
          *used = at;
          return Step::NeedMore;
        }
        size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, size - at));
        std::string_view bytes(data + at, n);
        at += n;
        remaining_ -= n;
        if (control_) continue;
        message_size_ += n;
        piece->payload = bytes;
        *used = at;
        return Step::Payload;
      }
      in_payload_ = false;
      if (control_) {
        piece->opcode = opcode_;
        *used = at;
        return Step::Control;
      }
      if (fin_) {
        in_message_ = false;
        piece->message_size = message_size_;
        piece->opcode = message_opcode_;
        *used = at;
        return Step::Message;
      }
      continue;
    }
    if (at == size) {
      *used = at;
      return Step::NeedMore;
    }
    size_t header_size = 0;
    if (header_have_ == 0) {
      // the common case: the whole header is in this read
      if (!parse_header(reinterpret_cast<const uint8_t*>(data + at), size - at, &header_size)) continue;
      if (header_size > 0) {
        at += header_size;
        continue;
      }
    }
    size_t n = std::min(size - at, header_.size() - header_have_);
    std::memcpy(header_.data() + header_have_, data + at, n);
    if (!parse_header(header_.data(), header_have_ + n, &header_size)) continue;
    if (header_size == 0) {
      header_have_ += n;
      *used = at + n;
      return Step::NeedMore;
    }
    at += header_size - header_have_;
    header_have_ = 0;
  }
}

// Parses a frame header from h[0..size): false on a protocol error (failed_
// set); true with *header_size 0 when more bytes are needed, else the
// header's size, with the frame's state set.
bool FrameReader::parse_header(const uint8_t* h, size_t size, size_t* header_size) {
  *header_size = 0;
  if (size < 2) return true;
  uint8_t b0 = h[0];
  uint8_t b1 = h[1];
  if ((b0 & 0x70) != 0) return reject("reserved bits set (no extension was agreed)");
  if ((b1 & 0x80) != 0) return reject("a server frame is masked");
  uint8_t opcode = b0 & 0x0F;
  bool fin = (b0 & 0x80) != 0;
  uint64_t length = b1 & 0x7F;
  size_t need = 2 + (length == 126 ? 2 : length == 127 ? 8 : 0);
  if (size < need) return true;
  if (length == 126) {
    length = (uint64_t{h[2]} << 8) | h[3];
  } else if (length == 127) {
    length = 0;
    for (size_t i = 2; i < 10; ++i) length = (length << 8) | h[i];
    if ((length >> 63) != 0) return reject("frame length with the top bit set");
  }
  bool control = opcode >= 8;
  if (control) {
    if (opcode > 10) return reject("unknown control opcode");
    if (!fin || length > 125) return reject("fragmented or long control frame");
  } else if (opcode == 0) {
    if (!in_message_) return reject("continuation frame outside a message");
  } else if (opcode <= 2) {
    if (in_message_) return reject("new message inside a fragmented one");
    in_message_ = true;
    message_opcode_ = opcode;
    message_size_ = 0;
  } else {
    return reject("unknown data opcode");
  }
  opcode_ = opcode;
  fin_ = fin;
  control_ = control;
  remaining_ = length;
  in_payload_ = true;
  *header_size = need;
  return true;
}

std::string websocket_accept(std::string_view key) {
  static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";  // RFC 6455 1.3
  std::string input(key);
  input.append(kGuid);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return base64(digest, sizeof(digest));
}

std::string websocket_key() {
  unsigned char nonce[16];
  if (RAND_bytes(nonce, sizeof(nonce)) != 1) std::abort();
  return base64(nonce, sizeof(nonce));
}

}  // namespace loadgen
