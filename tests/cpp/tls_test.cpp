// The sans-I/O TLS engine: a client and a server Session joined in memory,
// with certificates made at test time (a self-signed one, and a CA with a leaf
// it signed), covering the handshake, data in any split, ALPN, verification,
// close_notify and failures.
#include <gtest/gtest.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proto/tls.h"

namespace evo::tls {
namespace {

namespace fs = std::filesystem;

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using Key = std::unique_ptr<EVP_PKEY, PkeyFree>;
using Cert = std::unique_ptr<X509, X509Free>;

Key new_ec_key() { return Key(EVP_EC_gen("P-256")); }

void add_extension(X509* cert, X509V3_CTX* v3, int nid, const std::string& value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, v3, nid, value.c_str());
  ASSERT_NE(ext, nullptr) << value;
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A certificate for `key` named `cn`, signed by the issuer (itself when
// issuer is null). `san`: subjectAltName in OpenSSL's config syntax, or "".
Cert make_cert(EVP_PKEY* key, const std::string& cn, const std::string& san, bool is_ca, X509* issuer,
               EVP_PKEY* issuer_key) {
  static long serial = 1;
  Cert cert(X509_new());
  X509* c = cert.get();
  X509_set_version(c, X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(c), serial++);
  X509_gmtime_adj(X509_getm_notBefore(c), -3600);
  X509_gmtime_adj(X509_getm_notAfter(c), 24L * 3600);
  X509_NAME* name = X509_get_subject_name(c);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1,
                             -1, 0);
  X509_set_issuer_name(c, issuer != nullptr ? X509_get_subject_name(issuer) : name);
  X509_set_pubkey(c, key);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, issuer != nullptr ? issuer : c, c, nullptr, nullptr, 0);
  add_extension(c, &v3, NID_basic_constraints, is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  if (is_ca) add_extension(c, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
  add_extension(c, &v3, NID_subject_key_identifier, "hash");
  if (!san.empty()) add_extension(c, &v3, NID_subject_alt_name, san);
  EXPECT_GT(X509_sign(c, issuer_key != nullptr ? issuer_key : key, EVP_sha256()), 0);
  return cert;
}

void write_cert(const fs::path& file, X509* cert) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_file(file.c_str(), "w"));
  ASSERT_TRUE(bio);
  ASSERT_EQ(PEM_write_bio_X509(bio.get(), cert), 1);
}

void write_key(const fs::path& file, EVP_PKEY* key, const char* passphrase = nullptr) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_file(file.c_str(), "w"));
  ASSERT_TRUE(bio);
  const EVP_CIPHER* cipher = passphrase != nullptr ? EVP_aes_256_cbc() : nullptr;
  ASSERT_EQ(
      PEM_write_bio_PrivateKey(bio.get(), key, cipher, nullptr, 0, nullptr, const_cast<char*>(passphrase)),
      1);
}

// The certificates and keys, written once to a temporary directory removed at exit.
struct Files {
  fs::path dir;
  std::string self_cert, self_key;  // self-signed: CN=localhost, DNS:localhost, IP:127.0.0.1
  std::string ca_cert;              // a CA...
  std::string leaf_cert, leaf_key;  // ...and a leaf it signed, with the same names
  std::string other_key;            // an EC key matching no certificate
  std::string ed25519_key;          // a key of another type than the certificates'
  std::string encrypted_key;        // self_key under a passphrase
  std::string wildcard_cert;        // self-signed for self_key: DNS:*.example.com, DNS:w*.example.org

