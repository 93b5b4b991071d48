// models/vqgan.cpp — VQGAN configs and presets, ResnetBlock, AttnBlock, Encoder, Decoder and the
// autoencoder wrapper (quant_conv / post_quant_conv) under taming-transformers' parameter names.
#include "models/vqgan.h"
#include <cstdio>
#include <algorithm>
#include <cmath>

namespace nsvq {

// ------------------------------------------------------------------------------------ config

void VqganConfig::validate() const {
  const char* n = name.c_str();
  if (in_channels < 1 || out_channels < 1) fail("vqgan %s: in_channels/out_channels must be >= 1", n);
  if (ch < 1 || ch_mult.empty()) fail("vqgan %s: ch must be >= 1 and ch_mult non-empty", n);
  for (int m : ch_mult)
    if (m < 1) fail("vqgan %s: ch_mult entries must be >= 1", n);
  if (num_res_blocks < 1 || dec_num_res_blocks < 1) fail("vqgan %s: num_res_blocks must be >= 1", n);
  if (z_channels < 1 || embed_dim < 1) fail("vqgan %s: z_channels and embed_dim must be >= 1", n);
  if (resolution < 1 || resolution % downsample_factor())
    fail("vqgan %s: resolution %d is not divisible by the downsampling factor %d", n, resolution, downsample_factor());
  if (gn_groups < 1) fail("vqgan %s: gn_groups must be >= 1", n);
  auto check_c = [&](int c) {
    if (c % gn_groups) fail("vqgan %s: %d channels cannot be split into %d GroupNorm groups", n, c, gn_groups);
  };
  check_c(ch);
  for (int m : ch_mult) check_c(ch * m);
}

std::vector<std::string> vqgan_preset_names() { return {"fmnist", "cifar10", "imagenet128"}; }

VqganConfig vqgan_preset(const std::string& name) {
  VqganConfig c;
  c.name = name;
  if (name == "fmnist" || name == "cifar10") {
    // Tier 1 (method.md §5.4): f4, 8x8 tokens; attention only in the mid blocks.
    c.in_channels = c.out_channels = name == "fmnist" ? 1 : 3;
    c.resolution = 32;
    c.ch = 32;
    c.ch_mult = {1, 2, 2};
    c.num_res_blocks = 1;
    c.dec_num_res_blocks = 2;
    c.attn_resolutions = {};
    c.mid_attn = true;
    c.z_channels = 16;
    c.embed_dim = 16;
    c.gn_groups = 8;
  } else if (name == "imagenet128") {
    // Paper scale for GPU users: f8, 16x16 tokens, no attention.
    c.in_channels = c.out_channels = 3;
    c.resolution = 128;
    c.ch = 128;
    c.ch_mult = {1, 2, 2, 4};
    c.num_res_blocks = 2;
    c.dec_num_res_blocks = 3;
    c.attn_resolutions = {};
    c.mid_attn = false;
    c.z_channels = 128;
    c.embed_dim = 128;
    c.gn_groups = 32;
  } else {
    std::string valid;
    for (const std::string& s : vqgan_preset_names()) valid += (valid.empty() ? "" : ", ") + s;
    fail("vqgan: unknown preset '%s' (valid: %s)", name.c_str(), valid.c_str());
  }
  c.validate();
  return c;
}

std::string vqgan_config_json(const VqganConfig& c) {
  auto list = [](const std::vector<int>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); i++) s += (i ? ", " : "") + std::to_string(v[i]);
    return s + "]";
  };
  char eps[32];
  snprintf(eps, sizeof eps, "%.9g", (double)c.gn_eps);
  return "{\"name\": \"" + c.name + "\", \"in_channels\": " + std::to_string(c.in_channels) +
         ", \"out_ch\": " + std::to_string(c.out_channels) + ", \"resolution\": " + std::to_string(c.resolution) +
         ", \"ch\": " + std::to_string(c.ch) + ", \"ch_mult\": " + list(c.ch_mult) +
         ", \"num_res_blocks\": " + std::to_string(c.num_res_blocks) +
         ", \"dec_num_res_blocks\": " + std::to_string(c.dec_num_res_blocks) +
         ", \"attn_resolutions\": " + list(c.attn_resolutions) + ", \"mid_attn\": " + (c.mid_attn ? "true" : "false") +
         ", \"z_channels\": " + std::to_string(c.z_channels) + ", \"embed_dim\": " + std::to_string(c.embed_dim) +
         ", \"gn_groups\": " + std::to_string(c.gn_groups) + ", \"gn_eps\": " + eps + "}";
}

