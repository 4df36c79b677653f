#include "cli/watch.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <uv.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "lua/loadreport.h"

extern char** environ;

namespace evo::cli::watch {
namespace {

namespace fs = std::filesystem;

// Editors save in several steps (write a temporary file, rename it over,
// touch): everything within this quiet period is one change.
constexpr uint64_t kDebounceMs = 150;
// How long a stopped child gets between SIGTERM and SIGKILL. A supervisor
// (--workers) drains its workers' in-flight requests first (for --grace S,
// 10 s by default), so it gets that much more.
constexpr uint64_t kStopMs = 5000;

struct Args {
  std::vector<std::string> child;       // the command to run: argv without the watch options
  std::vector<std::string> trees;       // --watch-path directories: every file below them
  std::vector<std::string> test_paths;  // `evo test`'s files and directories
  std::string script;                   // the script, when there is one
  bool watch = false;
  bool test = false;
  bool chunk = false;    // an -e chunk: something runs even without a script
  bool workers = false;  // the child is an `evo --workers N` supervisor: reload with SIGHUP
  double grace = 10;     // its --grace S: how long its workers may take to drain
  std::string error;
};

bool is(const char* a, const char* b) { return std::strcmp(a, b) == 0; }

bool starts(const char* a, const char* prefix) { return std::strncmp(a, prefix, std::strlen(prefix)) == 0; }

// Consumes argv[i] (and its value) when it is a watch option.
bool take_watch_option(Args& args, int argc, char** argv, int& i) {
  const char* a = argv[i];
  if (is(a, "--watch")) {
    args.watch = true;
  } else if (is(a, "--watch-path")) {
    args.watch = true;  // --watch-path alone means --watch, as in Node
    if (i + 1 >= argc) {
      args.error = "'--watch-path' needs a directory";
    } else {
      args.trees.emplace_back(argv[++i]);
    }
  } else if (starts(a, "--watch-path=")) {
    args.watch = true;
    args.trees.emplace_back(a + std::strlen("--watch-path="));
  } else {
    return false;
  }
  return true;
}

// The options of `evo test` that take a separate value (lib/evo/test.lua's
// valueFlags): their value is not a path to watch.
bool test_value_flag(const char* a) {
  static const char* const kFlags[] = {
      "--filter", "--filter-out", "-p", "--pattern", "--exclude-pattern", "-o",
      "--output", "--seed",       "-t", "--tags",    "--exclude-tags",    "-m",
      "--lpath",  "--cpath"};
  for (const char* f : kFlags) {
    if (is(a, f)) return true;
  }
  return false;
}

// `evo test`'s arguments: files and directories, and the options' values.
void parse_test_args(Args& args, int argc, char** argv, int i) {
  for (; i < argc; ++i) {
    if (take_watch_option(args, argc, argv, i)) continue;
    const char* a = argv[i];
    args.child.emplace_back(a);
    if (test_value_flag(a) && i + 1 < argc) {
      args.child.emplace_back(argv[++i]);
    } else if (a[0] != '-') {
      args.test_paths.emplace_back(a);
    }
  }
}

// Takes the watch options out of the options before the script (or out of
// `evo test`'s arguments); everything else is the child's command line,
// unchanged. It follows cli.cpp's parse() only as far as knowing where the
// options end and which ones take a separate value: cli.cpp's parse() checks
// the child's command line when the child runs.
Args parse(int argc, char** argv) {
  Args args;
  args.child.emplace_back(argv[0]);
  bool before = false;  // -e, -l, -j or -i seen: `test` is then a script name, as in cli.cpp
  int i = 1;
  for (; i < argc; ++i) {
    if (take_watch_option(args, argc, argv, i)) continue;
    const char* a = argv[i];
    args.child.emplace_back(a);
    if (is(a, "test") && !before) {
      args.test = true;
      parse_test_args(args, argc, argv, i + 1);
      return args;
    }
    if (a[0] != '-' || is(a, "-")) {
      args.script = a;
      break;
    }
    if (is(a, "--")) {
      if (i + 1 < argc) {
        args.child.emplace_back(argv[++i]);
        args.script = argv[i];
      }
      break;
    }
    if (a[1] == 'b') break;  // -b: the rest is jit.bcsave's
    if (a[1] == 'e' || a[1] == 'l' || a[1] == 'j' || is(a, "-i")) before = true;
    if (a[1] == 'e') args.chunk = true;
    if (is(a, "--grace") && i + 1 < argc) args.grace = std::atof(argv[i + 1]);
    if ((is(a, "-e") || is(a, "-l") || is(a, "-j") || is(a, "--workers") || is(a, "--grace")) &&
        i + 1 < argc) {
      args.child.emplace_back(argv[++i]);
    }
    if (is(a, "--workers") || starts(a, "--workers=")) args.workers = true;
  }
  for (++i; i < argc; ++i) args.child.emplace_back(argv[i]);  // the script's own arguments
  return args;
}

// The same absolute path loadreport gives (symbolic links resolved), so a
// file named on the command line and the same file reported match.
std::string absolute(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::absolute(path, ec), ec);
  return ec ? path : p.string();
}

void say(const char* fmt, ...) {
  char line[4096];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "[evo] %s\n", line);
  std::fflush(stderr);
}

