// evo.crypto: the native half of lib/crypto.lua and lib/uuid.lua, on
// OpenSSL 3 (libcrypto). Hashes and HMAC (one-shot and streaming), random
// bytes and integers, constant-time comparison, PBKDF2 and scrypt (one job
// on libuv's thread pool each: colourless, see run_kdf), AES-256-GCM, and
// the random parts of UUIDs v4 and v7.
//
// The Lua wrappers check arguments and name the function as the user called
// it ('crypto.hash'); the checks here only keep direct calls from crashing.
// Algorithms are passed as small integers (an index into kDigestAlgs, found
// by a table lookup in Lua), so a hash costs no string compare here.
// Nothing here needs Evo's runtime: the module loads in worker states, where
// the KDFs simply run on the calling thread.
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <array>
#include <chrono>
#include <climits>
#include <cstring>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "bind/io_call.h"
#include "io/io.h"
#include "lua/boxed.h"
#include "lua/errors.h"
#include "lua/modules.h"
#include "lua/runtime.h"
#include "lua/tasks.h"
#include "proto/encoding.h"

namespace evo {
namespace {

// ------------------------------------------------------------ algorithms

struct DigestAlg {
  const char* name;  // Evo's (and Node's) name
  const char* ossl;  // OpenSSL 3's canonical name
};

constexpr DigestAlg kDigestAlgs[] = {
    {"md5", "MD5"},
    {"sha1", "SHA1"},
    {"sha224", "SHA2-224"},
    {"sha256", "SHA2-256"},
    {"sha384", "SHA2-384"},
    {"sha512", "SHA2-512"},
    {"sha512-224", "SHA2-512/224"},
    {"sha512-256", "SHA2-512/256"},
    {"sha3-224", "SHA3-224"},
    {"sha3-256", "SHA3-256"},
    {"sha3-384", "SHA3-384"},
    {"sha3-512", "SHA3-512"},
    {"blake2b512", "BLAKE2B-512"},
    {"blake2s256", "BLAKE2S-256"},
    {"ripemd160", "RIPEMD-160"},
    {"sm3", "SM3"},
};
constexpr int kDigestCount = static_cast<int>(std::size(kDigestAlgs));

// The fetched implementations (nullptr for a name this OpenSSL lacks).
// Fetched once per process: an implicit fetch on every call costs a lock
// and a lookup. Never freed: they live as long as the process, and a static
// destructor could run after OpenSSL's own atexit cleanup.
struct Algorithms {
  std::array<EVP_MD*, kDigestCount> md{};
  EVP_MAC* hmac = nullptr;
  EVP_CIPHER* gcm = nullptr;
};

const Algorithms& algs() {
  static const Algorithms a = [] {
    Algorithms r;
    for (int i = 0; i < kDigestCount; ++i) r.md[i] = EVP_MD_fetch(nullptr, kDigestAlgs[i].ossl, nullptr);
    r.hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    r.gcm = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    ERR_clear_error();  // a missing optional digest leaves an error queued
    return r;
  }();
  return a;
}

// The digest id at idx (1-based index into kDigestAlgs).
int check_digest(lua_State* L, int idx) {
  lua_Integer id = luaL_checkinteger(L, idx);
  if (id < 1 || id > kDigestCount || algs().md[id - 1] == nullptr) luaL_argerror(L, idx, "unknown digest");
  return static_cast<int>(id - 1);
}

// OpenSSL's reason for the last failure on this thread, and an empty queue
// afterwards (the queue is per thread: left over, it would confuse the next
// TLS call on the loop thread).
std::string ssl_error(const char* what) {
  unsigned long e = ERR_get_error();
  std::string msg(what);
  if (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    msg += ": ";
    msg += buf;
  }
  ERR_clear_error();
  return msg;
}

std::string_view check_view(lua_State* L, int idx) {
  size_t len = 0;
  const char* s = luaL_checklstring(L, idx, &len);
  return {s, len};
}

const unsigned char* bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

// ------------------------------------------------------------ output encodings

enum Encoding : int { kHex = 0, kBase64 = 1, kRaw = 2, kBase64Url = 3 };

int push_encoded(lua_State* L, const unsigned char* p, size_t n, int enc) {
  std::string_view raw(reinterpret_cast<const char*>(p), n);
  std::string out;
  switch (enc) {
    case kRaw:
      lua_pushlstring(L, raw.data(), raw.size());
      return 1;
    case kBase64:
    case kBase64Url:
      encoding::base64_encode(raw, enc == kBase64Url, &out);
      break;
    default:
      encoding::hex_encode(raw, &out);
      break;
  }
  lua_pushlstring(L, out.data(), out.size());
  return 1;
}

// ------------------------------------------------------------ one-shot hash and HMAC

// digest(id, data, enc) -> text
int l_digest(lua_State* L) {
  int id = check_digest(L, 1);
  std::string_view data = check_view(L, 2);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, algs().md[id], nullptr) != 1)
    return luaL_error(L, "%s", ssl_error("hash failed").c_str());
  return push_encoded(L, md, len, static_cast<int>(luaL_optinteger(L, 3, kHex)));
}

