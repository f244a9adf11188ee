#include "proto/support/pki.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <ctime>
#include <memory>
#include <string_view>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace phoenix::pki {
namespace {

// RAII for the OpenSSL objects this file creates: each pointer frees its object with the matching
// *_free on every path.
template <auto kFree>
struct Freer {
  template <typename T>
  void operator()(T* p) const {
    kFree(p);
  }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Freer<EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Freer<X509_free>>;
using ReqPtr = std::unique_ptr<X509_REQ, Freer<X509_REQ_free>>;
using BioPtr = std::unique_ptr<BIO, Freer<BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Freer<BN_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Freer<X509_EXTENSION_free>>;
using NamesPtr = std::unique_ptr<GENERAL_NAMES, Freer<GENERAL_NAMES_free>>;
using NamePtr = std::unique_ptr<GENERAL_NAME, Freer<GENERAL_NAME_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Freer<X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Freer<X509_STORE_CTX_free>>;

constexpr long kBackdateSeconds = kCertificateBackdate.count();

// Empties OpenSSL's thread-local error queue into one message.
std::string DrainOpensslErrors() {
  std::string out;
  unsigned long code = 0;
  while ((code = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "no OpenSSL error reported" : out;
}

std::unexpected<Error> OpensslFailure(std::string_view what) {
  return Internal(std::string(what) + ": " + DrainOpensslErrors());
}

std::unexpected<Error> BadInput(std::string field, std::string_view what) {
  return InvalidArgument(std::move(field), std::string(what) + ": " + DrainOpensslErrors());
}

// PEM readers must never prompt on a terminal for an encrypted key's password.
int NoPassword(char*, int, int, void*) { return 0; }

Result<BioPtr> ReadBio(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return OpensslFailure("BIO_new_mem_buf");
  return bio;
}

Result<X509Ptr> ParseCert(const std::string& pem, const std::string& field) {
  ERR_clear_error();
  auto bio = ReadBio(pem);
  if (!bio) return std::unexpected(bio.error());
  X509Ptr cert(PEM_read_bio_X509(bio->get(), nullptr, NoPassword, nullptr));
  if (!cert) return BadInput(field, "not a PEM certificate");
  return cert;
}

Result<PkeyPtr> ParseKey(const std::string& pem, const std::string& field) {
  ERR_clear_error();
  auto bio = ReadBio(pem);
  if (!bio) return std::unexpected(bio.error());
  PkeyPtr key(PEM_read_bio_PrivateKey(bio->get(), nullptr, NoPassword, nullptr));
  if (!key) return BadInput(field, "not an unencrypted PEM private key");
  return key;
}

Result<ReqPtr> ParseCsr(const std::string& pem, const std::string& field) {
  ERR_clear_error();
  auto bio = ReadBio(pem);
  if (!bio) return std::unexpected(bio.error());
  ReqPtr req(PEM_read_bio_X509_REQ(bio->get(), nullptr, NoPassword, nullptr));
  if (!req) return BadInput(field, "not a PEM certificate request");
  return req;
}

Result<std::string> BioContents(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  if (len < 0 || (len > 0 && data == nullptr)) return OpensslFailure("BIO_get_mem_data");
  return std::string(data, static_cast<size_t>(len));
}

Result<std::string> KeyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio) return OpensslFailure("BIO_new");
  if (PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpensslFailure("PEM_write_bio_PrivateKey");
  }
  return BioContents(bio.get());
}

Result<std::string> CertToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio) return OpensslFailure("BIO_new");
  if (PEM_write_bio_X509(bio.get(), cert) != 1) return OpensslFailure("PEM_write_bio_X509");
  return BioContents(bio.get());
}

Result<PkeyPtr> NewP256Key() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return OpensslFailure("generating a P-256 key");
  return key;
}

bool IsP256(EVP_PKEY* key) {
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) return false;
  char name[80];
  size_t len = 0;
  if (EVP_PKEY_get_group_name(key, name, sizeof(name), &len) != 1) return false;
  std::string_view group(name, len);
  return group == "prime256v1" || group == "P-256";
}

Result<void> CheckCommonName(const std::string& common_name) {
  // RFC 5280 upper bound for a CN; OpenSSL would refuse it later with a less useful message.
  if (common_name.empty() || common_name.size() > 64) {
    return InvalidArgument("common_name", "must be 1 to 64 characters");
  }
  return {};
}

