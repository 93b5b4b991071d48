// tests/op_cases_pool.cpp — op-table cases of the pool family (max_pool2d, avg_pool2d, their gradient
// ops, global_avg_pool2d, resize_bilinear) with plain scalar references written from PyTorch's
// definitions, plus doctest cases for the errors, PyTorch's tie/NaN/padding rules of max pooling and
// the gradients that must fail.
#include <doctest/doctest.h>
#include <cmath>
#include <limits>
#include "ops/ops_internal.h"
#include "tests/op_cases.h"

namespace nsvq {
namespace test {
namespace {

struct PoolCfg {
  int k, s, p;
  bool count_pad;
};

int64_t out_size(int64_t n, const PoolCfg& c) { return (n + 2 * c.p - c.k) / c.s + 1; }

// The window of output (oy, ox): every position with its in-image flag, row-major.
template <class F>
void for_window(const PoolCfg& c, int64_t H, int64_t W, int64_t oy, int64_t ox, F f) {
  for (int i = 0; i < c.k; i++)
    for (int j = 0; j < c.k; j++) {
      int64_t iy = oy * c.s - c.p + i, ix = ox * c.s - c.p + j;
      f(iy, ix, iy >= 0 && iy < H && ix >= 0 && ix < W);
    }
}

// index (within the plane) of the window's first maximum; padding counts as -inf
int64_t argmax_ref(const float* xp, const PoolCfg& c, int64_t H, int64_t W, int64_t oy, int64_t ox) {
  int64_t arg = -1;
  float best = 0;
  for_window(c, H, W, oy, ox, [&](int64_t iy, int64_t ix, bool in) {
    if (!in) return;
    float v = xp[iy * W + ix];
    if (arg < 0 || v > best || std::isnan(v)) {
      best = v;
      arg = iy * W + ix;
    }
  });
  return arg;
}

Host max_pool_ref(const Host& x, const PoolCfg& c) {
  int64_t N = x.s.ne[0], C = x.s.ne[1], H = x.s.ne[2], W = x.s.ne[3], Ho = out_size(H, c), Wo = out_size(W, c);
  Host y = host_f32({N, C, Ho, Wo});
  for (int64_t pl = 0; pl < N * C; pl++)
    for (int64_t oy = 0; oy < Ho; oy++)
      for (int64_t ox = 0; ox < Wo; ox++)
        y.f[(pl * Ho + oy) * Wo + ox] = x.f[pl * H * W + argmax_ref(&x.f[pl * H * W], c, H, W, oy, ox)];
  return y;
}

// dx of max pooling: each window's gy goes to its first maximum
Host max_pool_bwd_ref(const Host& x, const Host& gy, const PoolCfg& c) {
  int64_t NC = x.s.ne[0] * x.s.ne[1], H = x.s.ne[2], W = x.s.ne[3], Ho = gy.s.ne[2], Wo = gy.s.ne[3];
  std::vector<double> acc((size_t)x.n(), 0.0);
  for (int64_t pl = 0; pl < NC; pl++)
    for (int64_t oy = 0; oy < Ho; oy++)
      for (int64_t ox = 0; ox < Wo; ox++)
        acc[pl * H * W + argmax_ref(&x.f[pl * H * W], c, H, W, oy, ox)] += gy.f[(pl * Ho + oy) * Wo + ox];
  Host dx = host_f32(x.s);
  for (int64_t i = 0; i < dx.n(); i++) dx.f[i] = (float)acc[i];
  return dx;
}

// the divisor of window (oy, ox): k*k (count_include_pad; the window never passes the padded edge
// with ceil_mode=False) or its number of in-image elements
double divisor(const PoolCfg& c, int64_t H, int64_t W, int64_t oy, int64_t ox) {
  int in = 0;
  for_window(c, H, W, oy, ox, [&](int64_t, int64_t, bool i) { in += i; });
  return c.count_pad ? (double)c.k * c.k : (double)in;
}

Host avg_pool_ref(const Host& x, const PoolCfg& c) {
  int64_t N = x.s.ne[0], C = x.s.ne[1], H = x.s.ne[2], W = x.s.ne[3], Ho = out_size(H, c), Wo = out_size(W, c);
  Host y = host_f32({N, C, Ho, Wo});
  for (int64_t pl = 0; pl < N * C; pl++)
    for (int64_t oy = 0; oy < Ho; oy++)
      for (int64_t ox = 0; ox < Wo; ox++) {
        double s = 0;
        for_window(c, H, W, oy, ox, [&](int64_t iy, int64_t ix, bool in) {
          if (in) s += x.f[(pl * H + iy) * W + ix];
        });
        y.f[(pl * Ho + oy) * Wo + ox] = (float)(s / divisor(c, H, W, oy, ox));
      }
  return y;
}

Host avg_pool_bwd_ref(const Host& gy, int64_t H, int64_t W, const PoolCfg& c) {
  int64_t N = gy.s.ne[0], C = gy.s.ne[1], Ho = gy.s.ne[2], Wo = gy.s.ne[3];
  std::vector<double> acc((size_t)(N * C * H * W), 0.0);
  for (int64_t pl = 0; pl < N * C; pl++)
    for (int64_t oy = 0; oy < Ho; oy++)
      for (int64_t ox = 0; ox < Wo; ox++) {
        double d = gy.f[(pl * Ho + oy) * Wo + ox] / divisor(c, H, W, oy, ox);
        for_window(c, H, W, oy, ox, [&](int64_t iy, int64_t ix, bool in) {
          if (in) acc[(pl * H + iy) * W + ix] += d;
        });
      }
  Host dx = host_f32({N, C, H, W});
  for (int64_t i = 0; i < dx.n(); i++) dx.f[i] = (float)acc[i];
  return dx;
}

// PyTorch's source index of output position j (align_corners=False), in float as PyTorch computes it;
// the weights and the blend in double
void src_index(int64_t in, int64_t out, int64_t j, int64_t& i0, int64_t& i1, double& l1) {
  volatile float scale = (float)in / (float)out;
  volatile float prod = scale * ((float)j + 0.5f);  // volatile: no fused multiply-add
  float src = prod - 0.5f;
  if (src < 0) src = 0;
  i0 = (int64_t)src;
  if (i0 > in - 1) i0 = in - 1;
  i1 = i0 + (i0 < in - 1 ? 1 : 0);
  l1 = (double)(src - (float)i0);
}

Host resize_ref(const Host& x, int64_t Ho, int64_t Wo) {
  int64_t N = x.s.ne[0], C = x.s.ne[1], H = x.s.ne[2], W = x.s.ne[3];
  Host y = host_f32({N, C, Ho, Wo});
  for (int64_t pl = 0; pl < N * C; pl++)
    for (int64_t oy = 0; oy < Ho; oy++)
      for (int64_t ox = 0; ox < Wo; ox++) {
        int64_t h0, h1, w0, w1;
        double lh1, lw1;
        src_index(H, Ho, oy, h0, h1, lh1);
        src_index(W, Wo, ox, w0, w1, lw1);
        auto at = [&](int64_t h, int64_t w) { return (double)x.f[(pl * H + h) * W + w]; };
        double v = (1 - lh1) * ((1 - lw1) * at(h0, w0) + lw1 * at(h0, w1)) + lh1 * ((1 - lw1) * at(h1, w0) + lw1 * at(h1, w1));
        y.f[(pl * Ho + oy) * Wo + ox] = (float)v;
      }
  return y;
}

std::string geom_name(const PoolCfg& c) {
  return " k" + std::to_string(c.k) + " s" + std::to_string(c.s) + " p" + std::to_string(c.p);
}

// distinct values at least 0.025 apart (> fd_eps): no argmax changes within the finite-difference step
InputSpec spread(Shape s, bool grad = true) {
  float r = 0.025f * (float)s.numel();
  InputSpec in{s, DType::f32, -r, r, {}, grad, true};
  return in;
}
InputSpec F(Shape s, bool grad = true) { return {s, DType::f32, -1.0f, 1.0f, {}, grad}; }

std::vector<OpCase> pool_cases() {
  std::vector<OpCase> cs;
  // ------------------------------------------------------------ max_pool2d
  struct MK { Shape x; PoolCfg c; const char* note; };
  std::vector<MK> mks = {
      {{2, 3, 8, 8}, {2, 2, 0, false}, " (VGG)"},
      {{2, 2, 9, 9}, {3, 2, 0, false}, " (Inception)"},
      {{2, 3, 7, 9}, {3, 1, 1, false}, " (Inception, padded)"},
      {{3, 2, 7, 9}, {2, 2, 0, false}, " (odd size)"},
      {{1, 2, 7, 9}, {3, 2, 1, false}, " (odd size, padded)"},
      {{1, 1, 6, 5}, {4, 3, 2, false}, " (k4 pad 2)"},
      {{1, 2, 4, 150}, {2, 2, 0, false}, " (wide rows)"},
  };
  for (const MK& m : mks) {
    PoolCfg c = m.c;
    cs.push_back({"max_pool2d " + m.x.str() + geom_name(c) + m.note, {spread(m.x)},
                  [c](Graph& g, const std::vector<Tensor*>& x) { return max_pool2d(g, x[0], c.k, c.s, c.p); },
                  [c](const std::vector<Host>& x) { return max_pool_ref(x[0], c); }});
  }
  {  // a non-contiguous input (the builder copies it)
    PoolCfg c{2, 2, 0, false};
    cs.push_back({"max_pool2d of a transposed [2, 2, 6, 8] k2 s2 p0", {spread({2, 2, 6, 8})},
                  [c](Graph& g, const std::vector<Tensor*>& x) { return max_pool2d(g, transpose(g, x[0], 2, 3), c.k, c.s, c.p); },
                  [c](const std::vector<Host>& x) {
                    Host t = host_f32({2, 2, 8, 6});
                    for (int64_t pl = 0; pl < 4; pl++)
                      for (int64_t i = 0; i < 8; i++)
                        for (int64_t j = 0; j < 6; j++) t.f[(pl * 8 + i) * 6 + j] = x[0].f[(pl * 6 + j) * 8 + i];
                    return max_pool_ref(t, c);
                  }});
  }
  // the gradient op itself: x [N, C, H, W], gy [N, C, Ho, Wo] -> dx
  struct BK { Shape x; PoolCfg c; };
  for (const BK& b : std::vector<BK>{{{2, 3, 8, 8}, {2, 2, 0, false}}, {{2, 3, 7, 9}, {3, 2, 1, false}}, {{1, 2, 7, 9}, {3, 1, 1, false}},
                                         {{1, 2, 5, 140}, {3, 1, 1, false}}, {{1, 1, 7, 8}, {4, 3, 2, false}}}) {
    PoolCfg c = b.c;
    Shape gs{b.x[0], b.x[1], out_size(b.x[2], c), out_size(b.x[3], c)};
    cs.push_back({"max_pool2d_bwd " + b.x.str() + geom_name(c), {spread(b.x, false), F(gs, false)},
                  [c](Graph& g, const std::vector<Tensor*>& x) { return max_pool2d_bwd(g, x[0], x[1], c.k, c.s, c.p); },
                  [c](const std::vector<Host>& x) { return max_pool_bwd_ref(x[0], x[1], c); }});
  }
  // ------------------------------------------------------------ avg_pool2d
  struct AK { Shape x; PoolCfg c; };
  std::vector<AK> aks = {
      {{2, 3, 7, 9}, {3, 1, 1, false}},  // pytorch-fid's Inception blocks
      {{2, 3, 7, 9}, {3, 1, 1, true}},
      {{2, 2, 8, 6}, {2, 2, 0, true}},
      {{1, 2, 9, 7}, {3, 2, 1, false}},
      {{1, 2, 9, 7}, {3, 2, 1, true}},
      {{2, 1, 5, 5}, {5, 1, 2, false}},
      {{1, 2, 5, 150}, {3, 2, 1, true}},
  };
  for (const AK& a : aks) {
    PoolCfg c = a.c;
    std::string nm = "avg_pool2d " + a.x.str() + geom_name(c) + (c.count_pad ? " count_include_pad" : " no pad count");
    cs.push_back({nm, {F(a.x)},
                  [c](Graph& g, const std::vector<Tensor*>& x) { return avg_pool2d(g, x[0], c.k, c.s, c.p, c.count_pad); },
                  [c](const std::vector<Host>& x) { return avg_pool_ref(x[0], c); }});
    // the gradient op: gy [N, C, Ho, Wo] -> dx [N, C, H, W]; its own gradient (avg_pool2d) is checked too
    Shape gs{a.x[0], a.x[1], out_size(a.x[2], c), out_size(a.x[3], c)};
    int64_t H = a.x[2], W = a.x[3];
    cs.push_back({"avg_pool2d_bwd " + gs.str() + " -> " + a.x.str() + geom_name(c) + (c.count_pad ? " count_include_pad" : " no pad count"),
                  {F(gs)},
                  [c, H, W](Graph& g, const std::vector<Tensor*>& x) { return avg_pool2d_bwd(g, x[0], H, W, c.k, c.s, c.p, c.count_pad); },
                  [c, H, W](const std::vector<Host>& x) { return avg_pool_bwd_ref(x[0], H, W, c); }});
  }
  // ------------------------------------------------------------ global_avg_pool2d
  for (bool keep : {false, true}) {
    cs.push_back({std::string("global_avg_pool2d [2, 3, 5, 7]") + (keep ? " keepdim" : ""), {F({2, 3, 5, 7})},
                  [keep](Graph& g, const std::vector<Tensor*>& x) { return global_avg_pool2d(g, x[0], keep); },
                  [keep](const std::vector<Host>& x) {
                    Host y = host_f32(keep ? Shape{2, 3, 1, 1} : Shape{2, 3});
                    for (int64_t pl = 0; pl < 6; pl++) {
                      double s = 0;
                      for (int64_t i = 0; i < 35; i++) s += x[0].f[pl * 35 + i];
                      y.f[pl] = (float)(s / 35);
                    }
                    return y;
                  }});
  }
  // ------------------------------------------------------------ resize_bilinear (forward only)
  struct RK { Shape x; int64_t Ho, Wo; const char* note; };
  std::vector<RK> rks = {
      {{2, 3, 5, 7}, 13, 11, " (up)"},
      {{2, 3, 13, 11}, 4, 6, " (down)"},
      {{1, 2, 6, 5}, 6, 5, " (identity)"},
      {{1, 2, 8, 5}, 8, 12, " (rows kept, columns up)"},
      {{2, 1, 9, 9}, 3, 14, " (rows down, columns up)"},
      {{1, 2, 32, 32}, 299, 299, " (Inception input)"},
  };
  for (const RK& r : rks) {
    int64_t Ho = r.Ho, Wo = r.Wo;
    OpCase c{"resize_bilinear " + r.x.str() + " -> " + std::to_string(Ho) + "x" + std::to_string(Wo) + r.note, {F(r.x, false)},
             [Ho, Wo](Graph& g, const std::vector<Tensor*>& x) { return resize_bilinear(g, x[0], Ho, Wo); },
             [Ho, Wo](const std::vector<Host>& x) { return resize_ref(x[0], Ho, Wo); }};
    c.ref_tol = 1e-6f;
    cs.push_back(c);
  }
  return cs;
}

int reg = register_op_cases(pool_cases);

}  // namespace
}  // namespace test
}  // namespace nsvq

