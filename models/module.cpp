// models/module.cpp — ParamSet (named, grouped, deterministically initialised parameters and
// buffers in a Store), counting helpers and the Conv2d / Linear / NormAffine layer structs.
#include "models/module.h"
#include <cmath>
#include "engine/rng.h"

namespace nsvq {

uint64_t name_hash(const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : name) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

static uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::vector<float> init_values(const Init& init, int64_t n, uint64_t seed, const std::string& name) {
  std::vector<float> v((size_t)n, 0.0f);
  // Element i comes from Philox block i / 4 of the stream keyed by mix(seed, hash(name)): counter
  // based, so values do not depend on other parameters or on the thread count.
  const uint64_t key = splitmix64(seed ^ splitmix64(name_hash(name)));
  const uint32_t stream = 0x696e6974u;
  auto fill = [&](int kind, float a, float b) {  // kind 0: a + (b - a) * U, U centred in (0, 1); 1: a + b * N(0, 1)
    int64_t blocks = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t blk = 0; blk < blocks; blk++) {
      float o[4];
      philox_block(key, stream, 0, (uint64_t)blk, kind, o);
      for (int w = 0; w < 4 && blk * 4 + w < n; w++) {
        float r = kind == 0 ? a + (b - a) * (o[w] - 0.5f / 16777216.0f) : a + b * o[w];
        v[(size_t)(blk * 4 + w)] = r;
      }
    }
  };
  switch (init.kind) {
    case InitKind::zeros: break;
    case InitKind::constant:
      for (float& x : v) x = init.a;
      break;
    case InitKind::uniform: fill(0, init.a, init.b); break;
    case InitKind::normal: fill(1, init.a, init.b); break;
    case InitKind::fan_in_uniform: {
      if (init.fan_in <= 0) fail("init %s: fan_in must be positive, got %lld", name.c_str(), (long long)init.fan_in);
      float r = 1.0f / std::sqrt((float)init.fan_in);
      fill(0, -r, r);
      break;
    }
    case InitKind::xavier_uniform: {
      if (init.fan_in + init.fan_out <= 0) fail("init %s: xavier needs fan_in + fan_out > 0", name.c_str());
      float r = std::sqrt(6.0f / (float)(init.fan_in + init.fan_out));
      fill(0, -r, r);
      break;
    }
  }
  return v;
}

ParamSet::ParamSet(Store& store, uint64_t seed, int group, const std::string& prefix)
    : store_(&store), seed_(seed), group_(group), prefix_(prefix) {}

ParamSet ParamSet::scope(const std::string& name) const { return ParamSet(*store_, seed_, group_, full(name)); }

ParamSet ParamSet::with_group(int group) const { return ParamSet(*store_, seed_, group, prefix_); }

std::string ParamSet::full(const std::string& name) const { return prefix_.empty() ? name : prefix_ + "." + name; }

Tensor* ParamSet::param(const std::string& name, const Shape& s, const Init& init) {
  std::string fn = full(name);
  Tensor* t = store_->add(fn, DType::f32, s, TF_PARAM, group_);
  if (init.kind != InitKind::zeros && !store_->skip_init) store_->upload_f32(t, init_values(init, s.numel(), seed_, fn));
  return t;
}

Tensor* ParamSet::buffer(const std::string& name, const Shape& s, const Init& init) {
  std::string fn = full(name);
  Tensor* t = store_->add(fn, DType::f32, s, TF_PERSIST, group_);
  if (init.kind != InitKind::zeros && !store_->skip_init) store_->upload_f32(t, init_values(init, s.numel(), seed_, fn));
  return t;
}

Tensor* ParamSet::buffer_i32(const std::string& name, const Shape& s) {
  return store_->add(full(name), DType::i32, s, TF_PERSIST, group_);
}

// ------------------------------------------------------------------------------- counting

static bool has_prefix(const std::string& name, const std::string& prefix) {
  return prefix.empty() || name.compare(0, prefix.size(), prefix) == 0;
}

std::vector<Tensor*> tensors_with_prefix(const Store& st, const std::string& prefix) {
  std::vector<Tensor*> r;
  for (Tensor* t : st.tensors())
    if (has_prefix(t->name, prefix)) r.push_back(t);
  return r;
}

int64_t count_params(const Store& st, const std::string& prefix) {
  int64_t n = 0;
  for (Tensor* t : tensors_with_prefix(st, prefix))
    if (t->has(TF_PARAM)) n += t->numel();
  return n;
}

int64_t count_buffers(const Store& st, const std::string& prefix) {
  int64_t n = 0;
  for (Tensor* t : tensors_with_prefix(st, prefix))
    if (!t->has(TF_PARAM) && t->has(TF_PERSIST)) n += t->numel();
  return n;
}

// --------------------------------------------------------------------------------- layers

Conv2d::Conv2d(const ParamSet& ps, const std::string& name, int64_t in, int64_t out, int k, int stride_, int pad,
               bool bias)
    : Conv2d(ps, name, in, out, k, stride_, pad, bias, Init::fan_in_uniform(in * k * k)) {}

Conv2d::Conv2d(const ParamSet& ps, const std::string& name, int64_t in, int64_t out, int k, int stride_, int pad,
               bool bias, const Init& weight_init)
    : stride(stride_), pad_t(pad), pad_b(pad), pad_l(pad), pad_r(pad) {
  ParamSet p = ps.scope(name);
  w = p.param("weight", {out, in, k, k}, weight_init);
  if (bias) b = p.param("bias", {out}, Init::fan_in_uniform(in * k * k));
}

Tensor* Conv2d::forward(Graph& g, Tensor* x) const { return conv2d(g, x, w, b, stride, pad_t, pad_b, pad_l, pad_r); }

Linear::Linear(const ParamSet& ps, const std::string& name, int64_t in, int64_t out, bool bias)
    : Linear(ps, name, in, out, bias, Init::fan_in_uniform(in), Init::fan_in_uniform(in)) {}

Linear::Linear(const ParamSet& ps, const std::string& name, int64_t in, int64_t out, bool bias,
               const Init& weight_init, const Init& bias_init) {
  ParamSet p = ps.scope(name);
  w = p.param("weight", {out, in}, weight_init);
  if (bias) b = p.param("bias", {out}, bias_init);
}

Tensor* Linear::forward(Graph& g, Tensor* x) const { return linear(g, x, w, b); }

NormAffine::NormAffine(const ParamSet& ps, const std::string& name, int64_t c) {
  ParamSet p = ps.scope(name);
  w = p.param("weight", {c}, Init::ones());
  b = p.param("bias", {c}, Init::zeros());
}

}  // namespace nsvq
