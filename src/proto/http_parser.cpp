#include "proto/http_parser.h"
#include "proto/http_response.h"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace evo::http {

namespace {

// s equals the literal. (std::operator== on string_views stays out of line
// here: a call and a memcmp call, ~35 instructions; a memcmp of a constant
// size is inlined into a load or two.)
template <size_t N>
bool is(std::string_view s, const char (&lit)[N]) {
  return s.size() == N - 1 && std::memcmp(s.data(), lit, N - 1) == 0;
}

}  // namespace

// The callbacks are the same for every parser, so all of them share one
// settings table (llhttp keeps a pointer to it and only reads it): 184 bytes
// less for each connection, idle ones included.
llhttp_settings_t* RequestParser::settings() {
  static llhttp_settings_t s = [] {
    llhttp_settings_t t;
    llhttp_settings_init(&t);
    t.on_message_begin = on_message_begin;
    t.on_method = on_method;
    t.on_url = on_url;
    t.on_version = on_version;
    t.on_chunk_header = on_chunk_header;
    t.on_chunk_complete = on_chunk_complete;
    t.on_header_field = on_header_field;
    t.on_header_value = on_header_value;
    t.on_header_value_complete = on_header_value_complete;
    t.on_headers_complete = on_headers_complete;
    t.on_body = on_body;
    t.on_message_complete = on_message_complete;
    return t;
  }();
  return &s;
}

void Request::clear() {
  method.clear();
  target.clear();
  version_major = 1;
  version_minor = 1;
  headers.clear();
  trailers.clear();
  body.clear();
  keep_alive = true;
  upgrade = false;
  chunked = false;
  expect_continue = false;
}

RequestParser::RequestParser(Limits limits) : limits_(limits) {
  llhttp_init(&parser_, HTTP_REQUEST, settings());
  parser_.data = this;
}

int RequestParser::fail(int status, std::string reason) {
  error_status_ = status;
  error_reason_ = std::move(reason);
  return HPE_USER;
}

bool RequestParser::within_header_limit(const char* at, const char* end) {
  if (!in_head_) {
    in_head_ = true;
    head_start_ = offset_of(at);
  }
  return offset_of(end) - head_start_ <= limits_.max_header_bytes;
}

int RequestParser::on_message_begin(llhttp_t* p) {
  RequestParser* s = self(p);
  // Cleared rather than `req_ = Request()`: the buffers keep their capacity.
  s->req_->clear();
  s->in_head_ = false;
  s->headers_.reset();
  s->version_seen_ = false;
  s->chunk_line_ = ChunkLine::None;
  s->last_chunk_ = false;
  s->headers_done_ = false;
  s->complete_ = false;
  s->content_length_headers_ = 0;
  s->saw_transfer_encoding_ = false;
  s->body_bytes_ = 0;
  s->host_headers_ = 0;
  s->saw_expect_ = false;
  return 0;
}

int RequestParser::on_method(llhttp_t* p, const char* at, size_t len) {
  RequestParser* s = self(p);
  if (!s->within_header_limit(at, at + len)) return s->fail(431, "request header fields too large");
  s->req_->method.append(at, len);
  s->method_end_ = s->offset_of(at + len);
  return 0;
}

int RequestParser::on_url(llhttp_t* p, const char* at, size_t len) {
  RequestParser* s = self(p);
  if (s->req_->target.size() + len > s->limits_.max_uri) return s->fail(414, "URI too long");
  // RFC 9112 3: method SP request-target SP version, one space each (llhttp
  // skips several).
  if (s->req_->target.empty() && s->offset_of(at) != s->method_end_ + 1) {
    return s->fail(400, "more than one space before the request target");
  }
  s->url_end_ = s->offset_of(at + len);
  if (!s->within_header_limit(at, at + len)) return s->fail(431, "request header fields too large");
  s->req_->target.append(at, len);
  return 0;
}

int RequestParser::on_version(llhttp_t* p, const char* at, size_t len) {
  RequestParser* s = self(p);
  if (!s->within_header_limit(at, at + len)) return s->fail(431, "request header fields too large");
  // The version's digits come after "HTTP/", which follows the single space.
  if (!s->version_seen_ && s->offset_of(at) != s->url_end_ + 6) {
    return s->fail(400, "more than one space after the request target");
  }
  s->version_seen_ = true;
  return 0;
}

int RequestParser::on_chunk_header(llhttp_t* p) {
  if (p->content_length == 0) self(p)->last_chunk_ = true;
  return 0;
}