using namespace nsvq;

TEST_CASE("pool ops: bad geometry, shapes and dtypes fail naming the op") {
  Graph g(backend_cpu());
  Tensor* x = g.input(DType::f32, {2, 3, 8, 8}, "x");
  auto has = [](const char* s) { return doctest::Contains(s); };
  CHECK_THROWS_WITH_AS(max_pool2d(g, x, 0, 1), has("max_pool2d: kernel 0, stride 1, pad 0 invalid"), Error);
  CHECK_THROWS_WITH_AS(max_pool2d(g, x, 2, 0), has("max_pool2d: kernel 2, stride 0"), Error);
  CHECK_THROWS_WITH_AS(max_pool2d(g, x, 3, 1, 2), has("pad 2 invalid"), Error);  // pad > k / 2
  CHECK_THROWS_WITH_AS(max_pool2d(g, x, 3, 1, -1), has("pad -1 invalid"), Error);
  CHECK_THROWS_WITH_AS(max_pool2d(g, x, 9, 1), has("max_pool2d: kernel 9 larger than the padded input 8x8"), Error);
  CHECK_THROWS_WITH_AS(avg_pool2d(g, x, 2, 2, 3), has("avg_pool2d: kernel 2, stride 2, pad 3 invalid"), Error);
  CHECK_THROWS_WITH_AS(avg_pool2d(g, x, 1, -1), has("avg_pool2d: kernel 1, stride -1"), Error);
  Tensor* x3 = g.input(DType::f32, {3, 8, 8}, "x3");
  Tensor* xi = g.input(DType::i32, {1, 1, 4, 4}, "xi");
  CHECK_THROWS_WITH_AS(max_pool2d(g, x3, 2, 2), has("max_pool2d: input x3 f32[3, 8, 8] must be f32 [N, C, H, W]"), Error);
  CHECK_THROWS_WITH_AS(avg_pool2d(g, xi, 2, 2), has("avg_pool2d: input xi"), Error);
  CHECK_THROWS_WITH_AS(global_avg_pool2d(g, x3), has("global_avg_pool2d: input x3"), Error);
  CHECK_THROWS_WITH_AS(resize_bilinear(g, x3, 4, 4), has("resize_bilinear: input x3"), Error);
  CHECK_THROWS_WITH_AS(resize_bilinear(g, x, 0, 4), has("resize_bilinear: output size 0x4 invalid"), Error);
  CHECK_THROWS_WITH_AS(resize_bilinear(g, x, 4, -1), has("resize_bilinear: output size 4x-1 invalid"), Error);
  Tensor* gy = g.input(DType::f32, {2, 3, 3, 4}, "gy");
  CHECK_THROWS_WITH_AS(max_pool2d_bwd(g, x, gy, 2, 2, 0), has("max_pool2d_bwd: gradient gy f32[2, 3, 3, 4] must be f32 [2, 3, 4, 4]"), Error);
  CHECK_THROWS_WITH_AS(avg_pool2d_bwd(g, gy, 8, 8, 2, 2, 0, true), has("avg_pool2d_bwd: gradient gy f32[2, 3, 3, 4] does not match"), Error);
}

