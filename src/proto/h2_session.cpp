// The HTTP/2 session engine: nghttp2 behind a frame splitter that enforces
// Evo's limits before nghttp2 sees a frame. See h2_session.h.
#include "proto/h2_session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstring>

#include "proto/encoding.h"

namespace evo::h2 {

namespace {

constexpr size_t kFrameHeader = 9;
constexpr size_t kPreface = 24;  // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
constexpr uint8_t kFlagEndStream = 0x1;
constexpr uint8_t kFlagAck = 0x1;
constexpr uint8_t kFlagEndHeaders = 0x4;
// The opaque data of the PING that measures the round trip of a graceful
// shutdown (its ACK says every request sent before the notice has arrived).
constexpr std::array<uint8_t, 8> kShutdownPing = {'e', 'v', 'o', 's', 'h', 'u', 't', '!'};
// A flood ring never grows past this, whatever Options say.
constexpr uint32_t kMaxRateCount = 100000;

uint32_t read24(const uint8_t* p) { return (uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | p[2]; }

// RFC 9113 8.2.2: fields that describe the HTTP/1 connection have no place
// in HTTP/2, and a peer treats them as malformed; the HTTP/1 code above may
// still set them, so they are dropped here. TE is allowed only as "trailers".
// `name` in any case.
bool connection_specific(std::string_view name, std::string_view value) {
  switch (name.size()) {
    case 2:
      return http::equals_ignoring_case(name, "te") && value != "trailers";
    case 7:
      return http::equals_ignoring_case(name, "upgrade");
    case 10:
      return http::equals_ignoring_case(name, "connection") || http::equals_ignoring_case(name, "keep-alive");
    case 16:
      return http::equals_ignoring_case(name, "proxy-connection");
    case 17:
      return http::equals_ignoring_case(name, "transfer-encoding");
    default:
      return false;
  }
}

std::vector<nghttp2_settings_entry> settings_of(const Options& o) {
  return {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, o.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, o.initial_window_size},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, o.max_frame_size},
      {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, o.header_table_size},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, o.max_header_list_size},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      // RFC 9218: no RFC 7540 priority tree. PRIORITY frames then cost
      // nothing to process (the priority-tree floods of 2019 are moot).
      {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
  };
}

}  // namespace

// The name/value pairs handed to nghttp2. They point at the caller's
// strings, which live through the submit call: nghttp2 copies every pair
// and lower-cases the names as it does (nghttp2_submit_* document both), so
// copying or lower-casing them here first would be done twice. The first
// kInline pairs need no allocation (a response head rarely has more).
class NvList {
 public:
  NvList() = default;
  NvList(const NvList&) = delete;  // pairs may point at status_
  NvList& operator=(const NvList&) = delete;
  void add(std::string_view name, std::string_view value) {
    nghttp2_nv nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                  reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                  NGHTTP2_NV_FLAG_NONE};
    if (size_ < kInline) {
      inline_[size_] = nv;
    } else {
      if (heap_.empty()) heap_.assign(inline_.begin(), inline_.end());
      heap_.push_back(nv);
    }
    ++size_;
  }
  // Regular fields: pseudo-headers and connection-specific fields dropped.
  template <typename Fields>
  void add_regular(const Fields& headers) {
    for (const auto& [name, value] : headers) {
      std::string_view n(name);
      if (n.empty() || n[0] == ':' || connection_specific(n, value)) continue;
      add(n, value);
    }
  }
  // ":status" with the digits held here.
  void add_status(int status) {
    auto [end, ec] = std::to_chars(status_.data(), status_.data() + status_.size(), status);
    add(":status", std::string_view(status_.data(), static_cast<size_t>(end - status_.data())));
  }
  [[nodiscard]] const nghttp2_nv* data() const { return heap_.empty() ? inline_.data() : heap_.data(); }
  [[nodiscard]] size_t size() const { return size_; }

 private:
  static constexpr size_t kInline = 16;
  std::array<nghttp2_nv, kInline> inline_{};
  std::vector<nghttp2_nv> heap_;
  size_t size_ = 0;
  std::array<char, 12> status_{};  // any int fits
};