// ------------------------------------------------------------------------------------ blocks

ResnetBlock::ResnetBlock(const ParamSet& ps, int64_t in, int64_t out, int groups_, float eps_)
    : norm1(ps, "norm1", in),
      norm2(ps, "norm2", out),
      conv1(ps, "conv1", in, out, 3, 1, 1),
      conv2(ps, "conv2", out, out, 3, 1, 1),
      groups(groups_),
      eps(eps_) {
  if (in != out) nin_shortcut = Conv2d(ps, "nin_shortcut", in, out, 1, 1, 0);
}

Tensor* ResnetBlock::forward(Graph& g, Tensor* x) const {
  Tensor* h = group_norm(g, x, norm1.w, norm1.b, groups, eps, /*fuse_silu=*/true);
  h = conv1.forward(g, h);
  h = group_norm(g, h, norm2.w, norm2.b, groups, eps, true);
  h = conv2.forward(g, h);  // dropout(0) before conv2 in taming: nothing to do
  Tensor* skip = nin_shortcut.w ? nin_shortcut.forward(g, x) : x;
  return add(g, skip, h);
}

AttnBlock::AttnBlock(const ParamSet& ps, int64_t c, int groups_, float eps_)
    : norm(ps, "norm", c),
      q(ps, "q", c, c, 1, 1, 0),
      k(ps, "k", c, c, 1, 1, 0),
      v(ps, "v", c, c, 1, 1, 0),
      proj_out(ps, "proj_out", c, c, 1, 1, 0),
      groups(groups_),
      eps(eps_) {}

Tensor* AttnBlock::forward(Graph& g, Tensor* x) const {
  int64_t B = x->ne[0], C = x->ne[1], H = x->ne[2], W = x->ne[3];
  Tensor* h = group_norm(g, x, norm.w, norm.b, groups, eps, false);
  // [B, C, H, W] -> [B, 1, H*W, C]: one head, positions as the sequence
  auto tokens = [&](Tensor* t) { return reshape(g, permute(g, reshape(g, t, {B, C, H * W}), {0, 2, 1}), {B, 1, H * W, C}); };
  Tensor* o = attention(g, tokens(q.forward(g, h)), tokens(k.forward(g, h)), tokens(v.forward(g, h)),
                        1.0f / std::sqrt((float)C));
  o = reshape(g, permute(g, reshape(g, o, {B, H * W, C}), {0, 2, 1}), {B, C, H, W});
  return add(g, x, proj_out.forward(g, o));
}

// ------------------------------------------------------------------------------------ encoder

Encoder::Encoder(const ParamSet& ps, const VqganConfig& cfg) : cfg_(cfg) {
  cfg.validate();
  int G = cfg.gn_groups;
  float eps = cfg.gn_eps;
  auto has_attn = [&](int res) {
    return std::find(cfg.attn_resolutions.begin(), cfg.attn_resolutions.end(), res) != cfg.attn_resolutions.end();
  };
  conv_in_ = Conv2d(ps, "conv_in", cfg.in_channels, cfg.ch, 3, 1, 1);
  int res = cfg.resolution;
  int64_t block_in = cfg.ch;
  for (int i = 0; i < cfg.levels(); i++) {
    ParamSet lp = ps.scope("down", i);
    VqganLevel lvl;
    block_in = (int64_t)cfg.ch * (i == 0 ? 1 : cfg.ch_mult[(size_t)i - 1]);
    int64_t block_out = (int64_t)cfg.ch * cfg.ch_mult[(size_t)i];
    for (int j = 0; j < cfg.num_res_blocks; j++) {
      lvl.block.emplace_back(lp.scope("block", j), block_in, block_out, G, eps);
      block_in = block_out;
      if (has_attn(res)) lvl.attn.emplace_back(lp.scope("attn", (int)lvl.attn.size()), block_in, G, eps);
    }
    if (i != cfg.levels() - 1) {
      lvl.resample = Conv2d(lp.scope("downsample"), "conv", block_in, block_in, 3, 2, 0);
      lvl.resample.set_padding(0, 1, 0, 1);  // taming pads (left 0, right 1, top 0, bottom 1)
      res /= 2;
    }
    down_.push_back(std::move(lvl));
  }
  ParamSet mid = ps.scope("mid");
  mid_block_1_ = ResnetBlock(mid.scope("block_1"), block_in, block_in, G, eps);
  if (cfg.mid_attn) mid_attn_1_ = AttnBlock(mid.scope("attn_1"), block_in, G, eps);
  mid_block_2_ = ResnetBlock(mid.scope("block_2"), block_in, block_in, G, eps);
  norm_out_ = NormAffine(ps, "norm_out", block_in);
  conv_out_ = Conv2d(ps, "conv_out", block_in, cfg.z_channels, 3, 1, 1);
}

