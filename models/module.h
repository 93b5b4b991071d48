// models/module.h — the small module system: a ParamSet registers parameters and buffers in a
// Store under full dotted names (PyTorch state_dict names, e.g. "encoder.down.0.block.0.conv1.weight"),
// in PyTorch layouts (conv weight [O, I, kh, kw], linear weight [out, in]), initialises them as the
// method spec says, deterministically under a seed, and tags them with a parameter group.
//
// Determinism: every tensor is initialised from its own Philox stream, keyed by (seed, hash of its
// full name), so adding, removing or reordering other parameters never changes its values.
//
// Buffers (not trained, saved and loaded by name): f32 buffers such as BatchNorm running_mean /
// running_var and DiT's pos_embed, and i32 counters such as BatchNorm num_batches_tracked (PyTorch
// keeps it as int64; nsvq stores it as an i32 scalar, saves it as I32 and loads I64 into it).
// Buffers carry TF_PERSIST and not TF_PARAM, so Store::params() and the optimizer skip them.
//
// The small layer structs (Conv2d, Linear, Norm) hold their Store tensors and record their forward
// into a Graph; models/vqgan.h, models/discriminator.h and models/dit.h compose them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>
#include "ops/ops.h"

namespace nsvq {

// Parameter groups: the generator (encoder, quantizer, decoder) and the discriminator get separate
// optimizers / backward passes.
enum ParamGroup : int { GROUP_GENERATOR = 0, GROUP_DISCRIMINATOR = 1, GROUP_DIT = 2 };

enum class InitKind {
  zeros,           // 0
  constant,        // a
  uniform,         // U(a, b)
  normal,          // N(a, b^2): mean a, std b
  fan_in_uniform,  // PyTorch's default Conv/Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
  xavier_uniform,  // U(-r, r), r = sqrt(6 / (fan_in + fan_out)) (DiT linears)
};

struct Init {
  InitKind kind = InitKind::zeros;
  float a = 0.0f, b = 0.0f;
  int64_t fan_in = 0, fan_out = 0;
  static Init zeros() { return {InitKind::zeros}; }
  static Init ones() { return {InitKind::constant, 1.0f}; }
  static Init constant(float v) { return {InitKind::constant, v}; }
  static Init uniform(float lo, float hi) { return {InitKind::uniform, lo, hi}; }
  static Init normal(float mean, float std) { return {InitKind::normal, mean, std}; }
  static Init fan_in_uniform(int64_t fan_in) { return {InitKind::fan_in_uniform, 0.0f, 0.0f, fan_in}; }
  static Init xavier_uniform(int64_t fan_in, int64_t fan_out) { return {InitKind::xavier_uniform, 0.0f, 0.0f, fan_in, fan_out}; }
};

// Host values of `init` for a tensor of n elements, from the stream of (seed, name).
std::vector<float> init_values(const Init& init, int64_t n, uint64_t seed, const std::string& name);
// 64-bit FNV-1a of a name (the per-parameter stream key).
uint64_t name_hash(const std::string& name);

// A builder scoped to a name prefix. Cheap to copy; scope() returns a child.
class ParamSet {
 public:
  ParamSet(Store& store, uint64_t seed, int group = GROUP_GENERATOR, const std::string& prefix = "");
  ParamSet scope(const std::string& name) const;        // prefix "a.b" + name -> "a.b.name"
  ParamSet scope(const std::string& name, int index) const { return scope(name + "." + std::to_string(index)); }
  ParamSet with_group(int group) const;
  std::string full(const std::string& name) const;      // the full dotted name
  const std::string& prefix() const { return prefix_; }
  Store& store() const { return *store_; }
  uint64_t seed() const { return seed_; }
  int group() const { return group_; }

  // A trainable f32 parameter (TF_PARAM, this set's group), initialised by `init`.
  Tensor* param(const std::string& name, const Shape& s, const Init& init);
  // A persistent f32 buffer (TF_PERSIST, not trained), initialised by `init`.
  Tensor* buffer(const std::string& name, const Shape& s, const Init& init);
  // A persistent i32 buffer, zero-filled (counters).
  Tensor* buffer_i32(const std::string& name, const Shape& s);

 private:
  Store* store_;
  uint64_t seed_;
  int group_;
  std::string prefix_;
};

// ---- counting (over a Store, optionally restricted to names starting with `prefix`)
int64_t count_params(const Store& st, const std::string& prefix = "");   // TF_PARAM elements
int64_t count_buffers(const Store& st, const std::string& prefix = "");  // TF_PERSIST, non-param elements
std::vector<Tensor*> tensors_with_prefix(const Store& st, const std::string& prefix);

// ---- layers (PyTorch layouts and names)

// Conv2d: "<name>.weight" [O, I, k, k], "<name>.bias" [O] (optional). Default init: PyTorch's
// (weight and bias U(+-1/sqrt(I*k*k))); pass another weight init for the discriminator.
struct Conv2d {
  Tensor* w = nullptr;
  Tensor* b = nullptr;
  int stride = 1, pad_t = 0, pad_b = 0, pad_l = 0, pad_r = 0;
  Conv2d() = default;
  Conv2d(const ParamSet& ps, const std::string& name, int64_t in, int64_t out, int k, int stride, int pad,
         bool bias = true);
  Conv2d(const ParamSet& ps, const std::string& name, int64_t in, int64_t out, int k, int stride, int pad,
         bool bias, const Init& weight_init);
  void set_padding(int t, int b, int l, int r) { pad_t = t; pad_b = b; pad_l = l; pad_r = r; }
  Tensor* forward(Graph& g, Tensor* x) const;  // [N, I, H, W] -> [N, O, Ho, Wo]
  int64_t out_channels() const { return w->ne[0]; }
};

// Linear: "<name>.weight" [out, in], "<name>.bias" [out] (optional).
struct Linear {
  Tensor* w = nullptr;
  Tensor* b = nullptr;
  Linear() = default;
  Linear(const ParamSet& ps, const std::string& name, int64_t in, int64_t out, bool bias = true);  // PyTorch init
  Linear(const ParamSet& ps, const std::string& name, int64_t in, int64_t out, bool bias, const Init& weight_init,
         const Init& bias_init);
  Tensor* forward(Graph& g, Tensor* x) const;  // [..., in] -> [..., out]
};

// GroupNorm / LayerNorm affine parameters: "<name>.weight" = 1, "<name>.bias" = 0, [C].
struct NormAffine {
  Tensor* w = nullptr;
  Tensor* b = nullptr;
  NormAffine() = default;
  NormAffine(const ParamSet& ps, const std::string& name, int64_t c);
};

}  // namespace nsvq
