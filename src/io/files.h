// Whole-file jobs for both Io implementations (src/io/files.cpp).
#pragma once

#include <uv.h>

#include <functional>
#include <string>

#include "io/io.h"

namespace evo {

// On the calling thread; done is called before it returns.
void file_now(FileOp op, std::string path, std::string data, const std::function<void(FileResult)>& done);
// On libuv's thread pool: the operation in flight, or nullptr after done
// reported a failure to queue it.
IoOp* file_on_pool(uv_loop_t* loop, FileOp op, std::string path, std::string data,
                   std::function<void(FileResult)> done);

}  // namespace evo
