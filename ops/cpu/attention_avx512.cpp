// ops/cpu/attention_avx512.cpp — the AVX-512 forward of attention (ops/cpu/attention.cpp takes it when
// cpu_has_avx512() and dv <= 64). Built on x86-64 only.
#include <omp.h>
#include <cmath>
#include "engine/cpu/transpose16.h"
#include "ops/cpu/attention_simd.h"
#include "ops/cpu/cpu_kernels.h"
#include "ops/cpu/simd512.h"

namespace nsvq {

using attention_detail::Dims;

namespace {
// ---------------------------------------------------------------- AVX-512 forward
// Work item: one (batch*head, chunk of up to 64 query rows). Per key block of 64: the block of K is
// transposed once into scratch ([d][64]); for 4 query rows at a time the scores are 4 x 4 vector FMA
// chains over d, the online softmax runs on whole vectors (exp512), and P V accumulates 4 rows x dv
// (<= 64) in registers; the per-row state (max, vector sum, output) lives in scratch between key
// blocks. Every sum runs in a fixed order: the result does not depend on the thread count.
const int64_t FQ = 64, FK = 64, FR = 4;

// GCC 12 reports the _mm512_undefined_ps() inside the reduction intrinsics as (maybe-)uninitialized
// (GCC bug 105593); spurious, silenced for the AVX-512 code only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

template <int NVD>
NSVQ_AVX512 void attn_group(const Dims& D, const float* qb, int64_t rows, const float* kt, int64_t nk, const float* vb,
                            float* pbuf, float* qpad, float* ms, float* ls, float* accs, bool first, bool last,
                            float* ob) {
  const float* qr[FR];  // rows past `rows` repeat the last one (computed, never stored)
#pragma GCC unroll 4
  for (int r = 0; r < FR; r++) qr[r] = qb + (r < rows ? r : rows - 1) * D.d;
  (void)qpad;
  const int64_t tail = D.dv - 16 * (NVD - 1);
  const __mmask16 vmask = (__mmask16)(tail >= 16 ? 0xFFFFu : (1u << tail) - 1u);
  __m512 s[FR][4];
#pragma GCC unroll 4
  for (int r = 0; r < FR; r++)
  #pragma GCC unroll 4
    for (int v = 0; v < 4; v++) s[r][v] = _mm512_setzero_ps();
  for (int64_t c = 0; c < D.d; c++) {
    __m512 kv[4];
  #pragma GCC unroll 4
    for (int v = 0; v < 4; v++) kv[v] = _mm512_load_ps(kt + c * FK + 16 * v);
  #pragma GCC unroll 4
    for (int r = 0; r < FR; r++) {
      const __m512 qv = _mm512_set1_ps(qr[r][c]);
#pragma GCC unroll 4
      for (int v = 0; v < 4; v++) s[r][v] = _mm512_fmadd_ps(qv, kv[v], s[r][v]);
    }
  }
  const __m512 scale = _mm512_set1_ps(D.scale);
  __m512 acc[FR][NVD];
#pragma GCC unroll 4
  for (int r = 0; r < FR; r++) {
    const float mold = first ? -INFINITY : ms[r];
    __m512 mx = _mm512_set1_ps(mold);
  #pragma GCC unroll 4
    for (int v = 0; v < 4; v++) {
      s[r][v] = _mm512_mul_ps(s[r][v], scale);
      const int64_t left = nk - 16 * v;  // valid keys in this vector
      if (left < 16)
        s[r][v] = _mm512_mask_blend_ps((__mmask16)(left <= 0 ? 0u : (1u << left) - 1u), _mm512_set1_ps(-INFINITY),
                                       s[r][v]);
      mx = _mm512_max_ps(mx, s[r][v]);
    }
    const float mnew = _mm512_reduce_max_ps(mx);
    const __m512 mv = _mm512_set1_ps(mnew);
    __m512 lsum = _mm512_setzero_ps();
    if (!first) {
      const __m512 corr = exp512(_mm512_set1_ps(mold - mnew));
      lsum = _mm512_mul_ps(_mm512_load_ps(ls + r * 16), corr);
#pragma GCC unroll 4
      for (int v = 0; v < NVD; v++) acc[r][v] = _mm512_mul_ps(_mm512_load_ps(accs + r * 64 + 16 * v), corr);
    } else {
#pragma GCC unroll 4
      for (int v = 0; v < NVD; v++) acc[r][v] = _mm512_setzero_ps();
    }
    ms[r] = mnew;
  #pragma GCC unroll 4
    for (int v = 0; v < 4; v++) {
      const __m512 p = exp512(_mm512_sub_ps(s[r][v], mv));
      lsum = _mm512_add_ps(lsum, p);
      _mm512_store_ps(pbuf + r * FK + 16 * v, p);
    }
    _mm512_store_ps(ls + r * 16, lsum);
  }
  for (int64_t j = 0; j < nk; j++) {
    const float* vj = vb + j * D.dv;
    __m512 vv[NVD];
  #pragma GCC unroll 4
    for (int v = 0; v < NVD; v++)
      vv[v] = v == NVD - 1 ? _mm512_maskz_loadu_ps(vmask, vj + 16 * v) : _mm512_loadu_ps(vj + 16 * v);
  #pragma GCC unroll 4
    for (int r = 0; r < FR; r++) {
      const __m512 p = _mm512_set1_ps(pbuf[r * FK + j]);
#pragma GCC unroll 4
      for (int v = 0; v < NVD; v++) acc[r][v] = _mm512_fmadd_ps(p, vv[v], acc[r][v]);
    }
  }
  if (!last) {
  #pragma GCC unroll 4
    for (int r = 0; r < FR; r++)
#pragma GCC unroll 4
      for (int v = 0; v < NVD; v++) _mm512_store_ps(accs + r * 64 + 16 * v, acc[r][v]);
    return;
  }
#pragma GCC unroll 4
  for (int r = 0; r < FR; r++) {  // fixed bound: acc stays in registers
    if (r >= rows) break;
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(_mm512_load_ps(ls + r * 16)));
  #pragma GCC unroll 4
    for (int v = 0; v < NVD; v++) {
      const __m512 o = _mm512_mul_ps(acc[r][v], inv);
      if (v == NVD - 1)
        _mm512_mask_storeu_ps(ob + r * D.dv + 16 * v, vmask, o);
      else
        _mm512_storeu_ps(ob + r * D.dv + 16 * v, o);
    }
  }
}

// kt[c][j] = k[j][c] for j < nk (zeros up to FK), in 16 x 16 blocks
NSVQ_AVX512 void transpose_keys(const float* k, int64_t nk, int64_t d, float* kt) {
  for (int64_t j0 = 0; j0 < FK; j0 += 16)
    for (int64_t c0 = 0; c0 < d; c0 += 16) {
      const int64_t nc = std::min<int64_t>(16, d - c0);
      const __mmask16 cm = (__mmask16)(nc == 16 ? 0xFFFFu : (1u << nc) - 1u);
      __m512 r[16];
      for (int64_t j = 0; j < 16; j++)
        r[j] = j0 + j < nk ? _mm512_maskz_loadu_ps(cm, k + (j0 + j) * d + c0) : _mm512_setzero_ps();
      transpose16x16(r);
      for (int64_t c = 0; c < nc; c++) _mm512_store_ps(kt + (c0 + c) * FK + j0, r[c]);
    }
}

#pragma GCC diagnostic pop

}  // namespace

