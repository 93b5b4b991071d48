// tests/op_cases_nn.cpp — op-table cases for the vision/model ops: group norm (+SiLU), layer norm,
// batch norm (training and eval), with double-precision references.
#include <cmath>
#include "tests/op_cases.h"

namespace nsvq {
namespace test {
namespace {

// Normalises x viewed as [A, G, Cg, S] per (a, g) (group norm; layer norm is A rows, G = 1, S = 1
// with Cg = D), then applies per-channel gamma/beta and an optional SiLU.
Host norm_ref(const Host& x, int64_t A, int64_t G, int64_t Cg, int64_t S, const float* ga, const float* be, double eps,
              bool silu) {
  Host y = host_f32(x.s);
  int64_t L = Cg * S;
  for (int64_t a = 0; a < A; a++)
    for (int64_t g = 0; g < G; g++) {
      const float* p = x.f.data() + (a * G + g) * L;
      double m = 0, v = 0;
      for (int64_t i = 0; i < L; i++) m += p[i];
      m /= L;
      for (int64_t i = 0; i < L; i++) v += (p[i] - m) * (p[i] - m);
      v /= L;
      for (int64_t i = 0; i < L; i++) {
        int64_t ch = g * Cg + i / S;
        double t = (p[i] - m) / std::sqrt(v + eps) * (ga ? ga[ch] : 1.0) + (be ? be[ch] : 0.0);
        if (silu) t = t / (1.0 + std::exp(-t));
        y.f[(size_t)((a * G + g) * L + i)] = (float)t;
      }
    }
  return y;
}

Host bn_ref(const Host& x, const float* ga, const float* be, double eps) {
  int64_t N = x.s.ne[0], C = x.s.ne[1], S = x.n() / (N * C);
  Host y = host_f32(x.s);
  for (int64_t c = 0; c < C; c++) {
    double m = 0, v = 0;
    for (int64_t n = 0; n < N; n++)
      for (int64_t s = 0; s < S; s++) m += x.f[(n * C + c) * S + s];
    m /= N * S;
    for (int64_t n = 0; n < N; n++)
      for (int64_t s = 0; s < S; s++) v += std::pow(x.f[(n * C + c) * S + s] - m, 2);
    v /= N * S;
    for (int64_t n = 0; n < N; n++)
      for (int64_t s = 0; s < S; s++) {
        size_t i = (size_t)((n * C + c) * S + s);
        y.f[i] = (float)((x.f[i] - m) / std::sqrt(v + eps) * ga[c] + be[c]);
      }
  }
  return y;
}

InputSpec F(Shape s, float lo = -1.0f, float hi = 1.0f) { return {s, DType::f32, lo, hi, {}, true}; }
InputSpec FN(Shape s, float lo = -1.0f, float hi = 1.0f) { return {s, DType::f32, lo, hi, {}, false}; }

std::vector<OpCase> nn_cases() {
  std::vector<OpCase> cs;
  cs.push_back({"group_norm [2,6,3,4] 3 groups, affine", {F({2, 6, 3, 4}), F({6}, 0.5f, 1.5f), F({6})},
                [](Graph& g, const std::vector<Tensor*>& x) { return group_norm(g, x[0], x[1], x[2], 3, 1e-6f); },
                [](const std::vector<Host>& x) { return norm_ref(x[0], 2, 3, 2, 12, x[1].f.data(), x[2].f.data(), 1e-6, false); },
                1e-5f});
  cs.push_back({"group_norm + silu [3,4,5] 2 groups", {F({3, 4, 5}), F({4}, 0.5f, 1.5f), F({4})},
                [](Graph& g, const std::vector<Tensor*>& x) { return group_norm(g, x[0], x[1], x[2], 2, 1e-6f, true); },
                [](const std::vector<Host>& x) { return norm_ref(x[0], 3, 2, 2, 5, x[1].f.data(), x[2].f.data(), 1e-6, true); },
                1e-5f});
  cs.push_back({"group_norm no affine [2,8,2,2] 8 groups", {F({2, 8, 2, 2})},
                [](Graph& g, const std::vector<Tensor*>& x) { return group_norm(g, x[0], nullptr, nullptr, 8, 1e-5f); },
                [](const std::vector<Host>& x) { return norm_ref(x[0], 2, 8, 1, 4, nullptr, nullptr, 1e-5, false); }, 1e-5f});
  cs.push_back({"layer_norm [5,8] affine", {F({5, 8}), F({8}, 0.5f, 1.5f), F({8})},
                [](Graph& g, const std::vector<Tensor*>& x) { return layer_norm(g, x[0], x[1], x[2], 1e-6f); },
                [](const std::vector<Host>& x) { return norm_ref(x[0], 5, 1, 8, 1, x[1].f.data(), x[2].f.data(), 1e-6, false); },
                1e-5f});
  cs.push_back({"layer_norm [2,3,7] no affine", {F({2, 3, 7})},
                [](Graph& g, const std::vector<Tensor*>& x) { return layer_norm(g, x[0], nullptr, nullptr, 1e-6f); },
                [](const std::vector<Host>& x) { return norm_ref(x[0], 6, 1, 7, 1, nullptr, nullptr, 1e-6, false); }, 1e-5f});
  cs.push_back({"batch_norm training [4,3,2,2]", {F({4, 3, 2, 2}), F({3}, 0.5f, 1.5f), F({3}), FN({3}), FN({3}, 0.5f, 2.0f)},
                [](Graph& g, const std::vector<Tensor*>& x) { return batch_norm(g, x[0], x[1], x[2], x[3], x[4], true); },
                [](const std::vector<Host>& x) { return bn_ref(x[0], x[1].f.data(), x[2].f.data(), 1e-5); }, 1e-5f});
  cs.push_back({"batch_norm eval [3,2,5]", {F({3, 2, 5}), F({2}, 0.5f, 1.5f), F({2}), FN({2}), FN({2}, 0.5f, 2.0f)},
                [](Graph& g, const std::vector<Tensor*>& x) { return batch_norm(g, x[0], x[1], x[2], x[3], x[4], false); },
                [](const std::vector<Host>& x) {
                  Host y = host_f32(x[0].s);
                  for (int64_t i = 0; i < y.n(); i++) {
                    int64_t c = (i / 5) % 2;
                    y.f[i] = (float)((x[0].f[i] - x[3].f[c]) / std::sqrt(x[4].f[c] + 1e-5) * x[1].f[c] + x[2].f[c]);
                  }
                  return y;
                },
                1e-5f});
  auto attn_ref = [](const std::vector<Host>& x) {
    const Host &q = x[0], &k = x[1], &v = x[2];
    int64_t BH = q.s.ne[0] * q.s.ne[1], L = q.s.ne[2], d = q.s.ne[3], S = k.s.ne[2], dv = v.s.ne[3];
    Host o = host_f32({q.s.ne[0], q.s.ne[1], L, dv});
    for (int64_t b = 0; b < BH; b++)
      for (int64_t i = 0; i < L; i++) {
        std::vector<double> s(S);
        double mx = -1e300, z = 0;
        for (int64_t j = 0; j < S; j++) {
          double a = 0;
          for (int64_t c = 0; c < d; c++) a += (double)q.f[(b * L + i) * d + c] * k.f[(b * S + j) * d + c];
          s[j] = a / std::sqrt((double)d);
          mx = std::max(mx, s[j]);
        }
        for (int64_t j = 0; j < S; j++) z += std::exp(s[j] - mx);
        for (int64_t c = 0; c < dv; c++) {
          double a = 0;
          for (int64_t j = 0; j < S; j++) a += std::exp(s[j] - mx) / z * v.f[(b * S + j) * dv + c];
          o.f[(b * L + i) * dv + c] = (float)a;
        }
      }
    return o;
  };
  cs.push_back({"attention [2,2,5,4] keys 7 dv 3", {F({2, 2, 5, 4}, -2, 2), F({2, 2, 7, 4}, -2, 2), F({2, 2, 7, 3})},
                [](Graph& g, const std::vector<Tensor*>& x) { return attention(g, x[0], x[1], x[2]); }, attn_ref, 1e-5f});
  cs.push_back({"attention [1,1,70,8] keys 130 (several blocks)", {FN({1, 1, 70, 8}, -2, 2), FN({1, 1, 130, 8}, -2, 2), F({1, 1, 130, 8})},
                [](Graph& g, const std::vector<Tensor*>& x) { return attention(g, x[0], x[1], x[2]); }, attn_ref, 1e-5f});
  // 300 query rows x 130 keys exceed the CPU backward's row budget (32768 / 130 = 252 rows): two row
  // blocks, dK and dV accumulated across them
  cs.push_back({"attention [1,1,300,4] keys 130 dv 3 (backward row blocks)", {FN({1, 1, 300, 4}, -1, 1), FN({1, 1, 130, 4}, -1, 1), F({1, 1, 130, 3})},
                [](Graph& g, const std::vector<Tensor*>& x) { return attention(g, x[0], x[1], x[2]); }, attn_ref, 1e-5f});
  struct CK { Shape x, w; bool bias; int s, pt, pb, pl, pr; bool grad; };
  std::vector<CK> cks = {
      {{2, 3, 5, 6}, {4, 3, 3, 3}, true, 1, 1, 1, 1, 1, true},
      {{2, 3, 6, 6}, {4, 3, 3, 3}, true, 2, 0, 1, 0, 1, true},   // taming Downsample padding
      {{2, 5, 4, 4}, {3, 5, 1, 1}, true, 1, 0, 0, 0, 0, true},   // 1x1 direct path
      {{1, 2, 8, 8}, {3, 2, 4, 4}, false, 2, 1, 1, 1, 1, true},  // PatchGAN 4x4 s2 p1
      {{3, 2, 7, 5}, {2, 2, 3, 2}, false, 1, 2, 0, 1, 1, true},  // odd kernel, odd padding
      {{1, 512, 16, 16}, {4, 512, 3, 3}, true, 1, 1, 1, 1, 1, false},  // several im2col chunks
      {{2, 2, 24, 24}, {3, 2, 3, 3}, true, 1, 1, 1, 1, 1, true},       // one image per GEMM
      {{5, 2, 16, 16}, {3, 2, 3, 3}, false, 1, 1, 1, 1, 1, true},      // image groups of 4 and 1
      {{5, 3, 8, 8}, {4, 3, 1, 1}, true, 1, 0, 0, 0, 0, true},         // grouped 1x1 direct
  };
  for (const CK& k : cks) {
    OpCase c;
    c.name = "conv2d x" + k.x.str() + " w" + k.w.str() + " s" + std::to_string(k.s) + " pad " + std::to_string(k.pt) +
             std::to_string(k.pb) + std::to_string(k.pl) + std::to_string(k.pr) + (k.bias ? " bias" : "");
    c.inputs = {{k.x, DType::f32, -1, 1, {}, k.grad}, {k.w, DType::f32, -0.5f, 0.5f, {}, k.grad}};
    if (k.bias) c.inputs.push_back({Shape{k.w[0]}, DType::f32, -1, 1, {}, k.grad});
    c.build = [k](Graph& g, const std::vector<Tensor*>& x) {
      return conv2d(g, x[0], x[1], k.bias ? x[2] : nullptr, k.s, k.pt, k.pb, k.pl, k.pr);
    };
    c.ref = [k](const std::vector<Host>& in) {
      const Host &x = in[0], &w = in[1];
      int64_t N = k.x[0], C = k.x[1], H = k.x[2], W = k.x[3], O = k.w[0], kh = k.w[2], kw = k.w[3];
      int64_t Ho = (H + k.pt + k.pb - kh) / k.s + 1, Wo = (W + k.pl + k.pr - kw) / k.s + 1;
      Host y = host_f32({N, O, Ho, Wo});
      for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++)
          for (int64_t oy = 0; oy < Ho; oy++)
            for (int64_t ox = 0; ox < Wo; ox++) {
              double a = k.bias ? in[2].f[o] : 0.0;
              for (int64_t ci = 0; ci < C; ci++)
                for (int64_t i = 0; i < kh; i++)
                  for (int64_t j = 0; j < kw; j++) {
                    int64_t iy = oy * k.s - k.pt + i, ix = ox * k.s - k.pl + j;
                    if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                    a += (double)x.f[((n * C + ci) * H + iy) * W + ix] * w.f[((o * C + ci) * kh + i) * kw + j];
                  }
              y.f[((n * O + o) * Ho + oy) * Wo + ox] = (float)a;
            }
      return y;
    };
    c.ref_tol = k.x[1] * k.w[2] * k.w[3] > 1000 ? 1e-4f : 1e-5f;  // f32 sums of K = C*kh*kw products
    cs.push_back(c);
  }
  cs.push_back({"linear [2,3,5] x w[4,5] + b", {F({2, 3, 5}), F({4, 5}), F({4})},
                [](Graph& g, const std::vector<Tensor*>& x) { return linear(g, x[0], x[1], x[2]); },
                [](const std::vector<Host>& x) {
                  Host y = host_f32({2, 3, 4});
                  for (int r = 0; r < 6; r++)
                    for (int o = 0; o < 4; o++) {
                      double a = x[2].f[o];
                      for (int i = 0; i < 5; i++) a += (double)x[0].f[r * 5 + i] * x[1].f[o * 5 + i];
                      y.f[r * 4 + o] = (float)a;
                    }
                  return y;
                }});
  cs.push_back({"modulate [2,3,4]", {F({2, 3, 4}), F({2, 4}), F({2, 4})},
                [](Graph& g, const std::vector<Tensor*>& x) { return modulate(g, x[0], x[1], x[2]); },
                [](const std::vector<Host>& x) {
                  Host y = host_f32({2, 3, 4});
                  for (int b = 0; b < 2; b++)
                    for (int t = 0; t < 3; t++)
                      for (int d = 0; d < 4; d++)
                        y.f[(b * 3 + t) * 4 + d] = x[0].f[(b * 3 + t) * 4 + d] * (1 + x[2].f[b * 4 + d]) + x[1].f[b * 4 + d];
                  return y;
                }});
  cs.push_back({"upsample_nearest2x [2,3,3,4]", {F({2, 3, 3, 4})},
                [](Graph& g, const std::vector<Tensor*>& x) { return upsample_nearest2x(g, x[0]); },
                [](const std::vector<Host>& x) {
                  Host y = host_f32({2, 3, 6, 8});
                  for (int64_t i = 0; i < y.n(); i++) {
                    int64_t c[4];
                    unravel(y.s, i, c);
                    y.f[i] = x[0].f[((c[0] * 3 + c[1]) * 3 + c[2] / 2) * 4 + c[3] / 2];
                  }
                  return y;
                }});
  cs.push_back({"upsample_nearest2x_bwd [2,3,6,8]", {F({2, 3, 6, 8})},
                [](Graph& g, const std::vector<Tensor*>& x) { return upsample_nearest2x_bwd(g, x[0]); },
                [](const std::vector<Host>& x) {
                  Host y = host_f32({2, 3, 3, 4});
                  for (int64_t i = 0; i < y.n(); i++) {
                    int64_t c[4];
                    unravel(y.s, i, c);
                    const float* r0 = &x[0].f[((c[0] * 3 + c[1]) * 6 + 2 * c[2]) * 8 + 2 * c[3]];
                    y.f[i] = (r0[0] + r0[1]) + (r0[8] + r0[9]);
                  }
                  return y;
                }});
  auto d2s = [](const Host& x, int r) {  // PixelShuffle
    int64_t N = x.s.ne[0], C = x.s.ne[1] / (r * r), H = x.s.ne[2], W = x.s.ne[3];
    Host y = host_f32({N, C, H * r, W * r});
    for (int64_t i = 0; i < y.n(); i++) {
      int64_t c[4];
      unravel(y.s, i, c);
      int64_t ci = c[1] * r * r + (c[2] % r) * r + c[3] % r;
      y.f[i] = x.f[((c[0] * x.s.ne[1] + ci) * H + c[2] / r) * W + c[3] / r];
    }
    return y;
  };
  cs.push_back({"depth_to_space r2 [2,8,3,2]", {F({2, 8, 3, 2})},
                [](Graph& g, const std::vector<Tensor*>& x) { return depth_to_space(g, x[0], 2); },
                [d2s](const std::vector<Host>& x) { return d2s(x[0], 2); }});
  cs.push_back({"space_to_depth r2 then depth_to_space is identity [1,3,4,6]", {F({1, 3, 4, 6})},
                [](Graph& g, const std::vector<Tensor*>& x) { return depth_to_space(g, space_to_depth(g, x[0], 2), 2); },
                [](const std::vector<Host>& x) { return x[0]; }});
  cs.push_back({"hinge_d_loss", {F({3, 1, 2, 2}, -2, 2), F({3, 1, 2, 2}, -2, 2)},
                [](Graph& g, const std::vector<Tensor*>& x) { return hinge_d_loss(g, x[0], x[1]); },
                [](const std::vector<Host>& x) {
                  double a = 0, b = 0;
                  for (int i = 0; i < 12; i++) {
                    a += std::max(0.0, 1.0 - x[0].f[i]);
                    b += std::max(0.0, 1.0 + x[1].f[i]);
                  }
                  Host y = host_f32({});
                  y.f[0] = (float)(0.5 * (a / 12 + b / 12));
                  return y;
                }});
  cs.push_back({"non_saturating_g_loss [3,1,2,2]", {F({3, 1, 2, 2}, -2, 2)},
                [](Graph& g, const std::vector<Tensor*>& x) { return non_saturating_g_loss(g, x[0]); },
                [](const std::vector<Host>& x) {
                  double s = 0;
                  for (int b = 0; b < 3; b++) {
                    double m = 0;
                    for (int i = 0; i < 4; i++) m += x[0].f[b * 4 + i];
                    s += std::log1p(std::exp(-m / 4));
                  }
                  Host y = host_f32({});
                  y.f[0] = (float)(s / 3);
                  return y;
                }});
  return cs;
}

int reg = register_op_cases(nn_cases);

}  // namespace
}  // namespace test
}  // namespace nsvq
