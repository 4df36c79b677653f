// embed: compiles Evo's Lua library (lib/**/*.lua) to LuaJIT bytecode and
// writes it as a C++ table, so the evo binary carries its standard library.
//
//   evo_embed OUT.cpp LIBROOT FILE.lua...
//
// Module names are the path below LIBROOT without ".lua", with '/' turned into
// '.' (lib/evo/test.lua -> "evo.test"). Debug info is kept so that tracebacks
// show "[evo]/events.lua:12:". Entries are sorted by name for binary search.
//
// Table constructors keep their speed in bytecode. LuaJIT compiles
// `{a = x, b = y}` (values not constants) to TDUP of a template table holding
// the keys with nil values, then one store per key: the copy has every key's
// slot, so no store adds a key. But LuaJIT's bytecode writer leaves nil-valued
// entries out of a template, so the loaded template is empty and each store
// adds its key (lj_tab_newkey, rehashing as the table grows): a six-field
// constructor cost ~2,900 instructions instead of ~1,100. Before dumping, the
// keys the constructor itself stores, unconditionally, are given the value
// false in the template, which the writer keeps; the stores overwrite it
// before anything can read the table (see kFixTemplates).
#include <lua.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Compiled {
  std::string name;
  std::string bytecode;
};

// fix(chunk): walks the chunk's prototypes (jit.util) and, for each TDUP,
// follows the instructions after it while they cannot observe the new table:
// stores into its register, and code that neither reads that register, writes
// at or below it, makes a closure, nor jumps backwards. A string key stored
// there, not behind a forward jump (a conditional store), whose template slot
// is present with a nil value (a dummy key: pcall(next) finds the slot) gets
// false. A literal `k = nil` field has no such store and stays as it was.
// Opcodes are read off probe functions, so no table of LuaJIT's numbering.
constexpr const char kFixTemplates[] = R"lua(
local util = require("jit.util")
local funcbc, funck, funcinfo = util.funcbc, util.funck, util.funcinfo
local band, shr = bit.band, bit.rshift
local function opAt(f, pc) return band((funcbc(f, pc)), 0xff) end
local probe1 = load("return function(x) local t = {a = x} return t end")()
local probe2 = load("return function(t, k, v) t[k] = v; t[1] = v end")()
local probe3 = load("return function() return function() end end")()
local TDUP, TSETS = opAt(probe1, 1), opAt(probe1, 2)
local TSETV, TSETB = opAt(probe2, 1), opAt(probe2, 2)
local FNEW = opAt(probe3, 1)
local DST, BASE, VAR, RBASE, JUMP = 1, 2, 3, 4, 13  -- operand modes (lj_bc.h BCMode)

local function dummyKey(t, k) return rawget(t, k) == nil and (pcall(next, t, k)) end

local function fixConstructor(f, pc, a, template)
  local pending = pc  -- the furthest forward jump target so far
  while true do
    pc = pc + 1
    local ins, m = funcbc(f, pc)
    if not ins then return end
    local op = band(ins, 0xff)
    local ra, rb, rc, rd = band(shr(ins, 8), 0xff), shr(ins, 24), band(shr(ins, 16), 0xff), shr(ins, 16)
    local ma, mb, mc = band(m, 7), band(shr(m, 3), 15), band(shr(m, 7), 15)
    if (op == TSETS or op == TSETV or op == TSETB) and rb == a then
      if op == TSETS and pc >= pending then
        local key = funck(f, -rc - 1)
        if dummyKey(template, key) then rawset(template, key, false) end
      end
    else
      if op == FNEW then return end
      if (ma == DST or ma == BASE or ma == RBASE) and ra <= a then return end
      if ma == VAR and ra == a then return end
      if mb ~= 0 then
        if (mb == VAR and rb == a) or (mb == RBASE and rb <= a) then return end
        if (mc == VAR and rc == a) or (mc == RBASE and rc <= a) then return end
      elseif mc == VAR and rd == a then
        return
      elseif mc == JUMP then
        local target = pc + rd - 0x7fff
        if target <= pc then return end
        if target > pending then pending = target end
      end
    end
  end
end

local function fix(f)
  for i = 1, funcinfo(f).gcconsts or 0 do
    local k = funck(f, -i)
    if type(k) == "proto" then fix(k) end
  end
  local pc = 1
  while true do
    local ins = funcbc(f, pc)
    if not ins then return end
    if band(ins, 0xff) == TDUP then fixConstructor(f, pc, band(shr(ins, 8), 0xff), funck(f, -shr(ins, 16) - 1)) end
    pc = pc + 1
  end
