// evo.json: the native half of require("json").
//
// Decoding parses with simdjson's DOM parser (one parser per thread, reused)
// and walks its tape into Lua tables sized in advance; only when simdjson
// refuses the text does proto/json_syntax scan it again to say where.
// Encoding walks Lua tables with the C API into one growing buffer
// (proto/json_write). Nothing here touches Evo's runtime, so the module loads
// in worker states (task.work, uv.new_thread).
//
// Every function is a closure sharing these upvalues:
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "bind/simdjson_lib.h"
#include "lua/errors.h"
#include "lua/modules.h"
#include "proto/json_syntax.h"
#include "proto/json_write.h"

namespace evo {
namespace {

enum Upvalue {
  kArrayMeta = 1,  // metatable marking a table as a JSON array
  kObjectMeta,     // ... as a JSON object
  kMarks,          // weak-keyed {table = "array"|"object"} for tables with metatables of their own
  kInt64,          // ffi.typeof("int64_t")
  kUint64,         // ffi.typeof("uint64_t")
  kIsType,         // ffi.istype
  kUpvalueCount = kIsType,
};

int up(int n) { return lua_upvalueindex(n); }

constexpr int kDefaultMaxDepth = 1000;
// Each nesting level holds up to two Lua stack slots and a C function may
// use at most LUAI_MAXCSTACK (8000) of them.
constexpr int kMaxMaxDepth = 3000;
constexpr double kExact = 9007199254740992.0;  // 2^53: integers up to here are exact doubles
constexpr size_t kKeepBuffer = 16 * 1024 * 1024;
constexpr int kLuaTypeCdata = 10;  // LuaJIT's type tag for FFI cdata

// Misuse: "bad argument #n to 'json.encode' (...)" at the caller's line,
// left on the stack for the caller to raise once no C++ object is alive.
void push_arg_error(lua_State* L, int n, const char* fname, const std::string& reason) {
  luaL_where(L, 1);
  lua_pushfstring(L, "bad argument #%d to '%s' (%s)", n, fname, reason.c_str());
  lua_concat(L, 2);
}

std::string type_error(lua_State* L, int idx, const char* expected) {
  // "nil" for a missing argument too, as evo.args says it.
  return std::string(expected) + " expected, got " + (lua_isnone(L, idx) ? "nil" : luaL_typename(L, idx));
}

// opts.maxDepth: an integer 1..kMaxMaxDepth.
bool read_max_depth(lua_State* L, int opts, int n, const char* fname, int* out) {
  lua_getfield(L, opts, "maxDepth");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return true;
  }
  double d = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
  lua_pop(L, 1);
  if (d < 1 || d > kMaxMaxDepth || d != std::floor(d)) {
    push_arg_error(L, n, fname, "maxDepth must be an integer from 1 to " + std::to_string(kMaxMaxDepth));
    return false;
  }
  *out = static_cast<int>(d);
  return true;
}

// Unknown option names are refused, so a typo is not silently ignored.
bool check_option_names(lua_State* L, int opts, int n, const char* fname,
                        std::initializer_list<std::string_view> known) {
  lua_pushnil(L);
  while (lua_next(L, opts) != 0) {
    lua_pop(L, 1);
    size_t len = 0;
    const char* k = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : nullptr;
    if (k == nullptr || std::find(known.begin(), known.end(), std::string_view(k, len)) == known.end()) {
      std::string name = k != nullptr ? std::string(k, len) : std::string(luaL_typename(L, -1));
      lua_pop(L, 1);
      push_arg_error(L, n, fname, "unknown option '" + name + "'");
      return false;
    }
  }
  return true;
}

// ------------------------------------------------------------------ decode

struct DecodeOptions {
  int max_depth = kDefaultMaxDepth;
  int null_index = 0;  // stack index of opts.nullValue, 0 for json.null
};

// One parser per thread: its buffers are reused from call to call, and
// worker threads decode in parallel without sharing anything.
struct ThreadParser {
  simdjson::dom::parser parser;
  std::unique_ptr<char[]> padded;  // simdjson reads up to SIMDJSON_PADDING bytes past the end
  size_t padded_size = 0;
  bool busy = false;  // a decode is running on this thread (pushing a cdata calls Lua)

  const char* pad(const char* text, size_t len) {
    if (padded_size < len + simdjson::SIMDJSON_PADDING) {
      padded_size = len + simdjson::SIMDJSON_PADDING + len / 4;
      padded = std::make_unique<char[]>(padded_size);
    }
    std::memcpy(padded.get(), text, len);
    std::memset(padded.get() + len, 0, simdjson::SIMDJSON_PADDING);
    return padded.get();
  }
  void release_if_huge(size_t len) {
    if (len < kKeepBuffer) return;
    parser = simdjson::dom::parser();
    padded.reset();
    padded_size = 0;
  }
};
thread_local ThreadParser t_parser;

// Walks simdjson's tape (its documented DOM layout: one 64-bit word per
// value, the type in the top byte; see simdjson's doc/tape.md) straight
// into Lua values. Reading the words directly skips the element API's
// per-value type checks; arrays and objects carry their element count, so
// each table is created at its final size.
//
// For a document of some size the walk keeps a few values in stack slots
// of its own, read with lua_pushvalue at positive indices (the cheapest
// lookup the C API has, where an upvalue index costs a walk to the running
// closure):
//   base_ + kArraySlot / kObjectSlot   the two marker metatables
//   base_ + kNullSlot                  what null decodes to
//   base_ + kCacheSlot + i             the strings of the string cache
// A small one reads the upvalues and pushes null directly: setting the
// slots up would cost more than it saves.
// The string cache: JSON repeats its keys (and many short values) over and
// over, and lua_pushlstring hashes the bytes and searches LuaJIT's string
// table for each; a direct-mapped cache of recent short strings, compared
// against the bytes in simdjson's string buffer (alive for the whole walk),
// turns a repeat into one lua_pushvalue.
class Decoder {
 public:
  Decoder(lua_State* L, const simdjson::dom::document& doc, const DecodeOptions& o)
      : L_(L), tape_(doc.tape.get()), strings_(doc.string_buf.get()), opts_(o) {}

