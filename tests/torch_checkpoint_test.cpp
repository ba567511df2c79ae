// PyTorch zip checkpoints: the golden RAFT weights, and hand-built archives
// (pickles written byte by byte) for the strict unpickler's refusals.
#include "weights/torch_checkpoint.h"

#include <gtest/gtest.h>
#include <zip.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>

#include "golden.h"

namespace sdvsr {
namespace {

// Emits pickle opcodes (protocol 2, as torch.save writes them).
class Pickle {
 public:
  Pickle& op(uint8_t c) { return raw(std::string(1, static_cast<char>(c))); }
  Pickle& raw(const std::string& s) {
    bytes += s;
    return *this;
  }
  Pickle& proto() { return op(0x80).op(2); }
  Pickle& mark() { return op('('); }
  Pickle& str(const std::string& s) {
    op('X');
    le(s.size(), 4);
    return raw(s);
  }
  Pickle& integer(int64_t v) {
    if (v >= 0 && v < 256) return op('K').op(static_cast<uint8_t>(v));
    op(0x8a).op(8);
    return le(static_cast<uint64_t>(v), 8);
  }
  Pickle& global(const std::string& module, const std::string& name) {
    return op('c').raw(module + "\n" + name + "\n");
  }
  Pickle& tuple_of(const std::vector<int64_t>& v) {
    mark();
    for (int64_t x : v) integer(x);
    return op('t');
  }
  Pickle& ordered_dict() { return global("collections", "OrderedDict").op(')').op('R'); }
  // _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())
  Pickle& tensor(const std::string& storage_class, const std::string& key, int64_t numel,
                 int64_t offset, const std::vector<int64_t>& size, const std::vector<int64_t>& stride) {
    global("torch._utils", "_rebuild_tensor_v2").mark();
    mark().str("storage").global("torch", storage_class).str(key).str("cpu").integer(numel).op('t').op('Q');
    integer(offset).tuple_of(size).tuple_of(stride).op(0x89).ordered_dict().op('t');
    return op('R');
  }
  Pickle& le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) op(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }
  std::string bytes;
};

template <typename T>
std::string bytes_of(std::initializer_list<T> values) {
  std::string s;
  for (T v : values) s.append(reinterpret_cast<const char*>(&v), sizeof(T));
  return s;
}

// A zip archive with the given members; `deflate` compresses them all.
std::string write_archive(const std::string& name, const std::map<std::string, std::string>& members,
                          bool deflate = false) {
  const std::string path = test::temp_dir("torch_ckpt_" + name) + "/" + name + ".pth";
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  EXPECT_NE(z, nullptr);
  for (const auto& [member, content] : members) {
    zip_source_t* src = zip_source_buffer(z, content.data(), content.size(), 0);
    const zip_int64_t idx = zip_file_add(z, member.c_str(), src, ZIP_FL_OVERWRITE);
    EXPECT_GE(idx, 0);
    zip_set_file_compression(z, static_cast<zip_uint64_t>(idx), deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
  }
  EXPECT_EQ(zip_close(z), 0);
  return path;
}

std::string write_checkpoint(const std::string& name, const std::string& pickle,
                             std::map<std::string, std::string> storages, bool deflate = false) {
  std::map<std::string, std::string> members{{"archive/data.pkl", pickle}, {"archive/version", "3\n"}};
  for (auto& [key, data] : storages) members["archive/data/" + key] = data;
  return write_archive(name, members, deflate);
}

std::string load_error(const std::string& path) {
  try {
    load_torch_checkpoint(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_LOAD_ERROR(path, text)                                   \
  do {                                                                  \
    const std::string p_ = (path);                                      \
    const std::string e_ = load_error(p_);                              \
    EXPECT_EQ(e_.rfind(p_ + ": ", 0), 0u) << e_;                         \
    EXPECT_NE(e_.find(text), std::string::npos) << e_;                  \
  } while (0)

// A one-tensor state_dict {'w': FloatStorage view} as pickle bytes.
std::string one_tensor(int64_t numel, int64_t offset, const std::vector<int64_t>& size,
                       const std::vector<int64_t>& stride, const std::string& key = "0") {
  Pickle p;
  p.proto().ordered_dict().op('q').op(0).mark();
  p.str("w").tensor("FloatStorage", key, numel, offset, size, stride);
  p.op('u').op('.');
  return p.bytes;
}

TEST(TorchCheckpoint, ReadsViewsDtypesAndParameters) {
  Pickle p;
  p.proto().ordered_dict().op('q').op(0).mark();
  p.str("plain").tensor("FloatStorage", "0", 6, 0, {2, 3}, {3, 1});
  // A transposed view with an offset into the same storage.
  p.str("view").tensor("FloatStorage", "0", 6, 1, {2, 2}, {1, 3});
  p.str("half").tensor("HalfStorage", "1", 2, 0, {2}, {1});
  p.str("expanded").tensor("FloatStorage", "0", 6, 2, {2, 3}, {0, 1});
  p.str("count").tensor("LongStorage", "2", 1, 0, {}, {});
  // nn.Parameter(tensor) as _rebuild_parameter(data, requires_grad, hooks).
  p.str("param").global("torch._utils", "_rebuild_parameter");
  p.tensor("BFloat16Storage", "3", 1, 0, {1, 1}, {1, 1}).op(0x88).ordered_dict().op(0x87).op('R');
  p.op('u');
  // state_dict._metadata arrives as BUILD state and is ignored.
  p.op('}').str("_metadata").ordered_dict().op('s').op('b').op('.');
  const std::map<std::string, std::string> storages{
      {"0", bytes_of<float>({0, 1, 2, 3, 4, 5})},
      {"1", bytes_of<uint16_t>({0x3c00, 0xbc00})},
      {"2", bytes_of<int64_t>({42})},
      {"3", bytes_of<uint16_t>({0x4040})}};
  for (bool deflate : {false, true}) {
    auto sd = load_torch_checkpoint(write_checkpoint(deflate ? "mixed_deflate" : "mixed", p.bytes, storages, deflate));
    ASSERT_EQ(sd.size(), 6u);
    EXPECT_EQ(sd["expanded"].to_vector(), (std::vector<float>{2, 3, 4, 2, 3, 4}));
    EXPECT_EQ(sd["plain"].shape(), (Shape{2, 3}));
    EXPECT_EQ(sd["plain"].to_vector(), (std::vector<float>{0, 1, 2, 3, 4, 5}));
    EXPECT_EQ(sd["view"].to_vector(), (std::vector<float>{1, 4, 2, 5}));
    EXPECT_EQ(sd["half"].to_vector(), (std::vector<float>{1, -1}));
    EXPECT_EQ(sd["count"].shape(), Shape{});
    EXPECT_EQ(sd["count"].to_vector(), std::vector<float>{42});
    EXPECT_EQ(sd["param"].shape(), (Shape{1, 1}));
    EXPECT_EQ(sd["param"].to_vector(), std::vector<float>{3});
  }
}

TEST(TorchCheckpoint, RefusesGlobalsOutsideTheAllowList) {
  Pickle sys;
  sys.proto().global("os", "system").str("echo pwned").op(0x85).op('R').op('.');
  const std::string path = write_checkpoint("os_system", sys.bytes, {});
  EXPECT_EQ(load_error(path),
            path + ": refuses pickle global 'os.system' (only plain state_dicts are read)");

  Pickle stack;
  stack.proto().str("builtins").str("eval").op(0x93).op('.');
  EXPECT_LOAD_ERROR(write_checkpoint("eval", stack.bytes, {}), "refuses pickle global 'builtins.eval'");

  // An allowed name that is not callable.
  Pickle call;
  call.proto().global("torch", "FloatStorage").op(')').op('R').op('.');
  EXPECT_LOAD_ERROR(write_checkpoint("call_storage", call.bytes, {}), "'torch.FloatStorage' cannot be called");
}

TEST(TorchCheckpoint, RejectsBadPersistentIdsAndOutOfRangeViews) {
  const std::string f4 = bytes_of<float>({1, 2, 3, 4});
  EXPECT_LOAD_ERROR(write_checkpoint("past_end", one_tensor(4, 0, {5}, {1}), {{"0", f4}}),
                    "reaches past its storage '0' of 4 elements");
  EXPECT_LOAD_ERROR(write_checkpoint("offset_past_end", one_tensor(4, 2, {2, 2}, {2, 1}), {{"0", f4}}),
                    "reaches past its storage");
  EXPECT_LOAD_ERROR(write_checkpoint("stride_past_end", one_tensor(4, 0, {2, 2}, {3, 1}), {{"0", f4}}),
                    "reaches past its storage");
  EXPECT_LOAD_ERROR(write_checkpoint("size_mismatch", one_tensor(4, 0, {4}, {1}), {{"0", f4 + f4}}),
                    "storage '0' holds 32 bytes but 4 F32 elements need 16");
  EXPECT_LOAD_ERROR(write_checkpoint("missing_storage", one_tensor(4, 0, {4}, {1}), {}),
                    "no member 'archive/data/0'");
  EXPECT_LOAD_ERROR(write_checkpoint("expanded", one_tensor(4, 0, {1 << 20, 1 << 10}, {0, 0}), {{"0", f4}}),
                    "repeats its storage beyond 64M elements");
  EXPECT_LOAD_ERROR(write_checkpoint("huge_storage", one_tensor(int64_t{1} << 40, 0, {4}, {1}), {{"0", f4}}),
                    "storage '0' holds 16 bytes but 1099511627776 F32 elements need");
  EXPECT_LOAD_ERROR(write_checkpoint("path_key", one_tensor(4, 0, {4}, {1}, "../0"), {{"0", f4}}),
                    "characters other than");

  Pickle not_storage;
  not_storage.proto().mark().str("file").global("torch", "FloatStorage").str("0").str("cpu").integer(4);
  not_storage.op('t').op('Q').op('.');
  EXPECT_LOAD_ERROR(write_checkpoint("not_storage", not_storage.bytes, {}), "does not start with 'storage'");

  Pickle short_pid;
  short_pid.proto().str("storage").op(0x85).op('Q').op('.');
  EXPECT_LOAD_ERROR(write_checkpoint("short_pid", short_pid.bytes, {}), "persistent id is not a 5-tuple");
}

TEST(TorchCheckpoint, RejectsMalformedPickles) {
  const std::string good = one_tensor(4, 0, {4}, {1});
  const std::map<std::string, std::string> st{{"0", bytes_of<float>({1, 2, 3, 4})}};
  EXPECT_NO_THROW(load_torch_checkpoint(write_checkpoint("good", good, st)));
  EXPECT_LOAD_ERROR(write_checkpoint("truncated", good.substr(0, good.size() / 2), st), "truncated pickle");
  EXPECT_LOAD_ERROR(write_checkpoint("no_stop", good.substr(0, good.size() - 1), st), "truncated pickle");
  EXPECT_LOAD_ERROR(write_checkpoint("empty_pkl", "", st), "truncated pickle");
  EXPECT_LOAD_ERROR(write_checkpoint("bad_opcode", "\x80\x02\xff.", st), "unsupported pickle opcode 0xff");
  EXPECT_LOAD_ERROR(write_checkpoint("memo", "\x80\x02h\x05.", st), "memo entry 5 was never stored");
  EXPECT_LOAD_ERROR(write_checkpoint("underflow", "\x80\x02s.", st), "pops an empty stack");
  EXPECT_LOAD_ERROR(write_checkpoint("no_mark", "\x80\x02t.", st), "needs a MARK");

  Pickle epoch;
  epoch.proto().op('}').str("epoch").integer(3).op('s').op('.');
  EXPECT_LOAD_ERROR(write_checkpoint("epoch", epoch.bytes, {}), "entry 'epoch' is a int, not a tensor");
  Pickle list;
  list.proto().op(']').op('.');
  EXPECT_LOAD_ERROR(write_checkpoint("list", list.bytes, {}), "holds a list, not a state_dict");
}

TEST(TorchCheckpoint, SurvivesDeepNestingAndCycles) {
  // 1M lists nested inside each other, then a list that contains itself.
  Pickle deep;
  deep.proto();
  const int depth = 1'000'000;
  for (int i = 0; i < depth; ++i) deep.op(']');
  for (int i = 1; i < depth; ++i) deep.op('a');
  deep.op('.');
  EXPECT_LOAD_ERROR(write_checkpoint("deep", deep.bytes, {}, true), "holds a list, not a state_dict");
  Pickle cycle;
  cycle.proto().op(']').op('q').op(0).op('h').op(0).op('a').op('.');
  EXPECT_LOAD_ERROR(write_checkpoint("cycle", cycle.bytes, {}), "holds a list");
}

TEST(TorchCheckpoint, RejectsLegacyAndBrokenArchives) {
  const std::string dir = test::temp_dir("torch_ckpt_files");
  {
    // torch's legacy format: a bare pickle stream starting with the magic number.
    std::ofstream(dir + "/legacy.pth", std::ios::binary)
        << std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15);
  }
  EXPECT_EQ(load_error(dir + "/legacy.pth"),
            dir + "/legacy.pth: legacy (non-zip) PyTorch checkpoint format is not supported; re-save "
                  "with torch.save(..., _use_new_zipfile_serialization=True)");
  { std::ofstream(dir + "/text.pth") << "hello"; }
  EXPECT_LOAD_ERROR(dir + "/text.pth", "not a readable PyTorch zip checkpoint");
  EXPECT_LOAD_ERROR(dir + "/absent.pth", "not a readable PyTorch zip checkpoint");

  const std::string good = write_checkpoint("cut", one_tensor(4, 0, {4}, {1}), {{"0", bytes_of<float>({1, 2, 3, 4})}});
  std::string bytes;
  {
    std::ifstream in(good, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  { std::ofstream(dir + "/cut.pth", std::ios::binary) << bytes.substr(0, bytes.size() - 30); }
  EXPECT_LOAD_ERROR(dir + "/cut.pth", "not a readable PyTorch zip checkpoint");

  EXPECT_LOAD_ERROR(write_archive("no_pkl", {{"archive/version", "3\n"}}), "no '<name>/data.pkl'");
  // Member names that would climb out of a folder are refused, wherever they are.
  const std::string pkl = one_tensor(4, 0, {4}, {1});
  EXPECT_LOAD_ERROR(write_archive("dotdot", {{"../archive/data.pkl", pkl}}), "not a plain relative path");
  EXPECT_LOAD_ERROR(write_archive("inner_dotdot", {{"archive/data.pkl", pkl}, {"archive/data/../../x", "1"}}),
                    "'archive/data/../../x' is not a plain relative path");
  EXPECT_LOAD_ERROR(write_archive("absolute", {{"archive/data.pkl", pkl}, {"/tmp/x", "1"}}), "not a plain relative path");
  EXPECT_LOAD_ERROR(write_archive("big_endian", {{"archive/data.pkl", one_tensor(4, 0, {4}, {1})},
                                                 {"archive/byteorder", "big"}}),
                    "byteorder 'big' is not supported");
}

TEST(TorchCheckpoint, ReadsGoldenRaftLarge) {
  const auto sd = load_torch_checkpoint(test::golden_path("tiny/raft/raft_large.pth"));
  ASSERT_EQ(sd.size(), 169u);
  int64_t params = 0, running = 0, tracked = 0;
  for (const auto& [key, t] : sd) {
    if (key.find("running_") != std::string::npos) running += t.numel();
    else if (key.find("num_batches_tracked") != std::string::npos) tracked += t.numel();
    else params += t.numel();
  }
  EXPECT_EQ(params, 5257536);  // tiny/init_log.json counts.raft
  EXPECT_EQ(running, 2880);
  EXPECT_EQ(tracked, 15);

  // Sums and end values computed independently with Python's pickle + struct.
  auto check = [&](const std::string& key, const Shape& shape, double sum, float first, float last) {
    SCOPED_TRACE(key);
    ASSERT_TRUE(sd.count(key));
    const Tensor& t = sd.at(key);
    EXPECT_EQ(t.shape(), shape);
    double s = 0;
    for (int64_t i = 0; i < t.numel(); ++i) s += t[i];
    EXPECT_NEAR(s, sum, 1e-9 * t.numel());
    EXPECT_EQ(t[0], first);
    EXPECT_EQ(t[t.numel() - 1], last);
  };
  check("feature_encoder.convnormrelu.0.weight", {64, 3, 7, 7}, 1.145159640995189,
        0.024906009435653687f, -0.0014023568946868181f);
  check("update_block.motion_encoder.convcorr1.0.weight", {256, 324, 1, 1}, -11.780790062677397,
        -0.014799720607697964f, -0.006895330268889666f);
  check("context_encoder.convnormrelu.1.running_var", {64}, 62.13972055912018,
        0.7277021408081055f, 0.5212860703468323f);
  check("context_encoder.convnormrelu.1.num_batches_tracked", {}, 0, 0, 0);
}

}  // namespace
}  // namespace sdvsr
