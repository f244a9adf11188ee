#include "proto/support/tls.h"

#include <gtest/gtest.h>

#include "proto/support/pki.h"

namespace phoenix::tls {
namespace {

TEST(IsLoopbackAddressTest, Table) {
  struct Case {
    const char* address;
    bool loopback;
  } cases[] = {
      {"127.0.0.1:7400", true},
      {"127.1.2.3:1", true},
      {"[::1]:7400", true},
      {"::1", true},
      {"localhost:1", true},
      {"localhost", true},
      {"[::ffff:127.0.0.1]:1", true},
      {"unix:/run/phx.sock", true},
      {"0.0.0.0:7400", false},
      {"[::]:7400", false},
      {"10.0.0.1:7400", false},
      {"128.0.0.1:1", false},
      {"example.com:7400", false},
      {"", false},
      {"[::1:7400", false},
      {"localhost.evil.com:1", false},
      {"127.evil.example:7070", false},
      {"127.0.0.1.nip.io:1", false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(IsLoopbackAddress(c.address), c.loopback) << c.address;
  }
}

TEST(ReadFileTest, MissingFileIsNotFoundWithErrno) {
  auto text = ReadFile("/nonexistent/phoenix/file");
  ASSERT_FALSE(text.has_value());
  EXPECT_EQ(text.error().code, ErrorCode::kNotFound);
  EXPECT_NE(text.error().message.find("No such file or directory (errno 2)"), std::string::npos)
      << text.error().message;
}

TEST(MakeServerCredentialsTest, RefusesAKeyThatIsNotTheCertificates) {
  auto ca = pki::CreateCa("ca", 1);
  ASSERT_TRUE(ca.has_value());
  auto a = pki::IssueServerCert(*ca, "a", {"localhost"}, 1);
  auto b = pki::IssueServerCert(*ca, "b", {"localhost"}, 1);
  ASSERT_TRUE(a && b);
  EXPECT_TRUE(MakeServerCredentials({ca->cert_pem, a->cert_pem, a->key_pem}).has_value());
  auto mismatched = MakeServerCredentials({ca->cert_pem, a->cert_pem, b->key_pem});
  ASSERT_FALSE(mismatched.has_value());
  EXPECT_NE(mismatched.error().message.find("server TLS certificate"), std::string::npos);
  EXPECT_FALSE(MakeServerCredentials({"junk", a->cert_pem, a->key_pem}).has_value());
}

}  // namespace
}  // namespace phoenix::tls