namespace {
struct PoolRun {
  std::vector<float> y, dx;
};
// max_pool2d of x [1, 1, H, W] on the CPU, with the gradient of sum(y * w)
PoolRun run_max_pool(const std::vector<float>& xv, int64_t H, int64_t W, int k, int s, int p, const std::vector<float>& wv) {
  Store st(backend_cpu());
  Tensor* x = st.add("x", DType::f32, {1, 1, H, W});
  st.upload_f32(x, xv);
  Graph g(backend_cpu());
  Tensor* y = max_pool2d(g, x, k, s, p);
  g.mark_output(y);
  Tensor* loss = sum(g, mul(g, y, g.constant_data(y->shape(), wv)));
  g.mark_loss(loss);
  Tensor* dx = g.gradients({{loss, 1.0f}}, {x})[0];
  g.mark_output(dx);
  g.compute();
  return {g.get_f32(y), g.get_f32(dx)};
}
}  // namespace

TEST_CASE("max_pool2d: first maximum wins ties, NaN propagates, padding never wins (PyTorch's CPU rules)") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // 2x2 windows over a 2x4 image: a tie (the first gets the gradient) and a NaN window
  PoolRun r = run_max_pool({1, 0.5f, 2, nan, 1, -3, 7, 2}, 2, 4, 2, 2, 0, {10, 100});
  REQUIRE(r.y.size() == 2);
  CHECK(r.y[0] == 1.0f);
  CHECK(std::isnan(r.y[1]));
  CHECK(r.dx == std::vector<float>{10, 0, 0, 100, 0, 0, 0, 0});
  // all-negative image with padding 1: the -inf padding never wins, the gradient stays in the image
  PoolRun q = run_max_pool({-5, -4, -3, -2}, 2, 2, 3, 1, 1, {1, 2, 3, 4});
  CHECK(q.y == std::vector<float>{-2, -2, -2, -2});
  CHECK(q.dx == std::vector<float>{0, 0, 0, 10});
  // -inf everywhere: the window's first in-image element takes the gradient (PyTorch's initial index)
  const float ninf = -std::numeric_limits<float>::infinity();
  PoolRun n = run_max_pool({ninf, ninf, ninf, ninf}, 2, 2, 3, 1, 1, {1, 2, 3, 4});
  CHECK(n.y == std::vector<float>{ninf, ninf, ninf, ninf});
  CHECK(n.dx == std::vector<float>{10, 0, 0, 0});
}

