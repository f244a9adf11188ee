#include "agent/runtime/libvirt/save_image.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

namespace phoenix::agent::libvirt {
namespace {

namespace fs = std::filesystem;

// Writes a save image in libvirt's layout: 92-byte header, padded data, then a fake QEMU stream.
std::string MakeImage(const std::string& xml, const std::string& cookie, uint32_t data_len,
                      const std::string& stream, uint32_t version = 2) {
  std::string h = "LibvirtQemudSave";
  auto u32 = [&](uint32_t v) { h.append(reinterpret_cast<const char*>(&v), 4); };
  u32(version);
  u32(data_len);
  u32(1);  // was_running
  u32(0);  // compressed
  u32(static_cast<uint32_t>(xml.size() + 1));
  h.append(14 * 4, '\0');
  std::string data = xml + '\0' + cookie + '\0';
  data.resize(data_len, '\0');
  return h + data + stream;
}

class SaveImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/save_image_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path Write(const std::string& name, const std::string& content) {
    std::ofstream(dir_ / name, std::ios::binary) << content;
    return dir_ / name;
  }
  static std::string Read(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  fs::path dir_;
};

const char kXml[] =
    "<domain type='qemu'>\n  <name>phoenix-golden-k</name>\n  <uuid>11111111-1111-1111-1111-"
    "111111111111</uuid>\n  <devices><disk/></devices>\n</domain>\n";
const char kCookie[] = "<cookie>\n  <slirpHelper/>\n</cookie>\n";

TEST_F(SaveImageTest, CloneRenamesAndKeepsStreamAtSameOffset) {
  std::string stream = "QEVM\0\0\0\3" + std::string(300000, 'x') + "END";
  auto src = Write("golden.save", MakeImage(kXml, kCookie, 4096, stream));
  auto dst = dir_ / "inst.save";
  auto r = CloneSaveImage(src, dst, "phx-a-much-longer-instance-name-1",
                          "22222222-3333-4444-8555-666666666666");
  ASSERT_TRUE(r.has_value()) << r.error().message;

  auto h = ReadSaveImageHeader(dst);
  ASSERT_TRUE(h.has_value()) << h.error().message;
  EXPECT_EQ(h->version, 2u);
  EXPECT_EQ(h->data_len, 4096u);
  EXPECT_EQ(h->was_running, 1u);
  EXPECT_NE(h->xml.find("<name>phx-a-much-longer-instance-name-1</name>"), std::string::npos);
  EXPECT_NE(h->xml.find("<uuid>22222222-3333-4444-8555-666666666666</uuid>"), std::string::npos);
  EXPECT_EQ(h->xml.find("phoenix-golden-k"), std::string::npos);
  EXPECT_NE(h->xml.find("<devices><disk/></devices>"), std::string::npos);
  EXPECT_EQ(h->cookie, kCookie);
  EXPECT_EQ(h->cookie_offset, h->xml.size() + 1);

  std::string a = Read(src), b = Read(dst);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(a.substr(92 + 4096), b.substr(92 + 4096)) << "QEMU stream must be byte-identical";
  EXPECT_EQ((fs::status(dst).permissions() & fs::perms::all),
            fs::perms::owner_read | fs::perms::owner_write);
}

TEST_F(SaveImageTest, CloneGetsItsOwnGenerationId) {
  const std::string with_genid =
      "<domain type='qemu'>\n  <name>g</name>\n  <uuid>11111111-1111-1111-1111-111111111111</uuid>"
      "\n  <genid>aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa</genid>\n</domain>\n";
  auto src = Write("genid.save", MakeImage(with_genid, kCookie, 4096, "QEVM"));
  auto r =
      CloneSaveImage(src, dir_ / "clone.save", "phx-c-1", "22222222-3333-4444-8555-666666666666",
                     "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  auto h = ReadSaveImageHeader(dir_ / "clone.save");
  ASSERT_TRUE(h.has_value());
  EXPECT_NE(h->xml.find("<genid>bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb</genid>"), std::string::npos);
  EXPECT_EQ(h->xml.find("aaaaaaaa"), std::string::npos);

  // A snapshot from before generation ids cannot give a clone its own: refused, so the runtime
  // sets it aside and rebuilds it.
  auto old = Write("old.save", MakeImage(kXml, kCookie, 4096, "QEVM"));
  auto refused = CloneSaveImage(old, dir_ / "old-clone.save", "phx-c-2", "u",
                                "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb");
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message.find("no VM generation id device"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ / "old-clone.save"));
}

TEST_F(SaveImageTest, RejectsBadMagicVersionAndCompression) {
  auto bad = Write("bad.save", std::string(200, 'z'));
  auto r = CloneSaveImage(bad, dir_ / "o1", "n", "u");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_FALSE(fs::exists(dir_ / "o1"));

  auto v3 = Write("v3.save", MakeImage(kXml, kCookie, 4096, "QEVM", 3));
  EXPECT_FALSE(CloneSaveImage(v3, dir_ / "o2", "n", "u").has_value());
  EXPECT_FALSE(fs::exists(dir_ / "o2"));

  // A partial image ("LibvirtQemudPart", save interrupted) is not accepted either.
  std::string part = MakeImage(kXml, kCookie, 4096, "QEVM");
  std::memcpy(part.data(), "LibvirtQemudPart", 16);
  EXPECT_FALSE(CloneSaveImage(Write("part.save", part), dir_ / "o3", "n", "u").has_value());
}

TEST_F(SaveImageTest, FailsWhenNewXmlDoesNotFit) {
  std::string xml = kXml;
  auto src = Write(
      "tight.save",
      MakeImage(xml, kCookie, static_cast<uint32_t>(xml.size() + sizeof(kCookie) + 1), "QEVM"));
  auto r = CloneSaveImage(src, dir_ / "o", std::string(200, 'n'), "u");
  ASSERT_FALSE(r.has_value());
  EXPECT_FALSE(fs::exists(dir_ / "o"));
}

TEST_F(SaveImageTest, RefusesToOverwriteAndReportsMissingSource) {
  auto src = Write("g.save", MakeImage(kXml, kCookie, 4096, "QEVM"));
  Write("exists.save", "keep");
  EXPECT_FALSE(CloneSaveImage(src, dir_ / "exists.save", "n", "u").has_value());
  EXPECT_EQ(Read(dir_ / "exists.save"), "keep");
  auto r = CloneSaveImage(dir_ / "missing.save", dir_ / "o", "n", "u");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("No such file"), std::string::npos) << r.error().message;
}

TEST(ReplaceFirstElement, EscapesAndRequiresTag) {
  auto r = ReplaceFirstElement("<a><name>x</name><name>y</name></a>", "name", "p&q");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, "<a><name>p&amp;q</name><name>y</name></a>");
  EXPECT_FALSE(ReplaceFirstElement("<a/>", "name", "x").has_value());
}

}  // namespace
}  // namespace phoenix::agent::libvirt
