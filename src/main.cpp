// evo: an asynchronous runtime for Lua. See README.md and docs/.
#include "lua/cli.h"

int main(int argc, char** argv) { return evo::cli::main(argc, argv); }
