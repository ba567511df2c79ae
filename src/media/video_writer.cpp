#include "media/video_writer.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "media/ffmpeg_util.h"
#include "runtime/warnings.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/audio_fifo.h>
#include <libavutil/channel_layout.h>
#include <libavutil/display.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>
}

namespace sdvsr {
namespace {

std::runtime_error file_error(const std::string& path, const std::string& problem) {
  return std::runtime_error(path + ": " + problem);
}

std::string stream_label(const AVStream* s) {
  return "stream #" + std::to_string(s->index) + " (" + av_get_media_type_string(s->codecpar->codec_type) + ", " +
         avcodec_get_name(s->codecpar->codec_id) + ")";
}

// Whether the container can hold `id`: libavformat says yes, or cannot tell.
bool container_takes(const AVOutputFormat* fmt, AVCodecID id) {
  return avformat_query_codec(fmt, id, FF_COMPLIANCE_NORMAL) != 0;
}

bool is_matroska(const AVOutputFormat* fmt) {
  return std::strstr(fmt->name, "matroska") || std::strstr(fmt->name, "webm");
}

// Matroska's per-track statistics describe the old encoding; they would lie.
void copy_stream_metadata(AVDictionary** dst, const AVDictionary* src, bool reencoded) {
  const AVDictionaryEntry* e = nullptr;
  while ((e = av_dict_get(src, "", e, AV_DICT_IGNORE_SUFFIX))) {
    const std::string key = e->key;
    if (reencoded && (key == "encoder" || key == "BPS" || key == "DURATION" || key == "NUMBER_OF_FRAMES" ||
                      key == "NUMBER_OF_BYTES" || key.rfind("_STATISTICS_", 0) == 0 || key.rfind("BPS-", 0) == 0 ||
                      key.rfind("DURATION-", 0) == 0 || key.rfind("NUMBER_OF_", 0) == 0))
      continue;
    av_dict_set(dst, e->key, e->value, 0);
  }
}

// Decode -> resample -> AAC (or the container's audio codec) for one audio stream.
struct AudioTranscode {
  AVCodecContext* dec = nullptr;
  AVCodecContext* enc = nullptr;
  SwrContext* swr = nullptr;
  AVAudioFifo* fifo = nullptr;
  AVFrame* decoded = nullptr;
  AVFrame* chunk = nullptr;
  int64_t next_pts = AV_NOPTS_VALUE;  // in 1/sample_rate

  ~AudioTranscode() {
    av_frame_free(&decoded);
    av_frame_free(&chunk);
    av_audio_fifo_free(fifo);
    swr_free(&swr);
    avcodec_free_context(&dec);
    avcodec_free_context(&enc);
  }
};

struct SideStream {
  enum Kind { kDrop, kCopy, kTranscode } kind = kDrop;
  int out_index = -1;
  std::unique_ptr<AudioTranscode> audio;
};

}  // namespace

struct VideoWriter::Impl {
  std::string path, tmp;
  MediaWarning warn;
  AVFormatContext* out = nullptr;
  AVCodecContext* enc = nullptr;
  AVStream* video = nullptr;
  SwsContext* sws = nullptr;
  AVFrame* frame = nullptr;
  AVPacket* packet = nullptr;
  AVPacket* audio_packet = nullptr;  // re-encoded audio, muxed while a video packet is held
  int width = 0, height = 0;
  AVPixelFormat pix = AV_PIX_FMT_NONE;
  int64_t last_pts = INT64_MIN;
  int64_t frames = 0;
  bool finished = false, header_written = false;

  // The source's other streams, read by a demuxer of their own.
  AVFormatContext* side = nullptr;
  std::vector<SideStream> side_streams;
  AVPacket* side_packet = nullptr;  // read ahead, not yet written
  bool side_pending = false, side_done = true;