const char* error_name(uint32_t code) {
  static constexpr std::array<const char*, 14> kNames = {"NO_ERROR",
                                                         "PROTOCOL_ERROR",
                                                         "INTERNAL_ERROR",
                                                         "FLOW_CONTROL_ERROR",
                                                         "SETTINGS_TIMEOUT",
                                                         "STREAM_CLOSED",
                                                         "FRAME_SIZE_ERROR",
                                                         "REFUSED_STREAM",
                                                         "CANCEL",
                                                         "COMPRESSION_ERROR",
                                                         "CONNECT_ERROR",
                                                         "ENHANCE_YOUR_CALM",
                                                         "INADEQUATE_SECURITY",
                                                         "HTTP_1_1_REQUIRED"};
  return code < kNames.size() ? kNames[code] : "UNKNOWN";
}

// ------------------------------------------------------------ per stream

struct Session::Stream {
  // Inbound: the header block being collected, and body accounting.
  RequestHead request;  // server: pseudo-headers go here
  int status = 0;       // client: :status
  HeaderList fields;    // regular fields of the current block
  size_t block_size = 0;
  bool oversize = false;   // the current block passed max_header_list_size
  bool head_done = false;  // the request / final response was delivered
  bool ignored = false;    // answered 431: the body is dropped
  size_t unconsumed = 0;   // delivered body bytes not yet consume()d

  // Outbound: the head went out with a data provider; body queue.
  bool answered = false;
  bool has_body = false;
  std::string out;
  size_t out_pos = 0;
  bool end_queued = false;
  bool has_trailers = false;
  HeaderList trailers;
  bool deferred = false;  // the data provider returned DEFERRED
  uint64_t stalled_since = 0;

  [[nodiscard]] size_t queued() const { return out.size() - out_pos; }
};

// The last `count` event times in a ring: one more event while the oldest
// is still within the window is over the limit. Memory: 8 bytes per count.
class Session::Flood {
 public:
  explicit Flood(RateLimit limit) : window_(limit.window_ms), times_(std::min(limit.count, kMaxRateCount)) {}
  // Records an event at `now`; true when it is one too many.
  bool hit(uint64_t now) {
    if (times_.empty()) return false;
    if (filled_ == times_.size()) {
      if (now - times_[next_] < window_) return true;
    } else {
      ++filled_;
    }
    times_[next_] = now;
    next_ = (next_ + 1) % times_.size();
    return false;
  }

 private:
  uint64_t window_;
  std::vector<uint64_t> times_;
  size_t next_ = 0;
  size_t filled_ = 0;
};

// ------------------------------------------------------------ callbacks

// nghttp2's callbacks, as static functions with the Session in user_data.
struct Callbacks {
  static Session& of(void* user_data) { return *static_cast<Session*>(user_data); }

  static Session::Stream* find(Session& s, int32_t id) {
    auto it = s.streams_.find(id);
    return it == s.streams_.end() ? nullptr : it->second.get();
  }

  static int on_begin_headers(nghttp2_session* /*session*/, const nghttp2_frame* frame, void* ud) {
    Session& self = of(ud);
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    int32_t id = frame->hd.stream_id;
    if (self.role_ == Role::Server && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      self.streams_.emplace(id, std::make_unique<Session::Stream>());
    }
    if (Session::Stream* s = find(self, id)) {
      s->fields.clear();
      s->block_size = 0;
      s->oversize = false;
    }
    return 0;
  }

  static int on_header(nghttp2_session* /*session*/, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t /*flags*/, void* ud) {
    Session& self = of(ud);
    Session::Stream* s = find(self, frame->hd.stream_id);
    if (!s || s->oversize) return 0;
    // The decoded size, as SETTINGS_MAX_HEADER_LIST_SIZE counts it: an
    // HPACK bomb (a large table entry referenced many times) stops here,
    // before it is copied.
    s->block_size += namelen + valuelen + 32;
    if (s->block_size > self.opts_.max_header_list_size) {
      s->oversize = true;
      s->fields.clear();
      return 0;
    }
    std::string_view n(reinterpret_cast<const char*>(name), namelen);
    std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    if (n.empty() || n[0] != ':') {
      s->fields.emplace_back(n, v);
      return 0;
    }
    // nghttp2 has checked the pseudo-headers: known, once each, first.
    if (n == ":status") {
      int status = 0;
      for (char c : v) status = status * 10 + (c - '0');
      s->status = status;
    } else if (n == ":method") {
      s->request.method = v;
    } else if (n == ":scheme") {
      s->request.scheme = v;
    } else if (n == ":authority") {
      s->request.authority = v;
    } else if (n == ":path") {
      s->request.path = v;
    } else if (n == ":protocol") {
      s->request.protocol = v;
    }
    return 0;
  }