// Names under a --watch-path that are not the project's files: hidden files
// (editor swap files, .git) and backups ending in ~.
bool ignored(const std::string& name) { return name.empty() || name[0] == '.' || name.back() == '~'; }

class Watcher {
 public:
  explicit Watcher(Args args) : args_(std::move(args)) {}
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  int run();

 private:
  enum class State { Idle, Running, Stopping };

  // One watched directory. Directories, not files, are watched, so an
  // editor that replaces a file (rename over it, or delete and create) is
  // seen: the new file has the same name in the same directory.
  struct Dir {
    Watcher* owner = nullptr;
    std::string path;
    std::set<std::string> names;  // the files watched in it
    bool tree = false;            // under a --watch-path: every file in it
    uv_fs_event_t handle{};
  };

  bool setup();
  Dir& dir(const std::string& path);
  void watch_file(const std::string& path);
  void watch_tree(const std::string& root);
  void read_reports();
  void changed(const std::string& path);
  void settled();
  void spawn();
  void stop(int signum);
  uint64_t stop_ms() const;
  void exited(int64_t status, int term_signal);
  void quit(int signum);
  void close_all();
  std::string shown(const std::string& path) const;
  std::string what() const;

  static void on_dir_event(uv_fs_event_t* h, const char* name, int events, int status);
  static void on_report(uv_fs_event_t* h, const char*, int, int status);
  static void on_exit(uv_process_t* p, int64_t status, int term_signal);
  static void on_closed_child(uv_handle_t* h);

  Args args_;
  uv_loop_t loop_{};
  std::string exe_, cwd_, report_dir_, report_path_;
  int report_fd_ = -1;
  std::string partial_;  // a report line not yet complete
  std::map<std::string, std::unique_ptr<Dir>> dirs_;
  std::set<std::string> pending_;  // changed files, until the debounce settles
  std::string first_;              // the first of them, named in the message
  std::unique_ptr<uv_process_t> child_;
  State state_ = State::Idle;
  bool restart_ = false;  // spawn again once the stopped child has exited
  bool quitting_ = false;
  int exit_code_ = 0;
  uv_fs_event_t report_watch_{};
  uv_timer_t debounce_{}, kill_timer_{};
  uv_signal_t signals_[3]{};
};

