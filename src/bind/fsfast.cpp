// evo.fsfast: whole-file reads and writes as one job on libuv's thread pool.
//
// fs.readFile through single requests costs four trips between the loop and
// the thread pool (open, fstat, read, close). Here the whole sequence runs in
// one worker job, so a read costs one trip: the hot path of serving files.
// The blocking Io mode (or a caller that cannot yield) runs the same code on
// the calling thread.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>

#include "lua/errors.h"
#include "lua/modules.h"
#include "lua/runtime.h"
#include "lua/tasks.h"

namespace evo {
namespace {

struct FileJob {
  uv_work_t req{};
  TaskSystem* sys = nullptr;
  Task* task = nullptr;
  uint32_t id = 0;
  bool canceled = false;
  enum class Kind : uint8_t { Read, Write, Append } kind = Kind::Read;
  std::string path;
  std::string data;  // what was read, or what to write
  int error = 0;     // a libuv status

  // The work itself; runs on a pool thread or inline.
  void run() {
    if (kind == Kind::Read) {
      read_file();
    } else {
      write_file();
    }
  }

  void read_file() {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      error = uv_translate_sys_error(errno);
      return;
    }
    struct stat st {};
    size_t want = size_t{64} * 1024;
    bool sized = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
    if (sized) want = static_cast<size_t>(st.st_size);
    data.clear();
    for (;;) {
      size_t old = data.size();
      data.resize(old + want);
      ssize_t n = ::read(fd, data.data() + old, want);
      if (n < 0 && errno == EINTR) {
        data.resize(old);
        continue;
      }
      if (n < 0) {
        error = uv_translate_sys_error(errno);
        data.clear();
        break;
      }
      data.resize(old + static_cast<size_t>(n));
      if (n == 0 || (sized && data.size() >= static_cast<size_t>(st.st_size))) break;
      want = size_t{64} * 1024;
    }
    ::close(fd);
  }

  void write_file() {
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (kind == Kind::Append ? O_APPEND : O_TRUNC);
    int fd = ::open(path.c_str(), flags, 0666);
    if (fd < 0) {
      error = uv_translate_sys_error(errno);
      return;
    }
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::write(fd, data.data() + off, data.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        error = uv_translate_sys_error(errno);
        break;
      }
      off += static_cast<size_t>(n);
    }
    if (::close(fd) != 0 && error == 0) error = uv_translate_sys_error(errno);
  }

  // Pushes the result: the data (read) or true (write), or nil, err.
  int push_result(lua_State* L) {
    if (error != 0) {
      lua_pushnil(L);
      errors::push_uv_error(L, error, path);
      return 2;
    }
    if (kind == Kind::Read) {
      lua_pushlstring(L, data.data(), data.size());
    } else {
      lua_pushboolean(L, 1);
    }
    return 1;
  }

  static void work_cb(uv_work_t* req) { static_cast<FileJob*>(req->data)->run(); }

  static void after_cb(uv_work_t* req, int status) {
    std::unique_ptr<FileJob> job(static_cast<FileJob*>(req->data));
    if (job->canceled || status == UV_ECANCELED) return;  // the task has moved on
    int n = job->push_result(job->sys->L());
    job->sys->wake(job->task, job->id, n);
  }

  static void cancel(Task* /*t*/, void* arg) {
    auto* job = static_cast<FileJob*>(arg);
    job->canceled = true;  // after_cb frees it, whether or not uv_cancel wins
    uv_cancel(reinterpret_cast<uv_req_t*>(&job->req));
  }
};

// op(path, data|nil, yieldable) -> (true, result...) | (false) | yields
int file_op(lua_State* L, FileJob::Kind kind) {
  auto job = std::make_unique<FileJob>();
  job->kind = kind;
  size_t len = 0;
  const char* path = luaL_checklstring(L, 1, &len);
  job->path.assign(path, len);
  if (kind != FileJob::Kind::Read) {
    const char* data = luaL_checklstring(L, 2, &len);
    job->data.assign(data, len);
  }
  TaskSystem& sys = TaskSystem::from(L);
  Task* t = sys.waiter(L, 3);
  if (t == nullptr) {
    job->run();
    lua_pushboolean(L, 1);
    return job->push_result(L) + 1;
  }
  if (sys.take_cancel(t)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  job->sys = &sys;
  job->task = t;
  job->req.data = job.get();
  int rc = uv_queue_work(sys.runtime().loop(), &job->req, FileJob::work_cb, FileJob::after_cb);
  if (rc != 0) {
    lua_pushboolean(L, 1);
    lua_pushnil(L);
    errors::push_uv_error(L, rc);
    return 3;
  }
  FileJob* raw = job.release();  // after_cb takes it back
  raw->id = sys.begin_wait(t, FileJob::cancel, raw);
  return sys.suspend(L, t);
}

int fast_read(lua_State* L) { return file_op(L, FileJob::Kind::Read); }
int fast_write(lua_State* L) { return file_op(L, FileJob::Kind::Write); }
int fast_append(lua_State* L) { return file_op(L, FileJob::Kind::Append); }

}  // namespace

int open_fsfast(lua_State* L) {
  const luaL_Reg functions[] = {
      {"readFile", fast_read},
      {"writeFile", fast_write},
      {"appendFile", fast_append},
      {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace evo
