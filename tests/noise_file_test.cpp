// --noise FILE: initial latents from the golden end-to-end file, and the
// "<sequence>/frame{k}" key taking precedence over "frame{k}".
#include <gtest/gtest.h>

#include <cstring>

#include "golden.h"
#include "pipeline/noise_file.h"
#include "weights/safetensors.h"

namespace sdvsr {
namespace {

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), sizeof(float) * a.numel()) == 0;
}

TEST(NoiseFile, GoldenE2eFile) {
  const std::string path = test::golden_path("tiny/cases/e2e_seq_a.safetensors");
  const NoiseFile noise = NoiseFile::open(path);
  auto ref = test::open_case("e2e_seq_a.safetensors");
  for (int64_t k = 0; k < 3; ++k) {
    const auto latent = noise.latent_for("seq_a", k);
    ASSERT_TRUE(latent.has_value()) << k;
    EXPECT_EQ(latent->shape(), (Shape{1, 4, 32, 48}));
    EXPECT_TRUE(same_bits(*latent, ref->tensor("frame" + std::to_string(k) + ".init_latents")));
  }
  EXPECT_FALSE(noise.latent_for("seq_a", 3).has_value());
}

TEST(NoiseFile, SequenceKeyFirstThenPlainKey) {
  const std::string path = test::temp_dir("noise_file") + "/noise.safetensors";
  const Tensor plain0 = Tensor::full({1, 4, 2, 2}, 1.0f);
  const Tensor seq0 = Tensor::full({1, 4, 2, 2}, 2.0f);
  const Tensor plain1 = Tensor::full({1, 4, 2, 2}, 3.0f);
  save_safetensors(path, {{"frame0.init_latents", plain0}, {"clipB/frame0.init_latents", seq0},
                          {"frame1.init_latents", plain1}});
  const NoiseFile noise = NoiseFile::open(path);
  EXPECT_TRUE(same_bits(*noise.latent_for("clipB", 0), seq0));
  EXPECT_TRUE(same_bits(*noise.latent_for("clipA", 0), plain0));
  EXPECT_TRUE(same_bits(*noise.latent_for("clipB", 1), plain1));
  EXPECT_FALSE(noise.latent_for("clipB", 2).has_value());
  // The returned tensor is a copy: changing it leaves the file's data alone.
  Tensor t = *noise.latent_for("clipA", 0);
  t.data()[0] = 9.0f;
  EXPECT_EQ((*noise.latent_for("clipA", 0))[0], 1.0f);

  const std::string none = test::temp_dir("noise_file") + "/none.safetensors";
  save_safetensors(none, {{"something_else", plain0}});
  try {
    NoiseFile::open(none);
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(none + ": no initial latents", 0), 0u);
  }
}

}  // namespace
}  // namespace sdvsr
