#include "io/io.h"

#include <netinet/in.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "io/transport.h"
#include "lua/luv_glue.h"
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

bool start_io(TaskSystem& sys, std::string* why) {
  Runtime& rt = sys.runtime();
  if (rt.io() != nullptr) return true;
  if (sys.blocking()) {
    rt.set_io(make_blocking_io());
  } else if (rt.uring()) {
    // A script's uv.run("nowait") must not block in the ring's wait, nor
    // uv.run("once") wait twice.
    std::unique_ptr<Io> io = make_uring_io(
        rt.loop(), why,
        [&rt, vm = static_cast<lua_State*>(nullptr), mode = static_cast<const int*>(nullptr)]() mutable {
          if (rt.L() == nullptr) return -1;
          if (rt.L() != vm) {
            vm = rt.L();
            mode = luv_glue::script_run_mode(vm);
          }
          return *mode;
        },
        [&sys] { sys.scheduler().drain(); });
    if (io == nullptr) return false;
    rt.set_io(std::move(io));
    // Its sockets have no libuv handle for the runtime's sweep to find.
    rt.set_release_loose([] {
      if (Transport::ring_sockets != nullptr) Transport::ring_sockets->release_all();
    });
  } else {
    rt.set_io(make_evented_io(rt.loop()));
  }
  return true;
}

Io& io_of(TaskSystem& sys) {
  std::string why;
  if (!start_io(sys, &why)) {
    // The command line started it already; a runtime made elsewhere (an
    // embedder) that asked for uring without checking ends here.
    std::fprintf(stderr, "evo: --io=uring: %s\n", why.c_str());
    std::exit(1);
  }
  return *sys.runtime().io();
}

}  // namespace evo
