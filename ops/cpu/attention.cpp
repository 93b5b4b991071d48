// ops/cpu/attention.cpp — CPU kernels of attention: forward with an online softmax over key
// blocks (memory O(block), not O(L*S)), and the two backward ops, which recompute each row's
// log-sum-exp. One (batch, head) pair per work item, rows and keys in a fixed order: results do not
// depend on the thread count.
#include <omp.h>
#include <cmath>
#include "ops/cpu/cpu_kernels.h"
#include "ops/cpu/simd512.h"
#include "ops/elementwise_math.h"
#include "ops/ops_internal.h"
#include "engine/cpu/transpose16.h"

namespace nsvq {

namespace {
const int64_t BQ = 32, BK = 64;

NSVQ_CLONES float dotf(const float* __restrict a, const float* __restrict b, int64_t n) {
  float acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; j++) acc[j] += a[i + j] * b[i + j];
  for (; i < n; i++) acc[0] += a[i] * b[i];
  float s = 0;
  for (int j = 0; j < 16; j++) s += acc[j];
  return s;
}

NSVQ_CLONES void axpy(float* __restrict y, float a, const float* __restrict x, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

struct Dims {
  int64_t BH, L, S, d, dv;
  float scale;
  explicit Dims(const Tensor* t) {
    const Tensor *q = t->src[0], *v = t->src[2];
    BH = q->ne[0] * q->ne[1];
    L = q->ne[2];
    S = t->src[1]->ne[2];
    d = q->ne[3];
    dv = v->ne[3];
    scale = t->fp[0];
  }
};

// log-sum-exp of row q_i against every key: online max and sum
float row_lse(const float* qi, const float* k, const Dims& D) {
  float m = -INFINITY, l = 0.0f;
  for (int64_t j = 0; j < D.S; j++) {
    float s = D.scale * dotf(qi, k + j * D.d, D.d);
    if (s > m) {
      l = l * nsvq_expf(m - s) + 1.0f;
      m = s;
    } else {
      l += nsvq_expf(s - m);
    }
  }
  return m + logf(l);
}

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

// kt [d][FK], p [FR][FK], q [FR][d], m [FQ], l [FQ][16], acc [FQ][64]
size_t attention_fast_scratch(const Dims& D) {
  return (size_t)(D.d * FK + FR * FK + FR * D.d + FQ + FQ * 16 + FQ * 64 + 64) * sizeof(float);
}

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

void attention_fast(Tensor* o, const ExecCtx& c, const Dims& D) {
  const float *q = tdata<float>(o->src[0]), *k = tdata<float>(o->src[1]), *v = tdata<float>(o->src[2]);
  float* out = tdata<float>(o);
  const int64_t chunks = (D.L + FQ - 1) / FQ, items = D.BH * chunks;
  const int64_t per = (int64_t)(attention_fast_scratch(D) + 63) / 64 * 16;
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

size_t attention_scratch(const Tensor* t, BackendKind) {
  Dims D(t);
  if (cpu_has_avx512() && D.dv <= 64)
    return (size_t)cpu_threads() * ((attention_fast_scratch(D) + 63) / 64 * 64);
  return (size_t)cpu_threads() * (size_t)(BQ * BK + BQ * D.dv + 2 * BQ) * sizeof(float);
}

void attention_cpu(Tensor* o, const ExecCtx& c) {
  Dims D(o);
  if (cpu_has_avx512() && D.dv <= 64) {
    attention_fast(o, c, D);
    return;
  }
  const float *q = tdata<float>(o->src[0]), *k = tdata<float>(o->src[1]), *v = tdata<float>(o->src[2]);
  float* out = tdata<float>(o);
  int64_t per = BQ * BK + BQ * D.dv + 2 * BQ;
  int nt = D.BH * D.L * D.S * D.d < 65536 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t bh = 0; bh < D.BH; bh++) {
    float* s = (float*)c.scratch + omp_get_thread_num() * per;
    float* acc = s + BQ * BK;
    float* m = acc + BQ * D.dv;
    float* l = m + BQ;
    const float* qb = q + bh * D.L * D.d;
    const float* kb = k + bh * D.S * D.d;
    const float* vb = v + bh * D.S * D.dv;
    for (int64_t i0 = 0; i0 < D.L; i0 += BQ) {
      int64_t nq = std::min(BQ, D.L - i0);
      for (int64_t i = 0; i < nq; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
        for (int64_t cc = 0; cc < D.dv; cc++) acc[i * D.dv + cc] = 0.0f;
      }
      for (int64_t j0 = 0; j0 < D.S; j0 += BK) {
        int64_t nk = std::min(BK, D.S - j0);
        for (int64_t i = 0; i < nq; i++) {
          float* si = s + i * BK;
          float mx = m[i];
          for (int64_t j = 0; j < nk; j++) {
            si[j] = D.scale * dotf(qb + (i0 + i) * D.d, kb + (j0 + j) * D.d, D.d);
            mx = si[j] > mx ? si[j] : mx;
          }
          float corr = nsvq_expf(m[i] - mx);
          l[i] *= corr;
          float* ai = acc + i * D.dv;
          for (int64_t cc = 0; cc < D.dv; cc++) ai[cc] *= corr;
          for (int64_t j = 0; j < nk; j++) {
            float p = nsvq_expf(si[j] - mx);
            l[i] += p;
            axpy(ai, p, vb + (j0 + j) * D.dv, D.dv);
          }
          m[i] = mx;
        }
      }
      for (int64_t i = 0; i < nq; i++) {
        float inv = 1.0f / l[i];
        float* oi = out + (bh * D.L + i0 + i) * D.dv;
        for (int64_t cc = 0; cc < D.dv; cc++) oi[cc] = acc[i * D.dv + cc] * inv;
      }
    }
  }
}

// dq_i = scale * sum_j p_ij (do_i . v_j - do_i . o_i) k_j
void attention_bwd_q_cpu(Tensor* dq, const ExecCtx& c) {
  Dims D(dq);
  const float *q = tdata<float>(dq->src[0]), *k = tdata<float>(dq->src[1]), *v = tdata<float>(dq->src[2]);
  const float *o = tdata<float>(dq->src[3]), *go = tdata<float>(dq->src[4]);
  float* out = tdata<float>(dq);
  int nt = D.BH * D.L * D.S * D.d < 65536 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < D.BH * D.L; r++) {
    int64_t bh = r / D.L;
    const float* qi = q + r * D.d;
    const float* kb = k + bh * D.S * D.d;
    const float* vb = v + bh * D.S * D.dv;
    const float* goi = go + r * D.dv;
    float lse = row_lse(qi, kb, D);
    float Di = dotf(goi, o + r * D.dv, D.dv);
    float* dqi = out + r * D.d;
    for (int64_t cc = 0; cc < D.d; cc++) dqi[cc] = 0.0f;
    for (int64_t j = 0; j < D.S; j++) {
      float p = nsvq_expf(D.scale * dotf(qi, kb + j * D.d, D.d) - lse);
      float ds = p * (dotf(goi, vb + j * D.dv, D.dv) - Di);
      axpy(dqi, D.scale * ds, kb + j * D.d, D.d);
    }
  }
}

size_t attention_kv_scratch(const Tensor* t, BackendKind) {
  Dims D(t);
  return (size_t)cpu_threads() * (size_t)(2 * D.L) * sizeof(float);
}

// dv_j = sum_i p_ij do_i ; dk_j = scale * sum_i p_ij (do_i . v_j - D_i) q_i   -> out [.., S, d + dv]
void attention_bwd_kv_cpu(Tensor* dkv, const ExecCtx& c) {
  Dims D(dkv);
  const float *q = tdata<float>(dkv->src[0]), *k = tdata<float>(dkv->src[1]), *v = tdata<float>(dkv->src[2]);
  const float *o = tdata<float>(dkv->src[3]), *go = tdata<float>(dkv->src[4]);
  float* out = tdata<float>(dkv);
  int64_t W = D.d + D.dv;
  int nt = D.BH * D.L * D.S * D.d < 65536 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t bh = 0; bh < D.BH; bh++) {
    float* lse = (float*)c.scratch + omp_get_thread_num() * 2 * D.L;
    float* Dr = lse + D.L;
    const float* qb = q + bh * D.L * D.d;
    const float* kb = k + bh * D.S * D.d;
    const float* vb = v + bh * D.S * D.dv;
    const float* gob = go + bh * D.L * D.dv;
    for (int64_t i = 0; i < D.L; i++) {
      lse[i] = row_lse(qb + i * D.d, kb, D);
      Dr[i] = dotf(gob + i * D.dv, o + (bh * D.L + i) * D.dv, D.dv);
    }
    for (int64_t j = 0; j < D.S; j++) {
      float* dk = out + (bh * D.S + j) * W;
      float* dvj = dk + D.d;
      for (int64_t cc = 0; cc < W; cc++) dk[cc] = 0.0f;
      for (int64_t i = 0; i < D.L; i++) {
        float p = nsvq_expf(D.scale * dotf(qb + i * D.d, kb + j * D.d, D.d) - lse[i]);
        axpy(dvj, p, gob + i * D.dv, D.dv);
        float ds = p * (dotf(gob + i * D.dv, vb + j * D.dv, D.dv) - Dr[i]);
        axpy(dk, D.scale * ds, qb + i * D.d, D.d);
      }
    }
  }
}
}  // namespace

void register_attention_cpu() {
  OpDef d;
  d.kernel[BK_CPU] = attention_cpu;
  d.scratch = attention_scratch;
  op_register(OP_ATTENTION, d);
  OpDef q;
  q.kernel[BK_CPU] = attention_bwd_q_cpu;
  op_register(OP_ATTENTION_BWD_Q, q);
  OpDef kv;
  kv.kernel[BK_CPU] = attention_bwd_kv_cpu;
  kv.scratch = attention_kv_scratch;
  op_register(OP_ATTENTION_BWD_KV, kv);
}

}  // namespace nsvq
