#include "pipeline/recorded_steps.h"

#include <bit>
#include <stdexcept>

#include "runtime/warnings.h"

namespace sdvsr {

// One shape's fixed buffers and its recording.
struct RecordedSteps::Slot {
  Tensor latents, lr, unet_time, control_time, control_embedding;
  Tensor out;  // the prediction; made by the first, unrecorded run
  std::unique_ptr<Recording> recording;
  bool failed = false;
};

namespace {

void append_shape(std::vector<int64_t>& key, const Tensor* t) {
  key.push_back(t ? t->dim() : -1);
  if (t) key.insert(key.end(), t->shape().begin(), t->shape().end());
}

}  // namespace

RecordedSteps::RecordedSteps(const ModelBundle& models, Backend& be) : models_(models), be_(be) {
  if (!be.can_record())
    throw std::logic_error("RecordedSteps: backend " + be.name() + " cannot record work");
}

RecordedSteps::~RecordedSteps() = default;

RecordedSteps::Slot& RecordedSteps::slot_for(const TimedStep& step, float conditioning_scale) {
  // The ControlNet's scale is a constant of its recordings (a kernel argument).
  std::vector<int64_t> key{step.control_embedding ? std::bit_cast<int32_t>(conditioning_scale) : 0};
  for (const Tensor* t : {&step.latents, &step.lr, &step.unet_time, step.control_time,
                          step.control_embedding})
    append_shape(key, t);
  std::unique_ptr<Slot>& s = slots_[key];
  if (s) return *s;
  s = std::make_unique<Slot>();
  auto buffer = [&](const Tensor* like) {
    return like ? be_.to_device(Tensor::zeros(like->shape())) : Tensor();
  };
  s->latents = buffer(&step.latents);
  s->lr = buffer(&step.lr);
  s->unet_time = buffer(&step.unet_time);
  s->control_time = buffer(step.control_time);
  s->control_embedding = buffer(step.control_embedding);
  return *s;
}

std::optional<Tensor> RecordedSteps::predict(const TimedStep& step, float conditioning_scale) {
  Slot& s = slot_for(step, conditioning_scale);
  if (s.failed) return std::nullopt;
  be_.copy_into(s.latents, step.latents);
  be_.copy_into(s.lr, step.lr);
  be_.copy_into(s.unet_time, step.unet_time);
  if (step.control_embedding) {
    be_.copy_into(s.control_time, *step.control_time);
    be_.copy_into(s.control_embedding, *step.control_embedding);
  }
  const bool control = step.control_embedding != nullptr;
  // Everything the step creates dies inside this function; only s.out stays.
  auto run = [this, &s, control, conditioning_scale] {
    const TimedStep fixed{s.latents, s.lr, s.unet_time, control ? &s.control_time : nullptr,
                          control ? &s.control_embedding : nullptr};
    Tensor pred = predict_noise_timed(models_, be_, fixed, conditioning_scale);
    if (s.out.defined())
      be_.copy_into(s.out, pred);
    else
      s.out = pred;
  };
  // A host copy the next call cannot overwrite (to_host of a host tensor is itself).
  auto result = [&] {
    Tensor h = be_.to_host(s.out);
    return h.storage_ptr() == s.out.storage_ptr() ? h.clone() : h;
  };
  if (!s.out.defined()) {  // the first call of this shape: unrecorded
    run();
    return result();
  }
  try {
    if (!s.recording) {
      s.recording = be_.record(run);
      ++recordings_;
    }
    s.recording->replay();
  } catch (const std::exception& e) {
    s.failed = true;
    s.recording.reset();
    failure_ = e.what();
    warn(std::string("denoising step not recorded, running op by op: ") + e.what());
    return std::nullopt;
  }
  ++replays_;
  return result();
}

}  // namespace sdvsr