  // Pushes the document's root value (leaving nothing else on the stack).
  void push_root() {
    // tape[0] is the root word; its payload is the index past the tape's end.
    size_t words = tape_[0] & kPayload;
    cache_mask_ = words >= kCacheMinWords ? kCacheSize - 1 : 0;
    int slots = cache_mask_ != 0 ? kCacheSlot + kCacheSize + kSlack : kSlack;
    if (lua_checkstack(L_, slots) == 0) luaL_error(L_, "json.decode: the Lua stack is full");
    checked_depth_ = kSlack / 2 - 2;
    if (cache_mask_ == 0) {
      array_meta_ = up(kArrayMeta);
      object_meta_ = up(kObjectMeta);
      null_ = opts_.null_index;  // 0: json.null, a light userdata
      push(1);
      return;
    }
    base_ = lua_gettop(L_);
    lua_pushvalue(L_, up(kArrayMeta));
    lua_pushvalue(L_, up(kObjectMeta));
    push_null();
    lua_settop(L_, base_ + kCacheSlot + kCacheSize - 1);
    array_meta_ = base_ + kArraySlot;
    object_meta_ = base_ + kObjectSlot;
    null_ = base_ + kNullSlot;
    push(1);
    lua_replace(L_, base_ + 1);
    lua_settop(L_, base_ + 1);
  }

  // True when the document nests deeper than opts.max_depth: the value
  // pushed is then incomplete and the caller reports the error instead.
  [[nodiscard]] bool too_deep() const { return too_deep_; }

 private:
  static constexpr uint64_t kPayload = 0x00FFFFFFFFFFFFFFULL;
  enum : uint8_t { kArraySlot = 1, kObjectSlot, kNullSlot, kCacheSlot };
  static constexpr int kCacheSize = 256;        // entries, a power of two
  static constexpr uint32_t kCacheMaxLen = 32;  // longer strings are rarely repeated keys
  static constexpr size_t kCacheMinWords = 64;  // smaller documents skip the cache's set-up
  static constexpr int kSlack = 32;             // stack slots checked at a time while nesting

  // Left uninitialised (clearing 4 KiB would cost a small document more
  // than the cache saves it); filled_ says which entries hold a string.
  struct CacheEntry {
    const uint8_t* bytes;  // in simdjson's string buffer
    uint32_t len;
  };

  // Pushes the value at tape index i; returns the index after it. Inlined
  // into the loops of push_array and push_object, so a scalar costs no call
  // of its own; the containers and the rare paths stay out of line.
  [[gnu::always_inline]] size_t push(size_t i) {
    uint64_t word = tape_[i];
    uint64_t payload = word & kPayload;
    switch (static_cast<char>(word >> 56)) {
      case '"':
        push_string(payload);
        return i + 1;
      case 'l':
        push_int64(static_cast<int64_t>(tape_[i + 1]));
        return i + 2;
      case 'u':
        push_uint64(tape_[i + 1]);
        return i + 2;
      case 'd': {
        double d = 0;
        std::memcpy(&d, &tape_[i + 1], sizeof d);
        lua_pushnumber(L_, d);
        return i + 2;
      }
      case 't':
        lua_pushboolean(L_, 1);
        return i + 1;
      case 'f':
        lua_pushboolean(L_, 0);
        return i + 1;
      case 'n':
        if (null_ != 0) {
          lua_pushvalue(L_, null_);
        } else {
          lua_pushlightuserdata(L_, nullptr);
        }
        return i + 1;
      case '[':
        return push_array(i, payload);
      case '{':
        return push_object(i, payload);
      default:
        luaL_error(L_, "json.decode: unexpected word on simdjson's tape");
        return i + 1;
    }
  }

  // A string of the tape: its 32-bit length, then its bytes, in the buffer.
  [[gnu::always_inline]] void push_string(uint64_t payload) {
    const uint8_t* p = strings_ + payload;
    uint32_t len = 0;
    std::memcpy(&len, p, sizeof len);
    p += sizeof len;
    if (len > kCacheMaxLen || cache_mask_ == 0) {
      lua_pushlstring(L_, reinterpret_cast<const char*>(p), len);
      return;
    }
    size_t slot = hash(p, len) & cache_mask_;
    CacheEntry& e = cache_[slot];
    int index = base_ + kCacheSlot + static_cast<int>(slot);
    if (((filled_[slot / 64] >> (slot % 64)) & 1) != 0 && e.len == len && same(e.bytes, p, len)) {
      lua_pushvalue(L_, index);
      return;
    }
    push_and_cache(e, index, p, len);
  }

  [[gnu::noinline]] void push_and_cache(CacheEntry& e, int index, const uint8_t* p, uint32_t len) {
    lua_pushlstring(L_, reinterpret_cast<const char*>(p), len);
    lua_pushvalue(L_, -1);
    lua_replace(L_, index);
    e = {p, len};
    filled_[(&e - cache_) / 64] |= uint64_t{1} << ((&e - cache_) % 64);
  }

