#pragma once
// A CPU backend that records the way CUDA graphs do, for testing recordings
// without a GPU: record() keeps the work without running it, replay() runs it
// again (on whatever the fixed buffers hold then).
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "cpu_forwarding_backend.h"

namespace sdvsr::test {

class ReplayingBackend final : public CpuForwardingBackend {
 public:
  enum class Mode {
    kKeep,      // record() only keeps the work
    kTraverse,  // record() also calls it once, as a capture calls every op (here they run)
    kFail,      // record() calls it, then throws, as a capture that meets an upload does
  };
  explicit ReplayingBackend(Mode mode = Mode::kKeep) : mode_(mode) {}
  std::string name() const override { return "replaying-cpu"; }
  bool can_record() const override { return true; }
  std::unique_ptr<Recording> record(const std::function<void()>& work) override {
    ++records_asked;
    if (mode_ != Mode::kKeep) work();
    if (mode_ == Mode::kFail)
      throw std::runtime_error("upload of a host tensor: needs the host while recording");
    return std::make_unique<Replay>(work, replays_run);
  }
  int records_asked = 0;
  int replays_run = 0;

 private:
  struct Replay final : Recording {
    Replay(std::function<void()> w, int& count) : work(std::move(w)), replays(count) {}
    void replay() override {
      ++replays;
      work();
    }
    std::function<void()> work;
    int& replays;
  };
  Mode mode_;
};

}  // namespace sdvsr::test
