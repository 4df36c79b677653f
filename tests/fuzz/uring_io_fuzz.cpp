// libFuzzer target: the uring Io (src/io/uring_io.cpp, src/io/uring_ring.cpp)
// driven by random sequences of submissions, cancels and completions.
//
// Per input: a libuv loop and a uring Io on it; a few temporary files; a few
// socket pairs, one end a Transport — over a libuv handle (it receives,
// sends and half-closes through the ring) or ring-only (no libuv handle:
// closed on the ring too) — the other a plain non-blocking descriptor the
// input drives as the peer; a listening Unix socket that connects on the
// ring make more pairs. Each input byte picks an operation: a whole-file
// job (read, write, append), a timer (Io::sleep), a file-handle op (Io::fs:
// open, read, write, fstat, fsync, stat, lstat, close), a cancel of a random
// job or connect in flight, a connect (to the listener, or to a missing
// path), a transport write + flush, reading on/off, a shutdown, a close,
// the peer reading or writing or closing, one turn of the loop.
// Invariants, checked with abort():
//  - a file job, a timer, a file-handle op or a connect reports exactly once
//    when not cancelled, never after its cancel (a timer that fired first
//    included); a read gives only bytes some write put there (or an error);
//    a connect to a missing path fails with ENOENT;
//  - the bytes a peer reads are a prefix of the bytes written to its
//    transport, in order; the bytes a transport's user sees are a prefix of
//    what its peer wrote, in order;
//  - the user is never called back after close;
//  - at the end (every transport closed, the loop run until nothing is in
//    flight, the Io destroyed) every job not cancelled has reported, and
//    nothing leaks (LSan) or is touched after free (ASan): the ring frees
//    its operations only after the kernel's last completion.
// Skips quietly (returns) on a kernel without io_uring.
// Run by `make test-fuzz`.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core/handle.h"
#include "core/loop.h"
#include "io/io.h"
#include "io/transport.h"
#include "io/uring_ring.h"

namespace {

[[noreturn]] void violated(const char* what, int line) {
  std::fprintf(stderr, "uring_io_fuzz: invariant violated (line %d): %s\n", line, what);
  std::abort();
}
#define CHECK(c)                      \
  do {                                \
    if (!(c)) violated(#c, __LINE__); \
  } while (0)

struct Job {
  evo::IoOp* op = nullptr;
  bool cancelled = false;
  int reports = 0;
  int file = 0;
};

// One side of a socket pair: the transport, what its user saw, its peer.
struct Pair final : evo::TransportUser {
  std::unique_ptr<evo::Transport> t;
  int peer = -1;
  std::string written;    // handed to the transport, in order
  std::string peer_got;   // read by the peer
  std::string peer_sent;  // written by the peer
  std::string user_got;   // consumed from the transport's input
  bool closed = false;

  void on_input() override {
    CHECK(!closed);
    std::string_view in = t->input();
    user_got.append(in);
    t->consume(in.size());
    CHECK(peer_sent.compare(0, user_got.size(), user_got) == 0);
  }
  void on_output() override { CHECK(!closed); }
  void on_shutdown_done(int /*status*/) override { CHECK(!closed); }
  void release_transport() override { close(); }
  void close() {
    if (closed) return;
    closed = true;
    t->close();
  }
  void peer_read() {
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(peer, buf, sizeof(buf));
      if (n <= 0) break;
      peer_got.append(buf, static_cast<size_t>(n));
    }
    CHECK(written.compare(0, peer_got.size(), peer_got) == 0);
  }
};

struct Harness {
  uv_loop_t loop{};
  std::unique_ptr<evo::Io> io;
  std::vector<std::unique_ptr<Job>> jobs;
  std::vector<std::unique_ptr<Job>> connects;
  std::vector<std::unique_ptr<Pair>> pairs;
  std::string dir;
  int listener = -1;  // a Unix socket the connects reach (accepted by hand)

