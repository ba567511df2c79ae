// The pipeline is device-clean: run on a backend whose every result is tagged
// as a device (kCuda) tensor (DeviceTaggingBackend), any host read of a backend
// result that skipped Backend::to_host() throws, and the frames must equal the
// plain CPU run bit for bit (same CPU ops on the same numbers).
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "device_tagging_backend.h"
#include "golden.h"
#include "media/frame_convert.h"
#include "models/clip_text_model.h"
#include "pipeline/model_bundle.h"
#include "pipeline/stream_session.h"
#include "runtime/cpu/cpu_backend.h"

namespace sdvsr {
namespace {

using test::DeviceTaggingBackend;

std::string key(int k, const std::string& name) { return "frame" + std::to_string(k) + "." + name; }

// Bit-for-bit equality of two host tensors, naming the first differing element.
::testing::AssertionResult BitEqual(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape())
    return ::testing::AssertionFailure() << "shapes " << shape_str(a.shape()) << " vs "
                                         << shape_str(b.shape());
  for (int64_t i = 0; i < a.numel(); ++i)
    if (std::memcmp(&a.data()[i], &b.data()[i], sizeof(float)) != 0)
      return ::testing::AssertionFailure() << "element " << i << ": " << a[i] << " vs " << b[i];
  return ::testing::AssertionSuccess();
}

TEST(DeviceTensor, HostAccessThrowsButIdentityWorks) {
  Tensor host = Tensor::from_vector({2, 2}, {1, 2, 3, 4});
  Tensor dev = Tensor::wrap(Device::kCuda, host.shape(), host.raw_data(), host.storage_owner().lock());
  EXPECT_EQ(dev.device(), Device::kCuda);
  EXPECT_FALSE(dev.is_host());
  EXPECT_THROW(static_cast<const Tensor&>(dev).data(), std::logic_error);
  EXPECT_THROW(dev.data(), std::logic_error);
  EXPECT_THROW(dev[0], std::logic_error);
  EXPECT_THROW(dev.clone(), std::logic_error);
  EXPECT_THROW(dev.to_vector(), std::logic_error);
  EXPECT_EQ(dev.storage_ptr(), host.storage_ptr());
  EXPECT_EQ(dev.reshape({4}).device(), Device::kCuda);  // a view keeps its device
  try {
    dev.to_vector();
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("to_host"), std::string::npos) << e.what();
  }
}

TEST(DeviceTensor, CpuBackendIsItsOwnHost) {
  Backend& cpu = cpu_backend();
  EXPECT_EQ(cpu.device(), Device::kCpu);
  Tensor t = Tensor::from_vector({3}, {1, 2, 3});
  EXPECT_EQ(cpu.to_host(t).storage_ptr(), t.storage_ptr());
  EXPECT_EQ(cpu.to_device(t).storage_ptr(), t.storage_ptr());
}

TEST(DeviceTensor, TaggingBackendTagsResultsAndCopiesAcross) {
  DeviceTaggingBackend be(cpu_backend());
  Tensor a = Tensor::from_vector({1, 3}, {1, 2, 3});
  Tensor r = be.add_scalar(a, 1.f);  // host input accepted
  EXPECT_EQ(r.device(), Device::kCuda);
  EXPECT_THROW(r.to_vector(), std::logic_error);
  Tensor r2 = be.scale(r, 2.f);      // device input accepted
  EXPECT_EQ(be.to_host(r2).to_vector(), (std::vector<float>{4, 6, 8}));
  Tensor d = be.to_device(a);
  EXPECT_EQ(d.device(), Device::kCuda);
  EXPECT_NE(d.storage_ptr(), a.storage_ptr());  // a copy, like a real upload
}