Watcher::Dir& Watcher::dir(const std::string& path) {
  auto& slot = dirs_[path];
  if (slot) return *slot;
  slot = std::make_unique<Dir>();
  slot->owner = this;
  slot->path = path;
  uv_fs_event_init(&loop_, &slot->handle);
  slot->handle.data = slot.get();
  int rc = uv_fs_event_start(&slot->handle, on_dir_event, path.c_str(), 0);
  // A directory that does not exist yet (dofile of a missing file) is not an
  // error; running out of inotify watches is worth saying.
  if (rc != 0 && rc != UV_ENOENT) say("cannot watch %s: %s", path.c_str(), uv_strerror(rc));
  return *slot;
}

void Watcher::watch_file(const std::string& path) {
  fs::path p(path);
  dir(p.parent_path().string()).names.insert(p.filename().string());
}

void Watcher::watch_tree(const std::string& root) {
  dir(root).tree = true;
  std::error_code ec;
  fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    if (!it->is_directory(ec)) continue;
    if (ignored(it->path().filename().string())) {
      it.disable_recursion_pending();
      continue;
    }
    dir(it->path().string()).tree = true;
  }
}

// The report file: each line a file the child (or a process below it) loaded.
void Watcher::read_reports() {
  char buf[8192];
  ssize_t n;
  while ((n = read(report_fd_, buf, sizeof buf)) > 0) {
    partial_.append(buf, static_cast<size_t>(n));
  }
  size_t start = 0, end;
  while ((end = partial_.find('\n', start)) != std::string::npos) {
    watch_file(partial_.substr(start, end - start));
    start = end + 1;
  }
  partial_.erase(0, start);
}

void Watcher::on_report(uv_fs_event_t* h, const char*, int, int status) {
  if (status == 0) static_cast<Watcher*>(h->data)->read_reports();
}

void Watcher::on_dir_event(uv_fs_event_t* h, const char* name, int, int status) {
  auto* d = static_cast<Dir*>(h->data);
  if (status != 0 || name == nullptr) return;
  std::string file = d->path + "/" + name;
  if (d->names.count(name) != 0) {
    d->owner->changed(file);
  } else if (d->tree && !ignored(name)) {
    std::error_code ec;
    if (fs::is_directory(file, ec)) {
      d->owner->watch_tree(file);  // a new directory: its files are watched too
    } else {
      d->owner->changed(file);
    }
  }
}

void Watcher::changed(const std::string& path) {
  if (quitting_) return;
  if (pending_.empty()) first_ = path;
  pending_.insert(path);
  // Each event restarts the quiet period: a burst of writes is one change.
  uv_timer_start(
      &debounce_, [](uv_timer_t* t) { static_cast<Watcher*>(t->data)->settled(); }, kDebounceMs, 0);
}

std::string Watcher::shown(const std::string& path) const {
  if (path.size() > cwd_.size() && path.compare(0, cwd_.size(), cwd_) == 0 && path[cwd_.size()] == '/') {
    return path.substr(cwd_.size() + 1);
  }
  return path;
}

// "lib/foo.lua changed", "lib/foo.lua changed (and 2 more)"
std::string Watcher::what() const {
  std::string s = shown(first_) + " changed";
  if (pending_.size() > 1) s += " (and " + std::to_string(pending_.size() - 1) + " more)";
  return s;
}

void Watcher::settled() {
  std::string change = what();
  pending_.clear();
  const char* verb = args_.test ? "rerunning tests" : "restarting";
  if (state_ == State::Idle) {
    say("%s: %s", verb, change.c_str());
    spawn();
  } else if (state_ == State::Running && args_.workers) {
    // The supervisor replaces its workers one at a time (a rolling reload):
    // connections keep being served while the new code starts.
    say("reloading workers: %s", change.c_str());
    uv_process_kill(child_.get(), SIGHUP);
  } else if (state_ == State::Running) {
    say("%s: %s", verb, change.c_str());
    restart_ = true;
    stop(SIGTERM);
  }  // Stopping: the restart is already on its way
}