  void listen() {
    listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(listener >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string p = dir + "/l.sock";
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", p.c_str());
    CHECK(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    CHECK(::listen(listener, 64) == 0);
  }

  void add_pair(std::unique_ptr<evo::Transport> t, int peer) {
    auto p = std::make_unique<Pair>();
    p->t = std::move(t);
    p->t->set_user(p.get());
    p->peer = peer;
    pairs.push_back(std::move(p));
  }

  // A connect on the ring: to the listener (the pair's peer is accepted
  // here once it reports), or to a path with nothing there.
  void connect(uint8_t arg) {
    bool missing = arg % 4 == 0;
    auto job = std::make_unique<Job>();
    Job* j = job.get();
    connects.push_back(std::move(job));
    std::string path = dir + (missing ? "/none.sock" : "/l.sock");
    j->op = io->connect_pipe(path, true, [this, j, missing](evo::IoResult r) {
      CHECK(!j->cancelled);
      ++j->reports;
      CHECK(j->reports == 1);
      j->op = nullptr;
      if (missing) {
        CHECK(!r.ok() && r.status == UV_ENOENT);
        return;
      }
      if (!r.ok()) return;  // (a full backlog)
      int peer = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (peer < 0) return;  // the transport closes with r
      if (pairs.size() >= 8) {
        ::close(peer);
        return;
      }
      add_pair(std::move(r.transport), peer);
    });
  }

  void cancel_connect(uint8_t pick) {
    if (connects.empty()) return;
    Job* j = connects[pick % connects.size()].get();
    if (j->op == nullptr || j->reports > 0 || j->cancelled) return;
    j->cancelled = true;
    j->op->cancel();
  }

  std::string path(int f) const { return dir + "/f" + std::to_string(f); }

  void file_job(const uint8_t* d, size_t n, size_t* i) {
    int f = (*i < n ? d[(*i)++] : 0) % 3;
    auto kind = static_cast<evo::FileOp>((*i < n ? d[(*i)++] : 0) % 3);
    size_t len = (*i < n ? d[(*i)++] : 0) * 97;
    std::string data(len, static_cast<char>('a' + f));
    auto job = std::make_unique<Job>();
    Job* j = job.get();
    j->file = f;
    char letter = static_cast<char>('a' + f);
    j->op = io->file(kind, path(f), data, true, [j, kind, letter](evo::FileResult r) {
      CHECK(!j->cancelled);
      ++j->reports;
      CHECK(j->reports == 1);
      // Jobs on one file race (a read may meet a write half done): only
      // bytes some write put there.
      if (kind == evo::FileOp::Read && r.ok()) CHECK(r.data.find_first_not_of(letter) == std::string::npos);
    });
    jobs.push_back(std::move(job));
  }

  // ---- timers and file handles (Io::sleep, Io::fs)
  struct OpenFd {
    int fd;
    int file;
  };
  std::vector<OpenFd> fds;  // from completed opens, no close submitted yet

  static void woke(void* arg, uint32_t /*id*/) {
    auto* j = static_cast<Job*>(arg);
    CHECK(!j->cancelled);
    ++j->reports;
    CHECK(j->reports == 1);
  }

  void timer_job(uint8_t a) {
    auto job = std::make_unique<Job>();
    Job* j = job.get();
    j->op = io->sleep(static_cast<double>(a % 5) * 0.001, true, evo::IoWake{woke, j, 0});
    CHECK(j->op != nullptr);
    jobs.push_back(std::move(job));
  }

  void handle_job(uint8_t a, uint8_t b) {
    evo::FsRequest r;
    int f = b % 3;
    auto pick = [&]() -> const OpenFd* { return fds.empty() ? nullptr : &fds[b % fds.size()]; };
    switch (a % 6) {
      case 0:
        r.op = evo::FsOp::Open;
        r.path = path(f);
        r.flags = O_RDWR | O_CREAT;
        r.mode = 0600;
        break;
      case 1:
      case 2: {
        const OpenFd* o = pick();
        if (o == nullptr) return;
        r.op = a % 6 == 1 ? evo::FsOp::Read : evo::FsOp::Write;
        r.fd = o->fd;
        f = o->file;
        r.length = size_t{b} * 11 + 1;
        r.offset = b % 4 == 0 ? -1 : 0;
        // a file holds only its own letter (the whole-file reads check it)
        if (r.op == evo::FsOp::Write) r.data.assign(size_t{b} * 7 + 1, static_cast<char>('a' + f));
        break;
      }
      case 3: {
        const OpenFd* o = pick();
        if (o == nullptr) return;
        r.op = b % 2 == 0 ? evo::FsOp::Fstat : evo::FsOp::Fsync;
        r.fd = o->fd;
        break;
      }
      case 4:
        r.op = b % 2 == 0 ? evo::FsOp::Stat : evo::FsOp::Lstat;
        r.path = b % 3 == 0 ? dir + "/missing" : path(f);
        break;
      case 5: {
        const OpenFd* o = pick();
        if (o == nullptr) return;
        r.op = evo::FsOp::Close;
        r.fd = o->fd;
        fds.erase(fds.begin() + (o - fds.data()));
        break;
      }
    }
    auto job = std::make_unique<Job>();
    Job* j = job.get();
    j->file = f;
    evo::FsOp op = r.op;
    char letter = static_cast<char>('a' + f);
    j->op = io->fs(std::move(r), true, [this, j, op, f, letter](evo::FsResult res) {
      CHECK(!j->cancelled);
      ++j->reports;
      CHECK(j->reports == 1);
      if (op == evo::FsOp::Open && res.ok()) fds.push_back({static_cast<int>(res.value), f});
      if (op == evo::FsOp::Read && res.ok()) CHECK(res.data.find_first_not_of(letter) == std::string::npos);
    });
    CHECK(j->op != nullptr);
    jobs.push_back(std::move(job));
  }

  void cancel_job(uint8_t pick) {
    if (jobs.empty()) return;
    Job* j = jobs[pick % jobs.size()].get();
    if (j->op == nullptr || j->reports > 0 || j->cancelled) return;
    j->cancelled = true;
    j->op->cancel();
  }

  void new_pair(bool ring_only) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) return;
    int small = 4096;
    ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    if (ring_only) {
      std::unique_ptr<evo::Transport> t = evo::Transport::on_ring(&loop, sv[0]);
      CHECK(t != nullptr);
      return add_pair(std::move(t), sv[1]);
    }
    int status = 0;
    auto h = std::make_unique<evo::UvStreamHandle>(&loop, evo::UvStreamHandle::Kind::Pipe, &status);
    CHECK(status == 0);
    evo::UvStreamHandle* handle = evo::NativeHandle::release_to_loop(std::move(h));
    CHECK(uv_pipe_open(handle->pipe(), sv[0]) == 0);
    auto p = std::make_unique<Pair>();
    p->t = std::make_unique<evo::Transport>(handle);
    p->t->set_user(p.get());
    p->peer = sv[1];
    pairs.push_back(std::move(p));
  }