struct MacCtxFree {
  void operator()(EVP_MAC_CTX* c) const { EVP_MAC_CTX_free(c); }
};
using MacCtx = std::unique_ptr<EVP_MAC_CTX, MacCtxFree>;

// A keyed HMAC context for digest `id`, or nullptr.
MacCtx new_hmac(int id, std::string_view key) {
  MacCtx ctx(EVP_MAC_CTX_new(algs().hmac));
  if (!ctx) return nullptr;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(kDigestAlgs[id].ossl), 0),
      OSSL_PARAM_construct_end(),
  };
  // A Lua string's pointer is never null, so an empty key is a key of
  // length 0 (valid HMAC), not "no key".
  if (EVP_MAC_init(ctx.get(), bytes(key), key.size(), params) != 1) return nullptr;
  return ctx;
}

// hmac(id, key, data, enc) -> text
int l_hmac(lua_State* L) {
  int id = check_digest(L, 1);
  std::string_view key = check_view(L, 2);
  std::string_view data = check_view(L, 3);
  MacCtx ctx = new_hmac(id, key);
  unsigned char out[EVP_MAX_MD_SIZE];
  size_t len = 0;
  if (!ctx || EVP_MAC_update(ctx.get(), bytes(data), data.size()) != 1 ||
      EVP_MAC_final(ctx.get(), out, &len, sizeof(out)) != 1)
    return luaL_error(L, "%s", ssl_error("hmac failed").c_str());
  return push_encoded(L, out, len, static_cast<int>(luaL_optinteger(L, 4, kHex)));
}

// ------------------------------------------------------------ streaming: Hasher

constexpr const char* kHasherMeta = "evo.Hasher";

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

// A running hash or HMAC: exactly one of md / mac is set. digest() ends it.
struct Hasher {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> md;
  MacCtx mac;
  bool done = false;
};

void push_hasher(lua_State* L, std::unique_ptr<Hasher> h) {
  Boxed<Hasher>::push(L, std::move(h), kHasherMeta);
}

Hasher* check_hasher(lua_State* L) { return Boxed<Hasher>::check(L, 1, kHasherMeta); }

Hasher* check_open_hasher(lua_State* L, const char* what) {
  Hasher* h = check_hasher(L);
  if (h->done) luaL_error(L, "%s: the Hasher was already digested (copy() it to digest midway)", what);
  return h;
}

// hasher(id) -> Hasher
int l_hasher(lua_State* L) {
  int id = check_digest(L, 1);
  auto h = std::make_unique<Hasher>();
  h->md.reset(EVP_MD_CTX_new());
  if (!h->md || EVP_DigestInit_ex2(h->md.get(), algs().md[id], nullptr) != 1)
    return luaL_error(L, "%s", ssl_error("hash failed").c_str());
  push_hasher(L, std::move(h));
  return 1;
}

// hmacer(id, key) -> Hasher
int l_hmacer(lua_State* L) {
  int id = check_digest(L, 1);
  auto h = std::make_unique<Hasher>();
  h->mac = new_hmac(id, check_view(L, 2));
  if (!h->mac) return luaL_error(L, "%s", ssl_error("hmac failed").c_str());
  push_hasher(L, std::move(h));
  return 1;
}

