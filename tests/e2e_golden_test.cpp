// The causal frame loop against the original's end-to-end runs (e2e_seq_a,
// e2e_seq_odd): every stage fed with the golden inputs of that stage
// (teacher-forced), then the free-running chain fed only by itself.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "golden.h"
#include "media/frame_convert.h"
#include "pipeline/model_bundle.h"
#include "pipeline/stream_session.h"

namespace sdvsr {
namespace {

using test::golden_path;
using test::open_case;

const ModelBundle& tiny_models() {
  static std::unique_ptr<ModelBundle> bundle = [] {
    return test::load_tiny_models(cpu_backend());
  }();
  return *bundle;
}

std::string key(int k, const std::string& name) { return "frame" + std::to_string(k) + "." + name; }
std::string step_key(int k, int i, const std::string& name) {
  return key(k, "step" + std::to_string(i) + "." + name);
}

int frame_count(const SafetensorsFile& f) {
  int n = 0;
  while (f.has(key(n, "decoded"))) ++n;
  return n;
}

class E2eGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(E2eGolden, EveryStageTeacherForced) {
  auto f = open_case(GetParam());
  const ModelBundle& m = tiny_models();
  Backend& be = cpu_backend();
  StreamSession s(m, be, StreamOptions{});
  const std::vector<int64_t> golden_t = f->int64_values("timesteps");
  ASSERT_EQ(s.timesteps(), golden_t);
  const int frames = frame_count(*f);
  ASSERT_GE(frames, 2);
  for (int k = 0; k < frames; ++k) {
    SCOPED_TRACE("frame " + std::to_string(k));
    const Tensor lr = f->tensor(key(k, "lr"));
    const Tensor up = s.upscale(lr);
    if (f->has(key(k, "upscaled"))) {
      EXPECT_CLOSE(up, f->tensor(key(k, "upscaled")));
    }
    std::optional<Tensor> warped;
    if (k > 0) {
      const Tensor up_prev = f->has(key(k - 1, "upscaled")) ? f->tensor(key(k - 1, "upscaled"))
                                                            : s.upscale(f->tensor(key(k - 1, "lr")));
      const Tensor up_cur = f->has(key(k, "upscaled")) ? f->tensor(key(k, "upscaled")) : up;
      EXPECT_CLOSE(s.flow(up_cur, up_prev), f->tensor(key(k, "flow")));
      warped = s.warp(f->tensor(key(k - 1, "decoded")), f->tensor(key(k, "flow")));
      EXPECT_CLOSE(*warped, f->tensor(key(k, "warped_prev")));
      warped = f->tensor(key(k, "warped_prev"));
    }
    for (int i = 0; i < static_cast<int>(golden_t.size()); ++i) {
      SCOPED_TRACE("step " + std::to_string(i));
      const Tensor latents = f->tensor(step_key(k, i, "latents"));
      const int64_t t = f->int64_values(step_key(k, i, "timestep")).at(0);
      const Tensor noise_pred = s.predict_noise(latents, lr, t, warped ? &*warped : nullptr);
      EXPECT_CLOSE(noise_pred, f->tensor(step_key(k, i, "noise_pred")));
      // The scheduler on the golden prediction, so each step is judged alone.
      DdimScheduler sched = *m.scheduler;
      sched.set_timesteps(static_cast<int>(golden_t.size()));
      const auto out = sched.step(f->tensor(step_key(k, i, "noise_pred")), t, latents);
      EXPECT_CLOSE(out.prev_sample, f->tensor(step_key(k, i, "latents_next")));
      EXPECT_CLOSE(out.pred_original_sample, f->tensor(step_key(k, i, "pred_x0")));
    }
    const int last = static_cast<int>(golden_t.size()) - 1;
    const Tensor decoded =
        s.decode(f->tensor(step_key(k, last, "latents_next")), warped ? &*warped : nullptr);
    EXPECT_CLOSE(decoded, f->tensor(key(k, "decoded")));
  }
}

TEST_P(E2eGolden, FreeRunningChainStaysClose) {
  auto f = open_case(GetParam());
  StreamSession s(tiny_models(), cpu_backend(), StreamOptions{});
  const int frames = frame_count(*f);
  for (int k = 0; k < frames; ++k) {
    SCOPED_TRACE("frame " + std::to_string(k));
    const Tensor noise = f->tensor(key(k, "init_latents"));
    const Tensor decoded = s.push(f->tensor(key(k, "lr")), &noise);
    EXPECT_CLOSE_TOL(decoded, f->tensor(key(k, "decoded")), 1e-3, 1e-2);
    // The uint8 frame as the original writes it.
    const Image img = tensor_to_image(decoded);
    const Tensor ref_u8 = f->tensor(key(k, "output_u8"));  // [3, H, W]
    ASSERT_EQ(ref_u8.numel(), static_cast<int64_t>(img.rgb.size()));
    const int64_t hw = ref_u8.size(1) * ref_u8.size(2);
    int64_t differ = 0, worse = 0;
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t p = 0; p < hw; ++p) {
        const int d = std::abs(static_cast<int>(img.rgb[p * 3 + c]) -
                               static_cast<int>(ref_u8[c * hw + p]));
        differ += d != 0;
        worse += d > 1;
      }
    EXPECT_EQ(worse, 0);
    EXPECT_LE(static_cast<double>(differ), 1e-3 * static_cast<double>(ref_u8.numel()));
  }
  EXPECT_EQ(s.state().index, frames);
}

TEST(E2eGoldenInputs, PreprocessingFromPixelsIsBitExact) {
  auto f = open_case("e2e_seq_a.safetensors");
  Backend& be = cpu_backend();
  const Tensor u8 = f->tensor("frame0.lr_u8");  // [3, h, w]
  Image img;
  img.height = static_cast<int>(u8.size(1));
  img.width = static_cast<int>(u8.size(2));
  img.rgb.resize(u8.numel());
  const int64_t hw = u8.size(1) * u8.size(2);
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t p = 0; p < hw; ++p) img.rgb[p * 3 + c] = static_cast<uint8_t>(u8[c * hw + p]);
  const Tensor lr = be.add_scalar(be.scale(image_to_tensor(img), 2.0f), -1.0f);
  const Tensor ref = f->tensor("frame0.lr");
  ASSERT_EQ(lr.shape(), ref.shape());
  for (int64_t i = 0; i < lr.numel(); ++i) ASSERT_EQ(lr[i], ref[i]) << "at " << i;
}

INSTANTIATE_TEST_SUITE_P(Sequences, E2eGolden,
                         ::testing::Values("e2e_seq_a.safetensors", "e2e_seq_odd.safetensors"),
                         [](const auto& info) {
                           return info.param == "e2e_seq_a.safetensors" ? std::string("SeqA")
                                                                        : std::string("SeqOdd");
                         });

}  // namespace
}  // namespace sdvsr