TEST_CASE("pool ops: gradients that do not exist fail with a clear message") {
  Store st(backend_cpu());
  Tensor* x = st.add("x", DType::f32, {1, 2, 6, 6});
  {
    Graph g(backend_cpu());
    Tensor* loss = sum(g, resize_bilinear(g, x, 9, 9));
    CHECK_THROWS_WITH_AS(g.gradients({{loss, 1.0f}}, {x}), "resize_bilinear: no gradient (forward only)", Error);
  }
  {  // the gradient of the max-pool gradient (double backward)
    Graph g(backend_cpu());
    Tensor* y = max_pool2d(g, x, 2, 2);
    Tensor* gx = g.gradients({{sum(g, mul(g, y, y)), 1.0f}}, {x})[0];
    REQUIRE(gx != nullptr);
    CHECK_THROWS_WITH_AS(g.gradients({{sum(g, mul(g, gx, gx)), 1.0f}}, {x}), doctest::Contains("max_pool2d_bwd: no gradient"), Error);
  }
  {  // avg pooling's gradient is differentiable (its adjoint is the pooling again)
    Graph g(backend_cpu());
    Tensor* y = avg_pool2d(g, x, 3, 1, 1, false);
    Tensor* gx = g.gradients({{sum(g, mul(g, y, y)), 1.0f}}, {x})[0];
    CHECK_NOTHROW(g.gradients({{sum(g, mul(g, gx, gx)), 1.0f}}, {x}));
  }
}