void Watcher::spawn() {
  std::vector<char*> argv;
  for (auto& a : args_.child) argv.push_back(a.data());
  argv.push_back(nullptr);
  // The child's environment: this one, plus where to report loaded files
  // (inherited by its own children: workers report too).
  std::string report = std::string(loadreport::kEnv) + "=" + report_path_;
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!starts(*e, loadreport::kEnv) || (*e)[std::strlen(loadreport::kEnv)] != '=') env.push_back(*e);
  }
  env.push_back(report.data());
  env.push_back(nullptr);
  uv_stdio_container_t stdio[3];
  for (int fd = 0; fd < 3; ++fd) {
    stdio[fd].flags = UV_INHERIT_FD;
    stdio[fd].data.fd = fd;
  }
  uv_process_options_t opts{};
  opts.file = exe_.c_str();
  opts.args = argv.data();
  opts.env = env.data();
  opts.exit_cb = on_exit;
  opts.stdio_count = 3;
  opts.stdio = stdio;
  child_ = std::make_unique<uv_process_t>();
  child_->data = this;
  int rc = uv_spawn(&loop_, child_.get(), &opts);
  if (rc != 0) {
    say("cannot start %s: %s; waiting for a change", exe_.c_str(), uv_strerror(rc));
    uv_close(reinterpret_cast<uv_handle_t*>(child_.release()), on_closed_child);
    state_ = State::Idle;
    return;
  }
  state_ = State::Running;
}

uint64_t Watcher::stop_ms() const {
  return args_.workers ? kStopMs + static_cast<uint64_t>(args_.grace * 1000) : kStopMs;
}

void Watcher::stop(int signum) {
  state_ = State::Stopping;
  uv_process_kill(child_.get(), signum);
  uv_timer_start(
      &kill_timer_,
      [](uv_timer_t* t) {
        auto* w = static_cast<Watcher*>(t->data);
        say("the child did not stop within %g s: killing it", static_cast<double>(w->stop_ms()) / 1000);
        if (w->child_) uv_process_kill(w->child_.get(), SIGKILL);
      },
      stop_ms(), 0);
}

// libuv frees nothing: the handle is ours again once closed.
void Watcher::on_closed_child(uv_handle_t* h) {
  std::unique_ptr<uv_process_t>(reinterpret_cast<uv_process_t*>(h));
}

void Watcher::on_exit(uv_process_t* p, int64_t status, int term_signal) {
  static_cast<Watcher*>(p->data)->exited(status, term_signal);
}

void Watcher::exited(int64_t status, int term_signal) {
  uv_timer_stop(&kill_timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(child_.release()), on_closed_child);
  state_ = State::Idle;
  if (quitting_) {
    close_all();
    return;
  }
  if (restart_) {
    restart_ = false;
    spawn();
    return;
  }
  const char* name = args_.test ? "the tests" : args_.script.empty() ? "the command" : args_.script.c_str();
  const char* then = args_.test ? "rerun" : "restart";
  if (term_signal != 0) {
    say("%s was killed by signal %d; waiting for a change to %s", name, term_signal, then);
  } else if (status == 0) {
    say("%s %s; waiting for a change to %s", name, args_.test ? "passed" : "exited (status 0)", then);
  } else {
    say("%s failed (status %lld); waiting for a change to %s", name, static_cast<long long>(status), then);
  }
}

// SIGINT, SIGTERM, SIGHUP: stop the child, then exit 128 + the signal. A
// second signal while the child is stopping kills it at once.
void Watcher::quit(int signum) {
  if (quitting_) {
    if (child_) uv_process_kill(child_.get(), SIGKILL);
    return;
  }
  quitting_ = true;
  exit_code_ = 128 + signum;
  uv_timer_stop(&debounce_);
  restart_ = false;
  if (state_ == State::Running) {
    stop(SIGTERM);
  } else if (state_ == State::Idle) {
    close_all();
  }  // Stopping: exited() closes everything
}

