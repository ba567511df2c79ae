// The strict unpickler alone (data.pkl bytes): the zip target rarely reaches
// it because mutations break the archive's CRCs.
#include "fuzz_input.h"
#include "weights/state_dict_pickle.h"

using namespace sdvsr;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::expect_only_runtime_errors([&] {
    const auto entries = torch_pickle::read_state_dict(data, size, "fuzz.pkl");
    for (const auto& [key, t] : entries) {
      // Every accepted view stays inside its storage.
      FUZZ_CHECK(t.size.size() == t.stride.size());
      FUZZ_CHECK(t.offset >= 0 && t.storage.numel >= 0);
      __int128 numel = 1, last = t.offset;
      for (size_t d = 0; d < t.size.size(); ++d) {
        FUZZ_CHECK(t.size[d] >= 0 && t.stride[d] >= 0);
        numel *= t.size[d];
        if (t.size[d] > 0) last += static_cast<__int128>(t.size[d] - 1) * t.stride[d];
      }
      FUZZ_CHECK(numel == 0 ? t.offset <= t.storage.numel : last < t.storage.numel);
    }
  });
  return 0;
}
