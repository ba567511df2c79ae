// config.json reader: ModelConfig::load on the input, then every typed getter
// on every key present plus a few absent ones.
#include "fuzz_input.h"
#include "weights/model_config.h"

using namespace sdvsr;

namespace {

template <typename Get>
void each_getter_refuses_cleanly(Get&& get) {
  try {
    get();
  } catch (const std::runtime_error&) {  // a wrong type is refused; anything else escapes
  }
}

void read_every_way(const ModelConfig& c, const std::string& key, size_t n) {
  (void)c.has(key);
  each_getter_refuses_cleanly([&] { c.get_int(key, 7); });
  each_getter_refuses_cleanly([&] { c.get_int(key); });
  each_getter_refuses_cleanly([&] { c.get_float(key, 0.5); });
  each_getter_refuses_cleanly([&] { c.get_bool(key, true); });
  each_getter_refuses_cleanly([&] { c.get_string(key, "default"); });
  each_getter_refuses_cleanly([&] { c.get_optional_string(key); });
  each_getter_refuses_cleanly([&] { c.get_int_list(key); });
  each_getter_refuses_cleanly([&] { c.get_string_list(key); });
  each_getter_refuses_cleanly([&] { c.get_float_list(key); });
  each_getter_refuses_cleanly([&] {
    auto v = c.get_int_or_list(key, n, 3);
    FUZZ_CHECK(v.size() == n);
  });
  each_getter_refuses_cleanly([&] {
    auto v = c.get_bool_or_list(key, n, false);
    FUZZ_CHECK(v.size() == n);
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = fuzz::write_temp_file(data, size, ".json");
  fuzz::expect_only_runtime_errors([&] {
    const ModelConfig c = ModelConfig::load(path);
    size_t n = 0;
    for (auto it = c.json().begin(); it != c.json().end(); ++it) read_every_way(c, it.key(), n++ % 5);
    for (const char* absent : {"", "block_out_channels", "no_such_key_in_any_config"})
      read_every_way(c, absent, 4);
  });
  return 0;
}