int RequestParser::on_chunk_complete(llhttp_t* p) {
  RequestParser* s = self(p);
  if (s->last_chunk_) return 0;
  s->chunk_paused_ = true;  // feed() goes on, watching the next size line
  return HPE_PAUSED;
}

int RequestParser::on_header_field(llhttp_t* p, const char* at, size_t len) {
  RequestParser* s = self(p);
  if (!s->within_header_limit(at, at + len)) return s->fail(431, "request header fields too large");
  if (const char* why = s->headers_.name_piece(s->fields(), at, len)) return s->fail(400, why);
  return 0;
}

int RequestParser::on_header_value(llhttp_t* p, const char* at, size_t len) {
  RequestParser* s = self(p);
  if (!s->within_header_limit(at, at + len)) return s->fail(431, "request header fields too large");
  // NUL, CR or LF inside a value, and obs-fold, are how smuggling attempts
  // hide: refused whatever the parser allows (see http_headers.h).
  if (const char* why = s->headers_.value_piece(s->fields(), s->offset_of(at), at, len)) {
    return s->fail(400, why);
  }
  return 0;
}

int RequestParser::on_header_value_complete(llhttp_t* p) {
  RequestParser* s = self(p);
  s->headers_.value_done();  // (an empty value has no piece: the next name starts a header)
  HeaderList& fields = s->fields();
  if (fields.empty()) return 0;
  if (fields.back().first.empty()) return s->fail(400, "empty header name");
  // Trailing whitespace is not part of a value (RFC 9110 5.5).
  fields.trim_last_value();
  // A trailer: kept apart from the headers (RFC 9110 6.5.1), so a
  // Content-Length or Host there frames and routes nothing.
  if (s->headers_done_) return 0;
  // (Dispatched on the name's length first: most names match none.)
  std::string_view n = fields.back().first;
  switch (n.size()) {
    case 4:
      if (is(n, "host") && ++s->host_headers_ > 1) return s->fail(400, "more than one Host header");
      return 0;
    case 6:
      if (is(n, "expect")) s->saw_expect_ = true;  // (read in on_headers_complete)
      return 0;
    case 14: {
      if (!is(n, "content-length")) return 0;
      ++s->content_length_headers_;
      if (s->content_length_headers_ > 1) return s->fail(400, "duplicate Content-Length");
      std::string_view value = fields.back().second;
      if (value.empty() ||
          !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return s->fail(400, "invalid Content-Length");
      }
      break;
    }
    case 17: {
      if (!is(n, "transfer-encoding")) return 0;
      s->saw_transfer_encoding_ = true;
      // Only chunked is served: another coding ("gzip, chunked") would hand
      // the handler bytes it cannot read (RFC 9112 6.1: 501).
      std::string v(fields.back().second);
      std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
      if (v != "chunked") return s->fail(501, "unsupported transfer coding");
      break;
    }
    default:
      return 0;
  }
  if (s->content_length_headers_ > 0 && s->saw_transfer_encoding_) {
    return s->fail(400, "Content-Length with Transfer-Encoding");
  }
  return 0;
}

int RequestParser::on_headers_complete(llhttp_t* p) {
  RequestParser* s = self(p);
  s->in_head_ = false;
  Request& r = *s->req_;
  r.version_major = p->http_major;
  r.version_minor = p->http_minor;
  if (r.version_major == 0) return s->fail(400, "HTTP/0.9 requests are not served");
  if (r.version_major != 1) return s->fail(505, "HTTP version not supported");
  // RFC 9112 3.2: an HTTP/1.1 request names its host, exactly once.
  if (r.version_minor >= 1 && s->host_headers_ == 0) return s->fail(400, "missing Host header");
  r.keep_alive = llhttp_should_keep_alive(p) != 0;
  // RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 request is faulty
  // framing: serve it, then close.
  if (r.version_minor == 0 && s->saw_transfer_encoding_) r.keep_alive = false;
  r.upgrade = p->upgrade != 0;
  // What follows a CONNECT is tunnel data: unless a handler takes the
  // connection over, it closes after the answer.
  if (p->method == HTTP_CONNECT) r.keep_alive = false;
  r.chunked = (p->flags & F_CHUNKED) != 0;
  if (r.chunked) s->chunk_line_ = ChunkLine::Size;
  if (!s->absolute_form()) return s->fail(400, "an http URI with an empty host");
  if (std::optional<std::string_view> expect = s->saw_expect_ ? r.header("expect") : std::nullopt) {
    std::string v(*expect);
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
    r.expect_continue = v == "100-continue";
  }
  if ((p->flags & F_CONTENT_LENGTH) != 0 && p->content_length > s->limits_.max_body) {
    return s->fail(413, "request body too large");
  }
  s->headers_done_ = true;
  // A request with a body pauses here, so a server can start its handler
  // and stream the body to it (and answer Expect: 100-continue) before the
  // body has arrived. Requests without one pause at their end as usual.
  if (!r.upgrade && (r.chunked || p->content_length > 0)) return HPE_PAUSED;
  return 0;
}

