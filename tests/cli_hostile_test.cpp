// Hostile and broken inputs given to the real sdvsr program. Every refusal
// must end the run with exit 1 (2 only for a bad command line), ONE line on
// stderr that names the offending file and the problem, no crash, no
// half-written or temporary file, and nothing already written lost. A control
// run with the same setup must still succeed.
//
// Models are the golden tiny model linked file by file into a temporary folder
// (so one file can be replaced); frames are small generated PNGs.
#include <gtest/gtest.h>
#include <png.h>
#include <zip.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli_helpers.h"
#include "media/image_io.h"
#include "run_program.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace sdvsr {
namespace {

const std::string kSdvsr = test::program_path("sdvsr");

// ---------------------------------------------------------------------------
// Running a command (sdvsr itself, or sdvsr under prlimit/setpriv/unshare).

// A command's exit, signal and output (test::run_command: argv[0] looked up on PATH).
using Outcome = test::ProgramResult;
using test::read_file_bytes;
using test::run_command;

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  ASSERT_TRUE(out.good()) << path;
}

// True when `args` runs and exits 0 (probing for setpriv/unshare/prlimit).
bool command_works(const std::vector<std::string>& args) {
  return run_command(args).exit_code == 0;
}

// sdvsr on `in` into `out` with the tiny model at `model`: 1 step, 1 thread.
std::vector<std::string> sdvsr_args(const std::string& model, const std::string& in,
                                    const std::string& out, std::vector<std::string> extra = {"-q"}) {
  std::vector<std::string> a{kSdvsr, "--model_id", model, "-i", in, "-o", out, "--seed", "7",
                             "--threads", "1", "--num_inference_steps", "1"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

Outcome run_sdvsr(const std::string& model, const std::string& in, const std::string& out,
                  std::vector<std::string> extra = {"-q"}) {
  return run_command(sdvsr_args(model, in, out, std::move(extra)));
}

// Exit `code` by exit() (not a signal), exactly one line on stderr that starts
// "sdvsr: " and contains each of `needles` (the file, the problem).
::testing::AssertionResult RefusedInOneLine(const Outcome& r, const std::vector<std::string>& needles,
                                            int code = 1) {
  if (r.signalled) return ::testing::AssertionFailure() << "killed by a signal (" << r.exit_code << "): " << r.err;
  if (r.exit_code != code)
    return ::testing::AssertionFailure() << "exit " << r.exit_code << " (want " << code << "): " << r.err;
  if (test::line_count(r.err) != 1 || r.err.rfind("sdvsr: ", 0) != 0)
    return ::testing::AssertionFailure() << "stderr is not one 'sdvsr: ' line:\n" << r.err;
  for (const std::string& n : needles)
    if (r.err.find(n) == std::string::npos)
      return ::testing::AssertionFailure() << "stderr lacks '" << n << "': " << r.err;
  // SDVSR_HOSTILE_VERBOSE=1 shows every refusal (reviewing the messages).
  if (std::getenv("SDVSR_HOSTILE_VERBOSE")) std::fprintf(stderr, "  refused: %s", r.err.c_str());
  return ::testing::AssertionSuccess() << r.err;
}

// Every regular file under `dir` (recursively), relative names.
std::vector<std::string> files_under(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec))
    if (!e.is_directory()) out.push_back(fs::relative(e.path(), dir).string());
  std::sort(out.begin(), out.end());
  return out;
}

// Temporary files (atomic writes use "<name>.tmp-<pid>" / "<name>.tmp.<pid>").
std::vector<std::string> temp_files_under(const std::string& dir) {
  std::vector<std::string> out;
  for (const std::string& f : files_under(dir))
    if (f.find(".tmp") != std::string::npos) out.push_back(f);
  return out;
}

// ---------------------------------------------------------------------------
// A private copy of the tiny model: folders made, files symbolic links to the
// golden ones, so a test replaces just the file it breaks.

std::string model_copy(const std::string& tag) {
  const std::string dir = test::temp_dir("hostile-model-" + tag);
  const fs::path golden = test::golden_path("tiny");
  for (const auto& e : fs::directory_iterator(golden)) {
    const std::string name = e.path().filename().string();
    if (name == "cases") continue;
    if (e.is_directory()) {
      fs::create_directories(fs::path(dir) / name);
      for (const auto& f : fs::directory_iterator(e.path()))
        fs::create_symlink(f.path(), fs::path(dir) / name / f.path().filename());
    } else {
      fs::create_symlink(e.path(), fs::path(dir) / name);
    }
  }
  return dir;
}

// Replaces the link `path` (or file) with a regular file holding `bytes`.
void put(const std::string& path, const std::string& bytes) {
  fs::remove(path);
  spit(path, bytes);
}

// --- safetensors ------------------------------------------------------------

