// models/inception_fid.cpp — pytorch-fid's InceptionV3 (see models/inception_fid.h): the layer table,
// BatchNorm folding and the forward graph.
#include "models/inception_fid.h"
#include <cmath>
#include "ops/ops.h"

namespace nsvq {

namespace {

// One BasicConv2d: module name, in/out channels, kernel, stride, padding (rows, columns).
struct ConvDef {
  std::string name;
  int64_t cin, cout;
  int kh, kw, stride, ph, pw;
};

void add_a(std::vector<ConvDef>& v, const std::string& n, int64_t in, int64_t pool) {
  v.push_back({n + ".branch1x1", in, 64, 1, 1, 1, 0, 0});
  v.push_back({n + ".branch5x5_1", in, 48, 1, 1, 1, 0, 0});
  v.push_back({n + ".branch5x5_2", 48, 64, 5, 5, 1, 2, 2});
  v.push_back({n + ".branch3x3dbl_1", in, 64, 1, 1, 1, 0, 0});
  v.push_back({n + ".branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1});
  v.push_back({n + ".branch3x3dbl_3", 96, 96, 3, 3, 1, 1, 1});
  v.push_back({n + ".branch_pool", in, pool, 1, 1, 1, 0, 0});
}
void add_b(std::vector<ConvDef>& v, const std::string& n, int64_t in) {
  v.push_back({n + ".branch3x3", in, 384, 3, 3, 2, 0, 0});
  v.push_back({n + ".branch3x3dbl_1", in, 64, 1, 1, 1, 0, 0});
  v.push_back({n + ".branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1});
  v.push_back({n + ".branch3x3dbl_3", 96, 96, 3, 3, 2, 0, 0});
}
void add_c(std::vector<ConvDef>& v, const std::string& n, int64_t in, int64_t c7) {
  v.push_back({n + ".branch1x1", in, 192, 1, 1, 1, 0, 0});
  v.push_back({n + ".branch7x7_1", in, c7, 1, 1, 1, 0, 0});
  v.push_back({n + ".branch7x7_2", c7, c7, 1, 7, 1, 0, 3});
  v.push_back({n + ".branch7x7_3", c7, 192, 7, 1, 1, 3, 0});
  v.push_back({n + ".branch7x7dbl_1", in, c7, 1, 1, 1, 0, 0});
  v.push_back({n + ".branch7x7dbl_2", c7, c7, 7, 1, 1, 3, 0});
  v.push_back({n + ".branch7x7dbl_3", c7, c7, 1, 7, 1, 0, 3});
  v.push_back({n + ".branch7x7dbl_4", c7, c7, 7, 1, 1, 3, 0});
  v.push_back({n + ".branch7x7dbl_5", c7, 192, 1, 7, 1, 0, 3});
  v.push_back({n + ".branch_pool", in, 192, 1, 1, 1, 0, 0});
}
void add_d(std::vector<ConvDef>& v, const std::string& n, int64_t in) {
  v.push_back({n + ".branch3x3_1", in, 192, 1, 1, 1, 0, 0});
  v.push_back({n + ".branch3x3_2", 192, 320, 3, 3, 2, 0, 0});
  v.push_back({n + ".branch7x7x3_1", in, 192, 1, 1, 1, 0, 0});
  v.push_back({n + ".branch7x7x3_2", 192, 192, 1, 7, 1, 0, 3});
  v.push_back({n + ".branch7x7x3_3", 192, 192, 7, 1, 1, 3, 0});
  v.push_back({n + ".branch7x7x3_4", 192, 192, 3, 3, 2, 0, 0});
}
void add_e(std::vector<ConvDef>& v, const std::string& n, int64_t in) {
  v.push_back({n + ".branch1x1", in, 320, 1, 1, 1, 0, 0});
  v.push_back({n + ".branch3x3_1", in, 384, 1, 1, 1, 0, 0});
  v.push_back({n + ".branch3x3_2a", 384, 384, 1, 3, 1, 0, 1});
  v.push_back({n + ".branch3x3_2b", 384, 384, 3, 1, 1, 1, 0});
  v.push_back({n + ".branch3x3dbl_1", in, 448, 1, 1, 1, 0, 0});
  v.push_back({n + ".branch3x3dbl_2", 448, 384, 3, 3, 1, 1, 1});
  v.push_back({n + ".branch3x3dbl_3a", 384, 384, 1, 3, 1, 0, 1});
  v.push_back({n + ".branch3x3dbl_3b", 384, 384, 3, 1, 1, 1, 0});
  v.push_back({n + ".branch_pool", in, 192, 1, 1, 1, 0, 0});
}

// torchvision inception_v3's BasicConv2d modules, in network order
const std::vector<ConvDef>& conv_defs() {
  static const std::vector<ConvDef> defs = [] {
    std::vector<ConvDef> v;
    v.push_back({"Conv2d_1a_3x3", 3, 32, 3, 3, 2, 0, 0});
    v.push_back({"Conv2d_2a_3x3", 32, 32, 3, 3, 1, 0, 0});
    v.push_back({"Conv2d_2b_3x3", 32, 64, 3, 3, 1, 1, 1});
    v.push_back({"Conv2d_3b_1x1", 64, 80, 1, 1, 1, 0, 0});
    v.push_back({"Conv2d_4a_3x3", 80, 192, 3, 3, 1, 0, 0});
    add_a(v, "Mixed_5b", 192, 32);
    add_a(v, "Mixed_5c", 256, 64);
    add_a(v, "Mixed_5d", 288, 64);
    add_b(v, "Mixed_6a", 288);
    add_c(v, "Mixed_6b", 768, 128);
    add_c(v, "Mixed_6c", 768, 160);
    add_c(v, "Mixed_6d", 768, 160);
    add_c(v, "Mixed_6e", 768, 192);
    add_d(v, "Mixed_7a", 768);
    add_e(v, "Mixed_7b", 1280);
    add_e(v, "Mixed_7c", 2048);
    return v;
  }();
  return defs;
}

}  // namespace

std::vector<WeightSpec> InceptionFid::spec() {
  std::vector<WeightSpec> s;
  for (const ConvDef& d : conv_defs()) {
    s.push_back({d.name + ".conv.weight", Shape{d.cout, d.cin, d.kh, d.kw}});
    for (const char* p : {".bn.weight", ".bn.bias", ".bn.running_mean", ".bn.running_var"})
      s.push_back({d.name + p, Shape{d.cout}});
  }
  return s;
}

InceptionFid::InceptionFid(Store& st, const RawWeights& w) {
  auto get = [&](const std::string& n) -> const std::vector<float>& {
    auto it = w.find(n);
    if (it == w.end()) fail("InceptionV3-FID: weights have no tensor %s", n.c_str());
    return it->second;
  };
  for (const ConvDef& d : conv_defs()) {
    // eval-mode BatchNorm after a bias-free conv: y = (conv(x) - mean) * gamma / sqrt(var + 1e-3) + beta
    const std::vector<float>& cw = get(d.name + ".conv.weight");
    const std::vector<float>& g = get(d.name + ".bn.weight");
    const std::vector<float>& b = get(d.name + ".bn.bias");
    const std::vector<float>& m = get(d.name + ".bn.running_mean");
    const std::vector<float>& v = get(d.name + ".bn.running_var");
    const int64_t per = d.cin * d.kh * d.kw;
    if ((int64_t)cw.size() != d.cout * per || (int64_t)g.size() != d.cout)
      fail("InceptionV3-FID: tensor sizes of %s do not match the network", d.name.c_str());
    std::vector<float> fw(cw.size()), fb((size_t)d.cout);
    for (int64_t o = 0; o < d.cout; o++) {
      const double s = (double)g[(size_t)o] / std::sqrt((double)v[(size_t)o] + 1e-3);
      for (int64_t i = 0; i < per; i++) fw[(size_t)(o * per + i)] = (float)(cw[(size_t)(o * per + i)] * s);
      fb[(size_t)o] = (float)((double)b[(size_t)o] - (double)m[(size_t)o] * s);
    }
    Conv c;
    c.w = st.add("inception." + d.name + ".weight", DType::f32, {d.cout, d.cin, d.kh, d.kw}, TF_PERSIST);
    c.b = st.add("inception." + d.name + ".bias", DType::f32, {d.cout}, TF_PERSIST);
    st.upload_f32(c.w, fw);
    st.upload_f32(c.b, fb);
    c.stride = d.stride;
    c.ph = d.ph;
    c.pw = d.pw;
    convs_[d.name] = c;
  }
}

Tensor* InceptionFid::conv(Graph& g, const std::string& name, Tensor* x) const {
  const Conv& c = convs_.at(name);
  return relu(g, conv2d(g, x, c.w, c.b, c.stride, c.ph, c.ph, c.pw, c.pw));
}

Tensor* InceptionFid::block_a(Graph& g, const std::string& n, Tensor* x) const {
  Tensor* b1 = conv(g, n + ".branch1x1", x);
  Tensor* b5 = conv(g, n + ".branch5x5_2", conv(g, n + ".branch5x5_1", x));
  Tensor* b3 = conv(g, n + ".branch3x3dbl_3", conv(g, n + ".branch3x3dbl_2", conv(g, n + ".branch3x3dbl_1", x)));
  Tensor* bp = conv(g, n + ".branch_pool", avg_pool2d(g, x, 3, 1, 1, /*count_include_pad=*/false));
  return concat(g, {b1, b5, b3, bp}, 1);
}

Tensor* InceptionFid::block_b(Graph& g, const std::string& n, Tensor* x) const {
  Tensor* b3 = conv(g, n + ".branch3x3", x);
  Tensor* bd = conv(g, n + ".branch3x3dbl_3", conv(g, n + ".branch3x3dbl_2", conv(g, n + ".branch3x3dbl_1", x)));
  return concat(g, {b3, bd, max_pool2d(g, x, 3, 2, 0)}, 1);
}

Tensor* InceptionFid::block_c(Graph& g, const std::string& n, Tensor* x) const {
  Tensor* b1 = conv(g, n + ".branch1x1", x);
  Tensor* b7 = x;
  for (const char* s : {".branch7x7_1", ".branch7x7_2", ".branch7x7_3"}) b7 = conv(g, n + s, b7);
  Tensor* bd = x;
  for (const char* s : {".branch7x7dbl_1", ".branch7x7dbl_2", ".branch7x7dbl_3", ".branch7x7dbl_4", ".branch7x7dbl_5"})
    bd = conv(g, n + s, bd);
  Tensor* bp = conv(g, n + ".branch_pool", avg_pool2d(g, x, 3, 1, 1, false));
  return concat(g, {b1, b7, bd, bp}, 1);
}

Tensor* InceptionFid::block_d(Graph& g, const std::string& n, Tensor* x) const {
  Tensor* b3 = conv(g, n + ".branch3x3_2", conv(g, n + ".branch3x3_1", x));
  Tensor* b7 = x;
  for (const char* s : {".branch7x7x3_1", ".branch7x7x3_2", ".branch7x7x3_3", ".branch7x7x3_4"}) b7 = conv(g, n + s, b7);
  return concat(g, {b3, b7, max_pool2d(g, x, 3, 2, 0)}, 1);
}

// pytorch-fid's FIDInceptionE_1 (average pool without the padding) and FIDInceptionE_2 (max pool)
Tensor* InceptionFid::block_e(Graph& g, const std::string& n, Tensor* x, bool max_pool) const {
  Tensor* b1 = conv(g, n + ".branch1x1", x);
  Tensor* b3 = conv(g, n + ".branch3x3_1", x);
  b3 = concat(g, {conv(g, n + ".branch3x3_2a", b3), conv(g, n + ".branch3x3_2b", b3)}, 1);
  Tensor* bd = conv(g, n + ".branch3x3dbl_2", conv(g, n + ".branch3x3dbl_1", x));
  bd = concat(g, {conv(g, n + ".branch3x3dbl_3a", bd), conv(g, n + ".branch3x3dbl_3b", bd)}, 1);
  Tensor* p = max_pool ? max_pool2d(g, x, 3, 1, 1) : avg_pool2d(g, x, 3, 1, 1, false);
  Tensor* bp = conv(g, n + ".branch_pool", p);
  return concat(g, {b1, b3, bd, bp}, 1);
}

Tensor* InceptionFid::features(Graph& g, Tensor* x) const {
  if (x->ndim != 4 || x->ne[1] != 3 || x->dtype != DType::f32)
    fail("InceptionV3-FID: input %s must be f32 [B, 3, H, W]", x->desc().c_str());
  Tensor* h = resize_bilinear(g, x, INPUT, INPUT);  // pytorch-fid resizes even a 299x299 input (identity)
  h = unary(g, h, UN_AFFINE, 2.0f, -1.0f);
  for (const char* n : {"Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"}) h = conv(g, n, h);
  h = max_pool2d(g, h, 3, 2, 0);
  h = conv(g, "Conv2d_4a_3x3", conv(g, "Conv2d_3b_1x1", h));
  h = max_pool2d(g, h, 3, 2, 0);
  for (const char* n : {"Mixed_5b", "Mixed_5c", "Mixed_5d"}) h = block_a(g, n, h);
  h = block_b(g, "Mixed_6a", h);
  for (const char* n : {"Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"}) h = block_c(g, n, h);
  h = block_d(g, "Mixed_7a", h);
  h = block_e(g, "Mixed_7b", h, false);
  h = block_e(g, "Mixed_7c", h, true);
  return global_avg_pool2d(g, h);
}

}  // namespace nsvq
