// `evo --workers N script.lua`: a supervisor process and N workers
// (docs/workers.md). The worker side of the sockets is src/io/workers.h.
#pragma once

#include <string>
#include <vector>

namespace evo {
class Runtime;
}

namespace evo::supervisor {

struct Options {
  int workers = 0;                // N
  double grace = 10;              // seconds a graceful stop may take
  std::vector<std::string> argv;  // a worker's command line (without --workers/--grace)
  std::string script;             // the script's path ("" for none): supervisor.lua is beside it
};

// N from "auto" (the CPUs this process may run on) or a number; 0 if bad.
int parse_count(const char* text);

// Runs the supervisor until every worker is gone; the exit status.
int run(const Options& options);

// In a worker (workers::active()): SIGTERM and SIGINT start a graceful stop.
void setup_worker(Runtime& rt);

}  // namespace evo::supervisor