struct StTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};
using StTensors = std::map<std::string, StTensor>;

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

std::string st_file(const json& header, const std::string& data) {
  const std::string text = header.dump();
  return le64(text.size()) + text + data;
}

StTensors read_st(const std::string& path) {
  const std::string bytes = read_file_bytes(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  const json header = json::parse(bytes.substr(8, n));
  StTensors out;
  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") continue;
    const uint64_t b = v["data_offsets"][0], e = v["data_offsets"][1];
    out[name] = {v["dtype"], v["shape"].get<std::vector<int64_t>>(), bytes.substr(8 + n + b, e - b)};
  }
  return out;
}

// A valid file: tensors packed contiguously in name order.
std::string st_pack(const StTensors& tensors) {
  json header = json::object();
  std::string data;
  for (const auto& [name, t] : tensors) {
    header[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  return st_file(header, data);
}

json st_entry(const std::string& dtype, const json& shape, uint64_t begin, uint64_t end) {
  return {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {begin, end}}};
}

// --- PyTorch zip checkpoints --------------------------------------------------

// Pickle opcodes, protocol 2 (as torch.save writes them).
struct Pickle {
  std::string bytes;
  Pickle& op(char c) {
    bytes.push_back(c);
    return *this;
  }
  Pickle& proto() { return op('\x80').op('\x02'); }
  Pickle& str(const std::string& s) {
    op('X');
    bytes += le64(s.size()).substr(0, 4);
    bytes += s;
    return *this;
  }
  Pickle& global(const std::string& module, const std::string& name) {
    op('c');
    bytes += module + "\n" + name + "\n";
    return *this;
  }
  Pickle& small_int(int v) { return op('K').op(static_cast<char>(v)); }
  // {'w': FloatStorage '0' of 4 floats viewed as [4]}
  static std::string one_tensor_state_dict() {
    Pickle p;
    p.proto().op('}').str("w");
    p.global("torch._utils", "_rebuild_tensor_v2").op('(');
    p.op('(').str("storage").global("torch", "FloatStorage").str("0").str("cpu").small_int(4).op('t').op('Q');
    p.small_int(0).op('(').small_int(4).op('t').op('(').small_int(1).op('t').op('\x89');
    p.global("collections", "OrderedDict").op(')').op('R').op('t').op('R');
    p.op('s').op('.');
    return p.bytes;
  }
};

void write_zip(const std::string& path, const std::map<std::string, std::string>& members) {
  fs::remove(path);
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  ASSERT_NE(z, nullptr);
  for (const auto& [member, content] : members) {
    zip_source_t* src = zip_source_buffer(z, content.data(), content.size(), 0);
    const zip_int64_t idx = zip_file_add(z, member.c_str(), src, ZIP_FL_OVERWRITE | ZIP_FL_ENC_UTF_8);
    ASSERT_GE(idx, 0) << member;
    zip_set_file_compression(z, static_cast<zip_uint64_t>(idx), ZIP_CM_STORE, 0);
  }
  ASSERT_EQ(zip_close(z), 0);
}

std::string random_bytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

// ---------------------------------------------------------------------------
// Model battery: each case breaks one file of a private model copy; the run
// must refuse it before reading a frame or writing anything.

class CliHostile : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::temp_dir("cli-hostile"));
    test::write_pattern_frames(frames(), 2, 32, 32);
    // The control run: the same frames and golden model, to succeed (and the
    // reference for the runs that stop part way).
    const Outcome r = run_sdvsr(golden_model(), frames(), *dir_ + "/control");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_EQ(r.err, "");
  }
  static std::string frames() { return *dir_ + "/in/clip"; }
  static std::string golden_model() { return test::golden_path("tiny"); }

  // Runs the folder of frames with `model`; the model must be refused naming
  // `file` (and `problem`), and no output appears.
  static void expect_model_refused(const std::string& model, const std::string& file,
                                   const std::string& problem, const std::string& tag) {
    const std::string out = *dir_ + "/out-" + tag;
    const Outcome r = run_sdvsr(model, frames(), out);
    EXPECT_TRUE(RefusedInOneLine(r, {file, problem}));
    EXPECT_EQ(files_under(out), std::vector<std::string>{});
  }

  static std::string* dir_;
};
std::string* CliHostile::dir_ = nullptr;

