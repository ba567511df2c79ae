// Hub and torch-hub downloads against a real HTTP server on 127.0.0.1.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>

#include "http_test_server.h"
#include "weights/hub_cache.h"
#include "weights/hub_download.h"
#include "weights/torch_hub.h"

namespace fs = std::filesystem;
using namespace sdvsr;
using sdvsr::test::FakeHub;
using sdvsr::test::HttpTestServer;

namespace {

const std::string kRepo = "TestOrg/Tiny-DiffVSR";
const std::string kCommit = "0123456789abcdef0123456789abcdef01234567";

// Sets (or unsets) an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_.c_str(), old_->c_str(), 1);
    else
      ::unsetenv(name_.c_str());
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

std::string bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_file(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << s;
}

size_t count_requests(const HttpTestServer& server, const std::string& method, const std::string& prefix) {
  size_t n = 0;
  for (const auto& r : server.requests())
    if (r.method == method && r.target.rfind(prefix, 0) == 0) ++n;
  return n;
}

class HubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("sdvsr_hub_test_" + std::to_string(::getpid()) + "_" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
    hub_.add("model_index.json", "{\"_class_name\": \"StreamDiffVSRPipeline\"}\n", false);
    hub_.add("README.md", "# tiny\n", false);
    hub_.add(".gitattributes", "*.safetensors filter=lfs\n", false);
    hub_.add("scheduler/scheduler_config.json", "{\"num_train_timesteps\": 1000}\n", false);
    for (const char* c : {"unet", "controlnet", "vae"}) {
      hub_.add(std::string(c) + "/config.json", std::string("{\"component\": \"") + c + "\"}\n", false);
      hub_.add(std::string(c) + "/diffusion_pytorch_model.safetensors", bytes(40000 + c[0], c[0]), true);
    }
    hub_.add("unet/diffusion_pytorch_model.bin", bytes(5000, 7), true);            // safetensors wins
    hub_.add("unet/diffusion_pytorch_model.fp16.safetensors", bytes(5000, 8), true);  // a variant
    hub_.add("text_encoder/config.json", "{\"hidden_size\": 32}\n", false);
    hub_.add("text_encoder/model.safetensors", bytes(30000, 9), true);
    hub_.add("tokenizer/vocab.json", "{\"a\": 0}\n", false);
    hub_.add("tokenizer/merges.txt", "#version: 0.2\n", false);
  }
  void TearDown() override {
    server_.stop();
    fs::remove_all(root_);
  }

  hub::FetchOptions options() {
    hub::FetchOptions o;
    o.endpoint = server_.url();
    o.cache_dir = (root_ / "hub").string();
    o.token = "unused";
    o.retry_delay_s = 0;
    o.connect_timeout_s = 5;
    o.stall_timeout_s = 10;
    o.warn = [this](const std::string& line) { warnings_.push_back(line); };
    return o;
  }
  fs::path storage() const { return root_ / "hub" / "models--TestOrg--Tiny-DiffVSR"; }
  fs::path snapshot() const { return storage() / "snapshots" / kCommit; }

  fs::path root_;
  ScopedEnv offline_{"HF_HUB_OFFLINE", nullptr};
  ScopedEnv offline2_{"TRANSFORMERS_OFFLINE", nullptr};
  FakeHub hub_{kRepo, kCommit};
  HttpTestServer server_{[this](const test::HttpRequest& r) { return hub_.handle(r); }};
  std::vector<std::string> warnings_;
};

}  // namespace

