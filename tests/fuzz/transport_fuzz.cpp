// libFuzzer target: the transport (src/io/transport.h) driven by random
// sequences of reads, writes, file sends, cancels, shutdowns, closes and
// destruction, against a real peer over a socket pair.
//
// Per input: a libuv loop, a connected pair of sockets (a Unix socketpair or
// a TCP connection on 127.0.0.1, chosen by the first byte, with small socket
// buffers so writes go partial), one end a Transport over a UvStreamHandle
// (uv_pipe_open / uv_tcp_open), the other a plain non-blocking descriptor
// the input drives as the peer. The rest of the input is a list of
// operations (see Op). Invariants, checked with abort():
//  - the bytes the peer reads are the bytes handed to the transport, in
//    order: written output, then file regions where send_file was used (a
//    cancelled or failed file: any prefix of it), and nothing else;
//  - the bytes the user finds in input() and consumes are the bytes the peer
//    wrote, in order; the end is seen only after the peer half-closed or
//    reset, and after all of its bytes when it half-closed;
//  - a file's done runs once per pending send, with the region's length when
//    it succeeds; a file descriptor handed over (owns_fd) is closed by then;
//  - the user is never called back from a call it made, nor after
//    set_user(nullptr) or the transport's destruction;
//  - the peer sees the end only after a shutdown or a close, and after a
//    shutdown (nothing closed, no write error) with all bytes written before it;
//  - with the peer reading everything at the end: drained(), pending() 0,
//    every byte delivered, and sent() equal to what the peer read;
//  - once the transport is destroyed and the peer gone, the loop ends with no
//    handle left and no descriptor leaked.
// ASan and UBSan catch memory errors (a callback on a freed transport).
// Run by `make test-fuzz`.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <uv.h>

#include <dirent.h>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/handle.h"
#include "io/transport.h"

namespace {

[[noreturn]] void violated(const char* what, int line) {
  std::fprintf(stderr, "transport_fuzz: invariant violated (line %d): %s\n", line, what);
  std::abort();
}
#define CHECK(c)                      \
  do {                                \
    if (!(c)) violated(#c, __LINE__); \
  } while (0)

// Three byte streams with disjoint alphabets, so the end of a cancelled file
// (of unknown length) is seen where the next segment's bytes begin: file 0
// in 0x00-0x3f, file 1 in 0x40-0x7f, written output in 0x80-0xff. The
// peer's bytes can be anything.
uint8_t mix(uint64_t p, uint32_t salt) {
  uint64_t x = (p + salt) * 0x9E3779B97F4A7C15ULL;
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9ULL;
  x ^= x >> 32;
  return static_cast<uint8_t>(x);
}
uint8_t peer_byte(uint64_t p) { return mix(p, 1); }
uint8_t out_byte(uint64_t q) { return static_cast<uint8_t>(0x80 | (mix(q, 2) & 0x7f)); }
uint8_t file_byte(int id, int64_t off) {
  return static_cast<uint8_t>((id << 6) | (mix(static_cast<uint64_t>(off), 3 + id) & 0x3f));
}

constexpr int64_t kFileSize[2] = {300 * 1024 + 17, 180 * 1024 + 5};
int g_file_fd[2] = {-1, -1};
uv_loop_t g_loop;
int g_listen_fd = -1;
sockaddr_in g_listen_addr{};

int count_fds() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  while (::readdir(d) != nullptr) ++n;
  ::closedir(d);
  return n;
}

// The input, read from the front; zeros once it runs out.
struct Reader {
  const uint8_t* p;
  size_t n;
  bool more() const { return n > 0; }
  uint8_t u8() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  uint16_t u16() { return static_cast<uint16_t>(u8() | (u8() << 8)); }
  // A size spread over small, medium and large.
  size_t size() {
    uint8_t b = u8();
    if (b < 128) return b + 1u;
    if (b < 224) return static_cast<size_t>(b - 127) * 512;
    return static_cast<size_t>(b - 223) * 8192;
  }
};

enum Op : uint8_t {
  kPeerWrite,
  kPeerRead,
  kPeerHalfClose,
  kPeerReset,
  kUserWriteFlush,
  kUserWrite,  // corked: no flush
  kFlush,
  kConsume,
  kTakeInput,
  kReadingOn,
  kReadingOff,
  kReadNow,
  kSendFile,
  kCancelFile,
  kShutdown,
  kClose,
  kRunOnce,
  kRunSome,
  kDestroy,
  kDetachUser,
  kAttachUser,
  kTrim,
  kSweep,  // the runtime's exit sweep: release() on every Evo handle
  kOpCount
};

struct Segment {
  bool file;
  int id;         // file 0 or 1
  int64_t start;  // position in the output stream, or offset in the file
  int64_t limit;  // its length (a file: the region clipped to the file)
  bool flexible;  // a cancelled or failed file: any prefix of it
  int64_t got;
};

struct FileOp {
  int dup_fd;  // the descriptor handed over with owns_fd, or -1
  int done_calls = 0;
  bool pending = false;
  size_t seg;  // its segment, or SIZE_MAX when empty
  int64_t clipped;
};

struct Harness;

class User final : public evo::TransportUser {
 public:
  explicit User(Harness* h) : h_(h) {}
  void on_input() override;
  void on_output() override;
  void on_shutdown_done(int status) override;
  void on_transport_closed() override;
  void release_transport() override;