TEST_F(CliHostile, SafetensorsStructureIsChecked) {
  const std::string model = model_copy("st");
  const std::string file = model + "/vae/diffusion_pytorch_model.safetensors";
  const std::string good = read_file_bytes(golden_model() + "/vae/diffusion_pytorch_model.safetensors");
  const std::string f8(8, '\0');
  struct Case {
    std::string tag, bytes, problem;
  };
  const std::vector<Case> cases = {
      {"truncated", good.substr(0, good.size() / 2), "outside the"},
      {"tiny", good.substr(0, 5), "too short"},
      {"header-absurd", le64(uint64_t{1} << 62) + "{}", "header length 4611686018427387904"},
      {"header-beyond-file", le64(good.size()) + good.substr(8), "runs past the end"},
      {"header-not-json", le64(16) + "this is not json" + f8, "not valid JSON"},
      {"offsets-outside", st_file({{"t", st_entry("F32", {4}, 0, 16)}}, f8), "outside the 8-byte data section"},
      {"hole", st_file({{"a", st_entry("F32", {1}, 0, 4)}, {"b", st_entry("F32", {1}, 8, 12)}}, f8 + "1234"),
       "belong to no tensor"},
      {"trailing", st_file({{"a", st_entry("F32", {1}, 0, 4)}}, f8), "tensors cover 4"},
      {"overlap", st_file({{"a", st_entry("F32", {2}, 0, 8)}, {"b", st_entry("F32", {2}, 4, 12)}}, f8 + "1234"),
       "overlap"},
      {"dtype-size", st_file({{"a", st_entry("F16", {4}, 0, 16)}}, f8 + f8), "needs 8"},
      {"shape-size", st_file({{"a", st_entry("F32", {3}, 0, 8)}}, f8), "needs 12"},
      {"shape-overflow", st_file({{"a", st_entry("F32", {uint64_t{1} << 32, uint64_t{1} << 32}, 0, 0)}}, ""),
       "too large"},
      {"random", random_bytes(4096, 1), "header length"},
      {"empty", "", "too short"},
  };
  for (const auto& [tag, bytes, problem] : cases) {
    SCOPED_TRACE(tag);
    put(file, bytes);
    expect_model_refused(model, file, problem, "st-" + tag);
  }
}

TEST_F(CliHostile, SafetensorsThatDoNotFitTheModelNameTheTensor) {
  const std::string model = model_copy("fit");
  const std::string file = model + "/unet/diffusion_pytorch_model.safetensors";
  const StTensors good = read_st(golden_model() + "/unet/diffusion_pytorch_model.safetensors");
  ASSERT_TRUE(good.count("conv_in.weight"));
  ASSERT_TRUE(good.count("conv_out.bias"));
  {
    StTensors t = good;  // same bytes, flattened shape
    t["conv_in.weight"].shape = {static_cast<int64_t>(t["conv_in.weight"].bytes.size() / 4)};
    put(file, st_pack(t));
    expect_model_refused(model, file, "conv_in.weight", "wrong-shape");
  }
  {
    StTensors t = good;
    t.erase("conv_out.bias");
    put(file, st_pack(t));
    expect_model_refused(model, file, "conv_out.bias", "missing");
  }
  {
    StTensors t = good;
    // A newline in the name must not break the error into two lines.
    t["extra.unexpected\nweight"] = {"F32", {2}, std::string(8, '\0')};
    put(file, st_pack(t));
    expect_model_refused(model, file, "extra.unexpected\\nweight", "unexpected");
  }
  {
    // Key order does not matter: the same tensors in reverse order load.
    json header = json::object();
    std::string data;
    for (auto it = good.rbegin(); it != good.rend(); ++it) {
      header[it->first] = st_entry(it->second.dtype, it->second.shape, data.size(), data.size() + it->second.bytes.size());
      data += it->second.bytes;
    }
    put(file, st_file(header, data));
    const std::string out = *dir_ + "/out-reordered";
    const Outcome r = run_sdvsr(model, frames(), out);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(fs::exists(out + "/clip/frame_0002.png"));
  }
}

