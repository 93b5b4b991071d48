// ops/cpu/norm.cpp — CPU kernels of the normalisation family (see ops/norm.cpp for the group
// layout): forward (optionally + SiLU), input gradient, gamma/beta gradient, running statistics.
// Statistics are two-pass (mean, then centred variance) with f64 accumulation. Each group is
// handled by one thread in a fixed order, so results do not depend on the thread count.
#include <cmath>
#include "ops/cpu/cpu_kernels.h"
#include "ops/elementwise_math.h"
#include "ops/ops_internal.h"

#define NSVQ_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

namespace nsvq {

namespace {
struct Desc {
  int64_t K, R, Lseg, Sseg, G, Cg, S, C;
  int silu;
  float eps;
  explicit Desc(const Tensor* t)
      : K(t->ip[0]), R(t->ip[1]), Lseg(t->ip[2]), Sseg(t->ip[3]), G(t->ip[4]), Cg(t->ip[5]), S(t->ip[6]),
        C(t->ip[7]), silu(t->ip[8]), eps(t->fp[0]) {}
  int64_t base(int64_t k, int64_t r) const { return k * Lseg + r * Sseg; }
  int64_t ch0(int64_t k) const { return (k % G) * Cg; }
  double count() const { return (double)R * (double)Lseg; }
};

NSVQ_CLONES double sum_d(const float* __restrict x, int64_t n) {
  double acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) acc[j] += x[i + j];
  for (; i < n; i++) acc[0] += x[i];
  double s = 0;
  for (int j = 0; j < 8; j++) s += acc[j];
  return s;
}

NSVQ_CLONES double sum_sq_centred_d(const float* __restrict x, int64_t n, float m) {
  double acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) {
      double d = x[i + j] - m;
      acc[j] += d * d;
    }
  for (; i < n; i++) acc[0] += (double)(x[i] - m) * (x[i] - m);
  double s = 0;
  for (int j = 0; j < 8; j++) s += acc[j];
  return s;
}

// mean and 1/sqrt(var + eps) of group k (biased variance); var_out gets the biased variance
void group_stats(const Desc& d, const float* x, int64_t k, float& mean, float& rstd, double* var_out = nullptr) {
  double s = 0;
  for (int64_t r = 0; r < d.R; r++) s += sum_d(x + d.base(k, r), d.Lseg);
  mean = (float)(s / d.count());
  double v = 0;
  for (int64_t r = 0; r < d.R; r++) v += sum_sq_centred_d(x + d.base(k, r), d.Lseg, mean);
  v /= d.count();
  if (var_out) *var_out = v;
  rstd = (float)(1.0 / std::sqrt(v + d.eps));
}

// y = x * a + b over n elements (per-channel a, b), then optional SiLU
NSVQ_CLONES void affine_run(float* __restrict y, const float* __restrict x, int64_t n, float a, float b, int silu) {
  if (silu)
    for (int64_t i = 0; i < n; i++) {
      float v = x[i] * a + b;
      y[i] = v / (1.0f + nsvq_expf(-v));
    }
  else
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * a + b;
}

// layer-norm case (S == 1): a different channel per element
NSVQ_CLONES void affine_row(float* __restrict y, const float* __restrict x, int64_t n, float mean, float rstd,
                            const float* __restrict ga, const float* __restrict be) {
  for (int64_t i = 0; i < n; i++) y[i] = (x[i] - mean) * rstd * ga[i] + be[i];
}

void norm_cpu(Tensor* y, const ExecCtx& c) {
  Desc d(y);
  const float* x = tdata<float>(y->src[0]);
  const float* ga = tdata<float>(y->src[1]);
  const float* be = tdata<float>(y->src[2]);
  float* o = tdata<float>(y);
  int nt = d.K * d.count() < 16384 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t k = 0; k < d.K; k++) {
    float mean, rstd;
    group_stats(d, x, k, mean, rstd);
    for (int64_t r = 0; r < d.R; r++) {
      int64_t b0 = d.base(k, r);
      if (d.S == 1 && !d.silu) {
        affine_row(o + b0, x + b0, d.Lseg, mean, rstd, ga + d.ch0(k), be + d.ch0(k));
        continue;
      }
      for (int64_t l = 0; l < d.Lseg; l += d.S) {
        int64_t ch = d.ch0(k) + l / d.S;
        float a = rstd * ga[ch];
        affine_run(o + b0 + l, x + b0 + l, d.S, a, be[ch] - mean * a, d.silu);
      }
    }
  }
}

