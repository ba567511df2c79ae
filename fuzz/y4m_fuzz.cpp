// y4m reader: parse the input as a stream and read every frame. Accepted
// frames must have the header's size, and a stream can only hold as many
// frames as its bytes allow.
#include <cstdio>

#include "fuzz_input.h"
#include "media/y4m_reader.h"

using namespace sdvsr;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = fuzz::write_temp_file(data, size, ".y4m");
  std::FILE* in = std::fopen(path.c_str(), "rb");
  FUZZ_CHECK(in != nullptr);
  fuzz::expect_only_runtime_errors([&] {
    Y4mReader reader(in, "fuzz.y4m");
    const Y4mHeader& h = reader.header();
    FUZZ_CHECK(h.width >= 1 && h.width <= kY4mMaxSide && h.height >= 1 && h.height <= kY4mMaxSide);
    FUZZ_CHECK(int64_t{h.width} * h.height <= kY4mMaxPixels);
    FUZZ_CHECK(h.fps_num > 0 && h.fps_den > 0);
    int64_t frames = 0;
    while (std::optional<Image> im = reader.next()) {
      ++frames;
      FUZZ_CHECK(im->width == h.width && im->height == h.height);
      FUZZ_CHECK(im->rgb.size() == static_cast<size_t>(h.width) * h.height * 3);
      // Every frame costs at least "FRAME\n" plus its luma plane.
      FUZZ_CHECK(static_cast<uint64_t>(frames) * (6 + static_cast<uint64_t>(h.width) * h.height) <= size);
    }
    FUZZ_CHECK(reader.frames_read() == frames);
  });
  std::fclose(in);
  return 0;
}
