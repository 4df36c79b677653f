// Io: how Evo's operations meet the operating system — one interface, with
// the implementations behind it (Zig's std.Io):
//
//   evented   libuv: an operation starts, its task suspends, a libuv
//             callback finishes it (src/io/evented_io.cpp)
//   blocking  plain system calls, poll() for deadlines (src/io/blocking_io.cpp)
//   uring     io_uring: operations submitted to a ring in batches, their
//             completions reaped on the loop (src/io/uring_io.cpp, issue 14;
//             what is not on the ring yet is the evented Io's: docs/io.md)
//
// Each call says whether its caller can wait (`wait`): a task that can yield
// can; the main chunk outside a task, a finalizer or a callback cannot. An Io
// that cannot suspend this call performs it blocking — the evented Io hands
// such a call to the blocking one and adopts the result into libuv — so the
// same script gives the same results in every mode, and the modules above
// (src/bind) never ask which implementation runs.
//
// An operation reports through `done` exactly once: at once, inside the call
// (the call returns nullptr then), or later from the loop (the call returns
// the operation in flight). cancel() on an operation in flight means done
// is never called; the operation frees itself.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace evo {

class Transport;

enum class SocketKind : uint8_t { Tcp, Pipe };

// What an operation gives back: a connected transport, or an error — a libuv
// status (`status` < 0), or an Evo error code such as "Timeout" or "Closed".
struct IoResult {
  std::unique_ptr<Transport> transport;
  int status = 0;
  const char* code = nullptr;
  std::string message;  // the error's detail: the address, the path

  [[nodiscard]] bool ok() const { return status == 0 && code == nullptr; }
  static IoResult failed(int status, std::string detail);
  static IoResult failed(const char* code, std::string message);
};

using IoDone = std::function<void(IoResult)>;

// What a timer calls when it fires: fn(arg, id), a plain function and two
// words (a task and its wait id), so a sleep copies and allocates nothing.
struct IoWake {
  void (*fn)(void* arg, uint32_t id) = nullptr;
  void* arg = nullptr;
  uint32_t id = 0;
  void operator()() const {
    if (fn != nullptr) fn(arg, id);
  }
};

class IoOp {
 public:
  virtual void cancel() = 0;

 protected:
  ~IoOp() = default;
};

// A listening socket.
class IoListener {
 public:
  virtual ~IoListener() = default;
  // Takes one connection; `timeout` seconds (<= 0: for ever) when it blocks.
  virtual IoOp* accept(bool wait, double timeout, IoDone done) = 0;
  // From now on every connection is accepted as it arrives and handed to
  // `each` (from the loop; the evented Io only). accept() is not used then.
  virtual void accept_each(std::function<void(IoResult)> each) = 0;
  [[nodiscard]] virtual int fd() const = 0;
  // An accept is in flight (the evented Io takes one at a time; a second
  // gets "Busy").
  [[nodiscard]] virtual bool accepting() const = 0;
  // Closes the socket; an accept in flight finishes with "Closed".
  virtual void close() = 0;
  // What the runtime's exit sweep does instead of close(): an owner that
  // must end more than the socket (a server and its connections).
  virtual void on_release(std::function<void()> release) = 0;
};

// A datagram received, or why none was.
struct Datagram {
  std::string data;
  std::string ip;
  int port = 0;
  int status = 0;  // an error instead, as in IoResult
  const char* code = nullptr;
  std::string message;
  [[nodiscard]] bool ok() const { return status == 0 && code == nullptr; }
};

using DatagramDone = std::function<void(Datagram)>;

// A UDP socket. The socket itself is made at the first bind or send (its
// address family is known then).
class IoUdp {
 public:
  virtual ~IoUdp() = default;
  virtual int bind(const sockaddr* addr) = 0;  // 0 or a libuv status
  // Sends now; a full socket buffer drops the datagram, as UDP may.
  virtual int send(const char* data, size_t len, const sockaddr* addr) = 0;
  // The next datagram; `timeout` seconds (<= 0: for ever) when it blocks.
  // "NotBound" when there is no socket to receive on yet.
  virtual IoOp* receive(bool wait, double timeout, DatagramDone done) = 0;
  [[nodiscard]] virtual int local_port() const = 0;
  // A receive is in flight (one at a time; a second gets "Busy").
  [[nodiscard]] virtual bool receiving() const = 0;
  // Closes the socket; a receive in flight finishes with "Closed".
  virtual void close() = 0;
};

