// The blocking Io: plain system calls, poll() for deadlines. Every call
// finishes before it returns.
#include "io/blocking_io.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "io/fs_ops.h"
#include "io/io.h"
#include "io/process.h"
#include "io/stdio.h"
#include "io/transport.h"
#include "io/udp.h"
#include "io/workers.h"
#include "lua/interrupt.h"

namespace evo {

namespace blocking {
namespace {

int sys_error() { return uv_translate_sys_error(errno); }

int timeout_ms(double seconds) { return seconds > 0 ? static_cast<int>(std::llround(seconds * 1000.0)) : -1; }

void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// One address: 0 and *fd, or an error.
int connect_one(const addrinfo* ai, double timeout, int* fd_out) {
  int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
  if (fd < 0) return sys_error();
  int r = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
  if (r != 0 && errno == EINPROGRESS) {
    if (!wait_fd(fd, true, timeout)) {
      ::close(fd);
      return UV_ETIMEDOUT;
    }
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    r = err == 0 ? 0 : -1;
    errno = err;
  }
  if (r != 0) {
    int err = sys_error();
    ::close(fd);
    return err;
  }
  set_nodelay(fd);
  *fd_out = fd;
  return 0;
}

}  // namespace

bool wait_fd(int fd, bool writable, double timeout) {
  for (;;) {
    pollfd pfd{fd, static_cast<short>(writable ? POLLOUT : POLLIN), 0};
    int r = ::poll(&pfd, 1, timeout_ms(timeout));
    if (r < 0 && errno == EINTR) continue;
    return r > 0;
  }
}

int connect_tcp(const std::string& host, int port, double timeout, int* fd) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string port_s = std::to_string(port);
  int rc = getaddrinfo(host.c_str(), port_s.c_str(), &hints, &res);
  if (rc != 0) return rc == EAI_NONAME ? UV_EAI_NONAME : UV_EAI_FAIL;
  int last = UV_ECONNREFUSED;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    last = connect_one(ai, timeout, fd);
    if (last == 0 || last == UV_ETIMEDOUT) break;
  }
  freeaddrinfo(res);
  return last;
}

int connect_pipe(const std::string& path, int* fd_out) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return UV_ENAMETOOLONG;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return sys_error();
  // A Unix-socket connect does not wait on the network: no timeout.
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = sys_error();
    ::close(fd);
    return err;
  }
  *fd_out = fd;
  return 0;
}

int listen(const sockaddr* addr, socklen_t len, const char* path, int backlog, int* fd_out) {
  // Under `evo --workers`, the supervisor owns every listening socket (the
  // one place both Io modes ask: listen_on_loop comes here too).
  if (workers::active()) return workers::listen(addr, len, path, backlog, fd_out);
  sockaddr_un un{};
  if (path != nullptr) {
    un.sun_family = AF_UNIX;
    if (std::strlen(path) >= sizeof(un.sun_path)) return UV_ENAMETOOLONG;
    std::strncpy(un.sun_path, path, sizeof(un.sun_path) - 1);
    addr = reinterpret_cast<sockaddr*>(&un);
    len = sizeof(un);
  }
  int fd = ::socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return sys_error();
  int one = 1;
  if (addr->sa_family != AF_UNIX) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, addr, len) != 0 || ::listen(fd, backlog) != 0) {
    int err = sys_error();
    ::close(fd);
    return err;
  }
  *fd_out = fd;
  return 0;
}

// A worker told to stop takes no more connections: its accept gives up
// (UV_ECANCELED) rather than wait on, so the script's accept loop ends.
bool stopping_worker() { return workers::active() && interrupt::stop_requested(); }

int accept(int listen_fd, bool tcp, double timeout, int* client) {
  for (;;) {
    if (stopping_worker()) return UV_ECANCELED;
    pollfd pfd{listen_fd, POLLIN, 0};
    int r = ::poll(&pfd, 1, timeout_ms(timeout));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return UV_ETIMEDOUT;
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (fd < 0) return sys_error();
    if (tcp) set_nodelay(fd);
    *client = fd;
    return 0;
  }
}

}  // namespace blocking

