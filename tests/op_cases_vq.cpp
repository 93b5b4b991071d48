// tests/op_cases_vq.cpp — op-table cases of the vq family (ops/vq.h) and of the quantizers'
// differentiable paths: plain double-precision references (nothing shared with the kernels except
// Philox), finite-difference checks (dense-loss codebook gradient, VQ_new soft mixture, modified STE,
// SimVQ W and b, the l2 variant) and, with a GPU, CPU-vs-CUDA parity. Sizes are deliberately not
// multiples of the kernels' blocks (128 rows, 1024 codes) and some cases span several code chunks.
#include <algorithm>
#include <cmath>
#include "models/quantizer.h"
#include "tests/op_cases.h"

namespace nsvq {
namespace test {
namespace {

InputSpec F(Shape s, float lo = -1.0f, float hi = 1.0f) { return {s, DType::f32, lo, hi, {}, true}; }
InputSpec FN(Shape s, float lo = -1.0f, float hi = 1.0f) { return {s, DType::f32, lo, hi, {}, false}; }
InputSpec I(Shape s, int lo, int hi) { return {s, DType::i32, (float)lo, (float)hi, {}, false}; }

// d_ik = max(0, |z|^2 + |e|^2 - 2 z.e) in double
double dist(const Host& z, int64_t i, const Host& E, int64_t k) {
  int64_t D = z.s[1];
  double zz = 0, ee = 0, ze = 0;
  for (int64_t d = 0; d < D; d++) {
    double a = z.f[i * D + d], b = E.f[k * D + d];
    zz += a * a;
    ee += b * b;
    ze += a * b;
  }
  return std::max(zz + ee - 2.0 * ze, 0.0);
}

struct RefSearch {
  std::vector<double> dmin, lse;
  std::vector<int64_t> idx;
};

RefSearch ref_search(const Host& z, const Host& E, double tau) {
  int64_t N = z.s[0], K = E.s[0];
  RefSearch r;
  for (int64_t i = 0; i < N; i++) {
    double best = INFINITY;
    int64_t at = 0;
    std::vector<double> d((size_t)K);
    for (int64_t k = 0; k < K; k++) {
      d[(size_t)k] = dist(z, i, E, k);
      if (d[(size_t)k] < best) {
        best = d[(size_t)k];
        at = k;
      }
    }
    double s = 0;
    if (tau > 0)
      for (int64_t k = 0; k < K; k++) s += std::exp(-(d[(size_t)k] - best) / tau);
    r.dmin.push_back(best);
    r.idx.push_back(at);
    r.lse.push_back(tau > 0 ? -best / tau + std::log(s) : 0.0);
  }
  return r;
}

Host search_host(const RefSearch& r) {
  Host y = host_f32({(int64_t)r.idx.size(), 3});
  for (size_t i = 0; i < r.idx.size(); i++) {
    y.f[i * 3 + 0] = (float)r.dmin[i];
    y.f[i * 3 + 1] = (float)r.lse[i];
    y.f[i * 3 + 2] = (float)r.idx[i];
  }
  return y;
}

// w_ik of the dense loss in double (detached weights of method.md §3.1)
double weight(const RefSearch& r, int64_t i, double d, int64_t k, int64_t K, double tau, double lambda, double win) {
  if (k == r.idx[(size_t)i]) return win;
  double x = -d / tau - r.lse[(size_t)i];
  if (x < VQ_EXP_FLOOR) return 0.0;
  return std::min(1.0, lambda * (double)K * std::exp(x));
}

// stats [K, Dx + 2] with X
Host ref_stats(const Host& z, const Host& Ew, double tau, const Host& X, double lambda, double win) {
  int64_t N = z.s[0], K = Ew.s[0], Dx = X.s[1];
  RefSearch r = ref_search(z, Ew, tau);
  std::vector<double> acc((size_t)(K * (Dx + 2)), 0.0);
  for (int64_t i = 0; i < N; i++) {
    double zz = 0;
    for (int64_t d = 0; d < z.s[1]; d++) zz += (double)z.f[i * z.s[1] + d] * z.f[i * z.s[1] + d];
    for (int64_t k = 0; k < K; k++) {
      double w = weight(r, i, dist(z, i, Ew, k), k, K, tau, lambda, win);
      double* o = &acc[(size_t)(k * (Dx + 2))];
      for (int64_t d = 0; d < Dx; d++) o[d] += w * X.f[i * Dx + d];
      o[Dx] += w;
      o[Dx + 1] += w * zz;
    }
  }
  Host y = host_f32({K, Dx + 2});
  for (size_t j = 0; j < acc.size(); j++) y.f[j] = (float)acc[j];
  return y;
}

uint64_t seed_of(const Host& ctl) { return (uint64_t)(uint32_t)ctl.i[0] | ((uint64_t)(uint32_t)ctl.i[1] << 32); }
uint64_t step_of(const Host& ctl) { return (uint64_t)(uint32_t)ctl.i[2] | ((uint64_t)(uint32_t)ctl.i[3] << 32); }

std::vector<OpCase> vq_cases() {
  std::vector<OpCase> cs;
  const float LAM = 0.3f;  // large enough that some weights clip at 1 with these K

  // ------------------------------------------------------------ search
  cs.push_back({"vq_nearest [300,7] x [1500,7] (rows and codes off the blocks)", {FN({300, 7}), FN({1500, 7})},
                [](Graph& g, const std::vector<Tensor*>& x) { return vq_nearest(g, x[0], x[1]); },
                [](const std::vector<Host>& x) { return search_host(ref_search(x[0], x[1], 0.0)); }, 1e-4f});
  cs.push_back({"vq_nearest with LSE [45,3] x [5000,3] (one row block, 5 code chunks)", {FN({45, 3}), FN({5000, 3}), FN({1}, 0.05f, 0.2f)},
                [](Graph& g, const std::vector<Tensor*>& x) { return vq_nearest(g, x[0], x[1], x[2]); },
                [](const std::vector<Host>& x) { return search_host(ref_search(x[0], x[1], x[2].f[0])); }, 1e-4f});
  cs.push_back({"vq_nearest ties go to the lowest index (codebook repeated 3 times)", {FN({70, 5}), FN({400, 5})},
                [](Graph& g, const std::vector<Tensor*>& x) {
                  return vq_indices(g, vq_nearest(g, x[0], concat(g, {x[1], x[1], x[1]}, 0)));
                },
                [](const std::vector<Host>& x) {
                  RefSearch r = ref_search(x[0], x[1], 0.0);
                  Host y = host_i32({70});
                  for (int i = 0; i < 70; i++) y.i[i] = (int32_t)r.idx[i];
                  return y;
                }});
  cs.push_back({"vq_lse_refresh against a new codebook", {FN({20, 4}), FN({33, 4}), FN({33, 4}), FN({1}, 0.3f, 0.6f), I({5}, 7, 8)},
                [](Graph& g, const std::vector<Tensor*>& x) {
                  Tensor* s = vq_nearest(g, x[0], x[1], x[3]);
                  return vq_lse_refresh(g, s, x[0], x[2], x[3], x[4]);
                },
                [](const std::vector<Host>& x) {
                  RefSearch a = ref_search(x[0], x[1], x[3].f[0]), b = ref_search(x[0], x[2], x[3].f[0]);
                  a.lse = b.lse;
                  return search_host(a);
                }, 1e-4f});
  cs.push_back({"vq_tau_calibrate: rho * median min distance (even N)", {FN({1}), FN({34, 3}), FN({50, 3}), I({5}, 7, 8)},
                [](Graph& g, const std::vector<Tensor*>& x) {
                  return vq_tau_calibrate(g, x[0], vq_nearest(g, x[1], x[2]), x[3], 2.5f);
                },
                [](const std::vector<Host>& x) {
                  RefSearch r = ref_search(x[1], x[2], 0.0);
                  std::vector<double> d = r.dmin;
                  std::sort(d.begin(), d.end());
                  Host y = host_f32({1});
                  y.f[0] = (float)(2.5 * 0.5 * (d[16] + d[17]));
                  return y;
                }, 1e-4f});

  // ------------------------------------------------------------ dense loss
  cs.push_back({"vq_dense_stats [150,5] x [1100,5] (lambda 0.3)", {FN({150, 5}), FN({1100, 5}), FN({1}, 0.2f, 0.5f)},
                [LAM](Graph& g, const std::vector<Tensor*>& x) {
                  Tensor* s = vq_nearest(g, x[0], x[1], x[2]);
                  return vq_dense_stats(g, x[0], x[1], s, x[2], x[0], LAM, 1.0f);
                },
                [LAM](const std::vector<Host>& x) { return ref_stats(x[0], x[1], x[2].f[0], x[0], LAM, 1.0); }, 2e-4f});
  cs.push_back({"vq_dense_loss: codebook gradient (weights frozen at Ew)", {FN({23, 4}), FN({31, 4}), FN({1}, 0.3f, 0.8f), F({31, 4})},
                [LAM](Graph& g, const std::vector<Tensor*>& x) {
                  Tensor* s = vq_nearest(g, x[0], x[1], x[2]);
                  Tensor* st = vq_dense_stats(g, x[0], x[1], s, x[2], x[0], LAM, 1.0f);
                  return vq_dense_loss(g, st, x[3], 23);
                },
                [LAM](const std::vector<Host>& x) {
                  const Host &z = x[0], &Ew = x[1], &E = x[3];
                  RefSearch r = ref_search(z, Ew, x[2].f[0]);
                  double L = 0;
                  for (int64_t i = 0; i < 23; i++)
                    for (int64_t k = 0; k < 31; k++)
                      L += weight(r, i, dist(z, i, Ew, k), k, 31, x[2].f[0], LAM, 1.0) * dist(z, i, E, k);
                  Host y = host_f32({});
                  y.f[0] = (float)(L / (23.0 * 4.0));
                  return y;
                }, 1e-4f});
  cs.push_back({"vq_soft_mix (VQ_new): A = W E and W^T gA", {FN({25, 3}), FN({40, 3}), FN({1}, 0.3f, 0.8f), F({40, 3})},
                [LAM](Graph& g, const std::vector<Tensor*>& x) {
                  Tensor* s = vq_nearest(g, x[0], x[1], x[2]);
                  return vq_soft_mix(g, x[0], x[1], s, x[2], x[3], LAM);
                },
                [LAM](const std::vector<Host>& x) {
                  const Host &z = x[0], &Ew = x[1], &E = x[3];
                  RefSearch r = ref_search(z, Ew, x[2].f[0]);
                  Host y = host_f32({25, 3});
                  for (int64_t i = 0; i < 25; i++)
                    for (int64_t k = 0; k < 40; k++) {
                      double w = weight(r, i, dist(z, i, Ew, k), k, 40, x[2].f[0], LAM, 0.0);
                      for (int d = 0; d < 3; d++) y.f[i * 3 + d] += (float)(w * E.f[k * 3 + d]);
                    }
                  return y;
                }, 1e-4f});

  // ------------------------------------------------------------ straight-through, SimVQ, l2
  // The STE's stop-gradient term held fixed (input 2): what is left is z + a q, whose gradients the
  // quantizer relies on (dz = gy, dq = a gy).
  cs.push_back({"modified STE z + a q + sg(...) with a = 0.3", {F({6, 4}), F({6, 4}), FN({6, 4})},
                [](Graph& g, const std::vector<Tensor*>& x) {
                  Tensor* zq = vq_straight_through(g, x[0], x[1], 0.3f);  // builds z + a q + detach(...)
                  // replace the detached part by the held input: zq - sg(zq - z - a q) + c
                  Tensor* held = detach(g, sub(g, zq, add(g, x[0], scale(g, x[1], 0.3f))));
                  return add(g, sub(g, zq, held), x[2]);
                },
                [](const std::vector<Host>& x) {
                  Host y = host_f32({6, 4});
                  for (int i = 0; i < 24; i++) y.f[i] = (float)(x[0].f[i] + 0.3 * x[1].f[i] + x[2].f[i]);
                  return y;
                }, 1e-5f});
  cs.push_back({"SimVQ codebook C W^T + b: W and b gradients through get_rows and L_cb",
                {FN({12, 4}), F({4, 4}), F({4}), FN({9, 4}), I({9}, 0, 12)},
                [](Graph& g, const std::vector<Tensor*>& x) {
                  Tensor* q = get_rows(g, simvq_codebook(g, x[0], x[1], x[2]), x[4]);
                  return loss_mse(g, q, x[3]);
                },
                [](const std::vector<Host>& x) {
                  double L = 0;
                  for (int i = 0; i < 9; i++)
                    for (int o = 0; o < 4; o++) {
                      double c = x[2].f[o];
                      for (int j = 0; j < 4; j++) c += (double)x[0].f[x[4].i[i] * 4 + j] * x[1].f[o * 4 + j];
                      L += (c - x[3].f[i * 4 + o]) * (c - x[3].f[i * 4 + o]);
                    }
                  Host y = host_f32({});
                  y.f[0] = (float)(L / 36.0);
                  return y;
                }, 1e-5f});
  cs.push_back({"l2 variant: |normalise(E)[idx] - normalise(z)|^2 (both gradients)", {F({7, 5}), F({9, 5}), I({7}, 0, 9)},
                [](Graph& g, const std::vector<Tensor*>& x) {
                  return loss_mse(g, get_rows(g, vq_l2_normalize(g, x[1]), x[2]), vq_l2_normalize(g, x[0]));
                },
                [](const std::vector<Host>& x) {
                  auto nrm = [](const Host& h, int64_t r) {
                    double s = 0;
                    for (int d = 0; d < 5; d++) s += (double)h.f[r * 5 + d] * h.f[r * 5 + d];
                    return std::max(std::sqrt(s), 1e-6);
                  };
                  double L = 0;
                  for (int i = 0; i < 7; i++) {
                    int k = x[2].i[i];
                    double nz = nrm(x[0], i), ne = nrm(x[1], k);
                    for (int d = 0; d < 5; d++) {
                      double v = x[1].f[k * 5 + d] / ne - x[0].f[i * 5 + d] / nz;
                      L += v * v;
                    }
                  }
                  Host y = host_f32({});
                  y.f[0] = (float)(L / 35.0);
                  return y;
                }, 1e-5f});

  // ------------------------------------------------------------ statistics and state
  cs.push_back({"vq_histogram then vq_code_stats", {I({50}, 0, 9)},
                [](Graph& g, const std::vector<Tensor*>& x) { return vq_code_stats(g, vq_histogram(g, x[0], 12)); },
                [](const std::vector<Host>& x) {
                  std::vector<double> h(12, 0.0);
                  for (int i = 0; i < 50; i++) h[(size_t)x[0].i[i]] += 1;
                  double ent = 0, used = 0;
                  for (double c : h)
                    if (c > 0) {
                      ent -= c / 50 * std::log(c / 50);
                      used++;
                    }
                  Host y = host_f32({2});
                  y.f[0] = (float)std::exp(ent);
                  y.f[1] = (float)used;
                  return y;
                }, 1e-5f});
  cs.push_back({"vq_counts_add", {I({10}, 0, 5), I({30}, 0, 10)},
                [](Graph& g, const std::vector<Tensor*>& x) { return vq_counts_add(g, x[0], vq_histogram(g, x[1], 10)); },
                [](const std::vector<Host>& x) {
                  Host y = x[0];
                  for (int i = 0; i < 30; i++) y.i[(size_t)x[1].i[i]]++;
                  return y;
                }});
  // reservoir state (ptr, fill) = (3, 3): 5 rows go to slots 3, 4, 5, 6, 7
  cs.push_back({"vq_reservoir_push", {FN({8, 3}), I({2}, 3, 4), FN({6, 3}), I({5}, 0, 6)},
                [](Graph& g, const std::vector<Tensor*>& x) { return vq_reservoir_push(g, x[0], x[1], x[2], x[3]); },
                [](const std::vector<Host>& x) {
                  Host y = x[0];
                  for (int j = 0; j < 5; j++)
                    for (int d = 0; d < 3; d++) y.f[((3 + j) % 8) * 3 + d] = x[2].f[x[3].i[j] * 3 + d];
                  return y;
                }});
  // control = 7 everywhere: every flag set; reservoir fill 4; counts in {0, 1, 2}, threshold 2
  cs.push_back({"vq_replace of codes with counts below 2", {FN({11, 3}), I({11}, 0, 3), FN({6, 3}), I({2}, 4, 5), I({5}, 7, 8), I({1}, 0, 1)},
                [](Graph& g, const std::vector<Tensor*>& x) { return vq_replace(g, x[0], x[1], x[2], x[3], x[4], x[5], 2); },
                [](const std::vector<Host>& x) {
                  Host y = x[0];
                  for (int k = 0; k < 11; k++)
                    if (x[1].i[k] < 2) {
                      uint32_t u = vq_draw_below(seed_of(x[4]), VQ_STREAM_REPLACE, step_of(x[4]), (uint64_t)k, 4);
                      for (int d = 0; d < 3; d++) y.f[k * 3 + d] = x[2].f[u * 3 + d];
                    }
                  return y;
                }});
  cs.push_back({"vq_ema_update (decay 0.9, eps 1e-5, restart below 1)",
                {FN({12, 3}), FN({12}, 0.5f, 2.0f), FN({12, 3}), I({12}, 0, 3), FN({12, 3}), FN({5, 3}), I({5}, 7, 8), I({1}, 0, 1)},
                [](Graph& g, const std::vector<Tensor*>& x) {
                  return vq_ema_update(g, x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], 0.9f, 1e-5f, 1.0f);
                },
                [](const std::vector<Host>& x) {
                  const double gm = 0.9, eps = 1e-5;
                  std::vector<double> n(12);
                  double tot = 0;
                  for (int k = 0; k < 12; k++) {
                    n[k] = gm * x[1].f[k] + (1 - gm) * x[3].i[k];
                    tot += n[k];
                  }
                  Host y = host_f32({12, 3});
                  for (int k = 0; k < 12; k++) {
                    double nk = (n[k] + eps) / (tot + 12 * eps) * tot;
                    for (int d = 0; d < 3; d++) y.f[k * 3 + d] = (float)((gm * x[2].f[k * 3 + d] + (1 - gm) * x[4].f[k * 3 + d]) / nk);
                    if (n[k] < 1.0) {
                      uint32_t u = vq_draw_below(seed_of(x[6]), VQ_STREAM_EMA, step_of(x[6]), (uint64_t)k, 5);
                      for (int d = 0; d < 3; d++) y.f[k * 3 + d] = x[5].f[u * 3 + d];
                    }
                  }
                  return y;
                }, 1e-4f});
  return cs;
}

}  // namespace

static int reg = register_op_cases(vq_cases);

}  // namespace test
}  // namespace nsvq
