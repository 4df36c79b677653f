// The supervisor of `evo --workers N` (docs/workers.md has the model).
//
// A native process on a libuv loop of its own (no Lua state, except the
// optional supervisor.lua hook). It starts N workers — this executable again,
// with the same arguments and EVO_WORKER="slot,N,3,grace" — each with one end
// of a SOCK_SEQPACKET socketpair as descriptor 3, and owns every listening
// socket they use:
//
//   - a worker's TCP listen asks for the socket of its slot for that
//     address: one SO_REUSEPORT socket per slot (the kernel spreads new
//     connections over the slots), made at the first request and kept here;
//   - a Unix-socket path is one socket shared by every slot.
//
// Since the supervisor keeps a copy of every socket, a worker closing its
// listener (a graceful stop, a crash) never resets the connections queued
// on it: they wait for the slot's next worker. With plain per-process
// SO_REUSEPORT sockets, closing one would reset its queue (Linux migrates
// it only with the net.ipv4.tcp_migrate_req sysctl).
//
// Signals: SIGHUP is a rolling reload (slot by slot: a new worker starts;
// once it has listened on every address the old one had, the old one is
// told to drain); SIGTERM and SIGINT stop every worker gracefully (a second
// one kills them). A worker that dies is restarted with exponential backoff;
// five quick deaths in a row are a crash loop, reported, and the slot stays
// down.
#include "cli/supervisor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <lua.hpp>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/handle.h"
#include "io/workers.h"
#include "io/workers_proto.h"
#include "lua/interrupt.h"
#include "lua/runtime.h"

extern char** environ;

