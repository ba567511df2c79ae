// sdvsr with a hub id, against a fake hub on 127.0.0.1 serving the golden tiny
// model with a CLIP text encoder: the first run downloads everything and
// caches the empty-prompt embedding; a second run into an empty hub cache
// leaves text_encoder/ and tokenizer/ out; an offline run still finds the
// embedding. All three give the same frame.
#include <gtest/gtest.h>

#include <filesystem>

#include "cli_helpers.h"
#include "http_test_server.h"
#include "run_program.h"

namespace fs = std::filesystem;

namespace sdvsr {
namespace {

using test::golden_path;
using test::run_program;

// Every file under `dir` served as <prefix><relative path>; weights through LFS.
void serve_folder(test::FakeHub& hub, const fs::path& dir, const std::string& prefix) {
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const std::string rel = prefix + fs::relative(e.path(), dir).string();
    hub.add(rel, test::read_file_bytes(e.path().string()), e.path().extension() == ".safetensors");
  }
}

size_t requests_for(const test::HttpTestServer& server, const std::string& needle) {
  size_t n = 0;
  for (const auto& r : server.requests())
    if (r.target.find(needle) != std::string::npos) ++n;
  return n;
}

TEST(CliHub, CachedPromptEmbeddingSkipsTheTextEncoderDownload) {
  const std::string dir = test::temp_dir("cli-hub");
  const std::string repo = "TestOrg/Tiny-Text", commit = std::string(40, 'c');
  test::FakeHub hub(repo, commit);
  const fs::path tiny = golden_path("tiny"), text = golden_path("tiny-text");
  hub.add("model_index.json", test::read_file_bytes((tiny / "model_index.json").string()), false);
  for (const char* c : {"unet", "controlnet", "vae", "scheduler"})
    serve_folder(hub, tiny / c, std::string(c) + "/");
  serve_folder(hub, text / "text_encoder", "text_encoder/");
  serve_folder(hub, text / "tokenizer", "tokenizer/");
  test::HttpTestServer server([&hub](const test::HttpRequest& r) { return hub.handle(r); });

  test::write_pattern_frames(dir + "/in", 1, 32, 32);
  test::ScopedEnv endpoint("HF_ENDPOINT", server.url());
  test::ScopedEnv hub_cache("HF_HUB_CACHE", dir + "/hub");
  test::ScopedEnv sdvsr_cache("SDVSR_CACHE", dir + "/sdvsr-cache");
  test::ScopedEnv token("HF_TOKEN", "unused");
  auto run = [&](const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> a{"--model_id", repo, "--raft", (tiny / "raft" / "raft_large.pth").string(),
                               "-i", dir + "/in", "-o", dir + "/" + out, "--seed", "4",
                               "--threads", "1", "--num_inference_steps", "1", "-q"};
    a.insert(a.end(), extra.begin(), extra.end());
    return run_program("sdvsr", a);
  };

  auto first = run("first", {});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_GE(requests_for(server, "text_encoder/"), 1u);
  const std::string embed_sha = hub.etag_of("text_encoder/model.safetensors");
  EXPECT_TRUE(fs::exists(dir + "/sdvsr-cache/prompt_embeds/" + embed_sha + ".safetensors"));
  const Image reference = read_image(dir + "/first/in/frame_0001.png");

  fs::remove_all(dir + "/hub");
  server.clear_requests();
  auto second = run("second", {});
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(requests_for(server, "text_encoder/"), 1u)  // one HEAD for its sha256, no download
      << "the text encoder was fetched although its embedding is cached";
  EXPECT_EQ(requests_for(server, "/cdn/" + embed_sha), 0u);
  EXPECT_EQ(requests_for(server, "tokenizer/"), 0u);
  const fs::path snapshot = fs::path(dir) / "hub" / "models--TestOrg--Tiny-Text" / "snapshots" / commit;
  EXPECT_TRUE(fs::exists(snapshot / "unet" / "config.json"));
  EXPECT_FALSE(fs::exists(snapshot / "text_encoder"));
  EXPECT_EQ(read_image(dir + "/second/in/frame_0001.png").rgb, reference.rgb);

  server.clear_requests();
  auto offline = run("offline", {"--offline"});
  ASSERT_EQ(offline.exit_code, 0) << offline.err;
  EXPECT_TRUE(server.requests().empty());
  EXPECT_EQ(read_image(dir + "/offline/in/frame_0001.png").rgb, reference.rgb);

  // Without the cached embedding an offline run of that snapshot says what is missing.
  fs::remove_all(dir + "/sdvsr-cache/prompt_embeds/" + embed_sha + ".safetensors");
  auto gone = run("gone", {"--offline"});
  EXPECT_EQ(gone.exit_code, 1);
  EXPECT_EQ(test::line_count(gone.err), 1) << gone.err;
  EXPECT_NE(gone.err.find("text encoder"), std::string::npos) << gone.err;
}

}  // namespace
}  // namespace sdvsr