// hasher:update(data) -> hasher
int l_update(lua_State* L) {
  Hasher* h = check_open_hasher(L, "update");
  std::string_view data = check_view(L, 2);
  int ok = h->md ? EVP_DigestUpdate(h->md.get(), data.data(), data.size())
                 : EVP_MAC_update(h->mac.get(), bytes(data), data.size());
  if (ok != 1) return luaL_error(L, "%s", ssl_error("hash failed").c_str());
  lua_settop(L, 1);
  return 1;
}

// hasher:digest(enc) -> text
int l_final(lua_State* L) {
  Hasher* h = check_open_hasher(L, "digest");
  unsigned char out[EVP_MAX_MD_SIZE];
  size_t len = 0;
  int ok = 0;
  if (h->md) {
    unsigned int n = 0;
    ok = EVP_DigestFinal_ex(h->md.get(), out, &n);
    len = n;
  } else {
    ok = EVP_MAC_final(h->mac.get(), out, &len, sizeof(out));
  }
  h->done = true;
  if (ok != 1) return luaL_error(L, "%s", ssl_error("hash failed").c_str());
  return push_encoded(L, out, len, static_cast<int>(luaL_optinteger(L, 2, kHex)));
}

// hasher:copy() -> an independent Hasher with the same state
int l_copy(lua_State* L) {
  Hasher* h = check_open_hasher(L, "copy");
  auto c = std::make_unique<Hasher>();
  if (h->md) {
    c->md.reset(EVP_MD_CTX_new());
    if (!c->md || EVP_MD_CTX_copy_ex(c->md.get(), h->md.get()) != 1)
      return luaL_error(L, "%s", ssl_error("hash copy failed").c_str());
  } else {
    c->mac.reset(EVP_MAC_CTX_dup(h->mac.get()));
    if (!c->mac) return luaL_error(L, "%s", ssl_error("hmac copy failed").c_str());
  }
  push_hasher(L, std::move(c));
  return 1;
}

// ------------------------------------------------------------ randomness

void random_fill(lua_State* L, unsigned char* p, size_t n) {
  // RAND_bytes takes an int; the wrapper bounds n, this loop keeps it safe.
  while (n > 0) {
    int chunk = n > (1U << 30) ? (1 << 30) : static_cast<int>(n);
    if (RAND_bytes(p, chunk) != 1) luaL_error(L, "%s", ssl_error("the random generator failed").c_str());
    p += chunk;
    n -= static_cast<size_t>(chunk);
  }
}

// randomBytes(n) -> n random bytes
int l_random_bytes(lua_State* L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 0, 1, "negative length");
  std::string buf(static_cast<size_t>(n), '\0');
  random_fill(L, reinterpret_cast<unsigned char*>(buf.data()), buf.size());
  lua_pushlstring(L, buf.data(), buf.size());
  return 1;
}

// randomInt(a, b) -> a uniform integer in [a, b]. Rejection sampling: draws
// below the largest multiple of the range only, so no value is favoured.
int l_random_int(lua_State* L) {
  auto a = static_cast<int64_t>(luaL_checknumber(L, 1));
  auto b = static_cast<int64_t>(luaL_checknumber(L, 2));
  luaL_argcheck(L, a <= b, 2, "empty range");
  uint64_t range = static_cast<uint64_t>(b - a) + 1;               // the wrapper keeps b - a below 2^53
  uint64_t limit = UINT64_MAX - (UINT64_MAX % range + 1) % range;  // accept draws <= limit
  uint64_t r = 0;
  do {
    random_fill(L, reinterpret_cast<unsigned char*>(&r), sizeof(r));
  } while (r > limit);
  lua_pushnumber(L, static_cast<lua_Number>(a + static_cast<int64_t>(r % range)));
  return 1;
}

// timingSafeEqual(a, b) -> boolean; the time depends on the length only.
int l_timing_safe_equal(lua_State* L) {
  std::string_view a = check_view(L, 1);
  std::string_view b = check_view(L, 2);
  lua_pushboolean(L, a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0);
  return 1;
}

// ------------------------------------------------------------ PBKDF2 and scrypt on the thread pool

// One key derivation: an Io work job (on a pool thread, or inline) that owns
// copies of its inputs.
struct KdfJob {
  enum class Kind : uint8_t { Pbkdf2, Scrypt } kind = Kind::Pbkdf2;
  std::string password;
  std::string salt;
  int digest = 0;
  uint64_t iterations = 0;                   // PBKDF2
  uint64_t n = 0, r = 0, p = 0, maxmem = 0;  // scrypt
  std::string key;                           // the output, sized by the caller
  std::string error;                         // OpenSSL's reason, when it failed

