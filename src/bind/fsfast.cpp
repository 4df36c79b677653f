// evo.fsfast: whole-file reads and writes as one Io job (src/io/files.cpp:
// on libuv's thread pool for a task that can wait, inline otherwise), and
// the file-handle and path calls of lib/fs.lua (Io::fs: libuv fs requests,
// system calls, or ring entries under --io=uring).
#include <fcntl.h>
#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <string>

#include "bind/io_call.h"
#include "io/io.h"
#include "lua/errors.h"
#include "lua/modules.h"
#include "lua/tasks.h"

namespace evo {
namespace {

// op(path, data|nil, yieldable) -> (true, result...) | (false) | yields
int file_op(lua_State* L, FileOp op) {
  size_t len = 0;
  const char* p = luaL_checklstring(L, 1, &len);
  std::string path(p, len);
  std::string data;
  if (op != FileOp::Read) {
    const char* d = luaL_checklstring(L, 2, &len);
    data.assign(d, len);
  }
  Io& io = io_of(TaskSystem::from(L));
  return io_call<FileResult>(
      L, 3,
      [&](bool wait, std::function<void(FileResult)> done) {
        return io.file(op, std::move(path), std::move(data), wait, std::move(done));
      },
      [op](lua_State* Ls, FileResult r) {
        if (!r.ok()) return push_failure(Ls, r.status, nullptr, r.path);
        if (op == FileOp::Read) {
          lua_pushlstring(Ls, r.data.data(), r.data.size());
        } else {
          lua_pushboolean(Ls, 1);
        }
        return 1;
      });
}

// ------------------------------------------------- handles and paths (Io::fs)

// luv's open flag strings ("r", "w+", "ax"...) as O_* flags; -1 if unknown.
int open_flags(const char* s) {
  int base = 0;
  switch (*s) {
    case 'r':
      base = 0;
      break;
    case 'w':
      base = O_TRUNC | O_CREAT;
      break;
    case 'a':
      base = O_APPEND | O_CREAT;
      break;
    default:
      return -1;
  }
  bool plus = false;
  bool sync = false;
  bool excl = false;
  for (const char* c = s + 1; *c != '\0'; ++c) {
    if (*c == '+') {
      plus = true;
    } else if (*c == 's' && *s == 'r') {
      sync = true;
    } else if (*c == 'x' && *s != 'r') {
      excl = true;
    } else {
      return -1;
    }
  }
  int access = plus ? O_RDWR : (*s == 'r' ? O_RDONLY : O_WRONLY);
  return base | access | (sync ? O_SYNC : 0) | (excl ? O_EXCL : 0);
}

// The stat table luv gives (uv.fs_stat), so fs.stat's answer is the same
// whichever Io made it.
void push_stat(lua_State* L, const uv_stat_t& st) {
  lua_createtable(L, 0, 17);
  auto field = [L](const char* name, double v) {
    lua_pushnumber(L, v);
    lua_setfield(L, -2, name);
  };
  auto time = [L](const char* name, const uv_timespec_t& t) {
    lua_createtable(L, 0, 2);
    lua_pushnumber(L, static_cast<double>(t.tv_sec));
    lua_setfield(L, -2, "sec");
    lua_pushnumber(L, static_cast<double>(t.tv_nsec));
    lua_setfield(L, -2, "nsec");
    lua_setfield(L, -2, name);
  };
  field("dev", static_cast<double>(st.st_dev));
  field("mode", static_cast<double>(st.st_mode));
  field("nlink", static_cast<double>(st.st_nlink));
  field("uid", static_cast<double>(st.st_uid));
  field("gid", static_cast<double>(st.st_gid));
  field("rdev", static_cast<double>(st.st_rdev));
  field("ino", static_cast<double>(st.st_ino));
  field("size", static_cast<double>(st.st_size));
  field("blksize", static_cast<double>(st.st_blksize));
  field("blocks", static_cast<double>(st.st_blocks));
  field("flags", static_cast<double>(st.st_flags));
  field("gen", static_cast<double>(st.st_gen));
  time("atime", st.st_atim);
  time("mtime", st.st_mtim);
  time("ctime", st.st_ctim);
  time("birthtime", st.st_birthtim);
  const char* type = "unknown";
  auto mode = static_cast<mode_t>(st.st_mode);
  if (S_ISREG(mode)) {
    type = "file";
  } else if (S_ISDIR(mode)) {
    type = "directory";
  } else if (S_ISLNK(mode)) {
    type = "link";
  } else if (S_ISFIFO(mode)) {
    type = "fifo";
  } else if (S_ISSOCK(mode)) {
    type = "socket";
  } else if (S_ISCHR(mode)) {
    type = "char";
  } else if (S_ISBLK(mode)) {
    type = "block";
  }
  lua_pushstring(L, type);
  lua_setfield(L, -2, "type");
}

// req is filled; the last argument is `yieldable`.
int fs_call(lua_State* L, FsRequest req) {
  int yieldable_idx = lua_gettop(L);
  Io& io = io_of(TaskSystem::from(L));
  FsOp op = req.op;
  return io_call<FsResult>(
      L, yieldable_idx,
      [&](bool wait, std::function<void(FsResult)> done) {
        return io.fs(std::move(req), wait, std::move(done));
      },
      [op](lua_State* Ls, FsResult r) {
        if (!r.ok()) return push_failure(Ls, r.status, nullptr, r.path);
        switch (op) {
          case FsOp::Open:
          case FsOp::Write:
            lua_pushnumber(Ls, static_cast<double>(r.value));
            break;
          case FsOp::Read:
            lua_pushlstring(Ls, r.data.data(), r.data.size());
            break;
          case FsOp::Fstat:
          case FsOp::Stat:
          case FsOp::Lstat:
            push_stat(Ls, r.stat);
            break;
          case FsOp::Fsync:
          case FsOp::Close:
            lua_pushboolean(Ls, 1);
            break;
        }
        return 1;
      });
}

int check_fd(lua_State* L, int idx) {
  lua_Integer fd = luaL_checkinteger(L, idx);
  luaL_argcheck(L, fd >= 0 && fd <= INT32_MAX, idx, "not a file descriptor");
  return static_cast<int>(fd);
}

// open(path, flags, mode, yieldable) -> fd
int fs_open(lua_State* L) {
  FsRequest req;
  req.op = FsOp::Open;
  req.path = luaL_checkstring(L, 1);
  req.flags = open_flags(luaL_checkstring(L, 2));
  luaL_argcheck(L, req.flags >= 0, 2, "invalid mode");
  req.mode = static_cast<int>(luaL_checkinteger(L, 3));
  return fs_call(L, std::move(req));
}

// read(fd, n, offset, yieldable) -> bytes ("" at the end)
int fs_read(lua_State* L) {
  FsRequest req;
  req.op = FsOp::Read;
  req.fd = check_fd(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_argcheck(L, n >= 0 && n <= INT32_MAX, 2, "size out of range");
  req.length = static_cast<size_t>(n);
  req.offset = luaL_checkinteger(L, 3);
  return fs_call(L, std::move(req));
}

// write(fd, data, offset, yieldable) -> bytes written
int fs_write(lua_State* L) {
  FsRequest req;
  req.op = FsOp::Write;
  req.fd = check_fd(L, 1);
  size_t len = 0;
  const char* d = luaL_checklstring(L, 2, &len);
  req.data.assign(d, len);
  req.offset = luaL_checkinteger(L, 3);
  return fs_call(L, std::move(req));
}

int fd_op(lua_State* L, FsOp op) {
  FsRequest req;
  req.op = op;
  req.fd = check_fd(L, 1);
  return fs_call(L, std::move(req));
}

int path_op(lua_State* L, FsOp op) {
  FsRequest req;
  req.op = op;
  req.path = luaL_checkstring(L, 1);
  return fs_call(L, std::move(req));
}

int fs_fsync(lua_State* L) { return fd_op(L, FsOp::Fsync); }
int fs_fstat(lua_State* L) { return fd_op(L, FsOp::Fstat); }
int fs_close(lua_State* L) { return fd_op(L, FsOp::Close); }
int fs_stat(lua_State* L) { return path_op(L, FsOp::Stat); }
int fs_lstat(lua_State* L) { return path_op(L, FsOp::Lstat); }

int fast_read(lua_State* L) { return file_op(L, FileOp::Read); }
int fast_write(lua_State* L) { return file_op(L, FileOp::Write); }
int fast_append(lua_State* L) { return file_op(L, FileOp::Append); }

}  // namespace

int open_fsfast(lua_State* L) {
  const luaL_Reg functions[] = {
      {"readFile", fast_read}, {"writeFile", fast_write}, {"appendFile", fast_append}, {"open", fs_open},
      {"read", fs_read},       {"write", fs_write},       {"fsync", fs_fsync},         {"fstat", fs_fstat},
      {"stat", fs_stat},       {"lstat", fs_lstat},       {"close", fs_close},         {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace evo