  Files() {
    std::string tmpl = (fs::temp_directory_path() / "evo-tls-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir = tmpl;
    const std::string san = "DNS:localhost,IP:127.0.0.1";

    Key self = new_ec_key();
    Cert self_signed = make_cert(self.get(), "localhost", san, false, nullptr, nullptr);
    self_cert = save_cert("self.pem", self_signed.get());
    self_key = save_key("self.key", self.get());
    encrypted_key = save_key("encrypted.key", self.get(), "secret");
    Cert wildcard =
        make_cert(self.get(), "example.com", "DNS:*.example.com,DNS:w*.example.org", false, nullptr, nullptr);
    wildcard_cert = save_cert("wildcard.pem", wildcard.get());

    Key ca = new_ec_key();
    Cert ca_signed = make_cert(ca.get(), "Evo Test CA", "", true, nullptr, nullptr);
    ca_cert = save_cert("ca.pem", ca_signed.get());
    Key leaf = new_ec_key();
    Cert leaf_signed = make_cert(leaf.get(), "localhost", san, false, ca_signed.get(), ca.get());
    leaf_cert = save_cert("leaf.pem", leaf_signed.get());
    leaf_key = save_key("leaf.key", leaf.get());

    other_key = save_key("other.key", new_ec_key().get());
    ed25519_key = save_key("ed25519.key", Key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")).get());
  }
  ~Files() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }

  std::string save_cert(const char* name, X509* cert) const {
    write_cert(dir / name, cert);
    return (dir / name).string();
  }
  std::string save_key(const char* name, EVP_PKEY* key, const char* passphrase = nullptr) const {
    write_key(dir / name, key, passphrase);
    return (dir / name).string();
  }
  std::string missing(const char* name) const { return (dir / name).string(); }
};

const Files& files() {
  static const Files f;
  return f;
}

std::shared_ptr<Context> server_context(const std::string& cert, const std::string& key,
                                        std::vector<std::string> alpn = {"http/1.1"}) {
  std::string error;
  auto ctx = Context::server({cert, key, std::move(alpn)}, &error);
  EXPECT_TRUE(ctx) << error;
  EXPECT_EQ(error, "");
  return ctx;
}

std::shared_ptr<Context> client_context(const std::string& ca_file, bool verify = true,
                                        std::vector<std::string> alpn = {}) {
  std::string error;
  auto ctx = Context::client({ca_file, verify, std::move(alpn)}, &error);
  EXPECT_TRUE(ctx) << error;
  EXPECT_EQ(error, "");
  return ctx;
}

// A client and a server session joined by an in-memory wire.
struct Link {
  std::unique_ptr<Session> client;
  std::unique_ptr<Session> server;
  std::string client_got;  // plaintext each side has read
  std::string server_got;
  size_t chunk = 0;  // bytes per feed; 0: all that is pending at once
  size_t feeds = 0;

  Link(std::shared_ptr<Context> client_ctx, std::shared_ptr<Context> server_ctx,
       const std::string& servername = "localhost")
      : client(Session::connect(std::move(client_ctx), servername)),
        server(Session::accept(std::move(server_ctx))) {}

  // Moves ciphertext both ways until neither side has any to send, reading
  // the plaintext that arrives. A side that failed still sends its alert.
  // True if neither side failed.
  bool pump() {
    for (int round = 0; round < 10000; ++round) {
      bool moved = deliver(*client, *server, &server_got);
      moved = deliver(*server, *client, &client_got) || moved;
      if (!moved) return !client->failed() && !server->failed();
    }
    ADD_FAILURE() << "the sessions never stopped talking";
    return false;
  }

  bool deliver(Session& from, Session& to, std::string* got) {
    std::string wire;
    if (from.take_output(&wire) == 0) return false;
    EXPECT_FALSE(from.has_output());
    std::string_view rest = wire;
    while (!rest.empty()) {
      size_t n = chunk == 0 ? rest.size() : std::min(chunk, rest.size());
      ++feeds;
      bool ok = to.feed(rest.substr(0, n));
      EXPECT_EQ(ok, !to.failed());
      to.read(got);
      if (!ok) break;
      rest.remove_prefix(n);
    }
    return true;
  }
};

// n bytes that are not all alike, so a dropped or reordered byte shows.
std::string pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed) % 251);
  return s;
}

constexpr size_t kMiB = size_t{1024} * 1024;

// --------------------------------------------------------------- the engine

TEST(TlsEngine, HandshakesThenCarriesDataBothWays) {
  Link link(client_context(files().self_cert), server_context(files().self_cert, files().self_key));
  EXPECT_TRUE(link.client->has_output()) << "the ClientHello is ready at once";
  EXPECT_FALSE(link.server->has_output());
  EXPECT_FALSE(link.client->handshake_done());
  ASSERT_TRUE(link.pump()) << link.client->error() << " / " << link.server->error();
  EXPECT_TRUE(link.client->handshake_done());
  EXPECT_TRUE(link.server->handshake_done());
  EXPECT_EQ(link.client->error(), "");
  EXPECT_EQ(link.server->error(), "");

  ASSERT_TRUE(link.client->write("hello"));
  ASSERT_TRUE(link.server->write("world"));
  ASSERT_TRUE(link.pump());
  EXPECT_EQ(link.server_got, "hello");
  EXPECT_EQ(link.client_got, "world");
  EXPECT_FALSE(link.client->has_output());
  std::string none;
  EXPECT_EQ(link.client->read(&none), 0U);
  EXPECT_EQ(link.client->take_output(&none), 0U);
  EXPECT_EQ(none, "");
}