Result<void> SetSubjectCn(X509_NAME* name, const std::string& common_name) {
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.data()),
                                 static_cast<int>(common_name.size()), -1, 0) != 1) {
    return OpensslFailure("setting the subject common name");
  }
  return {};
}

// The single CN of a name; a name with none or several is refused (ambiguous identity).
Result<std::string> SingleCommonName(const X509_NAME* name, const std::string& field) {
  int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (index < 0) return InvalidArgument(field, "subject has no common name");
  if (X509_NAME_get_index_by_NID(name, NID_commonName, index) >= 0) {
    return InvalidArgument(field, "subject has more than one common name");
  }
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0) return BadInput(field, "common name is not valid text");
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

Result<void> SetRandomSerial(X509* cert) {
  unsigned char bytes[16];  // 128 bits: unguessable, so no two issuances collide in practice
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return OpensslFailure("RAND_bytes");
  bytes[0] = static_cast<unsigned char>((bytes[0] & 0x7f) | 0x40);  // positive, full length
  BnPtr bn(BN_bin2bn(bytes, sizeof(bytes), nullptr));
  if (!bn) return OpensslFailure("BN_bin2bn");
  if (BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return OpensslFailure("setting the serial number");
  }
  return {};
}

Result<void> AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!ext) return OpensslFailure(std::string("building extension ") + OBJ_nid2sn(nid));
  if (X509_add_ext(cert, ext.get(), -1) != 1) {
    return OpensslFailure(std::string("adding extension ") + OBJ_nid2sn(nid));
  }
  return {};
}

bool IsDnsName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '*' || c == '_';
    if (!ok) return false;
  }
  return true;
}

Result<void> AddSubjectAltNames(X509* cert, const std::vector<std::string>& sans) {
  NamesPtr names(GENERAL_NAMES_new());
  if (!names) return OpensslFailure("GENERAL_NAMES_new");
  for (const std::string& san : sans) {
    NamePtr name(GENERAL_NAME_new());
    if (!name) return OpensslFailure("GENERAL_NAME_new");
    if (ASN1_OCTET_STRING* ip = a2i_IPADDRESS(san.c_str()); ip != nullptr) {
      GENERAL_NAME_set0_value(name.get(), GEN_IPADD, ip);
    } else {
      ERR_clear_error();  // not an IP literal: try it as a DNS name
      if (!IsDnsName(san)) {
        return InvalidArgument("sans", "'" + san + "' is neither an IP address nor a DNS name");
      }
      ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
      if (dns == nullptr) return OpensslFailure("ASN1_IA5STRING_new");
      if (ASN1_STRING_set(dns, san.data(), static_cast<int>(san.size())) != 1) {
        ASN1_IA5STRING_free(dns);
        return OpensslFailure("ASN1_STRING_set");
      }
      GENERAL_NAME_set0_value(name.get(), GEN_DNS, dns);
    }
    if (sk_GENERAL_NAME_push(names.get(), name.get()) <= 0) {
      return OpensslFailure("sk_GENERAL_NAME_push");
    }
    name.release();  // owned by names now
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return OpensslFailure("adding subjectAltName");
  }
  return {};
}

struct LoadedCa {
  X509Ptr cert;
  PkeyPtr key;
};

Result<LoadedCa> LoadCa(const KeyAndCert& ca) {
  auto cert = ParseCert(ca.cert_pem, "ca.cert_pem");
  if (!cert) return std::unexpected(cert.error());
  auto key = ParseKey(ca.key_pem, "ca.key_pem");
  if (!key) return std::unexpected(key.error());
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    return BadInput("ca.key_pem", "is not the key of the CA certificate");
  }
  if (X509_check_ca(cert->get()) == 0) {
    return InvalidArgument("ca.cert_pem", "is not a CA certificate");
  }
  return LoadedCa{std::move(*cert), std::move(*key)};
}

