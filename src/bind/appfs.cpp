// evo.appfs: the archive of a one-file executable (docs/build.md). The
// archive is mapped read-only once at start-up and never changes, so every
// lookup is a read of immutable tables (safe from worker states too); the
// memfd cache below is the only mutable state and has its own lock.
#include "bind/appfs.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bind/simdjson_lib.h"
#include "lua/modules.h"

extern char** environ;

namespace evo::appfs {
namespace {

using app_archive::Entry;
using app_archive::Kind;

struct Archive {
  const char* base = nullptr;  // the archive's first byte (entry data), inside the mapping
  void* map = nullptr;
  size_t map_size = 0;
  uint64_t runtime_size = 0;
  app_archive::Index index;
  std::string exe_dir;  // absolute paths under it are looked up as relative ones
  std::map<std::string, const Entry*, std::less<>> modules, cmodules, files, libraries;
  // directory -> its children (name, "file" | "directory"), sorted by name
  std::map<std::string, std::map<std::string, const char*>, std::less<>> dirs;

  std::string_view data(const Entry& e) const { return {base + e.offset, e.size}; }
};

Archive* g_archive = nullptr;       // set once by open_self(), before any Lua state
uint64_t g_runtime_size = 0;        // the runtime image's size in /proc/self/exe
std::mutex g_fd_mutex;              // guards g_fds (worker states load C modules too)
std::map<const Entry*, int> g_fds;  // memfds holding entries, kept for the process's life

std::string dir_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos || slash == 0 ? "/" : path.substr(0, slash);
}

void index_entries(Archive& a) {
  a.dirs[""];  // the root exists even when empty
  for (const auto& e : a.index.entries) {
    auto& table = e.kind == Kind::Module    ? a.modules
                  : e.kind == Kind::CModule ? a.cmodules
                  : e.kind == Kind::Library ? a.libraries
                                            : a.files;
    table.emplace(e.name, &e);
    if (e.kind != Kind::File) continue;
    // Each ancestor directory lists its child: "a/b/c.txt" gives a -> b, a/b -> c.txt
    std::string parent;
    size_t start = 0;
    while (true) {
      size_t slash = e.name.find('/', start);
      std::string child =
          e.name.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      a.dirs[parent][child] = slash == std::string::npos ? "file" : "directory";
      if (slash == std::string::npos) break;
      parent = e.name.substr(0, slash);
      start = slash + 1;
    }
  }
}

// The archive's key for a path the script names: relative paths as they
// are, absolute ones under the executable's directory made relative; "." and
// ".." resolved. nullopt when the path cannot name an embedded file.
std::optional<std::string> normalize(std::string_view path) {
  if (path.empty()) return std::nullopt;
  if (path[0] == '/') {
    const std::string& dir = g_archive->exe_dir;
    bool under = path.substr(0, dir.size()) == dir && (path.size() == dir.size() || path[dir.size()] == '/');
    if (!under || dir == "/") return std::nullopt;
    path.remove_prefix(dir.size());
  }
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view seg = path.substr(start, slash - start);
    if (seg == "..") {
      if (parts.empty()) return std::nullopt;  // above the app's directory: the disk's
      parts.pop_back();
    } else if (!seg.empty() && seg != ".") {
      parts.push_back(seg);
    }
    start = slash + 1;
  }
  std::string out;
  for (auto seg : parts) {
    if (!out.empty()) out += '/';
    out += seg;
  }
  return out;
}

const Entry* find_file(std::string_view path) {
  if (g_archive == nullptr) return nullptr;
  auto key = normalize(path);
  if (!key) return nullptr;
  auto it = g_archive->files.find(*key);
  return it == g_archive->files.end() ? nullptr : it->second;
}

const std::map<std::string, const char*>* find_dir(std::string_view path) {
  if (g_archive == nullptr) return nullptr;
  auto key = normalize(path);
  if (!key) return nullptr;
  auto it = g_archive->dirs.find(*key);
  return it == g_archive->dirs.end() ? nullptr : &it->second;
}

