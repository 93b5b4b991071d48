// ops/cpu/norm.cpp — CPU kernels of the normalisation family (see ops/norm.cpp for the group
// layout): forward (optionally + SiLU), input gradient, gamma/beta gradient, running statistics.
// Statistics are two-pass (mean, then centred variance) with f64 accumulation. Each group is
// handled by one thread in a fixed order, so results do not depend on the thread count. The forward
// of one-segment groups (R == 1) runs on the row primitives of ops/cpu/norm_avx512.cpp or norm_neon.cpp
// when the CPU has them.
#include <omp.h>
#include <algorithm>
#include <cmath>
#include <type_traits>
#include "ops/cpu/cpu_kernels.h"
#include "ops/cpu/norm_simd.h"
#include "ops/elementwise_math.h"
#include "ops/ops_internal.h"

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

// ---------------------------------------------------------------- SIMD forward (R == 1)
// The same statistics (f64 mean, then f64 centred sum of squares) and affine (+ SiLU) as below, by the
// row primitives of this CPU's instruction set (ops/cpu/norm_simd.h).
const NormRowKernels* norm_rows() {
#if NSVQ_X86
  if (cpu_has_avx512()) return norm_rows_avx512();
#elif NSVQ_ARM64
  if (simd_env_cap() >= 1) return norm_rows_neon();
#endif
  return nullptr;
}

void norm_fast(Tensor* y, const ExecCtx& c, const Desc& d, const NormRowKernels& kr) {
  const float* x = tdata<float>(y->src[0]);
  const float* ga = tdata<float>(y->src[1]);
  const float* be = tdata<float>(y->src[2]);
  float* o = tdata<float>(y);
  // below ~64K elements (~15 us on one core) waking a second thread costs about as much as it saves
  int nt = d.K * d.count() < 65536 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t k = 0; k < d.K; k++) {
    const int64_t b0 = d.base(k, 0);
    const float mean = (float)(kr.sum(x + b0, d.Lseg) / d.count());
    const double v = kr.sum_sq_centred(x + b0, d.Lseg, mean) / d.count();
    const float rstd = (float)(1.0 / std::sqrt(v + d.eps));
    for (int64_t l = 0; l < d.Lseg; l += d.S) {
      const int64_t ch = d.ch0(k) + l / d.S;
      const float a = rstd * ga[ch];
      kr.affine(o + b0 + l, x + b0 + l, d.S, a, be[ch] - mean * a, d.silu);
    }
  }
}


