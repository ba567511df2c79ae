#include "media/video_reader.h"

#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "media/ffmpeg_util.h"
#include "runtime/warnings.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/log.h>
#include <libswscale/swscale.h>
}

namespace sdvsr {

namespace {
std::atomic<bool> g_log_level_set{false};
}

void set_ffmpeg_log_level(int av_log_level) {
  g_log_level_set = true;
  av_log_set_level(av_log_level);
}

void ffmpeg::init_logging() {
  bool expected = false;
  if (g_log_level_set.compare_exchange_strong(expected, true) && !std::getenv("SDVSR_FFMPEG_LOG"))
    av_log_set_level(AV_LOG_QUIET);
}

namespace {

std::runtime_error file_error(const std::string& path, const std::string& problem) {
  return std::runtime_error(path + ": " + problem);
}

// The matrix libswscale should apply: the stream's own when swscale knows it,
// else BT.601 (swscale's default, and what FFmpeg's tools assume).
int matrix_for(int colorspace) {
  switch (colorspace) {
    case AVCOL_SPC_BT709: case AVCOL_SPC_FCC: case AVCOL_SPC_BT470BG: case AVCOL_SPC_SMPTE170M:
    case AVCOL_SPC_SMPTE240M: case AVCOL_SPC_BT2020_NCL: case AVCOL_SPC_BT2020_CL:
      return colorspace;
    default:
      return AVCOL_SPC_SMPTE170M;
  }
}

bool is_full_range(const AVFrame* f) {
  switch (f->format) {
    case AV_PIX_FMT_YUVJ420P: case AV_PIX_FMT_YUVJ422P: case AV_PIX_FMT_YUVJ444P: case AV_PIX_FMT_YUVJ440P:
    case AV_PIX_FMT_YUVJ411P:
      return true;
    default:
      return f->color_range == AVCOL_RANGE_JPEG;
  }
}

}  // namespace

struct VideoReader::Impl {
  std::string path;
  MediaWarning warn;
  AVFormatContext* fmt = nullptr;
  AVCodecContext* dec = nullptr;
  AVPacket* packet = nullptr;
  AVFrame* frame = nullptr;
  SwsContext* sws = nullptr;
  int sws_key[5] = {-1, -1, -1, -1, -1};  // w, h, format, matrix, full range of the cached context
  int stream = -1;
  int width = 0, height = 0;
  Rational time_base, frame_rate, sar;
  bool demux_done = false, decode_done = false;
  int64_t last_pts = INT64_MIN;
  int64_t index = 0;
  int64_t skipped_packets = 0;
  Color color;

  ~Impl() {
    sws_freeContext(sws);
    av_frame_free(&frame);
    av_packet_free(&packet);
    avcodec_free_context(&dec);
    avformat_close_input(&fmt);
  }

  void warning(const std::string& line) const {
    if (warn) warn(path + ": " + line);
    else sdvsr::warn(path + ": " + line);  // the process-wide sink
  }

  // Converts the decoded `frame` to RGB at the stream's first size.
  Image to_rgb() {
    Image image;
    image.width = width, image.height = height;
    image.rgb.resize(static_cast<size_t>(width) * height * 3);
    if (frame->width == width && frame->height == height && ffmpeg::is_rgb8(frame->format)) {
      ffmpeg::rgb8_frame_to_image(frame, image);  // exact, no swscale
      return image;
    }
    const int matrix = matrix_for(frame->colorspace);
    const int full = is_full_range(frame) ? 1 : 0;
    const int key[5] = {frame->width, frame->height, frame->format, matrix, full};
    if (!sws || std::memcmp(key, sws_key, sizeof(key)) != 0) {
      sws_freeContext(sws);
      sws = sws_getContext(frame->width, frame->height, static_cast<AVPixelFormat>(frame->format), width, height,
                           AV_PIX_FMT_RGB24,
                           SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT | SWS_FULL_CHR_H_INP, nullptr,
                           nullptr, nullptr);
      if (!sws)
        throw file_error(path, std::string("cannot convert ") +
                                   (av_get_pix_fmt_name(static_cast<AVPixelFormat>(frame->format))
                                        ? av_get_pix_fmt_name(static_cast<AVPixelFormat>(frame->format))
                                        : "unknown") +
                                   " frames to RGB");
      sws_setColorspaceDetails(sws, sws_getCoefficients(matrix), full, sws_getCoefficients(SWS_CS_DEFAULT), 1, 0,
                               1 << 16, 1 << 16);
      std::memcpy(sws_key, key, sizeof(key));
      color.matrix_used = matrix;
    }
    uint8_t* dst[4] = {image.rgb.data(), nullptr, nullptr, nullptr};
    int dst_stride[4] = {width * 3, 0, 0, 0};
    sws_scale(sws, frame->data, frame->linesize, 0, frame->height, dst, dst_stride);
    return image;
  }

