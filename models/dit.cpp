// models/dit.cpp — DiT (adaLN-Zero) blocks, timestep / class embedders, final layer and the host-side
// sinusoidal tables (timestep embedding, 2D position embedding).
#include "models/dit.h"
#include <cmath>

namespace nsvq {

void DitConfig::validate() const {
  if (in_channels < 1 || input_size < 1 || patch_size < 1 || input_size % patch_size)
    fail("dit: input %dx%dx%d is not divisible into %dx%d patches", in_channels, input_size, input_size, patch_size,
         patch_size);
  if (hidden < 1 || heads < 1 || hidden % heads) fail("dit: hidden %d is not divisible by %d heads", hidden, heads);
  if (hidden % 4) fail("dit: hidden %d must be a multiple of 4 (2D sin-cos position embedding)", hidden);
  if (depth < 0 || mlp_hidden() < 1 || num_classes < 1 || freq_dim < 2 || freq_dim % 2 || num_timesteps < 1)
    fail("dit: bad config (depth %d, mlp_ratio %g, num_classes %d, freq_dim %d, num_timesteps %d)", depth,
         (double)mlp_ratio, num_classes, freq_dim, num_timesteps);
}

DitConfig dit_preset(const std::string& name) {
  DitConfig c;
  if (name == "tier1") {
    c.in_channels = 16; c.input_size = 8; c.hidden = 128; c.depth = 4; c.heads = 4;
  } else if (name == "tier2") {
    c.in_channels = 32; c.input_size = 8; c.hidden = 384; c.depth = 12; c.heads = 6;
  } else {
    fail("dit: unknown preset '%s' (valid: tier1, tier2)", name.c_str());
  }
  c.validate();
  return c;
}

std::vector<float> dit_timestep_embedding(const std::vector<float>& t, int dim, float max_period) {
  int half = dim / 2;
  std::vector<float> out(t.size() * (size_t)dim, 0.0f);  // odd dim: a zero last column, as DiT
  for (size_t i = 0; i < t.size(); i++)
    for (int k = 0; k < half; k++) {
      // DiT computes freqs and args in float32: exp(-ln(P) * k / half), then t * freq
      float f = std::exp(-std::log(max_period) * (float)k / (float)half);
      float a = t[i] * f;
      out[i * (size_t)dim + (size_t)k] = std::cos(a);
      out[i * (size_t)dim + (size_t)(half + k)] = std::sin(a);
    }
  return out;
}

std::vector<float> dit_pos_embed(int dim, int grid) {
  std::vector<float> out((size_t)grid * grid * dim);
  int q = dim / 4;  // each 1D half has q sin and q cos columns
  for (int i = 0; i < grid; i++)
    for (int j = 0; j < grid; j++) {
      float* row = &out[((size_t)i * grid + j) * (size_t)dim];
      for (int half = 0; half < 2; half++) {
        double pos = half == 0 ? j : i;  // numpy meshgrid(grid_w, grid_h): first half varies along columns
        for (int k = 0; k < q; k++) {
          double omega = 1.0 / std::pow(10000.0, (double)k / q);
          row[half * 2 * q + k] = (float)std::sin(pos * omega);
          row[half * 2 * q + q + k] = (float)std::cos(pos * omega);
        }
      }
    }
  return out;
}

static Linear xavier_linear(const ParamSet& ps, const std::string& name, int64_t in, int64_t out) {
  return Linear(ps, name, in, out, true, Init::xavier_uniform(in, out), Init::zeros());
}
static Linear zero_linear(const ParamSet& ps, const std::string& name, int64_t in, int64_t out) {
  return Linear(ps, name, in, out, true, Init::zeros(), Init::zeros());
}

DitBlock::DitBlock(const ParamSet& ps, const DitConfig& cfg) : heads(cfg.heads) {
  int64_t h = cfg.hidden, m = cfg.mlp_hidden();
  qkv = xavier_linear(ps.scope("attn"), "qkv", h, 3 * h);
  proj = xavier_linear(ps.scope("attn"), "proj", h, h);
  fc1 = xavier_linear(ps.scope("mlp"), "fc1", h, m);
  fc2 = xavier_linear(ps.scope("mlp"), "fc2", m, h);
  ada = zero_linear(ps.scope("adaLN_modulation"), "1", h, 6 * h);
}

Tensor* DitBlock::forward(Graph& g, Tensor* x, Tensor* c_silu) const {
  int64_t B = x->ne[0], T = x->ne[1], h = x->ne[2], hd = h / heads;
  Tensor* mod = ada.forward(g, c_silu);  // [B, 6h]: shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp
  auto chunk = [&](int i) { return slice(g, mod, 1, i * h, (i + 1) * h); };
  auto gate = [&](Tensor* v, int i) { return mul(g, v, reshape(g, chunk(i), {B, 1, h})); };

  Tensor* a = modulate(g, layer_norm(g, x, nullptr, nullptr, 1e-6f), chunk(0), chunk(1));
  Tensor* qkv5 = reshape(g, qkv.forward(g, a), {B, T, 3, heads, hd});
  Tensor* qkv3 = contiguous(g, permute(g, qkv5, {2, 0, 3, 1, 4}));  // [3, B, heads, T, hd]
  auto part = [&](int i) { return reshape(g, slice(g, qkv3, 0, i, i + 1), {B, heads, T, hd}); };
  Tensor* o = attention(g, part(0), part(1), part(2), 1.0f / std::sqrt((float)hd));
  o = reshape(g, permute(g, o, {0, 2, 1, 3}), {B, T, h});
  x = add(g, x, gate(proj.forward(g, o), 2));

  Tensor* m = modulate(g, layer_norm(g, x, nullptr, nullptr, 1e-6f), chunk(3), chunk(4));
  m = fc2.forward(g, gelu(g, fc1.forward(g, m)));  // GELU, tanh approximation (as DiT)
  return add(g, x, gate(m, 5));
}

Dit::Dit(Store& st, const DitConfig& cfg, uint64_t seed, const std::string& prefix) : cfg_(cfg) {
  cfg.validate();
  ParamSet ps(st, seed, GROUP_DIT, prefix);
  int64_t h = cfg.hidden, C = cfg.in_channels, p = cfg.patch_size;
  x_proj_ = Conv2d(ps.scope("x_embedder"), "proj", C, h, (int)p, (int)p, 0, true, Init::xavier_uniform(C * p * p, h));
  st.upload_f32(x_proj_.b, std::vector<float>((size_t)h, 0.0f));  // DiT zeroes the patch-embedding bias
  pos_embed_ = ps.buffer("pos_embed", {1, cfg.tokens(), h}, Init::zeros());
  st.upload_f32(pos_embed_, dit_pos_embed((int)h, cfg.input_size / cfg.patch_size));
  ParamSet tm = ps.scope("t_embedder").scope("mlp");
  t_mlp0_ = Linear(tm, "0", cfg.freq_dim, h, true, Init::normal(0.0f, 0.02f), Init::zeros());
  t_mlp2_ = Linear(tm, "2", h, h, true, Init::normal(0.0f, 0.02f), Init::zeros());
  y_table_ = ps.scope("y_embedder").scope("embedding_table").param("weight", {cfg.num_classes + 1, h},
                                                                     Init::normal(0.0f, 0.02f));
  for (int i = 0; i < cfg.depth; i++) blocks_.emplace_back(ps.scope("blocks", i), cfg);
  ParamSet fl = ps.scope("final_layer");
  final_linear_ = zero_linear(fl, "linear", h, p * p * C);
  final_ada_ = zero_linear(fl.scope("adaLN_modulation"), "1", h, 2 * h);
}

Tensor* Dit::condition(Graph& g, Tensor* t, Tensor* y) const {
  int64_t B = y->ne[0];
  if (y->dtype != DType::i32 || y->ndim != 1) fail("dit: labels y %s must be i32 [B]", y->desc().c_str());
  Tensor* freq = nullptr;
  if (t->dtype == DType::i32) {
    if (t->ndim != 1 || t->ne[0] != B) fail("dit: timesteps %s must be i32 [%lld]", t->desc().c_str(), (long long)B);
    std::vector<float> steps((size_t)cfg_.num_timesteps);
    for (int i = 0; i < cfg_.num_timesteps; i++) steps[(size_t)i] = (float)i;
    Tensor* table = g.constant_data({cfg_.num_timesteps, cfg_.freq_dim}, dit_timestep_embedding(steps, cfg_.freq_dim));
    freq = get_rows(g, table, t);
  } else {
    if (t->ndim != 2 || t->ne[0] != B || t->ne[1] != cfg_.freq_dim)
      fail("dit: timestep embedding %s must be f32 [%lld, %d]", t->desc().c_str(), (long long)B, cfg_.freq_dim);
    freq = t;
  }
  Tensor* te = t_mlp2_.forward(g, silu(g, t_mlp0_.forward(g, freq)));
  return add(g, te, get_rows(g, y_table_, y));
}

Tensor* Dit::forward(Graph& g, Tensor* x, Tensor* t, Tensor* y) const {
  int64_t C = cfg_.in_channels, S = cfg_.input_size, p = cfg_.patch_size, n = S / p, h = cfg_.hidden;
  if (x->ndim != 4 || x->ne[1] != C || x->ne[2] != S || x->ne[3] != S)
    fail("dit: input %s must be [B, %lld, %lld, %lld]", x->shape().str().c_str(), (long long)C, (long long)S, (long long)S);
  int64_t B = x->ne[0];
  if (y->ndim != 1 || y->ne[0] != B) fail("dit: labels %s must be [%lld]", y->shape().str().c_str(), (long long)B);
  Tensor* tok = x_proj_.forward(g, x);                                      // [B, h, n, n]
  tok = permute(g, reshape(g, tok, {B, h, n * n}), {0, 2, 1});              // [B, T, h]
  tok = add(g, tok, pos_embed_);
  Tensor* c_silu = silu(g, condition(g, t, y));
  for (const DitBlock& b : blocks_) tok = b.forward(g, tok, c_silu);
  Tensor* mod = final_ada_.forward(g, c_silu);                              // [B, 2h]: shift, scale
  tok = modulate(g, layer_norm(g, tok, nullptr, nullptr, 1e-6f), slice(g, mod, 1, 0, h), slice(g, mod, 1, h, 2 * h));
  tok = final_linear_.forward(g, tok);                                      // [B, T, p*p*C]
  // unpatchify: [B, n, n, p, p, C] -> [B, C, n, p, n, p] -> [B, C, S, S]
  tok = permute(g, reshape(g, tok, {B, n, n, p, p, C}), {0, 5, 1, 3, 2, 4});
  return reshape(g, tok, {B, C, S, S});
}

}  // namespace nsvq