// The fields every certificate we issue shares. issuer == nullptr means self-signed.
Result<X509Ptr> NewCertificate(EVP_PKEY* public_key, const std::string& common_name, X509* issuer,
                               int days) {
  if (days <= 0) return InvalidArgument("days", "must be positive");
  X509Ptr cert(X509_new());
  if (!cert) return OpensslFailure("X509_new");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1) return OpensslFailure("X509_set_version");
  PHX_TRY(SetRandomSerial(cert.get()));
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -kBackdateSeconds) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert.get()), days, 0, nullptr) == nullptr) {
    return OpensslFailure("setting the validity period");
  }
  PHX_TRY(SetSubjectCn(X509_get_subject_name(cert.get()), common_name));
  X509_NAME* issuer_name = X509_get_subject_name(issuer != nullptr ? issuer : cert.get());
  if (X509_set_issuer_name(cert.get(), issuer_name) != 1) {
    return OpensslFailure("X509_set_issuer_name");
  }
  if (X509_set_pubkey(cert.get(), public_key) != 1) return OpensslFailure("X509_set_pubkey");
  PHX_TRY(AddExtension(cert.get(), issuer != nullptr ? issuer : cert.get(),
                       NID_subject_key_identifier, "hash"));
  return cert;
}

// A leaf certificate (server or client) signed by the CA.
Result<X509Ptr> NewLeaf(const LoadedCa& ca, EVP_PKEY* public_key, const std::string& common_name,
                        int days, const char* extended_key_usage) {
  auto cert = NewCertificate(public_key, common_name, ca.cert.get(), days);
  if (!cert) return std::unexpected(cert.error());
  X509* c = cert->get();
  PHX_TRY(AddExtension(c, ca.cert.get(), NID_authority_key_identifier, "keyid:always"));
  PHX_TRY(AddExtension(c, ca.cert.get(), NID_basic_constraints, "critical,CA:FALSE"));
  PHX_TRY(AddExtension(c, ca.cert.get(), NID_key_usage, "critical,digitalSignature"));
  PHX_TRY(AddExtension(c, ca.cert.get(), NID_ext_key_usage, extended_key_usage));
  return cert;
}

Result<void> Sign(X509* cert, EVP_PKEY* key) {
  if (X509_sign(cert, key, EVP_sha256()) <= 0) return OpensslFailure("signing the certificate");
  return {};
}

}  // namespace