  // Whether two strings of the buffer of length len (<= kCacheMaxLen) hold
  // the same bytes, with overlapping word loads instead of a memcmp call.
  // Below 4 bytes the loads start in the strings' length words, which are
  // equal; they never read past a string's own bytes.
  static bool same(const uint8_t* a, const uint8_t* b, uint32_t len) {
    if (len <= 8) {
      if (len <= 4) return load32(a + len - 4) == load32(b + len - 4);
      return ((load32(a) ^ load32(b)) | (load32(a + len - 4) ^ load32(b + len - 4))) == 0;
    }
    uint64_t diff = (load64(a) ^ load64(b)) | (load64(a + len - 8) ^ load64(b + len - 8));
    if (len > 16) diff |= (load64(a + 8) ^ load64(b + 8)) | (load64(a + len - 16) ^ load64(b + len - 16));
    return diff == 0;
  }
  static uint32_t load32(const uint8_t* p) {
    uint32_t v = 0;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static uint64_t load64(const uint8_t* p) {
    uint64_t v = 0;
    std::memcpy(&v, p, sizeof v);
    return v;
  }

  // Hashes a string of the buffer by its length and its last four bytes
  // (read from p + len - 4: for a string shorter than that, the tail of its
  // length word, the same for equal strings) and, from 8 bytes on, its
  // first four.
  static uint32_t hash(const uint8_t* p, uint32_t len) {
    uint32_t tail = load32(p + len - 4);
    uint32_t head = len >= 8 ? load32(p) : 0;
    uint32_t h = (tail * 0x9E3779B1U) ^ (head * 0x85EBCA77U) ^ len;
    return h ^ (h >> 15) ^ (h >> 23);
  }

  // The payload of '[' and '{': the index past the matching close in the
  // low 32 bits, the element count (saturating at 2^24 - 1) above.
  static size_t end_of(uint64_t payload) { return static_cast<uint32_t>(payload); }
  static int count_of(uint64_t payload) { return static_cast<int>((payload >> 32) & 0xFFFFFF); }

  [[gnu::noinline]] size_t push_array(size_t i, uint64_t payload) {
    size_t end = end_of(payload);
    if (!enter()) return end;
    lua_createtable(L_, count_of(payload), 0);
    lua_pushvalue(L_, array_meta_);
    lua_setmetatable(L_, -2);
    int n = 0;
    for (size_t j = i + 1; j < end - 1 && !too_deep_;) {
      j = push(j);
      lua_rawseti(L_, -2, ++n);
    }
    --depth_;
    return end;
  }

  [[gnu::noinline]] size_t push_object(size_t i, uint64_t payload) {
    size_t end = end_of(payload);
    if (!enter()) return end;
    lua_createtable(L_, 0, count_of(payload));
    lua_pushvalue(L_, object_meta_);
    lua_setmetatable(L_, -2);
    for (size_t j = i + 1; j < end - 1 && !too_deep_;) {
      push_string(tape_[j] & kPayload);  // a key is always a string
      j = push(j + 1);
      lua_rawset(L_, -3);  // a repeated key: the last one wins
    }
    --depth_;
    return end;
  }

  void push_int64(int64_t v) {
    if (v >= -static_cast<int64_t>(kExact) && v <= static_cast<int64_t>(kExact)) {
      return lua_pushnumber(L_, static_cast<double>(v));
    }
    push_boxed(kInt64, &v, sizeof v);
  }

  void push_uint64(uint64_t v) {
    if (v <= static_cast<uint64_t>(kExact)) return lua_pushnumber(L_, static_cast<double>(v));
    push_boxed(kUint64, &v, sizeof v);
  }

  // Beyond 2^53 a double would round: the integer becomes an int64_t or
  // uint64_t cdata (LuaJIT's boxed 64-bit integers), made by calling the
  // ctype and filled through its data pointer.
  [[gnu::noinline]] void push_boxed(int ctype, const void* v, size_t size) {
    lua_pushvalue(L_, up(ctype));
    lua_call(L_, 0, 1);
    std::memcpy(const_cast<void*>(lua_topointer(L_, -1)), v, size);
  }

  void push_null() {
    if (opts_.null_index != 0) {
      lua_pushvalue(L_, opts_.null_index);
    } else {
      lua_pushlightuserdata(L_, nullptr);
    }
  }

  // simdjson's own depth limit counts unevenly (a non-empty array one
  // level deeper than an object), so it is set a little higher and the
  // exact limit is kept here. Each level holds at most two stack slots
  // (the table, a key) plus one for a boxed integer's call; the stack is
  // grown kSlack slots at a time rather than checked at every table.
  bool enter() {
    if (++depth_ > opts_.max_depth) {
      --depth_;
      too_deep_ = true;
      lua_pushnil(L_);
      return false;
    }
    if (depth_ > checked_depth_) {
      if (lua_checkstack(L_, kSlack + 4) == 0) luaL_error(L_, "json.decode: the Lua stack is full");
      checked_depth_ = depth_ + kSlack / 2 - 1;
    }
    return true;
  }

  lua_State* L_;
  const uint64_t* tape_;
  const uint8_t* strings_;
  DecodeOptions opts_;
  int base_ = 0;
  int array_meta_ = 0;  // where the marker metatables and null are read from
  int object_meta_ = 0;
  int null_ = 0;  // 0: push a light userdata NULL
  int depth_ = 0;
  int checked_depth_ = 0;
  size_t cache_mask_ = 0;
  bool too_deep_ = false;
  uint64_t filled_[kCacheSize / 64] = {};
  CacheEntry cache_[kCacheSize];
};

bool read_decode_options(lua_State* L, DecodeOptions* o) {
  if (lua_isnoneornil(L, 2)) return true;
  if (!lua_istable(L, 2)) {
    push_arg_error(L, 2, "json.decode", type_error(L, 2, "table"));
    return false;
  }
  if (!check_option_names(L, 2, 2, "json.decode", {"maxDepth", "nullValue"})) return false;
  if (!read_max_depth(L, 2, 2, "json.decode", &o->max_depth)) return false;
  lua_getfield(L, 2, "nullValue");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
  } else {
    o->null_index = lua_gettop(L);  // stays on the stack while decoding
  }
  return true;
}

// What a simdjson error code means, in Evo's words (simdjson's own table,
// error_message(), lives in its library's data: not used, see simdjson_lib.h).
// Only codes dom::parser::parse can return are named.
std::string describe(simdjson::error_code code) {
  switch (code) {
    case simdjson::DEPTH_ERROR:
      return "nesting too deep";
    case simdjson::STRING_ERROR:
    case simdjson::UNESCAPED_CHARS:
    case simdjson::UNCLOSED_STRING:
      return "bad string";
    case simdjson::T_ATOM_ERROR:
    case simdjson::F_ATOM_ERROR:
    case simdjson::N_ATOM_ERROR:
      return "bad literal (true, false or null)";
    case simdjson::NUMBER_ERROR:
    case simdjson::NUMBER_OUT_OF_RANGE:
      return "bad number";
    case simdjson::UTF8_ERROR:
      return "invalid UTF-8";
    case simdjson::EMPTY:
      return "no value";
    case simdjson::INCOMPLETE_ARRAY_OR_OBJECT:
      return "unclosed array or object";
    case simdjson::TRAILING_CONTENT:
      return "text after the value";
    default:
      return "simdjson error " + std::to_string(static_cast<int>(code));
  }
}

// nil, err when libsimdjson cannot be loaded (code LibraryUnavailable, the
// message naming the Debian package); true when it is there.
bool library_ready(lua_State* L) {
  thread_local bool ready = false;  // once loaded it stays: skip the check
  if (ready) return true;
  if (simdjson_lib::available()) return ready = true;
  lua_pushnil(L);
  errors::push_error(L, "LibraryUnavailable", simdjson_lib::load_error());
  return false;
}

// nil, err for text simdjson refused: err.code "JsonSyntax", err.line,
// err.column (characters), err.offset (1-based byte), and a message with
// the offending line and a caret under the spot.
int push_syntax_error(lua_State* L, std::string_view text, simdjson::error_code code, int max_depth) {
  auto found = json::find_syntax_error(text, static_cast<size_t>(max_depth));
  if (!found) {
    // The scanner and simdjson agree on every input the fuzz target has
    // tried; should they not, simdjson's word is still an error.
    found = json::SyntaxError{text.size(), "invalid JSON (" + describe(code) + ")"};
  }
  json::Position pos = json::position_of(text, found->offset);
  std::string message = found->message + " at line " + std::to_string(pos.line) + ", column " +
                        std::to_string(pos.column) + "\n" + json::excerpt(text, found->offset);
  lua_pushnil(L);
  errors::push_error(L, "JsonSyntax", message);
  lua_pushinteger(L, static_cast<lua_Integer>(pos.line));
  lua_setfield(L, -2, "line");
  lua_pushinteger(L, static_cast<lua_Integer>(pos.column));
  lua_setfield(L, -2, "column");
  lua_pushinteger(L, static_cast<lua_Integer>(found->offset + 1));
  lua_setfield(L, -2, "offset");
  return 2;
}

int push_document(lua_State* L, const simdjson::dom::parser& parser, std::string_view text,
                  const DecodeOptions& opts) {
  int top = lua_gettop(L);
  Decoder d(L, parser.doc, opts);
  d.push_root();
  if (!d.too_deep()) return 1;
  lua_settop(L, top);
  return push_syntax_error(L, text, simdjson::DEPTH_ERROR, opts.max_depth);
}

// Parses text with tp's parser and pushes the value (1) or nil, err (2).
int parse_and_push(lua_State* L, ThreadParser& tp, std::string_view text, const DecodeOptions& opts) {
  // Documents nested up to max_depth always pass simdjson's limit at
  // max_depth + 2; the Decoder applies the exact one.
  auto depth = static_cast<size_t>(opts.max_depth) + 2;
  if (tp.parser.max_depth() != depth || tp.parser.capacity() < text.size()) {
    if (tp.parser.allocate(std::max(text.size(), tp.parser.capacity()), depth) != simdjson::SUCCESS) {
      return luaL_error(L, "json.decode: out of memory");
    }
  }
  auto doc = tp.parser.parse(tp.pad(text.data(), text.size()), text.size(), false);
  if (doc.error() == simdjson::SUCCESS) return push_document(L, tp.parser, text, opts);
  // simdjson refuses integers beyond 64 bits; JavaScript (and so many
  // producers) writes doubles such as 1e20 that way. When they are the only
  // fault, parse a copy with ".0" after each: they become doubles.
  std::vector<size_t> big;
  if (json::find_syntax_error(text, static_cast<size_t>(opts.max_depth), &big) || big.empty()) {
    return push_syntax_error(L, text, doc.error(), opts.max_depth);
  }
  std::string fixed = json::insert_fractions(text, big);
  doc = tp.parser.parse(tp.pad(fixed.data(), fixed.size()), fixed.size(), false);
  if (doc.error() != simdjson::SUCCESS) return push_syntax_error(L, text, doc.error(), opts.max_depth);
  return push_document(L, tp.parser, text, opts);
}

// Returns the number of results, or -1 with an error message on the stack.
int decode(lua_State* L) {
  if (lua_type(L, 1) != LUA_TSTRING) {
    push_arg_error(L, 1, "json.decode", type_error(L, 1, "string"));
    return -1;
  }
  DecodeOptions opts;
  if (!read_decode_options(L, &opts)) return -1;
  size_t len = 0;
  const char* text = lua_tolstring(L, 1, &len);
  if (!library_ready(L)) return 2;
  ThreadParser& tp = t_parser;
  if (tp.busy) {
    // Re-entered (a __gc finalizer run by an allocation while the tape is
    // walked decodes too): a parser of its own for this call.
    ThreadParser nested;
    return parse_and_push(L, nested, {text, len}, opts);
  }
  struct Busy {
    ThreadParser& tp;
    size_t len;
    Busy(ThreadParser& t, size_t n) : tp(t), len(n) { tp.busy = true; }
    Busy(const Busy&) = delete;
    Busy& operator=(const Busy&) = delete;
    ~Busy() {
      tp.busy = false;
      tp.release_if_huge(len);
    }
  } busy(tp, len);
  return parse_and_push(L, tp, {text, len}, opts);
}

// json.decode(text [, opts]) -> value | nil, err
int l_decode(lua_State* L) {
  int n = decode(L);
  if (n < 0) return lua_error(L);
  return n;
}

// ------------------------------------------------------------------ encode

enum class Kind { kPlain, kArray, kObject };

struct EncodeOptions {
  std::string indent;  // empty: compact
  bool sort_keys = false;
  int max_depth = kDefaultMaxDepth;
};

// A key of a table being encoded the slow way.
struct Key {
  std::string_view text;  // the key as written (a string key, or a number's text)
  double number = 0;      // the key when it is a number
  bool is_number = false;
};

constexpr size_t kKeyMax = 24;       // longer keys are written each time
constexpr size_t kKeyEntries = 256;  // a power of two

// The encoder's cache of key texts (see Encoder::write_key), one per thread.
struct KeyEntry {
  uintptr_t addr = 0;  // of the Lua string's bytes
  uint64_t epoch = 0;
  uint32_t len = 0;
  uint8_t text_len = 0;
  char text[2 + kKeyMax * 2];  // quoted, with room for a few escapes
};
thread_local std::array<KeyEntry, kKeyEntries> t_keys;
thread_local uint64_t t_key_epoch = 0;

class Encoder {
 public:
  Encoder(lua_State* L, json::Writer& out, const EncodeOptions& o) : L_(L), out_(out), opts_(o) {}

