// tests/test_fast_kernels.cpp — the hand-written AVX-512 CPU forward kernels against double-precision
// references, and bitwise equal for 1 and 2 threads: conv2d (ops/cpu/conv_direct_avx512.cpp: direct implicit
// GEMM and Winograd F(2x2, 3x3), on shapes that reach every branch: image groups, bands, odd sizes,
// asymmetric padding, strides, M edges, fewer images than threads; the two-thread cases are above the
// threading thresholds: 10 MFLOP, 60 MFLOP with fewer images than threads), group norm (+ SiLU) and
// attention.
#include <doctest/doctest.h>
#include <cmath>
#include <cstring>
#include <functional>
#include "engine/rng.h"
#include "ops/cpu/conv_direct.h"
#include "ops/ops.h"

using namespace nsvq;

namespace {
struct ConvCase {
  int64_t N, C, H, W, O, k;
  int s, pt, pb, pl, pr;
  bool bias;
};

std::vector<float> rnd(size_t n, uint64_t seed, float lo, float hi) {
  Rng r(seed, 7);
  std::vector<float> v(n);
  for (float& x : v) x = lo + (hi - lo) * r.uniform();
  return v;
}

std::vector<float> run_conv(const ConvCase& c, int threads, const std::vector<float>& xv, const std::vector<float>& wv,
                            const std::vector<float>& bv) {
  cpu_set_threads(threads);
  Store st(backend_cpu());
  Tensor* x = st.add("x", DType::f32, {c.N, c.C, c.H, c.W});
  Tensor* w = st.add("w", DType::f32, {c.O, c.C, c.k, c.k});
  Tensor* b = st.add("b", DType::f32, {c.O});
  st.upload_f32(x, xv);
  st.upload_f32(w, wv);
  st.upload_f32(b, bv);
  Graph g(backend_cpu());
  Tensor* y = conv2d(g, x, w, c.bias ? b : nullptr, c.s, c.pt, c.pb, c.pl, c.pr);
  g.mark_output(y);
  g.compute();
  std::vector<float> out = g.get_f32(y);
  cpu_set_threads(0);
  return out;
}
}  // namespace