  static void headers_done(Session& self, int32_t id, Session::Stream& s, bool end_stream) {
    if (s.oversize) {
      over_limit(self, id, s);
      return;
    }
    if (s.head_done) {
      self.handler_.on_trailers(id, std::move(s.fields));
    } else if (self.role_ == Role::Server) {
      s.head_done = true;
      s.request.headers = std::move(s.fields);
      self.handler_.on_request(id, std::move(s.request), end_stream);
    } else if (s.status >= 200) {  // 1xx: informational, skipped
      s.head_done = true;
      self.handler_.on_response(id, ResponseHead{s.status, std::move(s.fields)}, end_stream);
    }
    s.fields.clear();
  }

  // A header list over max_header_list_size: a request is answered 431
  // without reaching the handler; trailers or a response reset the stream.
  static void over_limit(Session& self, int32_t id, Session::Stream& s) {
    if (self.role_ == Role::Server && !s.head_done) {
      s.head_done = s.answered = s.ignored = true;
      NvList nv;
      nv.add(":status", "431");
      nghttp2_submit_response(self.ng_, id, nv.data(), nv.size(), nullptr);
      return;
    }
    nghttp2_submit_rst_stream(self.ng_, NGHTTP2_FLAG_NONE, id,
                              self.role_ == Role::Server ? EnhanceYourCalm : Cancel);
  }