  // Writes the value at absolute index idx.
  bool value(int idx, int depth) {
    switch (lua_type(L_, idx)) {
      case LUA_TNIL:
        out_.append("null");
        return true;
      case LUA_TBOOLEAN:
        out_.append(lua_toboolean(L_, idx) != 0 ? std::string_view("true") : std::string_view("false"));
        return true;
      case LUA_TNUMBER:
        return number(lua_tonumber(L_, idx));
      case LUA_TSTRING: {
        size_t len = 0;
        const char* s = lua_tolstring(L_, idx, &len);
        return out_.string({s, len}) || fail("the string is not valid UTF-8 (encode binary data as base64)");
      }
      case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L_, idx) == nullptr) {  // json.null (and cjson.null)
          out_.append("null");
          return true;
        }
        return fail("a light userdata cannot be encoded");
      case LUA_TTABLE:
        return table(idx, depth);
      case kLuaTypeCdata:
        return cdata(idx);
      default:
        return fail(std::string("a ") + luaL_typename(L_, idx) + " cannot be encoded");
    }
  }

  // "bad value at .users[3].name: why", or just "why" at the top level.
  [[nodiscard]] std::string error() const {
    if (path_.empty()) return why_;
    std::string path;
    for (auto it = path_.rbegin(); it != path_.rend(); ++it) path += *it;
    return "bad value at " + path + ": " + why_;
  }

 private:
  bool number(double d) {
    if (std::isfinite(d)) {
      out_.number(d);
      return true;
    }
    return fail(std::isnan(d) ? "NaN cannot be encoded"
                              : (d > 0 ? "inf cannot be encoded" : "-inf cannot be encoded"));
  }

  // int64_t and uint64_t cdata are written as integers; other cdata fail.
  bool cdata(int idx) {
    for (int ctype : {kInt64, kUint64}) {
      lua_pushvalue(L_, up(kIsType));
      lua_pushvalue(L_, up(ctype));
      lua_pushvalue(L_, idx);
      lua_call(L_, 2, 1);
      bool is = lua_toboolean(L_, -1) != 0;
      lua_pop(L_, 1);
      if (!is) continue;
      const void* p = lua_topointer(L_, idx);
      if (ctype == kInt64) {
        int64_t v = 0;
        std::memcpy(&v, p, sizeof v);
        out_.integer(v);
      } else {
        uint64_t v = 0;
        std::memcpy(&v, p, sizeof v);
        out_.unsigned_integer(v);
      }
      return true;
    }
    return fail("a cdata other than int64_t/uint64_t cannot be encoded");
  }

  Kind kind_of(int idx) {
    if (lua_getmetatable(L_, idx) == 0) return Kind::kPlain;
    // The metatable is compared with the two markers by address (one
    // lua_topointer instead of up to two lua_rawequal with upvalue indices,
    // which the C API resolves through the running closure). The markers
    // live as long as the module's functions, so no other table can have
    // their addresses. They are looked up at the first metatable met.
    if (array_meta_ == nullptr) {
      array_meta_ = lua_topointer(L_, up(kArrayMeta));
      object_meta_ = lua_topointer(L_, up(kObjectMeta));
    }
    Kind k = Kind::kPlain;
    const void* meta = lua_topointer(L_, -1);
    if (meta == array_meta_) {
      k = Kind::kArray;
    } else if (meta == object_meta_) {
      k = Kind::kObject;
    } else {
      lua_pushvalue(L_, idx);
      lua_rawget(L_, up(kMarks));
      if (lua_type(L_, -1) == LUA_TSTRING) k = lua_tostring(L_, -1)[0] == 'a' ? Kind::kArray : Kind::kObject;
      lua_pop(L_, 1);
    }
    lua_pop(L_, 1);
    return k;
  }

  bool table(int idx, int depth) {
    const void* self = lua_topointer(L_, idx);
    if (std::find(active_.begin(), active_.end(), self) != active_.end()) {
      return fail("circular reference (the table contains itself)");
    }
    if (depth >= opts_.max_depth) {
      return fail("nested more than " + std::to_string(opts_.max_depth) + " levels deep");
    }
    // A level holds at most 6 slots (a key, a value, a metatable, a call);
    // the stack is grown for kStackLevels levels at a time.
    if (depth >= checked_depth_) {
      if (lua_checkstack(L_, 6 * kStackLevels) == 0) return fail("nested too deep for the Lua stack");
      checked_depth_ = depth + kStackLevels;
    }
    active_.push_back(self);
    Kind kind = kind_of(idx);
    size_t mark = out_.size();
    Result r = fast(idx, depth, kind);
    if (r == Result::kFallback) {
      out_.truncate(mark);
      r = slow(idx, depth, kind) ? Result::kOk : Result::kFail;
    }
    active_.pop_back();
    return r == Result::kOk;
  }

  enum class Result { kOk, kFail, kFallback };

  // One pass with lua_next, for the common shapes: a sequence stored in
  // order (1, 2, ... n) or a table of string keys. Anything else (holes,
  // mixed keys, sortKeys) falls back to slow(), which classifies every key.
  Result fast(int idx, int depth, Kind kind) {
    lua_pushnil(L_);
    if (lua_next(L_, idx) == 0) {
      out_.append(kind == Kind::kArray ? "[]" : "{}");
      return Result::kOk;
    }
    if (kind != Kind::kObject && lua_type(L_, -2) == LUA_TNUMBER && lua_tonumber(L_, -2) == 1.0) {
      return fast_array(idx, depth);
    }
    if (kind != Kind::kArray && !opts_.sort_keys && lua_type(L_, -2) == LUA_TSTRING) {
      return fast_object(idx, depth);
    }
    lua_pop(L_, 2);
    return Result::kFallback;
  }

  // Both start with the first key and value pushed (value on top).
  Result fast_array(int idx, int depth) {
    out_.put('[');
    const int value_idx = lua_gettop(L_);
    double expect = 1;
    for (;;) {
      if (expect > 1) out_.put(',');
      if (!opts_.indent.empty()) out_.newline(opts_.indent, depth + 1);
      if (!value(value_idx, depth + 1)) {
        lua_pop(L_, 2);
        return failed_at_index(expect);
      }
      lua_pop(L_, 1);
      if (lua_next(L_, idx) == 0) break;
      expect += 1;
      if (lua_type(L_, -2) != LUA_TNUMBER || lua_tonumber(L_, -2) != expect) {
        lua_pop(L_, 2);
        return Result::kFallback;
      }
    }
    close(']', depth);
    return Result::kOk;
  }

  Result fast_object(int idx, int depth) {
    out_.put('{');
    const int value_idx = lua_gettop(L_);
    bool first = true;
    do {
      if (lua_type(L_, -2) != LUA_TSTRING) {
        lua_pop(L_, 2);
        return Result::kFallback;
      }
      if (!first) out_.put(',');
      first = false;
      size_t len = 0;
      const char* k = lua_tolstring(L_, -2, &len);
      if (!key_and_value({k, len}, value_idx, depth)) {
        lua_pop(L_, 2);
        return Result::kFail;
      }
      lua_pop(L_, 1);
    } while (lua_next(L_, idx) != 0);
    close('}', depth);
    return Result::kOk;
  }

  bool key_and_value(std::string_view key, int value_idx, int depth) {
    if (!opts_.indent.empty()) out_.newline(opts_.indent, depth + 1);
    if (!write_key(key)) {
      fail("the key is not valid UTF-8");
      return failed_at_key(key);
    }
    if (opts_.indent.empty()) {
      out_.put(':');
    } else {
      out_.append(": ");
    }
    return value(value_idx, depth + 1) || failed_at_key(key);
  }

  // Object keys repeat from table to table: the JSON text of recent short
  // ones is kept, found by the address of the Lua string's bytes. An address
  // stands for the same bytes while the string lives, and each key met here
  // is held by a table under the walk, which nothing changes while the
  // encoder runs only C API calls that allocate nothing (ffi.istype, the one
  // Lua function it calls, allocates nothing either). The one allocation,
  // a key string pushed by write_object, may run the collector and so
  // finalizers: it forgets the cache.
  bool write_key(std::string_view key) {
    if (key.size() > kKeyMax) return out_.string(key);
    auto addr = reinterpret_cast<uintptr_t>(key.data());
    KeyEntry& e = keys_[((addr >> 4) ^ (addr >> 12)) & (kKeyEntries - 1)];
    if (e.addr == addr && e.epoch == epoch_ && e.len == key.size()) {
      out_.append({e.text, e.text_len});
      return true;
    }
    size_t mark = out_.size();
    if (!out_.string(key)) return false;
    size_t n = out_.size() - mark;
    if (n <= sizeof e.text) {
      e.addr = addr;
      e.epoch = epoch_;
      e.len = static_cast<uint32_t>(key.size());
      e.text_len = static_cast<uint8_t>(n);
      std::memcpy(e.text, out_.data() + mark, n);
    }
    return true;
  }

  void close(char bracket, int depth) {
    if (!opts_.indent.empty()) out_.newline(opts_.indent, depth);
    out_.put(bracket);
  }

  // Classifies every key, then writes the table as the one thing it can be.
  bool slow(int idx, int depth, Kind kind) {
    std::vector<Key> keys;
    std::vector<std::string> number_texts;  // texts of number keys (marked objects)
    size_t strings = 0;
    size_t indices = 0;  // positive integer keys
    double max_index = 0;
    lua_pushnil(L_);
    while (lua_next(L_, idx) != 0) {
      lua_pop(L_, 1);
      int t = lua_type(L_, -1);
      if (t == LUA_TSTRING) {
        size_t len = 0;
        const char* s = lua_tolstring(L_, -1, &len);
        keys.push_back({{s, len}, 0, false});
        ++strings;
      } else if (t == LUA_TNUMBER) {
        double d = lua_tonumber(L_, -1);
        if (d >= 1 && d == std::floor(d) && d <= kExact) {
          ++indices;
          max_index = std::max(max_index, d);
        } else if (kind != Kind::kObject) {
          lua_pop(L_, 1);
          return bad_key_number(d, kind);
        }
        keys.push_back({{}, d, true});
      } else {
        std::string why = std::string("a table key of type ") + luaL_typename(L_, -1) + " cannot be encoded";
        lua_pop(L_, 1);
        return fail(why);
      }
    }
    if (kind == Kind::kObject) return write_object(idx, depth, keys, number_texts);
    if (kind == Kind::kArray) {
      if (strings > 0)
        return fail("a json.array table has a string key '" + std::string(first_string(keys)) + "'");
      // Holes are written as null, but not without bound.
      if (max_index > 2.0 * static_cast<double>(indices) + 1000) {
        return fail("sparse array: index " + std::to_string(static_cast<int64_t>(max_index)) + " with only " +
                    std::to_string(indices) + " values");
      }
      return write_array(idx, depth, static_cast<int64_t>(max_index));
    }
    if (strings > 0 && indices > 0) {
      return fail("the table has both integer keys and string keys ('" + std::string(first_string(keys)) +
                  "'); JSON has no such value (use json.object(t) to write the integer keys as strings)");
    }
    if (strings > 0) return write_object(idx, depth, keys, number_texts);
    if (max_index != static_cast<double>(indices)) {
      return fail("sparse array: integer keys up to " + std::to_string(static_cast<int64_t>(max_index)) +
                  " with holes (use json.null for missing values, or json.object(t))");
    }
    return write_array(idx, depth, static_cast<int64_t>(max_index));
  }

  static std::string_view first_string(const std::vector<Key>& keys) {
    for (const auto& k : keys) {
      if (!k.is_number) return k.text;
    }
    return {};
  }

  bool bad_key_number(double d, Kind kind) {
    json::Writer w;
    if (std::isfinite(d)) {
      w.number(d);
    } else {
      w.append(std::isnan(d) ? "nan" : "inf");
    }
    std::string text(w.data(), w.size());
    if (kind == Kind::kArray) return fail("a json.array table has key " + text + ", not an index 1..n");
    return fail("the number key " + text +
                " is not an array index 1..n (use json.object(t) to write it as a string)");
  }

  bool write_array(int idx, int depth, int64_t n) {
    out_.put('[');
    for (int64_t i = 1; i <= n; ++i) {
      if (i > 1) out_.put(',');
      if (!opts_.indent.empty()) out_.newline(opts_.indent, depth + 1);
      lua_rawgeti(L_, idx, static_cast<int>(i));
      bool ok = value(lua_gettop(L_), depth + 1);
      lua_pop(L_, 1);
      if (!ok) return failed_at_index(static_cast<double>(i)) == Result::kOk;
    }
    close(']', depth);
    return true;
  }

  bool write_object(int idx, int depth, std::vector<Key>& keys, std::vector<std::string>& texts) {
    // Number keys (json.object tables only) are written as their JSON text.
    texts.reserve(keys.size());
    for (auto& k : keys) {
      if (!k.is_number) continue;
      if (!std::isfinite(k.number)) return fail("a number key that is not finite cannot be encoded");
      json::Writer w;
      w.number(k.number);
      texts.emplace_back(w.data(), w.size());
      k.text = texts.back();
    }
    if (opts_.sort_keys) {
      std::sort(keys.begin(), keys.end(), [](const Key& a, const Key& b) { return a.text < b.text; });
    }
    out_.put('{');
    bool first = true;
    for (const auto& k : keys) {
      if (!first) out_.put(',');
      first = false;
      if (k.is_number) {
        lua_pushnumber(L_, k.number);
      } else {
        lua_pushlstring(L_, k.text.data(), k.text.size());
        epoch_ = ++t_key_epoch;  // an allocation: forget the key cache (see write_key)
      }
      lua_rawget(L_, idx);
      bool ok = key_and_value(k.text, lua_gettop(L_), depth);
      lua_pop(L_, 1);
      if (!ok) return false;
    }
    close('}', depth);
    return true;
  }

  Result failed_at_index(double i) {
    path_.push_back("[" + std::to_string(static_cast<int64_t>(i)) + "]");
    return Result::kFail;
  }

  bool failed_at_key(std::string_view key) {
    bool ident = !key.empty() && !(key[0] >= '0' && key[0] <= '9');
    for (char c : key) {
      ident =
          ident && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_');
    }
    if (ident) {
      path_.push_back("." + std::string(key));
    } else {
      json::Writer w;
      bool utf8 = w.string(key);
      path_.push_back("[" + (utf8 ? std::string(w.data(), w.size()) : std::string("<invalid UTF-8>")) + "]");
    }
    return false;
  }

  bool fail(std::string why) {
    why_ = std::move(why);
    return false;
  }

  static constexpr int kStackLevels = 16;
  lua_State* L_;
  json::Writer& out_;
  const EncodeOptions& opts_;
  const void* array_meta_ = nullptr;  // the marker metatables
  const void* object_meta_ = nullptr;
  int checked_depth_ = 0;  // the stack has room for the levels below this  // Key cache entries of another
                           // epoch are stale; every encode (and every
  // slow path) takes a new one, so the thread's cache needs no clearing.
  uint64_t epoch_ = ++t_key_epoch;
  KeyEntry* keys_ = t_keys.data();
  std::vector<const void*> active_;  // tables being written, outermost first: cycles
  std::vector<std::string> path_;    // innermost segment first, filled while unwinding
  std::string why_;
};

