// ops/cpu/norm_avx512.cpp — the AVX-512 row primitives of the group-norm forward fast path (R == 1,
// ops/cpu/norm.cpp): the f64 sum and centred sum of squares of a run, and its affine (+ SiLU) on whole
// vectors: four f64 accumulators combined in a fixed order, exp512 for the SiLU. Built on x86-64 only;
// called only when cpu_has_avx512().
#include "ops/cpu/norm_simd.h"
#include "ops/cpu/simd512.h"

namespace nsvq {

namespace {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
NSVQ_AVX512 inline __mmask16 tail_mask(int64_t n) { return (__mmask16)(n >= 16 ? 0xFFFFu : (1u << n) - 1u); }

// sum of x (centred on m when CENTRED: sum of (x - m)^2), f64
template <bool CENTRED>
NSVQ_AVX512 double sum512(const float* x, int64_t n, float m) {
  __m512d a[4] = {_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd()};
  const __m512 mv = _mm512_set1_ps(m);
  auto add = [&](__m512 v, int k) NSVQ_AVX512 {
    if (CENTRED) v = _mm512_sub_ps(v, mv);
    __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    if (CENTRED) {
      a[k] = _mm512_fmadd_pd(lo, lo, a[k]);
      a[k + 1] = _mm512_fmadd_pd(hi, hi, a[k + 1]);
    } else {
      a[k] = _mm512_add_pd(a[k], lo);
      a[k + 1] = _mm512_add_pd(a[k + 1], hi);
    }
  };
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    add(_mm512_loadu_ps(x + i), 0);
    add(_mm512_loadu_ps(x + i + 16), 2);
  }
  for (; i < n; i += 16) {
    __mmask16 k = tail_mask(n - i);
    __m512 v = _mm512_maskz_loadu_ps(k, x + i);
    if (CENTRED) v = _mm512_maskz_mov_ps(k, _mm512_sub_ps(v, mv));  // keep the padding lanes at zero
    if (CENTRED) {
      __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
      __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
      a[0] = _mm512_fmadd_pd(lo, lo, a[0]);
      a[1] = _mm512_fmadd_pd(hi, hi, a[1]);
    } else {
      add(v, 0);
    }
  }
  __m512d t = _mm512_add_pd(_mm512_add_pd(a[0], a[1]), _mm512_add_pd(a[2], a[3]));
  return _mm512_reduce_add_pd(t);
}

NSVQ_AVX512 void affine512(float* y, const float* x, int64_t n, float a, float b, int silu) {
  const __m512 av = _mm512_set1_ps(a), bv = _mm512_set1_ps(b), one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = tail_mask(n - i);
    __m512 v = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, x + i), av, bv);
    if (silu) v = _mm512_div_ps(v, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), v))));
    store_lanes(y + i, k, v);
  }
}
#pragma GCC diagnostic pop
}  // namespace

const NormRowKernels* norm_rows_avx512() {
  static const NormRowKernels k = {"avx512", [](const float* x, int64_t n) { return sum512<false>(x, n, 0.0f); },
                                   [](const float* x, int64_t n, float m) { return sum512<true>(x, n, m); },
                                   &affine512};
  return &k;
}

}  // namespace nsvq