  void pair_op(uint8_t what, uint8_t pick, uint8_t arg) {
    if (pairs.empty()) return;
    Pair& p = *pairs[pick % pairs.size()];
    switch (what % 7) {
      case 0:
        if (p.closed || p.t->write_error() != 0) return;
        {
          std::string bytes(size_t{arg} * 61 + 1, static_cast<char>('A' + arg % 26));
          p.t->write(bytes);
          p.written += bytes;
          p.t->flush();
        }
        return;
      case 1:
        if (!p.closed) p.t->set_reading(arg % 2 == 0);
        return;
      case 2:
        if (!p.closed && p.t->write_error() == 0) p.t->shutdown();
        return;
      case 3:
        p.close();
        return;
      case 4:
        p.peer_read();
        return;
      case 5: {
        std::string bytes(size_t{arg} * 13 + 1, static_cast<char>('0' + arg % 10));
        ssize_t n = ::write(p.peer, bytes.data(), bytes.size());
        if (n > 0) p.peer_sent.append(bytes, 0, static_cast<size_t>(n));
        return;
      }
      case 6:
        // A caller that cannot wait reads now: the receive in the kernel
        // is settled first (cancelled and waited for), bytes stay in order.
        if (!p.closed && p.t->read_now()) {
          std::string_view in = p.t->input();
          p.user_got.append(in);
          p.t->consume(in.size());
          CHECK(p.peer_sent.compare(0, p.user_got.size(), p.user_got) == 0);
        }
        return;
    }
  }
};

}  // namespace