namespace evo::supervisor {
namespace {

using workers::MsgKind;
using workers::Reply;
using workers::Request;

constexpr uint64_t kQuickDeathMs = 5000;   // a worker that dies sooner died "quickly"
constexpr int kCrashLoop = 5;              // quick deaths in a row: a crash loop
constexpr uint64_t kFirstBackoffMs = 100;  // then 200, 400, 800
constexpr uint64_t kReadyTimeoutMs = 10000;

void say(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void say(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fputs("evo: ", stderr);
  std::vfprintf(stderr, fmt, ap);
  std::fputc('\n', stderr);
  va_end(ap);
}

std::string describe_exit(int64_t status, int signal) {
  if (signal != 0) return std::string("was killed by signal ") + std::to_string(signal);
  return "exited with status " + std::to_string(status);
}

// The listening sockets of one address: one per slot (TCP), or one shared
// by every slot (a Unix path: fds[0]).
struct Group {
  bool pipe = false;
  std::string path;
  sockaddr_storage addr{};
  socklen_t len = 0;
  std::vector<int> fds;
};

class Supervisor;

struct Worker {
  Supervisor* sup = nullptr;
  int slot = 0;  // 1..N
  int pid = 0;
  int ipc = -1;
  uv_process_t proc{};
  uv_poll_t poll{};
  int open_handles = 0;
  uint64_t born = 0;
  bool started = false;   // its main chunk has run
  bool stopping = false;  // told to drain
  bool exited = false;
  std::set<std::string> keys;             // the addresses it listens on
  std::map<std::string, int> zero_count;  // port-0 listens so far, per host
};

struct Slot {
  Supervisor* sup = nullptr;
  Worker* current = nullptr;
  Worker* next = nullptr;  // its replacement during a reload, until ready
  int quick_deaths = 0;
  bool done = false;     // exited with status 0 by itself: not restarted
  bool crashed = false;  // crash loop: not restarted
  uv_timer_t restart{};
  bool restart_pending = false;
};

class Supervisor {
 public:
  explicit Supervisor(const Options& o) : opt_(o) {}
  int run();

  // libuv callbacks
  void on_exit(Worker* w, int64_t status, int signal);
  void on_ipc(Worker* w);
  void on_signal(int signum);
  void on_restart_timer(Slot* s);
  void on_ready_timeout();
  void on_kill_timer();
  void handle_closed(Worker* w);

 private:
  Worker* spawn(int slot, const char* reason);
  void answer_listen(Worker* w, const Request& req);
  int make_socket(Group& g, int slot, int backlog, int* fd);
  void reply(Worker* w, int status, int fd);
  void check_ready(Worker* w);
  void promote(Slot& s);
  void reload_step();
  void start_reload();
  void stop_all(int signum);
  void schedule_restart(Slot& s, Worker* w, int64_t status, int signal);
  void close_slot_sockets(int slot);
  void close_worker_handles(Worker* w);
  void maybe_finish();
  void finish(int code);
  int live_workers() const;
  void load_hook();
  void emit(const char* name, Worker* w, const char* reason, int64_t status = -1, int signal = 0);

  Options opt_;
  uv_loop_t loop_{};
  std::string exe_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::list<std::unique_ptr<Worker>> workers_;
  std::map<std::string, Group> groups_;
  uv_signal_t signals_[3]{};
  uv_timer_t ready_timer_{};
  uv_timer_t kill_timer_{};
  int reload_slot_ = 0;  // the slot being reloaded (1..N), 0: none
  bool reload_again_ = false;
  int stop_signal_ = 0;
  bool finished_ = false;
  int exit_code_ = 0;
  lua_State* hook_ = nullptr;
};

Supervisor* from_handle(uv_handle_t* h) { return static_cast<Supervisor*>(h->data); }

// ---------------------------------------------------------------- workers

Worker* Supervisor::spawn(int slot, const char* reason) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    say("cannot start worker %d: socketpair: %s", slot, std::strerror(errno));
    return nullptr;
  }
  std::vector<std::string> env_text;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "EVO_WORKER=", 11) != 0) env_text.emplace_back(*e);
  }
  char spec[96];
  std::snprintf(spec, sizeof(spec), "EVO_WORKER=%d,%d,3,%g", slot, opt_.workers, opt_.grace);
  env_text.emplace_back(spec);
  std::vector<char*> env;
  for (auto& e : env_text) env.push_back(e.data());
  env.push_back(nullptr);
  std::vector<std::string> argv_text = opt_.argv;
  std::vector<char*> args;
  for (auto& a : argv_text) args.push_back(a.data());
  args.push_back(nullptr);

  auto w = std::make_unique<Worker>();
  w->sup = this;
  w->slot = slot;
  uv_stdio_container_t stdio[4];
  for (int i = 0; i < 3; ++i) {
    stdio[i].flags = UV_INHERIT_FD;
    stdio[i].data.fd = i;
  }
  stdio[3].flags = UV_INHERIT_FD;
  stdio[3].data.fd = sv[1];
  uv_process_options_t po{};
  po.file = exe_.c_str();
  po.args = args.data();
  po.env = env.data();
  po.stdio = stdio;
  po.stdio_count = 4;
  // A session of its own: a terminal's Ctrl-C reaches the supervisor only,
  // which stops the workers once, gracefully (PR_SET_PDEATHSIG in the worker
  // covers a supervisor that dies).
  po.flags = UV_PROCESS_DETACHED;
  po.exit_cb = [](uv_process_t* p, int64_t status, int signal) {
    auto* wk = static_cast<Worker*>(p->data);
    wk->sup->on_exit(wk, status, signal);
  };
  w->proc.data = w.get();
  int rc = uv_spawn(&loop_, &w->proc, &po);
  ::close(sv[1]);
  if (rc != 0) {
    say("cannot start worker %d: %s", slot, uv_strerror(rc));
    ::close(sv[0]);
    uv_close(reinterpret_cast<uv_handle_t*>(&w->proc), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);  // lets the close finish before w goes
    return nullptr;
  }
  w->pid = w->proc.pid;
  w->ipc = sv[0];
  fcntl(w->ipc, F_SETFL, fcntl(w->ipc, F_GETFL) | O_NONBLOCK);
  w->born = uv_now(&loop_);
  w->open_handles = 2;
  uv_poll_init(&loop_, &w->poll, w->ipc);
  w->poll.data = w.get();
  uv_poll_start(&w->poll, UV_READABLE | UV_DISCONNECT, [](uv_poll_t* p, int /*status*/, int /*events*/) {
    auto* wk = static_cast<Worker*>(p->data);
    wk->sup->on_ipc(wk);
  });
  Worker* raw = w.get();
  workers_.push_back(std::move(w));
  emit("WORKER_STARTED", raw, reason);
  return raw;
}