bool read_encode_options(lua_State* L, EncodeOptions* o) {
  if (lua_isnoneornil(L, 2)) return true;
  if (!lua_istable(L, 2)) {
    push_arg_error(L, 2, "json.encode", type_error(L, 2, "table"));
    return false;
  }
  if (!check_option_names(L, 2, 2, "json.encode", {"pretty", "sortKeys", "maxDepth"})) return false;
  if (!read_max_depth(L, 2, 2, "json.encode", &o->max_depth)) return false;
  lua_getfield(L, 2, "sortKeys");
  o->sort_keys = lua_toboolean(L, -1) != 0;
  lua_getfield(L, 2, "pretty");
  int t = lua_type(L, -1);
  bool ok = true;
  if (t == LUA_TBOOLEAN) {
    if (lua_toboolean(L, -1) != 0) o->indent = "  ";
  } else if (t == LUA_TNUMBER) {
    double n = lua_tonumber(L, -1);
    ok = n >= 0 && n <= 16 && n == std::floor(n);
    if (ok) o->indent.assign(static_cast<size_t>(n), ' ');
  } else if (t == LUA_TSTRING) {
    o->indent = lua_tostring(L, -1);
    ok = o->indent.size() <= 16 && o->indent.find_first_not_of(" \t") == std::string::npos;
  } else {
    ok = t == LUA_TNIL;
  }
  lua_pop(L, 2);
  if (!ok) {
    push_arg_error(L, 2, "json.encode",
                   "pretty must be true, a number of spaces (0-16) or a string of spaces and tabs");
  }
  return ok;
}

