// Work on libuv's thread pool (Io::work in the evented Io), and whole-file
// reads and writes as one such job: open, fstat, read or write, close. Through single libuv requests a read
// costs four trips between the loop and the thread pool; as one job on the pool it costs one — the hot path
// of serving files.
#include "io/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

namespace evo {
namespace {

void read_file(FileResult& r) {
  int fd = ::open(r.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    r.status = uv_translate_sys_error(errno);
    return;
  }
  struct stat st {};
  size_t want = size_t{64} * 1024;
  bool sized = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
  if (sized) want = static_cast<size_t>(st.st_size);
  r.data.clear();
  for (;;) {
    size_t old = r.data.size();
    r.data.resize(old + want);
    ssize_t n = ::read(fd, r.data.data() + old, want);
    if (n < 0 && errno == EINTR) {
      r.data.resize(old);
      continue;
    }
    if (n < 0) {
      r.status = uv_translate_sys_error(errno);
      r.data.clear();
      break;
    }
    r.data.resize(old + static_cast<size_t>(n));
    if (n == 0 || (sized && r.data.size() >= static_cast<size_t>(st.st_size))) break;
    want = size_t{64} * 1024;
  }
  ::close(fd);
}

void write_file(FileResult& r, const std::string& data, bool append) {
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC);
  int fd = ::open(r.path.c_str(), flags, 0666);
  if (fd < 0) {
    r.status = uv_translate_sys_error(errno);
    return;
  }
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      r.status = uv_translate_sys_error(errno);
      break;
    }
    off += static_cast<size_t>(n);
  }
  if (::close(fd) != 0 && r.status == 0) r.status = uv_translate_sys_error(errno);
}

void run(FileOp op, const std::string& data, FileResult& r) {
  if (op == FileOp::Read) {
    read_file(r);
  } else {
    write_file(r, data, op == FileOp::Append);
  }
}

// A job on the pool; owns itself until its after-work callback.
class PoolJob final : public IoOp {
 public:
  PoolJob(std::function<void()> job, std::function<void()> done)
      : job_(std::move(job)), done_(std::move(done)) {
    req_.data = this;
  }
  int queue(uv_loop_t* loop) { return uv_queue_work(loop, &req_, work_cb, after_cb); }
  void cancel() override {
    canceled_ = true;  // after_cb frees it, whether or not uv_cancel wins
    uv_cancel(reinterpret_cast<uv_req_t*>(&req_));
  }

 private:
  static void work_cb(uv_work_t* req) { static_cast<PoolJob*>(req->data)->job_(); }
  static void after_cb(uv_work_t* req, int status) {
    std::unique_ptr<PoolJob> job(static_cast<PoolJob*>(req->data));
    if (job->canceled_ || status == UV_ECANCELED) return;  // the caller has moved on
    job->done_();
  }

  uv_work_t req_{};
  std::function<void()> job_;
  std::function<void()> done_;
  bool canceled_ = false;
};

}  // namespace

IoOp* work_on_pool(uv_loop_t* loop, std::function<void()> job, std::function<void()> done) {
  auto op = std::make_unique<PoolJob>(job, done);
  if (op->queue(loop) != 0) {  // no pool (it cannot fail on Linux): do it here
    job();
    done();
    return nullptr;
  }
  return op.release();  // after_cb takes it back
}

IoOp* Io::file(FileOp op, std::string path, std::string data, bool wait,
               std::function<void(FileResult)> done) {
  struct Job {
    FileOp op;
    std::string data;
    FileResult result;
  };
  auto job = std::make_shared<Job>(Job{op, std::move(data), FileResult{}});
  job->result.path = std::move(path);
  return work([job] { run(job->op, job->data, job->result); }, wait,
              [job, done = std::move(done)] { done(std::move(job->result)); });
}

}  // namespace evo