// the gradient reaching the normalised value xhat * gamma + beta (through the SiLU if fused)
inline float pre_grad(const Desc& d, float gy, float xhat, float gam, float bet) {
  if (!d.silu) return gy;
  float v = xhat * gam + bet;
  float s = 1.0f / (1.0f + nsvq_expf(-v));
  return gy * s * (1.0f + v * (1.0f - s));
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dL/d(normalised) * gamma
void norm_bwd_cpu(Tensor* dx, const ExecCtx& c) {
  Desc d(dx);
  const float* x = tdata<float>(dx->src[0]);
  const float* ga = tdata<float>(dx->src[1]);
  const float* be = tdata<float>(dx->src[2]);
  const float* gy = tdata<float>(dx->src[3]);
  float* o = tdata<float>(dx);
  int nt = d.K * d.count() < 16384 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t k = 0; k < d.K; k++) {
    float mean, rstd;
    group_stats(d, x, k, mean, rstd);
    double s1 = 0, s2 = 0;
    for (int64_t r = 0; r < d.R; r++) {
      int64_t b0 = d.base(k, r);
      for (int64_t l = 0; l < d.Lseg; l++) {
        int64_t ch = d.ch0(k) + l / d.S;
        float xh = (x[b0 + l] - mean) * rstd;
        float gg = pre_grad(d, gy[b0 + l], xh, ga[ch], be[ch]) * ga[ch];
        s1 += gg;
        s2 += (double)gg * xh;
      }
    }
    float m1 = (float)(s1 / d.count()), m2 = (float)(s2 / d.count());
    for (int64_t r = 0; r < d.R; r++) {
      int64_t b0 = d.base(k, r);
      for (int64_t l = 0; l < d.Lseg; l++) {
        int64_t ch = d.ch0(k) + l / d.S;
        float xh = (x[b0 + l] - mean) * rstd;
        float gg = pre_grad(d, gy[b0 + l], xh, ga[ch], be[ch]) * ga[ch];
        o[b0 + l] = rstd * (gg - m1 - xh * m2);
      }
    }
  }
}

size_t norm_affine_scratch(const Tensor* t, BackendKind) {
  return (size_t)t->ip[0] * (size_t)t->ip[5] * 2 * sizeof(double);
}

// dgamma[c] = sum g_pre * xhat, dbeta[c] = sum g_pre over every element of channel c:
// per-(group, channel) partials, then per channel over the groups in order
void norm_bwd_affine_cpu(Tensor* da, const ExecCtx& c) {
  Desc d(da);
  const float* x = tdata<float>(da->src[0]);
  const float* ga = tdata<float>(da->src[1]);
  const float* be = tdata<float>(da->src[2]);
  const float* gy = tdata<float>(da->src[3]);
  double* part = (double*)c.scratch;  // [K][Cg][2]
  int nt = d.K * d.count() < 16384 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t k = 0; k < d.K; k++) {
    float mean, rstd;
    group_stats(d, x, k, mean, rstd);
    double* p = part + k * d.Cg * 2;
    for (int64_t j = 0; j < d.Cg * 2; j++) p[j] = 0;
    for (int64_t r = 0; r < d.R; r++) {
      int64_t b0 = d.base(k, r);
      for (int64_t l = 0; l < d.Lseg; l++) {
        int64_t cl = l / d.S, ch = d.ch0(k) + cl;
        float xh = (x[b0 + l] - mean) * rstd;
        float g0 = pre_grad(d, gy[b0 + l], xh, ga[ch], be[ch]);
        p[cl * 2] += (double)g0 * xh;
        p[cl * 2 + 1] += g0;
      }
    }
  }
  float* o = tdata<float>(da);
  int64_t A = d.K / d.G;  // groups sharing a channel set
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t ch = 0; ch < d.C; ch++) {
    int64_t gi = ch / d.Cg, cl = ch % d.Cg;
    double sg = 0, sb = 0;
    for (int64_t a = 0; a < A; a++) {
      const double* p = part + ((a * d.G + gi) * d.Cg + cl) * 2;
      sg += p[0];
      sb += p[1];
    }
    o[ch] = (float)sg;
    o[d.C + ch] = (float)sb;
  }
}

// running_mean/var <- (1 - m) * running + m * batch statistic (unbiased variance)
void norm_running_update_cpu(Tensor* up, const ExecCtx& c) {
  Desc d(up);
  const float* x = tdata<float>(up->src[0]);
  float* rm = tdata<float>(up->src[1]);
  float* rv = tdata<float>(up->src[2]);
  float m = up->fp[0];
  int nt = d.K * d.count() < 16384 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t k = 0; k < d.K; k++) {
    float mean, rstd;
    double var;
    Desc dd = d;
    dd.eps = 0;
    group_stats(dd, x, k, mean, rstd, &var);
    double n = d.count();
    rm[k] = (1.0f - m) * rm[k] + m * mean;
    rv[k] = (1.0f - m) * rv[k] + m * (float)(var * n / (n - 1.0));
  }
}
}  // namespace

void register_norm_cpu() {
  OpDef d;
  d.kernel[BK_CPU] = norm_cpu; op_register(OP_NORM, d);
  OpDef b;
  b.kernel[BK_CPU] = norm_bwd_cpu; op_register(OP_NORM_BWD, b);
  OpDef a;
  a.kernel[BK_CPU] = norm_bwd_affine_cpu;
  a.scratch = norm_affine_scratch;
  op_register(OP_NORM_BWD_AFFINE, a);
  OpDef r;
  r.kernel[BK_CPU] = norm_running_update_cpu; op_register(OP_NORM_RUNNING_UPDATE, r);
}

}  // namespace nsvq