  KdfJob() = default;
  KdfJob(const KdfJob&) = delete;
  KdfJob& operator=(const KdfJob&) = delete;
  ~KdfJob() {
    // The password stays in memory no longer than the job.
    OPENSSL_cleanse(password.data(), password.size());
  }

  void run() {
    auto* out = reinterpret_cast<unsigned char*>(key.data());
    int ok = 0;
    if (kind == Kind::Pbkdf2) {
      ok = PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), bytes(salt),
                             static_cast<int>(salt.size()), static_cast<int>(iterations), algs().md[digest],
                             static_cast<int>(key.size()), out);
    } else {
      ok = EVP_PBE_scrypt(password.data(), password.size(), bytes(salt), salt.size(), n, r, p, maxmem, out,
                          key.size());
    }
    if (ok != 1) error = ssl_error(kind == Kind::Pbkdf2 ? "pbkdf2 failed" : "scrypt failed");
  }

  // The key, or nil, err {code = "CryptoError"}.
  int push_result(lua_State* L) {
    if (!error.empty()) {
      lua_pushnil(L);
      errors::push_error(L, "CryptoError", error);
      return 2;
    }
    lua_pushlstring(L, key.data(), key.size());
    OPENSSL_cleanse(key.data(), key.size());
    return 1;
  }
};

// Runs the job as Io work: on the pool, suspending the calling task, when
// there is a task that may yield and the Io mode is evented; else here
// (blocking mode, the main chunk outside a task). A derivation already
// running cannot be stopped (OpenSSL has no hook for it): a cancelled one
// finishes on its pool thread and its key is dropped. In a worker state
// (task.work) there is no loop of ours: it runs here. Returns the wait
// protocol's answer: (true, key | nil, err) or (false) (cancelled), or
// yields.
int run_kdf(lua_State* L, std::unique_ptr<KdfJob> job, int yieldable_idx) {
  if (Runtime::find(L) == nullptr) {
    job->run();
    lua_pushboolean(L, 1);
    return job->push_result(L) + 1;
  }
  std::shared_ptr<KdfJob> shared = std::move(job);
  Io& io = io_of(TaskSystem::from(L));
  return io_call<std::shared_ptr<KdfJob>>(
      L, yieldable_idx,
      [&](bool wait, std::function<void(std::shared_ptr<KdfJob>)> done) {
        return io.work([shared] { shared->run(); }, wait, [shared, done = std::move(done)] { done(shared); });
      },
      [](lua_State* Ls, const std::shared_ptr<KdfJob>& j) { return j->push_result(Ls); });
}

size_t check_length(lua_State* L, int idx) {
  lua_Integer n = luaL_checkinteger(L, idx);
  luaL_argcheck(L, n >= 1 && n <= INT_MAX, idx, "length out of range");
  return static_cast<size_t>(n);
}

// pbkdf2(password, salt, iterations, length, digest, yieldable)
int l_pbkdf2(lua_State* L) {
  auto job = std::make_unique<KdfJob>();
  job->kind = KdfJob::Kind::Pbkdf2;
  job->password = check_view(L, 1);
  job->salt = check_view(L, 2);
  lua_Integer iterations = luaL_checkinteger(L, 3);
  luaL_argcheck(L, iterations >= 1 && iterations <= INT_MAX, 3, "iterations out of range");
  job->iterations = static_cast<uint64_t>(iterations);
  job->key.assign(check_length(L, 4), '\0');
  job->digest = check_digest(L, 5);
  luaL_argcheck(L, job->password.size() <= INT_MAX && job->salt.size() <= INT_MAX, 1, "too long");
  return run_kdf(L, std::move(job), 6);
}

// scrypt(password, salt, length, N, r, p, maxmem, yieldable)
int l_scrypt(lua_State* L) {
  auto job = std::make_unique<KdfJob>();
  job->kind = KdfJob::Kind::Scrypt;
  job->password = check_view(L, 1);
  job->salt = check_view(L, 2);
  job->key.assign(check_length(L, 3), '\0');
  job->n = static_cast<uint64_t>(luaL_checknumber(L, 4));
  job->r = static_cast<uint64_t>(luaL_checknumber(L, 5));
  job->p = static_cast<uint64_t>(luaL_checknumber(L, 6));
  job->maxmem = static_cast<uint64_t>(luaL_checknumber(L, 7));
  return run_kdf(L, std::move(job), 8);
}

