// SHA-256 against the FIPS 180-4 / NIST example vectors.
#include "pipeline/sha256.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "golden.h"

namespace sdvsr {
namespace {

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                       "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST(Sha256, MillionAsInOddPiecesAndFromAFile) {
  const std::string million(1000000, 'a');
  const std::string expect = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
  Sha256 h;
  size_t pos = 0, piece = 1;
  while (pos < million.size()) {  // pieces of 1, 2, 3, ... bytes cross every block boundary
    size_t n = std::min(piece++, million.size() - pos);
    h.update(million.data() + pos, n);
    pos += n;
  }
  EXPECT_EQ(to_hex(h.finish()), expect);

  const std::string path = test::temp_dir("sha256") + "/a.bin";
  std::ofstream(path, std::ios::binary) << million;
  EXPECT_EQ(sha256_file_hex(path), expect);
  EXPECT_THROW(sha256_file_hex(path + ".missing"), std::runtime_error);
}

// Every padding length: lengths 55, 56, 63, 64 straddle the length field.
TEST(Sha256, PaddingBoundaries) {
  EXPECT_EQ(sha256_hex(std::string(55, 'a')),
            "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  EXPECT_EQ(sha256_hex(std::string(56, 'a')),
            "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
  EXPECT_EQ(sha256_hex(std::string(64, 'a')),
            "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

}  // namespace
}  // namespace sdvsr