// One buffer per thread, kept between calls; a nested call (json.encode
// from Lua code the encoder runs) gets a buffer of its own.
thread_local json::Writer t_writer;
thread_local bool t_writer_busy = false;

// Leaves the text (1) or an error message (-1) on the stack; every C++
// object is gone before the caller raises.
int encode(lua_State* L) {
  if (lua_gettop(L) == 0) {
    push_arg_error(L, 1, "json.encode", "value expected");
    return -1;
  }
  EncodeOptions opts;
  if (!read_encode_options(L, &opts)) return -1;
  json::Writer local;
  bool nested = t_writer_busy;
  json::Writer& out = nested ? local : t_writer;
  out.clear();
  t_writer_busy = true;
  struct Release {
    bool nested;
    json::Writer& out;
    ~Release() {
      if (nested) return;
      t_writer_busy = false;
      out.trim(kKeepBuffer);
    }
  } release{nested, out};
  Encoder enc(L, out, opts);
  if (!enc.value(1, 0)) {
    push_arg_error(L, 1, "json.encode", enc.error());
    return -1;
  }
  lua_pushlstring(L, out.data(), out.size());
  return 1;
}

// json.encode(value [, opts]) -> text
int l_encode(lua_State* L) {
  if (encode(L) < 0) return lua_error(L);
  return 1;
}