 private:
  Harness* h_;
};

struct Harness {
  User user{this};
  std::unique_ptr<evo::Transport> t;
  evo::UvStreamHandle* handle = nullptr;
  bool attached = false;  // user_ is &user
  int in_call = 0;        // inside a call the user made
  uint8_t reentrant = 0;  // what the user does from its callbacks

  // the peer
  int peer = -1;
  bool tcp = false;
  bool peer_shut_wr = false;
  bool peer_reset = false;
  bool peer_eof = false;
  uint64_t peer_written = 0;
  uint64_t peer_received = 0;

  // transport -> peer
  std::vector<Segment> segs;
  size_t seg_idx = 0;
  uint64_t out_pos = 0;  // bytes of written output so far
  int last_file_id = 1;
  std::vector<FileOp> files;
  bool shutdown_called = false;
  size_t segs_at_shutdown = 0;
  bool closed_ever = false;  // close(), destruction, or the handle gone
  bool shutdown_done = false;

  // peer -> transport
  uint64_t consumed = 0;
  uint64_t checked = 0;

  bool alive() const { return t != nullptr; }
  bool usable() const { return t != nullptr && !t->closed(); }

  // ---- input side
  void check_input() {
    if (!t) return;
    std::string_view in = t->input();
    CHECK(checked >= consumed);
    CHECK(consumed + in.size() <= peer_written);
    for (uint64_t pos = checked; pos < consumed + in.size(); ++pos) {
      CHECK(static_cast<uint8_t>(in[pos - consumed]) == peer_byte(pos));
    }
    checked = consumed + in.size();
    if (t->eof()) {
      CHECK(peer_shut_wr || peer_reset);
      if (peer_shut_wr && !peer_reset) CHECK(consumed + in.size() == peer_written);
    }
  }

  // ---- output side: every byte the peer reads
  void peer_got(const char* d, size_t n) {
    peer_received += n;
    for (size_t i = 0; i < n; ++i) {
      auto b = static_cast<uint8_t>(d[i]);
      for (;;) {
        CHECK(seg_idx < segs.size());  // a byte nobody wrote
        Segment& s = segs[seg_idx];
        if (s.got < s.limit) {
          uint8_t want =
              s.file ? file_byte(s.id, s.start + s.got) : out_byte(static_cast<uint64_t>(s.start + s.got));
          if (b == want) {
            ++s.got;
            break;
          }
          CHECK(s.flexible);  // a wrong byte, or bytes out of order
        }
        ++seg_idx;
      }
    }
  }

  void add_output(size_t n) {
    // Bytes handed over on a closed transport never go out: not expected.
    bool counts = usable();
    std::string& o = t->output();
    for (size_t i = 0; i < n; ++i) o.push_back(static_cast<char>(out_byte(out_pos + i)));
    if (!counts) {
      o.resize(o.size() - n);  // (and not kept: they would shift the stream)
      return;
    }
    // Bytes written after the shutdown start a segment of their own: those
    // before it must all arrive, these need not.
    bool after_shutdown_edge = shutdown_called && segs.size() == segs_at_shutdown;
    if (!segs.empty() && !segs.back().file && !after_shutdown_edge &&
        segs.back().start + segs.back().limit == static_cast<int64_t>(out_pos)) {
      segs.back().limit += static_cast<int64_t>(n);
    } else {
      segs.push_back(Segment{false, 0, static_cast<int64_t>(out_pos), static_cast<int64_t>(n), false, 0});
    }
    out_pos += n;
  }

