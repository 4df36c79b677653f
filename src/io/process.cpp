// Child processes for both Io implementations.
//
// Evented: uv_spawn; libuv reaps the child from its SIGCHLD handling and
// reports the exit from the loop. A caller that cannot wait blocks in
// waitid(WNOWAIT), which sees the end without reaping it, so libuv still
// finds the child to reap. Blocking: posix_spawn and waitpid().
#include "io/process.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <list>
#include <memory>

#include "core/handle.h"
#include "io/transport.h"

namespace evo {
namespace {

class EventedChild;

class ProcessHandle final : public NativeHandle {
 public:
  uv_handle_t* uv_handle() override { return reinterpret_cast<uv_handle_t*>(&process); }
  [[nodiscard]] bool internal() const override { return true; }
  uv_process_t process{};
  EventedChild* owner = nullptr;

 protected:
  void on_closed() override;
};

// One wait for a child's end, until it comes or is cancelled.
class ExitWait final : public IoOp {
 public:
  ExitWait(EventedChild* child, std::function<void(ChildExit)> done) : done(std::move(done)), child_(child) {}
  void cancel() override;
  std::list<std::unique_ptr<ExitWait>>::iterator self;
  std::function<void(ChildExit)> done;

 private:
  EventedChild* child_;
};

class EventedChild final : public IoChild {
 public:
  EventedChild(ProcessHandle* h) : handle_(h), pid_(h->process.pid) { h->owner = this; }
  ~EventedChild() override {
    if (handle_ == nullptr) return;
    handle_->owner = nullptr;
    if (!exited_) uv_unref(handle_->uv_handle());  // forgotten: it no longer keeps the loop alive
  }
  [[nodiscard]] int pid() const override { return pid_; }
  int kill(int signum) override {
    if (exited_ || handle_ == nullptr) return UV_ESRCH;
    return uv_process_kill(&handle_->process, signum);
  }
  IoOp* wait(bool wait, std::function<void(ChildExit)> done) override {
    if (!exited_ && !wait) wait_blocking();
    if (exited_) {
      done(exit_);
      return nullptr;
    }
    waits_.push_back(std::make_unique<ExitWait>(this, std::move(done)));
    waits_.back()->self = std::prev(waits_.end());
    return waits_.back().get();
  }
  void forget(ExitWait* w) { waits_.erase(w->self); }
  void on_handle_closed() { handle_ = nullptr; }  // by its exit, or by the runtime's exit sweep

  static void on_exit(uv_process_t* p, int64_t status, int term_signal) {
    auto* h = static_cast<ProcessHandle*>(NativeHandle::from(reinterpret_cast<uv_handle_t*>(p)));
    EventedChild* self = h->owner;
    h->owner = nullptr;
    h->close();
    if (self == nullptr) return;
    self->handle_ = nullptr;
    if (!self->exited_) self->exit_ = ChildExit{static_cast<int>(status), term_signal};
    self->exited_ = true;
    auto waits = std::move(self->waits_);  // each may end the child's owner: take them first
    for (auto& w : waits) w->done(self->exit_);
  }

 private:
  // The end, seen without reaping (libuv reaps it and calls on_exit later).
  void wait_blocking() {
    siginfo_t info{};
    int r = -1;
    do {
      r = ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOWAIT);
    } while (r < 0 && errno == EINTR);
    exited_ = true;
    if (r < 0) {
      exit_.code = -1;
    } else if (info.si_code == CLD_EXITED) {
      exit_.code = info.si_status;
    } else {
      exit_.signal = info.si_status;
    }
  }

  ProcessHandle* handle_;
  int pid_;
  bool exited_ = false;
  ChildExit exit_;
  std::list<std::unique_ptr<ExitWait>> waits_;
};

void ExitWait::cancel() { child_->forget(this); }

void ProcessHandle::on_closed() {
  if (owner != nullptr) owner->on_handle_closed();
}

class BlockingChild final : public IoChild {
 public:
  explicit BlockingChild(int pid) : pid_(pid) {}
  [[nodiscard]] int pid() const override { return pid_; }
  int kill(int signum) override {
    if (exited_) return UV_ESRCH;
    return ::kill(pid_, signum) == 0 ? 0 : uv_translate_sys_error(errno);
  }
  IoOp* wait(bool /*wait*/, std::function<void(ChildExit)> done) override {
    if (!exited_) reap();
    done(exit_);
    return nullptr;
  }