Result<KeyAndCert> CreateCa(const std::string& common_name, int days) {
  ERR_clear_error();
  PHX_TRY(CheckCommonName(common_name));
  auto key = NewP256Key();
  if (!key) return std::unexpected(key.error());
  auto cert = NewCertificate(key->get(), common_name, nullptr, days);
  if (!cert) return std::unexpected(cert.error());
  PHX_TRY(AddExtension(cert->get(), cert->get(), NID_basic_constraints, "critical,CA:TRUE"));
  PHX_TRY(AddExtension(cert->get(), cert->get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
  PHX_TRY(Sign(cert->get(), key->get()));
  auto key_pem = KeyToPem(key->get());
  if (!key_pem) return std::unexpected(key_pem.error());
  auto cert_pem = CertToPem(cert->get());
  if (!cert_pem) return std::unexpected(cert_pem.error());
  return KeyAndCert{std::move(*key_pem), std::move(*cert_pem)};
}

Result<KeyAndCert> IssueServerCert(const KeyAndCert& ca, const std::string& common_name,
                                   const std::vector<std::string>& sans, int days) {
  ERR_clear_error();
  PHX_TRY(CheckCommonName(common_name));
  if (sans.empty()) return InvalidArgument("sans", "a server certificate needs at least one");
  auto loaded = LoadCa(ca);
  if (!loaded) return std::unexpected(loaded.error());
  auto key = NewP256Key();
  if (!key) return std::unexpected(key.error());
  auto cert = NewLeaf(*loaded, key->get(), common_name, days, "serverAuth");
  if (!cert) return std::unexpected(cert.error());
  PHX_TRY(AddSubjectAltNames(cert->get(), sans));
  PHX_TRY(Sign(cert->get(), loaded->key.get()));
  auto key_pem = KeyToPem(key->get());
  if (!key_pem) return std::unexpected(key_pem.error());
  auto cert_pem = CertToPem(cert->get());
  if (!cert_pem) return std::unexpected(cert_pem.error());
  return KeyAndCert{std::move(*key_pem), std::move(*cert_pem)};
}

namespace {

Result<std::string> CsrFor(EVP_PKEY* key, const std::string& common_name) {
  ReqPtr req(X509_REQ_new());
  if (!req) return OpensslFailure("X509_REQ_new");
  if (X509_REQ_set_version(req.get(), 0) != 1) return OpensslFailure("X509_REQ_set_version");
  PHX_TRY(SetSubjectCn(X509_REQ_get_subject_name(req.get()), common_name));
  if (X509_REQ_set_pubkey(req.get(), key) != 1) return OpensslFailure("X509_REQ_set_pubkey");
  if (X509_REQ_sign(req.get(), key, EVP_sha256()) <= 0) {
    return OpensslFailure("signing the certificate request");
  }
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio) return OpensslFailure("BIO_new");
  if (PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1) {
    return OpensslFailure("PEM_write_bio_X509_REQ");
  }
  return BioContents(bio.get());
}

}  // namespace

Result<KeyAndCsr> CreateKeyAndCsr(const std::string& common_name) {
  ERR_clear_error();
  PHX_TRY(CheckCommonName(common_name));
  auto key = NewP256Key();
  if (!key) return std::unexpected(key.error());
  auto csr_pem = CsrFor(key->get(), common_name);
  if (!csr_pem) return std::unexpected(csr_pem.error());
  auto key_pem = KeyToPem(key->get());
  if (!key_pem) return std::unexpected(key_pem.error());
  return KeyAndCsr{std::move(*key_pem), std::move(*csr_pem)};
}

Result<std::string> CreateCsr(const std::string& key_pem, const std::string& common_name) {
  ERR_clear_error();
  PHX_TRY(CheckCommonName(common_name));
  auto key = ParseKey(key_pem, "key_pem");
  if (!key) return std::unexpected(key.error());
  return CsrFor(key->get(), common_name);
}

Result<std::string> SignClientCsr(const KeyAndCert& ca, const std::string& csr_pem,
                                  const std::string& expected_common_name, int days) {
  ERR_clear_error();
  PHX_TRY(CheckCommonName(expected_common_name));
  auto loaded = LoadCa(ca);
  if (!loaded) return std::unexpected(loaded.error());
  auto req = ParseCsr(csr_pem, "csr_pem");
  if (!req) return std::unexpected(req.error());
  EVP_PKEY* public_key = X509_REQ_get0_pubkey(req->get());
  if (public_key == nullptr) return BadInput("csr_pem", "request has no usable public key");
  if (X509_REQ_verify(req->get(), public_key) != 1) {
    return BadInput("csr_pem", "request signature does not verify");
  }
  if (!IsP256(public_key)) return InvalidArgument("csr_pem", "key must be ECDSA P-256");
  auto cn = SingleCommonName(X509_REQ_get_subject_name(req->get()), "csr_pem");
  if (!cn) return std::unexpected(cn.error());
  if (*cn != expected_common_name) {
    return InvalidArgument(
        "csr_pem", "common name '" + *cn + "' is not the node name '" + expected_common_name + "'");
  }
  auto cert = NewLeaf(*loaded, public_key, expected_common_name, days, "clientAuth");
  if (!cert) return std::unexpected(cert.error());
  PHX_TRY(Sign(cert->get(), loaded->key.get()));
  return CertToPem(cert->get());
}

Result<void> WriteFileAtomic(const std::filesystem::path& path, const std::string& content,
                             mode_t mode) {
  static std::atomic<unsigned> counter{0};
  std::filesystem::path dir = path.parent_path().empty() ? "." : path.parent_path();
  std::filesystem::path tmp = path;
  tmp += ".tmp-" + std::to_string(getpid()) + "-" + std::to_string(counter.fetch_add(1));
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoError("creating " + tmp.string());
  auto fail = [&](std::string what) {
    auto err = ErrnoError(what + " " + tmp.string());
    close(fd);
    unlink(tmp.c_str());
    return err;
  };
  // The umask may have narrowed the mode (never widened): make it exact.
  if (fchmod(fd, mode) != 0) return fail("fchmod");
  size_t written = 0;
  while (written < content.size()) {
    ssize_t n = write(fd, content.data() + written, content.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("writing");
    }
    written += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) return fail("fsync");
  if (close(fd) != 0) {
    auto err = ErrnoError("closing " + tmp.string());
    unlink(tmp.c_str());
    return err;
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    auto err = ErrnoError("renaming " + tmp.string() + " to " + path.string());
    unlink(tmp.c_str());
    return err;
  }
  int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return ErrnoError("opening " + dir.string() + " to fsync it");
  if (fsync(dir_fd) != 0) {
    auto err = ErrnoError("fsync " + dir.string());
    close(dir_fd);
    return err;
  }
  close(dir_fd);
  return {};
}

Result<void> WritePrivateFile(const std::filesystem::path& path, const std::string& content) {
  return WriteFileAtomic(path, content, 0600);
}

Result<void> VerifyCertificate(const std::string& ca_pem, const std::string& cert_pem,
                               Purpose purpose) {
  ERR_clear_error();
  auto ca = ParseCert(ca_pem, "ca_pem");
  if (!ca) return std::unexpected(ca.error());
  auto cert = ParseCert(cert_pem, "cert_pem");
  if (!cert) return std::unexpected(cert.error());
  StorePtr store(X509_STORE_new());
  if (!store) return OpensslFailure("X509_STORE_new");
  if (X509_STORE_add_cert(store.get(), ca->get()) != 1)
    return OpensslFailure("X509_STORE_add_cert");
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx) return OpensslFailure("X509_STORE_CTX_new");
  if (X509_STORE_CTX_init(ctx.get(), store.get(), cert->get(), nullptr) != 1) {
    return OpensslFailure("X509_STORE_CTX_init");
  }
  if (purpose != Purpose::kAny) {
    int id = purpose == Purpose::kServer ? X509_PURPOSE_SSL_SERVER : X509_PURPOSE_SSL_CLIENT;
    if (X509_STORE_CTX_set_purpose(ctx.get(), id) != 1) {
      return OpensslFailure("X509_STORE_CTX_set_purpose");
    }
  }
  int rc = X509_verify_cert(ctx.get());
  if (rc != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return InvalidArgument("cert_pem", std::string("does not verify against the CA: ") +
                                           X509_verify_cert_error_string(err));
  }
  return {};
}

