#include "proto/http_response_parser.h"

#include <algorithm>
#include <cstring>

#include "proto/http_response.h"

namespace evo::http {

ResponseParser::ResponseParser(ResponseLimits limits) : limits_(limits) {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = on_message_begin;
  settings_.on_status = on_status;
  settings_.on_header_field = on_header_field;
  settings_.on_header_value = on_header_value;
  settings_.on_header_value_complete = on_header_value_complete;
  settings_.on_headers_complete = on_headers_complete;
  settings_.on_body = on_body;
  settings_.on_message_complete = on_message_complete;
  reset(false);
}

void ResponseParser::reset(bool head_request) {
  llhttp_init(&parser_, HTTP_RESPONSE, &settings_);
  parser_.data = this;
  // An interim response to an HTTP/1.0 exchange must not end the parse: the
  // final response follows on the same connection. (The parse stops after the
  // final response anyway; keep-alive is decided from its headers.)
  llhttp_set_lenient_keep_alive(&parser_, 1);
  res_ = Response();
  body_.clear();
  trailers_.clear();
  head_request_ = head_request;
  header_bytes_ = 0;
  headers_.reset();
  feed_base_ = 0;
  feed_ptr_ = nullptr;
  headers_done_ = false;
  complete_ = false;
  interim_ = false;
  started_ = false;
  interim_count_ = 0;
  body_bytes_ = 0;
  error_.clear();
  eof_ = false;
}

int ResponseParser::fail(std::string reason) {
  error_ = std::move(reason);
  return HPE_USER;
}

bool ResponseParser::count_header_bytes(size_t len) {
  header_bytes_ += len;
  return header_bytes_ <= limits_.max_header_bytes;
}

int ResponseParser::on_message_begin(llhttp_t* p) {
  ResponseParser* s = self(p);
  s->res_ = Response();
  s->header_bytes_ = 0;
  s->headers_.reset();
  s->interim_ = false;
  return 0;
}

int ResponseParser::on_status(llhttp_t* p, const char* at, size_t len) {
  ResponseParser* s = self(p);
  if (!s->count_header_bytes(len)) return s->fail("response header block too large");
  s->res_.reason.append(at, len);
  return 0;
}

int ResponseParser::on_header_field(llhttp_t* p, const char* at, size_t len) {
  ResponseParser* s = self(p);
  if (!s->count_header_bytes(len)) return s->fail("response header block too large");
  const char* why = s->headers_.name_piece(s->fields(), at, len, s->limits_.max_headers);
  return why == nullptr
             ? 0
             : s->fail(std::strcmp(why, "too many headers") == 0 ? "too many response headers" : why);
}

int ResponseParser::on_header_value(llhttp_t* p, const char* at, size_t len) {
  ResponseParser* s = self(p);
  if (!s->count_header_bytes(len)) return s->fail("response header block too large");
  uint64_t offset = s->feed_base_ + static_cast<uint64_t>(at - s->feed_ptr_);
  const char* why = s->headers_.value_piece(s->fields(), offset, at, len);
  return why == nullptr ? 0 : s->fail(why);
}

int ResponseParser::on_header_value_complete(llhttp_t* p) {
  ResponseParser* s = self(p);
  HeaderList& fields = s->fields();
  if (fields.empty()) return 0;
  if (fields.back().first.empty()) return s->fail("empty header name");
  fields.trim_last_value();
  auto [name, value] = fields.back();
  if (!s->headers_done_ && name == "content-length" &&
      (value.empty() ||
       !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))) {
    return s->fail("invalid Content-Length");
  }
  s->headers_.value_done();  // (an empty value has no piece: the next name starts a header)
  return 0;
}

int ResponseParser::on_headers_complete(llhttp_t* p) {
  ResponseParser* s = self(p);
  Response& r = s->res_;
  r.status = p->status_code;
  r.version_major = p->http_major;
  r.version_minor = p->http_minor;
  if (r.version_major != 1) return s->fail("unsupported HTTP version");
  if (r.status < 100 || r.status > 999) return s->fail("invalid status code");
  if (r.status < 200 && r.status != 101) {
    // 100 Continue, 103 Early Hints...: skipped, with any body they claim.
    s->interim_ = true;
    return 1;
  }
  bool persistent =
      r.version_minor >= 1 ? (p->flags & F_CONNECTION_CLOSE) == 0 : (p->flags & F_CONNECTION_KEEP_ALIVE) != 0;
  s->headers_done_ = true;
  if (s->head_request_ || r.status == 101 || r.status == 204 || r.status == 304) {
    r.framing = Framing::None;
    r.upgrade = r.status == 101 && p->upgrade != 0;
    r.keep_alive = persistent && r.status != 101;
    return 1;  // no body, whatever the headers say
  }
  // Transfer-Encoding overrides Content-Length (RFC 9112 6.3): a length
  // counts only when no coding was given.
  const bool has_coding = (p->flags & F_TRANSFER_ENCODING) != 0;
  if ((p->flags & F_CHUNKED) != 0) {
    r.framing = Framing::Chunked;
  } else if ((p->flags & F_CONTENT_LENGTH) != 0 && !has_coding) {
    r.content_length = p->content_length;
    r.framing = p->content_length == 0 ? Framing::None : Framing::Length;
  } else {
    // A coding other than chunked last, or no framing at all: the body
    // runs until the connection closes.
    r.framing = Framing::UntilEof;
  }
  r.keep_alive = persistent && r.framing != Framing::UntilEof;
  return 0;
}

int ResponseParser::on_body(llhttp_t* p, const char* at, size_t len) {
  ResponseParser* s = self(p);
  s->body_bytes_ += len;
  s->body_.append(at, len);
  return 0;
}

int ResponseParser::on_message_complete(llhttp_t* p) {
  ResponseParser* s = self(p);
  if (s->interim_) {
    if (++s->interim_count_ > s->limits_.max_interim) return s->fail("too many interim responses");
    return 0;  // the final response follows
  }
  s->complete_ = true;
  return HPE_PAUSED;  // nothing after it is parsed
}

ResponseParser::Result ResponseParser::feed(std::string_view data, size_t* consumed) {
  *consumed = 0;
  if (!error_.empty()) return Result::Error;
  if (complete_) return Result::Complete;
  if (!data.empty()) started_ = true;
  feed_ptr_ = data.data();
  llhttp_errno_t err = llhttp_execute(&parser_, data.data(), data.size());
  feed_base_ += data.size();
  if (err == HPE_OK) {
    *consumed = data.size();
    return Result::NeedMore;
  }
  if (complete_ && (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE)) {
    *consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data.data());
    return Result::Complete;
  }
  if (error_.empty()) {
    error_ = llhttp_errno_name(err);
    const char* reason = llhttp_get_error_reason(&parser_);
    if (reason != nullptr) error_ += std::string(": ") + reason;
  }
  return Result::Error;
}

ResponseParser::Result ResponseParser::finish() {
  if (!error_.empty()) return Result::Error;
  if (complete_) return Result::Complete;
  // A body that runs until the end completes here (llhttp calls
  // on_message_complete); anything else was cut short.
  llhttp_finish(&parser_);
  if (complete_) return Result::Complete;
  eof_ = true;
  if (headers_done_) {
    error_ = "the connection closed in the response body";
  } else if (started_) {
    error_ = "the connection closed in the response head";
  } else {
    error_ = "the connection closed before a response";
  }
  return Result::Error;
}

}  // namespace evo::http
