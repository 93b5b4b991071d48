// ops/elementwise_math.h — the scalar maths of every unary and binary kind, shared by the CPU
// kernels, the CUDA kernels and the test reference (one definition, so backends agree).
#pragma once
#include <cmath>
#include <type_traits>
#include "engine/rng.h"  // NSVQ_HD
#include "ops/ops.h"

namespace nsvq {

NSVQ_HD float gelu_inner(float x) { return 0.7978845608028654f * (x + 0.044715f * x * x * x); }

template <int K>
NSVQ_HD float unary_apply(float x, float p0, float p1) {
  if constexpr (K == UN_NEG) return -x;
  else if constexpr (K == UN_EXP) return expf(x);
  else if constexpr (K == UN_LOG) return logf(x);
  else if constexpr (K == UN_SQRT) return sqrtf(x);
  else if constexpr (K == UN_RSQRT) return 1.0f / sqrtf(x);
  else if constexpr (K == UN_ABS) return fabsf(x);
  else if constexpr (K == UN_SIGN) return (float)((x > 0.0f) - (x < 0.0f));
  else if constexpr (K == UN_SQR) return x * x;
  else if constexpr (K == UN_RELU) return x > 0.0f ? x : 0.0f;
  else if constexpr (K == UN_LEAKY_RELU) return x > 0.0f ? x : p0 * x;
  else if constexpr (K == UN_SILU) return x / (1.0f + expf(-x));
  else if constexpr (K == UN_SIGMOID) return 1.0f / (1.0f + expf(-x));
  else if constexpr (K == UN_TANH) return tanhf(x);
  else if constexpr (K == UN_GELU) return 0.5f * x * (1.0f + tanhf(gelu_inner(x)));
  else if constexpr (K == UN_POW) return powf(x, p0);
  else if constexpr (K == UN_CLAMP) return fminf(fmaxf(x, p0), p1);
  else if constexpr (K == UN_AFFINE) return p0 * x + p1;
  else if constexpr (K == UN_RECIP) return p0 / (x + p1);
  else if constexpr (K == UN_STEP) return x > 0.0f ? 1.0f : 0.0f;
  else if constexpr (K == UN_INSIDE) return (x >= p0 && x <= p1) ? 1.0f : 0.0f;
  else if constexpr (K == UN_SILU_GRAD) {
    float s = 1.0f / (1.0f + expf(-x));
    return s * (1.0f + x * (1.0f - s));
  } else if constexpr (K == UN_GELU_GRAD) {
    float t = tanhf(gelu_inner(x));
    float dinner = 0.7978845608028654f * (1.0f + 3.0f * 0.044715f * x * x);
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * dinner;
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
