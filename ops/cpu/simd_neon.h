// ops/cpu/simd_neon.h — NEON (AArch64 Advanced SIMD) helpers of the hand-written CPU kernels: exp_neon,
// the 4-lane form of nsvq_expf (same range reduction and polynomial, same special values: overflow to
// inf, underflow to 0, NaN kept), and silu_neon. Included only by *_neon.cpp files (AArch64 builds).
#pragma once
#include <arm_neon.h>
#include <cmath>

namespace nsvq {

inline float32x4_t exp_neon(float32x4_t x) {
  const float32x4_t t = vfmaq_f32(vdupq_n_f32(0.5f), x, vdupq_n_f32(1.44269504088896341f));
  float32x4_t n = vrndmq_f32(t);  // floor
  n = vmaxq_f32(vminq_f32(n, vdupq_n_f32(127.0f)), vdupq_n_f32(-127.0f));
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
  r = vfmaq_f32(r, n, vdupq_n_f32(2.12194440e-4f));
  const float32x4_t z = vmulq_f32(r, r);
  float32x4_t y = vfmaq_f32(vdupq_n_f32(1.3981999507E-3f), vdupq_n_f32(1.9875691500E-4f), r);
  y = vfmaq_f32(vdupq_n_f32(8.3334519073E-3f), y, r);
  y = vfmaq_f32(vdupq_n_f32(4.1665795894E-2f), y, r);
  y = vfmaq_f32(vdupq_n_f32(1.6666665459E-1f), y, r);
  y = vfmaq_f32(vdupq_n_f32(5.0000001201E-1f), y, r);
  y = vaddq_f32(vfmaq_f32(r, y, z), vdupq_n_f32(1.0f));
  const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
  float32x4_t res = vmulq_f32(y, vreinterpretq_f32_s32(e));
  res = vbslq_f32(vcgtq_f32(x, vdupq_n_f32(88.72283935546875f)), vdupq_n_f32(INFINITY), res);
  res = vbslq_f32(vcltq_f32(x, vdupq_n_f32(-87.3365478515625f)), vdupq_n_f32(0.0f), res);
  return vbslq_f32(vceqq_f32(x, x), res, x);  // NaN stays NaN
}

// v / (1 + e^-v)
inline float32x4_t silu_neon(float32x4_t v) {
  return vdivq_f32(v, vaddq_f32(vdupq_n_f32(1.0f), exp_neon(vnegq_f32(v))));
}

}  // namespace nsvq
