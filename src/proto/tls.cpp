#include "proto/tls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <system_error>
#include <utility>

namespace evo::tls {

void SslCtxFree::operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
void SslFree::operator()(SSL* ssl) const { SSL_free(ssl); }

namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};

// A record carries at most 16 KiB of plaintext: room for one per SSL_read.
constexpr size_t kRecordPlaintextMax = size_t{16} * 1024;
// Above these, a buffer is given back once emptied (the decryption buffer) or
// drained (the memory BIOs), so a burst does not pin memory to an idle session.
// A BIO fed libuv's 64 KiB reads grows to about 86 KiB: kept, as replacing it
// after every read costs more than 10% of the throughput.
constexpr size_t kDecryptedKeepMax = size_t{64} * 1024;
constexpr size_t kBioKeepMax = size_t{128} * 1024;

// OpenSSL's error queue is per thread and outlives the call that filled it.
// Every operation here starts with it empty and every failure empties it after
// taking its reason, so a stale entry never turns a later success into a
// failure (SSL_get_error reads the queue).

// The reason of the oldest queued error — the root cause; later entries only
// name the layers that passed it up — with its detail if any ("no start line
// (Expecting: TRUSTED CERTIFICATE)"), and the queue emptied.
std::string take_error_reason() {
  const char* data = nullptr;
  int flags = 0;
  unsigned long first = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags);
  std::string reason;
  if (first == 0) {
    reason = "unknown error";
  } else if (ERR_SYSTEM_ERROR(first)) {
    // A system error (a missing file) carries errno, which OpenSSL has no text for.
    reason = std::generic_category().message(ERR_GET_REASON(first));
  } else if (const char* text = ERR_reason_error_string(first)) {
    reason = text;
    if ((flags & ERR_TXT_STRING) != 0 && data != nullptr && *data != '\0') {
      reason += std::string(" (") + data + ")";
    }
  } else {
    char buf[256];
    ERR_error_string_n(first, buf, sizeof buf);
    reason = buf;
  }
  ERR_clear_error();  // after: `data` belongs to the queue
  return reason;
}

// "<what>: <reason>" into *error; nullptr, for the failed factory to return.
std::nullptr_t context_error(std::string* error, const std::string& what) {
  std::string message = what + ": " + take_error_reason();
  if (error != nullptr) *error = std::move(message);
  return nullptr;
}

// Asked for the passphrase of an encrypted key. Nobody can answer, and
// OpenSSL's default would prompt on the terminal and block the loop: refuse,
// noting in *asked (a bool, when given) that the key was encrypted.
int refuse_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* asked) {
  if (asked != nullptr) *static_cast<bool*>(asked) = true;
  return -1;
}

// The PEM private key in `file`; nullptr with *encrypted set if it needs a passphrase.
std::unique_ptr<EVP_PKEY, PkeyFree> read_private_key(const std::string& file, bool* encrypted) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_file(file.c_str(), "r"));
  if (!bio) return nullptr;
  return std::unique_ptr<EVP_PKEY, PkeyFree>(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, refuse_passphrase, encrypted));
}

// {"h2", "http/1.1"} -> "\x02h2\x08http/1.1": ALPN's wire format, which both
// SSL_CTX_set_alpn_protos and the server's selection work on.
bool alpn_wire_format(const std::vector<std::string>& names, std::string* wire, std::string* error) {
  for (const std::string& name : names) {
    if (name.empty() || name.size() > 255) {
      if (error != nullptr) *error = "invalid ALPN protocol name \"" + name + "\" (1 to 255 bytes)";
      return false;
    }
    wire->push_back(static_cast<char>(name.size()));
    wire->append(name);
  }
  if (wire->size() > 0xffff) {  // the length of the whole extension is 16 bits
    if (error != nullptr) *error = "ALPN protocol list too long";
    return false;
  }
  return true;
}

// Whether the wire-format `list` holds `entry` (also in wire format: length byte, name).
bool alpn_list_contains(std::string_view list, std::string_view entry) {
  size_t i = 0;
  while (i < list.size()) {
    size_t len = static_cast<unsigned char>(list[i]);
    if (i + 1 + len > list.size()) return false;  // malformed tail
    if (list.substr(i, 1 + len) == entry) return true;
    i += 1 + len;
  }
  return false;
}

std::unique_ptr<SSL_CTX, SslCtxFree> new_ssl_ctx(const SSL_METHOD* method) {
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(method));
  if (!ctx) return nullptr;
  // TLS 1.0 and 1.1 are deprecated (RFC 8996).
  if (SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) != 1) return nullptr;
  // TLS 1.2 renegotiation is not needed, and a client asking for it again and
  // again is a cheap way to burn a server's CPU.
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION);
  // Nothing loaded through this context may prompt on the terminal.
  SSL_CTX_set_default_passwd_cb(ctx.get(), refuse_passphrase);
  return ctx;
}