TEST_CASE("conv2d forward fast paths match the reference and do not depend on the thread count") {
  const std::vector<ConvCase> cases = {
      {4, 8, 8, 8, 32, 3, 1, 1, 1, 1, 1, true},        // Winograd (tight planes), images grouped into blocks
      {8, 8, 6, 6, 32, 3, 1, 1, 1, 1, 1, true},        // tight, 9 tiles per image: vectors span images
      {64, 8, 2, 2, 32, 3, 1, 1, 1, 1, 1, false},      // tight, one tile per image
      {5, 16, 8, 8, 40, 3, 1, 1, 1, 1, 1, true},       // Winograd, more groups and panels
      {8, 9, 7, 5, 35, 3, 1, 1, 1, 1, 1, true},        // Winograd, odd sizes, M edge
      {10, 12, 7, 5, 32, 3, 1, 0, 2, 1, 0, false},     // Winograd, asymmetric padding
      {5, 8, 9, 10, 32, 3, 1, 0, 0, 0, 0, true},       // Winograd, no padding
      {43, 8, 2, 3, 32, 3, 1, 1, 1, 1, 1, true},       // Winograd, tiny images: many per vector
      {1, 32, 32, 32, 32, 3, 1, 1, 1, 1, 1, true},     // Winograd, one image
      {1, 16, 160, 150, 32, 3, 1, 1, 1, 1, 1, true},   // Winograd, several bands, one image, two threads
      {2, 16, 161, 160, 32, 3, 1, 1, 1, 1, 1, false},  // Winograd, several bands per image
      {1, 8, 12, 300, 32, 3, 1, 1, 1, 1, 1, true},     // Winograd, wide rows (scalar fill)
      {2, 64, 8, 8, 16, 3, 1, 1, 1, 1, 1, true},       // direct 3x3 (few outputs: no Winograd)
      {1, 64, 8, 8, 64, 3, 1, 1, 1, 1, 1, true},       // Winograd, one small image
      {4, 32, 32, 32, 24, 3, 2, 0, 1, 0, 1, true},     // direct, taming Downsample (tight planes)
      {3, 16, 8, 8, 16, 3, 2, 1, 1, 1, 1, true},       // direct stride 2, pad 1 (tight, masked column 0)
      {2, 8, 9, 8, 8, 3, 2, 1, 1, 1, 1, false},        // direct stride 2, tight, odd height
      {2, 8, 17, 15, 16, 3, 2, 1, 1, 1, 1, true},      // direct, stride 2 odd sizes
      {1, 64, 64, 64, 64, 3, 2, 0, 1, 0, 1, true},     // direct, stride 2, one image, two threads
      {2, 4, 16, 16, 8, 4, 2, 1, 1, 1, 1, true},       // direct, PatchGAN 4x4 stride 2
      {20, 1, 32, 32, 32, 3, 1, 1, 1, 1, 1, true},     // direct, one input channel (conv_in)
      {3, 32, 12, 12, 3, 3, 1, 1, 1, 1, 1, true},      // direct, three outputs (conv_out)
      {8, 64, 16, 16, 64, 1, 1, 0, 0, 0, 0, true},     // direct 1x1, reads x in place
      {1, 128, 48, 48, 128, 1, 1, 0, 0, 0, 0, true},   // direct 1x1, one image, two threads
      {2, 6, 9, 9, 8, 1, 2, 0, 0, 0, 0, true},         // 1x1 stride 2
      {2, 5, 11, 13, 9, 3, 1, 2, 0, 1, 2, true},       // 3x3 odd padding, C < 8
      {1, 8, 12, 300, 8, 3, 1, 1, 1, 1, 1, true},      // direct, wide rows (scalar fill)
      {1, 96, 130, 130, 16, 3, 2, 1, 1, 1, 1, true},   // direct, several bands, two threads
  };
  uint64_t seed = 1;
  int wino = 0;  // cases that take the Winograd path (3x3 stride 1, C >= 8, O >= 32)
  for (const ConvCase& c : cases) {
    if (c.k == 3 && c.s == 1 && c.C >= 8 && c.O >= 32) wino++;
    CAPTURE(c.N);
    CAPTURE(c.C);
    CAPTURE(c.H);
    CAPTURE(c.W);
    CAPTURE(c.O);
    CAPTURE(c.k);
    CAPTURE(c.s);
    std::vector<float> xv = rnd((size_t)(c.N * c.C * c.H * c.W), seed++, -1, 1);
    std::vector<float> wv = rnd((size_t)(c.O * c.C * c.k * c.k), seed++, -0.5f, 0.5f);
    std::vector<float> bv = rnd((size_t)c.O, seed++, -1, 1);
    std::vector<float> y1 = run_conv(c, 1, xv, wv, bv), y2 = run_conv(c, 2, xv, wv, bv);
    const int64_t Ho = (c.H + c.pt + c.pb - c.k) / c.s + 1, Wo = (c.W + c.pl + c.pr - c.k) / c.s + 1;
    REQUIRE(y1.size() == (size_t)(c.N * c.O * Ho * Wo));
    CHECK(std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float)) == 0);
    double worst = 0;
    for (int64_t n = 0; n < c.N; n++)
      for (int64_t o = 0; o < c.O; o++)
        for (int64_t oy = 0; oy < Ho; oy++)
          for (int64_t ox = 0; ox < Wo; ox++) {
            double a = c.bias ? bv[o] : 0.0, mag = std::fabs(a);
            for (int64_t ci = 0; ci < c.C; ci++)
              for (int64_t i = 0; i < c.k; i++)
                for (int64_t j = 0; j < c.k; j++) {
                  int64_t iy = oy * c.s - c.pt + i, ix = ox * c.s - c.pl + j;
                  if (iy < 0 || iy >= c.H || ix < 0 || ix >= c.W) continue;
                  double p = (double)wv[((o * c.C + ci) * c.k + i) * c.k + j] *
                             xv[((n * c.C + ci) * c.H + iy) * c.W + ix];
                  a += p;
                  mag += std::fabs(p);
                }
            double got = y1[((n * c.O + o) * Ho + oy) * Wo + ox];
            worst = std::max(worst, std::fabs(got - a) / (mag + 1e-3));
          }
    CHECK(worst < 2e-6);
  }
  CHECK(wino == 13);
}

