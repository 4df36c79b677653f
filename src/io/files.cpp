// Whole-file reads and writes as one job: open, fstat, read or write,
// close. Through single libuv requests a read costs four trips between the
// loop and the thread pool; as one job on the pool it costs one — the hot
// path of serving files.
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
class FileJob final : public IoOp {
 public:
  FileJob(FileOp op, std::string path, std::string data, std::function<void(FileResult)> done)
      : op_(op), data_(std::move(data)), done_(std::move(done)) {
    result_.path = std::move(path);
    req_.data = this;
  }
  int queue(uv_loop_t* loop) { return uv_queue_work(loop, &req_, work_cb, after_cb); }
  void cancel() override {
    canceled_ = true;  // after_cb frees it, whether or not uv_cancel wins
    uv_cancel(reinterpret_cast<uv_req_t*>(&req_));
  }

 private:
  static void work_cb(uv_work_t* req) {
    auto* job = static_cast<FileJob*>(req->data);
    run(job->op_, job->data_, job->result_);
  }
  static void after_cb(uv_work_t* req, int status) {
    std::unique_ptr<FileJob> job(static_cast<FileJob*>(req->data));
    if (job->canceled_ || status == UV_ECANCELED) return;  // the caller has moved on
    job->done_(std::move(job->result_));
  }

  uv_work_t req_{};
  FileOp op_;
  std::string data_;
  FileResult result_;
  std::function<void(FileResult)> done_;
  bool canceled_ = false;
};

}  // namespace

void file_now(FileOp op, std::string path, std::string data, const std::function<void(FileResult)>& done) {
  FileResult r;
  r.path = std::move(path);
  run(op, data, r);
  done(std::move(r));
}

IoOp* file_on_pool(uv_loop_t* loop, FileOp op, std::string path, std::string data,
                   std::function<void(FileResult)> done) {
  auto job = std::make_unique<FileJob>(op, path, std::move(data), done);
  int rc = job->queue(loop);
  if (rc != 0) {
    FileResult r;
    r.status = rc;
    r.path = std::move(path);
    done(std::move(r));
    return nullptr;
  }
  return job.release();  // after_cb takes it back
}

}  // namespace evo
