#include "io/workers.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "io/workers_proto.h"

namespace evo::workers {
namespace {

int g_id = 0;
int g_count = 0;
int g_fd = -1;
double g_grace = 10;
bool g_draining = false;
std::mutex g_ipc;  // one request and its reply at a time (task.work threads could listen too)
std::map<const void*, std::function<void()>>& hooks() {
  static std::map<const void*, std::function<void()>> h;
  return h;
}

int send_request(const Request& req) {
  for (;;) {
    ssize_t n = ::send(g_fd, &req, sizeof(req), MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(sizeof(req))) return 0;
    if (n < 0 && errno == EINTR) continue;
    return n < 0 ? uv_translate_sys_error(errno) : UV_EIO;
  }
}

// The reply and the descriptor it carries (-1 if none).
int receive_reply(int* fd) {
  Reply reply{};
  iovec iov{&reply, sizeof(reply)};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n = -1;
  do {
    n = ::recvmsg(g_fd, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return uv_translate_sys_error(errno);
  if (n != static_cast<ssize_t>(sizeof(reply))) return UV_EPIPE;  // the supervisor is gone
  *fd = -1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) std::memcpy(fd, CMSG_DATA(c), sizeof(int));
  }
  if (reply.status == 0 && *fd < 0) return UV_EIO;
  return reply.status;
}

}  // namespace

bool init_from_env() {
  const char* v = std::getenv("EVO_WORKER");
  if (v == nullptr) return false;
  int id = 0;
  int count = 0;
  int fd = -1;
  double grace = 10;
  bool ok = std::sscanf(v, "%d,%d,%d,%lf", &id, &count, &fd, &grace) == 4 && id >= 1 && id <= count &&
            fd >= 0 && fcntl(fd, F_GETFD) != -1;
  unsetenv("EVO_WORKER");  // a child of a worker (process.spawn of evo) is an ordinary run
  if (!ok) return false;
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  // The supervisor gone (even by kill -9): stop gracefully too, rather than
  // serve on unsupervised. Its pid is our parent's; if it already went, we
  // were re-parented before prctl and stop now.
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  g_id = id;
  g_count = count;
  g_fd = fd;
  g_grace = grace > 0 ? grace : 10;
  if (getppid() == 1) raise(SIGTERM);
  return true;
}

bool active() { return g_fd >= 0; }
int id() { return g_id; }
int count() { return g_count; }
double grace() { return g_grace; }

int listen(const sockaddr* addr, socklen_t len, const char* path, int backlog, int* fd) {
  Request req{};
  req.backlog = backlog;
  if (path != nullptr) {
    if (std::strlen(path) >= sizeof(req.path)) return UV_ENAMETOOLONG;
    req.kind = MsgKind::ListenPipe;
    std::strncpy(req.path, path, sizeof(req.path) - 1);
  } else {
    if (len > sizeof(req.addr)) return UV_EINVAL;
    req.kind = MsgKind::ListenTcp;
    req.addr_len = len;
    std::memcpy(&req.addr, addr, len);
  }
  std::lock_guard<std::mutex> lock(g_ipc);
  int rc = send_request(req);
  return rc != 0 ? rc : receive_reply(fd);
}

void started() {
  if (!active()) return;
  Request req{};
  req.kind = MsgKind::Started;
  std::lock_guard<std::mutex> lock(g_ipc);
  send_request(req);
}

void on_drain(const void* key, std::function<void()> drain) { hooks()[key] = std::move(drain); }
void forget(const void* key) { hooks().erase(key); }

bool drain_all() {
  if (g_draining) return false;
  g_draining = true;
  // A hook may close things that forget() their own keys: take them all first.
  std::vector<std::function<void()>> todo;
  for (auto& [key, fn] : hooks()) todo.push_back(std::move(fn));
  hooks().clear();
  for (auto& fn : todo) fn();
  return true;
}

bool draining() { return g_draining; }

}  // namespace evo::workers