// A sealed memfd holding the entry, so code that wants a file descriptor or a
// path (io.open, sendfile, dlopen) gets one: "/proc/self/fd/N" opens a new
// description of it with its own offset. Returns -1 (errno set) on failure.
int entry_fd(const Entry& e) {
  std::lock_guard<std::mutex> lock(g_fd_mutex);
  if (auto it = g_fds.find(&e); it != g_fds.end()) return it->second;
  int fd = memfd_create(e.name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return -1;
  std::string_view data = g_archive->data(e);
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int saved = errno;
      close(fd);
      errno = saved;
      return -1;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  g_fds.emplace(&e, fd);
  return fd;
}

std::string fd_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

// luaopen_ name of a C module, as Lua 5.1 makes it: dots become
// underscores, and only what follows a '-' counts ("v2-mod" -> luaopen_mod).
std::string open_symbol(std::string_view name) {
  if (size_t dash = name.find('-'); dash != std::string_view::npos) name.remove_prefix(dash + 1);
  std::string sym = "luaopen_";
  for (char c : name) sym += c == '.' ? '_' : c;
  return sym;
}

int load_cmodule(lua_State* L, const Entry& e) {
  int fd = entry_fd(e);
  if (fd < 0)
    return luaL_error(L, "error loading embedded C module '%s': %s", e.name.c_str(), std::strerror(errno));
  void* lib = dlopen(fd_path(fd).c_str(), RTLD_NOW | RTLD_LOCAL);  // kept: Lua never unloads a module
  if (lib == nullptr)
    return luaL_error(L, "error loading embedded C module '%s': %s", e.name.c_str(), dlerror());
  std::string sym = open_symbol(e.name);
  auto* open = reinterpret_cast<lua_CFunction>(dlsym(lib, sym.c_str()));
  if (open == nullptr) {
    return luaL_error(L, "error loading embedded C module '%s': no function '%s' in it", e.name.c_str(),
                      sym.c_str());
  }
  lua_pushcfunction(L, open);
  return 1;
}

void set_time(lua_State* L, const char* field, int64_t sec) {
  lua_createtable(L, 0, 2);
  lua_pushnumber(L, static_cast<lua_Number>(sec));
  lua_setfield(L, -2, "sec");
  lua_pushinteger(L, 0);
  lua_setfield(L, -2, "nsec");
  lua_setfield(L, -2, field);
}

void set_int(lua_State* L, const char* field, lua_Number v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, field);
}

// A stat table shaped like luv's fs_stat (what fs.stat returns from disk).
void push_stat(lua_State* L, const char* type, uint32_t mode, uint64_t size, int64_t mtime) {
  lua_createtable(L, 0, 17);
  lua_pushstring(L, type);
  lua_setfield(L, -2, "type");
  set_int(L, "mode", mode);
  set_int(L, "size", static_cast<lua_Number>(size));
  set_int(L, "nlink", 1);
  set_int(L, "uid", getuid());
  set_int(L, "gid", getgid());
  for (const char* f : {"dev", "rdev", "ino", "flags", "gen"}) set_int(L, f, 0);
  set_int(L, "blksize", 4096);
  set_int(L, "blocks", static_cast<lua_Number>((size + 511) / 512));
  for (const char* f : {"atime", "mtime", "ctime", "birthtime"}) set_time(L, f, mtime);
}

// ----------------------------------------------------------- Lua functions

// readFile(path) -> contents | nil (not embedded: the caller reads the disk)
int l_read_file(lua_State* L) {
  const Entry* e = find_file(luaL_checkstring(L, 1));
  if (e == nullptr) return 0;
  std::string_view d = g_archive->data(*e);
  lua_pushlstring(L, d.data(), d.size());
  return 1;
}

// stat(path) -> a stat table | nil
int l_stat(lua_State* L) {
  const char* path = luaL_checkstring(L, 1);
  if (const Entry* e = find_file(path)) {
    push_stat(L, "file", S_IFREG | (e->mode & 07777), e->size, e->mtime);
    return 1;
  }
  if (find_dir(path) != nullptr) {
    push_stat(L, "directory", S_IFDIR | 0555, 0, 0);
    return 1;
  }
  return 0;
}

// readdir(path, types) -> sorted names (or {name, type} entries) | nil
int l_readdir(lua_State* L) {
  const auto* dir = find_dir(luaL_checkstring(L, 1));
  if (dir == nullptr) return 0;
  bool types = lua_toboolean(L, 2) != 0;
  lua_createtable(L, static_cast<int>(dir->size()), 0);
  int i = 0;
  for (const auto& [name, type] : *dir) {
    if (types) {
      lua_createtable(L, 0, 2);
      lua_pushlstring(L, name.data(), name.size());
      lua_setfield(L, -2, "name");
      lua_pushstring(L, type);
      lua_setfield(L, -2, "type");
    } else {
      lua_pushlstring(L, name.data(), name.size());
    }
    lua_rawseti(L, -2, ++i);
  }
  return 1;
}