TEST(TlsEngine, SpeaksTls12Too) {
  auto client_ctx = client_context(files().self_cert, true, {"http/1.1"});
  ASSERT_EQ(SSL_CTX_set_max_proto_version(client_ctx->native(), TLS1_2_VERSION), 1);
  Link link(client_ctx, server_context(files().self_cert, files().self_key));
  ASSERT_TRUE(link.client->write("over 1.2"));
  ASSERT_TRUE(link.pump()) << link.client->error() << " / " << link.server->error();
  EXPECT_STREQ(SSL_get_version(link.client->native()), "TLSv1.2");
  EXPECT_EQ(link.server->alpn_selected(), "http/1.1");
  ASSERT_TRUE(link.server->write("yes"));
  link.server->close();
  ASSERT_TRUE(link.pump());
  EXPECT_EQ(link.server_got, "over 1.2");
  EXPECT_EQ(link.client_got, "yes");
  EXPECT_TRUE(link.client->peer_closed());
}

TEST(TlsEngine, NothingOlderThanTls12) {
  auto client_ctx = client_context(files().self_cert);
  auto server_ctx = server_context(files().self_cert, files().self_key);
  EXPECT_EQ(SSL_CTX_get_min_proto_version(client_ctx->native()), TLS1_2_VERSION);
  EXPECT_EQ(SSL_CTX_get_min_proto_version(server_ctx->native()), TLS1_2_VERSION);
  Link link(client_ctx, server_ctx);
  ASSERT_TRUE(link.pump());
  EXPECT_STREQ(SSL_get_version(link.server->native()), "TLSv1.3");
}

TEST(TlsEngine, ReadAppendsAndCountsAndTakeOutputAppends) {
  Link link(client_context(files().self_cert), server_context(files().self_cert, files().self_key));
  ASSERT_TRUE(link.pump());
  ASSERT_TRUE(link.client->write("abc"));
  std::string wire = "prefix";
  size_t n = link.client->take_output(&wire);
  EXPECT_GT(n, 3U);
  EXPECT_EQ(wire.size(), 6 + n);
  EXPECT_EQ(wire.substr(0, 6), "prefix");
  ASSERT_TRUE(link.server->feed(std::string_view(wire).substr(6)));
  std::string got = "xy";
  EXPECT_EQ(link.server->read(&got), 3U);
  EXPECT_EQ(got, "xyabc");
}

void exchange_a_mebibyte(size_t chunk) {
  Link link(client_context(files().self_cert), server_context(files().self_cert, files().self_key));
  link.chunk = chunk;
  ASSERT_TRUE(link.pump()) << link.client->error() << " / " << link.server->error();
  std::string up = pattern(kMiB, 1);
  std::string down = pattern(kMiB, 2);
  ASSERT_TRUE(link.client->write(up));
  ASSERT_TRUE(link.server->write(down));
  ASSERT_TRUE(link.pump()) << link.client->error() << " / " << link.server->error();
  EXPECT_EQ(link.server_got.size(), kMiB);
  EXPECT_EQ(link.client_got.size(), kMiB);
  EXPECT_TRUE(link.server_got == up) << "client to server data differs";
  EXPECT_TRUE(link.client_got == down) << "server to client data differs";
  if (chunk == 1) EXPECT_GT(link.feeds, 2 * kMiB);
  // The memory BIOs held a mebibyte at a time; drained, they must not keep it
  // (the engine keeps up to 128 KiB).
  for (Session* s : {link.client.get(), link.server.get()}) {
    for (BIO* bio : {SSL_get_rbio(s->native()), SSL_get_wbio(s->native())}) {
      BUF_MEM* mem = nullptr;
      BIO_get_mem_ptr(bio, &mem);
      ASSERT_NE(mem, nullptr);
      EXPECT_LE(mem->max, size_t{128} * 1024);
    }
  }
  // And the session still works on its new BIOs.
  ASSERT_TRUE(link.client->write("after"));
  ASSERT_TRUE(link.server->write("after"));
  ASSERT_TRUE(link.pump());
  EXPECT_EQ(link.server_got.substr(kMiB), "after");
  EXPECT_EQ(link.client_got.substr(kMiB), "after");
}