namespace {
std::vector<float> run_op(int threads, const std::vector<Shape>& shapes, const std::vector<std::vector<float>>& vals,
                          const std::function<Tensor*(Graph&, const std::vector<Tensor*>&)>& build) {
  cpu_set_threads(threads);
  Store st(backend_cpu());
  std::vector<Tensor*> in;
  for (size_t i = 0; i < shapes.size(); i++) {
    in.push_back(st.add("t" + std::to_string(i), DType::f32, shapes[i]));
    st.upload_f32(in.back(), vals[i]);
  }
  Graph g(backend_cpu());
  Tensor* y = build(g, in);
  g.mark_output(y);
  g.compute();
  std::vector<float> out = g.get_f32(y);
  cpu_set_threads(0);
  return out;
}
}  // namespace

TEST_CASE("group norm (+ SiLU) fast path: reference, and bitwise equal for 1 and 2 threads") {
  struct GN { Shape x; int groups; bool silu; };
  for (const GN& c : {GN{{4, 32, 32, 32}, 8, true}, GN{{3, 12, 5, 4}, 4, false}, GN{{2, 8, 17, 3}, 2, true},
                      GN{{5, 64, 8, 8}, 8, false}}) {
    CAPTURE(c.x.str());
    const int64_t N = c.x[0], C = c.x[1], S = c.x[2] * c.x[3], Cg = C / c.groups;
    std::vector<std::vector<float>> v = {rnd((size_t)c.x.numel(), 3, -2, 3), rnd((size_t)C, 4, 0.5f, 1.5f),
                                         rnd((size_t)C, 5, -1, 1)};
    auto build = [&](Graph& g, const std::vector<Tensor*>& t) {
      return group_norm(g, t[0], t[1], t[2], c.groups, 1e-6f, c.silu);
    };
    std::vector<float> y1 = run_op(1, {c.x, {C}, {C}}, v, build), y2 = run_op(2, {c.x, {C}, {C}}, v, build);
    CHECK(std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float)) == 0);
    double worst = 0;
    for (int64_t n = 0; n < N; n++)
      for (int64_t gi = 0; gi < c.groups; gi++) {
        const float* xg = v[0].data() + (n * C + gi * Cg) * S;
        double m = 0, q = 0;
        for (int64_t i = 0; i < Cg * S; i++) m += xg[i];
        m /= (double)(Cg * S);
        for (int64_t i = 0; i < Cg * S; i++) q += (xg[i] - m) * (xg[i] - m);
        double rs = 1.0 / std::sqrt(q / (double)(Cg * S) + 1e-6);
        for (int64_t i = 0; i < Cg * S; i++) {
          int64_t ch = gi * Cg + i / S;
          double r = (xg[i] - m) * rs * v[1][ch] + v[2][ch];
          if (c.silu) r = r / (1.0 + std::exp(-r));
          worst = std::max(worst, std::fabs(r - y1[(n * C + gi * Cg) * S + i]) / (1.0 + std::fabs(r)));
        }
      }
    CHECK(worst < 3e-6);
  }
}

