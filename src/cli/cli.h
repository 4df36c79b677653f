// The evo command line: evo [options] [script [args...]], evo test ..., REPL.
#pragma once

namespace evo::cli {

int main(int argc, char** argv);

}  // namespace evo::cli