// A child process's end: its exit status, or the signal that ended it.
struct ChildExit {
  int code = 0;
  int signal = 0;
};

// A child process started by Io::spawn.
class IoChild {
 public:
  virtual ~IoChild() = default;
  [[nodiscard]] virtual int pid() const = 0;
  virtual int kill(int signum) = 0;  // 0 or a libuv status (ESRCH once it has ended)
  // Its end; a caller that cannot wait blocks until it comes.
  virtual IoOp* wait(bool wait, std::function<void(ChildExit)> done) = 0;
};

enum class StdioMode : uint8_t { Pipe, Inherit, Ignore };

struct SpawnSpec {
  const char* file = nullptr;  // searched in PATH
  char** argv = nullptr;       // argv[0] first, nullptr last
  char** env = nullptr;        // nullptr: this process's environment
  const char* cwd = nullptr;
  StdioMode stdio[3] = {StdioMode::Pipe, StdioMode::Pipe, StdioMode::Pipe};
};

// A started child and our ends of its pipes (nullptr where not piped), or
// the libuv status of a failed start.
struct Spawned {
  int status = 0;
  std::unique_ptr<IoChild> child;
  std::unique_ptr<Transport> pipes[3];
};

// A whole-file operation: read it, or write or append data to it.
enum class FileOp : uint8_t { Read, Write, Append };
struct FileResult {
  std::string data;  // what was read
  int status = 0;    // a libuv status
  std::string path;
  [[nodiscard]] bool ok() const { return status == 0; }
};

// One operation on a file handle or a path (fs.open, file:read, file:write,
// file:sync, file:stat, fs.stat, fs.lstat, file:close): the evented Io runs
// it as a libuv fs request (the thread pool), the blocking Io as the system
// call, the uring Io as one ring entry (OPENAT, READ, WRITE, FSYNC, STATX,
// CLOSE).
enum class FsOp : uint8_t { Open, Read, Write, Fsync, Fstat, Stat, Lstat, Close };
struct FsRequest {
  FsOp op = FsOp::Stat;
  std::string path;     // Open, Stat, Lstat
  int flags = 0;        // Open: O_* flags (O_CLOEXEC is added)
  int mode = 0;         // Open: the new file's permissions
  int fd = -1;          // Read, Write, Fsync, Fstat, Close
  size_t length = 0;    // Read: at most this many bytes
  int64_t offset = -1;  // Read, Write: where; -1: the file position
  std::string data;     // Write
};
struct FsResult {
  int status = 0;     // a libuv status
  int64_t value = 0;  // Open: the descriptor; Read, Write: bytes
  std::string data;   // Read: the bytes
  uv_stat_t stat{};   // Fstat, Stat, Lstat (as libuv fills it)
  std::string path;   // Open, Stat, Lstat: for the error's message
  [[nodiscard]] bool ok() const { return status == 0; }
};

struct ListenSpec {
  const sockaddr* addr = nullptr;  // TCP: the address to bind
  socklen_t addr_len = 0;
  const char* path = nullptr;  // a Unix socket's path instead
  int backlog = 511;
};

class Io {
 public:
  virtual ~Io() = default;
  [[nodiscard]] virtual const char* name() const = 0;  // "evented", "blocking", "uring"

  // A transport over the process's standard stream fd (0, 1 or 2), which it
  // never closes. Evented: a libuv stream on a description of its own of the
  // same pipe (or terminal or socket, for stdin), so O_NONBLOCK never reaches
  // C's stdio, children or the shell; otherwise — a file, /dev/null, output
  // to a terminal, the blocking Io — the descriptor itself. *shared_flags:
  // the descriptor's flags to put back at the end when a socket could not be
  // reopened and its description is shared, else -1.
  virtual std::unique_ptr<Transport> adopt_stdio(int fd, int* shared_flags) = 0;

