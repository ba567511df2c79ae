// Natural order of frame names and the IN/<sequence>/<frames> layout of inference.py.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "golden.h"
#include "media/frame_folder.h"

namespace sdvsr {
namespace {

namespace fs = std::filesystem;

TEST(FrameFolder, NaturalLess) {
  EXPECT_TRUE(natural_less("frame2.png", "frame10.png"));
  EXPECT_FALSE(natural_less("frame10.png", "frame2.png"));
  EXPECT_TRUE(natural_less("f9", "f10"));
  EXPECT_TRUE(natural_less("frame_0001.png", "frame_0002.png"));
  EXPECT_TRUE(natural_less("a", "a1"));
  EXPECT_TRUE(natural_less("a1b2", "a1b10"));
  EXPECT_TRUE(natural_less("x1", "x01"));  // equal value: fewer leading zeros first
  EXPECT_FALSE(natural_less("x01", "x1"));
  EXPECT_TRUE(natural_less("12345678901234567890123", "12345678901234567890124"));  // no overflow
  EXPECT_TRUE(natural_less("999999999999999999999", "1000000000000000000000"));
  EXPECT_FALSE(natural_less("same", "same"));
  EXPECT_TRUE(natural_less("A", "a"));  // bytewise outside digits
}

TEST(FrameFolder, ListsFramesAndSequences) {
  const std::string in = test::temp_dir("frame_folder") + "/clips";
  fs::create_directories(in + "/seq10");
  fs::create_directories(in + "/seq2");
  fs::create_directories(in + "/.hidden");
  std::ofstream(in + "/notes.txt") << "x";  // files beside the sequences are not sequences
  for (const char* n : {"f10.png", "f9.png", "f1.PNG", "f100.jpg", "readme.txt", ".f0.png"})
    std::ofstream(in + "/seq2/" + n) << "x";
  fs::create_directories(in + "/seq2/f5.png");  // a folder named like a frame is skipped

  const auto seqs = list_sequences(in);
  ASSERT_EQ(seqs.size(), 2u);
  EXPECT_EQ(seqs[0], in + "/seq2");
  EXPECT_EQ(seqs[1], in + "/seq10");

  const auto frames = list_frames(in + "/seq2");
  const std::vector<std::string> want = {in + "/seq2/f1.PNG", in + "/seq2/f9.png", in + "/seq2/f10.png",
                                         in + "/seq2/f100.jpg"};
  EXPECT_EQ(frames, want);
  EXPECT_TRUE(list_frames(in + "/seq10").empty());

  try {
    list_frames(in + "/missing");
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(in + "/missing: cannot list folder", 0), 0u);
  }
}

TEST(FrameFolder, OutputDirLikeInferencePy) {
  EXPECT_EQ(sequence_output_dir("out", "/data/clips", "seq_a"), "out/clips/seq_a");
  EXPECT_EQ(sequence_output_dir("out/", "/data/clips/", "seq_a"), "out/clips/seq_a");
}

TEST(FrameFolder, GoldenInputLayout) {
  const std::string in = test::golden_path("tiny/cases/e2e/input");
  const auto seqs = list_sequences(in);
  ASSERT_EQ(seqs.size(), 2u);
  EXPECT_EQ(fs::path(seqs[0]).filename(), "seq_a");
  EXPECT_EQ(fs::path(seqs[1]).filename(), "seq_odd");
  const auto frames = list_frames(seqs[0]);
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[2], seqs[0] + "/frame_0003.png");
}

}  // namespace
}  // namespace sdvsr
