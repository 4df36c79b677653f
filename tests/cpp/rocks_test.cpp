// The lua_modules walk-up (src/lua/modules.cpp) and the luarocks
// configuration `evo rocks` writes (src/cli/rocks.cpp).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <lua.hpp>
#include <memory>
#include <string>

#include "cli/rocks.h"
#include "lua/modules.h"

namespace evo {
namespace {

// A temporary directory tree, removed at the end of the test.
class TempTree {
 public:
  TempTree() {
    char pattern[] = "/tmp/evo-rocks-test-XXXXXX";
    root_ = ::mkdtemp(pattern);
  }
  ~TempTree() { std::system(("rm -rf '" + root_ + "'").c_str()); }
  TempTree(const TempTree&) = delete;
  TempTree& operator=(const TempTree&) = delete;
  std::string mkdir(const std::string& rel) const {
    std::string path = root_;
    size_t start = 0;
    while (start < rel.size()) {
      size_t end = rel.find('/', start);
      if (end == std::string::npos) end = rel.size();
      path += "/" + rel.substr(start, end - start);
      ::mkdir(path.c_str(), 0755);
      start = end + 1;
    }
    return path;
  }
  const std::string& root() const { return root_; }

 private:
  std::string root_;
};

TEST(LuaModulesTrees, NearestFirstUpToTheRootOnlyDirectories) {
  TempTree t;
  t.mkdir("lua_modules");
  t.mkdir("a/b/lua_modules");
  std::string start = t.mkdir("a/b/c");
  std::ofstream(t.root() + "/a/lua_modules") << "a file, not a tree";
  auto trees = modules::lua_modules_trees(start);
  ASSERT_GE(trees.size(), 2u);
  EXPECT_EQ(trees[0], t.root() + "/a/b/lua_modules");
  EXPECT_EQ(trees[1], t.root() + "/lua_modules");
  for (size_t i = 2; i < trees.size(); ++i) EXPECT_EQ(trees[i].rfind(t.root(), 0), std::string::npos);
}

TEST(LuaModulesTrees, RelativeStartGivesAbsolutePaths) {
  TempTree t;
  t.mkdir("p/lua_modules");
  t.mkdir("p/src");
  char old[4096];
  ASSERT_NE(::getcwd(old, sizeof old), nullptr);
  ASSERT_EQ(::chdir((t.root() + "/p").c_str()), 0);
  auto from_src = modules::lua_modules_trees("src");
  auto from_cwd = modules::lua_modules_trees("");
  auto missing = modules::lua_modules_trees("no/such/dir");
  ASSERT_EQ(::chdir(old), 0);
  ASSERT_FALSE(from_src.empty());
  EXPECT_EQ(from_src[0], t.root() + "/p/lua_modules");
  ASSERT_FALSE(from_cwd.empty());
  EXPECT_EQ(from_cwd[0], t.root() + "/p/lua_modules");
  EXPECT_TRUE(missing.empty());
}

// The configuration is Lua that luarocks loads: run it and read it back, with
// paths holding quotes, backslashes and a newline.
TEST(RocksConfig, IsLuaWithTheSettingsEvenForOddPaths) {
  std::string evo = "/opt/we\"ird\\dir\n/evo";
  std::string tree = "/p/it's \"here\"/lua_modules";
  std::string text = cli::rocks::config_text(evo, tree);
  std::unique_ptr<lua_State, void (*)(lua_State*)> L(luaL_newstate(), lua_close);
  ASSERT_EQ(luaL_loadstring(L.get(), text.c_str()), 0) << lua_tostring(L.get(), -1) << "\n" << text;
  ASSERT_EQ(lua_pcall(L.get(), 0, 0, 0), 0) << lua_tostring(L.get(), -1);
  auto global_string = [&](const char* code) {
    std::string chunk = std::string("return ") + code;
    EXPECT_EQ(luaL_dostring(L.get(), chunk.c_str()), 0);
    std::string v = lua_isstring(L.get(), -1) ? lua_tostring(L.get(), -1) : "(not a string)";
    lua_pop(L.get(), 1);
    return v;
  };
  EXPECT_EQ(global_string("lua_interpreter"), "evo");
  EXPECT_EQ(global_string("lua_version"), "5.1");
  EXPECT_EQ(global_string("variables.LUA"), evo);
  EXPECT_EQ(global_string("variables.LUA_BINDIR"), "/opt/we\"ird\\dir\n");
  EXPECT_EQ(global_string("variables.LUA_INCDIR"), "/usr/include/luajit-2.1");
  EXPECT_EQ(global_string("variables.LIBFLAG"), "-shared");
  EXPECT_EQ(global_string("variables.LUALIB"), "");
  EXPECT_EQ(global_string("rocks_trees[1].root"), tree);
  EXPECT_EQ(global_string("link_lua_explicitly == false and 'false' or 'not false'"), "false");
}

}  // namespace
}  // namespace evo
