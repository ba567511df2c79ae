// Video files through FFmpeg: clips made here (ffv1 video, synthesised PCM
// audio, SubRip subtitles, metadata), read back and re-encoded by VideoWriter.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "media/video_reader.h"
#include "media/video_writer.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
}

namespace sdvsr {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path dir;
  explicit TempDir(const std::string& name)
      : dir(fs::temp_directory_path() / ("sdvsr_video_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~TempDir() {
    if (!std::getenv("SDVSR_KEEP_TEST_FILES")) fs::remove_all(dir);
  }
  std::string operator/(const std::string& f) const { return (dir / f).string(); }
  int files() const {
    int n = 0;
    for (const auto& e : fs::directory_iterator(dir)) n += e.is_regular_file();
    return n;
  }
};

// Frame i of the test clips: every pixel distinct enough to catch reordering.
Image pattern(int w, int h, int i) {
  Image im;
  im.width = w, im.height = h;
  im.rgb.resize(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &im.rgb[(static_cast<size_t>(y) * w + x) * 3];
      p[0] = static_cast<uint8_t>(x * 5 + i * 17), p[1] = static_cast<uint8_t>(y * 7 + i * 3),
      p[2] = static_cast<uint8_t>((x ^ y) * 3 + i * 29);
    }
  return im;
}

// Nearest-neighbour 2x, standing in for the upscaler.
Image twice(const Image& a) {
  Image b;
  b.width = a.width * 2, b.height = a.height * 2;
  b.rgb.resize(static_cast<size_t>(b.width) * b.height * 3);
  for (int y = 0; y < b.height; ++y)
    for (int x = 0; x < b.width; ++x)
      for (int c = 0; c < 3; ++c)
        b.rgb[(static_cast<size_t>(y) * b.width + x) * 3 + c] = a.rgb[(static_cast<size_t>(y / 2) * a.width + x / 2) * 3 + c];
  return b;
}

struct ClipSpec {
  int w = 48, h = 32;
  AVRational tb{1, 1000};
  AVRational rate{25, 1};
  std::vector<int64_t> pts;  // in tb
  bool video = true, audio = true, subs = true;
};

constexpr int kAudioRate = 8000;

// Writes a clip with libavformat directly: ffv1/bgr0 video (exact RGB), mono
// 16-bit PCM sine audio covering the video, one SubRip cue, a title.
void make_clip(const std::string& path, const ClipSpec& s) {
  AVFormatContext* oc = nullptr;
  ASSERT_GE(avformat_alloc_output_context2(&oc, nullptr, nullptr, path.c_str()), 0);
  av_dict_set(&oc->metadata, "title", "sdvsr test clip", 0);
  {  // one chapter, as a muxer's user would add it
    oc->chapters = static_cast<AVChapter**>(av_calloc(1, sizeof(AVChapter*)));
    AVChapter* c = static_cast<AVChapter*>(av_mallocz(sizeof(AVChapter)));
    c->id = 1, c->time_base = AVRational{1, 1000}, c->start = 0, c->end = 200;
    av_dict_set(&c->metadata, "title", "Opening", 0);
    oc->chapters[oc->nb_chapters++] = c;
  }
  AVCodecContext* enc = nullptr;
  AVStream *vs = nullptr, *as = nullptr, *ss = nullptr;
  if (s.video) {
    const AVCodec* codec = avcodec_find_encoder_by_name("ffv1");
    enc = avcodec_alloc_context3(codec);
    enc->width = s.w, enc->height = s.h, enc->pix_fmt = AV_PIX_FMT_BGR0, enc->time_base = s.tb;
    enc->framerate = s.rate;
    if (oc->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    ASSERT_GE(avcodec_open2(enc, codec, nullptr), 0);
    vs = avformat_new_stream(oc, nullptr);
    avcodec_parameters_from_context(vs->codecpar, enc);
    vs->time_base = s.tb;
    vs->avg_frame_rate = s.rate;
  }
  if (s.audio) {
    as = avformat_new_stream(oc, nullptr);
    as->codecpar->codec_type = AVMEDIA_TYPE_AUDIO;
    as->codecpar->codec_id = AV_CODEC_ID_PCM_S16LE;
    as->codecpar->sample_rate = kAudioRate;
    as->codecpar->ch_layout = AV_CHANNEL_LAYOUT_MONO;
    as->codecpar->format = AV_SAMPLE_FMT_S16;
    as->codecpar->bits_per_coded_sample = 16;
    as->codecpar->block_align = 2;
    as->codecpar->bit_rate = kAudioRate * 16;
    as->time_base = AVRational{1, kAudioRate};
    av_dict_set(&as->metadata, "language", "eng", 0);
  }
  if (s.subs) {
    ss = avformat_new_stream(oc, nullptr);
    ss->codecpar->codec_type = AVMEDIA_TYPE_SUBTITLE;
    ss->codecpar->codec_id = AV_CODEC_ID_SUBRIP;
    ss->time_base = AVRational{1, 1000};
  }
  ASSERT_GE(avio_open(&oc->pb, path.c_str(), AVIO_FLAG_WRITE), 0);
  ASSERT_GE(avformat_write_header(oc, nullptr), 0);

  AVPacket* pkt = av_packet_alloc();
  auto drain = [&] {
    while (avcodec_receive_packet(enc, pkt) == 0) {
      av_packet_rescale_ts(pkt, enc->time_base, vs->time_base);
      pkt->stream_index = vs->index;
      ASSERT_GE(av_interleaved_write_frame(oc, pkt), 0);
    }
  };
  // Audio first, so the muxer's interleaving has both streams' packets early.
  if (s.audio) {
    const double seconds = s.pts.empty() ? 0.5 : (s.pts.back() + 40) * av_q2d(s.tb);
    const int total = static_cast<int>(seconds * kAudioRate);
    for (int start = 0; start < total; start += 800) {
      const int n = std::min(800, total - start);
      av_new_packet(pkt, n * 2);
      auto* samples = reinterpret_cast<int16_t*>(pkt->data);
      for (int k = 0; k < n; ++k) samples[k] = static_cast<int16_t>(8000 * std::sin(0.3 * (start + k)));
      pkt->pts = pkt->dts = av_rescale_q(start, AVRational{1, kAudioRate}, as->time_base);
      pkt->duration = av_rescale_q(n, AVRational{1, kAudioRate}, as->time_base);
      pkt->stream_index = as->index;
      ASSERT_GE(av_interleaved_write_frame(oc, pkt), 0);
    }
  }
  if (s.subs) {
    const std::string text = "hello";
    av_new_packet(pkt, static_cast<int>(text.size()));
    std::memcpy(pkt->data, text.data(), text.size());
    pkt->pts = pkt->dts = 0;
    pkt->duration = 200;
    pkt->stream_index = ss->index;
    ASSERT_GE(av_interleaved_write_frame(oc, pkt), 0);
  }
  if (s.video) {
    AVFrame* f = av_frame_alloc();
    f->format = AV_PIX_FMT_BGR0, f->width = s.w, f->height = s.h;
    ASSERT_GE(av_frame_get_buffer(f, 0), 0);
    for (size_t i = 0; i < s.pts.size(); ++i) {
      ASSERT_GE(av_frame_make_writable(f), 0);
      const Image im = pattern(s.w, s.h, static_cast<int>(i));
      for (int y = 0; y < s.h; ++y)
        for (int x = 0; x < s.w; ++x) {
          const uint8_t* p = &im.rgb[(static_cast<size_t>(y) * s.w + x) * 3];
          uint8_t* q = f->data[0] + y * f->linesize[0] + 4 * x;  // B G R 0
          q[0] = p[2], q[1] = p[1], q[2] = p[0], q[3] = 0;
        }
      f->pts = s.pts[i];
      ASSERT_GE(avcodec_send_frame(enc, f), 0);
      drain();
    }
    avcodec_send_frame(enc, nullptr);
    drain();
    av_frame_free(&f);
  }
  ASSERT_GE(av_write_trailer(oc), 0);
  av_packet_free(&pkt);
  avcodec_free_context(&enc);
  avio_closep(&oc->pb);
  avformat_free_context(oc);
}

std::vector<int64_t> steady(int n, int64_t step) {
  std::vector<int64_t> p(n);
  for (int i = 0; i < n; ++i) p[i] = i * step;
  return p;
}

// What a finished file holds, through libavformat.
struct Probe {
  std::vector<std::string> codecs;  // per stream
  std::string title;
  std::string chapter;              // the first chapter's title
  int64_t audio_samples = 0;        // decoded sample count of the first audio stream
  int packets = 0;                  // in file order, all streams
  int first_audio_packet = -1;      // its position in file order
};

Probe probe(const std::string& path) {
  Probe p;
  AVFormatContext* ic = nullptr;
  EXPECT_GE(avformat_open_input(&ic, path.c_str(), nullptr, nullptr), 0);
  if (!ic) return p;
  avformat_find_stream_info(ic, nullptr);
  if (auto* e = av_dict_get(ic->metadata, "title", nullptr, 0)) p.title = e->value;
  if (ic->nb_chapters > 0)
    if (auto* e = av_dict_get(ic->chapters[0]->metadata, "title", nullptr, 0)) p.chapter = e->value;
  int audio = -1;
  for (unsigned i = 0; i < ic->nb_streams; ++i) {
    p.codecs.push_back(avcodec_get_name(ic->streams[i]->codecpar->codec_id));
    if (audio < 0 && ic->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO) audio = static_cast<int>(i);
  }
  if (audio >= 0) {
    const AVCodec* codec = avcodec_find_decoder(ic->streams[audio]->codecpar->codec_id);
    AVCodecContext* dec = avcodec_alloc_context3(codec);
    avcodec_parameters_to_context(dec, ic->streams[audio]->codecpar);
    avcodec_open2(dec, codec, nullptr);
    AVPacket* pkt = av_packet_alloc();
    AVFrame* f = av_frame_alloc();
    auto drain = [&] {
      while (avcodec_receive_frame(dec, f) == 0) p.audio_samples += f->nb_samples;
    };
    while (av_read_frame(ic, pkt) >= 0) {
      if (pkt->stream_index == audio && p.first_audio_packet < 0) p.first_audio_packet = p.packets;
      ++p.packets;
      if (pkt->stream_index == audio) avcodec_send_packet(dec, pkt), drain();
      av_packet_unref(pkt);
    }
    avcodec_send_packet(dec, nullptr);
    drain();
    av_frame_free(&f);
    av_packet_free(&pkt);
    avcodec_free_context(&dec);
  }
  avformat_close_input(&ic);
  return p;
}

struct Decoded {
  std::vector<Image> frames;
  std::vector<int64_t> pts;
  std::vector<double> seconds;
};

Decoded decode_all(VideoReader& r) {
  Decoded d;
  while (auto f = r.next()) {
    d.frames.push_back(std::move(f->image));
    d.pts.push_back(f->pts);
    d.seconds.push_back(f->seconds);
  }
  return d;
}

// Reads `source`, writes every frame doubled through the writer, returns the warnings.
std::vector<std::string> transcode(const std::string& source, const std::string& out, VideoEncodeOptions o) {
  std::vector<std::string> warnings;
  o.warn = [&](const std::string& w) { warnings.push_back(w); };
  VideoReader r = VideoReader::open(source);
  VideoWriter w = VideoWriter::open(out, r, r.width() * 2, r.height() * 2, o);
  while (auto f = r.next()) w.write(twice(f->image), f->pts);
  w.finish();
  return warnings;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(VideoIo, ReaderDecodesFramesInOrderWithTimestamps) {
  TempDir t("reader");
  ClipSpec s;
  s.pts = steady(12, 40);
  make_clip(t / "src.mkv", s);
  VideoReader r = VideoReader::open(t / "src.mkv");
  EXPECT_EQ(r.width(), 48);
  EXPECT_EQ(r.height(), 32);
  EXPECT_EQ(r.time_base(), (Rational{1, 1000}));
  EXPECT_EQ(r.frame_rate(), (Rational{25, 1}));
  EXPECT_EQ(r.codec_name(), "ffv1");
  EXPECT_EQ(r.frame_count(), 12);
  const Decoded d = decode_all(r);
  ASSERT_EQ(d.frames.size(), 12u);
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(d.pts[i], i * 40);
    EXPECT_DOUBLE_EQ(d.seconds[i], i * 0.04);
    EXPECT_EQ(d.frames[i].rgb, pattern(48, 32, i).rgb) << "frame " << i;  // bgr0 -> RGB is exact
  }
  EXPECT_FALSE(r.next().has_value());
}

TEST(VideoIo, Ffv1GbrpKeepsFramesBitExactWithAudioSubtitlesMetadata) {
  TempDir t("ffv1");
  ClipSpec s;
  s.pts = steady(12, 40);
  make_clip(t / "src.mkv", s);
  VideoEncodeOptions o;
  o.codec = "ffv1";
  o.pix_fmt = "gbrp";
  const auto warnings = transcode(t / "src.mkv", t / "out.mkv", o);
  // FFmpeg 5.1's ffv1 takes 8-bit RGB as bgr0 only; the writer says so and stays exact.
  for (const std::string& w : warnings)
    EXPECT_NE(w.find("does not take pixel format gbrp; using bgr0 (the same 8-bit RGB, still exact)"), std::string::npos) << w;
  EXPECT_EQ(t.files(), 2);  // no temporary file left behind

  VideoReader r = VideoReader::open(t / "out.mkv");
  EXPECT_EQ(r.width(), 96);
  EXPECT_EQ(r.frame_rate(), (Rational{25, 1}));
  const Decoded d = decode_all(r);
  ASSERT_EQ(d.frames.size(), 12u);
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(d.pts[i], i * 40);
    EXPECT_EQ(d.frames[i].rgb, twice(pattern(48, 32, i)).rgb) << "frame " << i;
  }
  const Probe src = probe(t / "src.mkv"), out = probe(t / "out.mkv");
  EXPECT_EQ(out.codecs, (std::vector<std::string>{"ffv1", "pcm_s16le", "subrip"}));
  EXPECT_EQ(out.title, "sdvsr test clip");
  EXPECT_EQ(src.chapter, "Opening");
  EXPECT_EQ(out.chapter, "Opening");
  EXPECT_EQ(out.audio_samples, src.audio_samples);
  EXPECT_GT(src.audio_samples, 0);
  // Interleaved as it goes, not all audio after the video.
  EXPECT_GE(out.first_audio_packet, 0);
  EXPECT_LT(out.first_audio_packet, out.packets / 2);
}

TEST(VideoIo, Mp4ReencodesPcmToAacAndDropsSubRipWithWarnings) {
  TempDir t("mp4");
  ClipSpec s;
  s.pts = steady(12, 40);
  make_clip(t / "src.mkv", s);
  const auto warnings = transcode(t / "src.mkv", t / "out.mp4", VideoEncodeOptions{});
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_NE(warnings[0].find("re-encoding audio stream #1 (audio, pcm_s16le) to aac"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[1].find("dropping subtitle stream #2 (subtitle, subrip)"), std::string::npos) << warnings[1];

  VideoReader r = VideoReader::open(t / "out.mp4");
  EXPECT_EQ(r.codec_name(), "h264");
  EXPECT_EQ(r.frame_rate(), (Rational{25, 1}));
  EXPECT_EQ(r.frame_count(), 12);
  const Decoded d = decode_all(r);
  ASSERT_EQ(d.frames.size(), 12u);
  for (int i = 0; i < 12; ++i) EXPECT_DOUBLE_EQ(d.seconds[i], i * 0.04);
  const Probe out = probe(t / "out.mp4");
  // The mp4 muxer stores chapters as a text track, which reads back as a data stream.
  EXPECT_EQ(out.codecs, (std::vector<std::string>{"h264", "aac", "bin_data"}));
  EXPECT_EQ(out.chapter, "Opening");
  EXPECT_LT(out.first_audio_packet, out.packets / 2);
  EXPECT_EQ(out.title, "sdvsr test clip");
  // AAC adds priming and padding; the sound's length is kept within a frame.
  const Probe src = probe(t / "src.mkv");
  EXPECT_NEAR(static_cast<double>(out.audio_samples), static_cast<double>(src.audio_samples), 2048);
}

TEST(VideoIo, ConstantRateStaysTheSameRational) {
  TempDir t("ntsc");
  {
    VideoEncodeOptions o;
    VideoWriter w = VideoWriter::create(t / "ntsc.mp4", 48, 32, Rational{30000, 1001}, o);
    for (int i = 0; i < 12; ++i) w.write(pattern(48, 32, i), i);
    w.finish();
  }
  VideoReader src = VideoReader::open(t / "ntsc.mp4");
  EXPECT_EQ(src.frame_rate(), (Rational{30000, 1001}));
  EXPECT_EQ(src.frame_count(), 12);
  const auto warnings = transcode(t / "ntsc.mp4", t / "out.mp4", VideoEncodeOptions{});
  EXPECT_TRUE(warnings.empty());
  VideoReader out = VideoReader::open(t / "out.mp4");
  EXPECT_EQ(out.frame_rate(), (Rational{30000, 1001}));
  const Decoded a = decode_all(src), b = decode_all(out);
  ASSERT_EQ(b.frames.size(), 12u);
  for (int i = 0; i < 12; ++i) EXPECT_DOUBLE_EQ(b.seconds[i], a.seconds[i]) << i;
  EXPECT_NEAR(a.seconds[11], 11 * 1001.0 / 30000.0, 1e-12);
}

TEST(VideoIo, VariableRateStaysVariable) {
  TempDir t("vfr");
  ClipSpec s;
  s.pts = {0, 40, 80, 200, 210, 300, 333, 400, 520, 521, 600, 1000};
  s.subs = false;
  make_clip(t / "src.mkv", s);
  for (const std::string out : {"out.mp4", "out.mkv"}) {
    transcode(t / "src.mkv", t / out, VideoEncodeOptions{});
    VideoReader r = VideoReader::open(t / out);
    const Decoded d = decode_all(r);
    ASSERT_EQ(d.frames.size(), s.pts.size()) << out;
    for (size_t i = 0; i < s.pts.size(); ++i)
      EXPECT_DOUBLE_EQ(d.seconds[i], s.pts[i] / 1000.0) << out << " frame " << i;
  }
}

TEST(VideoIo, BrokenInputsAreOneLineErrors) {
  TempDir t("bad");
  std::ofstream(t / "empty.mp4").close();
  std::ofstream(t / "text.mp4") << "this is not a video at all, just some words\n";
  ClipSpec audio_only;
  audio_only.video = false;
  audio_only.subs = false;
  make_clip(t / "audio.mkv", audio_only);
  auto open_error = [](const std::string& p) { return error_of([&] { VideoReader::open(p); }); };
  EXPECT_EQ(open_error(t / "empty.mp4"), t / "empty.mp4" + ": empty file (0 bytes), not a video");
  EXPECT_EQ(open_error(t / "text.mp4").rfind(t / "text.mp4" + ": cannot open as a video (", 0), 0u);
  EXPECT_EQ(open_error(t / "audio.mkv"), t / "audio.mkv" + ": no video stream");
  EXPECT_EQ(open_error(t / "missing.mp4").rfind(t / "missing.mp4" + ": cannot open (", 0), 0u);

  // A clip cut short: the frames before the cut, or one line; never a crash.
  ClipSpec s;
  s.pts = steady(12, 40);
  s.audio = s.subs = false;
  make_clip(t / "src.mkv", s);
  {
    std::ifstream in(t / "src.mkv", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(t / "cut.mkv", std::ios::binary).write(bytes.data(), bytes.size() * 6 / 10);
  }
  size_t got = 0;
  const std::string cut_error = error_of([&] {
    VideoReader r = VideoReader::open(t / "cut.mkv");
    while (r.next()) ++got;
  });
  std::printf("cut clip: %zu frames, error '%s'\n", got, cut_error.c_str());
  EXPECT_LT(got, 12u);
  EXPECT_EQ(cut_error.find('\n'), std::string::npos);

  // Writer refusals, each before any file appears.
  VideoReader r = VideoReader::open(t / "src.mkv");
  auto writer_error = [&](const std::string& out, const std::string& codec, const std::string& pix) {
    VideoEncodeOptions o;
    o.codec = codec, o.pix_fmt = pix;
    return error_of([&] { VideoWriter::open(out, r, 96, 64, o); });
  };
  EXPECT_EQ(writer_error(t / "a.mp4", "nosuchcodec", "yuv420p"),
            t / "a.mp4" + ": unknown encoder 'nosuchcodec' (this FFmpeg has none by that name)");
  EXPECT_NE(writer_error(t / "a.xyz", "libx264", "yuv420p").find("cannot tell the container"), std::string::npos);
  EXPECT_NE(writer_error(t / "a.mp4", "libx264", "nonsense").find("unknown pixel format 'nonsense'"), std::string::npos);
  EXPECT_FALSE(fs::exists(t / "a.mp4"));
}

TEST(VideoIo, AbandonedWriterLeavesNoFile) {
  TempDir t("abandon");
  ClipSpec s;
  s.pts = steady(4, 40);
  make_clip(t / "src.mkv", s);
  VideoReader r = VideoReader::open(t / "src.mkv");
  std::string tmp;
  {
    VideoEncodeOptions quiet;
    quiet.warn = [](const std::string&) {};
    VideoWriter w = VideoWriter::open(t / "out.mp4", r, 48, 32, quiet);
    tmp = w.temp_path();
    auto f = r.next();
    w.write(f->image, f->pts);
    EXPECT_TRUE(fs::exists(tmp));
    EXPECT_NE(error_of([&] { w.write(f->image, f->pts); }).find("timestamps must increase"), std::string::npos);
  }
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_FALSE(fs::exists(t / "out.mp4"));
  EXPECT_EQ(t.files(), 1);
}

}  // namespace
}  // namespace sdvsr