namespace {

// The operations' results as IoResults: a timeout is Evo's "Timeout".
IoResult connected(int status, int fd, const std::string& where, const char* timeout_message) {
  if (status == UV_ETIMEDOUT) return IoResult::failed("Timeout", std::string(timeout_message) + where);
  if (status != 0) return IoResult::failed(status, where);
  IoResult r;
  r.transport = std::make_unique<Transport>(fd);
  return r;
}

class BlockingListener final : public IoListener {
 public:
  BlockingListener(int fd, bool tcp, std::string path) : fd_(fd), tcp_(tcp), path_(std::move(path)) {}
  ~BlockingListener() override { close(); }

  IoOp* accept(bool /*wait*/, double timeout, IoDone done) override {
    if (fd_ < 0) {
      done(IoResult::failed("Closed", "the server is closed"));
      return nullptr;
    }
    int client = -1;
    int status = blocking::accept(fd_, tcp_, timeout, &client);
    if (status == UV_ECANCELED) {  // a worker's graceful stop
      close();
      done(IoResult::failed("Closed", "the server is closed"));
      return nullptr;
    }
    done(connected(status, client, "", "no connection within the timeout"));
    return nullptr;
  }
  void accept_each(std::function<void(IoResult)> /*each*/) override {}  // nothing arrives by itself here
  [[nodiscard]] int fd() const override { return fd_; }
  [[nodiscard]] bool accepting() const override { return false; }  // an accept finishes inside its call
  void on_release(std::function<void()> /*release*/) override {}   // no handle: nothing to sweep
  void close() override {
    if (fd_ < 0) return;
    ::close(fd_);
    fd_ = -1;
    if (!path_.empty()) ::unlink(path_.c_str());  // as libuv does for a bound pipe
  }

 private:
  int fd_;
  bool tcp_;
  std::string path_;  // a Unix socket's file, removed at close
};

class BlockingIo final : public Io {
 public:
  [[nodiscard]] const char* name() const override { return "blocking"; }

  std::unique_ptr<Transport> adopt_stdio(int fd, int* shared_flags) override {
    *shared_flags = -1;
    return stdio_plain(fd);
  }

  IoOp* connect_tcp(const std::string& host, int port, double timeout, bool /*wait*/, IoDone done) override {
    int fd = -1;
    int status = blocking::connect_tcp(host, port, timeout, &fd);
    done(connected(status, fd, host + ":" + std::to_string(port), "could not connect within the timeout: "));
    return nullptr;
  }

  IoOp* connect_pipe(const std::string& path, bool /*wait*/, IoDone done) override {
    int fd = -1;
    int status = blocking::connect_pipe(path, &fd);
    done(connected(status, fd, path, ""));
    return nullptr;
  }

  std::unique_ptr<IoListener> listen(const ListenSpec& spec, int* status) override {
    int fd = -1;
    *status = blocking::listen(spec.addr, spec.addr_len, spec.path, spec.backlog, &fd);
    if (*status != 0) return nullptr;
    // A worker's Unix socket is the supervisor's: it removes the file.
    bool own_path = spec.path != nullptr && !workers::active();
    return std::make_unique<BlockingListener>(fd, spec.path == nullptr, own_path ? spec.path : "");
  }

  std::unique_ptr<IoUdp> udp() override { return make_blocking_udp(); }
  Spawned spawn(const SpawnSpec& spec) override { return spawn_blocking(spec); }

  IoOp* work(std::function<void()> job, bool /*wait*/, std::function<void()> done) override {
    job();
    done();
    return nullptr;
  }

  IoOp* fs(FsRequest req, bool /*wait*/, std::function<void(FsResult)> done) override {
    done(fs_here(nullptr, req));  // libuv's synchronous form needs no loop
    return nullptr;
  }

  IoOp* sleep(double seconds, bool /*wait*/, IoWake done) override {
    sleep_here(seconds);
    done();
    return nullptr;
  }
};

}  // namespace

std::unique_ptr<Io> make_blocking_io() { return std::make_unique<BlockingIo>(); }

}  // namespace evo