void Supervisor::close_worker_handles(Worker* w) {
  auto closed = [](uv_handle_t* h) {
    auto* wk = static_cast<Worker*>(h->data);
    wk->sup->handle_closed(wk);
  };
  if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&w->poll)) == 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), closed);
  }
  if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&w->proc)) == 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&w->proc), closed);
  }
}

void Supervisor::handle_closed(Worker* w) {
  if (--w->open_handles > 0) return;
  if (w->ipc >= 0) ::close(w->ipc);
  workers_.remove_if([w](const std::unique_ptr<Worker>& p) { return p.get() == w; });
  maybe_finish();
}

int Supervisor::live_workers() const {
  int n = 0;
  for (const auto& w : workers_) n += w->exited ? 0 : 1;
  return n;
}

// ---------------------------------------------------------------- sockets

void Supervisor::on_ipc(Worker* w) {
  for (;;) {
    Request req{};
    ssize_t n = ::recv(w->ipc, &req, sizeof(req), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {  // the worker is gone (or closed its end): its exit follows
      uv_poll_stop(&w->poll);
      return;
    }
    if (n != static_cast<ssize_t>(sizeof(req))) continue;  // not ours: ignored
    if (req.kind == MsgKind::Started) {
      w->started = true;
      check_ready(w);
    } else if (req.kind == MsgKind::ListenTcp || req.kind == MsgKind::ListenPipe) {
      answer_listen(w, req);
    }
  }
}

std::string address_key(const sockaddr_storage& a, int* port) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (a.ss_family == AF_INET6) {
    const auto* s6 = reinterpret_cast<const sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
    *port = ntohs(s6->sin6_port);
    return std::string("[") + host + "]";
  }
  const auto* s4 = reinterpret_cast<const sockaddr_in*>(&a);
  inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
  *port = ntohs(s4->sin_port);
  return host;
}

void set_port(sockaddr_storage* a, int port) {
  if (a->ss_family == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(a)->sin6_port = htons(static_cast<uint16_t>(port));
  } else {
    reinterpret_cast<sockaddr_in*>(a)->sin_port = htons(static_cast<uint16_t>(port));
  }
}

void Supervisor::answer_listen(Worker* w, const Request& req) {
  std::string key;
  Group proto;
  if (req.kind == MsgKind::ListenPipe) {
    proto.pipe = true;
    proto.path.assign(req.path, strnlen(req.path, sizeof(req.path)));
    key = "unix:" + proto.path;
  } else {
    if (req.addr_len > sizeof(req.addr) ||
        (req.addr.ss_family != AF_INET && req.addr.ss_family != AF_INET6)) {
      return reply(w, UV_EINVAL, -1);
    }
    proto.addr = req.addr;
    proto.len = req.addr_len;
    int port = 0;
    std::string host = address_key(req.addr, &port);
    key = host + ":" + std::to_string(port);
    // Port 0: the n-th such listen of every worker shares one port, so the
    // workers (which run the same script) meet on the same sockets.
    if (port == 0) key += "#" + std::to_string(++w->zero_count[host]);
  }
  auto [it, fresh] = groups_.try_emplace(key, proto);
  Group& g = it->second;
  if (fresh) g.fds.assign(g.pipe ? 1 : static_cast<size_t>(opt_.workers), -1);
  int fd = -1;
  int status = make_socket(g, w->slot, req.backlog, &fd);
  if (status != 0 && fresh) groups_.erase(it);
  if (status == 0) w->keys.insert(key);
  reply(w, status, fd);
  if (status == 0) check_ready(w);
}