TEST(TlsEngine, MebibyteEachWayInOneFeed) { exchange_a_mebibyte(0); }
TEST(TlsEngine, MebibyteEachWayInBigChunks) { exchange_a_mebibyte(size_t{64} * 1024); }
TEST(TlsEngine, MebibyteEachWayInChunksSplittingRecords) { exchange_a_mebibyte(1000); }
TEST(TlsEngine, MebibyteEachWayByteByByte) { exchange_a_mebibyte(1); }

TEST(TlsEngine, ManyRecordsInOneFeedAreAllRead) {
  Link link(client_context(files().self_cert), server_context(files().self_cert, files().self_key));
  ASSERT_TRUE(link.pump());
  std::string expected;
  for (int i = 0; i < 100; ++i) {
    std::string message = "message " + std::to_string(i) + ";";
    ASSERT_TRUE(link.client->write(message));  // a record each
    expected += message;
  }
  std::string wire;
  link.client->take_output(&wire);
  ASSERT_TRUE(link.server->feed(wire));
  std::string got;
  EXPECT_EQ(link.server->read(&got), expected.size());
  EXPECT_EQ(got, expected);
}

TEST(TlsEngine, WritesBeforeTheHandshakeAreSentAfterIt) {
  Link link(client_context(files().self_cert), server_context(files().self_cert, files().self_key));
  ASSERT_TRUE(link.client->write("early "));
  ASSERT_TRUE(link.client->write("bird"));
  ASSERT_TRUE(link.server->write("server speaks first"));
  EXPECT_FALSE(link.server->has_output()) << "nothing may leave before the handshake";
  ASSERT_TRUE(link.pump()) << link.client->error() << " / " << link.server->error();
  ASSERT_TRUE(link.client->write(", then more"));
  ASSERT_TRUE(link.pump());
  EXPECT_EQ(link.server_got, "early bird, then more");
  EXPECT_EQ(link.client_got, "server speaks first");
}

TEST(TlsEngine, CloseNotifyReachesThePeerEachWay) {
  Link link(client_context(files().self_cert), server_context(files().self_cert, files().self_key));
  ASSERT_TRUE(link.pump());
  ASSERT_TRUE(link.client->write("last words"));
  link.client->close();
  EXPECT_FALSE(link.client->write("too late"));
  EXPECT_FALSE(link.server->peer_closed());
  ASSERT_TRUE(link.pump()) << link.server->error();
  EXPECT_EQ(link.server_got, "last words");
  EXPECT_TRUE(link.server->peer_closed());
  EXPECT_FALSE(link.client->peer_closed());

  // Half-closed: the server may still answer, then close in turn.
  ASSERT_TRUE(link.server->write("reply"));
  link.server->close();
  ASSERT_TRUE(link.pump()) << link.client->error();
  EXPECT_EQ(link.client_got, "reply");
  EXPECT_TRUE(link.client->peer_closed());
  EXPECT_EQ(link.client->error(), "");
  EXPECT_EQ(link.server->error(), "");

  // After close_notify, whatever comes is ignored, not kept.
  EXPECT_TRUE(link.client->feed("trailing bytes"));
  std::string got;
  EXPECT_EQ(link.client->read(&got), 0U);
  EXPECT_EQ(BIO_ctrl_pending(SSL_get_rbio(link.client->native())), 0U);
}

TEST(TlsEngine, CloseDuringTheHandshakeComesAfterEarlyWrites) {
  Link link(client_context(files().self_cert), server_context(files().self_cert, files().self_key));
  ASSERT_TRUE(link.client->write("one request"));
  link.client->close();
  ASSERT_TRUE(link.pump()) << link.client->error() << " / " << link.server->error();
  EXPECT_EQ(link.server_got, "one request");
  EXPECT_TRUE(link.server->peer_closed());
}

