// models/dit.h — the diffusion transformer (DiT, adaLN-Zero; method.md §6) for noise prediction on
// VQ latents, under facebookresearch/DiT models.py names:
//   x_embedder.proj.{weight [hidden, C, p, p], bias}      patch embedding (a p x p conv, stride p)
//   pos_embed [1, T, hidden]                               fixed 2D sin-cos table (a buffer)
//   t_embedder.mlp.0 / .2 (Linear 256 -> hidden -> hidden, SiLU between)
//   y_embedder.embedding_table.weight [num_classes + 1, hidden]   (row num_classes = null class, CFG)
//   blocks.{i}.attn.qkv, .attn.proj, .mlp.fc1, .mlp.fc2, .adaLN_modulation.1 (Linear hidden -> 6 hidden)
//   final_layer.linear, final_layer.adaLN_modulation.1 (Linear hidden -> 2 hidden)
// norm1 / norm2 / norm_final are LayerNorms without affine parameters (eps 1e-6), so they own no names.
//
// Shapes: x [B, C, H, W] (H = W = input_size, T = (H/p)^2 tokens), t, y [B] -> eps [B, C, H, W].
// Timestep: the sinusoidal embedding (dim 256, [cos | sin], max period 10000, as DiT) has no sin/cos
// op in the graph; it comes either from an i32 t [B] looked up in a constant table of
// num_timesteps rows built at graph-build time, or from an f32 [B, 256] input the host fills per
// step with dit_timestep_embedding() (continuous t, e.g. flow matching).
// Init (DiT initialize_weights): xavier-uniform linears and patch projection with zero biases,
// N(0, 0.02) class table and timestep MLP weights, zero adaLN modulations and zero final linear, so
// a fresh model predicts exactly 0.
#pragma once
#include <string>
#include <vector>
#include "models/module.h"

namespace nsvq {

struct DitConfig {
  int in_channels = 16;    // latent channels D
  int input_size = 8;      // latent height = width
  int patch_size = 1;
  int hidden = 128;
  int depth = 4;
  int heads = 4;
  float mlp_ratio = 4.0f;
  int num_classes = 10;    // the table has num_classes + 1 rows (the last one is the null class)
  int freq_dim = 256;      // sinusoidal timestep embedding size
  int num_timesteps = 1000;  // rows of the table used for i32 timesteps
  int tokens() const { return (input_size / patch_size) * (input_size / patch_size); }
  int mlp_hidden() const { return (int)(hidden * mlp_ratio); }
  void validate() const;
};

// "tier1" (hidden 128, depth 4, heads 4, on 8x8x16) | "tier2" (DiT-S: 384, 12, 6, on 8x8x32).
DitConfig dit_preset(const std::string& name);

// DiT's timestep_embedding: for each t, [cos(t f_0) .. cos(t f_{h-1}), sin(t f_0) .. sin(t f_{h-1})],
// f_k = exp(-ln(max_period) k / h), h = dim / 2. Returns t.size() * dim values (row-major).
std::vector<float> dit_timestep_embedding(const std::vector<float>& t, int dim, float max_period = 10000.0f);
// DiT's fixed 2D sin-cos position table [grid*grid, dim] (first half from the column, second from the row).
std::vector<float> dit_pos_embed(int dim, int grid);

struct DitBlock {
  Linear qkv, proj, fc1, fc2, ada;  // ada = adaLN_modulation.1
  int heads = 1;
  DitBlock() = default;
  DitBlock(const ParamSet& ps, const DitConfig& cfg);
  Tensor* forward(Graph& g, Tensor* x, Tensor* c_silu) const;  // x [B, T, h], c_silu = SiLU(c) [B, h]
};

class Dit {
 public:
  Dit(Store& st, const DitConfig& cfg, uint64_t seed, const std::string& prefix = "");
  // x f32 [B, C, H, W]; t i32 [B] (integer steps < num_timesteps) or f32 [B, freq_dim] (embedding
  // from dit_timestep_embedding); y i32 [B] in [0, num_classes] -> eps [B, C, H, W].
  Tensor* forward(Graph& g, Tensor* x, Tensor* t, Tensor* y) const;
  // The conditioning vector c = t_embedder(t) + y_embedder(y) [B, hidden].
  Tensor* condition(Graph& g, Tensor* t, Tensor* y) const;
  const DitConfig& config() const { return cfg_; }

 private:
  DitConfig cfg_;
  Conv2d x_proj_;
  Tensor* pos_embed_ = nullptr;
  Linear t_mlp0_, t_mlp2_;
  Tensor* y_table_ = nullptr;
  std::vector<DitBlock> blocks_;
  Linear final_linear_, final_ada_;
};

}  // namespace nsvq