  ~Impl() {
    if (out && out->pb && !(out->oformat->flags & AVFMT_NOFILE)) avio_closep(&out->pb);
    if (!finished && !tmp.empty()) std::remove(tmp.c_str());
    side_streams.clear();
    av_packet_free(&side_packet);
    avformat_close_input(&side);
    sws_freeContext(sws);
    av_frame_free(&frame);
    av_packet_free(&packet);
    av_packet_free(&audio_packet);
    avcodec_free_context(&enc);
    avformat_free_context(out);
  }

  void warning(const std::string& line) const {
    if (warn) warn(path + ": " + line);
    else sdvsr::warn(path + ": " + line);  // the process-wide sink
  }

  void check(int r, const std::string& what) const {
    if (r < 0) throw file_error(path, what + " (" + ffmpeg::error_text(r) + ")");
  }

  void mux(AVPacket* p) { check(av_interleaved_write_frame(out, p), "cannot write a packet"); }

  // Timestamp of a packet in microseconds, for interleaving.
  static int64_t packet_time(const AVPacket* p, AVRational tb) {
    const int64_t t = p->dts != AV_NOPTS_VALUE ? p->dts : p->pts;
    return t == AV_NOPTS_VALUE ? INT64_MIN : av_rescale_q(t, tb, AV_TIME_BASE_Q);
  }

  // Drains the video encoder into the muxer, writing the other streams up to each packet's time.
  void drain_video() {
    for (;;) {
      const int r = avcodec_receive_packet(enc, packet);
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return;
      check(r, "video encoding failed");
      pump_side(packet_time(packet, enc->time_base));
      av_packet_rescale_ts(packet, enc->time_base, video->time_base);
      packet->stream_index = video->index;
      mux(packet);
    }
  }

  void drain_audio(AudioTranscode& a, int out_index) {
    AVStream* st = out->streams[out_index];
    for (;;) {
      const int r = avcodec_receive_packet(a.enc, audio_packet);
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return;
      check(r, "audio encoding failed");
      av_packet_rescale_ts(audio_packet, a.enc->time_base, st->time_base);
      audio_packet->stream_index = out_index;
      mux(audio_packet);
    }
  }

  // Sends whole encoder frames from the FIFO (and, when flushing, the rest).
  void encode_fifo(AudioTranscode& a, int out_index, bool flush) {
    const int frame_size = a.enc->frame_size > 0 ? a.enc->frame_size : 1024;
    for (;;) {
      const int available = av_audio_fifo_size(a.fifo);
      if (available == 0 || (available < frame_size && !flush)) return;
      const bool small_ok = a.enc->codec->capabilities &
                            (AV_CODEC_CAP_SMALL_LAST_FRAME | AV_CODEC_CAP_VARIABLE_FRAME_SIZE);
      const int n = std::min(available, frame_size);
      av_frame_unref(a.chunk);
      a.chunk->format = a.enc->sample_fmt;
      av_channel_layout_copy(&a.chunk->ch_layout, &a.enc->ch_layout);
      a.chunk->sample_rate = a.enc->sample_rate;
      a.chunk->nb_samples = (n < frame_size && !small_ok) ? frame_size : n;
      check(av_frame_get_buffer(a.chunk, 0), "out of memory");
      if (a.chunk->nb_samples > n)  // pad a short last frame with silence
        av_samples_set_silence(a.chunk->data, 0, a.chunk->nb_samples, a.enc->ch_layout.nb_channels, a.enc->sample_fmt);
      av_audio_fifo_read(a.fifo, reinterpret_cast<void**>(a.chunk->data), n);
      a.chunk->pts = a.next_pts;
      a.next_pts += a.chunk->nb_samples;
      check(avcodec_send_frame(a.enc, a.chunk), "audio encoding failed");
      drain_audio(a, out_index);
    }
  }

