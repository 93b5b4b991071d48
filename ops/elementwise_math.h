// ops/elementwise_math.h — the scalar maths of every unary and binary kind, shared by the CPU
// kernels, the CUDA kernels and the test reference (one definition, so backends agree).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include "engine/rng.h"  // NSVQ_HD
#include "ops/ops.h"

namespace nsvq {

// exp and tanh. On the CPU: Cephes-style polynomials written so the compiler vectorises them
// (libm's expf/tanhf are scalar calls); about 1-2 ulp. On CUDA: the device library.
NSVQ_HD float nsvq_expf(float x) {
#if defined(__CUDA_ARCH__)
  return expf(x);
#else
  // exp(x) = 2^n * e^r, n = floor(x log2(e) + 1/2), |r| <= ln(2)/2, e^r by a degree-7 polynomial.
  // Written without branches or float selects (GCC will not if-convert those without fast-math):
  // the integer n is clamped, and overflow (inf), underflow (0, denormals flushed) and NaN are
  // patched into the result bits with masks.
  float t = x * 1.44269504088896341f + 0.5f;
  t = std::fmin(std::fmax(t, -128.0f), 128.0f);  // in int range before the conversion (also NaN: -128)
  int32_t ni = (int32_t)t;
  ni -= (float)ni > t ? 1 : 0;
  ni = ni < -127 ? -127 : ni;
  ni = ni > 127 ? 127 : ni;
  float n = (float)ni;
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float z = r * r;
  float y = ((((1.9875691500E-4f * r + 1.3981999507E-3f) * r + 8.3334519073E-3f) * r + 4.1665795894E-2f) * r +
             1.6666665459E-1f) * r + 5.0000001201E-1f;
  y = y * z + r + 1.0f;
  uint32_t e = (uint32_t)(ni + 127) << 23;
  float sc;
  memcpy(&sc, &e, 4);
  float res = y * sc;
  uint32_t rb, xb;
  memcpy(&rb, &res, 4);
  memcpy(&xb, &x, 4);
  uint32_t over = 0u - (uint32_t)(x > 88.72283935546875f), under = 0u - (uint32_t)(x < -87.3365478515625f);
  uint32_t nan = 0u - (uint32_t)(x != x);
  rb = (rb & ~over) | (0x7f800000u & over);
  rb &= ~under;
  rb = (rb & ~nan) | (xb & nan);
  memcpy(&res, &rb, 4);
  return res;
#endif
}

// c ? a : b through bit masks (vectorises where a float ternary would become a branch)
NSVQ_HD float select_bits(bool c, float a, float b) {
  uint32_t m = 0u - (uint32_t)c, ab, bb;
  memcpy(&ab, &a, 4);
  memcpy(&bb, &b, 4);
  uint32_t r = (ab & m) | (bb & ~m);
  float f;
  memcpy(&f, &r, 4);
  return f;
}

NSVQ_HD float nsvq_tanhf(float x) {
#if defined(__CUDA_ARCH__)
  return tanhf(x);
#else
  // |x| >= 0.625: 1 - 2 / (e^{2|x|} + 1) with x's sign; below: odd polynomial (Cephes tanhf)
  float ax = fabsf(x);
  float big = copysignf(1.0f - 2.0f / (nsvq_expf(2.0f * ax) + 1.0f), x);
  float z = x * x;
  float small = ((((-5.70498872745E-3f * z + 2.06390887954E-2f) * z - 5.37397155531E-2f) * z + 1.33314422036E-1f) * z -
                 3.33332819422E-1f) * z * x + x;
  return select_bits(ax < 0.625f, small, big);
#endif
}

NSVQ_HD float gelu_inner(float x) { return 0.7978845608028654f * (x + 0.044715f * x * x * x); }

template <int K>
NSVQ_HD float unary_apply(float x, float p0, float p1) {
  if constexpr (K == UN_NEG) return -x;
  else if constexpr (K == UN_EXP) return nsvq_expf(x);
  else if constexpr (K == UN_LOG) return logf(x);
  else if constexpr (K == UN_SQRT) return sqrtf(x);
  else if constexpr (K == UN_RSQRT) return 1.0f / sqrtf(x);
  else if constexpr (K == UN_ABS) return fabsf(x);
  else if constexpr (K == UN_SIGN) return (float)((x > 0.0f) - (x < 0.0f));
  else if constexpr (K == UN_SQR) return x * x;
  else if constexpr (K == UN_RELU) return x > 0.0f ? x : 0.0f;
  else if constexpr (K == UN_LEAKY_RELU) return x > 0.0f ? x : p0 * x;
  else if constexpr (K == UN_SILU) return x / (1.0f + nsvq_expf(-x));
  else if constexpr (K == UN_SIGMOID) return 1.0f / (1.0f + nsvq_expf(-x));
  else if constexpr (K == UN_TANH) return nsvq_tanhf(x);
  else if constexpr (K == UN_GELU) return 0.5f * x * (1.0f + nsvq_tanhf(gelu_inner(x)));
  else if constexpr (K == UN_POW) return powf(x, p0);
  else if constexpr (K == UN_CLAMP) {
    float t = x < p0 ? p0 : x;
    return t > p1 ? p1 : t;
  }
  else if constexpr (K == UN_AFFINE) return p0 * x + p1;
  else if constexpr (K == UN_RECIP) return p0 / (x + p1);
  else if constexpr (K == UN_STEP) return x > 0.0f ? 1.0f : 0.0f;
  else if constexpr (K == UN_INSIDE) return (x >= p0 && x <= p1) ? 1.0f : 0.0f;
  else if constexpr (K == UN_SILU_GRAD) {
    float s = 1.0f / (1.0f + nsvq_expf(-x));
    return s * (1.0f + x * (1.0f - s));
  } else if constexpr (K == UN_GELU_GRAD) {
    float t = nsvq_tanhf(gelu_inner(x));
    float dinner = 0.7978845608028654f * (1.0f + 3.0f * 0.044715f * x * x);
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * dinner;
  } else if constexpr (K == UN_SOFTPLUS) {
    float ax = fabsf(x);  // max(x, 0) + log(1 + exp(-|x|))
    return (x > 0.0f ? x : 0.0f) + log1pf(nsvq_expf(-ax));
  } else return x;
}

template <int K>
NSVQ_HD float binary_apply(float a, float b) {
  if constexpr (K == BIN_ADD) return a + b;
  else if constexpr (K == BIN_SUB) return a - b;
  else if constexpr (K == BIN_MUL) return a * b;
  else if constexpr (K == BIN_DIV) return a / b;
  else if constexpr (K == BIN_MAX) return a >= b ? a : b;
  else if constexpr (K == BIN_MIN) return a <= b ? a : b;
  else if constexpr (K == BIN_EQ) return a == b ? 1.0f : 0.0f;
  else if constexpr (K == BIN_GT) return a > b ? 1.0f : 0.0f;
  else return a;
}

// Runtime-kind versions (slow path; used by the test reference).
float unary_apply_rt(int kind, float x, float p0, float p1);
float binary_apply_rt(int kind, float a, float b);

// Calls f(std::integral_constant<int, K>) for the runtime kind k in [0, N).
template <int N, class F, int K = 0>
inline void kind_dispatch(int k, F&& f) {
  if constexpr (K < N) {
    if (k == K) f(std::integral_constant<int, K>{});
    else kind_dispatch<N, F, K + 1>(k, static_cast<F&&>(f));
  }
}

}  // namespace nsvq