// fdPath(path) -> "/proc/self/fd/N" holding the embedded file | nil
int l_fd_path(lua_State* L) {
  const Entry* e = find_file(luaL_checkstring(L, 1));
  if (e == nullptr) return 0;
  int fd = entry_fd(*e);
  if (fd < 0) return 0;
  lua_pushstring(L, fd_path(fd).c_str());
  return 1;
}

// info() -> {name, version, entry, files, modules, cmodules, libraries} | nil
int l_info(lua_State* L) {
  if (g_archive == nullptr) return 0;
  const auto& m = g_archive->index.meta;
  lua_createtable(L, 0, 7);
  lua_pushstring(L, m.name.c_str());
  lua_setfield(L, -2, "name");
  lua_pushstring(L, m.version.c_str());
  lua_setfield(L, -2, "version");
  lua_pushstring(L, m.entry.c_str());
  lua_setfield(L, -2, "entry");
  set_int(L, "files", static_cast<lua_Number>(g_archive->files.size()));
  set_int(L, "modules", static_cast<lua_Number>(g_archive->modules.size()));
  set_int(L, "cmodules", static_cast<lua_Number>(g_archive->cmodules.size()));
  set_int(L, "libraries", static_cast<lua_Number>(g_archive->libraries.size()));
  return 1;
}

// builtins() -> the set {name = true} of modules built into the runtime
int l_builtins(lua_State* L) {
  auto names = modules::builtin_names();
  lua_createtable(L, 0, static_cast<int>(names.size()));
  for (const auto& n : names) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, n.c_str());
  }
  return 1;
}

// runtimeLibraries() -> {{name = soname, path = file} | {name = soname, error = why}...}:
// the shared libraries the runtime loads itself, which `evo build` embeds so
// that a built app needs none of them installed. The path is the copy this
// process loaded (loading it now if need be).
int l_runtime_libraries(lua_State* L) {
  lua_createtable(L, 1, 0);
  lua_createtable(L, 0, 2);
  lua_pushstring(L, simdjson_lib::kSoname);
  lua_setfield(L, -2, "name");
  if (simdjson_lib::available()) {
    lua_pushstring(L, simdjson_lib::path().c_str());
    lua_setfield(L, -2, "path");
  } else {
    lua_pushstring(L, simdjson_lib::load_error().c_str());
    lua_setfield(L, -2, "error");
  }
  lua_rawseti(L, -2, 1);
  return 1;
}

// ------------------------------------------------------------ the writer

bool copy_runtime(int in, int out, uint64_t size) {
  char buf[1 << 16];
  uint64_t done = 0;
  while (done < size) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(sizeof buf, size - done));
    ssize_t n = pread(in, buf, want, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    for (ssize_t w = 0; w < n;) {
      ssize_t m = write(out, buf + w, static_cast<size_t>(n - w));
      if (m < 0 && errno == EINTR) continue;
      if (m <= 0) return false;
      w += m;
    }
    done += static_cast<uint64_t>(n);
  }
  return true;
}