// A write to a socket whose peer the input closed fails with EPIPE, as in
// evo (main.cpp ignores SIGPIPE), instead of killing the fuzzer.
extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  signal(SIGPIPE, SIG_IGN);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool usable = evo::uring::probe().empty();
  if (!usable) return 0;
  Harness h;
  CHECK(uv_loop_init(&h.loop) == 0);
  std::string why;
  h.io = evo::make_uring_io(&h.loop, &why);
  CHECK(h.io != nullptr);
  char tmpl[] = "/tmp/evo-uring-fuzz-XXXXXX";
  CHECK(::mkdtemp(tmpl) != nullptr);
  h.dir = tmpl;
  h.listen();

  size_t i = 0;
  int steps = 0;
  while (i < size && steps++ < 200) {
    uint8_t op = data[i++];
    uint8_t a = i < size ? data[i] : 0;
    uint8_t b = i + 1 < size ? data[i + 1] : 0;
    switch (op % 8) {
      case 0:
        h.file_job(data, size, &i);
        break;
      case 1:
        h.cancel_job(a);
        i += 1;
        break;
      case 2:
        if (h.pairs.size() < 4) h.new_pair(op / 6 % 2 == 1);
        if (op / 6 % 4 == 2) h.connect(a);
        if (op / 6 % 4 == 3) h.cancel_connect(a);
        break;
      case 3:
        h.pair_op(op / 6, a, b);
        i += 2;
        break;
      case 4:
      case 5:
        evo::run_loop(&h.loop, UV_RUN_NOWAIT);
        break;
      case 6:
        h.timer_job(a);
        i += 1;
        break;
      case 7:
        h.handle_job(a, b);
        i += 2;
        break;
    }
  }

  // The end: every transport closed (peers read what came), every job in
  // flight run to its report, then the Io gone with the ring drained.
  for (auto& p : h.pairs) p->close();
  for (int spin = 0; spin < 2000; ++spin) {
    bool waiting = false;
    for (auto& j : h.jobs) waiting = waiting || (!j->cancelled && j->reports == 0);
    for (auto& j : h.connects) waiting = waiting || (!j->cancelled && j->reports == 0);
    if (!waiting) break;
    evo::run_loop(&h.loop, UV_RUN_ONCE);
  }
  for (auto& j : h.jobs) CHECK(j->cancelled ? j->reports == 0 : j->reports == 1);
  for (auto& j : h.connects) CHECK(j->cancelled ? j->reports == 0 : j->reports == 1);
  for (const auto& o : h.fds) ::close(o.fd);
  for (auto& p : h.pairs) p->close();  // (pairs a connect made at the end)
  evo::run_loop(&h.loop, UV_RUN_NOWAIT);
  for (auto& p : h.pairs) {
    p->peer_read();
    ::close(p->peer);
  }
  h.pairs.clear();
  h.io.reset();
  evo::run_loop(&h.loop, UV_RUN_NOWAIT);
  uv_walk(
      &h.loop,
      [](uv_handle_t* handle, void*) {
        if (uv_is_closing(handle) == 0) uv_close(handle, nullptr);
      },
      nullptr);
  evo::run_loop(&h.loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&h.loop) == 0);
  for (int f = 0; f < 3; ++f) ::unlink(h.path(f).c_str());
  ::close(h.listener);
  ::unlink((h.dir + "/l.sock").c_str());
  ::rmdir(h.dir.c_str());
  return 0;
}