  // Resamples `in` (null: the resampler's tail) into the encoder's format and the FIFO.
  void convert_audio(AudioTranscode& a, const AVFrame* in) {
    const int room = swr_get_out_samples(a.swr, in ? in->nb_samples : 0);
    if (room <= 0) return;
    uint8_t** buf = nullptr;
    check(av_samples_alloc_array_and_samples(&buf, nullptr, a.enc->ch_layout.nb_channels, room, a.enc->sample_fmt, 0),
          "out of memory");
    const int n = swr_convert(a.swr, buf, room, in ? const_cast<const uint8_t**>(in->extended_data) : nullptr,
                              in ? in->nb_samples : 0);
    const int w = n > 0 ? av_audio_fifo_write(a.fifo, reinterpret_cast<void**>(buf), n) : 0;
    av_freep(&buf[0]);
    av_freep(&buf);
    check(n, "audio resampling failed");
    check(w, "out of memory");
  }

  void transcode_packet(SideStream& s, const AVPacket* p) {
    AudioTranscode& a = *s.audio;
    if (avcodec_send_packet(a.dec, p) < 0) {
      warning("skipped a corrupt audio packet");
      return;
    }
    for (;;) {
      const int r = avcodec_receive_frame(a.dec, a.decoded);
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) break;
      if (r < 0) {
        warning("skipped an undecodable audio frame");
        continue;
      }
      if (a.next_pts == AV_NOPTS_VALUE) {
        const int64_t t = a.decoded->best_effort_timestamp;
        a.next_pts = t == AV_NOPTS_VALUE ? 0 : av_rescale_q(t, a.dec->pkt_timebase, a.enc->time_base);
      }
      if (!a.swr) {  // set up from the first decoded frame, which says what the decoder really gives
        check(swr_alloc_set_opts2(&a.swr, &a.enc->ch_layout, a.enc->sample_fmt, a.enc->sample_rate,
                                  &a.decoded->ch_layout, static_cast<AVSampleFormat>(a.decoded->format),
                                  a.decoded->sample_rate, 0, nullptr),
              "cannot set up audio resampling");
        check(swr_init(a.swr), "cannot set up audio resampling");
      }
      convert_audio(a, a.decoded);
      av_frame_unref(a.decoded);
      encode_fifo(a, s.out_index, false);
    }
  }

  // Writes the source's other streams up to `until` microseconds (all when INT64_MAX).
  void pump_side(int64_t until) {
    while (!side_done) {
      if (!side_pending) {
        const int r = av_read_frame(side, side_packet);
        if (r < 0) {
          if (r != AVERROR_EOF) warning("reading the source's other streams stopped (" + ffmpeg::error_text(r) + ")");
          side_done = true;
          break;
        }
        side_pending = true;
      }
      const AVStream* in = side->streams[side_packet->stream_index];
      if (packet_time(side_packet, in->time_base) > until) return;
      SideStream& s = side_streams[side_packet->stream_index];
      if (s.kind == SideStream::kCopy) {
        av_packet_rescale_ts(side_packet, in->time_base, out->streams[s.out_index]->time_base);
        side_packet->stream_index = s.out_index;
        side_packet->pos = -1;
        mux(side_packet);  // takes the packet's data and leaves it blank
      } else if (s.kind == SideStream::kTranscode) {
        transcode_packet(s, side_packet);
      }
      av_packet_unref(side_packet);
      side_pending = false;
    }
  }

  void flush_side() {
    pump_side(INT64_MAX);
    for (SideStream& s : side_streams) {
      if (s.kind != SideStream::kTranscode) continue;
      transcode_packet(s, nullptr);  // drain the decoder
      AudioTranscode& a = *s.audio;
      if (a.swr) convert_audio(a, nullptr);  // the resampler's tail
      encode_fifo(a, s.out_index, true);
      if (a.next_pts == AV_NOPTS_VALUE) continue;  // never got a sample: nothing to flush
      check(avcodec_send_frame(a.enc, nullptr), "audio encoding failed");
      drain_audio(a, s.out_index);
    }
  }