  static int on_frame_recv(nghttp2_session* /*session*/, const nghttp2_frame* frame, void* ud) {
    Session& self = of(ud);
    int32_t id = frame->hd.stream_id;
    bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS:
        if (Session::Stream* s = find(self, id)) headers_done(self, id, *s, end_stream);
        break;
      case NGHTTP2_DATA:
        // An empty DATA frame that does not end the stream does nothing
        // but cost a frame: CVE-2019-9518 sends them by the million.
        if (!end_stream && frame->hd.length == frame->data.padlen && self.empty_data_->hit(self.now())) {
          self.pending_failure_ = EnhanceYourCalm;
          self.pending_reason_ = "empty DATA flood";
        }
        break;
      case NGHTTP2_PING:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) && self.shutting_down_ &&
            std::memcmp(frame->ping.opaque_data, kShutdownPing.data(), kShutdownPing.size()) == 0) {
          self.finish_shutdown();
        }
        return 0;
      case NGHTTP2_SETTINGS:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) self.peer_settings_received_ = true;
        return 0;
      case NGHTTP2_GOAWAY: {
        const auto& g = frame->goaway;
        self.goaway_received_ = true;
        self.handler_.on_goaway(
            g.error_code, g.last_stream_id,
            std::string_view(reinterpret_cast<const char*>(g.opaque_data), g.opaque_data_len));
        return 0;
      }
      default:
        return 0;
    }
    if (end_stream) {
      Session::Stream* s = find(self, id);
      if (s && !s->ignored) self.handler_.on_end_stream(id);
    }
    return 0;
  }

  static int on_data_chunk_recv(nghttp2_session* ng, uint8_t /*flags*/, int32_t id, const uint8_t* data,
                                size_t len, void* ud) {
    Session& self = of(ud);
    Session::Stream* s = find(self, id);
    if (!s || s->ignored) {
      // Nobody reads it: give the window back now.
      nghttp2_session_consume(ng, id, len);
      return 0;
    }
    s->unconsumed += len;
    self.handler_.on_data(id, std::string_view(reinterpret_cast<const char*>(data), len));
    return 0;
  }

  static int on_stream_close(nghttp2_session* ng, int32_t id, uint32_t code, void* ud) {
    Session& self = of(ud);
    auto it = self.streams_.find(id);
    if (it == self.streams_.end()) return 0;
    std::unique_ptr<Session::Stream> s = std::move(it->second);
    self.streams_.erase(it);
    // Body the caller never consumed still holds the connection window.
    if (s->unconsumed > 0) nghttp2_session_consume_connection(ng, s->unconsumed);
    self.buffered_total_ -= s->queued();
    self.handler_.on_stream_close(id, code);
    return 0;
  }

  static int on_frame_send(nghttp2_session* /*session*/, const nghttp2_frame* frame, void* ud) {
    Session& self = of(ud);
    if (frame->hd.type == NGHTTP2_RST_STREAM) {
      auto& own = self.own_resets_;
      auto it = std::find(own.begin(), own.end(), frame->hd.stream_id);
      if (it != own.end()) {
        own.erase(it);
      } else {
        self.note_reset();  // nghttp2 reset it on its own: the peer's doing
      }
    } else if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NoError &&
               self.failure_code_ == NoError && !self.local_goaway_) {
      // nghttp2 found a protocol error and is closing the connection.
      self.failure_code_ = frame->goaway.error_code;
      self.failure_reason_.assign(reinterpret_cast<const char*>(frame->goaway.opaque_data),
                                  frame->goaway.opaque_data_len);
      if (self.failure_reason_.empty()) self.failure_reason_ = error_name(frame->goaway.error_code);
    }
    return 0;
  }

  static int on_frame_not_send(nghttp2_session* /*session*/, const nghttp2_frame* frame,
                               int /*lib_error_code*/, void* ud) {
    // A request that never left (GOAWAY came first): its stream is gone.
    Session& self = of(ud);
    if (frame->hd.type != NGHTTP2_HEADERS || self.role_ != Role::Client) return 0;
    int32_t id = frame->hd.stream_id;
    if (nghttp2_session_find_stream(self.ng_, id) != nullptr) return 0;
    auto it = self.streams_.find(id);
    if (it == self.streams_.end()) return 0;
    self.buffered_total_ -= it->second->queued();
    self.streams_.erase(it);
    self.handler_.on_stream_close(id, RefusedStream);
    return 0;
  }

  static ssize_t read_length(nghttp2_session* /*session*/, uint8_t /*frame_type*/, int32_t /*stream_id*/,
                             int32_t conn_window, int32_t stream_window, uint32_t peer_max_frame, void* ud) {
    Session& self = of(ud);
    auto n = std::min<int64_t>({conn_window, stream_window, peer_max_frame, self.opts_.max_data_frame});
    return static_cast<ssize_t>(std::max<int64_t>(n, 1));
  }

  // The data provider of every stream with a body: copies from the queue;
  // DEFERRED when it is empty and not ended (write() resumes it).
  static ssize_t read_body(nghttp2_session* ng, int32_t id, uint8_t* buf, size_t length, uint32_t* flags,
                           nghttp2_data_source* /*source*/, void* ud) {
    Session& self = of(ud);
    Session::Stream* s = find(self, id);
    if (!s) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    size_t n = std::min(length, s->queued());
    if (n > 0) {
      std::memcpy(buf, s->out.data() + s->out_pos, n);
      s->out_pos += n;
      self.buffered_total_ -= n;
      s->stalled_since = 0;
      if (s->out_pos == s->out.size()) {
        s->out.clear();
        s->out_pos = 0;
      }
      self.progressed_.push_back(id);
    }
    if (s->queued() > 0) return static_cast<ssize_t>(n);
    if (s->end_queued) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (s->has_trailers) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        NvList nv;
        nv.add_regular(s->trailers);
        nghttp2_submit_trailer(ng, id, nv.data(), nv.size());
      }
      return static_cast<ssize_t>(n);
    }
    if (n > 0) return static_cast<ssize_t>(n);
    s->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
};

// ------------------------------------------------------------ the session

Session::Session(Role role, Handler& handler, Options options)
    : role_(role), handler_(handler), opts_(std::move(options)) {
  resets_ = std::make_unique<Flood>(opts_.rapid_reset);
  pings_ = std::make_unique<Flood>(opts_.ping);
  settings_ = std::make_unique<Flood>(opts_.settings);
  priorities_ = std::make_unique<Flood>(opts_.priority);
  empty_data_ = std::make_unique<Flood>(opts_.empty_data);

  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, Callbacks::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, Callbacks::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, Callbacks::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, Callbacks::on_data_chunk_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, Callbacks::on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, Callbacks::on_frame_send);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, Callbacks::on_frame_not_send);
  nghttp2_session_callbacks_set_data_source_read_length_callback(cbs, Callbacks::read_length);

  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  // WINDOW_UPDATE only when the caller consume()s: the handler's pace.
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_outbound_ack(opt, opts_.max_outbound_ack);
  nghttp2_option_set_max_settings(opt, opts_.max_settings_entries);
  nghttp2_option_set_no_closed_streams(opt, 1);
#ifdef EVO_NGHTTP2_HAS_MAX_CONTINUATIONS
  // Debian's backport counts too; ours (checked first) must be the one
  // that answers, with a GOAWAY rather than nghttp2's fatal return.
  nghttp2_option_set_max_continuations(opt, size_t{opts_.max_continuations} + 1);