// ------------------------------------------------------------ AES-256-GCM

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

constexpr int kTagLength = 16;

// A context keyed for encryption or decryption with iv, aad already fed.
CipherCtx gcm_start(bool encrypt, std::string_view key, std::string_view iv, std::string_view aad) {
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int outl = 0;
  if (!ctx || EVP_CipherInit_ex(ctx.get(), algs().gcm, nullptr, nullptr, nullptr, encrypt ? 1 : 0) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(iv.size()), nullptr) != 1 ||
      EVP_CipherInit_ex(ctx.get(), nullptr, nullptr, bytes(key), bytes(iv), encrypt ? 1 : 0) != 1)
    return nullptr;
  if (!aad.empty() &&
      EVP_CipherUpdate(ctx.get(), nullptr, &outl, bytes(aad), static_cast<int>(aad.size())) != 1)
    return nullptr;
  return ctx;
}

void check_gcm_args(lua_State* L, std::string_view key, std::string_view iv, std::string_view text,
                    std::string_view aad) {
  luaL_argcheck(L, key.size() == 32, 1, "the key must be 32 bytes");
  luaL_argcheck(L, !iv.empty() && iv.size() <= 1024, 2, "the iv must be 1 to 1024 bytes (12 recommended)");
  luaL_argcheck(L, text.size() < INT_MAX && aad.size() < INT_MAX, 3, "too long");
}

// encrypt(key, iv, plaintext, aad) -> ciphertext, tag
int l_encrypt(lua_State* L) {
  std::string_view key = check_view(L, 1), iv = check_view(L, 2), text = check_view(L, 3);
  std::string_view aad = lua_isnoneornil(L, 4) ? std::string_view() : check_view(L, 4);
  check_gcm_args(L, key, iv, text, aad);
  CipherCtx ctx = gcm_start(true, key, iv, aad);
  std::string out(text.size(), '\0');
  unsigned char tag[kTagLength];
  int outl = 0, finl = 0;
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  if (!ctx || EVP_CipherUpdate(ctx.get(), o, &outl, bytes(text), static_cast<int>(text.size())) != 1 ||
      EVP_CipherFinal_ex(ctx.get(), o + outl, &finl) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagLength, tag) != 1)
    return luaL_error(L, "%s", ssl_error("encryption failed").c_str());
  lua_pushlstring(L, out.data(), static_cast<size_t>(outl + finl));
  lua_pushlstring(L, reinterpret_cast<const char*>(tag), kTagLength);
  return 2;
}

// decrypt(key, iv, ciphertext, tag, aad) -> plaintext | nil, err {code = "AuthFailed"}
int l_decrypt(lua_State* L) {
  std::string_view key = check_view(L, 1), iv = check_view(L, 2), text = check_view(L, 3);
  std::string_view tag = check_view(L, 4);
  std::string_view aad = lua_isnoneornil(L, 5) ? std::string_view() : check_view(L, 5);
  check_gcm_args(L, key, iv, text, aad);
  luaL_argcheck(L, tag.size() == kTagLength, 4, "the tag must be 16 bytes");
  CipherCtx ctx = gcm_start(false, key, iv, aad);
  std::string out(text.size(), '\0');
  int outl = 0, finl = 0;
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  if (!ctx || EVP_CipherUpdate(ctx.get(), o, &outl, bytes(text), static_cast<int>(text.size())) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagLength, const_cast<char*>(tag.data())) != 1)
    return luaL_error(L, "%s", ssl_error("decryption failed").c_str());
  if (EVP_CipherFinal_ex(ctx.get(), o + outl, &finl) != 1) {
    // Unauthenticated plaintext is never handed out, and not left around.
    OPENSSL_cleanse(out.data(), out.size());
    ERR_clear_error();
    lua_pushnil(L);
    errors::push_error(L, "AuthFailed", "the message or its tag was altered (or the key, iv or aad differ)");
    return 2;
  }
  lua_pushlstring(L, out.data(), static_cast<size_t>(outl + finl));
  OPENSSL_cleanse(out.data(), out.size());
  return 1;
}

