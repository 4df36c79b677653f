// TLS without I/O: OpenSSL sessions over memory BIOs. The owner moves bytes —
// ciphertext from the network goes in with feed(), ciphertext for the network
// comes out with take_output() — so one engine serves libuv TCP streams, the
// HTTP server's connections and the WebSocket client alike, and nothing in it
// ever blocks.
//
// A Session is driven by its owner in this order, after every network read:
//   if (!s.feed(bytes)) { send(s.take_output()); close; }   // alert, then close
//   s.read(&plain);       // application data decrypted by that feed
//   send(s.take_output()); // handshake replies, session tickets...
// and after every s.write(...) / s.close(): send(s.take_output()).
#pragma once

#include <openssl/types.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace evo::tls {

struct ServerOptions {
  std::string cert_file;                         // PEM: the certificate, then any intermediates
  std::string key_file;                          // PEM, unencrypted
  std::vector<std::string> alpn = {"http/1.1"};  // in the server's order of preference
};

struct ClientOptions {
  std::string ca_file;            // PEM bundle of trusted CAs; empty: the system CA store
  bool verify = true;             // false: accept any certificate for any name
  std::vector<std::string> alpn;  // advertised, in the client's order of preference
  // With verify: a session started without a servername checks the chain
  // alone instead of refusing to start. Only for compatibility with APIs that
  // behave so (OpenResty's sslhandshake): a valid chain for no particular
  // name proves little, so Evo's own clients never set it.
  bool chain_only_without_name = false;
};

struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const;
};
struct SslFree {
  void operator()(SSL* ssl) const;
};

// A configured SSL_CTX, shared by many sessions (a server creates one per
// listener; clients may cache one per options).
class Context {
  // Constructible only here: contexts come from server()/client(). (Explicit,
  // so that `{}` cannot make one outside.)
  struct Token {
    explicit Token() = default;
  };

 public:
  // nullptr and *error ("cannot load certificate cert.pem: <reason>") on failure.
  static std::shared_ptr<Context> server(const ServerOptions& o, std::string* error);
  static std::shared_ptr<Context> client(const ClientOptions& o, std::string* error);

  explicit Context(Token /*unused*/) {}
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  SSL_CTX* native() { return ctx_.get(); }
  [[nodiscard]] bool is_server() const { return is_server_; }
  // A client context that checks the peer's certificate and name.
  [[nodiscard]] bool verifies_peer() const { return verify_; }
  [[nodiscard]] bool chain_only_without_name() const { return chain_only_; }

 private:
  static int select_alpn(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                         unsigned int inlen, void* arg);

  std::unique_ptr<SSL_CTX, SslCtxFree> ctx_;
  std::string alpn_wire_;  // the ALPN list in wire format: length-prefixed names
  bool is_server_ = false;
  bool verify_ = false;
  bool chain_only_ = false;
};

class Session {
  struct Token {  // sessions come from accept()/connect()
    explicit Token() = default;
  };

 public:
  // A server session. Never nullptr.
  static std::unique_ptr<Session> accept(std::shared_ptr<Context> ctx);
  // A client session: SNI and certificate name check against `servername`; an
  // IP address is checked as an IP (and sent without SNI, which forbids IPs).
  // The ClientHello is in take_output() right away. Never nullptr: a session
  // that cannot start (verifying without a servername) has error() set.
  static std::unique_ptr<Session> connect(std::shared_ptr<Context> ctx, const std::string& servername);

  Session(Token /*unused*/, std::shared_ptr<Context> ctx);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Ciphertext from the network, any split: partial records wait for the rest,
  // several records are all processed. Drives the handshake and decrypts what
  // it can (for read()). Returns false on a fatal TLS error — error() tells
  // why, and take_output() may hold an alert to send before closing.
  bool feed(std::string_view ciphertext);
  // Application data decrypted so far, appended to *out; returns the bytes appended.
  size_t read(std::string* out);
  // Plaintext to send. Before the handshake completes it is held, and sent
  // once it does. False after a failure or after close().
  bool write(std::string_view plaintext);
  // Ciphertext to put on the wire (handshake records, alerts, encrypted data),
  // appended to *out; returns the bytes appended. The session no longer holds them.
  size_t take_output(std::string* out);
  [[nodiscard]] bool has_output() const;

  [[nodiscard]] bool handshake_done() const { return handshake_done_; }
  [[nodiscard]] bool peer_closed() const { return peer_closed_; }  // close_notify received
  // Queues close_notify (after any data written before the handshake completed).
  void close();
  [[nodiscard]] const std::string& error() const { return error_; }  // empty while fine
  [[nodiscard]] bool failed() const { return !error_.empty(); }
  // The failure was the peer's certificate failing verification (chain or name).
  [[nodiscard]] bool verify_failed() const { return verify_failed_; }
  [[nodiscard]] std::string alpn_selected() const;  // "" if none
  // On a server: the name the client sent by SNI ("" if none). On a client: the name given.
  [[nodiscard]] std::string servername() const;
  SSL* native() { return ssl_.get(); }

 private:
  bool open(bool as_server);
  bool advance();
  bool flush_early_writes();
  bool decrypt_available();
  bool encrypt(std::string_view plaintext);
  void send_close_notify();
  bool wait_or_fail(int ssl_result, std::string_view doing);
  std::string describe_failure(int ssl_error, std::string_view doing);
  bool fail(std::string message);

  std::shared_ptr<Context> ctx_;
  std::unique_ptr<SSL, SslFree> ssl_;
  BIO* network_in_ = nullptr;   // ciphertext fed, for OpenSSL to read; owned by ssl_
  BIO* network_out_ = nullptr;  // ciphertext OpenSSL wrote, for take_output; owned by ssl_
  // Decrypted data waiting for read(): the first decrypted_len_ bytes. The rest
  // is room OpenSSL decrypts into, kept between reads (no zero-filling per read).
  std::string decrypted_;
  size_t decrypted_len_ = 0;
  std::string early_writes_;  // written before the handshake completed
  std::string servername_;    // client: the name given to connect()
  std::string error_;
  bool handshake_done_ = false;
  bool peer_closed_ = false;
  bool close_requested_ = false;
  bool verify_failed_ = false;
};

}  // namespace evo::tls
