#pragma once
// TemporalAutoencoderTiny (Stream-DiffVSR temporal_autoencoder/autoencoder_tiny.py):
// a TAESD-style tiny autoencoder whose decoder blocks fuse features of the
// warped previous output frame (spec/temporal-vae.md).
//
// Per frame the pipeline does:
//   frame 0:  image = decode(latents / scaling_factor(), nullptr)
//   frame k:  feats = temporal_features(warped_previous_output)
//             image = decode(latents / scaling_factor(), &feats)
// The decoded image is in about [-1, 1] and NOT clamped (it is what gets warped
// for the next frame). No state is kept between calls (upstream's
// reset_temporal_condition() after every frame is implicit).
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/temporal_vae_block.h"
#include "models/temporal_vae_config.h"
#include "runtime/backend.h"
#include "weights/model_config.h"
#include "weights/weight_store.h"

namespace sdvsr {

class TemporalAutoencoderTiny {
 public:
  // <folder>/config.json + diffusion_pytorch_model.safetensors (else
  // diffusion_pytorch_model.bin); every tensor of the file must be used, except
  // the encoder blocks' alpha / temporal_processor tensors, which are optional.
  static std::unique_ptr<TemporalAutoencoderTiny> load(const std::string& folder, Backend& be);

  // `weights` is scoped at the VAE root (keys "encoder.layers.*", "decoder.layers.*").
  // Encoder temporal tensors found in the store are marked as knowingly ignored.
  TemporalAutoencoderTiny(const ModelConfig& cfg, WeightScope weights, Backend& be);

  // upstream encode(x).latents: the encoder on (x + 1) / 2, image [N, in, H, W]
  // in [-1, 1] -> latents [N, latent, H/f, W/f] (f = vae_scale_factor()). Not
  // multiplied by scaling_factor (TAESD convention). The pipeline never calls it.
  Tensor encode(const Tensor& image);

  // upstream encode(x, return_features_only=True): the encoder layers run on the
  // RAW image (no (x+1)/2 remap, as upstream), collecting the output of every
  // encoder block in layer order (shallowest first).
  std::vector<Tensor> encoder_block_features(const Tensor& image);

  // What decode() needs of encoder_block_features(image): the list reversed
  // (deepest first, as upstream hands it to decode(): entry k belongs to the
  // k-th decoder block), each map 4x4 average-pooled, the only way the TPM reads
  // it. Each full map is dropped as soon as it is pooled.
  std::vector<Tensor> temporal_features(const Tensor& image);
  // The same from full feature maps in encoder order (e.g. upstream's features).
  std::vector<Tensor> pool_temporal_features(const std::vector<Tensor>& encoder_features);

  // The decoder: 3*tanh(z/3), layers, 2y-1. `latent` is already divided by
  // scaling_factor() (the caller does that, like the pipeline). With
  // `temporal_features` (decoder order and pooled, as returned by
  // temporal_features()) every decoder block runs its TPM; nullptr decodes
  // without temporal state (frame 0).
  Tensor decode(const Tensor& latent, const std::vector<Tensor>* temporal_features);

  double scaling_factor() const { return config_.scaling_factor; }
  double shift_factor() const { return config_.shift_factor; }
  int vae_scale_factor() const { return config_.vae_scale_factor(); }
  int64_t latent_channels() const { return config_.latent_channels; }
  // Number of decoder blocks = entries decode() expects in temporal_features.
  size_t num_temporal_blocks() const;
  const TemporalVaeConfig& config() const { return config_; }

 private:
  // One entry of an nn.Sequential: a conv, the activation, an upsampling, or a block.
  struct Layer {
    enum class Kind { kConv, kActivation, kUpsample, kBlock } kind;
    Tensor weight, bias;  // kConv (bias undefined when bias=False)
    int stride = 1;       // kConv
    std::unique_ptr<TemporalAutoencoderTinyBlock> block;  // kBlock
  };

  void build_encoder(const WeightScope& w);
  void build_decoder(const WeightScope& w);
  static Layer conv_layer(const WeightScope& w, int64_t index, int64_t in, int64_t out,
                          int stride, bool bias);
  // Takes x by value so an activation layer can work in place on a tensor
  // the loop gave up.
  Tensor run_layer(const Layer& layer, Tensor x, const Tensor* prev) const;
  // A kConv layer as a backend's ConvStage (3x3, padding 1, the layer's stride).
  static ConvStage conv_stage(const Layer& conv);
  // The decoder's layers from `i` on x; a nearest upsampling and the conv after
  // it run as one op (Backend::upsample_nearest_conv2d). Returns the layers taken.
  size_t run_decoder_layer(size_t i, Tensor& x, const Tensor* prev) const;
  // The encoder up to its last block; `each_block` gets every block's output.
  void run_encoder_blocks(const Tensor& image, const std::function<void(const Tensor&)>& each_block);
  void check_image(const Tensor& image, const char* what) const;

  TemporalVaeConfig config_;
  Backend& be_;
  std::vector<Layer> encoder_layers_;  // encoder.layers.<i>
  std::vector<Layer> decoder_layers_;  // decoder.layers.<i>
};

}  // namespace sdvsr