// strip(1) --strip-all on the runtime copy: drops the symbol table and
// debug info; the dynamic symbols C modules link against stay.
std::string run_strip(const std::string& path) {
  std::string prog = "strip", flag = "--strip-all";
  std::vector<char*> argv = {prog.data(), flag.data(), const_cast<char*>(path.c_str()), nullptr};
  pid_t pid = 0;
  if (posix_spawnp(&pid, "strip", nullptr, nullptr, argv.data(), environ) != 0) {
    return "--strip needs strip(1) from binutils on PATH";
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "strip(1) failed on " + path;
  return {};
}

std::string field_string(lua_State* L, int idx, const char* field) {
  lua_getfield(L, idx, field);
  size_t len = 0;
  const char* s = lua_tolstring(L, -1, &len);
  std::string out = s != nullptr ? std::string(s, len) : std::string();
  lua_pop(L, 1);
  return out;
}

lua_Number field_number(lua_State* L, int idx, const char* field, lua_Number dflt) {
  lua_getfield(L, idx, field);
  lua_Number v = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : dflt;
  lua_pop(L, 1);
  return v;
}

Kind kind_of(const std::string& k) {
  if (k == "module") return Kind::Module;
  if (k == "cmodule") return Kind::CModule;
  if (k == "library") return Kind::Library;
  return Kind::File;
}

int fail(lua_State* L, const std::string& message) {
  lua_pushnil(L);
  lua_pushstring(L, message.c_str());
  return 2;
}

// writeApp(out, meta, entries, strip) -> true | nil, message. For `evo
// build` (the command line, outside tasks): plain blocking calls.
// entries: {kind = "module" | "cmodule" | "library" | "file", name, data, mode, mtime}
int l_write_app(lua_State* L) {
  std::string out = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  bool strip = lua_toboolean(L, 4) != 0;
  app_archive::Meta meta{field_string(L, 2, "name"), field_string(L, 2, "version"),
                         field_string(L, 2, "entry")};
  std::vector<Entry> entries;
  std::vector<std::string> datas;  // the strings outlive the call's stack slots this way
  int n = static_cast<int>(lua_objlen(L, 3));
  for (int i = 1; i <= n; ++i) {
    lua_rawgeti(L, 3, i);
    Entry e;
    e.kind = kind_of(field_string(L, -1, "kind"));
    e.name = field_string(L, -1, "name");
    e.mode = static_cast<uint32_t>(field_number(L, -1, "mode", 0644));
    e.mtime = static_cast<int64_t>(field_number(L, -1, "mtime", 0));
    datas.push_back(field_string(L, -1, "data"));
    entries.push_back(std::move(e));
    lua_pop(L, 1);
  }

  std::string tmp = out + ".evo-build.tmp";
  int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (self < 0)
    return fail(L, std::string("cannot read the runtime (/proc/self/exe): ") + std::strerror(errno));
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
  if (fd < 0) {
    std::string msg = "cannot write '" + out + "': " + std::strerror(errno);
    close(self);
    return fail(L, msg);
  }
  bool copied = copy_runtime(self, fd, g_runtime_size);
  close(self);
  if (!copied || close(fd) != 0) {
    unlink(tmp.c_str());
    return fail(L, "cannot write '" + out + "': " + std::strerror(errno));
  }
  uint64_t runtime = g_runtime_size;
  if (strip) {
    if (std::string err = run_strip(tmp); !err.empty()) {
      unlink(tmp.c_str());
      return fail(L, err);
    }
    struct stat st {};
    stat(tmp.c_str(), &st);
    runtime = static_cast<uint64_t>(st.st_size);
  }
  std::vector<std::string_view> views(datas.begin(), datas.end());
  std::string archive = app_archive::serialize(meta, entries, views, runtime);
  fd = open(tmp.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  bool ok = fd >= 0;
  for (size_t done = 0; ok && done < archive.size();) {
    ssize_t w = write(fd, archive.data() + done, archive.size() - done);
    if (w < 0 && errno == EINTR) continue;
    ok = w > 0;
    if (ok) done += static_cast<size_t>(w);
  }
  if (fd >= 0 && close(fd) != 0) ok = false;
  if (!ok || chmod(tmp.c_str(), 0755) != 0 || rename(tmp.c_str(), out.c_str()) != 0) {
    std::string msg = "cannot write '" + out + "': " + std::strerror(errno);
    unlink(tmp.c_str());
    return fail(L, msg);
  }
  lua_pushboolean(L, 1);
  return 1;
}

}  // namespace

bool open_self() {
  int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st {};
  char last[app_archive::kTrailerSize];
  bool read = fstat(fd, &st) == 0 && st.st_size >= static_cast<off_t>(sizeof last) &&
              pread(fd, last, sizeof last, st.st_size - static_cast<off_t>(sizeof last)) ==
                  static_cast<ssize_t>(sizeof last);
  const auto size = static_cast<uint64_t>(st.st_size);
  g_runtime_size = size;
  auto trailer = read ? app_archive::parse_trailer({last, sizeof last}, size) : std::nullopt;
  if (!trailer) {
    close(fd);
    return false;
  }
  // Map from the page holding archive_start to the end: lazily paged in, so
  // a large asset costs nothing until it is read.
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t map_start = trailer->archive_start / page * page;
  const size_t map_size = static_cast<size_t>(size - map_start);
  void* map = mmap(nullptr, map_size, PROT_READ, MAP_PRIVATE, fd, static_cast<off_t>(map_start));
  close(fd);
  if (map == MAP_FAILED) return false;
  const char* archive = static_cast<const char*>(map) + (trailer->archive_start - map_start);
  std::string_view index(archive + (trailer->index_offset - trailer->archive_start), trailer->index_size);
  auto parsed = app_archive::parse_index(index, trailer->index_offset - trailer->archive_start);
  if (!parsed) {
    munmap(map, map_size);
    return false;
  }
  static Archive archive_storage;  // lives as long as the process: Lua states point into it
  Archive& a = archive_storage;
  a.map = map;
  a.map_size = map_size;
  a.base = archive;
  a.runtime_size = trailer->archive_start;
  a.index = std::move(*parsed);
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  a.exe_dir = n > 0 ? dir_of(std::string(exe, static_cast<size_t>(n))) : "/";
  index_entries(a);
  g_archive = &a;
  g_runtime_size = trailer->archive_start;
  return true;
}

const app_archive::Meta* meta() { return g_archive != nullptr ? &g_archive->index.meta : nullptr; }

std::string library_path(std::string_view soname) {
  if (g_archive == nullptr) return {};
  auto it = g_archive->libraries.find(soname);
  if (it == g_archive->libraries.end()) return {};
  int fd = entry_fd(*it->second);
  return fd < 0 ? std::string() : fd_path(fd);
}

uint64_t runtime_size() { return g_runtime_size; }

int load_entry(lua_State* L) {
  const std::string& name = g_archive->index.meta.entry;
  auto it = g_archive->modules.find(name);
  if (it == g_archive->modules.end()) {
    lua_pushfstring(L, "the app's entry module '%s' is missing from its archive", name.c_str());
    return LUA_ERRFILE;
  }
  std::string_view code = g_archive->data(*it->second);
  return luaL_loadbuffer(L, code.data(), code.size(), ("=" + name).c_str());
}

int searcher(lua_State* L) {
  const char* name = luaL_checkstring(L, 1);
  if (g_archive == nullptr) return 0;
  if (auto it = g_archive->modules.find(std::string_view(name)); it != g_archive->modules.end()) {
    std::string_view code = g_archive->data(*it->second);
    // A stripped chunk has no name of its own: it gets "=name".
    if (luaL_loadbuffer(L, code.data(), code.size(), lua_pushfstring(L, "=%s", name)) != 0) {
      return luaL_error(L, "error loading embedded module '%s': %s", name, lua_tostring(L, -1));
    }
    return 1;
  }
  if (auto it = g_archive->cmodules.find(std::string_view(name)); it != g_archive->cmodules.end()) {
    return load_cmodule(L, *it->second);
  }
  lua_pushfstring(L, "\n\tno module '%s' in the app's archive", name);
  return 1;
}

namespace {

bool reads_only(const char* mode) { return std::strpbrk(mode, "wa+") == nullptr; }

// io.open / io.lines with the path of an embedded file replaced by its memfd:
// the script gets a real Lua file either way. Upvalue 1: the original.
int io_hook(lua_State* L, bool lines) {
  int nargs = lua_gettop(L);
  if (nargs >= 1 && lua_type(L, 1) == LUA_TSTRING) {
    const char* mode = lines ? "r" : luaL_optstring(L, 2, "r");
    const Entry* e = reads_only(mode) ? find_file(lua_tostring(L, 1)) : nullptr;
    int fd = e != nullptr ? entry_fd(*e) : -1;
    if (fd >= 0) {
      lua_pushstring(L, fd_path(fd).c_str());
      lua_replace(L, 1);
    }
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, nargs, LUA_MULTRET);
  return lua_gettop(L);
}

int io_open_hook(lua_State* L) { return io_hook(L, false); }
int io_lines_hook(lua_State* L) { return io_hook(L, true); }

}  // namespace

void install_io_hooks(lua_State* L) {
  lua_getglobal(L, "io");
  lua_getfield(L, -1, "open");
  lua_pushcclosure(L, io_open_hook, 1);
  lua_setfield(L, -2, "open");
  lua_getfield(L, -1, "lines");
  lua_pushcclosure(L, io_lines_hook, 1);
  lua_setfield(L, -2, "lines");
  lua_pop(L, 1);
}

}  // namespace evo::appfs

namespace evo {

int open_appfs(lua_State* L) {
  const luaL_Reg functions[] = {
      {"readFile", appfs::l_read_file},
      {"stat", appfs::l_stat},
      {"readdir", appfs::l_readdir},
      {"fdPath", appfs::l_fd_path},
      {"info", appfs::l_info},
      {"builtins", appfs::l_builtins},
      {"writeApp", appfs::l_write_app},
      {"runtimeLibraries", appfs::l_runtime_libraries},
      {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  lua_pushboolean(L, appfs::g_archive != nullptr ? 1 : 0);
  lua_setfield(L, -2, "active");
  return 1;
}

}  // namespace evo