// ------------------------------------------------------------------ marks

// json.array([t]) / json.object([t]) -> t, marked. A table with a metatable
// of its own keeps it and is marked in the weak set instead.
int mark(lua_State* L, int meta, const char* fname, const char* kind) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  } else if (!lua_istable(L, 1)) {
    push_arg_error(L, 1, fname, type_error(L, 1, "table"));
    return lua_error(L);
  }
  lua_settop(L, 1);
  if (lua_getmetatable(L, 1) == 0 || lua_rawequal(L, -1, up(kArrayMeta)) != 0 ||
      lua_rawequal(L, -1, up(kObjectMeta)) != 0) {
    lua_settop(L, 1);
    lua_pushvalue(L, up(meta));
    lua_setmetatable(L, 1);
    return 1;
  }
  lua_settop(L, 1);
  lua_pushvalue(L, 1);
  lua_pushstring(L, kind);
  lua_rawset(L, up(kMarks));
  return 1;
}

int l_array(lua_State* L) { return mark(L, kArrayMeta, "json.array", "array"); }
int l_object(lua_State* L) { return mark(L, kObjectMeta, "json.object", "object"); }

// kind(v) -> "array" | "object" | nil: how a table is marked.
int l_kind(lua_State* L) {
  if (!lua_istable(L, 1)) return 0;
  if (lua_getmetatable(L, 1) != 0) {
    if (lua_rawequal(L, -1, up(kArrayMeta)) != 0) {
      lua_pushliteral(L, "array");
      return 1;
    }
    if (lua_rawequal(L, -1, up(kObjectMeta)) != 0) {
      lua_pushliteral(L, "object");
      return 1;
    }
  }
  lua_pushvalue(L, 1);
  lua_rawget(L, up(kMarks));
  return 1;
}