end
return fix
)lua";

int write_chunk(lua_State* /*L*/, const void* p, size_t size, void* out) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(p), size);
  return 0;
}

std::string module_name(const std::string& root, const std::string& file) {
  std::string rel = file.substr(root.size());
  while (!rel.empty() && rel.front() == '/') rel.erase(0, 1);
  rel.resize(rel.size() - 4);  // ".lua"
  std::replace(rel.begin(), rel.end(), '/', '.');
  return rel;
}

bool compile(lua_State* L, int fix_ref, const std::string& root, const std::string& file, Compiled& out) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::cerr << "embed: cannot open " << file << "\n";
    return false;
  }
  std::stringstream source;
  source << in.rdbuf();
  const std::string text = source.str();
  out.name = module_name(root, file);
  std::string chunkname = "@[evo]/" + file.substr(root.size() + 1);
  if (luaL_loadbuffer(L, text.data(), text.size(), chunkname.c_str()) != 0) {
    std::cerr << "embed: " << lua_tostring(L, -1) << "\n";
    return false;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, fix_ref);
  lua_pushvalue(L, -2);
  if (lua_pcall(L, 1, 0, 0) != 0) {
    std::cerr << "embed: " << file << ": " << lua_tostring(L, -1) << "\n";
    return false;
  }
  lua_dump(L, write_chunk, &out.bytecode);
  lua_pop(L, 1);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: evo_embed OUT.cpp LIBROOT FILE.lua...\n";
    return 2;
  }
  const std::string out_path = argv[1];
  const std::string root = argv[2];
  lua_State* L = luaL_newstate();
  luaL_openlibs(L);  // (jit.util, bit)
  if (luaL_loadbuffer(L, kFixTemplates, sizeof(kFixTemplates) - 1, "=embed-fix") != 0 ||
      lua_pcall(L, 0, 1, 0) != 0) {
    std::cerr << "embed: " << lua_tostring(L, -1) << "\n";
    return 1;
  }
  const int fix_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  std::vector<Compiled> modules;
  for (int i = 3; i < argc; ++i) {
    Compiled c;
    if (!compile(L, fix_ref, root, argv[i], c)) return 1;
    modules.push_back(std::move(c));
  }
  lua_close(L);
  std::sort(modules.begin(), modules.end(),
            [](const Compiled& a, const Compiled& b) { return a.name < b.name; });

  // Each array is named after its module ("evo.wait" -> m_evo_2ewait), not by
  // its position, so tools/startup-order.ld can name the bytecode start-up
  // loads and still find it after a module is added.
  auto ident = [](const std::string& name) {
    static const char kHex[] = "0123456789abcdef";
    std::string id = "m_";
    for (unsigned char ch : name) {
      if (std::isalnum(ch) != 0) {
        id += static_cast<char>(ch);
      } else {
        id += {'_', kHex[ch >> 4], kHex[ch & 15]};
      }
    }
    return id;
  };
  std::ostringstream os;
  os << "// Generated by tools/embed.cpp from lib/. Do not edit.\n"
     << "#include \"lua/embedded.h\"\n\nnamespace evo::embedded {\nnamespace {\n";
  for (size_t i = 0; i < modules.size(); ++i) {
    os << "const unsigned char " << ident(modules[i].name) << "[] = {";
    const std::string& bc = modules[i].bytecode;
    for (size_t j = 0; j < bc.size(); ++j) {
      if (j % 20 == 0) os << "\n  ";
      os << static_cast<int>(static_cast<unsigned char>(bc[j])) << ",";
    }
    os << "\n};\n";
  }
  os << "}  // namespace\n\nconst LuaModule kLuaModules[] = {\n";
  for (size_t i = 0; i < modules.size(); ++i) {
    const std::string id = ident(modules[i].name);
    os << "  {\"" << modules[i].name << "\", " << id << ", sizeof(" << id << ")},\n";
  }
  if (modules.empty()) os << "  {\"\", nullptr, 0},\n";
  os << "};\nconst size_t kLuaModuleCount = " << modules.size() << ";\n\n}  // namespace evo::embedded\n";

  // Write only when changed, so an unchanged library does not trigger a rebuild.
  std::string text = os.str();
  std::ifstream old(out_path, std::ios::binary);
  std::stringstream prev;
  if (old) prev << old.rdbuf();
  if (prev.str() != text) {
    std::ofstream out(out_path, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) {
      std::cerr << "embed: cannot write " << out_path << "\n";
      return 1;
    }
  }
  return 0;
}