  void set_up_transcode(SideStream& s, const AVStream* in) {
    const AVOutputFormat* ofmt = out->oformat;
    const AVCodec* codec = nullptr;
    if (container_takes(ofmt, AV_CODEC_ID_AAC)) codec = avcodec_find_encoder(AV_CODEC_ID_AAC);
    if (!codec && ofmt->audio_codec != AV_CODEC_ID_NONE) codec = avcodec_find_encoder(ofmt->audio_codec);
    const AVCodec* decoder = avcodec_find_decoder(in->codecpar->codec_id);
    if (!codec || !decoder) {
      warning("dropping audio " + stream_label(in) + ": the " + ofmt->name +
              " container cannot hold it and no encoder fits");
      return;
    }
    auto a = std::make_unique<AudioTranscode>();
    a->dec = avcodec_alloc_context3(decoder);
    avcodec_parameters_to_context(a->dec, in->codecpar);
    a->dec->pkt_timebase = in->time_base;
    check(avcodec_open2(a->dec, decoder, nullptr), "cannot open the audio decoder for " + stream_label(in));

    a->enc = avcodec_alloc_context3(codec);
    a->enc->sample_fmt = codec->sample_fmts ? codec->sample_fmts[0] : AV_SAMPLE_FMT_FLTP;
    int rate = a->dec->sample_rate > 0 ? a->dec->sample_rate : 48000;
    if (codec->supported_samplerates) {
      bool ok = false;
      for (const int* r = codec->supported_samplerates; *r; ++r) ok |= *r == rate;
      if (!ok) rate = 48000;
    }
    a->enc->sample_rate = rate;
    AVChannelLayout layout;
    av_channel_layout_default(&layout, a->dec->ch_layout.nb_channels > 0 ? a->dec->ch_layout.nb_channels : 2);
    if (a->dec->ch_layout.order == AV_CHANNEL_ORDER_NATIVE) av_channel_layout_copy(&layout, &a->dec->ch_layout);
    if (codec->ch_layouts) {
      bool ok = false;
      for (const AVChannelLayout* l = codec->ch_layouts; l->nb_channels; ++l) ok |= !av_channel_layout_compare(l, &layout);
      if (!ok) {
        av_channel_layout_uninit(&layout);
        layout = AV_CHANNEL_LAYOUT_STEREO;
      }
    }
    av_channel_layout_copy(&a->enc->ch_layout, &layout);
    av_channel_layout_uninit(&layout);
    const int channels = a->enc->ch_layout.nb_channels;
    a->enc->bit_rate = std::min(96000LL * std::min(channels, 2) + 64000LL * std::max(channels - 2, 0),
                                5LL * rate * channels);  // AAC carries at most 6 bits per sample
    a->enc->time_base = AVRational{1, rate};
    if (out->oformat->flags & AVFMT_GLOBALHEADER) a->enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    check(avcodec_open2(a->enc, codec, nullptr), std::string("cannot open the ") + codec->name + " audio encoder");

    a->fifo = av_audio_fifo_alloc(a->enc->sample_fmt, a->enc->ch_layout.nb_channels, 4096);
    a->decoded = av_frame_alloc();
    a->chunk = av_frame_alloc();
    if (!a->fifo || !a->decoded || !a->chunk) throw file_error(path, "out of memory");

    AVStream* st = avformat_new_stream(out, nullptr);
    if (!st) throw file_error(path, "out of memory");
    check(avcodec_parameters_from_context(st->codecpar, a->enc), "cannot describe the audio stream");
    st->time_base = a->enc->time_base;
    copy_stream_metadata(&st->metadata, in->metadata, true);
    st->disposition = in->disposition;
    warning("re-encoding audio " + stream_label(in) + " to " + codec->name + ": the " + ofmt->name +
            " container cannot hold " + avcodec_get_name(in->codecpar->codec_id));
    s.kind = SideStream::kTranscode;
    s.out_index = st->index;
    s.audio = std::move(a);
  }