 private:
  void reap() {
    int status = 0;
    pid_t r = -1;
    do {
      r = ::waitpid(pid_, &status, 0);
    } while (r < 0 && errno == EINTR);
    exited_ = true;
    if (r < 0) {
      exit_.code = -1;
    } else if (WIFEXITED(status)) {
      exit_.code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      exit_.signal = WTERMSIG(status);
    }
  }

  int pid_;
  bool exited_ = false;
  ChildExit exit_;
};

}  // namespace

Spawned spawn_evented(uv_loop_t* loop, const SpawnSpec& spec) {
  Spawned out;
  UvStreamHandle* pipes[3] = {nullptr, nullptr, nullptr};
  uv_stdio_container_t stdio[3];
  for (int i = 0; i < 3; ++i) {
    if (spec.stdio[i] == StdioMode::Pipe) {
      int status = 0;
      auto h = std::make_unique<UvStreamHandle>(loop, UvStreamHandle::Kind::Pipe, &status);
      pipes[i] = NativeHandle::release_to_loop(std::move(h));
      stdio[i].flags =
          static_cast<uv_stdio_flags>(UV_CREATE_PIPE | (i == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE));
      stdio[i].data.stream = pipes[i]->stream();
    } else if (spec.stdio[i] == StdioMode::Inherit) {
      stdio[i].flags = UV_INHERIT_FD;
      stdio[i].data.fd = i;
    } else {
      stdio[i].flags = UV_IGNORE;
    }
  }
  uv_process_options_t options{};
  options.file = spec.file;
  options.args = spec.argv;
  options.env = spec.env;
  options.cwd = spec.cwd;
  options.exit_cb = EventedChild::on_exit;
  options.stdio = stdio;
  options.stdio_count = 3;
  auto ph = std::make_unique<ProcessHandle>();
  out.status = uv_spawn(loop, &ph->process, &options);
  if (out.status != 0) {
    // uv_spawn leaves the handle initialised even on failure: close it.
    NativeHandle::release_to_loop(std::move(ph))->close();
    for (auto* p : pipes) {
      if (p != nullptr) p->close();
    }
    return out;
  }
  out.child = std::make_unique<EventedChild>(NativeHandle::release_to_loop(std::move(ph)));
  for (int i = 0; i < 3; ++i) {
    // Not through the uring Io's ring: a read from a child's pipe must keep
    // the loop alive as libuv's does until the end arrives, also after the
    // child has exited (a ring receive on an unreferenced handle did not, and
    // `child.stderr:readAll()` found nothing left to wake it).
    if (pipes[i] != nullptr) out.pipes[i] = std::make_unique<Transport>(pipes[i], false);
  }
  return out;
}

Spawned spawn_blocking(const SpawnSpec& spec) {
  Spawned out;
  int fds[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  auto cleanup = [&] {
    posix_spawn_file_actions_destroy(&actions);
    for (auto& p : fds) {
      for (int fd : p) {
        if (fd >= 0) ::close(fd);
      }
    }
  };
  for (int i = 0; i < 3; ++i) {
    if (spec.stdio[i] == StdioMode::Pipe) {
      if (::pipe2(fds[i], O_CLOEXEC) != 0) {
        out.status = uv_translate_sys_error(errno);
        cleanup();
        return out;
      }
      int child_end = i == 0 ? fds[i][0] : fds[i][1];
      posix_spawn_file_actions_adddup2(&actions, child_end, i);
    } else if (spec.stdio[i] == StdioMode::Ignore) {
      posix_spawn_file_actions_addopen(&actions, i, "/dev/null", i == 0 ? O_RDONLY : O_WRONLY, 0);
    }
  }
  if (spec.cwd != nullptr) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))
    posix_spawn_file_actions_addchdir_np(&actions, spec.cwd);
#endif
  }
  pid_t pid = -1;
  int rc =
      ::posix_spawnp(&pid, spec.file, &actions, nullptr, spec.argv, spec.env != nullptr ? spec.env : environ);
  if (rc != 0) {
    out.status = uv_translate_sys_error(rc);
    cleanup();
    return out;
  }
  posix_spawn_file_actions_destroy(&actions);
  out.child = std::make_unique<BlockingChild>(pid);
  for (int i = 0; i < 3; ++i) {
    if (spec.stdio[i] != StdioMode::Pipe) continue;
    ::close(i == 0 ? fds[i][0] : fds[i][1]);
    out.pipes[i] = std::make_unique<Transport>(i == 0 ? fds[i][1] : fds[i][0]);
  }
  return out;
}

}  // namespace evo