Tensor* Encoder::forward(Graph& g, Tensor* x) const {
  if (x->ndim != 4 || x->ne[1] != cfg_.in_channels || x->ne[2] % cfg_.downsample_factor() ||
      x->ne[3] % cfg_.downsample_factor())
    fail("encoder %s: input %s must be [B, %d, H, W] with H, W divisible by %d", cfg_.name.c_str(),
         x->shape().str().c_str(), cfg_.in_channels, cfg_.downsample_factor());
  Tensor* h = conv_in_.forward(g, x);
  for (const VqganLevel& lvl : down_) {
    for (size_t j = 0; j < lvl.block.size(); j++) {
      h = lvl.block[j].forward(g, h);
      if (!lvl.attn.empty()) h = lvl.attn[j].forward(g, h);
    }
    if (lvl.resample.w) h = lvl.resample.forward(g, h);
  }
  h = mid_block_1_.forward(g, h);
  if (cfg_.mid_attn) h = mid_attn_1_.forward(g, h);
  h = mid_block_2_.forward(g, h);
  h = group_norm(g, h, norm_out_.w, norm_out_.b, cfg_.gn_groups, cfg_.gn_eps, true);
  return conv_out_.forward(g, h);
}

// ------------------------------------------------------------------------------------ decoder

Decoder::Decoder(const ParamSet& ps, const VqganConfig& cfg) : cfg_(cfg) {
  cfg.validate();
  int G = cfg.gn_groups;
  float eps = cfg.gn_eps;
  auto has_attn = [&](int res) {
    return std::find(cfg.attn_resolutions.begin(), cfg.attn_resolutions.end(), res) != cfg.attn_resolutions.end();
  };
  int L = cfg.levels();
  int64_t block_in = (int64_t)cfg.ch * cfg.ch_mult[(size_t)L - 1];
  int res = cfg.latent_size();
  conv_in_ = Conv2d(ps, "conv_in", cfg.z_channels, block_in, 3, 1, 1);
  ParamSet mid = ps.scope("mid");
  mid_block_1_ = ResnetBlock(mid.scope("block_1"), block_in, block_in, G, eps);
  if (cfg.mid_attn) mid_attn_1_ = AttnBlock(mid.scope("attn_1"), block_in, G, eps);
  mid_block_2_ = ResnetBlock(mid.scope("block_2"), block_in, block_in, G, eps);
  up_.resize((size_t)L);
  for (int i = L - 1; i >= 0; i--) {  // built (and run) from the last level to 0, stored by level
    ParamSet lp = ps.scope("up", i);
    VqganLevel& lvl = up_[(size_t)i];
    int64_t block_out = (int64_t)cfg.ch * cfg.ch_mult[(size_t)i];
    for (int j = 0; j < cfg.dec_num_res_blocks; j++) {
      lvl.block.emplace_back(lp.scope("block", j), block_in, block_out, G, eps);
      block_in = block_out;
      if (has_attn(res)) lvl.attn.emplace_back(lp.scope("attn", (int)lvl.attn.size()), block_in, G, eps);
    }
    if (i != 0) {
      lvl.resample = Conv2d(lp.scope("upsample"), "conv", block_in, block_in, 3, 1, 1);
      res *= 2;
    }
  }
  norm_out_ = NormAffine(ps, "norm_out", block_in);
  conv_out_ = Conv2d(ps, "conv_out", block_in, cfg.out_channels, 3, 1, 1);
}