TEST(TlsEngine, GarbageFedToAServerFailsCleanly) {
  for (const std::string& garbage :
       {std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), pattern(5000, 7), std::string(64, '\0'),
        std::string("\x16\x03\x01\xff\xff", 5) + pattern(300, 3)}) {
    auto server = Session::accept(server_context(files().self_cert, files().self_key));
    EXPECT_FALSE(server->feed(garbage));
    EXPECT_TRUE(server->failed());
    EXPECT_NE(server->error().find("TLS handshake failed: "), std::string::npos) << server->error();
    EXPECT_FALSE(server->verify_failed());
    EXPECT_FALSE(server->feed("more"));
    EXPECT_FALSE(server->write("data"));
    std::string out;
    EXPECT_EQ(server->read(&out), 0U);
    server->close();
    server->take_output(&out);  // an alert, perhaps: sending it is harmless
  }
}

TEST(TlsEngine, ATamperedRecordFailsTheSession) {
  Link link(client_context(files().self_cert), server_context(files().self_cert, files().self_key));
  ASSERT_TRUE(link.pump());
  ASSERT_TRUE(link.client->write("integrity matters"));
  std::string wire;
  link.client->take_output(&wire);
  wire[wire.size() - 3] ^= 0x01;
  EXPECT_FALSE(link.server->feed(wire));
  EXPECT_NE(link.server->error().find("TLS error: "), std::string::npos) << link.server->error();
  std::string got;
  EXPECT_EQ(link.server->read(&got), 0U);
  EXPECT_TRUE(link.server->has_output()) << "an alert for the peer";
}

TEST(TlsEngine, ServerSeesTheServernameByTheSni) {
  Link by_name(client_context(files().self_cert), server_context(files().self_cert, files().self_key));
  ASSERT_TRUE(by_name.pump());
  EXPECT_EQ(by_name.server->servername(), "localhost");
  EXPECT_EQ(by_name.client->servername(), "localhost");

  Link by_ip(client_context(files().self_cert), server_context(files().self_cert, files().self_key),
             "127.0.0.1");
  ASSERT_TRUE(by_ip.pump());
  EXPECT_EQ(by_ip.server->servername(), "") << "no SNI for an IP address";
}

TEST(TlsEngine, ContextsAreSharedBySessions) {
  auto client_ctx = client_context(files().self_cert);
  auto server_ctx = server_context(files().self_cert, files().self_key);
  Link first(client_ctx, server_ctx);
  Link second(client_ctx, server_ctx);
  ASSERT_TRUE(first.pump());
  ASSERT_TRUE(second.pump());
  ASSERT_TRUE(first.client->write("1"));
  ASSERT_TRUE(second.client->write("2"));
  ASSERT_TRUE(first.pump());
  ASSERT_TRUE(second.pump());
  EXPECT_EQ(first.server_got, "1");
  EXPECT_EQ(second.server_got, "2");
}

TEST(TlsEngine, StaleOpenSslErrorsDoNotFailASession) {
  // Errors left on this thread's queue by some unrelated OpenSSL call, before each step.
  auto stale = [] { ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH); };
  Link link(client_context(files().self_cert), server_context(files().self_cert, files().self_key));
  stale();
  ASSERT_TRUE(link.pump()) << link.client->error() << " / " << link.server->error();
  stale();
  ASSERT_TRUE(link.client->write("fine"));
  std::string wire;
  link.client->take_output(&wire);
  stale();
  ASSERT_TRUE(link.server->feed(wire)) << link.server->error();
  std::string got;
  link.server->read(&got);
  EXPECT_EQ(got, "fine");
  stale();
  link.server->close();
  EXPECT_EQ(link.server->error(), "");
  ERR_clear_error();
}

// ----------------------------------------------------------------------- ALPN

TEST(TlsAlpn, NegotiatesHttp11) {
  Link link(client_context(files().self_cert, true, {"h2", "http/1.1"}),
            server_context(files().self_cert, files().self_key));
  ASSERT_TRUE(link.pump());
  EXPECT_EQ(link.client->alpn_selected(), "http/1.1");
  EXPECT_EQ(link.server->alpn_selected(), "http/1.1");
}

TEST(TlsAlpn, TheServersPreferenceWins) {
  Link link(client_context(files().self_cert, true, {"http/1.1", "h2"}),
            server_context(files().self_cert, files().self_key, {"h2", "http/1.1"}));
  ASSERT_TRUE(link.pump());
  EXPECT_EQ(link.client->alpn_selected(), "h2");
  EXPECT_EQ(link.server->alpn_selected(), "h2");
}

