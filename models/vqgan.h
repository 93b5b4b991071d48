// models/vqgan.h — the taming-transformers VQGAN autoencoder (method.md §5.1): Encoder, Decoder,
// quant_conv and post_quant_conv, with parameters under taming's VQModel state_dict names so that
// checkpoints move between nsvq and PyTorch by name (docs/models.md).
//
// Shapes: x [B, in_channels, R, R] -> Encoder -> [B, z_channels, R/f, R/f] -> quant_conv ->
// z_e [B, D, h, w] (D = embed_dim, f = 2^(len(ch_mult)-1), h = w = R/f).
// The quantizer (models/quantizer.*, "quantize.*") sits between: it maps z_e to zq [B, D, h, w].
// zq -> post_quant_conv -> [B, z_channels, h, w] -> Decoder -> x_hat [B, out_channels, R, R].
//
// Blocks (names relative to their module):
//   ResnetBlock  norm1 (GN+SiLU) conv1 3x3, norm2 (GN+SiLU) conv2 3x3, nin_shortcut 1x1 if in != out
//   AttnBlock    norm (GN), q k v 1x1, single-head attention over h*w, proj_out 1x1, residual
//   Downsample   conv 3x3 stride 2 on the input zero-padded right and bottom by 1
//   Upsample     nearest x2, conv 3x3
// Encoder: conv_in, down.{i}.block.{j} / down.{i}.attn.{j} / down.{i}.downsample (not at the last
// level), mid.block_1, mid.attn_1, mid.block_2, norm_out, conv_out.
// Decoder: conv_in, mid.*, up.{i}.block.{j} / up.{i}.attn.{j} / up.{i}.upsample (not at level 0),
// norm_out, conv_out; up is indexed by level (0 = full resolution) but runs from the last level to 0.
#pragma once
#include <memory>
#include <string>
#include <vector>
#include "models/module.h"

namespace nsvq {

struct VqganConfig {
  std::string name = "custom";
  int in_channels = 3;
  int out_channels = 3;
  int resolution = 32;               // input height = width
  int ch = 32;
  std::vector<int> ch_mult = {1, 2, 2};
  int num_res_blocks = 1;            // encoder ResnetBlocks per level
  int dec_num_res_blocks = 2;        // decoder ResnetBlocks per level (taming: num_res_blocks + 1)
  std::vector<int> attn_resolutions; // resolutions with an AttnBlock after each ResnetBlock
  bool mid_attn = true;              // mid.attn_1 (taming always; false = LDM attn_type "none")
  int z_channels = 16;
  int embed_dim = 16;                // D, the code dimension
  int gn_groups = 32;
  float gn_eps = 1e-6f;
  float dropout = 0.0f;              // accepted for config compatibility and ignored (taming uses 0)

  int levels() const { return (int)ch_mult.size(); }
  int downsample_factor() const { return 1 << (levels() - 1); }
  int latent_size() const { return resolution / downsample_factor(); }
  void validate() const;  // fails naming the bad knob
};

// The architecture as one JSON object with taming's ddconfig keys (ch, ch_mult, num_res_blocks, ...),
// stored in inference files so that other implementations can build the network.
std::string vqgan_config_json(const VqganConfig& c);

// "fmnist" | "cifar10" | "imagenet128" (see docs/models.md); fails listing the valid names.
VqganConfig vqgan_preset(const std::string& name);
std::vector<std::string> vqgan_preset_names();

struct ResnetBlock {
  NormAffine norm1, norm2;
  Conv2d conv1, conv2, nin_shortcut;  // nin_shortcut.w == nullptr when in == out
  int groups = 32;
  float eps = 1e-6f;
  ResnetBlock() = default;
  ResnetBlock(const ParamSet& ps, int64_t in, int64_t out, int groups, float eps);
  Tensor* forward(Graph& g, Tensor* x) const;
};

struct AttnBlock {
  NormAffine norm;
  Conv2d q, k, v, proj_out;
  int groups = 32;
  float eps = 1e-6f;
  AttnBlock() = default;
  AttnBlock(const ParamSet& ps, int64_t c, int groups, float eps);
  Tensor* forward(Graph& g, Tensor* x) const;
};

// One resolution level: ResnetBlocks, optional AttnBlocks (one after each block), optional resampler.
struct VqganLevel {
  std::vector<ResnetBlock> block;
  std::vector<AttnBlock> attn;
  Conv2d resample;  // downsample.conv / upsample.conv; w == nullptr when absent
};

class Encoder {
 public:
  // Registers "<ps prefix>.conv_in.weight", ... (pass ParamSet(store, seed).scope("encoder")).
  Encoder(const ParamSet& ps, const VqganConfig& cfg);
  Tensor* forward(Graph& g, Tensor* x) const;  // [B, in, R, R] -> [B, z_channels, R/f, R/f]
  const VqganConfig& config() const { return cfg_; }

 private:
  VqganConfig cfg_;
  Conv2d conv_in_, conv_out_;
  std::vector<VqganLevel> down_;
  ResnetBlock mid_block_1_, mid_block_2_;
  AttnBlock mid_attn_1_;
  NormAffine norm_out_;
};

class Decoder {
 public:
  Decoder(const ParamSet& ps, const VqganConfig& cfg);
  Tensor* forward(Graph& g, Tensor* z) const;  // [B, z_channels, h, w] -> [B, out, h*f, w*f]
  const VqganConfig& config() const { return cfg_; }
  Tensor* conv_out_weight() const { return conv_out_.w; }  // W_L of the adaptive GAN weight

 private:
  VqganConfig cfg_;
  Conv2d conv_in_, conv_out_;
  std::vector<VqganLevel> up_;  // indexed by level, run from the last level to 0
  ResnetBlock mid_block_1_, mid_block_2_;
  AttnBlock mid_attn_1_;
  NormAffine norm_out_;
};

// Which half of a model to build: inference registers (and loads) only what it runs.
enum class ModelPart { all, encoder, decoder };
const char* model_part_name(ModelPart p);          // "all" | "encoder" | "decoder"
ModelPart model_part_from_name(const std::string& s);  // fails listing the valid names

// The autoencoder around the quantizer seam: encoder + quant_conv, post_quant_conv + decoder, in
// taming's state_dict order (encoder, decoder, [quantize: registered by the quantizer],
// quant_conv, post_quant_conv). All parameters in group GROUP_GENERATOR. A part registers only its
// half (ModelPart::encoder: encoder + quant_conv); using the other half fails with one line.
class VqganAutoencoder {
 public:
  VqganAutoencoder(Store& st, const VqganConfig& cfg, uint64_t seed, ModelPart part = ModelPart::all);
  ~VqganAutoencoder();
  Tensor* encode(Graph& g, Tensor* x) const;   // x [B, in, R, R] -> z_e [B, D, h, w]
  Tensor* decode(Graph& g, Tensor* zq) const;  // zq [B, D, h, w] -> x_hat [B, out, R, R]
  const VqganConfig& config() const { return cfg_; }
  ModelPart part() const { return part_; }
  bool has_encoder() const { return encoder_ != nullptr; }
  bool has_decoder() const { return decoder_ != nullptr; }
  Tensor* last_layer_weight() const;

 private:
  VqganConfig cfg_;
  ModelPart part_;
  std::unique_ptr<Encoder> encoder_;
  std::unique_ptr<Decoder> decoder_;
  Conv2d quant_conv_, post_quant_conv_;
};

}  // namespace nsvq