  // Resolves host and connects to the first address that answers;
  // `timeout` seconds (<= 0: none) bound a blocking connect.
  virtual IoOp* connect_tcp(const std::string& host, int port, double timeout, bool wait, IoDone done) = 0;
  virtual IoOp* connect_pipe(const std::string& path, bool wait, IoDone done) = 0;

  // A listening socket, or nullptr with *status set (a libuv error).
  virtual std::unique_ptr<IoListener> listen(const ListenSpec& spec, int* status) = 0;

  virtual std::unique_ptr<IoUdp> udp() = 0;

  virtual Spawned spawn(const SpawnSpec& spec) = 0;

  // Work that would hold the loop (a key derivation, a whole-file job): the
  // evented Io runs job on libuv's thread pool and done on the loop after
  // it; a caller that cannot wait, and the blocking Io, run both here. A
  // cancelled operation still queued is taken back; one already running
  // finishes, and done is not called.
  virtual IoOp* work(std::function<void()> job, bool wait, std::function<void()> done) = 0;

  // open, read or write, close as one work() job: one trip to the thread
  // pool instead of four (src/io/files.cpp); the uring Io submits the
  // steps to its ring instead.
  virtual IoOp* file(FileOp op, std::string path, std::string data, bool wait,
                     std::function<void(FileResult)> done);

  // One file-handle or path operation (FsRequest above); a caller that
  // cannot wait gets it done here, as the system call.
  virtual IoOp* fs(FsRequest req, bool wait, std::function<void(FsResult)> done) = 0;

  // A timer: done() once `seconds` have passed (task.sleep, and through it
  // task.timeout and the connect/accept/receive timeouts built on it). The
  // evented Io arms a pooled libuv timer; the uring Io keeps the sleeps in
  // order under one IORING_OP_TIMEOUT for the earliest (src/io/uring_ops.h);
  // a caller that cannot wait, and the blocking Io, sleep here (nanosleep)
  // and call done before returning.
  virtual IoOp* sleep(double seconds, bool wait, IoWake done) = 0;
};

class TaskSystem;

// host ("127.0.0.1", "::1") and port as a socket address; false when host
// is not an IP address (names are resolved by connect, or by dns).
bool parse_ip(const char* host, int port, sockaddr_storage* out);

// The Io of this run: made at its first use, the evented, blocking or
// uring one as the run's Io mode (--io) says, and kept by the Runtime.
Io& io_of(TaskSystem& sys);
// Makes the run's Io now: false, with *why, when the mode asked for cannot
// be had here (--io=uring on a kernel without io_uring). The command line
// calls it at start, so such a run fails before the script runs.
bool start_io(TaskSystem& sys, std::string* why);

std::unique_ptr<Io> make_evented_io(uv_loop_t* loop);
// The evented Io's listener, for an engine driven by the loop's callbacks in
// every Io mode (the HTTP server: its handlers are tasks or events).
std::unique_ptr<IoListener> listen_on_loop(uv_loop_t* loop, const ListenSpec& spec, int* status);
std::unique_ptr<Io> make_blocking_io();
// The uring Io on loop, or nullptr with *why (src/io/uring_io.cpp).
// script_mode: the uv_run_mode of a script's uv.run (luv) in progress, -1
// when none: the ring, as the loop's outer waiter (the default; not
// EVO_URING_WAIT=epoll), must not block under "nowait" nor wait twice under
// "once", besides run_loop's mode (src/core/loop.h); unset, -1.
// drain: the check phase's work (the scheduler's drain), which lets the ring
// wait again without a turn of libuv's loop while libuv has nothing to do.
std::unique_ptr<Io> make_uring_io(uv_loop_t* loop, std::string* why, std::function<int()> script_mode = {},
                                  std::function<void()> drain = {});

}  // namespace evo