#endif

  if (role_ == Role::Server) {
    nghttp2_session_server_new2(&ng_, cbs, this, opt);
    preface_left_ = kPreface;
  } else {
    nghttp2_session_client_new2(&ng_, cbs, this, opt);
  }
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);

  if (role_ == Role::Server || !opts_.client_upgrade) {
    auto iv = settings_of(opts_);
    nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, iv.data(), iv.size());
  }
  if (opts_.connection_window_size > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE) {
    nghttp2_session_set_local_window_size(ng_, NGHTTP2_FLAG_NONE, 0,
                                          static_cast<int32_t>(opts_.connection_window_size));
  }
}

Session::~Session() { nghttp2_session_del(ng_); }

uint64_t Session::now() const {
  if (opts_.clock) return opts_.clock();
  using namespace std::chrono;
  return static_cast<uint64_t>(duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count());
}

void Session::fail(uint32_t code, const std::string& reason) {
  if (failure_code_ != NoError) return;
  failure_code_ = code;
  failure_reason_ = reason;
  // GOAWAY with the last stream nghttp2 processed; from now on it ignores
  // what it receives and wants nothing once the GOAWAY is out. (1.52 has
  // no public way to add debug data to that GOAWAY.)
  nghttp2_session_terminate_session(ng_, code);
}

void Session::note_reset() {
  if (role_ == Role::Server && resets_->hit(now()) && pending_failure_ == NoError) {
    pending_failure_ = EnhanceYourCalm;
    pending_reason_ = "rapid reset";
  }
}

// ------------------------------------------------------------ input

bool Session::receive(const char* data, size_t len) {
  const auto* p = reinterpret_cast<const uint8_t*>(data);
  const uint8_t* end = p + len;
  while (p < end) {
    if (failure_code_ != NoError || !nghttp2_session_want_read(ng_)) return false;
    auto avail = static_cast<size_t>(end - p);
    if (preface_left_ > 0 || payload_left_ > 0) {
      // The preface (nghttp2 checks it) or the rest of a checked frame.
      size_t& left = preface_left_ > 0 ? preface_left_ : payload_left_;
      size_t n = std::min(left, avail);
      left -= n;
      if (!feed(p, n)) return false;
      p += n;
      continue;
    }
    if (head_len_ == 0 && avail >= kFrameHeader) {
      // The common case: a whole frame header here; feed it with as much of
      // its payload as arrived, in one call.
      if (!check_frame_header(p)) return false;
      payload_left_ = read24(p);
      size_t n = std::min(kFrameHeader + payload_left_, avail);
      payload_left_ -= n - kFrameHeader;
      if (!feed(p, n)) return false;
      p += n;
      continue;
    }
    // A frame header split between reads: collect it, check it, feed it.
    size_t n = std::min(kFrameHeader - head_len_, avail);
    std::memcpy(head_ + head_len_, p, n);
    head_len_ += n;
    p += n;
    if (head_len_ < kFrameHeader) break;
    head_len_ = 0;
    if (!check_frame_header(head_)) return false;
    payload_left_ = read24(head_);
    if (!feed(head_, kFrameHeader)) return false;
  }
  return failure_code_ == NoError && nghttp2_session_want_read(ng_) != 0;
}

// One frame header, before nghttp2 sees it: the limits that must act
// before the frame is processed (its cost is the attack).
bool Session::check_frame_header(const uint8_t* hd) {
  uint32_t length = read24(hd);
  uint8_t type = hd[3];
  uint8_t flags = hd[4];
  const char* flood = nullptr;
  if (in_block_) {
    if (type == NGHTTP2_CONTINUATION) {
      ++block_continuations_;
      block_bytes_ += length;
      if (block_continuations_ > opts_.max_continuations) {
        flood = "CONTINUATION flood";
      } else if (block_bytes_ > opts_.max_header_block_bytes) {
        flood = "header block too large";
      }
      if (flags & kFlagEndHeaders) in_block_ = false;
    } else {
      in_block_ = false;  // nghttp2 answers the protocol error
    }
  } else {
    switch (type) {
      case NGHTTP2_HEADERS:
        if (role_ == Role::Server && !new_or_open_stream(hd)) {
          fail(ProtocolError, "HEADERS on a stream id not above the last one, and not open");
          return false;
        }
        [[fallthrough]];
      case NGHTTP2_PUSH_PROMISE:
        block_bytes_ = length;
        block_continuations_ = 0;
        in_block_ = (flags & kFlagEndHeaders) == 0;
        if (block_bytes_ > opts_.max_header_block_bytes) flood = "header block too large";
        break;
      case NGHTTP2_PRIORITY:
        if (priorities_->hit(now())) flood = "PRIORITY flood";
        break;
      case NGHTTP2_RST_STREAM:
        if (role_ == Role::Server && resets_->hit(now())) flood = "rapid reset";
        break;
      case NGHTTP2_SETTINGS:
        if (!(flags & kFlagAck) && settings_->hit(now())) flood = "SETTINGS flood";
        break;
      case NGHTTP2_PING:
        if (!(flags & kFlagAck) && pings_->hit(now())) flood = "PING flood";
        break;
      default:
        break;
    }
  }
  if (!flood) return true;
  fail(EnhanceYourCalm, flood);
  return false;
}