TEST(HubCacheLayout, CacheDirFollowsHuggingfaceHubPrecedence) {
  ScopedEnv a("HF_HUB_CACHE", "/tmp/x-hub-cache");
  ScopedEnv b("HUGGINGFACE_HUB_CACHE", nullptr);
  ScopedEnv c("HF_HOME", "/tmp/x-hf-home");
  ScopedEnv d("XDG_CACHE_HOME", "/tmp/x-xdg");
  ScopedEnv e("HOME", "/tmp/x-home");
  EXPECT_EQ(hub::hub_cache_dir(), "/tmp/x-hub-cache");
  {
    ScopedEnv no_cache("HF_HUB_CACHE", nullptr);
    EXPECT_EQ(hub::hub_cache_dir(), "/tmp/x-hf-home/hub");
    ScopedEnv no_home("HF_HOME", nullptr);
    EXPECT_EQ(hub::hub_cache_dir(), "/tmp/x-xdg/huggingface/hub");
    ScopedEnv no_xdg("XDG_CACHE_HOME", nullptr);
    EXPECT_EQ(hub::hub_cache_dir(), "/tmp/x-home/.cache/huggingface/hub");
    ScopedEnv tilde("HF_HOME", "~/hf");
    EXPECT_EQ(hub::hub_cache_dir(), "/tmp/x-home/hf/hub");
  }
}

TEST(HubCacheLayout, NamesAndChecks) {
  EXPECT_EQ(hub::repo_folder_name("Jamichsu/Stream-DiffVSR"), "models--Jamichsu--Stream-DiffVSR");
  EXPECT_EQ(hub::repo_folder_name("gpt2"), "models--gpt2");
  EXPECT_THROW(hub::repo_folder_name("../etc"), std::runtime_error);
  EXPECT_TRUE(hub::looks_like_repo_id("Jamichsu/Stream-DiffVSR"));
  EXPECT_FALSE(hub::looks_like_repo_id("a/b/c"));
  EXPECT_FALSE(hub::looks_like_repo_id("/tmp"));
  EXPECT_EQ(hub::normalize_etag("W/\"abc\""), "abc");
  EXPECT_EQ(hub::normalize_etag("\"abc\""), "abc");
  EXPECT_FALSE(hub::is_safe_repo_path("../x"));
  EXPECT_FALSE(hub::is_safe_repo_path("a/../../x"));
  EXPECT_TRUE(hub::is_safe_repo_path("unet/config.json"));
  EXPECT_FALSE(hub::is_safe_etag("../../x"));
  {
    ScopedEnv on("HF_HUB_OFFLINE", "yes");
    EXPECT_TRUE(hub::offline_from_env());
    ScopedEnv off("HF_HUB_OFFLINE", "0");
    EXPECT_FALSE(hub::offline_from_env());
  }
}