Result<std::string> CertificateCommonName(const std::string& cert_pem) {
  auto cert = ParseCert(cert_pem, "cert_pem");
  if (!cert) return std::unexpected(cert.error());
  return SingleCommonName(X509_get_subject_name(cert->get()), "cert_pem");
}

namespace {

Result<std::chrono::system_clock::time_point> CertificateTime(const std::string& cert_pem,
                                                              bool not_after) {
  auto cert = ParseCert(cert_pem, "cert_pem");
  if (!cert) return std::unexpected(cert.error());
  std::tm tm{};
  const ASN1_TIME* when =
      not_after ? X509_get0_notAfter(cert->get()) : X509_get0_notBefore(cert->get());
  if (ASN1_TIME_to_tm(when, &tm) != 1) {
    return BadInput("cert_pem", not_after ? "unreadable notAfter" : "unreadable notBefore");
  }
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

}  // namespace

Result<std::chrono::system_clock::time_point> CertificateNotAfter(const std::string& cert_pem) {
  return CertificateTime(cert_pem, /*not_after=*/true);
}

Result<std::chrono::system_clock::time_point> CertificateNotBefore(const std::string& cert_pem) {
  return CertificateTime(cert_pem, /*not_after=*/false);
}

Result<std::string> CertificateSerial(const std::string& cert_pem) {
  auto cert = ParseCert(cert_pem, "cert_pem");
  if (!cert) return std::unexpected(cert.error());
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert->get()), nullptr);
  if (!bn) return BadInput("cert_pem", "unreadable serial number");
  char* hex = BN_bn2hex(bn);
  BN_free(bn);
  if (!hex) return BadInput("cert_pem", "unreadable serial number");
  std::string out(hex);
  OPENSSL_free(hex);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const size_t first = out.find_first_not_of('0');
  return first == std::string::npos ? std::string("0") : out.substr(first);
}

Result<void> CheckKeyMatchesCertificate(const std::string& key_pem, const std::string& cert_pem) {
  auto cert = ParseCert(cert_pem, "cert_pem");
  if (!cert) return std::unexpected(cert.error());
  auto key = ParseKey(key_pem, "key_pem");
  if (!key) return std::unexpected(key.error());
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    return BadInput("key_pem", "is not the private key of the certificate");
  }
  return {};
}

}  // namespace phoenix::pki