// A memory BIO whose input side means "wait for more" when empty, not end of stream.
BIO* new_input_bio() {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio != nullptr) BIO_set_mem_eof_return(bio, -1);
  return bio;
}

// A memory BIO never shrinks its buffer: whether this one is empty but grew large.
bool drained_but_large(BIO* bio) {
  if (BIO_ctrl_pending(bio) != 0) return false;
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(bio, &mem);
  return mem != nullptr && mem->max > kBioKeepMax;
}

bool is_ip_address(const std::string& name) {
  in6_addr addr{};
  return inet_pton(AF_INET, name.c_str(), &addr) == 1 || inet_pton(AF_INET6, name.c_str(), &addr) == 1;
}

}  // namespace

// ------------------------------------------------------------------ Context

std::shared_ptr<Context> Context::server(const ServerOptions& o, std::string* error) {
  ERR_clear_error();
  auto c = std::make_shared<Context>(Token{});
  c->is_server_ = true;
  c->ctx_ = new_ssl_ctx(TLS_server_method());
  if (!c->ctx_) return context_error(error, "cannot create a TLS context");
  SSL_CTX* ctx = c->native();
  if (SSL_CTX_use_certificate_chain_file(ctx, o.cert_file.c_str()) != 1) {
    return context_error(error, "cannot load certificate " + o.cert_file);
  }
  // The key is read here rather than by SSL_CTX_use_PrivateKey_file so that a
  // file that cannot be read and a key that is not the certificate's tell apart.
  bool encrypted = false;
  auto key = read_private_key(o.key_file, &encrypted);
  if (encrypted) {
    ERR_clear_error();
    if (error != nullptr) {
      *error = "cannot load private key " + o.key_file + ": encrypted keys are not supported";
    }
    return nullptr;
  }
  if (!key) return context_error(error, "cannot load private key " + o.key_file);
  // use_PrivateKey refuses a key of the certificate's type that does not match
  // it; check_private_key catches a key of another type (an RSA key for an EC
  // certificate).
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    return context_error(error, "private key " + o.key_file + " does not match certificate " + o.cert_file);
  }
  if (!alpn_wire_format(o.alpn, &c->alpn_wire_, error)) return nullptr;
  // The callback's argument is the Context, which owns the SSL_CTX and so outlives it.
  if (!c->alpn_wire_.empty()) SSL_CTX_set_alpn_select_cb(ctx, select_alpn, c.get());
  return c;
}

std::shared_ptr<Context> Context::client(const ClientOptions& o, std::string* error) {
  ERR_clear_error();
  auto c = std::make_shared<Context>(Token{});
  c->verify_ = o.verify;
  c->chain_only_ = o.chain_only_without_name;
  c->ctx_ = new_ssl_ctx(TLS_client_method());
  if (!c->ctx_) return context_error(error, "cannot create a TLS context");
  SSL_CTX* ctx = c->native();
  if (o.verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    if (o.ca_file.empty()) {
      if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        return context_error(error, "cannot load the system CA store");
      }
    } else if (SSL_CTX_load_verify_locations(ctx, o.ca_file.c_str(), nullptr) != 1) {
      return context_error(error, "cannot load CA file " + o.ca_file);
    }
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  if (!alpn_wire_format(o.alpn, &c->alpn_wire_, error)) return nullptr;
  if (!c->alpn_wire_.empty()) {
    const auto* wire = reinterpret_cast<const unsigned char*>(c->alpn_wire_.data());
    // Unlike the rest of OpenSSL, 0 is success here.
    if (SSL_CTX_set_alpn_protos(ctx, wire, static_cast<unsigned int>(c->alpn_wire_.size())) != 0) {
      return context_error(error, "cannot set ALPN protocols");
    }
  }
  return c;
}