// ------------------------------------------------------------ UUIDs

int push_uuid(lua_State* L, const uint8_t b[16]) {
  char text[36];
  encoding::uuid_format(b, text);
  lua_pushlstring(L, text, sizeof(text));
  return 1;
}

// uuid4() -> text: 122 random bits, version 4, variant 10.
int l_uuid4(lua_State* L) {
  uint8_t b[16];
  random_fill(L, b, sizeof(b));
  b[6] = static_cast<uint8_t>((b[6] & 0x0F) | 0x40);
  b[8] = static_cast<uint8_t>((b[8] & 0x3F) | 0x80);
  return push_uuid(L, b);
}

// UUIDv7's clock for the whole process (every thread and Lua state), so
// that ids from one process sort in the order they were made.
struct V7Clock {
  std::mutex m;
  uint64_t last_ms = 0;
  uint32_t counter = 0;  // 12 bits: rand_a
};

V7Clock& v7_clock() {
  static V7Clock c;
  return c;
}

// uuid7() -> text (RFC 9562 §5.7): 48-bit Unix time in ms, then rand_a used
// as a 12-bit counter (§6.2, method 1) and 62 random bits. Within one
// millisecond the counter counts up from a random start below 2048 (room
// for 2048 more ids); if it overflows, or the clock steps back, the
// timestamp is advanced by hand, so each id is greater than the last.
int l_uuid7(lua_State* L) {
  uint8_t rnd[10];
  random_fill(L, rnd, sizeof(rnd));
  auto now = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
  uint32_t seed = ((uint32_t{rnd[0]} << 8) | rnd[1]) & 0x7FF;
  uint64_t ms = 0;
  uint32_t counter = 0;
  {
    V7Clock& c = v7_clock();
    std::lock_guard<std::mutex> lock(c.m);
    if (now > c.last_ms) {
      c.last_ms = now;
      c.counter = seed;
    } else if (++c.counter > 0xFFF) {
      ++c.last_ms;
      c.counter = seed;
    }
    ms = c.last_ms;
    counter = c.counter;
  }
  uint8_t b[16];
  for (int i = 0; i < 6; ++i) b[i] = static_cast<uint8_t>(ms >> (8 * (5 - i)));
  b[6] = static_cast<uint8_t>(0x70 | (counter >> 8));
  b[7] = static_cast<uint8_t>(counter);
  b[8] = static_cast<uint8_t>(0x80 | (rnd[2] & 0x3F));
  std::memcpy(b + 9, rnd + 3, 7);
  return push_uuid(L, b);
}

// digests() -> {name = id}: the algorithms this OpenSSL provides.
int l_digests(lua_State* L) {
  lua_newtable(L);
  for (int i = 0; i < kDigestCount; ++i) {
    if (algs().md[i] == nullptr) continue;
    lua_pushinteger(L, i + 1);
    lua_setfield(L, -2, kDigestAlgs[i].name);
  }
  return 1;
}

void register_hasher_meta(lua_State* L) {
  luaL_newmetatable(L, kHasherMeta);
  lua_pushcfunction(L, Boxed<Hasher>::gc);
  lua_setfield(L, -2, "__gc");
  lua_newtable(L);
  const luaL_Reg methods[] = {
      {"update", l_update},
      {"digest", l_final},
      {"copy", l_copy},
      {nullptr, nullptr},
  };
  luaL_register(L, nullptr, methods);
  lua_setfield(L, -2, "__index");
}

}  // namespace

int open_crypto(lua_State* L) {
  const luaL_Reg functions[] = {
      {"digest", l_digest},
      {"hmac", l_hmac},
      {"hasher", l_hasher},
      {"hmacer", l_hmacer},
      {"randomBytes", l_random_bytes},
      {"randomInt", l_random_int},
      {"timingSafeEqual", l_timing_safe_equal},
      {"pbkdf2", l_pbkdf2},
      {"scrypt", l_scrypt},
      {"encrypt", l_encrypt},
      {"decrypt", l_decrypt},
      {"uuid4", l_uuid4},
      {"uuid7", l_uuid7},
      {"digests", l_digests},
      {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  register_hasher_meta(L);  // the wrapper replaces __index with checked methods
  lua_setfield(L, -2, "hasherMeta");
  return 1;
}

}  // namespace evo