TEST(TlsAlpn, NoCommonProtocolMeansNoAlpnNotFailure) {
  Link link(client_context(files().self_cert, true, {"spdy/3", "h3"}),
            server_context(files().self_cert, files().self_key));
  ASSERT_TRUE(link.pump()) << link.client->error() << " / " << link.server->error();
  EXPECT_EQ(link.client->alpn_selected(), "");
  EXPECT_EQ(link.server->alpn_selected(), "");
}

TEST(TlsAlpn, NoneAdvertisedMeansNone) {
  Link link(client_context(files().self_cert), server_context(files().self_cert, files().self_key));
  ASSERT_TRUE(link.pump());
  EXPECT_EQ(link.client->alpn_selected(), "");
  EXPECT_EQ(link.server->alpn_selected(), "");
}

// --------------------------------------------------------------- verification

TEST(TlsVerify, SelfSignedCertificateIsRefusedWithoutCaFile) {
  // No ca_file: the system store, which does not know this certificate.
  Link link(client_context(""), server_context(files().self_cert, files().self_key));
  EXPECT_FALSE(link.pump());
  EXPECT_TRUE(link.client->failed());
  EXPECT_TRUE(link.client->verify_failed());
  EXPECT_FALSE(link.client->handshake_done());
  EXPECT_EQ(link.client->error(), "certificate verify failed: self-signed certificate");
  // The client's alert told the server.
  EXPECT_TRUE(link.server->failed());
  EXPECT_FALSE(link.server->verify_failed());
  EXPECT_NE(link.server->error().find("alert"), std::string::npos) << link.server->error();
}

TEST(TlsVerify, SelfSignedCertificateGivenAsCaFileIsTrusted) {
  Link link(client_context(files().self_cert), server_context(files().self_cert, files().self_key));
  ASSERT_TRUE(link.pump()) << link.client->error();
  EXPECT_FALSE(link.client->verify_failed());
}

TEST(TlsVerify, LeafIsTrustedThroughItsCa) {
  Link link(client_context(files().ca_cert), server_context(files().leaf_cert, files().leaf_key));
  ASSERT_TRUE(link.pump()) << link.client->error();
  EXPECT_TRUE(link.client->handshake_done());
}

TEST(TlsVerify, LeafIsRefusedWithoutItsCa) {
  Link system_store(client_context(""), server_context(files().leaf_cert, files().leaf_key));
  EXPECT_FALSE(system_store.pump());
  EXPECT_TRUE(system_store.client->verify_failed());
  EXPECT_EQ(system_store.client->error(),
            "certificate verify failed: unable to get local issuer certificate");

  Link wrong_ca(client_context(files().self_cert), server_context(files().leaf_cert, files().leaf_key));
  EXPECT_FALSE(wrong_ca.pump());
  EXPECT_TRUE(wrong_ca.client->verify_failed());
}

TEST(TlsVerify, HostnameMismatchIsRefused) {
  Link link(client_context(files().self_cert), server_context(files().self_cert, files().self_key),
            "example.com");
  EXPECT_FALSE(link.pump());
  EXPECT_TRUE(link.client->verify_failed());
  EXPECT_EQ(link.client->error(),
            "certificate verify failed: hostname mismatch (the certificate is not for example.com)");
}

TEST(TlsVerify, ANameMustMatchAsAWhole) {
  Link link(client_context(files().self_cert), server_context(files().self_cert, files().self_key),
            "localhost.evil.example");
  EXPECT_FALSE(link.pump());
  EXPECT_TRUE(link.client->verify_failed());
}

TEST(TlsVerify, WildcardsCoverOneWholeLabel) {
  auto through = [](const char* servername) {
    Link link(client_context(files().wildcard_cert), server_context(files().wildcard_cert, files().self_key),
              servername);
    return link.pump();
  };
  EXPECT_TRUE(through("api.example.com"));
  EXPECT_FALSE(through("a.b.example.com"));
  EXPECT_FALSE(through("example.com"));
  EXPECT_FALSE(through("www.example.org")) << "partial wildcards (w*) are refused";
}

