// One-file executables (docs/build.md): `evo build` and the start-up of a
// built app.
#pragma once

namespace evo::cli::build {

// `evo build app.lua -o app ...`: argv[1] is "build". Returns the exit status.
int command(int argc, char** argv);

// Runs the app embedded in this executable (appfs::open_self() found it)
// with `arg` and `...` as a script gets them. Returns the exit status.
int run_app(int argc, char** argv);

}  // namespace evo::cli::build