TEST_F(CliHostile, PickleCheckpointsNeverRunCode) {
  const std::string model = model_copy("bin");
  fs::remove(model + "/unet/diffusion_pytorch_model.safetensors");
  const std::string bin = model + "/unet/diffusion_pytorch_model.bin";
  const std::string marker = *dir_ + "/pwned";
  Pickle evil;
  evil.proto().global("posix", "system").str("touch " + marker).op('\x85').op('R').op('.');
  write_zip(bin, {{"archive/data.pkl", evil.bytes}, {"archive/version", "3\n"}});
  expect_model_refused(model, bin, "posix.system", "pickle-system");
  EXPECT_FALSE(fs::exists(marker)) << "the pickle's command ran";

  // The same with the stack-based STACK_GLOBAL opcode and the builtins module.
  Pickle evil2;
  evil2.proto().str("builtins").str("exec").op('\x93').str("open('" + marker + "','w')").op('\x85').op('R').op('.');
  write_zip(bin, {{"archive/data.pkl", evil2.bytes}, {"archive/version", "3\n"}});
  expect_model_refused(model, bin, "builtins.exec", "pickle-exec");
  EXPECT_FALSE(fs::exists(marker));

  const std::string state_dict = Pickle::one_tensor_state_dict();
  const std::string four_floats = "CRC0CRC1CRC2CRC3";
  write_zip(bin, {{"../archive/data.pkl", state_dict}, {"../archive/data/0", four_floats}});
  expect_model_refused(model, bin, "..", "zip-dotdot");
  EXPECT_FALSE(fs::exists(model + "/archive")) << "an archive member was extracted";

  write_zip(bin, {{"archive/data.pkl", state_dict}, {"archive/version", "3\n"}});
  expect_model_refused(model, bin, "archive/data/0", "missing-record");

  write_zip(bin, {{"archive/data.pkl", state_dict}, {"archive/data/0", four_floats}});
  std::string bytes = read_file_bytes(bin);
  const size_t at = bytes.find(four_floats);
  ASSERT_NE(at, std::string::npos);
  bytes[at + 5] ^= 0x20;  // stored member: the CRC no longer matches
  put(bin, bytes);
  expect_model_refused(model, bin, "CRC", "crc");

  put(bin, random_bytes(4096, 2));
  expect_model_refused(model, bin, "not a readable PyTorch zip checkpoint", "bin-random");
  put(bin, "");
  expect_model_refused(model, bin, "not a readable PyTorch zip checkpoint", "bin-empty");
}

TEST_F(CliHostile, RaftCheckpointOfRandomBytes) {
  const std::string model = model_copy("raft");
  const std::string pth = model + "/raft/raft_large.pth";
  put(pth, random_bytes(1 << 16, 3));
  expect_model_refused(model, pth, "not a readable PyTorch zip checkpoint", "raft-random");
}

TEST_F(CliHostile, ConfigJsonIsChecked) {
  const std::string model = model_copy("cfg");
  const std::string unet = model + "/unet/config.json", vae = model + "/vae/config.json";
  const json unet_good = json::parse(read_file_bytes(golden_model() + "/unet/config.json"));
  const json vae_good = json::parse(read_file_bytes(golden_model() + "/vae/config.json"));
  auto with = [](json j, const std::string& key, const json& value) {
    j[key] = value;
    return j.dump();
  };
  put(unet, "{\"block_out_channels\": [16, 32");
  expect_model_refused(model, unet, "not valid JSON", "cfg-not-json");
  put(unet, "[1, 2, 3]");
  expect_model_refused(model, unet, "not a JSON object", "cfg-array");
  put(unet, with(unet_good, "layers_per_block", "two"));
  expect_model_refused(model, unet, "layers_per_block", "cfg-type");
  put(unet, with(unet_good, "block_out_channels", {16, 32, "wide", 48}));
  expect_model_refused(model, unet, "block_out_channels", "cfg-list-type");
  {
    json j = vae_good;
    j.erase("block_out_channels");
    j.erase("decoder_block_out_channels");
    put(unet, unet_good.dump());
    put(vae, j.dump());
    expect_model_refused(model, vae, "block_out_channels", "cfg-missing");
    put(vae, vae_good.dump());
  }
  // Absurd sizes are refused from the config and the weights' shapes, before
  // anything that large is allocated: under a 4 GiB address-space limit.
  const bool prlimit = command_works({"prlimit", "--as=4294967296", "true"});
  auto absurd = [&](const std::string& file, const std::string& text, const std::string& tag) {
    put(file, text);
    std::vector<std::string> args = sdvsr_args(model, frames(), *dir_ + "/out-" + tag);
    if (prlimit) args.insert(args.begin(), {"prlimit", "--as=4294967296", "--"});
    const Outcome r = run_command(args);
    EXPECT_TRUE(RefusedInOneLine(r, {}));
    EXPECT_NE(r.err.find(fs::path(file).parent_path().filename().string() + "/"), std::string::npos)
        << "error does not name the unet/vae file: " << r.err;
    EXPECT_EQ(files_under(*dir_ + "/out-" + tag), std::vector<std::string>{});
  };
  for (const json& channels : {json{1000000000, 32, 32, 48}, json{int64_t{1} << 62, 32, 32, 48},
                               json{-16, 32, 32, 48}, json::array()}) {
    SCOPED_TRACE(channels.dump());
    absurd(unet, with(unet_good, "block_out_channels", channels), "cfg-channels");
  }
  for (const auto& [key, value] : std::vector<std::pair<std::string, json>>{
           {"layers_per_block", 1000000000}, {"transformer_layers_per_block", -1},
           {"transformer_layers_per_block", 1000000000}, {"attention_head_dim", 0}, {"norm_num_groups", 0},
           {"norm_num_groups", 1000000000}, {"in_channels", int64_t{1} << 40}, {"conv_in_kernel", 1000001}}) {
    SCOPED_TRACE(key + "=" + value.dump());
    absurd(unet, with(unet_good, key, value), "cfg-" + key);
  }
  put(unet, unet_good.dump());
  for (const auto& [key, value] : std::vector<std::pair<std::string, json>>{
           {"block_out_channels", json{16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
                                       16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16}},
           {"block_out_channels", json::array()},
           {"decoder_block_out_channels", json{1000000000, 16, 16}},
           {"num_decoder_blocks", json{1000000000, 3, 1}},
           {"upsampling_scaling_factor", 1000000}}) {
    SCOPED_TRACE(key + "=" + value.dump());
    absurd(vae, with(vae_good, key, value), "cfg-vae-" + key);
  }
}