// Golden sequences through StreamSession::push on the tagging backend: equal to the CPU run.
class DevicePlumbingGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(DevicePlumbingGolden, StreamFramesEqualCpuBitForBit) {
  auto f = test::open_case(GetParam());
  DeviceTaggingBackend tagged(cpu_backend());
  std::unique_ptr<ModelBundle> cpu_models = test::load_tiny_models(cpu_backend());
  std::unique_ptr<ModelBundle> dev_models = test::load_tiny_models(tagged);
  StreamSession cpu_session(*cpu_models, cpu_backend(), StreamOptions{});
  StreamSession dev_session(*dev_models, tagged, StreamOptions{});
  int frames = 0;
  while (f->has(key(frames, "lr"))) ++frames;
  ASSERT_GE(frames, 2);
  for (int k = 0; k < frames; ++k) {
    SCOPED_TRACE("frame " + std::to_string(k));
    const Tensor lr = f->tensor(key(k, "lr"));
    const Tensor noise = f->tensor(key(k, "init_latents"));
    const Tensor want = cpu_session.push(lr, &noise);
    // The LR frame arrives as the CLI makes it: through backend ops (on the device).
    const Tensor lr_dev = tagged.add_scalar(lr, 0.0f);
    const Tensor got = dev_session.push(lr_dev, &noise);
    EXPECT_EQ(got.device(), Device::kCuda);
    EXPECT_TRUE(BitEqual(tagged.to_host(got), want));
    // The frame conversion and the saved state read host copies.
    EXPECT_EQ(tensor_to_image(tagged.to_host(got)).rgb, tensor_to_image(want).rgb);
    const StreamState saved = state_to_host(tagged, dev_session.state());
    EXPECT_TRUE(saved.prev_decoded.is_host());
    EXPECT_TRUE(BitEqual(saved.prev_upscaled, cpu_session.state().prev_upscaled));
  }
  EXPECT_GT(tagged.host_copies(), 0);
}

INSTANTIATE_TEST_SUITE_P(Sequences, DevicePlumbingGolden,
                         ::testing::Values("e2e_seq_a.safetensors", "e2e_seq_odd.safetensors"),
                         [](const auto& info) {
                           return info.param == "e2e_seq_a.safetensors" ? std::string("SeqA")
                                                                        : std::string("SeqOdd");
                         });

// A restored (host) state continues the stream exactly like the live device one.
TEST(DevicePlumbingGoldenState, RestoredHostStateContinuesTheStream) {
  auto f = test::open_case("e2e_seq_a.safetensors");
  DeviceTaggingBackend tagged(cpu_backend());
  std::unique_ptr<ModelBundle> models = test::load_tiny_models(tagged);
  StreamSession live(*models, tagged, StreamOptions{});
  const Tensor noise0 = f->tensor(key(0, "init_latents"));
  const Tensor noise1 = f->tensor(key(1, "init_latents"));
  live.push(f->tensor(key(0, "lr")), &noise0);
  StreamSession resumed(*models, tagged, StreamOptions{});
  resumed.restore(state_to_host(tagged, live.state()));
  const Tensor a = tagged.to_host(live.push(f->tensor(key(1, "lr")), &noise1));
  const Tensor b = tagged.to_host(resumed.push(f->tensor(key(1, "lr")), &noise1));
  EXPECT_TRUE(BitEqual(a, b));
}

// RAFT's paths not taken by the tiny sequences: edge padding of small frames and
// the lookup computed without the materialised volume.
TEST(DevicePlumbingGoldenRaft, PaddedAndDirectLookupFlowsEqualCpu) {
  auto f = test::open_case("e2e_seq_a.safetensors");
  DeviceTaggingBackend tagged(cpu_backend());
  std::unique_ptr<ModelBundle> cpu_models = test::load_tiny_models(cpu_backend());
  std::unique_ptr<ModelBundle> dev_models = test::load_tiny_models(tagged);
  Backend& cpu = cpu_backend();
  const Tensor up0 = cpu.upsample_bicubic(f->tensor(key(0, "lr")), 64, 64, false);
  const Tensor up1 = cpu.upsample_bicubic(f->tensor(key(1, "lr")), 64, 64, false);
  for (int64_t volume_bytes : {int64_t{1} << 40, int64_t{0}}) {
    SCOPED_TRACE("max volume bytes " + std::to_string(volume_bytes));
    cpu_models->raft->set_max_corr_volume_bytes(volume_bytes);
    dev_models->raft->set_max_corr_volume_bytes(volume_bytes);
    const Tensor want = cpu_models->raft->flow(up1, up0);
    const Tensor got = dev_models->raft->flow(tagged.to_device(up1), tagged.to_device(up0));
    EXPECT_TRUE(BitEqual(tagged.to_host(got), want));
  }
}

TEST(DevicePlumbingGoldenClip, TextEncoderOnTheDeviceEqualsCpu) {
  ClipTextModel model = ClipTextModel::load(test::golden_path("tiny-text/text_encoder"));
  DeviceTaggingBackend tagged(cpu_backend());
  const std::vector<int64_t> ids = {998, 3, 17, 999};
  const Tensor want = model.forward(ids, cpu_backend());
  const Tensor got = model.forward(ids, tagged);
  EXPECT_TRUE(BitEqual(tagged.to_host(got), want));
}

}  // namespace
}  // namespace sdvsr
