#include "proto/support/pki.h"

#include <sys/stat.h>

#include <memory>

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "agent/testing/temp_dir.h"
#include "proto/support/tls.h"

namespace phoenix::pki {
namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
std::unique_ptr<X509, X509Free> Parse(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  return std::unique_ptr<X509, X509Free>(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

class PkiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ca = CreateCa("test CA", 30);
    ASSERT_TRUE(ca.has_value()) << ca.error().ToString();
    ca_ = *ca;
  }
  KeyAndCert ca_;
};

TEST_F(PkiTest, CaIsACaWithP256Key) {
  auto cert = Parse(ca_.cert_pem);
  ASSERT_TRUE(cert);
  EXPECT_EQ(X509_check_ca(cert.get()), 1);
  EXPECT_TRUE(X509_get_key_usage(cert.get()) & KU_KEY_CERT_SIGN);
  EXPECT_EQ(EVP_PKEY_get_base_id(X509_get0_pubkey(cert.get())), EVP_PKEY_EC);
  EXPECT_TRUE(VerifyCertificate(ca_.cert_pem, ca_.cert_pem, Purpose::kAny).has_value());
  EXPECT_TRUE(CheckKeyMatchesCertificate(ca_.key_pem, ca_.cert_pem).has_value());
}

TEST_F(PkiTest, ServerCertChainVerifiesAndCarriesTheSans) {
  auto server = IssueServerCert(ca_, "sup", {"localhost", "127.0.0.1", "::1", "sup.lan"}, 30);
  ASSERT_TRUE(server.has_value()) << server.error().ToString();
  auto verified = VerifyCertificate(ca_.cert_pem, server->cert_pem, Purpose::kServer);
  EXPECT_TRUE(verified.has_value()) << verified.error().ToString();
  // serverAuth only: no use as a client certificate.
  EXPECT_FALSE(VerifyCertificate(ca_.cert_pem, server->cert_pem, Purpose::kClient).has_value());
  auto cert = Parse(server->cert_pem);
  ASSERT_TRUE(cert);
  EXPECT_EQ(X509_check_host(cert.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(cert.get(), "sup.lan", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(cert.get(), "evil.example", 0, 0, nullptr), 0);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "::1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "10.0.0.1", 0), 0);
  EXPECT_EQ(X509_check_ca(cert.get()), 0);
  EXPECT_TRUE(CheckKeyMatchesCertificate(server->key_pem, server->cert_pem).has_value());
}

TEST_F(PkiTest, ClientCertFromCsrVerifiesWithClientAuthAndRandomSerial) {
  auto csr = CreateKeyAndCsr("node-a");
  ASSERT_TRUE(csr.has_value()) << csr.error().ToString();
  auto cert_pem = SignClientCsr(ca_, csr->csr_pem, "node-a", 30);
  ASSERT_TRUE(cert_pem.has_value()) << cert_pem.error().ToString();
  auto verified = VerifyCertificate(ca_.cert_pem, *cert_pem, Purpose::kClient);
  EXPECT_TRUE(verified.has_value()) << verified.error().ToString();
  EXPECT_FALSE(VerifyCertificate(ca_.cert_pem, *cert_pem, Purpose::kServer).has_value());
  auto cn = CertificateCommonName(*cert_pem);
  ASSERT_TRUE(cn.has_value());
  EXPECT_EQ(*cn, "node-a");
  EXPECT_TRUE(CheckKeyMatchesCertificate(csr->key_pem, *cert_pem).has_value());

  auto second = SignClientCsr(ca_, csr->csr_pem, "node-a", 30);
  ASSERT_TRUE(second.has_value());
  auto c1 = Parse(*cert_pem), c2 = Parse(*second);
  const ASN1_INTEGER* s1 = X509_get0_serialNumber(c1.get());
  const ASN1_INTEGER* s2 = X509_get0_serialNumber(c2.get());
  EXPECT_EQ(ASN1_STRING_length(s1), 16);
  EXPECT_NE(ASN1_INTEGER_cmp(s1, s2), 0);

  auto not_after = CertificateNotAfter(*cert_pem);
  ASSERT_TRUE(not_after.has_value());
  auto days =
      std::chrono::duration_cast<std::chrono::hours>(*not_after - std::chrono::system_clock::now())
          .count() /
      24.0;
  EXPECT_NEAR(days, 30.0, 0.1);
}

TEST_F(PkiTest, CertFromAnotherCaDoesNotVerify) {
  auto other = CreateCa("other CA", 30);
  ASSERT_TRUE(other.has_value());
  auto csr = CreateKeyAndCsr("node-a");
  ASSERT_TRUE(csr.has_value());
  auto cert = SignClientCsr(*other, csr->csr_pem, "node-a", 30);
  ASSERT_TRUE(cert.has_value());
  auto verified = VerifyCertificate(ca_.cert_pem, *cert, Purpose::kClient);
  ASSERT_FALSE(verified.has_value());
  EXPECT_NE(verified.error().message.find("unable to get local issuer certificate"),
            std::string::npos)
      << verified.error().message;
}

TEST_F(PkiTest, CsrWithAnotherCommonNameIsRefused) {
  auto csr = CreateKeyAndCsr("node-b");
  ASSERT_TRUE(csr.has_value());
  auto cert = SignClientCsr(ca_, csr->csr_pem, "node-a", 30);
  ASSERT_FALSE(cert.has_value());
  EXPECT_EQ(cert.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(cert.error().field, "csr_pem");
  EXPECT_NE(cert.error().message.find("'node-b' is not the node name 'node-a'"), std::string::npos)
      << cert.error().message;
}

TEST_F(PkiTest, GarbagePemIsRefusedWithOpensslsReason) {
  auto cert = SignClientCsr(ca_, "-----BEGIN CERTIFICATE REQUEST-----\ngarbage\n", "n", 30);
  ASSERT_FALSE(cert.has_value());
  EXPECT_EQ(cert.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(cert.error().field, "csr_pem");
  // Our words first, then OpenSSL's error string (library:reason), e.g. "PEM routines".
  EXPECT_TRUE(cert.error().message.starts_with("not a PEM certificate request: error:"))
      << cert.error().message;

  auto not_pem = SignClientCsr(ca_, "hello", "n", 30);
  ASSERT_FALSE(not_pem.has_value());
  EXPECT_NE(not_pem.error().message.find("no start line"), std::string::npos)
      << not_pem.error().message;

  auto bad_ca = IssueServerCert(KeyAndCert{"junk", ca_.cert_pem}, "s", {"localhost"}, 1);
  ASSERT_FALSE(bad_ca.has_value());
  EXPECT_EQ(bad_ca.error().field, "ca.key_pem");
  EXPECT_FALSE(VerifyCertificate(ca_.cert_pem, "junk", Purpose::kAny).has_value());
}

TEST_F(PkiTest, CaKeyMustMatchCaCert) {
  auto other = CreateCa("other CA", 30);
  ASSERT_TRUE(other.has_value());
  auto csr = CreateKeyAndCsr("node-a");
  ASSERT_TRUE(csr.has_value());
  auto cert = SignClientCsr(KeyAndCert{other->key_pem, ca_.cert_pem}, csr->csr_pem, "node-a", 1);
  ASSERT_FALSE(cert.has_value());
  EXPECT_EQ(cert.error().field, "ca.key_pem");
}

TEST_F(PkiTest, AServerCertCannotSignCertificates) {
  auto server = IssueServerCert(ca_, "sup", {"localhost"}, 30);
  ASSERT_TRUE(server.has_value());
  auto csr = CreateKeyAndCsr("node-a");
  ASSERT_TRUE(csr.has_value());
  EXPECT_FALSE(SignClientCsr(*server, csr->csr_pem, "node-a", 1).has_value());
}

TEST_F(PkiTest, BadArgumentsAreInvalid) {
  EXPECT_FALSE(CreateCa("", 1).has_value());
  EXPECT_FALSE(CreateCa("ca", 0).has_value());
  EXPECT_FALSE(IssueServerCert(ca_, "s", {}, 1).has_value());
  auto bad_san = IssueServerCert(ca_, "s", {"a,b"}, 1);
  ASSERT_FALSE(bad_san.has_value());
  EXPECT_EQ(bad_san.error().field, "sans");
  EXPECT_FALSE(CreateKeyAndCsr(std::string(65, 'a')).has_value());
}

TEST(WriteFileTest, WritePrivateFileIs0600AndReplacesAtomically) {
  agent::testing::TempDir dir("phoenix-pki-test");
  auto file = dir.path() / "secret";
  ASSERT_TRUE(WritePrivateFile(file, "one").has_value());
  ASSERT_TRUE(WritePrivateFile(file, "two").has_value());
  auto text = tls::ReadFile(file);
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(*text, "two");
  struct stat st {};
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                          std::filesystem::directory_iterator()),
            1)
      << "no temp file left behind";
  auto missing_dir = WritePrivateFile(dir.path() / "no" / "such", "x");
  ASSERT_FALSE(missing_dir.has_value());
  EXPECT_NE(missing_dir.error().message.find("No such file or directory"), std::string::npos);
}

}  // namespace
}  // namespace phoenix::pki