// The server's choice among the protocols the client offers: the first of the
// server's own list that the client has, so the server's preference wins. No
// common protocol is not an error: the connection goes on without ALPN.
int Context::select_alpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen,
                         const unsigned char* in, unsigned int inlen, void* arg) {
  const auto* self = static_cast<const Context*>(arg);
  std::string_view offered(reinterpret_cast<const char*>(in), inlen);
  std::string_view ours = self->alpn_wire_;
  size_t i = 0;
  while (i < ours.size()) {
    size_t len = static_cast<unsigned char>(ours[i]);
    if (alpn_list_contains(offered, ours.substr(i, 1 + len))) {
      // Points into alpn_wire_, which lives as long as the SSL_CTX.
      *out = reinterpret_cast<const unsigned char*>(ours.data() + i + 1);
      *outlen = static_cast<unsigned char>(len);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

// ------------------------------------------------------------------ Session

Session::Session(Token /*unused*/, std::shared_ptr<Context> ctx) : ctx_(std::move(ctx)) {}
Session::~Session() = default;

std::unique_ptr<Session> Session::accept(std::shared_ptr<Context> ctx) {
  auto s = std::make_unique<Session>(Token{}, std::move(ctx));
  if (s->open(true)) SSL_set_accept_state(s->native());
  return s;
}

std::unique_ptr<Session> Session::connect(std::shared_ptr<Context> ctx, const std::string& servername) {
  auto s = std::make_unique<Session>(Token{}, std::move(ctx));
  if (!s->open(false)) return s;
  s->servername_ = servername;
  SSL* ssl = s->native();
  bool ip = is_ip_address(servername);
  // SNI carries host names only (RFC 6066 3).
  if (!servername.empty() && !ip && SSL_set_tlsext_host_name(ssl, servername.c_str()) != 1) {
    s->fail("invalid servername \"" + servername + "\": " + take_error_reason());
    return s;
  }
  if (s->ctx_->verifies_peer() && !(servername.empty() && s->ctx_->chain_only_without_name())) {
    // A valid chain proves nothing without the name it must be valid for.
    if (servername.empty()) {
      s->fail("cannot verify the server's certificate without a servername");
      return s;
    }
    int set = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), servername.c_str())
                 : SSL_set1_host(ssl, servername.c_str());
    if (set != 1) {
      s->fail("invalid servername \"" + servername + "\": " + take_error_reason());
      return s;
    }
    // "*.example.com" matches, "w*.example.com" does not (RFC 6125 6.4.3).
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  }
  SSL_set_connect_state(ssl);
  s->advance();  // the ClientHello, ready in take_output()
  return s;
}

// The SSL object and its two memory BIOs: the network side of the session.
bool Session::open(bool as_server) {
  ERR_clear_error();
  if (!ctx_) return fail("no TLS context");
  if (ctx_->is_server() != as_server) {
    return fail(as_server ? "accept needs a server context" : "connect needs a client context");
  }
  ssl_.reset(SSL_new(ctx_->native()));
  std::unique_ptr<BIO, BioFree> in(new_input_bio());
  std::unique_ptr<BIO, BioFree> out(BIO_new(BIO_s_mem()));
  if (!ssl_ || !in || !out) return fail("cannot create a TLS session: " + take_error_reason());
  network_in_ = in.release();
  network_out_ = out.release();
  SSL_set_bio(ssl_.get(), network_in_, network_out_);  // the SSL owns both now
  return true;
}

bool Session::feed(std::string_view ciphertext) {
  if (failed()) return false;
  // After close_notify nothing more is data (RFC 8446 6.1): drop it rather
  // than let it pile up unread.
  if (peer_closed_) return true;
  size_t written = 0;
  if (!ciphertext.empty() && BIO_write_ex(network_in_, ciphertext.data(), ciphertext.size(), &written) != 1) {
    return fail("cannot buffer TLS input: " + take_error_reason());
  }
  bool ok = advance();
  // Replaced only when drained: nothing fed is lost.
  if (drained_but_large(network_in_)) {
    if (BIO* fresh = new_input_bio()) {
      SSL_set0_rbio(ssl_.get(), fresh);  // frees the old one
      network_in_ = fresh;
    }
  }
  return ok;
}

// Takes the session as far as the input allows: the handshake, then any
// records after it (data, close_notify, session tickets).
bool Session::advance() {
  if (failed()) return false;
  if (!handshake_done_) {
    ERR_clear_error();
    int result = SSL_do_handshake(ssl_.get());
    if (result != 1) return wait_or_fail(result, "TLS handshake failed");
    handshake_done_ = true;
    if (!flush_early_writes()) return false;
  }
  return decrypt_available();
}

// Sends what was written, and the close asked for, before the handshake completed.
bool Session::flush_early_writes() {
  std::string pending;
  pending.swap(early_writes_);
  if (!encrypt(pending)) return false;
  if (close_requested_) send_close_notify();
  return !failed();
}

// Decrypts every complete record fed so far, until OpenSSL wants more input.
bool Session::decrypt_available() {
  while (!peer_closed_) {
    if (decrypted_.size() - decrypted_len_ < kRecordPlaintextMax) {
      decrypted_.resize(decrypted_len_ + kRecordPlaintextMax);
    }
    size_t got = 0;
    ERR_clear_error();
    int result =
        SSL_read_ex(ssl_.get(), decrypted_.data() + decrypted_len_, decrypted_.size() - decrypted_len_, &got);
    if (result != 1) return wait_or_fail(result, "TLS error");
    decrypted_len_ += got;
  }
  return true;
}

size_t Session::read(std::string* out) {
  size_t n = decrypted_len_;
  out->append(decrypted_.data(), n);
  decrypted_len_ = 0;
  if (decrypted_.size() > kDecryptedKeepMax) std::string().swap(decrypted_);
  return n;
}

bool Session::write(std::string_view plaintext) {
  if (failed() || close_requested_) return false;
  if (!handshake_done_) {
    early_writes_.append(plaintext);
    return true;
  }
  return encrypt(plaintext);
}

bool Session::encrypt(std::string_view plaintext) {
  if (plaintext.empty()) return true;
  ERR_clear_error();
  size_t written = 0;
  // Into a memory BIO, SSL_write never waits for the network: all of it is
  // encrypted now, or the session has failed.
  int result = SSL_write_ex(ssl_.get(), plaintext.data(), plaintext.size(), &written);
  if (result == 1) return true;
  wait_or_fail(result, "TLS write failed");
  return false;
}

size_t Session::take_output(std::string* out) {
  if (network_out_ == nullptr) return 0;
  size_t pending = BIO_ctrl_pending(network_out_);
  if (pending == 0) return 0;
  size_t old = out->size();
  out->resize(old + pending);
  size_t got = 0;
  BIO_read_ex(network_out_, out->data() + old, pending, &got);
  out->resize(old + got);
  if (drained_but_large(network_out_)) {
    if (BIO* fresh = BIO_new(BIO_s_mem())) {
      SSL_set0_wbio(ssl_.get(), fresh);  // frees the old one
      network_out_ = fresh;
    }
  }
  return got;
}

bool Session::has_output() const { return network_out_ != nullptr && BIO_ctrl_pending(network_out_) > 0; }

void Session::close() {
  if (failed() || close_requested_) return;
  close_requested_ = true;
  // During the handshake close_notify cannot be sent yet: flush_early_writes
  // sends it when the handshake completes, after the data written before.
  if (handshake_done_) send_close_notify();
}

void Session::send_close_notify() {
  ERR_clear_error();
  // 0: sent, the peer's not yet received; 1: both done. Either is fine: the
  // peer's close_notify, if it comes, is seen by decrypt_available.
  int result = SSL_shutdown(ssl_.get());
  if (result < 0) wait_or_fail(result, "TLS close failed");
}

// After an SSL call that did not succeed: wanting more input is waiting
// (true), close_notify is the peer closing (true), anything else is fatal.
bool Session::wait_or_fail(int ssl_result, std::string_view doing) {
  int err = SSL_get_error(ssl_.get(), ssl_result);
  if (err == SSL_ERROR_WANT_READ) return true;
  if (err == SSL_ERROR_ZERO_RETURN) {
    peer_closed_ = true;
    return true;
  }
  return fail(describe_failure(err, doing));
}

std::string Session::describe_failure(int ssl_error, std::string_view doing) {
  unsigned long first = ERR_peek_error();
  if (ERR_GET_LIB(first) == ERR_LIB_SSL && ERR_GET_REASON(first) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    ERR_clear_error();
    verify_failed_ = true;
    long result = SSL_get_verify_result(ssl_.get());
    std::string message = std::string("certificate verify failed: ") + X509_verify_cert_error_string(result);
    if (result == X509_V_ERR_HOSTNAME_MISMATCH || result == X509_V_ERR_IP_ADDRESS_MISMATCH) {
      message += " (the certificate is not for " + servername_ + ")";
    }
    return message;
  }
  if (first == 0 && ssl_error == SSL_ERROR_SYSCALL) return std::string(doing) + ": unexpected end of input";
  return std::string(doing) + ": " + take_error_reason();
}

bool Session::fail(std::string message) {
  error_ = std::move(message);
  early_writes_.clear();
  ERR_clear_error();
  return false;
}

std::string Session::alpn_selected() const {
  if (!ssl_) return "";
  const unsigned char* name = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_.get(), &name, &len);
  if (name == nullptr || len == 0) return "";
  return {reinterpret_cast<const char*>(name), len};
}

std::string Session::servername() const {
  if (!ctx_ || !ctx_->is_server()) return servername_;
  if (!ssl_) return "";
  const char* name = SSL_get_servername(ssl_.get(), TLSEXT_NAMETYPE_host_name);
  return name != nullptr ? name : "";
}

}  // namespace evo::tls