// The socket of `slot` in g, made now if needed. 0 or a libuv status.
int Supervisor::make_socket(Group& g, int slot, int backlog, int* out) {
  int& fd = g.fds[g.pipe ? 0 : static_cast<size_t>(slot - 1)];
  if (fd >= 0) {
    *out = fd;
    return 0;
  }
  int family = g.pipe ? AF_UNIX : g.addr.ss_family;
  int s = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) return uv_translate_sys_error(errno);
  int one = 1;
  sockaddr_un un{};
  const sockaddr* addr = reinterpret_cast<const sockaddr*>(&g.addr);
  socklen_t len = g.len;
  if (g.pipe) {
    un.sun_family = AF_UNIX;
    std::strncpy(un.sun_path, g.path.c_str(), sizeof(un.sun_path) - 1);
    addr = reinterpret_cast<const sockaddr*>(&un);
    len = sizeof(un);
  } else {
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  }
  if (::bind(s, addr, len) != 0 || ::listen(s, backlog) != 0) {
    int err = uv_translate_sys_error(errno);
    ::close(s);
    return err;
  }
  if (!g.pipe) {
    // A port-0 group: the port the kernel chose is the group's from now on.
    sockaddr_storage bound{};
    socklen_t blen = sizeof(bound);
    getsockname(s, reinterpret_cast<sockaddr*>(&bound), &blen);
    int port = 0;
    address_key(bound, &port);
    set_port(&g.addr, port);
  }
  fd = s;
  *out = s;
  return 0;
}