  void file_done(size_t idx, int64_t result) {
    FileOp& f = files[idx];
    CHECK(f.pending);
    CHECK(f.done_calls == 0);
    ++f.done_calls;
    f.pending = false;
    if (f.dup_fd >= 0) {
      CHECK(::fcntl(f.dup_fd, F_GETFD) == -1 && errno == EBADF);  // owns_fd: closed before done
      f.dup_fd = -1;
    }
    settle_file(f, result);
  }

  void settle_file(FileOp& f, int64_t result) {
    if (result >= 0) {
      CHECK(result == f.clipped);
    }
    if (f.seg == SIZE_MAX) return;
    if (result < 0) segs[f.seg].flexible = true;
  }

  // ---- the peer
  void peer_write(size_t n) {
    if (peer < 0 || peer_shut_wr) return;
    std::string buf(n, '\0');
    for (size_t i = 0; i < n; ++i) buf[i] = static_cast<char>(peer_byte(peer_written + i));
    ssize_t w = ::send(peer, buf.data(), n, MSG_NOSIGNAL);
    if (w > 0) peer_written += static_cast<uint64_t>(w);
  }

  // Returns the bytes read (0 at the end or when nothing was there).
  size_t peer_read(size_t n) {
    if (peer < 0 || peer_eof) return 0;
    std::string buf(n, '\0');
    ssize_t r = ::recv(peer, buf.data(), n, 0);
    if (r > 0) {
      peer_got(buf.data(), static_cast<size_t>(r));
      return static_cast<size_t>(r);
    }
    if (r == 0) on_peer_eof();
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) peer_eof = true;  // reset by the transport's close
    return 0;
  }

  void on_peer_eof() {
    peer_eof = true;
    if (!closed_ever && !(t && t->closed())) {
      // Not closed: the end is the shutdown, after all that was written before it.
      CHECK(shutdown_called);
      if (t && t->write_error() == 0) {
        for (size_t i = 0; i < segs_at_shutdown; ++i) CHECK(segs[i].flexible || segs[i].got == segs[i].limit);
      }
    }
  }