TEST(HubCacheLayout, BlobHashesAreGitSha1AndSha256) {
  const fs::path p = fs::temp_directory_path() / ("sdvsr_hub_blob_" + std::to_string(::getpid()));
  write_file(p, "hello\n");
  // `git hash-object` of "hello\n" and `sha256sum` of it.
  EXPECT_EQ(hub::file_git_sha1_hex(p.string()), "ce013625030ba8dba906f756967f9e9ca394464a");
  EXPECT_EQ(hub::file_sha256_hex(p.string()),
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
  EXPECT_EQ(hub::check_blob(p.string(), "ce013625030ba8dba906f756967f9e9ca394464a", 6), hub::BlobState::ok);
  EXPECT_EQ(hub::check_blob(p.string(), "ce013625030ba8dba906f756967f9e9ca394464a", 7),
            hub::BlobState::wrong_size);
  EXPECT_EQ(hub::check_blob(p.string(), std::string(64, 'a'), std::nullopt), hub::BlobState::wrong_hash);
  fs::remove(p);
}

TEST(HubSelection, TakesWhatThePipelineNeeds) {
  const std::vector<std::string> files = {
      "README.md", "model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.bin",
      "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
      "vae/config.json", "vae/diffusion_pytorch_model.bin", "scheduler/scheduler_config.json",
      "text_encoder/config.json", "text_encoder/model.safetensors", "tokenizer/vocab.json"};
  const auto with = hub::select_pipeline_files(files, true);
  const std::vector<std::string> expect_with = {
      "model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "vae/config.json",
      "vae/diffusion_pytorch_model.bin", "scheduler/scheduler_config.json", "text_encoder/config.json",
      "text_encoder/model.safetensors", "tokenizer/vocab.json"};
  EXPECT_EQ(with, expect_with);
  const auto without = hub::select_pipeline_files(files, false);
  EXPECT_EQ(without.size(), 6u);
  auto shipped = files;
  shipped.push_back("prompt_embeds.safetensors");
  const auto embeds = hub::select_pipeline_files(shipped, true);
  EXPECT_NE(std::find(embeds.begin(), embeds.end(), "prompt_embeds.safetensors"), embeds.end());
  EXPECT_EQ(std::find(embeds.begin(), embeds.end(), "text_encoder/model.safetensors"), embeds.end());
}

TEST_F(HubTest, DownloadsIntoTheHuggingfaceHubLayout) {
  const hub::FetchedModel m = hub::fetch_model_files(kRepo, options());
  EXPECT_EQ(m.snapshot_dir, snapshot().string());
  EXPECT_EQ(m.commit, kCommit);
  EXPECT_EQ(read_file(storage() / "refs" / "main"), kCommit);  // no newline, like huggingface_hub
  EXPECT_FALSE(m.text_encoder_skipped);
  EXPECT_EQ(m.text_encoder_sha256, hub_.etag_of("text_encoder/model.safetensors"));

  const std::vector<std::string> expected = {
      "model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
      "controlnet/config.json", "controlnet/diffusion_pytorch_model.safetensors", "vae/config.json",
      "vae/diffusion_pytorch_model.safetensors", "scheduler/scheduler_config.json", "text_encoder/config.json",
      "text_encoder/model.safetensors"};
  for (const std::string& f : expected) {
    SCOPED_TRACE(f);
    const fs::path pointer = snapshot() / f;
    ASSERT_TRUE(fs::is_symlink(pointer));
    const std::string depth = f.find('/') == std::string::npos ? "../../" : "../../../";
    EXPECT_EQ(fs::read_symlink(pointer).string(), depth + "blobs/" + hub_.etag_of(f));
    EXPECT_EQ(read_file(pointer), read_file(storage() / "blobs" / hub_.etag_of(f)));
  }
  EXPECT_EQ(hub_.etag_of("model_index.json").size(), 40u);
  EXPECT_EQ(hub_.etag_of("unet/diffusion_pytorch_model.safetensors").size(), 64u);
  EXPECT_TRUE(fs::exists(snapshot() / "tokenizer" / "vocab.json"));
  EXPECT_TRUE(fs::exists(snapshot() / "tokenizer" / "merges.txt"));
  for (const char* skipped : {"README.md", ".gitattributes", "unet/diffusion_pytorch_model.bin",
                              "unet/diffusion_pytorch_model.fp16.safetensors"})
    EXPECT_FALSE(fs::exists(fs::symlink_status(snapshot() / skipped))) << skipped;
  EXPECT_EQ(count_requests(server_, "HEAD", "/" + kRepo + "/resolve/" + kCommit + "/README.md"), 0u);
  EXPECT_EQ(count_requests(server_, "GET", "/api/models/" + kRepo + "/revision/main"), 1u);
  EXPECT_EQ(count_requests(server_, "GET", "/cdn/"), 4u);  // three components + text encoder
  for (const auto& r : server_.requests()) EXPECT_EQ(r.header("authorization"), "Bearer unused") << r.target;
  EXPECT_TRUE(warnings_.empty());
  // No leftovers of the download.
  for (const auto& e : fs::directory_iterator(storage() / "blobs"))
    EXPECT_EQ(e.path().extension(), "") << e.path();

  // Again: everything comes from the cache, nothing is downloaded.
  server_.clear_requests();
  EXPECT_EQ(hub::fetch_model(kRepo, options()), snapshot().string());
  EXPECT_EQ(count_requests(server_, "GET", "/cdn/"), 0u);
  EXPECT_EQ(count_requests(server_, "GET", "/" + kRepo + "/resolve/"), 0u);
}

TEST_F(HubTest, OfflineUsesTheCacheOnlyAndSaysWhatIsMissing) {
  {
    ScopedEnv offline("HF_HUB_OFFLINE", "1");
    try {
      hub::fetch_model(kRepo, options());
      FAIL() << "expected an error";
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(kRepo), std::string::npos) << msg;
      EXPECT_NE(msg.find("offline"), std::string::npos) << msg;
      EXPECT_NE(msg.find("--model_id"), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
  hub::fetch_model(kRepo, options());
  server_.clear_requests();
  hub::FetchOptions o = options();
  o.offline = true;
  const hub::FetchedModel m = hub::fetch_model_files(kRepo, o);
  EXPECT_EQ(m.snapshot_dir, snapshot().string());
  EXPECT_TRUE(m.from_cache_only);
  EXPECT_TRUE(server_.requests().empty());
  {
    ScopedEnv offline("HF_HUB_OFFLINE", "1");
    EXPECT_EQ(hub::fetch_model(kRepo, options()), snapshot().string());
    EXPECT_TRUE(server_.requests().empty());
  }
}

TEST_F(HubTest, UnreachableHubSaysHowToPassALocalFolder) {
  hub::FetchOptions o = options();
  server_.stop();  // nothing listens on the port any more
  try {
    hub::fetch_model(kRepo, o);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cannot reach the hub"), std::string::npos) << msg;
    EXPECT_NE(msg.find(o.endpoint), std::string::npos) << msg;
    EXPECT_NE(msg.find("--model_id /path"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

TEST_F(HubTest, UnreachableHubFallsBackToACachedSnapshot) {
  hub::fetch_model(kRepo, options());
  hub::FetchOptions o = options();
  server_.stop();
  EXPECT_EQ(hub::fetch_model(kRepo, o), snapshot().string());
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_NE(warnings_[0].find("cannot reach the hub"), std::string::npos);
}

TEST_F(HubTest, DroppedConnectionResumesWithRange) {
  const std::string file = "unet/diffusion_pytorch_model.safetensors";
  hub_.drop_next_gets(file, 12345, 2);
  hub::fetch_model(kRepo, options());
  const std::string etag = hub_.etag_of(file);
  EXPECT_EQ(hub::file_sha256_hex((snapshot() / file).string()), etag);
  std::vector<std::string> ranges;
  for (const auto& r : server_.requests())
    if (r.method == "GET" && r.target == "/cdn/" + etag) ranges.push_back(r.header("range"));
  ASSERT_EQ(ranges.size(), 3u);
  EXPECT_EQ(ranges[0], "");
  EXPECT_EQ(ranges[1], "bytes=12345-");
  EXPECT_EQ(ranges[2], "bytes=24690-");
  EXPECT_FALSE(fs::exists(storage() / "blobs" / (etag + ".incomplete")));
}

TEST_F(HubTest, LeftoverIncompleteFileIsContinued) {
  const std::string file = "vae/diffusion_pytorch_model.safetensors";
  const std::string etag = hub_.etag_of(file);
  fs::create_directories(storage() / "blobs");
  // What an interrupted run (ours or Python's) left behind.
  write_file(storage() / "blobs" / (etag + ".incomplete"), bytes(40000 + 'v', 'v').substr(0, 1000));
  hub::fetch_model(kRepo, options());
  bool resumed = false;
  for (const auto& r : server_.requests())
    if (r.target == "/cdn/" + etag) resumed = resumed || r.header("range") == "bytes=1000-";
  EXPECT_TRUE(resumed);
  EXPECT_EQ(hub::file_sha256_hex((snapshot() / file).string()), etag);
}

TEST_F(HubTest, WrongContentIsFetchedAgainThenRefused) {
  const std::string file = "controlnet/diffusion_pytorch_model.safetensors";
  hub_.corrupt_next_gets(file, 1);
  hub::fetch_model(kRepo, options());
  EXPECT_EQ(hub::file_sha256_hex((snapshot() / file).string()), hub_.etag_of(file));
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_NE(warnings_[0].find("sha256"), std::string::npos);

  fs::remove_all(root_ / "hub");
  hub_.corrupt_next_gets(file, 5);
  try {
    hub::fetch_model(kRepo, options());
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("sha256 " + hub_.etag_of(file)), std::string::npos) << msg;
    EXPECT_NE(msg.find(file), std::string::npos) << msg;
  }
  EXPECT_FALSE(fs::exists(storage() / "blobs" / hub_.etag_of(file)));
  EXPECT_FALSE(fs::exists(storage() / "blobs" / (hub_.etag_of(file) + ".incomplete")));
}

TEST_F(HubTest, DamagedCacheBlobsAreDetectedAndFetchedAgain) {
  hub::fetch_model(kRepo, options());
  const std::string lfs = "unet/diffusion_pytorch_model.safetensors";
  const std::string regular = "vae/config.json";
  const fs::path lfs_blob = storage() / "blobs" / hub_.etag_of(lfs);
  const fs::path regular_blob = storage() / "blobs" / hub_.etag_of(regular);
  std::string damaged = read_file(lfs_blob);
  damaged[100] ^= 1;  // same size, other content
  write_file(lfs_blob, damaged);
  write_file(regular_blob, "{");  // truncated
  server_.clear_requests();
  warnings_.clear();
  hub::fetch_model(kRepo, options());
  EXPECT_EQ(hub::file_sha256_hex((snapshot() / lfs).string()), hub_.etag_of(lfs));
  EXPECT_EQ(read_file(snapshot() / regular), "{\"component\": \"vae\"}\n");
  EXPECT_EQ(warnings_.size(), 2u);
  EXPECT_EQ(count_requests(server_, "GET", "/cdn/"), 1u);

  // Offline, a damaged blob is an error naming it.
  write_file(lfs_blob, "x");
  hub::FetchOptions o = options();
  o.offline = true;
  try {
    hub::fetch_model(kRepo, o);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(lfs_blob.string()), std::string::npos) << e.what();
  }
}

TEST_F(HubTest, SizeMismatchIsAnError) {
  const std::string file = "vae/diffusion_pytorch_model.safetensors";
  hub_.lie_about_size(file, 123);
  try {
    hub::fetch_model(kRepo, options());
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("expected 123"), std::string::npos) << msg;
    EXPECT_NE(msg.find("/cdn/" + hub_.etag_of(file)), std::string::npos) << msg;
  }
  EXPECT_FALSE(fs::exists(snapshot() / file));
}

TEST_F(HubTest, TokenIsSentAsBearer) {
  hub_.require_token("s3cret");
  hub::FetchOptions o = options();
  o.token = "wrong";
  try {
    hub::fetch_model(kRepo, o);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("HF_TOKEN"), std::string::npos) << e.what();
  }
  o.token.clear();
  ScopedEnv token("HF_TOKEN", "s3cret");
  EXPECT_EQ(hub::fetch_model(kRepo, o), snapshot().string());
}

TEST_F(HubTest, PromptEmbeddingsDecideTheTextEncoder) {
  hub::FetchOptions o = options();
  std::string asked;
  o.prompt_embeds_cached = [&](const std::string& sha) {
    asked = sha;
    return true;
  };
  const hub::FetchedModel m = hub::fetch_model_files(kRepo, o);
  EXPECT_EQ(asked, hub_.etag_of("text_encoder/model.safetensors"));
  EXPECT_TRUE(m.text_encoder_skipped);
  EXPECT_FALSE(fs::exists(snapshot() / "text_encoder"));
  EXPECT_FALSE(fs::exists(snapshot() / "tokenizer"));
  EXPECT_EQ(count_requests(server_, "GET", "/cdn/"), 3u);

  // A repository that ships the embeddings never asks.
  hub_.add("prompt_embeds.safetensors", bytes(2000, 3), true);
  fs::remove_all(root_ / "hub");
  asked = "not asked";
  const hub::FetchedModel shipped = hub::fetch_model_files(kRepo, o);
  EXPECT_EQ(asked, "not asked");
  EXPECT_TRUE(shipped.text_encoder_skipped);
  EXPECT_TRUE(fs::is_symlink(snapshot() / "prompt_embeds.safetensors"));
}

TEST_F(HubTest, RenamedRepositoryFollowsRelativeRedirects) {
  // Files of the old name answer with a relative redirect to the new name.
  const std::string old_id = "TestOrg/Old-Name";
  hub_.rename_repo(old_id);
  hub::FetchOptions o = options();
  o.revision = kCommit;
  const std::string dir = hub::fetch_model(old_id, o);
  const fs::path old_storage = root_ / "hub" / "models--TestOrg--Old-Name";
  EXPECT_EQ(dir, (old_storage / "snapshots" / kCommit).string());
  EXPECT_FALSE(fs::exists(old_storage / "refs"));  // a commit hash needs no ref
  EXPECT_EQ(read_file(fs::path(dir) / "vae" / "config.json"), "{\"component\": \"vae\"}\n");
  EXPECT_GT(count_requests(server_, "HEAD", "/" + old_id + "/resolve/"), 0u);
  EXPECT_GT(count_requests(server_, "HEAD", "/" + kRepo + "/resolve/"), 0u);
}

TEST_F(HubTest, HostileListingIsRefused) {
  hub_.add("../../escape.json", "{}", false);
  try {
    hub::fetch_model(kRepo, options());
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("../../escape.json"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(root_ / "escape.json"));
}

TEST_F(HubTest, RaftCheckpointGoesToTheTorchHubCache) {
  const std::string weights = bytes(20000, 42);
  const std::string prefix = test::sha256_hex_of(weights).substr(0, 8);
  const std::string name = "raft_large_test-" + prefix + ".pth";
  hub_.add_plain(name, weights);
  hub_.add_plain("raft_large_bad-00000000.pth", weights);
  EXPECT_EQ(hub::torch_hash_prefix("raft_large_C_T_SKHT_V2-ff5fadd5.pth"), "ff5fadd5");
  EXPECT_EQ(std::string(hub::kRaftUrl),
            "https://download.pytorch.org/models/raft_large_C_T_SKHT_V2-ff5fadd5.pth");

  ScopedEnv torch_home("TORCH_HOME", (root_ / "torch").c_str());
  ScopedEnv url("SDVSR_RAFT_URL", (server_.url() + "/files/" + name).c_str());
  hub_.drop_next_gets(name, 7000, 1);
  hub::TorchHubOptions o;
  o.retry_delay_s = 0;
  const std::string path = hub::fetch_raft(o);
  EXPECT_EQ(path, (root_ / "torch" / "hub" / "checkpoints" / name).string());
  EXPECT_EQ(read_file(path), weights);
  EXPECT_EQ(count_requests(server_, "GET", "/files/"), 2u);  // dropped once, resumed

  // Cached: no request. Offline: still fine.
  server_.clear_requests();
  EXPECT_EQ(hub::fetch_raft(o), path);
  {
    ScopedEnv offline("HF_HUB_OFFLINE", "1");
    EXPECT_EQ(hub::fetch_raft(o), path);
  }
  EXPECT_TRUE(server_.requests().empty());

  // Damaged in the cache: fetched again.
  write_file(path, "garbage");
  EXPECT_EQ(read_file(hub::fetch_raft(o)), weights);

  // A hash prefix that does not match is refused, and nothing is left behind.
  o.url = server_.url() + "/files/raft_large_bad-00000000.pth";
  try {
    hub::fetch_raft(o);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(o.url), std::string::npos) << msg;
    EXPECT_NE(msg.find("00000000"), std::string::npos) << msg;
  }
  EXPECT_FALSE(fs::exists(root_ / "torch" / "hub" / "checkpoints" / "raft_large_bad-00000000.pth"));
  EXPECT_FALSE(fs::exists(root_ / "torch" / "hub" / "checkpoints" / "raft_large_bad-00000000.pth.partial"));

  // Offline without the file: one line naming it.
  o.url = server_.url() + "/files/raft_missing-12345678.pth";
  o.offline = true;
  try {
    hub::fetch_raft(o);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("raft_missing-12345678.pth"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--raft"), std::string::npos) << e.what();
  }
}