  void copy_stream(SideStream& s, const AVStream* in) {
    AVStream* st = avformat_new_stream(out, nullptr);
    if (!st) throw file_error(path, "out of memory");
    check(avcodec_parameters_copy(st->codecpar, in->codecpar), "cannot copy " + stream_label(in));
    st->codecpar->codec_tag = 0;  // the output container picks its own tag
    st->time_base = in->time_base;
    st->disposition = in->disposition;
    copy_stream_metadata(&st->metadata, in->metadata, false);
    s.kind = SideStream::kCopy;
    s.out_index = st->index;
  }

  // Decides, stream by stream, what happens to everything but the upscaled video.
  void plan_side_streams(const std::string& source_path, int video_index) {
    int r = avformat_open_input(&side, source_path.c_str(), nullptr, nullptr);
    if (r < 0) throw file_error(source_path, "cannot open as a video (" + ffmpeg::error_text(r) + ")");
    check(avformat_find_stream_info(side, nullptr), "cannot read the source's streams");
    side_streams.resize(side->nb_streams);
    const AVOutputFormat* ofmt = out->oformat;
    for (unsigned i = 0; i < side->nb_streams; ++i) {
      AVStream* in = side->streams[i];
      SideStream& s = side_streams[i];
      const AVMediaType type = in->codecpar->codec_type;
      const std::string label = stream_label(in);
      if (static_cast<int>(i) == video_index) {
      } else if (in->discard == AVDISCARD_ALL) {
        // Discarded by the demuxer itself: an mp4/mov chapter text track, whose
        // content arrives as chapters (copied with the container information).
      } else if (type == AVMEDIA_TYPE_AUDIO) {
        if (container_takes(ofmt, in->codecpar->codec_id)) copy_stream(s, in);
        else set_up_transcode(s, in);
      } else if (type == AVMEDIA_TYPE_SUBTITLE) {
        if (container_takes(ofmt, in->codecpar->codec_id)) copy_stream(s, in);
        else warning("dropping subtitle " + label + ": the " + ofmt->name + " container cannot hold it");
      } else if (type == AVMEDIA_TYPE_ATTACHMENT) {
        if (is_matroska(ofmt)) copy_stream(s, in);
        else warning("dropping attachment " + label + ": only Matroska holds attachments");
      } else if (type == AVMEDIA_TYPE_VIDEO) {
        warning("dropping " + label + ((in->disposition & AV_DISPOSITION_ATTACHED_PIC)
                                           ? std::string(": cover art is not carried over")
                                           : std::string(": only the first video stream is upscaled")));
      } else {
        warning("dropping " + label + ": data streams are not carried over");
      }
      if (s.kind == SideStream::kDrop) in->discard = AVDISCARD_ALL;
    }
    side_packet = av_packet_alloc();
    audio_packet = av_packet_alloc();
    if (!side_packet || !audio_packet) throw file_error(path, "out of memory");
    side_done = false;
  }

  void copy_container_info() {
    av_dict_copy(&out->metadata, side->metadata, 0);
    if (side->nb_chapters == 0) return;
    out->chapters = static_cast<AVChapter**>(av_calloc(side->nb_chapters, sizeof(AVChapter*)));
    if (!out->chapters) throw file_error(path, "out of memory");
    for (unsigned i = 0; i < side->nb_chapters; ++i) {
      const AVChapter* in = side->chapters[i];
      AVChapter* c = static_cast<AVChapter*>(av_mallocz(sizeof(AVChapter)));
      if (!c) throw file_error(path, "out of memory");
      c->id = in->id, c->time_base = in->time_base, c->start = in->start, c->end = in->end;
      av_dict_copy(&c->metadata, in->metadata, 0);
      out->chapters[out->nb_chapters++] = c;
    }
  }