// ---------------------------------------------------------------------------
// Frames.

uint32_t crc32_of(const std::string& bytes) {
  uint32_t c = 0xffffffffu;
  for (unsigned char b : bytes) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

// A PNG that claims `w` x `h` 16-bit RGBA and ends after an empty IDAT chunk
// (all CRCs right): the reader gets as far as sizing the image.
std::string png_header_only(uint32_t w, uint32_t h) {
  const std::string ihdr = "IHDR" + be32(w) + be32(h) + std::string("\x10\x06\x00\x00\x00", 5);
  return std::string("\x89PNG\r\n\x1a\n", 8) + be32(13) + ihdr + be32(crc32_of(ihdr)) + be32(0) + "IDAT" +
         be32(crc32_of("IDAT"));
}

// A 32x32 PNG of `color_type` and `depth` (8 or 16) with the pattern's colours.
void write_typed_png(const std::string& path, int color_type, int depth) {
  const int w = 32, h = 32;
  const Image src = test::pattern_frame(w, h, 0);
  const int channels = color_type == PNG_COLOR_TYPE_GRAY ? 1 : color_type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
                       : color_type == PNG_COLOR_TYPE_RGB ? 3 : 4;
  std::vector<std::vector<uint8_t>> rows(h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < channels; ++c) {
        const uint8_t* p = &src.rgb[(static_cast<size_t>(y) * w + x) * 3];
        const uint8_t v = c < 3 && channels >= 3 ? p[c] : c == 0 || channels == 3 ? p[1] : static_cast<uint8_t>(x * 8);
        rows[y].push_back(v);
        if (depth == 16) rows[y].push_back(static_cast<uint8_t>(y * 7));
      }
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  ASSERT_EQ(setjmp(png_jmpbuf(png)), 0);
  png_init_io(png, f);
  png_set_IHDR(png, info, w, h, depth, color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  std::vector<png_bytep> ptrs;
  for (auto& r : rows) ptrs.push_back(r.data());
  png_write_image(png, ptrs.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(f);
}

TEST_F(CliHostile, BrokenFirstFrameIsNamed) {
  const std::string good = read_file_bytes(frames() + "/frame_0001.png");
  std::string corrupt = good;
  for (size_t i = corrupt.size() / 2; i < corrupt.size() / 2 + 16; ++i) corrupt[i] ^= 0x5a;
  struct Case {
    std::string tag, bytes, problem;
  };
  const std::vector<Case> cases = {
      {"zero-byte", "", "not a PNG or JPEG file"},
      {"text", "this is a text file, not an image\n", "not a PNG or JPEG file"},
      {"truncated", good.substr(0, good.size() / 2), "truncated or corrupt PNG"},
      {"corrupt", corrupt, "truncated or corrupt PNG"},
      {"signature-only", good.substr(0, 8), "truncated or corrupt PNG"},
      {"huge-header", png_header_only(26000, 26000), "truncated or corrupt PNG"},
      {"zero-size-header", png_header_only(0, 0), "truncated or corrupt PNG"},
  };
  const bool prlimit = command_works({"prlimit", "--as=8589934592", "true"});
  for (const auto& [tag, bytes, problem] : cases) {
    SCOPED_TRACE(tag);
    const std::string seq = *dir_ + "/bad-" + tag;
    fs::create_directories(seq);
    spit(seq + "/frame_0001.png", bytes);
    fs::copy_file(frames() + "/frame_0002.png", seq + "/frame_0002.png");
    const std::string out = *dir_ + "/out-bad-" + tag;
    // The address-space limit turns an allocation sized by the header into a failure.
    std::vector<std::string> args = sdvsr_args(golden_model(), seq, out);
    if (prlimit) args.insert(args.begin(), {"prlimit", "--as=8589934592", "--"});
    const Outcome r = run_command(args);
    EXPECT_TRUE(RefusedInOneLine(r, {seq + "/frame_0001.png", problem}));
    EXPECT_EQ(files_under(out), std::vector<std::string>{});
  }
}

// A bad frame after good ones: the earlier outputs are written and kept, and
// nothing half-written is left.
TEST_F(CliHostile, CorruptLaterFrameKeepsEarlierOutputs) {
  const std::string seq = *dir_ + "/later/clip", out = *dir_ + "/out-later";
  fs::create_directories(seq);
  fs::copy_file(frames() + "/frame_0001.png", seq + "/frame_0001.png");
  std::string bad = read_file_bytes(frames() + "/frame_0002.png");
  bad.resize(bad.size() - 40);
  spit(seq + "/frame_0002.png", bad);
  const Outcome r = run_sdvsr(golden_model(), seq, out);
  EXPECT_TRUE(RefusedInOneLine(r, {seq + "/frame_0002.png"}));
  ASSERT_TRUE(fs::exists(out + "/clip/frame_0001.png"));
  EXPECT_EQ(read_image(out + "/clip/frame_0001.png").rgb, read_image(*dir_ + "/control/clip/frame_0001.png").rgb);
  EXPECT_EQ(temp_files_under(out), std::vector<std::string>{});
  EXPECT_FALSE(fs::exists(out + "/clip/frame_0002.png"));
  EXPECT_TRUE(fs::exists(out + "/clip/.sdvsr-state"));  // --resume continues once the file is fixed
}

// Policy: every frame of a sequence has the first frame's size; a frame of
// another size stops the run naming it, after the frames before it were written.
TEST_F(CliHostile, FrameOfAnotherSizeIsNamedAfterEarlierFramesAreKept) {
  const std::string seq = *dir_ + "/sizes/clip", out = *dir_ + "/out-sizes";
  fs::create_directories(seq);
  fs::copy_file(frames() + "/frame_0001.png", seq + "/frame_0001.png");
  write_png(seq + "/frame_0002.png", test::pattern_frame(48, 32, 1));
  const Outcome r = run_sdvsr(golden_model(), seq, out);
  EXPECT_TRUE(RefusedInOneLine(r, {seq + "/frame_0002.png", "48x32", "size"}));
  ASSERT_TRUE(fs::exists(out + "/clip/frame_0001.png"));
  EXPECT_EQ(read_image(out + "/clip/frame_0001.png").rgb, read_image(*dir_ + "/control/clip/frame_0001.png").rgb);
  EXPECT_FALSE(fs::exists(out + "/clip/frame_0002.png"));
  EXPECT_EQ(temp_files_under(out), std::vector<std::string>{});
  EXPECT_TRUE(fs::exists(out + "/clip/.sdvsr-state"));
}

// Running out of memory mid-run (here: a 2 GiB address-space limit and a
// 640x640 frame, whose 2560x2560 output needs more) names the frame and the
// size in one line instead of the library's terse message; the sequence
// finished before it is kept.
TEST_F(CliHostile, OutOfMemoryNamesTheFrameAndKeepsEarlierSequences) {
  if (!command_works({"prlimit", "--as=2147483648", "true"}))
    GTEST_SKIP() << "prlimit cannot set an address-space limit here";
  const std::string in = *dir_ + "/oom", out = *dir_ + "/out-oom";
  fs::create_directories(in + "/a_small");
  fs::create_directories(in + "/b_large");
  fs::copy_file(frames() + "/frame_0001.png", in + "/a_small/frame_0001.png");
  write_png(in + "/b_large/frame_0001.png", test::pattern_frame(640, 640, 3));
  std::vector<std::string> args = sdvsr_args(golden_model(), in, out);
  args.insert(args.begin(), {"prlimit", "--as=2147483648", "--"});
  const Outcome r = run_command(args);
  EXPECT_TRUE(RefusedInOneLine(r, {"b_large/frame_0001.png", "out of memory upscaling 640x640 to 2560x2560"}));
  ASSERT_TRUE(fs::exists(out + "/oom/a_small/frame_0001.png"));
  EXPECT_EQ(read_image(out + "/oom/a_small/frame_0001.png").rgb,
            read_image(*dir_ + "/control/clip/frame_0001.png").rgb);
  EXPECT_FALSE(fs::exists(out + "/oom/b_large/frame_0001.png"));
  EXPECT_EQ(temp_files_under(out), std::vector<std::string>{});
}

// Gray, 16-bit and alpha PNGs are read (as Pillow's convert('RGB')); dropping
// the alpha channel is said once per sequence, naming the first such frame.
TEST_F(CliHostile, GraySixteenBitAndAlphaFramesAreRead) {
  const std::string seq = *dir_ + "/kinds/clip", out = *dir_ + "/out-kinds";
  fs::create_directories(seq);
  write_typed_png(seq + "/frame_0001.png", PNG_COLOR_TYPE_GRAY, 8);
  write_typed_png(seq + "/frame_0002.png", PNG_COLOR_TYPE_RGB, 16);
  write_typed_png(seq + "/frame_0003.png", PNG_COLOR_TYPE_RGB_ALPHA, 8);
  write_typed_png(seq + "/frame_0004.png", PNG_COLOR_TYPE_GRAY_ALPHA, 16);
  const Outcome r = run_sdvsr(golden_model(), seq, out, {"--log", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* f : {"frame_0001.png", "frame_0002.png", "frame_0003.png", "frame_0004.png"}) {
    const Image im = read_image(out + "/clip/" + f);
    EXPECT_EQ(im.width, 128) << f;
    EXPECT_EQ(im.height, 128) << f;
  }
  int warnings = 0;
  std::istringstream lines(r.err);
  for (std::string line; std::getline(lines, line);) {
    const json j = json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("warning")) continue;
    ++warnings;
    const std::string text = j["warning"];
    EXPECT_NE(text.find(seq + "/frame_0003.png"), std::string::npos) << text;
    EXPECT_NE(text.find("transparency dropped"), std::string::npos) << text;
  }
  EXPECT_EQ(warnings, 1) << r.err;
}

TEST_F(CliHostile, EmptyFolderAndMissingPathAreNamed) {
  const std::string empty = *dir_ + "/empty-seq";
  fs::create_directories(empty + "/seq");
  EXPECT_TRUE(RefusedInOneLine(run_sdvsr(golden_model(), empty, *dir_ + "/out-empty"), {empty}));
  fs::create_directories(*dir_ + "/empty-flat");
  EXPECT_TRUE(RefusedInOneLine(run_sdvsr(golden_model(), *dir_ + "/empty-flat", *dir_ + "/out-empty"),
                               {*dir_ + "/empty-flat"}));
  EXPECT_TRUE(RefusedInOneLine(run_sdvsr(golden_model(), *dir_ + "/no/such/input", *dir_ + "/out-empty"),
                               {*dir_ + "/no/such/input"}));
  EXPECT_FALSE(fs::exists(*dir_ + "/out-empty"));
  // A bad command line is exit 2.
  EXPECT_TRUE(RefusedInOneLine(run_command({kSdvsr, "--num_inference_steps", "many"}), {"many"}, 2));
}

// ---------------------------------------------------------------------------
// Videos.

// A WAV file: a container with one audio stream and no video.
std::string wav_file() {
  const uint32_t rate = 8000, samples = 800;
  std::string data;
  for (uint32_t i = 0; i < samples; ++i) data += std::string{static_cast<char>(i & 0xff), static_cast<char>(0)};
  auto le32 = [](uint32_t v) { return le64(v).substr(0, 4); };
  auto le16 = [](uint16_t v) { return le64(v).substr(0, 2); };
  return "RIFF" + le32(36 + data.size()) + "WAVEfmt " + le32(16) + le16(1) + le16(1) + le32(rate) +
         le32(rate * 2) + le16(2) + le16(16) + "data" + le32(data.size()) + data;
}

TEST_F(CliHostile, BrokenVideosAreNamed) {
  const std::string dir = *dir_ + "/videos";
  fs::create_directories(dir);
  struct Case {
    std::string name, bytes, problem;
  };
  const std::vector<Case> cases = {
      {"random.mkv", random_bytes(8192, 4), "cannot open as a video"},
      {"zero.mp4", "", "empty file"},
      {"audio.wav", wav_file(), "no video stream"},
      {"audio-named.mkv", wav_file(), "no video stream"},
      {"text.mp4", "not a video\n", "cannot open as a video"},
  };
  for (const auto& [name, bytes, problem] : cases) {
    SCOPED_TRACE(name);
    spit(dir + "/" + name, bytes);
    const std::string out = dir + "/up-" + name + ".mkv";
    const Outcome r = run_sdvsr(golden_model(), dir + "/" + name, out);
    EXPECT_TRUE(RefusedInOneLine(r, {dir + "/" + name, problem}));
    EXPECT_FALSE(fs::exists(out));
    EXPECT_EQ(temp_files_under(dir), std::vector<std::string>{});
  }
}

// ---------------------------------------------------------------------------
// Outputs.

TEST_F(CliHostile, ControlRunSucceeds) {
  const std::string out = *dir_ + "/control";
  ASSERT_TRUE(fs::exists(out + "/clip/frame_0002.png"));
  EXPECT_EQ(files_under(out), (std::vector<std::string>{"clip/frame_0001.png", "clip/frame_0002.png"}));
  EXPECT_EQ(read_image(out + "/clip/frame_0002.png").width, 128);
}

TEST_F(CliHostile, OutputPathThatIsAFileIsRefused) {
  const std::string file = *dir_ + "/out-is-a-file";
  spit(file, "keep me");
  const Outcome r = run_sdvsr(golden_model(), frames(), file);
  EXPECT_TRUE(RefusedInOneLine(r, {file}));
  EXPECT_EQ(read_file_bytes(file), "keep me");
}

// Tests run as root, who may write anywhere: the folder is made unwritable for
// real by running sdvsr as nobody, or inside a read-only bind mount.
TEST_F(CliHostile, UnwritableOutputFolderAsNobody) {
  if (geteuid() != 0) GTEST_SKIP() << "not root: setpriv cannot switch to nobody";
  const std::vector<std::string> setpriv{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
  std::vector<std::string> probe = setpriv;
  probe.push_back("true");
  if (!command_works(probe)) GTEST_SKIP() << "setpriv is missing or not permitted here";
  probe.back() = "test";
  probe.insert(probe.end(), {"-r", frames() + "/frame_0001.png", "-a", "-r", golden_model() + "/unet/config.json",
                             "-a", "-x", kSdvsr});
  if (!command_works(probe)) GTEST_SKIP() << "nobody cannot read the frames, the model or sdvsr (TMPDIR mode?)";
  const std::string root_owned = *dir_ + "/root-owned";
  fs::create_directories(root_owned);
  fs::permissions(root_owned, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec);
  std::vector<std::string> args = setpriv;
  const std::vector<std::string> s = sdvsr_args(golden_model(), frames(), root_owned + "/out");
  args.insert(args.end(), s.begin(), s.end());
  const Outcome r = run_command(args);
  EXPECT_TRUE(RefusedInOneLine(r, {root_owned + "/out", "ermission denied"}));
  EXPECT_EQ(files_under(root_owned), std::vector<std::string>{});
}

TEST_F(CliHostile, ReadOnlyOutputFolder) {
  const std::string ro = *dir_ + "/read-only";
  fs::create_directories(ro + "/out");
  const std::string bind = "mount --bind -o ro '" + ro + "' '" + ro + "'";
  if (!command_works({"unshare", "-m", "sh", "-c", bind + " 2>/dev/null"}))
    GTEST_SKIP() << "unshare -m with a read-only bind mount is missing or not permitted here";
  spit(ro + "/out/earlier.txt", "earlier output");
  std::string cmd = bind + " && exec";
  for (const std::string& a : sdvsr_args(golden_model(), frames(), ro + "/out")) cmd += " '" + a + "'";
  const Outcome r = run_command({"unshare", "-m", "sh", "-c", cmd});
  EXPECT_TRUE(RefusedInOneLine(r, {ro + "/out", "ead-only file system"}));
  EXPECT_EQ(files_under(ro), std::vector<std::string>{"out/earlier.txt"});
  EXPECT_EQ(read_file_bytes(ro + "/out/earlier.txt"), "earlier output");
}

// A full disk, simulated by a file-size limit (sdvsr ignores SIGXFSZ, so the
// write fails with EFBIG): the run stops naming the frame it could not write;
// the frame before it and the resume state saved before it stay intact; once
// the limit is lifted, --resume finishes bit-identically to the control run.
TEST_F(CliHostile, FullDiskStopsCleanlyAndResumeFinishes) {
  if (!command_works({"prlimit", "--fsize=4096", "true"})) GTEST_SKIP() << "prlimit is missing or not permitted here";
  const std::string out = *dir_ + "/out-full";
  {
    test::ScopedEnv stop("SDVSR_TEST_STOP_AFTER", "1");
    const Outcome first = run_sdvsr(golden_model(), frames(), out);
    ASSERT_EQ(first.exit_code, 130) << first.err;
  }
  const std::string state = out + "/clip/.sdvsr-state";
  ASSERT_TRUE(fs::exists(state));
  const std::string frame1 = read_file_bytes(out + "/clip/frame_0001.png"), state_bytes = read_file_bytes(state);

  std::vector<std::string> args = sdvsr_args(golden_model(), frames(), out, {"-q", "--resume"});
  args.insert(args.begin(), {"prlimit", "--fsize=4096", "--"});
  const Outcome full = run_command(args);
  EXPECT_TRUE(RefusedInOneLine(full, {out + "/clip/frame_0002.png", "File too large"}));
  EXPECT_EQ(read_file_bytes(out + "/clip/frame_0001.png"), frame1);
  EXPECT_EQ(read_file_bytes(state), state_bytes);
  EXPECT_FALSE(fs::exists(out + "/clip/frame_0002.png"));
  EXPECT_EQ(temp_files_under(out), std::vector<std::string>{});

  const Outcome resumed = run_sdvsr(golden_model(), frames(), out, {"-q", "--resume"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  for (const char* f : {"frame_0001.png", "frame_0002.png"})
    EXPECT_EQ(read_image(out + "/clip/" + f).rgb, read_image(*dir_ + "/control/clip/" + f).rgb) << f;
  EXPECT_EQ(files_under(out), (std::vector<std::string>{"clip/frame_0001.png", "clip/frame_0002.png"}));
}

}  // namespace
}  // namespace sdvsr
