// ops/cpu/simd512.h — AVX-512 helpers of the hand-written CPU kernels (call only after cpu_has_avx512()):
// exp512, the 16-lane form of nsvq_expf (same range reduction and polynomial, same special values),
// lane_range (the lane mask of an index range), store_lanes, a masked store that is a plain store when
// every lane is on, and fma_tile, the register tile of the GEMM-like kernels.
#pragma once
#include <immintrin.h>
#include "ops/cpu/cpu_kernels.h"

namespace nsvq {

NSVQ_AVX512 inline __m512 exp512(__m512 x) {
  const __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f));
  __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);  // floor
  n = _mm512_max_ps(_mm512_min_ps(n, _mm512_set1_ps(127.0f)), _mm512_set1_ps(-127.0f));
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
  const __m512 z = _mm512_mul_ps(r, r);
  __m512 y = _mm512_fmadd_ps(_mm512_set1_ps(1.9875691500E-4f), r, _mm512_set1_ps(1.3981999507E-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073E-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894E-2f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459E-1f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201E-1f));
  y = _mm512_add_ps(_mm512_fmadd_ps(y, z, r), _mm512_set1_ps(1.0f));
  const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  __m512 res = _mm512_mul_ps(y, _mm512_castsi512_ps(e));
  res = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(88.72283935546875f), _CMP_GT_OQ), res,
                             _mm512_set1_ps(INFINITY));
  res = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3365478515625f), _CMP_NLT_UQ), res);
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), res, x);  // NaN stays NaN
}

// lanes e of [0, 16) with lo <= base + e < hi
inline __mmask16 lane_range(int64_t base, int64_t lo, int64_t hi) {
  const int64_t a = lo - base > 0 ? lo - base : 0, b = hi - base < 16 ? hi - base : 16;
  if (b <= a) return 0;
  const uint32_t m = (b == 16 ? 0xFFFFu : (1u << b) - 1u) & ~((1u << a) - 1u);
  return (__mmask16)m;
}

// Masked stores that miss the cache are about 1.5x slower than plain ones on Zen 5: use a plain store
// whenever the mask is full.
NSVQ_AVX512 inline void store_lanes(float* p, __mmask16 m, __m512 v) {
  if (m == (__mmask16)0xFFFF)
    _mm512_storeu_ps(p, v);
  else
    _mm512_mask_storeu_ps(p, m, v);
}

// The register tile of the hand-written GEMM-like kernels: acc[r][v] = sum over kc steps of
// a[r] * b[16v .. 16v + 15], a advancing by `as` floats and b (64-byte aligned rows) by `bs` per step.
template <int R, int NV>
NSVQ_AVX512 inline void fma_tile(__m512 (&acc)[R][NV], int64_t kc, const float* __restrict a, int64_t as,
                                 const float* __restrict b, int64_t bs) {
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; k++) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) bv[v] = _mm512_load_ps(b + 16 * v);
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) {
      const __m512 av = _mm512_set1_ps(a[r]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
    a += as;
    b += bs;
  }
}

}  // namespace nsvq
