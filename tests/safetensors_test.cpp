// safetensors reading (validation, conversions, zero-copy) and writing.
#include "weights/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <utility>

#include "golden.h"

namespace sdvsr {
namespace {

// A file made of an 8-byte length, `header` (padded with spaces to `pad_to`) and `data`.
std::string write_raw(const std::string& name, std::string header, const std::string& data,
                      size_t pad_to = 8) {
  while ((header.size() + 8) % pad_to != 0) header.push_back(' ');
  const std::string path = test::temp_dir("safetensors") + "/" + name;
  std::ofstream out(path, std::ios::binary);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>(n >> (8 * i)));
  out << header << data;
  return path;
}

template <typename T>
std::string bytes_of(std::initializer_list<T> values) {
  std::string s;
  for (T v : values) s.append(reinterpret_cast<const char*>(&v), sizeof(T));
  return s;
}

// The error message of opening `path` (empty when it opens).
std::string open_error(const std::string& path) {
  try {
    SafetensorsFile::open(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(Safetensors, RoundTripIsZeroCopyAndKeepsMetadata) {
  const std::string path = test::temp_dir("st_roundtrip") + "/a.safetensors";
  Tensor a = Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = Tensor::from_vector({1}, {-7.5f});
  Tensor c = Tensor::zeros({0, 4});
  save_safetensors(path, {{"w.a", a}, {"w.b", b}, {"w.empty", c}}, {{"format", "pt"}});
  Tensor read_a;
  {
    auto f = SafetensorsFile::open(path);
    ASSERT_EQ(f->tensors().size(), 3u);
    EXPECT_EQ(f->metadata().at("format"), "pt");
    EXPECT_EQ(f->info("w.a").dtype, DType::kF32);
    EXPECT_EQ(f->info("w.a").shape, (Shape{2, 3}));
    read_a = f->tensor("w.a");
    EXPECT_TRUE(read_a.is_borrowed());
    EXPECT_EQ(f->tensor("w.b").to_vector(), std::vector<float>{-7.5f});
    EXPECT_EQ(f->tensor("w.empty").shape(), (Shape{0, 4}));
    EXPECT_FALSE(f->has("nope"));
    EXPECT_THROW(f->tensor("nope"), std::runtime_error);
  }
  // The mapping lives as long as a tensor borrowed from it.
  EXPECT_EQ(read_a.to_vector(), a.to_vector());
}

TEST(Safetensors, ConvertsHalfBFloatDoubleAndIntegers) {
  // F16: 1.0, -2.0, 65504, 2^-24 (smallest subnormal); BF16: 1.0, -3.0.
  std::string data = bytes_of<uint16_t>({0x3c00, 0xc000, 0x7bff, 0x0001});
  data += bytes_of<uint16_t>({0x3f80, 0xc040});
  data += bytes_of<double>({0.25, -1e10});
  data += bytes_of<int64_t>({751, -1});
  data += bytes_of<uint8_t>({0, 255});
  data += bytes_of<uint8_t>({1, 0});
  const std::string header =
      R"({"h":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},)"
      R"("bf":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},)"
      R"("d":{"dtype":"F64","shape":[2],"data_offsets":[12,28]},)"
      R"("i":{"dtype":"I64","shape":[2],"data_offsets":[28,44]},)"
      R"("u":{"dtype":"U8","shape":[2],"data_offsets":[44,46]},)"
      R"("b":{"dtype":"BOOL","shape":[2],"data_offsets":[46,48]}})";
  auto f = SafetensorsFile::open(write_raw("convert.safetensors", header, data));
  EXPECT_EQ(f->tensor("h").to_vector(), (std::vector<float>{1.0f, -2.0f, 65504.0f, 5.9604644775390625e-8f}));
  EXPECT_FALSE(f->tensor("h").is_borrowed());
  EXPECT_EQ(f->tensor("bf").to_vector(), (std::vector<float>{1.0f, -3.0f}));
  EXPECT_EQ(f->tensor("d").to_vector(), (std::vector<float>{0.25f, -1e10f}));
  EXPECT_EQ(f->tensor("i").to_vector(), (std::vector<float>{751.0f, -1.0f}));
  EXPECT_EQ(f->int64_values("i"), (std::vector<int64_t>{751, -1}));
  EXPECT_EQ(f->int64_values("u"), (std::vector<int64_t>{0, 255}));
  EXPECT_EQ(f->int64_values("b"), (std::vector<int64_t>{1, 0}));
  EXPECT_THROW(f->int64_values("h"), std::runtime_error);
  // Converted tensors stay valid after their pages are released, and re-reading works.
  f->release_pages("h");
  EXPECT_EQ(f->tensor("h")[0], 1.0f);
}

TEST(Safetensors, UnalignedFloat32IsCopied) {
  // A 1-byte U8 tensor first puts the F32 data at an odd offset.
  std::string data = bytes_of<uint8_t>({9}) + bytes_of<float>({1.5f, -2.5f});
  const std::string header =
      R"({"pad":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
      R"("x":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})";
  auto f = SafetensorsFile::open(write_raw("unaligned.safetensors", header, data));
  Tensor x = f->tensor("x");
  EXPECT_FALSE(x.is_borrowed());
  EXPECT_EQ(x.to_vector(), (std::vector<float>{1.5f, -2.5f}));
}

TEST(Safetensors, RejectsMalformedFiles) {
  const std::string f4 = bytes_of<float>({1.0f});
  struct Case {
    const char* name;
    std::string header;
    std::string data;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {"bad_json", "{not json", "", "not valid JSON"},
      {"not_object", "[1,2]", "", "not a JSON object"},
      {"no_dtype", R"({"x":{"shape":[1],"data_offsets":[0,4]}})", f4, "has no 'dtype'"},
      {"no_shape", R"({"x":{"dtype":"F32","data_offsets":[0,4]}})", f4, "has no 'shape'"},
      {"no_offsets", R"({"x":{"dtype":"F32","shape":[1]}})", f4, "has no 'data_offsets'"},
      {"bad_dtype", R"({"x":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}})", "a",
       "unsupported dtype 'F8'"},
      {"neg_shape", R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", f4,
       "non-negative"},
      {"past_end", R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", f4,
       "outside the 4-byte data section"},
      {"size_mismatch", R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", f4,
       "holds 4 bytes"},
      {"reversed", R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", f4,
       "end before they begin"},
      {"overlap",
       R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
       f4 + f4, "overlap"},
      {"hole",
       R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"y":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
       f4 + f4 + f4, "bytes [4, 8) of the data section before tensor 'y' belong to no tensor"},
      {"trailing", R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", f4 + f4,
       "the data section holds 8 bytes but its tensors cover 4"},
      {"empty_inside",
       R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
       f4 + f4, "overlap"},
      {"metadata", R"({"__metadata__":{"a":1}})", "", "__metadata__ value 'a' is not a string"},
  };
  for (const auto& c : cases) {
    const std::string path = write_raw(std::string(c.name) + ".safetensors", c.header, c.data);
    const std::string err = open_error(path);
    EXPECT_EQ(err.rfind(path + ": ", 0), 0u) << c.name << ": " << err;
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.name << ": " << err;
  }
}

TEST(Safetensors, RejectsShortFilesAndBadHeaderLengths) {
  const std::string dir = test::temp_dir("st_short");
  {
    std::ofstream(dir + "/short", std::ios::binary) << "abc";
    EXPECT_NE(open_error(dir + "/short").find("too short"), std::string::npos);
  }
  {
    std::ofstream out(dir + "/huge_len", std::ios::binary);
    uint64_t n = 1ull << 40;
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << "{}";
    out.close();
    EXPECT_NE(open_error(dir + "/huge_len").find("exceeds 100 MiB"), std::string::npos);
  }
  {
    std::ofstream out(dir + "/past_end", std::ios::binary);
    uint64_t n = 100;
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << "{}";
    out.close();
    EXPECT_NE(open_error(dir + "/past_end").find("runs past the end"), std::string::npos);
  }
  EXPECT_NE(open_error(dir + "/missing").find("cannot open"), std::string::npos);
}

TEST(Safetensors, ReadsGoldenModelAndTimesteps) {
  auto unet = SafetensorsFile::open(test::golden_path("tiny/unet/diffusion_pytorch_model.safetensors"));
  EXPECT_EQ(unet->tensors().size(), 686u);
  EXPECT_EQ(unet->metadata().at("format"), "pt");
  Tensor w = unet->tensor("conv_in.weight");
  EXPECT_EQ(w.shape(), (Shape{16, 7, 3, 3}));
  EXPECT_TRUE(w.is_borrowed());
  EXPECT_EQ(std::memcmp(std::as_const(w).data(), unet->raw("conv_in.weight"), 16 * 7 * 9 * 4), 0);

  auto sched = test::open_case("ddim_scheduler.safetensors");
  EXPECT_EQ(sched->int64_values("timesteps_4"), (std::vector<int64_t>{751, 501, 251, 1}));
  EXPECT_EQ(sched->tensor("timesteps_4").to_vector(), (std::vector<float>{751, 501, 251, 1}));
}

}  // namespace
}  // namespace sdvsr