  // The requested pixel format, or (as FFmpeg's own tool does, but with a
  // warning) the closest one the encoder takes. 8-bit RGB requests prefer an
  // 8-bit RGB layout (ffv1 takes bgr0, not gbrp), so RGB stays exact.
  AVPixelFormat choose_pix_fmt(const AVCodec* codec, AVPixelFormat want, const std::string& name) const {
    if (!codec->pix_fmts) return want;
    for (const AVPixelFormat* p = codec->pix_fmts; *p != AV_PIX_FMT_NONE; ++p)
      if (*p == want) return want;
    AVPixelFormat pick = AV_PIX_FMT_NONE;
    if (ffmpeg::is_rgb8(want))
      for (const AVPixelFormat* p = codec->pix_fmts; *p != AV_PIX_FMT_NONE && pick == AV_PIX_FMT_NONE; ++p)
        if (ffmpeg::is_rgb8(*p) && av_pix_fmt_desc_get(*p)->nb_components == 3) pick = *p;
    if (pick == AV_PIX_FMT_NONE) pick = avcodec_find_best_pix_fmt_of_list(codec->pix_fmts, want, 0, nullptr);
    if (pick == AV_PIX_FMT_NONE)
      throw file_error(path, "encoder " + name + " takes no pixel format close to " + av_get_pix_fmt_name(want));
    warning("encoder " + name + " does not take pixel format " + av_get_pix_fmt_name(want) + "; using " +
            av_get_pix_fmt_name(pick) +
            (ffmpeg::is_rgb8(want) && ffmpeg::is_rgb8(pick) ? " (the same 8-bit RGB, still exact)" : ""));
    return pick;
  }