// RFC 9113 5.1.1: a client opens streams with ever higher odd ids. A
// HEADERS frame on a lower or equal id is a new stream's (a protocol error)
// unless that stream is still open (its trailers). nghttp2 1.52 ignores a
// lower id on its own when it has forgotten the stream, and forgets closed
// streams: the check is here. (Even ids are nghttp2's error already.)
bool Session::new_or_open_stream(const uint8_t* hd) {
  uint32_t id =
      ((uint32_t{hd[5]} << 24) | (uint32_t{hd[6]} << 16) | (uint32_t{hd[7]} << 8) | hd[8]) & 0x7fffffffU;
  if ((id & 1U) == 0) return true;
  if (id > last_peer_stream_) {
    last_peer_stream_ = id;
    return true;
  }
  return nghttp2_session_find_stream(ng_, static_cast<int32_t>(id)) != nullptr;
}

bool Session::feed(const uint8_t* data, size_t len) {
  ssize_t rv = nghttp2_session_mem_recv(ng_, data, len);
  if (rv < 0) {
    // Fatal for nghttp2 (a bad preface, too many queued ACKs: the peer
    // does not read): nothing more can be sent. Close the connection.
    if (failure_code_ == NoError) {
      failure_code_ = rv == NGHTTP2_ERR_FLOODED ? EnhanceYourCalm : ProtocolError;
      failure_reason_ = nghttp2_strerror(static_cast<int>(rv));
    }
    dead_ = true;
    close_all();
    return false;
  }
  if (pending_failure_ != NoError) {
    fail(pending_failure_, pending_reason_);
    pending_failure_ = NoError;
    return false;
  }
  return true;
}

void Session::consume(int32_t stream, size_t n) {
  auto it = streams_.find(stream);
  if (it == streams_.end()) return;  // closed: the window was given back then
  Stream& s = *it->second;
  n = std::min(n, s.unconsumed);
  s.unconsumed -= n;
  if (n > 0) nghttp2_session_consume(ng_, stream, n);
}

// ------------------------------------------------------------ output

size_t Session::take_output(std::string& out, size_t max) {
  size_t before = out.size();
  while (!dead_ && out.size() - before < max) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(ng_, &data);
    if (n < 0) {
      dead_ = true;
      if (failure_code_ == NoError) {
        failure_code_ = InternalError;
        failure_reason_ = nghttp2_strerror(static_cast<int>(n));
      }
      break;
    }
    if (n == 0) {
      // Serialising may have tripped a limit (resets nghttp2 sent): the
      // GOAWAY is queued now and goes out on the next turn.
      if (pending_failure_ == NoError) break;
      fail(pending_failure_, pending_reason_);
      pending_failure_ = NoError;
      continue;
    }
    out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
  if (finished()) close_all();
  update_stalls();
  // Progress after the loop: a handler that writes more from here is
  // serialised by the caller's next take_output().
  std::vector<int32_t> progressed;
  progressed.swap(progressed_);
  std::sort(progressed.begin(), progressed.end());
  progressed.erase(std::unique(progressed.begin(), progressed.end()), progressed.end());
  for (int32_t id : progressed) {
    auto it = streams_.find(id);
    if (it != streams_.end()) handler_.on_send_progress(id, it->second->queued());
  }
  return out.size() - before;
}