// A target in absolute form ("http://host/p?q", RFC 9112 3.2.2) becomes its
// path and query, and its authority replaces the Host header. False for an
// http(s) URI without a host (RFC 9110 4.2.1: invalid).
bool RequestParser::absolute_form() {
  std::string& t = req_->target;
  if (t.empty() || t[0] == '/') return true;
  size_t sep = t.find("://");
  if (sep == std::string::npos) return true;  // "*", or CONNECT's authority form
  std::string scheme = t.substr(0, sep);
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (scheme != "http" && scheme != "https") return true;
  size_t start = sep + 3;
  size_t end = t.find_first_of("/?", start);
  std::string authority = t.substr(start, end == std::string::npos ? std::string::npos : end - start);
  size_t at = authority.rfind('@');  // userinfo is not part of the host
  if (at != std::string::npos) authority.erase(0, at + 1);
  if (authority.empty()) return false;
  std::string rest = end == std::string::npos ? std::string("/") : t.substr(end);
  if (rest[0] == '?') rest.insert(0, "/");
  t = std::move(rest);
  HeaderList& headers = req_->headers;
  for (size_t i = 0; i < headers.size(); ++i) {
    if (headers[i].first == "host") {
      headers.set_value(i, authority);
      return true;
    }
  }
  headers.emplace_back("host", authority);
  return true;
}

namespace {

bool is_bws(unsigned char c) { return c == ' ' || c == '\t'; }

// chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
// chunk-ext-val = token / quoted-string (RFC 9112 7.1.1)
bool valid_chunk_extensions(std::string_view s) {
  size_t i = 0;
  size_t n = s.size();
  auto skip_bws = [&] {
    while (i < n && is_bws(static_cast<unsigned char>(s[i]))) ++i;
  };
  auto token = [&] {
    size_t from = i;
    while (i < n && is_token_char(static_cast<unsigned char>(s[i]))) ++i;
    return i > from;
  };
  auto quoted = [&] {
    if (i >= n || s[i] != '"') return false;
    for (++i; i < n; ++i) {
      auto c = static_cast<unsigned char>(s[i]);
      if (c == '"') {
        ++i;
        return true;
      }
      if (c == '\\') {
        if (++i >= n) return false;
        c = static_cast<unsigned char>(s[i]);
        if (!(c == '\t' || (c >= 0x20 && c != 0x7f))) return false;
      } else if (!(c == '\t' || (c >= 0x20 && c != 0x7f))) {
        return false;
      }
    }
    return false;
  };
  while (i < n) {
    skip_bws();
    if (i >= n || s[i] != ';') return false;
    ++i;
    skip_bws();
    if (!token()) return false;
    size_t after_name = i;
    skip_bws();
    if (i < n && s[i] == '=') {
      ++i;
      skip_bws();
      if (!(token() || quoted())) return false;
    } else {
      i = after_name;  // whitespace only before ';', never at the end
    }
  }
  return true;
}

constexpr size_t kMaxChunkExtensions = 4096;

bool is_hex(unsigned char c) { return std::isxdigit(c) != 0; }

}  // namespace

