// ops/cpu/norm_simd.h — the row primitives of the group-norm forward fast path (ops/cpu/norm.cpp), one
// set per instruction set: ops/cpu/norm_avx512.cpp (x86-64, AVX-512) and ops/cpu/norm_neon.cpp
// (AArch64). Without a set the portable loops of norm.cpp run.
#pragma once
#include <cstdint>
#include "engine/simd.h"

namespace nsvq {

struct NormRowKernels {
  const char* name;
  double (*sum)(const float* x, int64_t n);                       // sum of x[0..n), f64
  double (*sum_sq_centred)(const float* x, int64_t n, float m);   // sum of (x - m)^2, f64
  void (*affine)(float* y, const float* x, int64_t n, float a, float b, int silu);  // y = x a + b (+ SiLU)
};

#if NSVQ_X86
const NormRowKernels* norm_rows_avx512();
#endif
#if NSVQ_ARM64
const NormRowKernels* norm_rows_neon();
#endif

}  // namespace nsvq
