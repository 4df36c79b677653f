#include "io/io.h"

#include <netinet/in.h>

#include <cstring>

#include "io/transport.h"
#include "lua/runtime.h"
#include "lua/tasks.h"

namespace evo {

IoResult IoResult::failed(int status, std::string detail) {
  IoResult r;
  r.status = status;
  r.message = std::move(detail);
  return r;
}

IoResult IoResult::failed(const char* code, std::string message) {
  IoResult r;
  r.code = code;
  r.message = std::move(message);
  return r;
}

bool parse_ip(const char* host, int port, sockaddr_storage* out) {
  std::memset(out, 0, sizeof(*out));
  if (uv_ip4_addr(host, port, reinterpret_cast<sockaddr_in*>(out)) == 0) return true;
  return uv_ip6_addr(host, port, reinterpret_cast<sockaddr_in6*>(out)) == 0;
}

Io& io_of(TaskSystem& sys) {
  Runtime& rt = sys.runtime();
  if (rt.io() == nullptr) rt.set_io(sys.blocking() ? make_blocking_io() : make_evented_io(rt.loop()));
  return *rt.io();
}

}  // namespace evo