void norm_cpu(Tensor* y, const ExecCtx& c) {
  Desc d(y);
  static const NormRowKernels* fast = norm_rows();
  if (d.R == 1 && d.S >= 16 && fast) {
    norm_fast(y, c, d, *fast);
    return;
  }
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

// Backward. With xhat = (x - mean) * rstd and g_pre the gradient reaching xhat * gamma + beta
// (through the SiLU when fused):
//   per channel c of the group: A_c = sum g_pre * xhat, B_c = sum g_pre   (also dgamma / dbeta parts)
//   dx = rstd * (gamma g_pre - m1 - xhat m2), m1 = sum_c gamma_c B_c / n, m2 = sum_c gamma_c A_c / n.
// A run is S contiguous elements of one channel (VEC = false) or, for layer norm (S == 1), a whole
// row with per-element gamma/beta (VEC = true). The loops use 16 float lanes: they vectorise, and
// their order is fixed.
template <bool SILU>
inline float g_pre(float gy, float xh, float gam, float bet) {
  if constexpr (!SILU) return gy;
  float v = xh * gam + bet;
  float s = 1.0f / (1.0f + nsvq_expf(-v));
  return gy * s * (1.0f + v * (1.0f - s));
}

// sums over one run (VEC: into A[i], B[i] per element; else into *A, *B)
// (non-VEC with SILU: g_pre is also written to stash, so that the dx pass does not recompute the SiLU)
template <bool SILU, bool VEC>
NSVQ_CLONES void run_sums(const float* __restrict x, const float* __restrict gy, int64_t n, float mean, float rstd,
                          const float* __restrict ga, const float* __restrict be, float* __restrict A, float* __restrict B,
                          float* __restrict stash = nullptr) {
  if constexpr (VEC) {
    for (int64_t i = 0; i < n; i++) {
      float xh = (x[i] - mean) * rstd;
      float gp = g_pre<SILU>(gy[i], xh, ga[i], be[i]);
      A[i] = gp * xh;
      B[i] = gp;
    }
  } else {
    float a[16] = {}, b[16] = {};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
      for (int j = 0; j < 16; j++) {
        float xh = (x[i + j] - mean) * rstd;
        float gp = g_pre<SILU>(gy[i + j], xh, ga[0], be[0]);
        if (SILU && stash) stash[i + j] = gp;
        a[j] += gp * xh;
        b[j] += gp;
      }
    for (; i < n; i++) {
      float xh = (x[i] - mean) * rstd;
      float gp = g_pre<SILU>(gy[i], xh, ga[0], be[0]);
      if (SILU && stash) stash[i] = gp;
      a[0] += gp * xh;
      b[0] += gp;
    }
    float sa = 0, sb = 0;
    for (int j = 0; j < 16; j++) {
      sa += a[j];
      sb += b[j];
    }
    *A = sa;
    *B = sb;
  }
}

template <bool SILU, bool VEC>
NSVQ_CLONES void run_dx(float* __restrict dx, const float* __restrict x, const float* __restrict gy, int64_t n, float mean,
                        float rstd, const float* __restrict ga, const float* __restrict be, float m1, float m2) {
  for (int64_t i = 0; i < n; i++) {
    float gam = VEC ? ga[i] : ga[0], bet = VEC ? be[i] : be[0];
    float xh = (x[i] - mean) * rstd;
    dx[i] = rstd * (g_pre<SILU>(gy[i], xh, gam, bet) * gam - m1 - xh * m2);
  }
}

// dx of one channel run from the g_pre values stashed by run_sums (the same arithmetic as run_dx)
NSVQ_CLONES void run_dx_stashed(float* __restrict dx, const float* __restrict x, const float* __restrict gp, int64_t n,
                                float mean, float rstd, float gam, float m1, float m2) {
  for (int64_t i = 0; i < n; i++) {
    float xh = (x[i] - mean) * rstd;
    dx[i] = rstd * (gp[i] * gam - m1 - xh * m2);
  }
}

// Per-channel sums A, B of group k into a[Cg], b[Cg] (double); VEC runs use `tmp` (2 * Lseg floats).
// stash (non-VEC, SILU): g_pre of the group's R * Lseg elements, in run order.
template <bool SILU, bool VEC>
void group_sums(const Desc& d, const float* x, const float* gy, const float* ga, const float* be, int64_t k, float mean,
                float rstd, double* a, double* b, float* tmp, float* stash = nullptr) {
  for (int64_t j = 0; j < d.Cg; j++) a[j] = b[j] = 0.0;
  int64_t c0 = d.ch0(k);
  for (int64_t r = 0; r < d.R; r++) {
    int64_t b0 = d.base(k, r);
    if constexpr (VEC) {
      run_sums<SILU, true>(x + b0, gy + b0, d.Lseg, mean, rstd, ga + c0, be + c0, tmp, tmp + d.Lseg);
      for (int64_t l = 0; l < d.Lseg; l++) {
        a[l] += tmp[l];
        b[l] += tmp[d.Lseg + l];
      }
    } else {
      for (int64_t cl = 0; cl < d.Lseg / d.S; cl++) {
        float A, B;
        run_sums<SILU, false>(x + b0 + cl * d.S, gy + b0 + cl * d.S, d.S, mean, rstd, ga + c0 + cl, be + c0 + cl, &A, &B,
                              stash ? stash + r * d.Lseg + cl * d.S : nullptr);
        a[cl] += A;
        b[cl] += B;
      }
    }
  }
}

template <bool SILU, bool VEC>
void norm_bwd_group(const Desc& d, const float* x, const float* gy, const float* ga, const float* be, float* o, int64_t k,
                    double* a, double* b, float* tmp) {
  float mean, rstd;
  group_stats(d, x, k, mean, rstd);
  float* stash = SILU && !VEC ? tmp : nullptr;  // tmp holds R * Lseg floats then (norm_bwd_scratch)
  group_sums<SILU, VEC>(d, x, gy, ga, be, k, mean, rstd, a, b, tmp, stash);
  int64_t c0 = d.ch0(k);
  double s1 = 0, s2 = 0;
  for (int64_t j = 0; j < d.Cg; j++) {
    s1 += ga[c0 + j] * b[j];
    s2 += ga[c0 + j] * a[j];
  }
  float m1 = (float)(s1 / d.count()), m2 = (float)(s2 / d.count());
  for (int64_t r = 0; r < d.R; r++) {
    int64_t b0 = d.base(k, r);
    if constexpr (VEC)
      run_dx<SILU, true>(o + b0, x + b0, gy + b0, d.Lseg, mean, rstd, ga + c0, be + c0, m1, m2);
    else if (stash)
      for (int64_t cl = 0; cl < d.Lseg / d.S; cl++) {
        int64_t off = b0 + cl * d.S;
        run_dx_stashed(o + off, x + off, stash + r * d.Lseg + cl * d.S, d.S, mean, rstd, ga[c0 + cl], m1, m2);
      }
    else
      for (int64_t cl = 0; cl < d.Lseg / d.S; cl++)
        run_dx<SILU, false>(o + b0 + cl * d.S, x + b0 + cl * d.S, gy + b0 + cl * d.S, d.S, mean, rstd, ga + c0 + cl,
                            be + c0 + cl, m1, m2);
  }
}

// per thread: a, b (Cg doubles each) and tmp (2 * Lseg floats, or R * Lseg for the SiLU stash)
size_t norm_tmp_floats(const Desc& d) { return (size_t)std::max<int64_t>(2 * d.Lseg, d.silu && d.S != 1 ? d.R * d.Lseg : 0); }
size_t norm_bwd_per_thread(const Desc& d) { return (size_t)d.Cg * 2 * sizeof(double) + norm_tmp_floats(d) * sizeof(float); }
size_t norm_bwd_scratch(const Tensor* t, BackendKind) { return (size_t)cpu_threads() * norm_bwd_per_thread(Desc(t)); }

template <class F>
void dispatch_silu_vec(const Desc& d, F f) {
  bool vec = d.S == 1;
  if (d.silu) {
    if (vec) f(std::true_type{}, std::true_type{});
    else f(std::true_type{}, std::false_type{});
  } else {
    if (vec) f(std::false_type{}, std::true_type{});
    else f(std::false_type{}, std::false_type{});
  }
}

void norm_bwd_cpu(Tensor* dx, const ExecCtx& c) {
  Desc d(dx);
  const float* x = tdata<float>(dx->src[0]);
  const float* ga = tdata<float>(dx->src[1]);
  const float* be = tdata<float>(dx->src[2]);
  const float* gy = tdata<float>(dx->src[3]);
  float* o = tdata<float>(dx);
  size_t per = norm_bwd_per_thread(d);
  int nt = d.K * d.count() < 16384 ? 1 : c.nthreads;
  dispatch_silu_vec(d, [&](auto silu, auto vec) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t k = 0; k < d.K; k++) {
      char* base = (char*)c.scratch + omp_get_thread_num() * per;
      double* a = (double*)base;
      norm_bwd_group<decltype(silu)::value, decltype(vec)::value>(d, x, gy, ga, be, o, k, a, a + d.Cg,
                                                                   (float*)(a + 2 * d.Cg));
    }
  });
}

