// models/lpips.cpp — LPIPS v0.1 with VGG16 (see models/lpips.h): the layer table and the graph.
#include "models/lpips.h"
#include "ops/ops.h"

namespace nsvq {

namespace {

// torchvision vgg16().features: conv index, in, out channels; a max pool (2, 2) precedes the first
// conv of every stage after the first. Stages end at relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
struct VggConv {
  int index;
  int64_t cin, cout;
  bool pool_before, tap_after;
};
const VggConv VGG[] = {{0, 3, 64, false, false},    {2, 64, 64, false, true},     {5, 64, 128, true, false},
                       {7, 128, 128, false, true},  {10, 128, 256, true, false},  {12, 256, 256, false, false},
                       {14, 256, 256, false, true}, {17, 256, 512, true, false},  {19, 512, 512, false, false},
                       {21, 512, 512, false, true}, {24, 512, 512, true, false},  {26, 512, 512, false, false},
                       {28, 512, 512, false, true}};
const int64_t TAP_CHANNELS[5] = {64, 128, 256, 512, 512};

}  // namespace

std::vector<WeightSpec> LpipsVgg::spec() {
  std::vector<WeightSpec> s;
  for (const VggConv& c : VGG) {
    const std::string n = "features." + std::to_string(c.index);
    s.push_back({n + ".weight", Shape{c.cout, c.cin, 3, 3}});
    s.push_back({n + ".bias", Shape{c.cout}});
  }
  for (int k = 0; k < 5; k++) s.push_back({"lin" + std::to_string(k) + ".weight", Shape{1, TAP_CHANNELS[k], 1, 1}});
  return s;
}

LpipsVgg::LpipsVgg(Store& st, const RawWeights& w) {
  auto add = [&](const WeightSpec& s) {
    auto it = w.find(s.name);
    if (it == w.end() || (int64_t)it->second.size() != s.shape.numel())
      fail("LPIPS-VGG16: weights have no tensor %s of shape %s", s.name.c_str(), s.shape.str().c_str());
    Tensor* t = st.add("lpips." + s.name, DType::f32, s.shape, TF_PERSIST);
    st.upload_f32(t, it->second);
    return t;
  };
  for (const WeightSpec& s : spec()) {
    Tensor* t = add(s);
    if (s.name.rfind("lin", 0) == 0) lin_.push_back(t);
    else if (s.shape.ndim == 4) cw_.push_back(t);
    else cb_.push_back(t);
  }
  shift_ = st.add("lpips.scaling.shift", DType::f32, {1, 3, 1, 1}, TF_PERSIST);
  scale_ = st.add("lpips.scaling.scale", DType::f32, {1, 3, 1, 1}, TF_PERSIST);
  st.upload_f32(shift_, {-0.030f, -0.088f, -0.188f});
  st.upload_f32(scale_, {0.458f, 0.448f, 0.450f});
}

std::vector<Tensor*> LpipsVgg::taps(Graph& g, Tensor* x) const {
  if (x->ne[1] == 1) x = expand(g, x, {x->ne[0], 3, x->ne[2], x->ne[3]});
  Tensor* h = div(g, sub(g, x, shift_), scale_);
  std::vector<Tensor*> out;
  for (size_t i = 0; i < cw_.size(); i++) {
    if (VGG[i].pool_before) h = max_pool2d(g, h, 2, 2, 0);
    h = relu(g, conv2d(g, h, cw_[i], cb_[i], 1, 1));
    if (VGG[i].tap_after) out.push_back(h);
  }
  return out;
}

Tensor* LpipsVgg::distance(Graph& g, Tensor* a, Tensor* b) const {
  for (Tensor* t : {a, b})
    if (t->ndim != 4 || t->dtype != DType::f32 || (t->ne[1] != 3 && t->ne[1] != 1))
      fail("LPIPS: image batch %s must be f32 [B, 3, H, W] (or [B, 1, H, W])", t->desc().c_str());
  if (a->shape() != b->shape())
    fail("LPIPS: image batches %s and %s differ in shape", a->shape().str().c_str(), b->shape().str().c_str());
  if (a->ne[2] < 16 || a->ne[3] < 16)
    fail("LPIPS: images of %lldx%lld pixels are too small for VGG16's four poolings (need 16x16 or more)",
         (long long)a->ne[3], (long long)a->ne[2]);
  std::vector<Tensor*> fa = taps(g, a), fb = taps(g, b);
  // x / (sqrt(sum_c x^2) + 1e-10); 1e-20 under the root keeps the gradient finite where a tap is all
  // zero (the value there is 0 either way) and is below the rounding of any non-zero sum
  auto unit = [&](Tensor* f) {
    Tensor* n = sqrt(g, unary(g, sum_sq(g, f, {1}, true), UN_AFFINE, 1.0f, 1e-20f));
    return div(g, f, unary(g, n, UN_AFFINE, 1.0f, 1e-10f));
  };
  Tensor* d = nullptr;
  for (size_t k = 0; k < fa.size(); k++) {
    Tensor* diff = sqr(g, sub(g, unit(fa[k]), unit(fb[k])));
    Tensor* r = global_avg_pool2d(g, conv2d(g, diff, lin_[k], nullptr, 1, 0));  // [B, 1]
    d = d ? add(g, d, r) : r;
  }
  return reshape(g, d, {a->ne[0]});
}

}  // namespace nsvq