  // Encoder, output context and video stream; `source` may be null.
  void open_video(const VideoReader* source, Rational time_base, Rational frame_rate,
                  const VideoEncodeOptions& o) {
    const AVOutputFormat* ofmt = av_guess_format(nullptr, path.c_str(), nullptr);
    if (!ofmt) throw file_error(path, "cannot tell the container from the file name (use .mp4, .mkv, .mov, ...)");
    const AVCodec* codec = avcodec_find_encoder_by_name(o.codec.c_str());
    if (!codec) throw file_error(path, "unknown encoder '" + o.codec + "' (this FFmpeg has none by that name)");
    if (codec->type != AVMEDIA_TYPE_VIDEO) throw file_error(path, "'" + o.codec + "' is not a video encoder");
    pix = av_get_pix_fmt(o.pix_fmt.c_str());
    if (pix == AV_PIX_FMT_NONE) throw file_error(path, "unknown pixel format '" + o.pix_fmt + "'");
    pix = choose_pix_fmt(codec, pix, o.codec);
    if (avformat_query_codec(ofmt, codec->id, FF_COMPLIANCE_NORMAL) == 0)
      throw file_error(path, std::string("the ") + ofmt->name + " container cannot hold " + codec->name +
                                 " video (try .mkv)");

    check(avformat_alloc_output_context2(&out, ofmt, nullptr, tmp.c_str()), "cannot set up the output");
    enc = avcodec_alloc_context3(codec);
    frame = av_frame_alloc();
    packet = av_packet_alloc();
    if (!enc || !frame || !packet) throw file_error(path, "out of memory");

    enc->width = width;
    enc->height = height;
    enc->pix_fmt = pix;
    enc->time_base = AVRational{time_base.num, time_base.den};
    enc->framerate = AVRational{frame_rate.num, frame_rate.den};
    enc->thread_count = 0;
    const bool rgb = av_pix_fmt_desc_get(pix)->flags & AV_PIX_FMT_FLAG_RGB;
    if (source) {
      const Rational sar = source->sample_aspect_ratio();
      enc->sample_aspect_ratio = AVRational{sar.num, sar.den};
      const VideoReader::Color c = source->color();
      enc->color_primaries = static_cast<AVColorPrimaries>(c.primaries);
      enc->color_trc = static_cast<AVColorTransferCharacteristic>(c.transfer);
    }
    if (rgb) {
      enc->colorspace = AVCOL_SPC_RGB;
      enc->color_range = AVCOL_RANGE_JPEG;
    } else {
      // The matrix the frames will be converted with, stated so players need not guess
      // (the reader decoded with the same one; BT.601 when the source did not say).
      enc->colorspace = static_cast<AVColorSpace>(source ? source->color().matrix_used : AVCOL_SPC_SMPTE170M);
      const char* name = av_get_pix_fmt_name(pix);
      enc->color_range = std::strncmp(name, "yuvj", 4) == 0 ? AVCOL_RANGE_JPEG : AVCOL_RANGE_MPEG;
    }
    if (ofmt->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;

    const bool has_crf = av_opt_find(enc->priv_data, "crf", nullptr, 0, 0) != nullptr;
    if (has_crf) {
      check(av_opt_set_double(enc->priv_data, "crf", o.crf.value_or(18.0), 0), "bad --crf value");
    } else if (o.crf) {
      warning("encoder " + o.codec + " has no crf setting; --crf ignored");
    }
    for (const auto& [key, value] : o.encoder_options)
      check(av_opt_set(enc, key.c_str(), value.c_str(), AV_OPT_SEARCH_CHILDREN),
            "encoder " + o.codec + " rejects option " + key + "=" + value);
    check(avcodec_open2(enc, codec, nullptr), "cannot open the " + o.codec + " encoder");

    video = avformat_new_stream(out, nullptr);
    if (!video) throw file_error(path, "out of memory");
    check(avcodec_parameters_from_context(video->codecpar, enc), "cannot describe the video stream");
    video->time_base = enc->time_base;
    video->avg_frame_rate = enc->framerate;
    video->r_frame_rate = enc->framerate;
    video->sample_aspect_ratio = enc->sample_aspect_ratio;

    frame->format = pix;
    frame->width = width;
    frame->height = height;
    check(av_frame_get_buffer(frame, 0), "out of memory");
    if (!ffmpeg::is_rgb8(pix)) {
      sws = sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height, pix,
                           SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP | SWS_FULL_CHR_H_INT, nullptr,
                           nullptr, nullptr);
      if (!sws) throw file_error(path, "cannot convert RGB frames to " + o.pix_fmt);
      if (!rgb)
        sws_setColorspaceDetails(sws, sws_getCoefficients(SWS_CS_DEFAULT), 1, sws_getCoefficients(enc->colorspace),
                                 enc->color_range == AVCOL_RANGE_JPEG ? 1 : 0, 0, 1 << 16, 1 << 16);
    }
  }

  void copy_video_stream_info(int video_index) {
    const AVStream* in = side->streams[video_index];
    copy_stream_metadata(&video->metadata, in->metadata, true);
    video->disposition = in->disposition;
    size_t size = 0;
    const uint8_t* matrix = av_stream_get_side_data(in, AV_PKT_DATA_DISPLAYMATRIX, &size);
    if (matrix && size >= 9 * sizeof(int32_t)) {
      uint8_t* dst = av_stream_new_side_data(video, AV_PKT_DATA_DISPLAYMATRIX, size);
      if (dst) std::memcpy(dst, matrix, size);
    }
  }

  static std::unique_ptr<Impl> make(const std::string& path, int width, int height, const VideoEncodeOptions& o) {
    ffmpeg::init_logging();
    if (width <= 0 || height <= 0)
      throw file_error(path, "cannot write " + std::to_string(width) + "x" + std::to_string(height) + " video");
    auto m = std::make_unique<Impl>();
    m->path = path;
    m->tmp = path + ".tmp-" + std::to_string(::getpid());
    m->warn = o.warn;
    m->width = width;
    m->height = height;
    return m;
  }

