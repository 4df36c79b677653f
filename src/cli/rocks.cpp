#include "cli/rocks.h"

#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "lua/modules.h"

extern char** environ;

namespace evo::cli::rocks {
namespace {

// Debian's LuaJIT headers (libluajit2-5.1-dev): the ones Evo was built with.
constexpr const char kLuaJitIncludeDir[] = "/usr/include/luajit-2.1";
constexpr const char kMissing[] =
    "evo rocks: luarocks was not found in PATH; install Debian's package: apt-get install luarocks\n";

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// A Lua string literal for any bytes (paths may hold quotes or backslashes).
std::string quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 32 || c == 127) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\%03u", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string dir_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string cwd() {
  std::vector<char> buf(4096);
  while (::getcwd(buf.data(), buf.size()) == nullptr) {
    if (errno != ERANGE) return ".";
    buf.resize(buf.size() * 2);
  }
  return buf.data();
}

// The project's tree: the nearest existing lua_modules from the current
// directory up (so `evo rocks` works from any subdirectory, as npm does),
// else ./lua_modules, which luarocks creates.
std::string project_tree() {
  auto trees = modules::lua_modules_trees("");
  return trees.empty() ? cwd() + "/lua_modules" : trees.front();
}

std::string evo_path() {
  char buf[4096];
  size_t size = sizeof buf;
  if (uv_exepath(buf, &size) != 0) return "evo";
  return std::string(buf, size);
}

// Where luarocks is, searched in PATH as execvp would; empty if nowhere.
std::string find_luarocks() {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    std::string candidate = (dir.empty() ? "." : dir) + "/luarocks";
    if (is_file(candidate) && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

bool has_option(const std::vector<std::string>& args, const std::vector<std::string>& names) {
  for (const auto& a : args) {
    for (const auto& n : names) {
      if (a == n || a.rfind(n + "=", 0) == 0) return true;
    }
  }
  return false;
}

bool builds(const std::vector<std::string>& args) { return has_option(args, {"install", "make", "build"}); }

// The generated configuration lives for one luarocks run.
class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/evo-rocks-XXXXXX.lua";
    std::vector<char> name(pattern.begin(), pattern.end());
    name.push_back('\0');
    int fd = ::mkstemps(name.data(), 4);
    if (fd < 0) return;
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    path_ = name.data();
    if (!ok) {
      ::unlink(path_.c_str());
      path_.clear();
    }
  }
  ~TempFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Runs the program like system(3) does: the parent ignores SIGINT and SIGQUIT
// while it waits (Ctrl-C reaches luarocks, which the terminal signals too),
// the child gets the default actions back.
int run_and_wait(const std::string& program, const std::vector<std::string>& argv) {
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  struct sigaction ignore {
  }, old_int{}, old_quit{};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGINT, &ignore, &old_int);
  ::sigaction(SIGQUIT, &ignore, &old_quit);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGQUIT);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, program.c_str(), nullptr, &attr, cargv.data(), environ);
  posix_spawnattr_destroy(&attr);
  int status = 0;
  if (rc == 0) {
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGQUIT, &old_quit, nullptr);
  if (rc != 0) {
    std::fprintf(stderr, "evo rocks: cannot run %s: %s\n", program.c_str(), std::strerror(rc));
    return 127;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1;
}

}  // namespace

std::string config_text(const std::string& evo, const std::string& tree) {
  std::string arch = EVO_MULTIARCH;
  std::string libdir = arch.empty() ? "/usr/lib" : "/usr/lib/" + arch;
  std::string out;
  out += "-- Written by `evo rocks` for one luarocks run (docs/rocks.md).\n";
  out += "lua_version = \"5.1\"\n";
  out += "-- Wrappers of rock scripts (" + tree + "/bin) run evo.\n";
  out += "lua_interpreter = " + quote(evo.substr(evo.find_last_of('/') + 1)) + "\n";
  out += "rocks_trees = { { name = \"project\", root = " + quote(tree) + " } }\n";
  out += "-- C rocks link no Lua library: evo holds LuaJIT whole and exports its C API.\n";
  out += "link_lua_explicitly = false\n";
  out += "variables = {\n";
  out += "  LUA = " + quote(evo) + ",\n";
  out += "  LUA_BINDIR = " + quote(dir_of(evo)) + ",\n";
  out += "  LUA_DIR = \"/usr\",\n";
  out += "  LUA_INCDIR = " + quote(kLuaJitIncludeDir) + ",\n";
  out += "  LUA_LIBDIR = " + quote(libdir) + ",\n";
  out += "  -- Empty, so a Makefile that links $(LUALIB) fails loudly instead of\n";
  out += "  -- loading a second Lua VM into evo.\n";
  out += "  LUALIB = \"\",\n";
  out += "  LIBFLAG = \"-shared\",\n";
  out += "}\n";
  return out;
}

int main(const std::vector<std::string>& args) {
  std::string luarocks = find_luarocks();
  if (luarocks.empty()) {
    std::fputs(kMissing, stderr);
    return 127;
  }
  std::string tree = project_tree();
  TempFile config(config_text(evo_path(), tree));
  if (config.path().empty()) {
    std::fprintf(stderr, "evo rocks: cannot write a configuration file in TMPDIR: %s\n",
                 std::strerror(errno));
    return 1;
  }
  if (builds(args) && !is_file(std::string(kLuaJitIncludeDir) + "/lua.h")) {
    std::fprintf(stderr,
                 "evo rocks: note: %s/lua.h is missing: C rocks need apt-get install libluajit2-5.1-dev\n",
                 kLuaJitIncludeDir);
  }
  // The variable for 5.1 wins over LUAROCKS_CONFIG in luarocks: drop it.
  ::unsetenv("LUAROCKS_CONFIG_5_1");
  ::setenv("LUAROCKS_CONFIG", config.path().c_str(), 1);
  std::vector<std::string> argv = {"luarocks"};
  if (!has_option(args, {"--lua-version"})) argv.insert(argv.end(), {"--lua-version", "5.1"});
  // An explicit tree choice (--tree, --local, --global, --project-tree) wins.
  if (!has_option(args, {"--tree", "--local", "--global", "--project-tree"}))
    argv.insert(argv.end(), {"--tree", tree});
  argv.insert(argv.end(), args.begin(), args.end());
  return run_and_wait(luarocks, argv);
}

}  // namespace evo::cli::rocks