Tensor* Decoder::forward(Graph& g, Tensor* z) const {
  if (z->ndim != 4 || z->ne[1] != cfg_.z_channels)
    fail("decoder %s: input %s must be [B, %d, h, w]", cfg_.name.c_str(), z->shape().str().c_str(), cfg_.z_channels);
  Tensor* h = conv_in_.forward(g, z);
  h = mid_block_1_.forward(g, h);
  if (cfg_.mid_attn) h = mid_attn_1_.forward(g, h);
  h = mid_block_2_.forward(g, h);
  for (int i = cfg_.levels() - 1; i >= 0; i--) {
    const VqganLevel& lvl = up_[(size_t)i];
    for (size_t j = 0; j < lvl.block.size(); j++) {
      h = lvl.block[j].forward(g, h);
      if (!lvl.attn.empty()) h = lvl.attn[j].forward(g, h);
    }
    if (lvl.resample.w) h = lvl.resample.forward(g, upsample_nearest2x(g, h));
  }
  h = group_norm(g, h, norm_out_.w, norm_out_.b, cfg_.gn_groups, cfg_.gn_eps, true);
  return conv_out_.forward(g, h);
}

// ------------------------------------------------------------------------------------ autoencoder

const char* model_part_name(ModelPart p) {
  return p == ModelPart::encoder ? "encoder" : p == ModelPart::decoder ? "decoder" : "all";
}

ModelPart model_part_from_name(const std::string& s) {
  if (s == "all") return ModelPart::all;
  if (s == "encoder") return ModelPart::encoder;
  if (s == "decoder") return ModelPart::decoder;
  fail("unknown model part '%s' (expected all, encoder or decoder)", s.c_str());
}

VqganAutoencoder::VqganAutoencoder(Store& st, const VqganConfig& cfg, uint64_t seed, ModelPart part)
    : cfg_(cfg), part_(part) {
  const bool enc = part != ModelPart::decoder, dec = part != ModelPart::encoder;
  if (enc) encoder_ = std::make_unique<Encoder>(ParamSet(st, seed, GROUP_GENERATOR).scope("encoder"), cfg);
  if (dec) decoder_ = std::make_unique<Decoder>(ParamSet(st, seed, GROUP_GENERATOR).scope("decoder"), cfg);
  if (enc) quant_conv_ = Conv2d(ParamSet(st, seed, GROUP_GENERATOR), "quant_conv", cfg.z_channels, cfg.embed_dim, 1, 1, 0);
  if (dec)
    post_quant_conv_ = Conv2d(ParamSet(st, seed, GROUP_GENERATOR), "post_quant_conv", cfg.embed_dim, cfg.z_channels, 1, 1, 0);
}

VqganAutoencoder::~VqganAutoencoder() = default;

Tensor* VqganAutoencoder::encode(Graph& g, Tensor* x) const {
  if (!encoder_) fail("vqgan %s: this model holds only the decoder (it cannot encode)", cfg_.name.c_str());
  return quant_conv_.forward(g, encoder_->forward(g, x));
}

Tensor* VqganAutoencoder::decode(Graph& g, Tensor* zq) const {
  if (!decoder_) fail("vqgan %s: this model holds only the encoder (it cannot decode)", cfg_.name.c_str());
  if (zq->ndim != 4 || zq->ne[1] != cfg_.embed_dim)
    fail("vqgan %s: decode input %s must be [B, %d, h, w]", cfg_.name.c_str(), zq->shape().str().c_str(), cfg_.embed_dim);
  return decoder_->forward(g, post_quant_conv_.forward(g, zq));
}

Tensor* VqganAutoencoder::last_layer_weight() const {
  if (!decoder_) fail("vqgan %s: this model holds only the encoder", cfg_.name.c_str());
  return decoder_->conv_out_weight();
}

}  // namespace nsvq