TEST_CASE("attention fast path: reference, and bitwise equal for 1 and 2 threads") {
  struct AT { int64_t B, H, L, S, d, dv; };
  for (const AT& c :
       {AT{32, 1, 64, 64, 64, 64}, AT{2, 3, 70, 130, 24, 40}, AT{1, 2, 5, 9, 8, 3}, AT{3, 1, 131, 65, 17, 64}}) {
    CAPTURE(c.L);
    CAPTURE(c.S);
    std::vector<std::vector<float>> v = {rnd((size_t)(c.B * c.H * c.L * c.d), 6, -2, 2),
                                         rnd((size_t)(c.B * c.H * c.S * c.d), 7, -2, 2),
                                         rnd((size_t)(c.B * c.H * c.S * c.dv), 8, -1, 1)};
    std::vector<Shape> sh = {{c.B, c.H, c.L, c.d}, {c.B, c.H, c.S, c.d}, {c.B, c.H, c.S, c.dv}};
    auto build = [](Graph& g, const std::vector<Tensor*>& t) { return attention(g, t[0], t[1], t[2]); };
    std::vector<float> y1 = run_op(1, sh, v, build), y2 = run_op(2, sh, v, build);
    CHECK(std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float)) == 0);
    double worst = 0, sc = 1.0 / std::sqrt((double)c.d);
    std::vector<double> s((size_t)c.S);
    for (int64_t b = 0; b < c.B * c.H; b++)
      for (int64_t i = 0; i < c.L; i++) {
        double mx = -1e300, z = 0;
        for (int64_t j = 0; j < c.S; j++) {
          double a = 0;
          for (int64_t k = 0; k < c.d; k++) a += (double)v[0][(b * c.L + i) * c.d + k] * v[1][(b * c.S + j) * c.d + k];
          s[j] = a * sc;
          mx = std::max(mx, s[j]);
        }
        for (int64_t j = 0; j < c.S; j++) z += std::exp(s[j] - mx);
        for (int64_t e = 0; e < c.dv; e++) {
          double o = 0;
          for (int64_t j = 0; j < c.S; j++) o += std::exp(s[j] - mx) / z * v[2][(b * c.S + j) * c.dv + e];
          worst = std::max(worst, std::fabs(o - y1[(b * c.L + i) * c.dv + e]));
        }
      }
    CHECK(worst < 2e-6);
  }
}