// The connection is over (GOAWAY out, or nghttp2 dead): nghttp2 will not
// close the streams it left open, so the caller hears of them here, once.
void Session::close_all() {
  uint32_t code = failure_code_ != NoError ? failure_code_ : Cancel;
  while (!streams_.empty()) {
    auto it = streams_.begin();
    int32_t id = it->first;
    buffered_total_ -= it->second->queued();
    streams_.erase(it);
    handler_.on_stream_close(id, code);
  }
}

bool Session::want_write() const { return !dead_ && nghttp2_session_want_write(ng_) != 0; }
bool Session::want_read() const { return !dead_ && nghttp2_session_want_read(ng_) != 0; }

// A stream whose queue holds bytes while a window it needs is closed is
// stalled from the first time that was seen.
void Session::update_stalls() {
  if (buffered_total_ == 0) return;
  int32_t conn = nghttp2_session_get_remote_window_size(ng_);
  uint64_t t = 0;
  for (auto& [id, s] : streams_) {
    if (s->queued() == 0) {
      s->stalled_since = 0;
      continue;
    }
    bool blocked = conn <= 0 || nghttp2_session_get_stream_remote_window_size(ng_, id) <= 0;
    if (!blocked) {
      s->stalled_since = 0;
    } else if (s->stalled_since == 0) {
      if (t == 0) t = now();
      s->stalled_since = t;
    }
  }
}

uint64_t Session::stalled_since() const {
  uint64_t oldest = 0;
  for (const auto& [id, s] : streams_) {
    if (s->stalled_since != 0 && (oldest == 0 || s->stalled_since < oldest)) oldest = s->stalled_since;
  }
  return oldest;
}

// ------------------------------------------------------------ streams

bool Session::submit_response(int32_t stream, int status, const HeaderList& headers, bool end_stream) {
  NvList nv;
  nv.add_status(status);  // first, as RFC 9113 8.3 wants
  nv.add_regular(headers);
  return answer(stream, status, nv, end_stream);
}

bool Session::submit_response_fields(int32_t stream, int status, std::span<const Field> headers,
                                     bool end_stream) {
  NvList nv;
  nv.add_status(status);
  nv.add_regular(headers);
  return answer(stream, status, nv, end_stream);
}

bool Session::submit_informational(int32_t stream, int status, std::span<const Field> headers) {
  auto it = streams_.find(stream);
  if (role_ != Role::Server || it == streams_.end() || it->second->answered) return false;
  if (status < 100 || status > 199 || status == 101) return false;
  NvList nv;
  nv.add_status(status);
  nv.add_regular(headers);
  // nghttp2 sends a HEADERS before the response's as a non-final one; the
  // final response then follows with nghttp2_submit_response as usual.
  return nghttp2_submit_headers(ng_, NGHTTP2_FLAG_NONE, stream, nullptr, nv.data(), nv.size(), nullptr) >= 0;
}

bool Session::answer(int32_t stream, int status, const NvList& nv, bool end_stream) {
  auto it = streams_.find(stream);
  if (role_ != Role::Server || it == streams_.end() || it->second->answered) return false;
  if (status < 100 || status > 999) return false;
  Stream& s = *it->second;
  nghttp2_data_provider body{};
  body.read_callback = Callbacks::read_body;
  int rv = nghttp2_submit_response(ng_, stream, nv.data(), nv.size(), end_stream ? nullptr : &body);
  if (rv != 0) return false;
  s.answered = true;
  s.has_body = !end_stream;
  return true;
}

int32_t Session::submit_request(const RequestHead& head, bool end_stream) {
  if (role_ != Role::Client || dead_ || failure_code_ != NoError || goaway_received_) return -1;
  NvList nv;
  nv.add(":method", head.method);
  nv.add(":scheme", head.scheme);
  if (!head.authority.empty()) nv.add(":authority", head.authority);
  nv.add(":path", head.path);
  if (!head.protocol.empty()) nv.add(":protocol", head.protocol);
  nv.add_regular(head.headers);
  nghttp2_data_provider body{};
  body.read_callback = Callbacks::read_body;
  int32_t id =
      nghttp2_submit_request(ng_, nullptr, nv.data(), nv.size(), end_stream ? nullptr : &body, nullptr);
  if (id < 0) return -1;
  auto s = std::make_unique<Stream>();
  s->answered = true;
  s->has_body = !end_stream;
  streams_.emplace(id, std::move(s));
  return id;
}

