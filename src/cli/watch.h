// `evo --watch [--watch-path DIR]... script.lua args` and `evo test --watch`:
// run the command as a child and restart it when a file it loaded changes
// (docs/cli.md#watch-mode).
#pragma once

namespace evo::cli::watch {

// True when the command line asks for watch mode: --watch or --watch-path
// among the options before the script, or among `evo test`'s arguments.
bool requested(int argc, char** argv);

// Runs the watcher until SIGINT or SIGTERM; returns the exit status.
int main(int argc, char** argv);

}  // namespace evo::cli::watch