TEST_CASE("conv2d backward: the input gradient through the forward kernel, the weight gradient, 1 and 2 threads") {
  // stride-1 cases take the input gradient through the direct / Winograd forward kernel (flipped,
  // transposed weights) and the weight gradient through the packed shifted frames of
  // ops/cpu/conv_wgrad_avx512.cpp (every register tile shape: 4, 17, 24, 32, 50, 64 outputs), or its Winograd
  // form for 3x3 kernels with 16 or more input channels; stride 2 takes
  // the weight gradient through the phase planes of conv_wgrad_avx512.cpp and the input gradient through the
  // phase-stacked forward problem of conv_bwd_data_s2_as_fwd (the model's stride-2 shapes below); fewer
  // than 8 input channels keep the im2col + SGEMM paths
  const std::vector<ConvCase> cases = {
      {3, 13, 20, 19, 50, 3, 1, 1, 1, 1, 1, false}, // weight gradient: ragged channel and output panels, 2 slabs
      {5, 11, 6, 7, 17, 2, 1, 0, 1, 1, 0, false},   // 2x2 kernel, one-sided padding
      {3, 9, 11, 5, 24, 5, 1, 2, 2, 0, 3, false},   // 5x5 kernel, uneven padding
      {3, 9, 7, 6, 4, 3, 1, 1, 1, 1, 1, false},     // small, Winograd not eligible for the transposed problem
      {2, 8, 9, 8, 32, 3, 1, 2, 0, 1, 1, false},    // asymmetric padding
      {4, 32, 12, 12, 32, 3, 1, 1, 1, 1, 1, false}, // Winograd on the transposed problem
      {2, 10, 8, 8, 5, 4, 1, 1, 2, 2, 1, false},    // 4x4 kernel, stride 1
      {32, 64, 32, 32, 64, 3, 1, 1, 1, 1, 1, false}, // two threads over images
      {2, 20, 13, 37, 50, 3, 1, 0, 2, 1, 0, false}, // Winograd weight gradient: odd Ho, 18 tiles a row, ragged panels
      {3, 18, 9, 9, 16, 3, 1, 2, 0, 0, 2, false},   // Winograd weight gradient: padding 2 on one side, 16 outputs
      {2, 8, 9, 8, 8, 3, 2, 1, 1, 1, 1, false},     // stride 2, odd width
      {3, 32, 16, 16, 32, 3, 2, 0, 1, 0, 1, false}, // stride 2, taming Downsample padding (right and bottom)
      {2, 9, 16, 15, 20, 4, 2, 1, 1, 1, 1, false},  // stride 2, 4x4 kernel (PatchGAN), odd width
      {2, 8, 11, 9, 7, 5, 2, 2, 1, 0, 2, false},    // stride 2, 5x5 kernel, uneven padding
      {2, 5, 11, 9, 7, 5, 2, 2, 1, 0, 2, false},    // the same with C < 8: the im2col + SGEMM paths
      {4, 1, 32, 32, 32, 4, 2, 1, 1, 1, 1, false},  // stride 2, one input channel (disc.main0): im2col paths
      {4, 1, 32, 32, 32, 3, 1, 1, 1, 1, 1, false},  // stride 1, one input channel (enc.conv_in): im2col weight gradient
      {1, 460, 32, 33, 4, 3, 2, 1, 1, 1, 1, false}, // stride 2, K = 4,140: im2col chunks of 240 pixels split rows
  };
  uint64_t seed = 100;
  for (const ConvCase& c : cases) {
    CAPTURE(c.N);
    CAPTURE(c.C);
    CAPTURE(c.H);
    CAPTURE(c.O);
    CAPTURE(c.k);
    CAPTURE(c.s);
    const int64_t Ho = (c.H + c.pt + c.pb - c.k) / c.s + 1, Wo = (c.W + c.pl + c.pr - c.k) / c.s + 1;
    std::vector<float> xv = rnd((size_t)(c.N * c.C * c.H * c.W), seed++, -1, 1);
    std::vector<float> wv = rnd((size_t)(c.O * c.C * c.k * c.k), seed++, -0.5f, 0.5f);
    std::vector<float> rv = rnd((size_t)(c.N * c.O * Ho * Wo), seed++, -1, 1);  // dL/dy
    std::vector<float> dx[3], dw[3];
    const int64_t saved_budget = conv_wgrad_budget();
    for (int run : {0, 1, 2}) {  // 1 thread, 2 threads, 2 threads packing one image at a time (stride 2: dX too)
      const int threads = run == 0 ? 1 : 2;
      cpu_set_threads(threads);
      conv_wgrad_budget() = run == 2 ? 1 : saved_budget;
      Store st(backend_cpu());
      Tensor* x = st.add("x", DType::f32, {c.N, c.C, c.H, c.W});
      Tensor* w = st.add("w", DType::f32, {c.O, c.C, c.k, c.k});
      st.upload_f32(x, xv);
      st.upload_f32(w, wv);
      Graph g(backend_cpu());
      Tensor* r = g.input(DType::f32, {c.N, c.O, Ho, Wo}, "r");
      Tensor* loss = sum(g, mul(g, conv2d(g, x, w, nullptr, c.s, c.pt, c.pb, c.pl, c.pr), r));
      g.mark_loss(loss);
      std::vector<Tensor*> gr = g.gradients({{loss, 1.0f}}, {x, w});
      g.mark_output(gr[0]);
      g.mark_output(gr[1]);
      g.set_f32(r, rv);
      g.compute();
      dx[run] = g.get_f32(gr[0]);
      dw[run] = g.get_f32(gr[1]);
      cpu_set_threads(0);
      conv_wgrad_budget() = saved_budget;
    }
    CHECK(std::memcmp(dx[0].data(), dx[1].data(), dx[0].size() * sizeof(float)) == 0);
    CHECK(std::memcmp(dx[0].data(), dx[2].data(), dx[0].size() * sizeof(float)) == 0);
    CHECK(std::memcmp(dw[0].data(), dw[1].data(), dw[0].size() * sizeof(float)) == 0);
    CHECK(std::memcmp(dw[0].data(), dw[2].data(), dw[0].size() * sizeof(float)) == 0);
    // references in double: every weight gradient, and the input gradient of every element
    double worst_w = 0, worst_x = 0;
    std::vector<double> rx(xv.size(), 0.0), mx(xv.size(), 0.0);
    for (int64_t o = 0; o < c.O; o++)
      for (int64_t ci = 0; ci < c.C; ci++)
        for (int64_t i = 0; i < c.k; i++)
          for (int64_t j = 0; j < c.k; j++) {
            double a = 0, mag = 0;
            const double wij = wv[((o * c.C + ci) * c.k + i) * c.k + j];
            for (int64_t n = 0; n < c.N; n++)
              for (int64_t oy = 0; oy < Ho; oy++)
                for (int64_t ox = 0; ox < Wo; ox++) {
                  int64_t iy = oy * c.s - c.pt + i, ix = ox * c.s - c.pl + j;
                  if (iy < 0 || iy >= c.H || ix < 0 || ix >= c.W) continue;
                  const size_t xi = (size_t)(((n * c.C + ci) * c.H + iy) * c.W + ix);
                  const double rr = rv[(size_t)(((n * c.O + o) * Ho + oy) * Wo + ox)];
                  a += rr * xv[xi];
                  mag += std::fabs(rr * xv[xi]);
                  rx[xi] += rr * wij;
                  mx[xi] += std::fabs(rr * wij);
                }
            double got = dw[0][(size_t)(((o * c.C + ci) * c.k + i) * c.k + j)];
            worst_w = std::max(worst_w, std::fabs(got - a) / (mag + 1e-3));
          }
    for (size_t e = 0; e < xv.size(); e++) worst_x = std::max(worst_x, std::fabs(dx[0][e] - rx[e]) / (mx[e] + 1e-3));
    CHECK(worst_w < 2e-6);
    CHECK(worst_x < 2e-6);
  }
}