void Session::resume(int32_t stream, Stream& s) {
  if (!s.deferred) return;
  s.deferred = false;
  nghttp2_session_resume_data(ng_, stream);
}

bool Session::write(int32_t stream, std::string_view data) {
  auto it = streams_.find(stream);
  if (it == streams_.end()) return false;
  Stream& s = *it->second;
  if (!s.has_body || s.end_queued) return false;
  if (data.empty()) return true;
  s.out.append(data);
  buffered_total_ += data.size();
  resume(stream, s);
  return true;
}

bool Session::end(int32_t stream) {
  auto it = streams_.find(stream);
  if (it == streams_.end()) return false;
  Stream& s = *it->second;
  if (!s.has_body || s.end_queued) return false;
  s.end_queued = true;
  resume(stream, s);
  return true;
}

bool Session::submit_trailers(int32_t stream, const HeaderList& trailers) {
  auto it = streams_.find(stream);
  if (it == streams_.end()) return false;
  Stream& s = *it->second;
  if (!s.has_body || s.end_queued) return false;
  s.end_queued = true;
  s.has_trailers = !trailers.empty();
  s.trailers = trailers;
  resume(stream, s);
  return true;
}

size_t Session::buffered(int32_t stream) const {
  auto it = streams_.find(stream);
  return it == streams_.end() ? 0 : it->second->queued();
}

void Session::reset_stream(int32_t stream, uint32_t code) {
  if (!streams_.contains(stream)) return;
  own_resets_.push_back(stream);
  nghttp2_submit_rst_stream(ng_, NGHTTP2_FLAG_NONE, stream, code);
}

// ------------------------------------------------------------ connection

void Session::goaway(uint32_t code) {
  local_goaway_ = true;
  nghttp2_session_terminate_session(ng_, code);
}

void Session::shutdown() {
  if (shutting_down_ || final_goaway_) return;
  if (role_ == Role::Client) {
    final_goaway_ = true;
    nghttp2_submit_goaway(ng_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(ng_), NoError,
                          nullptr, 0);
    return;
  }
  shutting_down_ = true;
  nghttp2_submit_shutdown_notice(ng_);
  nghttp2_submit_ping(ng_, NGHTTP2_FLAG_NONE, kShutdownPing.data());
}

void Session::finish_shutdown() {
  if (final_goaway_) return;
  final_goaway_ = true;
  nghttp2_submit_goaway(ng_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(ng_), NoError,
                        nullptr, 0);
}

// ------------------------------------------------------------ h2c

bool Session::upgrade(std::string_view http2_settings, bool head_request) {
  if (role_ != Role::Server || streams_.contains(1)) return false;
  std::string payload;
  encoding::DecodeError err;
  if (!encoding::base64_decode(http2_settings, true, &payload, &err)) return false;
  int rv = nghttp2_session_upgrade2(ng_, reinterpret_cast<const uint8_t*>(payload.data()), payload.size(),
                                    head_request ? 1 : 0, nullptr);
  if (rv != 0) return false;
  auto s = std::make_unique<Stream>();
  s->head_done = true;  // the HTTP/1.1 request, which the caller holds
  streams_.emplace(1, std::move(s));
  last_peer_stream_ = 1;
  return true;
}

std::string Session::settings_header(const Options& options) {
  auto iv = settings_of(options);
  std::array<uint8_t, 128> buf{};
  ssize_t n = nghttp2_pack_settings_payload(buf.data(), buf.size(), iv.data(), iv.size());
  std::string out;
  if (n > 0)
    encoding::base64_encode(std::string_view(reinterpret_cast<const char*>(buf.data()), n), true, &out);
  return out;
}

bool Session::upgrade_client(bool head_request) {
  if (role_ != Role::Client || streams_.contains(1)) return false;
  auto iv = settings_of(opts_);
  std::array<uint8_t, 128> buf{};
  ssize_t n = nghttp2_pack_settings_payload(buf.data(), buf.size(), iv.data(), iv.size());
  if (n <= 0) return false;
  if (nghttp2_session_upgrade2(ng_, buf.data(), static_cast<size_t>(n), head_request ? 1 : 0, nullptr) != 0)
    return false;
  auto s = std::make_unique<Stream>();
  s->answered = true;  // the upgrade request went out as HTTP/1.1
  streams_.emplace(1, std::move(s));
  return true;
}

uint32_t Session::peer_max_concurrent_streams() const {
  return nghttp2_session_get_remote_settings(ng_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

}  // namespace evo::h2
