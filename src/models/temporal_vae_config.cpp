#include "models/temporal_vae_config.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>

#include "runtime/warnings.h"

namespace sdvsr {

namespace {

std::string list_str(const std::vector<int64_t>& v) { return shape_str(v); }

// diffusers.models.activations.get_activation (lower-cased names).
Activation resolve_activation(const ModelConfig& cfg, std::string name) {
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (name == "relu") return Activation::kReLU;
  if (name == "silu" || name == "swish") return Activation::kSiLU;
  if (name == "gelu") return Activation::kGELU;
  cfg.fail("act_fn", "activation '" + name + "' is not supported (relu, silu, swish, gelu)");
}

void require_uniform(const ModelConfig& cfg, const std::string& key,
                     const std::vector<int64_t>& v) {
  for (int64_t c : v)
    if (c != v.front() || c <= 0)
      cfg.fail(key, list_str(v) +
                        ": every stage must have the same positive width (each stage's first "
                        "conv maps the stage width to itself)");
}

}  // namespace

TemporalVaeConfig TemporalVaeConfig::from(const ModelConfig& cfg) {
  TemporalVaeConfig c;
  c.in_channels = cfg.get_int("in_channels", c.in_channels);
  c.out_channels = cfg.get_int("out_channels", c.out_channels);
  if (cfg.has("encoder_block_out_channels"))
    c.encoder_block_out_channels = cfg.get_int_list("encoder_block_out_channels");
  if (cfg.has("decoder_block_out_channels"))
    c.decoder_block_out_channels = cfg.get_int_list("decoder_block_out_channels");
  if (cfg.has("num_encoder_blocks")) c.num_encoder_blocks = cfg.get_int_list("num_encoder_blocks");
  if (cfg.has("num_decoder_blocks")) c.num_decoder_blocks = cfg.get_int_list("num_decoder_blocks");
  c.act_fn = cfg.get_string("act_fn", c.act_fn);
  c.upsample_fn = cfg.get_string("upsample_fn", c.upsample_fn);
  c.latent_channels = cfg.get_int("latent_channels", c.latent_channels);
  c.latent_magnitude = cfg.get_float("latent_magnitude", c.latent_magnitude);
  c.latent_shift = cfg.get_float("latent_shift", c.latent_shift);
  c.scaling_factor = cfg.get_float("scaling_factor", c.scaling_factor);
  c.shift_factor = cfg.get_float("shift_factor", c.shift_factor);

  // nn.Upsample(scale_factor=...) with an integer factor; a float spelling of an
  // integer (2.0) is accepted.
  const double up = cfg.get_float("upsampling_scaling_factor", 2.0);
  if (up < 1 || up != std::floor(up))
    cfg.fail("upsampling_scaling_factor", "must be a positive integer, got " + std::to_string(up));
  c.upsampling_scaling_factor = static_cast<int64_t>(up);

  c.activation = resolve_activation(cfg, c.act_fn);
  if (c.upsample_fn == "nearest")
    c.upsample_bilinear = false;
  else if (c.upsample_fn == "bilinear")
    c.upsample_bilinear = true;
  else
    cfg.fail("upsample_fn", "mode '" + c.upsample_fn + "' is not supported (nearest, bilinear)");

  for (const char* key : {"in_channels", "out_channels", "latent_channels"})
    if (cfg.get_int(key, 1) <= 0) cfg.fail(key, "must be positive");

  // Lengths: the original raises for a channel list whose length differs from
  // its block-count list; equal encoder/decoder stage counts pair the features.
  const size_t s = c.encoder_block_out_channels.size();
  if (s == 0) cfg.fail("encoder_block_out_channels", "needs at least one stage");
  if (c.num_encoder_blocks.size() != s)
    cfg.fail("num_encoder_blocks", list_str(c.num_encoder_blocks) +
                                       " must have the length of encoder_block_out_channels " +
                                       list_str(c.encoder_block_out_channels));
  if (c.decoder_block_out_channels.size() != s)
    cfg.fail("decoder_block_out_channels",
             list_str(c.decoder_block_out_channels) +
                 " must have as many stages as encoder_block_out_channels " +
                 list_str(c.encoder_block_out_channels));
  if (c.num_decoder_blocks.size() != s)
    cfg.fail("num_decoder_blocks", list_str(c.num_decoder_blocks) +
                                       " must have the length of decoder_block_out_channels " +
                                       list_str(c.decoder_block_out_channels));
  for (int64_t b : c.num_encoder_blocks)
    if (b < 0) cfg.fail("num_encoder_blocks", "negative block count");

  // Pairing: decoder stage i takes the reversed block outputs of encoder stage S-1-i.
  std::vector<int64_t> reversed(c.num_encoder_blocks.rbegin(), c.num_encoder_blocks.rend());
  if (c.num_decoder_blocks != reversed)
    cfg.fail("num_decoder_blocks", list_str(c.num_decoder_blocks) +
                                       " must be num_encoder_blocks reversed (" +
                                       list_str(reversed) + ") for the temporal feature pairing");

  require_uniform(cfg, "encoder_block_out_channels", c.encoder_block_out_channels);
  require_uniform(cfg, "decoder_block_out_channels", c.decoder_block_out_channels);
  if (c.encoder_block_out_channels.front() != c.decoder_block_out_channels.front())
    cfg.fail("decoder_block_out_channels",
             list_str(c.decoder_block_out_channels) + " must equal encoder_block_out_channels " +
                 list_str(c.encoder_block_out_channels) + " for the temporal feature pairing");

  if (cfg.has("block_out_channels") &&
      cfg.get_int_list("block_out_channels") != c.decoder_block_out_channels)
    warn(cfg.path() + ": block_out_channels " + list_str(cfg.get_int_list("block_out_channels")) +
         " differs from decoder_block_out_channels; the decoder list is used");
  if (c.upsampling_scaling_factor != 2)
    warn(cfg.path() + ": upsampling_scaling_factor " + std::to_string(c.upsampling_scaling_factor) +
         " is not 2: decoder levels will not match the encoder's, so decoding with temporal "
         "features will fail");
  return c;
}

}  // namespace sdvsr