TEST_CASE("conv2d: images with small outputs, grouped into one product, give bitwise the per-image results") {
  // (N, C, H, W, O, k, stride, pad): 4x4 outputs of 3x3 convs (VGG16's deep layers at 32 px), 1x1, stride 2
  struct G {
    int64_t N, C, H, W, O, k, s, p;
  };
  for (const G& c : {G{6, 64, 4, 4, 96, 3, 1, 1}, G{5, 32, 3, 3, 48, 1, 1, 0}, G{4, 16, 7, 7, 24, 3, 2, 1},
                     G{3, 520, 2, 2, 520, 3, 1, 1}}) {
    Rng r(9, (uint32_t)c.C);
    auto vec = [&](int64_t n) {
      std::vector<float> v((size_t)n);
      for (float& x : v) x = 2.0f * r.uniform() - 1.0f;
      return v;
    };
    const int64_t per = c.C * c.H * c.W;
    std::vector<float> xv = vec(c.N * per), wv = vec(c.O * c.C * c.k * c.k), bv = vec(c.O);
    Store st(backend_cpu());
    Tensor* w = st.add("w", DType::f32, {c.O, c.C, c.k, c.k});
    Tensor* b = st.add("b", DType::f32, {c.O});
    st.upload_f32(w, wv);
    st.upload_f32(b, bv);
    // y and dL/dx for L = sum(y * y) / 2 of n images starting at image n0
    auto run = [&](int64_t n0, int64_t n, std::vector<float>& y, std::vector<float>& dx) {
      Graph g(backend_cpu());
      Tensor* x = g.input(DType::f32, {n, c.C, c.H, c.W}, "x");
      Tensor* yt = conv2d(g, x, w, b, (int)c.s, (int)c.p);
      Tensor* gx = g.gradients({{scale(g, sum_sq(g, yt), 0.5f), 1.0f}}, {x})[0];
      g.mark_output(yt);
      g.mark_output(gx);
      g.plan();
      g.set_f32(x, std::vector<float>(xv.begin() + n0 * per, xv.begin() + (n0 + n) * per));
      g.compute();
      y = g.get_f32(yt);
      dx = g.get_f32(gx);
    };
    std::vector<float> y, dx, yi, dxi;
    run(0, c.N, y, dx);
    const size_t py = y.size() / (size_t)c.N;
    for (int64_t n = 0; n < c.N; n++) {
      run(n, 1, yi, dxi);
      CHECK_MESSAGE(std::memcmp(yi.data(), y.data() + n * py, py * sizeof(float)) == 0, "forward, C ", c.C, " image ", n);
      CHECK_MESSAGE(std::memcmp(dxi.data(), dx.data() + n * per, (size_t)per * sizeof(float)) == 0, "input gradient, C ",
                    c.C, " image ", n);
    }
  }
}