void Supervisor::reply(Worker* w, int status, int fd) {
  Reply r{status};
  iovec iov{&r, sizeof(r)};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  while (::sendmsg(w->ipc, &msg, MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

void Supervisor::close_slot_sockets(int slot) {
  for (auto& [key, g] : groups_) {
    if (g.pipe) continue;  // shared by every slot
    int& fd = g.fds[static_cast<size_t>(slot - 1)];
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
}

// ---------------------------------------------------------------- reload

// A replacement is ready when its main chunk has run and it listens on
// every address the worker it replaces listened on.
void Supervisor::check_ready(Worker* w) {
  Slot& s = *slots_[static_cast<size_t>(w->slot - 1)];
  if (s.next != w || !w->started) return;
  if (s.current != nullptr &&
      !std::includes(w->keys.begin(), w->keys.end(), s.current->keys.begin(), s.current->keys.end())) {
    return;
  }
  promote(s);
}

void Supervisor::promote(Slot& s) {
  uv_timer_stop(&ready_timer_);
  Worker* old = s.current;
  s.current = s.next;
  s.next = nullptr;
  if (old != nullptr && !old->exited) {
    old->stopping = true;
    uv_kill(old->pid, SIGTERM);  // drains: stops accepting, finishes what is in flight
  }
  ++reload_slot_;
  reload_step();
}

void Supervisor::start_reload() {
  if (stop_signal_ != 0) return;
  if (reload_slot_ != 0) {
    reload_again_ = true;  // one more full round after this one
    return;
  }
  say("reloading %d worker%s", opt_.workers, opt_.workers == 1 ? "" : "s");
  reload_slot_ = 1;
  reload_step();
}

void Supervisor::reload_step() {
  if (reload_slot_ > opt_.workers) {
    reload_slot_ = 0;
    say("reload done");
    if (reload_again_) {
      reload_again_ = false;
      start_reload();
    }
    return;
  }
  Slot& s = *slots_[static_cast<size_t>(reload_slot_ - 1)];
  if (s.restart_pending) {
    uv_timer_stop(&s.restart);
    s.restart_pending = false;
  }
  s.done = false;
  s.crashed = false;
  s.quick_deaths = 0;
  s.next = spawn(reload_slot_, "reload");
  if (s.next == nullptr) {
    say("reload stopped: worker %d could not start; the old workers keep serving", reload_slot_);
    reload_slot_ = 0;
    return;
  }
  uv_timer_start(
      &ready_timer_,
      [](uv_timer_t* t) { from_handle(reinterpret_cast<uv_handle_t*>(t))->on_ready_timeout(); },
      kReadyTimeoutMs, 0);
}

void Supervisor::on_ready_timeout() {
  if (reload_slot_ == 0) return;
  Slot& s = *slots_[static_cast<size_t>(reload_slot_ - 1)];
  if (s.next == nullptr) return;
  say("worker %d did not listen on every address of the worker it replaces within %llu s; replacing it "
      "anyway",
      reload_slot_, static_cast<unsigned long long>(kReadyTimeoutMs / 1000));
  promote(s);
}

// ---------------------------------------------------------------- exits

void Supervisor::on_exit(Worker* w, int64_t status, int signal) {
  w->exited = true;
  Slot& s = *slots_[static_cast<size_t>(w->slot - 1)];
  const char* reason = w->stopping ? "stopped" : (status == 0 && signal == 0 ? "finished" : "died");
  emit("WORKER_EXITED", w, reason, status, signal);
  if (s.next == w) {
    s.next = nullptr;
    uv_timer_stop(&ready_timer_);
    if (stop_signal_ == 0) {
      say("reload stopped: the new worker %d (pid %d) %s before it was ready; the old workers keep serving",
          w->slot, w->pid, describe_exit(status, signal).c_str());
      reload_slot_ = 0;
      reload_again_ = false;
      if (s.current == nullptr) schedule_restart(s, w, status, signal);
    }
  } else if (s.current == w) {
    s.current = nullptr;
    if (stop_signal_ == 0 && !w->stopping) schedule_restart(s, w, status, signal);
  }
  close_worker_handles(w);
}

void Supervisor::schedule_restart(Slot& s, Worker* w, int64_t status, int signal) {
  if (status == 0 && signal == 0) {
    s.done = true;  // it ended by itself, as a script may
    return;
  }
  uint64_t lived = uv_now(&loop_) - w->born;
  s.quick_deaths = lived < kQuickDeathMs ? s.quick_deaths + 1 : 1;
  if (s.quick_deaths >= kCrashLoop) {
    say("worker %d is crash-looping: it died %d times in a row within %llu s of starting (last: %s); "
        "not restarting it",
        w->slot, s.quick_deaths, static_cast<unsigned long long>(kQuickDeathMs / 1000),
        describe_exit(status, signal).c_str());
    s.crashed = true;
    close_slot_sockets(w->slot);  // the kernel sends its share to the other slots now
    return;
  }
  uint64_t delay = kFirstBackoffMs << (s.quick_deaths - 1);
  say("worker %d (pid %d) %s; restarting it in %.1f s", w->slot, w->pid,
      describe_exit(status, signal).c_str(), static_cast<double>(delay) / 1000.0);
  s.restart_pending = true;
  uv_timer_start(
      &s.restart,
      [](uv_timer_t* t) {
        auto* slot = static_cast<Slot*>(t->data);
        slot->sup->on_restart_timer(slot);
      },
      delay, 0);
}

void Supervisor::on_restart_timer(Slot* s) {
  s->restart_pending = false;
  if (stop_signal_ != 0 || s->current != nullptr) return;
  int slot = 1;
  while (slots_[static_cast<size_t>(slot - 1)].get() != s) ++slot;
  s->current = spawn(slot, "restart");
  if (s->current == nullptr) s->crashed = true;
  maybe_finish();
}

// ---------------------------------------------------------------- stopping

void Supervisor::stop_all(int signum) {
  if (stop_signal_ != 0) {
    say("stopping now");
    for (auto& w : workers_) {
      if (!w->exited) uv_kill(w->pid, SIGKILL);
    }
    return;
  }
  stop_signal_ = signum;
  reload_slot_ = 0;
  uv_timer_stop(&ready_timer_);
  for (auto& s : slots_) {
    if (s->restart_pending) uv_timer_stop(&s->restart);
    s->restart_pending = false;
  }
  int n = live_workers();
  if (n > 0) say("stopping %d worker%s (grace period %g s)", n, n == 1 ? "" : "s", opt_.grace);
  for (auto& w : workers_) {
    if (w->exited) continue;
    w->stopping = true;
    uv_kill(w->pid, SIGTERM);
  }
  // Workers end themselves at the grace period; this is for one that cannot.
  uint64_t ms = static_cast<uint64_t>((opt_.grace + 5) * 1000);
  uv_timer_start(
      &kill_timer_, [](uv_timer_t* t) { from_handle(reinterpret_cast<uv_handle_t*>(t))->on_kill_timer(); },
      ms, 0);
  maybe_finish();
}

void Supervisor::on_kill_timer() {
  for (auto& w : workers_) {
    if (w->exited) continue;
    say("worker %d (pid %d) did not stop within the grace period; killing it", w->slot, w->pid);
    uv_kill(w->pid, SIGKILL);
  }
}

void Supervisor::on_signal(int signum) {
  if (signum == SIGHUP) return start_reload();
  stop_all(signum);
}

// Ends the run once no worker is alive and none will be started.
void Supervisor::maybe_finish() {
  if (finished_ || !workers_.empty()) return;
  for (auto& s : slots_) {
    if (s->restart_pending || s->next != nullptr) return;
  }
  if (stop_signal_ != 0) return finish(128 + stop_signal_);
  bool crashed = std::any_of(slots_.begin(), slots_.end(), [](const auto& s) { return s->crashed; });
  finish(crashed ? 1 : 0);
}

void Supervisor::finish(int code) {
  finished_ = true;
  exit_code_ = code;
  for (auto& sig : signals_) uv_close(reinterpret_cast<uv_handle_t*>(&sig), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&ready_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&kill_timer_), nullptr);
  for (auto& s : slots_) uv_close(reinterpret_cast<uv_handle_t*>(&s->restart), nullptr);
}

// ---------------------------------------------------------------- hook

// supervisor.lua beside the script, if there is one: a plain LuaJIT state
// (the standard libraries, none of Evo's) where `Supervisor` (also the
// chunk's first argument) receives WORKER_STARTED and WORKER_EXITED as
// Supervisor:NAME(NAME, payload), like every Evo event. Called from the
// supervisor's loop: a handler must not block.
void Supervisor::load_hook() {
  if (opt_.script.empty()) return;
  size_t slash = opt_.script.find_last_of('/');
  std::string path =
      (slash == std::string::npos ? std::string() : opt_.script.substr(0, slash + 1)) + "supervisor.lua";
  if (access(path.c_str(), R_OK) != 0) return;
  hook_ = luaL_newstate();
  luaL_openlibs(hook_);
  lua_createtable(hook_, 0, 4);
  lua_pushinteger(hook_, opt_.workers);
  lua_setfield(hook_, -2, "workers");
  lua_pushinteger(hook_, getpid());
  lua_setfield(hook_, -2, "pid");
  lua_pushvalue(hook_, -1);
  lua_setglobal(hook_, "Supervisor");
  if (luaL_loadfile(hook_, path.c_str()) != 0) {
    say("%s", lua_tostring(hook_, -1));
    lua_close(hook_);
    hook_ = nullptr;
    return;
  }
  lua_pushvalue(hook_, -2);
  if (lua_pcall(hook_, 1, 0, 0) != 0) {
    say("%s", lua_tostring(hook_, -1));
    lua_pop(hook_, 1);
  }
  lua_pop(hook_, 1);
}

void Supervisor::emit(const char* name, Worker* w, const char* reason, int64_t status, int signal) {
  if (hook_ == nullptr) return;
  lua_State* L = hook_;
  lua_getglobal(L, "Supervisor");
  lua_getfield(L, -1, name);
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, 2);
    return;
  }
  lua_pushvalue(L, -2);
  lua_pushstring(L, name);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, w->slot);
  lua_setfield(L, -2, "workerId");
  lua_pushinteger(L, w->pid);
  lua_setfield(L, -2, "pid");
  lua_pushstring(L, reason);
  lua_setfield(L, -2, "reason");
  if (status >= 0 && signal == 0) {
    lua_pushinteger(L, static_cast<lua_Integer>(status));
    lua_setfield(L, -2, "code");
  }
  if (signal != 0) {
    lua_pushinteger(L, signal);
    lua_setfield(L, -2, "signal");
  }
  if (lua_pcall(L, 3, 0, 0) != 0) {
    say("error in Supervisor:%s handler: %s", name, lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

// ---------------------------------------------------------------- run

int Supervisor::run() {
  char exe[4096];
  size_t size = sizeof(exe);
  if (uv_exepath(exe, &size) != 0) {
    say("--workers: cannot find the evo executable");
    return 1;
  }
  exe_.assign(exe, size);
  opt_.argv[0] = exe_;
  uv_loop_init(&loop_);
  signal(SIGPIPE, SIG_IGN);
  const int sigs[3] = {SIGHUP, SIGTERM, SIGINT};
  for (int i = 0; i < 3; ++i) {
    uv_signal_init(&loop_, &signals_[i]);
    signals_[i].data = this;
    uv_signal_start(
        &signals_[i],
        [](uv_signal_t* h, int signum) { static_cast<Supervisor*>(h->data)->on_signal(signum); }, sigs[i]);
    uv_unref(reinterpret_cast<uv_handle_t*>(&signals_[i]));
  }
  uv_timer_init(&loop_, &ready_timer_);
  ready_timer_.data = this;
  uv_timer_init(&loop_, &kill_timer_);
  kill_timer_.data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(&kill_timer_));
  load_hook();
  for (int i = 1; i <= opt_.workers; ++i) {
    auto s = std::make_unique<Slot>();
    uv_timer_init(&loop_, &s->restart);
    s->restart.data = s.get();
    s->sup = this;
    slots_.push_back(std::move(s));
  }
  for (int i = 1; i <= opt_.workers; ++i) {
    Slot& s = *slots_[static_cast<size_t>(i - 1)];
    s.current = spawn(i, "start");
    if (s.current == nullptr) s.crashed = true;
  }
  maybe_finish();
  uv_run(&loop_, UV_RUN_DEFAULT);
  for (auto& [key, g] : groups_) {
    for (int fd : g.fds) {
      if (fd >= 0) ::close(fd);
    }
    if (g.pipe) ::unlink(g.path.c_str());
  }
  uv_loop_close(&loop_);
  if (hook_ != nullptr) lua_close(hook_);
  return exit_code_;
}

// ---------------------------------------------------------------- worker side

// The grace period's end in a worker: whatever is still open is cut.
class GraceTimer final : public NativeHandle {
 public:
  GraceTimer(uv_loop_t* loop, Runtime& rt, int code) : rt_(rt), code_(code) { uv_timer_init(loop, &timer_); }
  uv_handle_t* uv_handle() override { return reinterpret_cast<uv_handle_t*>(&timer_); }
  [[nodiscard]] bool internal() const override { return true; }
  void start(double seconds) {
    uv_timer_start(
        &timer_,
        [](uv_timer_t* t) {
          auto* self = static_cast<GraceTimer*>(NativeHandle::from(reinterpret_cast<uv_handle_t*>(t)));
          say("worker %d: the grace period is over; closing what is still open", workers::id());
          self->rt_.request_exit(self->code_);
        },
        static_cast<uint64_t>(seconds * 1000), 0);
    uv_unref(uv_handle());  // the worker ends sooner when nothing is left
  }

 private:
  uv_timer_t timer_{};
  Runtime& rt_;
  int code_;
};

}  // namespace

int parse_count(const char* text) {
  if (std::strcmp(text, "auto") == 0) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
    return static_cast<int>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  }
  char* end = nullptr;
  long n = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || n < 1 || n > 1024) return 0;
  return static_cast<int>(n);
}

int run(const Options& options) {
  Supervisor sup(options);
  return sup.run();
}

void setup_worker(Runtime& rt) {
  interrupt::set_stop_handler([&rt](int signum) {
    if (!workers::drain_all()) {  // a second stop: now
      rt.request_exit(128 + signum);
      return;
    }
    auto timer = std::make_unique<GraceTimer>(rt.loop(), rt, 128 + signum);
    NativeHandle::release_to_loop(std::move(timer))->start(workers::grace());
  });
}

}  // namespace evo::supervisor