size_t norm_affine_scratch(const Tensor* t, BackendKind) {
  return (size_t)t->ip[0] * (size_t)t->ip[5] * 2 * sizeof(double) + norm_bwd_scratch(t, BK_CPU);
}

// dgamma[c] = sum A_c, dbeta[c] = sum B_c over the groups holding channel c, in group order
void norm_bwd_affine_cpu(Tensor* da, const ExecCtx& c) {
  Desc d(da);
  const float* x = tdata<float>(da->src[0]);
  const float* ga = tdata<float>(da->src[1]);
  const float* be = tdata<float>(da->src[2]);
  const float* gy = tdata<float>(da->src[3]);
  double* part = (double*)c.scratch;  // [K][2][Cg]
  char* tmp_base = (char*)(part + d.K * d.Cg * 2);
  size_t per = norm_bwd_per_thread(d);
  int nt = d.K * d.count() < 16384 ? 1 : c.nthreads;
  dispatch_silu_vec(d, [&](auto silu, auto vec) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t k = 0; k < d.K; k++) {
      float mean, rstd;
      group_stats(d, x, k, mean, rstd);
      float* tmp = (float*)(tmp_base + omp_get_thread_num() * per + (size_t)d.Cg * 2 * sizeof(double));
      double* p = part + k * d.Cg * 2;
      group_sums<decltype(silu)::value, decltype(vec)::value>(d, x, gy, ga, be, k, mean, rstd, p, p + d.Cg, tmp);
    }
  });
  float* o = tdata<float>(da);
  int64_t A = d.K / d.G;  // groups sharing a channel set
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t ch = 0; ch < d.C; ch++) {
    int64_t gi = ch / d.Cg, cl = ch % d.Cg;
    double sg = 0, sb = 0;
    for (int64_t a = 0; a < A; a++) {
      const double* p = part + (a * d.G + gi) * d.Cg * 2;
      sg += p[cl];
      sb += p[d.Cg + cl];
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
  b.kernel[BK_CPU] = norm_bwd_cpu;
  b.scratch = norm_bwd_scratch;
  op_register(OP_NORM_BWD, b);
  OpDef a;
  a.kernel[BK_CPU] = norm_bwd_affine_cpu;
  a.scratch = norm_affine_scratch;
  op_register(OP_NORM_BWD_AFFINE, a);
  OpDef r;
  r.kernel[BK_CPU] = norm_running_update_cpu; op_register(OP_NORM_RUNNING_UPDATE, r);
}

}  // namespace nsvq