  void write_header() {
    if (!(out->oformat->flags & AVFMT_NOFILE))
      check(avio_open(&out->pb, tmp.c_str(), AVIO_FLAG_WRITE), "cannot create " + tmp);
    check(avformat_write_header(out, nullptr), "cannot write the container header");
    header_written = true;
  }
};

VideoWriter::VideoWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VideoWriter::VideoWriter(VideoWriter&&) noexcept = default;
VideoWriter& VideoWriter::operator=(VideoWriter&&) noexcept = default;
VideoWriter::~VideoWriter() = default;


VideoWriter VideoWriter::open(const std::string& path, const VideoReader& source, int width, int height,
                              const VideoEncodeOptions& options) {
  auto m = Impl::make(path, width, height, options);
  m->open_video(&source, source.time_base(), source.frame_rate(), options);
  m->plan_side_streams(source.path(), source.video_stream_index());
  m->copy_video_stream_info(source.video_stream_index());
  m->copy_container_info();
  m->write_header();
  return VideoWriter(std::move(m));
}

VideoWriter VideoWriter::create(const std::string& path, int width, int height, Rational frame_rate,
                                const VideoEncodeOptions& options) {
  if (frame_rate.num <= 0 || frame_rate.den <= 0) throw file_error(path, "frame rate must be positive");
  auto m = Impl::make(path, width, height, options);
  m->open_video(nullptr, Rational{frame_rate.den, frame_rate.num}, frame_rate, options);
  m->write_header();
  return VideoWriter(std::move(m));
}

void VideoWriter::write(const Image& image, int64_t pts) {
  Impl& m = *impl_;
  if (m.finished) throw file_error(m.path, "write after finish");
  if (image.width != m.width || image.height != m.height ||
      image.rgb.size() != static_cast<size_t>(m.width) * m.height * 3)
    throw file_error(m.path, "frame " + std::to_string(m.frames + 1) + " is " + std::to_string(image.width) + "x" +
                                 std::to_string(image.height) + ", the video is " + std::to_string(m.width) + "x" +
                                 std::to_string(m.height));
  if (m.last_pts != INT64_MIN && pts <= m.last_pts)
    throw file_error(m.path, "frame timestamps must increase (" + std::to_string(pts) + " after " +
                                 std::to_string(m.last_pts) + ")");
  m.check(av_frame_make_writable(m.frame), "out of memory");
  if (!m.sws) {
    ffmpeg::image_to_rgb8_frame(image, m.frame);  // exact, no swscale
  } else {
    const uint8_t* src[4] = {image.rgb.data(), nullptr, nullptr, nullptr};
    const int stride[4] = {m.width * 3, 0, 0, 0};
    sws_scale(m.sws, src, stride, 0, m.height, m.frame->data, m.frame->linesize);
  }
  m.frame->pts = pts;
  m.last_pts = pts;
  m.check(avcodec_send_frame(m.enc, m.frame), "video encoding failed");
  ++m.frames;
  m.drain_video();
}

void VideoWriter::finish() {
  Impl& m = *impl_;
  if (m.finished) return;
  m.check(avcodec_send_frame(m.enc, nullptr), "video encoding failed");
  m.drain_video();
  m.flush_side();
  m.check(av_write_trailer(m.out), "cannot finish the container");
  if (!(m.out->oformat->flags & AVFMT_NOFILE)) m.check(avio_closep(&m.out->pb), "cannot close " + m.tmp);
  if (std::rename(m.tmp.c_str(), m.path.c_str()) != 0)
    throw file_error(m.path, std::string("cannot rename the temporary file into place (") + std::strerror(errno) + ")");
  m.finished = true;
}

const std::string& VideoWriter::path() const { return impl_->path; }
const std::string& VideoWriter::temp_path() const { return impl_->tmp; }
int64_t VideoWriter::frames_written() const { return impl_->frames; }

}  // namespace sdvsr