void push_marker_meta(lua_State* L, const char* name) {
  lua_createtable(L, 0, 1);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
}

}  // namespace

int open_json(lua_State* L) {
  lua_createtable(L, 0, 8);
  const int module = lua_gettop(L);
  push_marker_meta(L, "json.array");
  push_marker_meta(L, "json.object");
  lua_createtable(L, 0, 0);  // marks, weak keys
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "ffi");
  lua_call(L, 1, 1);
  for (const char* ct : {"int64_t", "uint64_t"}) {
    lua_getfield(L, -1, "typeof");
    lua_pushstring(L, ct);
    lua_call(L, 1, 1);
    lua_insert(L, -2);  // keep the upvalues in order below the ffi table
  }
  lua_getfield(L, -1, "istype");
  lua_remove(L, -2);  // ffi
  // Stack: module, array meta, object meta, marks, int64, uint64, istype.
  const struct {
    const char* name;
    lua_CFunction fn;
  } funcs[] = {
      {"encode", l_encode}, {"decode", l_decode}, {"array", l_array}, {"object", l_object}, {"kind", l_kind}};
  for (const auto& f : funcs) {
    for (int i = 1; i <= kUpvalueCount; ++i) lua_pushvalue(L, module + i);
    lua_pushcclosure(L, f.fn, kUpvalueCount);
    lua_setfield(L, module, f.name);
  }
  lua_pushvalue(L, module + kArrayMeta);
  lua_setfield(L, module, "arrayMeta");
  lua_pushvalue(L, module + kObjectMeta);
  lua_setfield(L, module, "objectMeta");
  lua_pushlightuserdata(L, nullptr);
  lua_setfield(L, module, "null");
  lua_settop(L, module);
  return 1;
}

}  // namespace evo