  int64_t frame_pts() {
    int64_t pts = frame->best_effort_timestamp;
    if (pts == AV_NOPTS_VALUE) {
      // No timestamp: place the frame one frame duration after the previous one.
      const int64_t step = std::max<int64_t>(
          1, av_rescale_q(1, AVRational{frame_rate.den, frame_rate.num}, AVRational{time_base.num, time_base.den}));
      pts = last_pts == INT64_MIN ? 0 : last_pts + step;
    }
    if (last_pts != INT64_MIN && pts <= last_pts) pts = last_pts + 1;
    last_pts = pts;
    return pts;
  }

  // Feeds the decoder one packet of our stream; false once the input is exhausted.
  void feed() {
    for (;;) {
      const int r = av_read_frame(fmt, packet);
      if (r < 0) {
        if (r != AVERROR_EOF) warning("read error, treating as end of input (" + ffmpeg::error_text(r) + ")");
        demux_done = true;
        avcodec_send_packet(dec, nullptr);  // enter draining mode
        return;
      }
      if (packet->stream_index != stream) {
        av_packet_unref(packet);
        continue;
      }
      const int s = avcodec_send_packet(dec, packet);
      av_packet_unref(packet);
      if (s < 0 && s != AVERROR(EAGAIN)) {
        ++skipped_packets;
        warning("skipped a corrupt video packet (" + ffmpeg::error_text(s) + ")");
        continue;
      }
      return;
    }
  }
};

VideoReader::VideoReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VideoReader::VideoReader(VideoReader&&) noexcept = default;
VideoReader& VideoReader::operator=(VideoReader&&) noexcept = default;
VideoReader::~VideoReader() = default;

VideoReader VideoReader::open(const std::string& path, MediaWarning warn) {
  ffmpeg::init_logging();
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw file_error(path, std::string("cannot open (") + std::strerror(errno) + ")");
  if (S_ISDIR(st.st_mode)) throw file_error(path, "is a folder, not a video file");
  if (st.st_size == 0) throw file_error(path, "empty file (0 bytes), not a video");

  auto impl = std::make_unique<Impl>();
  Impl& m = *impl;
  m.path = path;
  m.warn = std::move(warn);
  int r = avformat_open_input(&m.fmt, path.c_str(), nullptr, nullptr);
  if (r < 0) throw file_error(path, "cannot open as a video (" + ffmpeg::error_text(r) + ")");
  r = avformat_find_stream_info(m.fmt, nullptr);
  if (r < 0) throw file_error(path, "cannot read the streams (" + ffmpeg::error_text(r) + ")");

  for (unsigned i = 0; i < m.fmt->nb_streams; ++i) {
    const AVStream* s = m.fmt->streams[i];
    if (s->codecpar->codec_type == AVMEDIA_TYPE_VIDEO && !(s->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
      m.stream = static_cast<int>(i);
      break;
    }
  }
  if (m.stream < 0) throw file_error(path, "no video stream");
  for (unsigned i = 0; i < m.fmt->nb_streams; ++i)
    if (static_cast<int>(i) != m.stream) m.fmt->streams[i]->discard = AVDISCARD_ALL;

  AVStream* vs = m.fmt->streams[m.stream];
  const AVCodec* codec = avcodec_find_decoder(vs->codecpar->codec_id);
  if (!codec) throw file_error(path, std::string("no decoder for video codec ") + avcodec_get_name(vs->codecpar->codec_id));
  m.dec = avcodec_alloc_context3(codec);
  m.packet = av_packet_alloc();
  m.frame = av_frame_alloc();
  if (!m.dec || !m.packet || !m.frame) throw file_error(path, "out of memory");
  avcodec_parameters_to_context(m.dec, vs->codecpar);
  m.dec->pkt_timebase = vs->time_base;
  m.dec->thread_count = 0;  // as many as the decoder likes
  r = avcodec_open2(m.dec, codec, nullptr);
  if (r < 0) throw file_error(path, std::string("cannot open the ") + codec->name + " decoder (" + ffmpeg::error_text(r) + ")");

  m.width = vs->codecpar->width;
  m.height = vs->codecpar->height;
  if (m.width <= 0 || m.height <= 0) throw file_error(path, "the video stream has no frame size");
  m.time_base = {vs->time_base.num, vs->time_base.den};
  AVRational rate = vs->avg_frame_rate;
  if (rate.num <= 0 || rate.den <= 0) rate = vs->r_frame_rate;
  if (rate.num <= 0 || rate.den <= 0) rate = AVRational{25, 1};
  m.frame_rate = {rate.num, rate.den};
  const AVRational sar = av_guess_sample_aspect_ratio(m.fmt, vs, nullptr);
  m.sar = {sar.num, sar.den ? sar.den : 1};
  m.color.matrix = vs->codecpar->color_space;
  m.color.primaries = vs->codecpar->color_primaries;
  m.color.transfer = vs->codecpar->color_trc;
  m.color.range = vs->codecpar->color_range;
  m.color.matrix_used = matrix_for(vs->codecpar->color_space);
  return VideoReader(std::move(impl));
}

std::optional<VideoFrame> VideoReader::next() {
  Impl& m = *impl_;
  while (!m.decode_done) {
    const int r = avcodec_receive_frame(m.dec, m.frame);
    if (r == 0) {
      VideoFrame out;
      out.pts = m.frame_pts();
      out.image = m.to_rgb();
      out.index = m.index++;
      out.seconds = static_cast<double>(out.pts) * m.time_base.num / m.time_base.den;
      av_frame_unref(m.frame);
      return out;
    }
    if (r == AVERROR(EAGAIN)) {
      if (m.demux_done) break;  // a decoder that will not drain
      m.feed();
    } else if (r == AVERROR_EOF) {
      m.decode_done = true;
    } else {
      m.warning("skipped an undecodable video frame (" + ffmpeg::error_text(r) + ")");
    }
  }
  m.decode_done = true;
  if (m.index == 0) throw file_error(m.path, "no decodable video frames");
  return std::nullopt;
}

const std::string& VideoReader::path() const { return impl_->path; }
int VideoReader::width() const { return impl_->width; }
int VideoReader::height() const { return impl_->height; }
Rational VideoReader::time_base() const { return impl_->time_base; }
Rational VideoReader::frame_rate() const { return impl_->frame_rate; }
Rational VideoReader::sample_aspect_ratio() const { return impl_->sar; }
int VideoReader::video_stream_index() const { return impl_->stream; }
int64_t VideoReader::frames_read() const { return impl_->index; }
VideoReader::Color VideoReader::color() const { return impl_->color; }

std::string VideoReader::codec_name() const {
  return avcodec_get_name(impl_->fmt->streams[impl_->stream]->codecpar->codec_id);
}

bool VideoReader::frame_count_exact() const { return impl_->fmt->streams[impl_->stream]->nb_frames > 0; }

int64_t VideoReader::frame_count() const {
  const AVStream* s = impl_->fmt->streams[impl_->stream];
  if (s->nb_frames > 0) return s->nb_frames;
  double seconds = -1;
  if (s->duration != AV_NOPTS_VALUE && s->duration > 0) seconds = s->duration * av_q2d(s->time_base);
  else if (impl_->fmt->duration != AV_NOPTS_VALUE && impl_->fmt->duration > 0)
    seconds = static_cast<double>(impl_->fmt->duration) / AV_TIME_BASE;
  if (seconds <= 0) return -1;
  return std::llround(seconds * impl_->frame_rate.value());
}

}  // namespace sdvsr
