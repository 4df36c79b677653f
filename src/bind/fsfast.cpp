// evo.fsfast: whole-file reads and writes as one Io job (src/io/files.cpp:
// on libuv's thread pool for a task that can wait, inline otherwise).
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

int fast_read(lua_State* L) { return file_op(L, FileOp::Read); }
int fast_write(lua_State* L) { return file_op(L, FileOp::Write); }
int fast_append(lua_State* L) { return file_op(L, FileOp::Append); }

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
