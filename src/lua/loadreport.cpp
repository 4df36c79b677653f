#include "lua/loadreport.h"

#include <fcntl.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_set>

namespace evo::loadreport {
namespace {

std::string absolute(const char* path) {
  char buf[PATH_MAX];
  if (realpath(path, buf) != nullptr) return buf;
  // A file that is not there yet (dofile of a missing file): its directory is
  // still worth watching, so it is reported as the path it would have.
  if (path[0] == '/') return path;
  if (getcwd(buf, sizeof buf) == nullptr) return path;
  return std::string(buf) + "/" + path;
}

// report(path): appends the file's absolute path to the report file, once
// per process. One write(2) with O_APPEND per line, so lines from several
// processes and threads never interleave.
int report(lua_State* L) {
  static std::mutex mutex;
  static std::unordered_set<std::string> seen;
  const char* path = lua_tostring(L, 1);
  const char* target = std::getenv(kEnv);
  if (path == nullptr || target == nullptr) return 0;
  std::string line = absolute(path);
  if (line.find('\n') != std::string::npos) return 0;
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (!seen.insert(line).second) return 0;
  }
  line += '\n';
  int fd = open(target, O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return 0;  // the watcher has gone: nothing to tell
  ssize_t n = write(fd, line.data(), line.size());
  (void)n;
  close(fd);
  return 0;
}

// Wrappers in Lua so that they are tail calls: dofile still runs the chunk in
// its caller's place (a yield inside behaves as before), and error levels and
// tracebacks are unchanged.
const char kWrap[] = R"lua(
local report, getinfo, searchpath = ...
local loaders, package, type, pcall, error = package.loaders, package, type, pcall, error
local function found(name, ok, loader, ...)
  if not ok then
    -- A module that fails to load (a syntax error): once fixed it should
    -- run, so its file is watched too.
    local file = searchpath(name, package.path)
    if file then report(file) end
    error(loader, 0)
  end
  if type(loader) == "function" then
    local source = getinfo(loader, "S").source
    if source:byte(1) == 64 then  -- "@file": a Lua file
      report(source:sub(2))
    else  -- a C module: the library the C searchers opened
      local file = searchpath(name, package.cpath) or searchpath(name:match("^[^.]*"), package.cpath)
      if file then report(file) end
    end
  end
  return loader, ...
end
for i = 3, #loaders do
  local search = loaders[i]
  loaders[i] = function(name, ...) return found(name, pcall(search, name, ...)) end
end
local loadfile0, dofile0 = loadfile, dofile
function loadfile(file, ...)
  if file ~= nil then report(file) end  -- even when it fails: fixing or creating it counts
  return loadfile0(file, ...)
end
function dofile(file, ...)
  if file ~= nil then report(file) end
  return dofile0(file, ...)
end
)lua";

}  // namespace

void install(lua_State* L) {
  if (std::getenv(kEnv) == nullptr) return;
  if (luaL_loadbuffer(L, kWrap, sizeof(kWrap) - 1, "=[evo watch]") != 0) {
    lua_pop(L, 1);
    return;
  }
  lua_pushcfunction(L, report);
  lua_getglobal(L, "debug");
  lua_getfield(L, -1, "getinfo");
  lua_replace(L, -2);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchpath");
  lua_replace(L, -2);
  if (lua_pcall(L, 3, 0, 0) != 0) lua_pop(L, 1);
}

}  // namespace evo::loadreport
