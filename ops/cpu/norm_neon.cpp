// ops/cpu/norm_neon.cpp — the NEON row primitives of the group-norm forward fast path (R == 1,
// ops/cpu/norm.cpp), parallel to ops/cpu/norm_avx512.cpp: the f64 sum and centred sum of squares of a run
// (four f64x2 accumulators per 8 floats, combined in a fixed order) and its affine (+ SiLU by exp_neon).
// Built on AArch64 only. The tail (n % 8 or n % 4 elements) uses the scalar forms of the same formulas.
#include <cmath>
#include "ops/cpu/norm_simd.h"
#include "ops/cpu/simd_neon.h"
#include "ops/elementwise_math.h"

namespace nsvq {

namespace {

template <bool CENTRED>
double sum_neon(const float* x, int64_t n, float m) {
  float64x2_t a[4] = {vdupq_n_f64(0.0), vdupq_n_f64(0.0), vdupq_n_f64(0.0), vdupq_n_f64(0.0)};
  const float32x4_t mv = vdupq_n_f32(m);
  auto add = [&](float32x4_t v, int k) {
    if (CENTRED) v = vsubq_f32(v, mv);
    const float64x2_t lo = vcvt_f64_f32(vget_low_f32(v)), hi = vcvt_high_f64_f32(v);
    if (CENTRED) {
      a[k] = vfmaq_f64(a[k], lo, lo);
      a[k + 1] = vfmaq_f64(a[k + 1], hi, hi);
    } else {
      a[k] = vaddq_f64(a[k], lo);
      a[k + 1] = vaddq_f64(a[k + 1], hi);
    }
  };
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    add(vld1q_f32(x + i), 0);
    add(vld1q_f32(x + i + 4), 2);
  }
  double tail = 0.0;
  for (; i < n; i++) {
    const double d = CENTRED ? (double)(x[i] - m) : (double)x[i];
    tail += CENTRED ? d * d : d;
  }
  const float64x2_t t = vaddq_f64(vaddq_f64(a[0], a[1]), vaddq_f64(a[2], a[3]));
  return vaddvq_f64(t) + tail;
}

void affine_neon(float* y, const float* x, int64_t n, float a, float b, int silu) {
  const float32x4_t av = vdupq_n_f32(a), bv = vdupq_n_f32(b);
  int64_t i = 0;
  if (silu)
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, silu_neon(vfmaq_f32(bv, vld1q_f32(x + i), av)));
  else
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_f32(bv, vld1q_f32(x + i), av));
  for (; i < n; i++) {
    const float v = std::fma(x[i], a, b);
    y[i] = silu ? v / (1.0f + nsvq_expf(-v)) : v;
  }
}

}  // namespace

const NormRowKernels* norm_rows_neon() {
  static const NormRowKernels k = {"neon", [](const float* x, int64_t n) { return sum_neon<false>(x, n, 0.0f); },
                                   [](const float* x, int64_t n, float m) { return sum_neon<true>(x, n, m); },
                                   &affine_neon};
  return &k;
}

}  // namespace nsvq
