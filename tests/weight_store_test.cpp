// WeightStore: shape-checked fetches, scopes, and the unused-key audit.
#include "weights/weight_store.h"

#include <gtest/gtest.h>

#include "golden.h"
#include "weights/safetensors.h"
#include "weights/torch_checkpoint.h"

namespace sdvsr {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

std::map<std::string, Tensor> sample() {
  return {{"down.0.conv.weight", Tensor::from_vector({2, 1}, {1, 2})},
          {"down.0.conv.bias", Tensor::from_vector({2}, {3, 4})},
          {"down.1.conv.weight", Tensor::zeros({2, 1})},
          {"pos_ids", Tensor::zeros({3})}};
}

void exercise(const std::shared_ptr<WeightStore>& s, const std::string& src) {
  EXPECT_EQ(s->source(), src);
  EXPECT_TRUE(s->has("down.0.conv.bias"));
  EXPECT_FALSE(s->has("up.0"));
  EXPECT_EQ(s->shape_of("down.0.conv.weight"), (Shape{2, 1}));
  EXPECT_EQ(s->keys_with_prefix("down.0."),
            (std::vector<std::string>{"down.0.conv.bias", "down.0.conv.weight"}));

  WeightScope root(s);
  WeightScope conv = root.sub("down").sub(0).sub("conv");
  EXPECT_EQ(conv.key("weight"), "down.0.conv.weight");
  EXPECT_TRUE(conv.has("bias"));
  EXPECT_EQ(conv.get("weight", {2, 1}).to_vector(), (std::vector<float>{1, 2}));
  EXPECT_EQ(error_of([&] { conv.get("bias", {3}); }),
            src + ": tensor 'down.0.conv.bias' has shape [2] but the model expects [3]");
  EXPECT_EQ(error_of([&] { conv.get("scale", {2}); }), src + ": missing tensor 'down.0.conv.scale'");

  // A mis-shaped fetch does not count as a use.
  EXPECT_EQ(error_of([&] { s->finish(); }), src + ": unexpected tensor 'down.0.conv.bias' (and 2 more)");
  conv.get("bias", {2});
  s->ignore("pos_ids");
  EXPECT_EQ(error_of([&] { s->finish(); }), src + ": unexpected tensor 'down.1.conv.weight'");
  root.sub("down.1.conv").get("weight", {2, 1});
  EXPECT_NO_THROW(s->finish());
}

TEST(WeightStore, FromTensors) { exercise(WeightStore::from_tensors(sample(), "mem"), "mem"); }

TEST(WeightStore, FromSafetensorsIsLazyAndZeroCopy) {
  const std::string path = test::temp_dir("weight_store") + "/w.safetensors";
  save_safetensors(path, sample());
  exercise(WeightStore::from_safetensors(path), path);
  auto s = WeightStore::from_safetensors(path);
  EXPECT_TRUE(s->get("pos_ids", {3}).is_borrowed());
}

// Weights read into memory (a PyTorch checkpoint, a converted float16 file)
// are handed out read-only like mapped ones, without a copy: backends keep
// their device uploads and 16-bit conversions per weight storage on that
// promise, so RAFT's .pth weights go to a GPU once, not on every call.
TEST(WeightStore, WeightsInMemoryAreHandedOutReadOnlyWithoutACopy) {
  std::map<std::string, Tensor> tensors = sample();
  const void* storage = tensors.at("down.0.conv.bias").storage_ptr();
  auto s = WeightStore::from_tensors(std::move(tensors), "mem");
  Tensor bias = s->get("down.0.conv.bias", {2});
  EXPECT_TRUE(bias.is_borrowed());
  EXPECT_EQ(bias.storage_ptr(), storage);
  EXPECT_THROW(bias.data(), std::logic_error);
  EXPECT_EQ(bias.to_vector(), (std::vector<float>{3, 4}));
  EXPECT_FALSE(bias.storage_owner().expired());

  auto raft = WeightStore::from_tensors(load_torch_checkpoint(test::golden_path("tiny/raft/raft_large.pth")),
                                        "raft_large.pth");
  ASSERT_FALSE(raft->keys_with_prefix("feature_encoder.").empty());
  for (const std::string& key : raft->keys_with_prefix("feature_encoder.")) {
    Tensor w = raft->get(key, raft->shape_of(key));
    EXPECT_TRUE(w.is_borrowed()) << key;
    EXPECT_THROW(w.data(), std::logic_error) << key;
  }
}

TEST(WeightStore, GoldenUnetKeys) {
  auto s = WeightStore::from_safetensors(test::golden_path("tiny/unet/diffusion_pytorch_model.safetensors"));
  EXPECT_EQ(s->get("conv_in.weight", {16, 7, 3, 3}).numel(), 16 * 7 * 9);
  EXPECT_THROW(s->finish(), std::runtime_error);
}

}  // namespace
}  // namespace sdvsr