// kt [d][FK], p [FR][FK], q [FR][d], m [FQ], l [FQ][16], acc [FQ][64]
size_t attention_fast_scratch_avx512(const Dims& D) {
  return (size_t)(D.d * FK + FR * FK + FR * D.d + FQ + FQ * 16 + FQ * 64 + 64) * sizeof(float);
}

void attention_fast_avx512(Tensor* o, const ExecCtx& c, const Dims& D) {
  const float *q = tdata<float>(o->src[0]), *k = tdata<float>(o->src[1]), *v = tdata<float>(o->src[2]);
  float* out = tdata<float>(o);
  const int64_t chunks = (D.L + FQ - 1) / FQ, items = D.BH * chunks;
  const int64_t per = (int64_t)(attention_fast_scratch_avx512(D) + 63) / 64 * 16;
  const int nvd = (int)((D.dv + 15) / 16);
  int nt = D.BH * D.L * D.S * D.d < (1 << 21) ? 1 : c.nthreads;  // ~10 us of work: not worth a second thread
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t it = 0; it < items; it++) {
    const int64_t bh = it / chunks, i0 = (it % chunks) * FQ, i1 = std::min(D.L, i0 + FQ);
    float* kt = (float*)c.scratch + omp_get_thread_num() * per;
    float* pbuf = kt + D.d * FK;
    float* ls = pbuf + FR * FK;        // [FQ][16]
    float* accs = ls + FQ * 16;        // [FQ][64]
    float* ms = accs + FQ * 64;        // [FQ]
    float* qpad = ms + FQ;             // [FR][d]
    const float* kb = k + bh * D.S * D.d;
    const float* vb = v + bh * D.S * D.dv;
    for (int64_t j0 = 0; j0 < D.S; j0 += FK) {
      const int64_t nk = std::min(FK, D.S - j0);
      transpose_keys(kb + j0 * D.d, nk, D.d, kt);
      const bool first = j0 == 0, last = j0 + FK >= D.S;
      for (int64_t i = i0; i < i1; i += FR) {
        const int64_t rows = std::min(FR, i1 - i), g = i - i0;
        const float* qb = q + (bh * D.L + i) * D.d;
        float* ob = out + (bh * D.L + i) * D.dv;
        float *mg = ms + g, *lg = ls + g * 16, *ag = accs + g * 64;
        const float* vblk = vb + j0 * D.dv;
        switch (nvd) {
          case 1: attn_group<1>(D, qb, rows, kt, nk, vblk, pbuf, qpad, mg, lg, ag, first, last, ob); break;
          case 2: attn_group<2>(D, qb, rows, kt, nk, vblk, pbuf, qpad, mg, lg, ag, first, last, ob); break;
          case 3: attn_group<3>(D, qb, rows, kt, nk, vblk, pbuf, qpad, mg, lg, ag, first, last, ob); break;
          default: attn_group<4>(D, qb, rows, kt, nk, vblk, pbuf, qpad, mg, lg, ag, first, last, ob); break;
        }
      }
    }
  }
}


}  // namespace nsvq
