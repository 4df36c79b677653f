// The messages between a worker and its supervisor, over a SOCK_SEQPACKET
// socketpair (one message per send, so no framing). Both ends are the same
// executable, so the structs travel as they are.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <cstdint>

namespace evo::workers {

enum class MsgKind : uint8_t {
  ListenTcp = 1,   // worker -> supervisor: the socket of my slot for addr
  ListenPipe = 2,  // worker -> supervisor: the shared socket for path
  Started = 3,     // worker -> supervisor: the main chunk has run
};

struct Request {
  MsgKind kind;
  int32_t backlog;
  uint32_t addr_len;
  sockaddr_storage addr;                     // ListenTcp
  char path[sizeof(sockaddr_un::sun_path)];  // ListenPipe, NUL-terminated
};

// The answer to a Listen request: status 0 and the socket as SCM_RIGHTS, or
// a libuv error status and no descriptor.
struct Reply {
  int32_t status;
};

}  // namespace evo::workers