TEST(TlsVerify, IpAddressIsVerifiedAgainstTheIpSan) {
  Link match(client_context(files().self_cert), server_context(files().self_cert, files().self_key),
             "127.0.0.1");
  ASSERT_TRUE(match.pump()) << match.client->error();

  Link other(client_context(files().self_cert), server_context(files().self_cert, files().self_key),
             "127.0.0.2");
  EXPECT_FALSE(other.pump());
  EXPECT_TRUE(other.client->verify_failed());
  EXPECT_NE(other.client->error().find("IP address mismatch"), std::string::npos) << other.client->error();
}

TEST(TlsVerify, VerifyFalseAcceptsAnyCertificateForAnyName) {
  Link link(client_context("", false), server_context(files().self_cert, files().self_key), "example.com");
  ASSERT_TRUE(link.pump()) << link.client->error();
  ASSERT_TRUE(link.client->write("insecure but working"));
  ASSERT_TRUE(link.pump());
  EXPECT_EQ(link.server_got, "insecure but working");
}

TEST(TlsVerify, VerifyingNeedsAServername) {
  auto client = Session::connect(client_context(files().self_cert), "");
  EXPECT_TRUE(client->failed());
  EXPECT_NE(client->error().find("servername"), std::string::npos) << client->error();
  EXPECT_FALSE(client->feed("anything"));
  EXPECT_FALSE(client->write("anything"));
  EXPECT_FALSE(client->has_output());
}

// ------------------------------------------------------------------- contexts

TEST(TlsContext, MismatchedKeyAndCertificateAreRefused) {
  for (const std::string& key : {files().other_key, files().ed25519_key}) {
    std::string error;
    EXPECT_EQ(Context::server({files().self_cert, key}, &error), nullptr);
    EXPECT_EQ(
        error.rfind("private key " + key + " does not match certificate " + files().self_cert + ": ", 0), 0U)
        << error;
  }
}

TEST(TlsContext, MissingFilesAreNamed) {
  std::string error;
  std::string missing = files().missing("nope.pem");
  EXPECT_EQ(Context::server({missing, files().self_key}, &error), nullptr);
  EXPECT_EQ(error, "cannot load certificate " + missing + ": No such file or directory");

  EXPECT_EQ(Context::server({files().self_cert, missing}, &error), nullptr);
  EXPECT_EQ(error, "cannot load private key " + missing + ": No such file or directory");

  EXPECT_EQ(Context::client({missing}, &error), nullptr);
  EXPECT_EQ(error, "cannot load CA file " + missing + ": No such file or directory");
}

TEST(TlsContext, AFileThatIsNotACertificateIsRefused) {
  std::string error;
  EXPECT_EQ(Context::server({files().self_key, files().self_key}, &error), nullptr);
  EXPECT_EQ(error.rfind("cannot load certificate " + files().self_key + ": ", 0), 0U) << error;
}

TEST(TlsContext, AnEncryptedKeyIsRefusedWithoutPrompting) {
  std::string error;
  EXPECT_EQ(Context::server({files().self_cert, files().encrypted_key}, &error), nullptr);
  EXPECT_EQ(error, "cannot load private key " + files().encrypted_key + ": encrypted keys are not supported");
}

TEST(TlsContext, InvalidAlpnNamesAreRefused) {
  std::string error;
  EXPECT_EQ(Context::server({files().self_cert, files().self_key, {"http/1.1", ""}}, &error), nullptr);
  EXPECT_NE(error.find("invalid ALPN protocol name"), std::string::npos) << error;
  error.clear();
  EXPECT_EQ(Context::client({"", true, {std::string(256, 'x')}}, &error), nullptr);
  EXPECT_NE(error.find("invalid ALPN protocol name"), std::string::npos) << error;
}

TEST(TlsContext, SessionsNeedTheRightKindOfContext) {
  auto on_client_ctx = Session::accept(client_context(files().self_cert));
  EXPECT_EQ(on_client_ctx->error(), "accept needs a server context");
  auto on_server_ctx = Session::connect(server_context(files().self_cert, files().self_key), "localhost");
  EXPECT_EQ(on_server_ctx->error(), "connect needs a client context");
  auto on_nothing = Session::accept(nullptr);
  EXPECT_EQ(on_nothing->error(), "no TLS context");
  EXPECT_FALSE(on_nothing->feed("x"));
  on_nothing->close();
  EXPECT_EQ(on_nothing->alpn_selected(), "");
}

}  // namespace
}  // namespace evo::tls