// Runs llhttp over [data, data + len), keeping chunk extensions out of its
// way (see chunk_line_). Returns llhttp's result, or HPE_USER (fail()).
llhttp_errno_t RequestParser::execute(const char* data, size_t len) {
  const char* p = data;
  const char* end = data + len;
  while (p < end) {
    const char* upto = end;  // what llhttp parses next
    if (chunk_line_ == ChunkLine::Size) {
      const char* q = p;
      while (q < end && is_hex(static_cast<unsigned char>(*q))) ++q;
      if (q < end) {
        if (*q == ';' || is_bws(static_cast<unsigned char>(*q))) {
          chunk_line_ = ChunkLine::Ext;
          chunk_ext_.clear();
        } else {
          chunk_line_ = ChunkLine::None;  // the CR, or what llhttp refuses
        }
        upto = chunk_line_ == ChunkLine::Ext ? q : end;
      }
    } else if (chunk_line_ == ChunkLine::Ext) {
      const char* cr = static_cast<const char*>(std::memchr(p, '\r', static_cast<size_t>(end - p)));
      const char* stop = cr != nullptr ? cr : end;
      chunk_ext_.append(p, static_cast<size_t>(stop - p));
      if (chunk_ext_.size() > kMaxChunkExtensions)
        return static_cast<llhttp_errno_t>(fail(400, "chunk extensions too long"));
      if (cr == nullptr) return HPE_OK;  // all taken: the rest comes in the next read
      if (!valid_chunk_extensions(chunk_ext_))
        return static_cast<llhttp_errno_t>(fail(400, "invalid chunk extension"));
      chunk_line_ = ChunkLine::None;
      p = cr;
      continue;
    }
    if (upto > p) {
      llhttp_errno_t err = llhttp_execute(&parser_, p, static_cast<size_t>(upto - p));
      if (err == HPE_PAUSED && chunk_paused_) {
        chunk_paused_ = false;
        const char* at = llhttp_get_error_pos(&parser_);
        llhttp_resume(&parser_);
        chunk_line_ = ChunkLine::Size;
        p = at;
        continue;
      }
      if (err != HPE_OK) return err;
    }
    p = upto;
  }
  return HPE_OK;
}

int RequestParser::on_body(llhttp_t* p, const char* at, size_t len) {
  RequestParser* s = self(p);
  s->body_bytes_ += len;
  if (s->body_bytes_ > s->limits_.max_body) return s->fail(413, "request body too large");
  s->req_->body.append(at, len);
  return 0;
}

int RequestParser::on_message_complete(llhttp_t* p) {
  self(p)->complete_ = true;
  self(p)->in_head_ = false;
  return HPE_PAUSED;  // one request at a time: the caller resumes with next()
}

RequestParser::Result RequestParser::feed(std::string_view data, size_t* consumed) {
  *consumed = 0;
  if (error_status_ != 0) return Result::Error;
  feed_ptr_ = data.data();
  llhttp_errno_t err = execute(data.data(), data.size());
  if (err == HPE_PAUSED_UPGRADE) {
    // llhttp stops here once an Upgrade or CONNECT request has been served
    // (next() resumed it). A server that switched protocols took the
    // connection away and never feeds this parser again, so whoever feeds it
    // now answered without switching: what follows is the next request (a
    // CONNECT's connection closes after its answer: see keep_alive).
    const char* at = llhttp_get_error_pos(&parser_);
    llhttp_resume_after_upgrade(&parser_);
    err = execute(at, data.size() - static_cast<size_t>(at - data.data()));
  }
  // feed_base_ moves by what was consumed: the caller feeds the rest again.
  if (err == HPE_OK) feed_base_ += data.size();
  if (err == HPE_OK && in_head_ && feed_base_ - head_start_ > limits_.max_header_bytes) {
    // All of it went into a head not finished yet (whitespace the callbacks
    // do not report, a name or value still growing): past the limit already.
    error_status_ = 431;
    error_reason_ = "request header fields too large";
    return Result::Error;
  }
  if (err == HPE_OK) {
    *consumed = data.size();
    return Result::NeedMore;
  }
  if (err == HPE_PAUSED && complete_) {
    *consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data.data());
    feed_base_ += *consumed;
    return Result::Complete;
  }
  if (err == HPE_PAUSED && headers_done_) {
    *consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data.data());
    feed_base_ += *consumed;
    return Result::HeadersComplete;
  }
  if (error_status_ == 0) {
    // llhttp's own refusals: all malformed requests.
    error_status_ = 400;
    error_reason_ = llhttp_errno_name(err);
    const char* reason = llhttp_get_error_reason(&parser_);
    if (reason != nullptr) error_reason_ += std::string(": ") + reason;
  }
  return Result::Error;
}

void RequestParser::next() {
  complete_ = false;
  llhttp_resume(&parser_);
}

void RequestParser::resume_body() { llhttp_resume(&parser_); }

void RequestParser::release_idle_memory() {
  // (Only what is empty: a request on its way keeps what it has.)
  auto drop = [](auto& v) {
    if (v.empty()) std::remove_reference_t<decltype(v)>().swap(v);
  };
  drop(req_->method);
  drop(req_->target);
  drop(req_->headers);
  drop(req_->trailers);
  drop(req_->body);
  drop(chunk_ext_);
}

}  // namespace evo::http