  void peer_close() {
    if (peer < 0) return;
    if (tcp) {
      linger lg{1, 0};  // a reset: no TIME_WAIT left behind
      ::setsockopt(peer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    ::close(peer);
    peer = -1;
    peer_reset = true;
  }

  // ---- the transport
  void destroy() {
    if (!t) return;
    attached = false;
    closed_ever = true;
    ++in_call;
    t.reset();
    --in_call;
  }

  void run(int turns) {
    for (int i = 0; i < turns; ++i) uv_run(&g_loop, UV_RUN_NOWAIT);
    check_input();
  }
};

Harness* g_h = nullptr;

void User::on_input() {
  CHECK(h_->attached && h_->in_call == 0);
  h_->check_input();
  if ((h_->reentrant & 1) != 0 && h_->t->at_end()) {
    h_->closed_ever = true;
    ++h_->in_call;
    h_->t->close();
    --h_->in_call;
  }
  if ((h_->reentrant & 2) != 0 && h_->t->at_end()) h_->destroy();
}

void User::on_output() {
  CHECK(h_->attached && h_->in_call == 0);
  if ((h_->reentrant & 4) != 0 && h_->t->drained()) h_->destroy();
}

void User::on_shutdown_done(int status) {
  CHECK(h_->attached && h_->in_call == 0);
  CHECK(h_->shutdown_called);
  if (status == 0) h_->shutdown_done = true;
}

void User::on_transport_closed() {
  CHECK(h_->attached && h_->in_call == 0);
  h_->closed_ever = true;
  if ((h_->reentrant & 8) != 0) h_->destroy();  // the documented place to let go
}

void User::release_transport() {
  CHECK(h_->attached && h_->in_call == 0);
  h_->closed_ever = true;
  ++h_->in_call;
  h_->t->close();
  --h_->in_call;
}

void sweep_cb(uv_handle_t* h, void* /*arg*/) {
  evo::NativeHandle* n = evo::NativeHandle::from(h);
  if (n != nullptr && !n->closing()) n->release();
}

void leftover_cb(uv_handle_t* h, void* /*arg*/) {
  std::fprintf(stderr, "transport_fuzz: handle left open: type %d, closing %d\n", static_cast<int>(h->type),
               uv_is_closing(h));
  std::abort();
}

void set_bufsize(int fd, int opt, int size) {
  if (size > 0) ::setsockopt(fd, SOL_SOCKET, opt, &size, sizeof(size));
}

// A connected pair: [0] for the transport, [1] for the peer.
// The peer's buffer sizes are set before connect(): a TCP receive buffer
// shrunk on an open connection makes the kernel drop data it advertised room
// for, and stall on retransmission timeouts.
bool make_pair(bool tcp, int fds[2], int peer_rcvbuf, int peer_sndbuf) {
  if (!tcp) {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return false;
    set_bufsize(fds[1], SO_RCVBUF, peer_rcvbuf);
    set_bufsize(fds[1], SO_SNDBUF, peer_sndbuf);
    return true;
  }
  for (int attempt = 0; attempt < 100; ++attempt) {
    int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    set_bufsize(c, SO_RCVBUF, peer_rcvbuf);
    set_bufsize(c, SO_SNDBUF, peer_sndbuf);
    if (::connect(c, reinterpret_cast<sockaddr*>(&g_listen_addr), sizeof(g_listen_addr)) == 0) {
      int s = ::accept4(g_listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (s < 0) std::abort();
      fds[0] = s;
      fds[1] = c;
      return true;
    }
    ::close(c);
    ::usleep(1000);
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  ::signal(SIGPIPE, SIG_IGN);  // as the runtime does: a write to a closed socket returns EPIPE
  if (uv_loop_init(&g_loop) != 0) std::abort();
  // libuv opens a spare descriptor (for EMFILE) with the loop's first stream:
  // open it now, so each input ends with the descriptors it started with.
  static uv_pipe_t warm;
  uv_pipe_init(&g_loop, &warm, 0);
  uv_close(reinterpret_cast<uv_handle_t*>(&warm), nullptr);
  uv_run(&g_loop, UV_RUN_DEFAULT);
  // Two files written once, unlinked: their descriptors stay.
  for (int id = 0; id < 2; ++id) {
    char path[] = "/tmp/evo_transport_fuzz_XXXXXX";
    int fd = ::mkstemp(path);
    if (fd < 0) std::abort();
    ::unlink(path);
    std::string data(static_cast<size_t>(kFileSize[id]), '\0');
    for (int64_t i = 0; i < kFileSize[id]; ++i)
      data[static_cast<size_t>(i)] = static_cast<char>(file_byte(id, i));
    if (::pwrite(fd, data.data(), data.size(), 0) != static_cast<ssize_t>(data.size())) std::abort();
    g_file_fd[id] = fd;
  }
  g_listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_listen_addr.sin_family = AF_INET;
  g_listen_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(g_listen_addr);
  if (::bind(g_listen_fd, reinterpret_cast<sockaddr*>(&g_listen_addr), sizeof(g_listen_addr)) != 0 ||
      ::listen(g_listen_fd, 64) != 0 ||
      ::getsockname(g_listen_fd, reinterpret_cast<sockaddr*>(&g_listen_addr), &len) != 0) {
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const int kBufSizes[4] = {0, 4096, 16384, 65536};
  int fds_before = count_fds();
  Reader in{data, size};
  uint8_t config = in.u8();
  Harness h;
  g_h = &h;
  h.tcp = (config & 1) != 0;
  h.reentrant = in.u8();
  int fds[2];
  if (!make_pair(h.tcp, fds, kBufSizes[(config >> 3) & 3], kBufSizes[(config >> 5) & 3])) std::abort();
  set_bufsize(fds[0], SO_SNDBUF, kBufSizes[(config >> 1) & 3]);
  ::fcntl(fds[1], F_SETFL, O_NONBLOCK);
  h.peer = fds[1];

  int status = 0;
  auto kind = h.tcp ? evo::UvStreamHandle::Kind::Tcp : evo::UvStreamHandle::Kind::Pipe;
  auto owned = std::make_unique<evo::UvStreamHandle>(&g_loop, kind, &status);
  if (status != 0) std::abort();
  h.handle = evo::NativeHandle::release_to_loop(std::move(owned));
  status = h.tcp ? uv_tcp_open(h.handle->tcp(), fds[0]) : uv_pipe_open(h.handle->pipe(), fds[0]);
  if (status != 0) std::abort();
  h.t = std::make_unique<evo::Transport>(h.handle);
  h.t->set_user(&h.user);
  h.attached = true;
  if ((config & 0x80) != 0) h.t->set_reading(true);

  int ops = 0;
  while (in.more() && ops++ < 400) {
    auto op = static_cast<Op>(in.u8() % kOpCount);
    switch (op) {
      case kPeerWrite:
        h.peer_write(in.size());
        break;
      case kPeerRead:
        h.peer_read(in.size());
        break;
      case kPeerHalfClose:
        if (h.peer >= 0 && !h.peer_shut_wr) {
          ::shutdown(h.peer, SHUT_WR);
          h.peer_shut_wr = true;
        }
        break;
      case kPeerReset:
        h.peer_close();
        break;
      case kUserWriteFlush:
      case kUserWrite: {
        size_t n = in.size();
        if (!h.t) break;
        h.add_output(n);
        if (op == kUserWriteFlush) {
          ++h.in_call;
          h.t->flush();
          --h.in_call;
        }
        break;
      }
      case kFlush:
        if (!h.t) break;
        ++h.in_call;
        h.t->flush();
        --h.in_call;
        break;
      case kConsume: {
        size_t n = in.size();
        if (!h.t) break;
        h.check_input();
        n = std::min(n, h.t->buffered());
        ++h.in_call;
        h.t->consume(n);
        --h.in_call;
        h.consumed += n;
        h.check_input();
        break;
      }
      case kTakeInput:
        if (!h.t) break;
        h.check_input();
        h.consumed += h.t->take_input().size();
        h.check_input();
        break;
      case kReadingOn:
      case kReadingOff:
        if (!h.t) break;
        ++h.in_call;
        h.t->set_reading(op == kReadingOn);
        --h.in_call;
        break;
      case kReadNow:
        if (!h.t) break;
        ++h.in_call;
        h.t->read_now();
        --h.in_call;
        h.check_input();
        break;
      case kSendFile: {
        uint8_t b = in.u8();
        int id = b & 1;
        bool owns = (b & 2) != 0;
        int64_t offset = static_cast<int64_t>(in.u16()) * 5;
        int64_t length = static_cast<int64_t>(in.size()) + ((b & 4) != 0 ? kFileSize[id] / 2 : 0);
        // The callers' contract: one file at a time (Connection::send_file
        // may hand one to a closed transport).
        if (!h.t || h.t->file_in_flight()) break;
        if (!h.segs.empty() && h.segs.back().file) id = 1 - h.segs.back().id;  // neighbours differ
        int fd = g_file_fd[id];
        int dup_fd = -1;
        if (owns) {
          dup_fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
          fd = dup_fd;
        }
        FileOp f{dup_fd};
        f.clipped = std::max<int64_t>(0, std::min(length, kFileSize[id] - offset));
        f.seg = SIZE_MAX;
        if (f.clipped > 0 && h.usable()) {
          f.seg = h.segs.size();
          h.segs.push_back(Segment{true, id, offset, f.clipped, false, 0});
        }
        f.pending = true;
        size_t idx = h.files.size();
        h.files.push_back(f);
        ++h.in_call;
        int64_t r =
            h.t->send_file(fd, offset, length, owns, [idx](int64_t result) { g_h->file_done(idx, result); });
        --h.in_call;
        if (r != evo::Transport::kPending) {
          FileOp& fo = h.files[idx];
          CHECK(fo.done_calls == 0);  // done is not called when it finished now
          fo.pending = false;
          if (owns) {
            CHECK(::fcntl(dup_fd, F_GETFD) == -1 && errno == EBADF);
            fo.dup_fd = -1;
          }
          h.settle_file(fo, r);
        }
        break;
      }
      case kCancelFile:
        if (!h.t) break;
        ++h.in_call;
        h.t->cancel_file();
        --h.in_call;
        CHECK(!h.t->file_in_flight());
        break;
      case kShutdown:
        if (!h.t) break;
        if (!h.shutdown_called) {
          h.shutdown_called = true;
          h.segs_at_shutdown = h.segs.size();
        }
        ++h.in_call;
        h.t->shutdown();
        --h.in_call;
        break;
      case kClose:
        if (!h.t) break;
        h.closed_ever = true;
        ++h.in_call;
        h.t->close();
        --h.in_call;
        CHECK(h.t->closed() && !h.t->file_in_flight());
        break;
      case kRunOnce:
        h.run(1);
        break;
      case kRunSome:
        h.run(1 + in.u8() % 16);
        break;
      case kDestroy:
        h.destroy();
        break;
      case kDetachUser:
        if (!h.t) break;
        h.t->set_user(nullptr);
        h.attached = false;
        break;
      case kAttachUser:
        if (!h.t) break;
        h.t->set_user(&h.user);
        h.attached = true;
        break;
      case kTrim:
        if (!h.t) break;
        h.t->trim();
        h.check_input();
        break;
      case kSweep:
        if (h.t) h.closed_ever = true;
        uv_walk(&g_loop, sweep_cb, nullptr);
        break;
      case kOpCount:
        break;
    }
    if (h.t) {
      CHECK(h.t->pending() >= h.t->output().size());
      if (!h.t->write_in_flight()) CHECK(h.t->pending() == h.t->output().size());
      if (h.t->drained()) CHECK(h.t->pending() == 0);
    }
  }

  // The end: with the transport open and the peer reading everything, all
  // that was handed over arrives.
  if (h.usable() && h.t->write_error() == 0 && h.peer >= 0 && !h.peer_eof) {
    // Corked bytes go out (after a shutdown that happened: EPIPE, and the
    // checks below are skipped).
    ++h.in_call;
    h.t->flush();
    --h.in_call;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    // Done when all the socket took has arrived (a loopback TCP sender may
    // hold bytes until the window opens), and after a shutdown at the end.
    while (h.usable() && h.peer >= 0 && !h.peer_eof) {
      uv_run(&g_loop, UV_RUN_NOWAIT);
      size_t got = 0;
      while (size_t n = h.peer_read(256 * 1024)) got += n;
      if (!h.t || h.t->write_error() != 0) break;
      if (h.t->drained() && !h.t->write_in_flight() && h.peer_received == h.t->sent() && !h.shutdown_called)
        break;
      if (got == 0) {
        pollfd pfd{h.peer, POLLIN, 0};
        ::poll(&pfd, 1, 1);
      }
      if (std::chrono::steady_clock::now() > deadline) {
        std::fprintf(stderr,
                     "stalled: drained %d in flight %d pending %zu file %d sent %llu peer got %llu "
                     "error %d shutdown %d\n",
                     h.t->drained(), h.t->write_in_flight(), h.t->pending(), h.t->file_in_flight(),
                     static_cast<unsigned long long>(h.t->sent()),
                     static_cast<unsigned long long>(h.peer_received), h.t->write_error(), h.shutdown_called);
        for (const Segment& sg : h.segs) {
          std::fprintf(stderr, "  %s %d start %lld limit %lld got %lld%s\n", sg.file ? "file" : "out", sg.id,
                       static_cast<long long>(sg.start), static_cast<long long>(sg.limit),
                       static_cast<long long>(sg.got), sg.flexible ? " flexible" : "");
        }
        violated("the transport stalled", __LINE__);
      }
    }
    if (h.usable() && h.t->write_error() == 0 && h.peer >= 0) {
      CHECK(h.t->drained());
      CHECK(h.t->pending() == 0);
      for (const Segment& s : h.segs) CHECK(s.flexible || s.got == s.limit);
      CHECK(h.t->sent() == h.peer_received);
      if (h.shutdown_called) CHECK(h.peer_eof);
    }
  }

  // Close everything: the transport (its handle closes), then the peer.
  h.destroy();
  h.peer_close();
  for (int i = 0; uv_loop_alive(&g_loop) != 0; ++i) {
    CHECK(i < 100000);
    uv_run(&g_loop, UV_RUN_NOWAIT);
  }
  uv_walk(&g_loop, leftover_cb, nullptr);
  for (const FileOp& f : h.files) CHECK(!f.pending && f.dup_fd < 0);
  if (count_fds() != fds_before) {
    std::system(("ls -l /proc/" + std::to_string(::getpid()) + "/fd >&2").c_str());
    CHECK(count_fds() == fds_before);
  }
  g_h = nullptr;
  return 0;
}