void Watcher::close_all() {
  auto close = [](auto* h) {
    auto* handle = reinterpret_cast<uv_handle_t*>(h);
    if (!uv_is_closing(handle)) uv_close(handle, nullptr);
  };
  for (auto& s : signals_) close(&s);
  close(&debounce_);
  close(&kill_timer_);
  close(&report_watch_);
  for (auto& [path, d] : dirs_) close(&d->handle);
}

bool Watcher::setup() {
  char buf[4096];
  size_t size = sizeof buf;
  if (uv_exepath(buf, &size) != 0) return false;
  exe_.assign(buf, size);
  size = sizeof buf;
  if (uv_cwd(buf, &size) != 0) return false;
  cwd_.assign(buf, size);
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/evo-watch-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) return false;
  report_dir_ = templ;
  report_path_ = report_dir_ + "/loaded";
  report_fd_ = open(report_path_.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
  return report_fd_ >= 0;
}

int Watcher::run() {
  if (!args_.error.empty()) {
    std::fprintf(stderr, "evo: %s\n", args_.error.c_str());
    return 2;
  }
  if (!args_.test && !args_.chunk && (args_.script.empty() || args_.script == "-")) {
    std::fprintf(stderr, "evo: --watch needs a script file to run (or `evo test --watch`)\n");
    return 2;
  }
  if (!setup()) {
    std::fprintf(stderr, "evo: --watch cannot start: %s\n", std::strerror(errno));
    return 1;
  }
  // A closed stderr must not kill the watcher (leaving its child behind). A
  // handler that does nothing, not SIG_IGN: the child would inherit that.
  struct sigaction pipe_action {};
  pipe_action.sa_handler = [](int) {};
  sigaction(SIGPIPE, &pipe_action, nullptr);
  uv_loop_init(&loop_);
  uv_fs_event_init(&loop_, &report_watch_);
  report_watch_.data = this;
  uv_fs_event_start(&report_watch_, on_report, report_path_.c_str(), 0);
  for (auto* t : {&debounce_, &kill_timer_}) {
    uv_timer_init(&loop_, t);
    t->data = this;
  }
  const int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
  for (int i = 0; i < 3; ++i) {
    uv_signal_init(&loop_, &signals_[i]);
    signals_[i].data = this;
    uv_signal_start(
        &signals_[i], [](uv_signal_t* s, int signum) { static_cast<Watcher*>(s->data)->quit(signum); },
        kSignals[i]);
  }
  int rc = 0;
  for (const auto& t : args_.trees) {
    std::error_code ec;
    if (!fs::is_directory(t, ec)) {
      std::fprintf(stderr, "evo: --watch-path %s: not a directory\n", t.c_str());
      rc = 2;
    }
    watch_tree(absolute(t));
  }
  if (!args_.script.empty() && args_.script != "-") watch_file(absolute(args_.script));
  // `evo test --watch`: the directories it runs are watched whole, so a new
  // spec file counts; with none, tests/ (the runner's default) or else
  // busted's spec/ (the runner then searches ., too large to watch whole).
  std::vector<std::string> paths = args_.test_paths;
  if (args_.test && paths.empty()) {
    for (const char* d : {"tests", "spec"}) {
      if (paths.empty() && fs::is_directory(d)) paths.emplace_back(d);
    }
  }
  for (const auto& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      watch_tree(absolute(p));
    } else {
      watch_file(absolute(p));
    }
  }
  if (rc != 0) {
    close_all();
  } else {
    spawn();
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
  close(report_fd_);
  unlink(report_path_.c_str());
  rmdir(report_dir_.c_str());
  return rc != 0 ? rc : exit_code_;
}

}  // namespace

bool requested(int argc, char** argv) { return parse(argc, argv).watch; }

int main(int argc, char** argv) {
  Watcher watcher(parse(argc, argv));
  return watcher.run();
}

}  // namespace evo::cli::watch
