// ops/cpu/attention.cpp — CPU kernels of attention: forward with an online softmax over key
// blocks (memory O(block), not O(L*S)), and the two backward ops, which recompute the scores of
// blocks of query rows with SGEMMs (memory O(rows * S) with a fixed row budget). One (batch, head)
// pair per work item, rows and keys in a fixed order: results do not depend on the thread count.
#include <omp.h>
#include <cmath>
#include "ops/cpu/cpu_kernels.h"
#include "ops/cpu/simd512.h"
#include "ops/elementwise_math.h"
#include "ops/ops_internal.h"
#include "engine/cpu/gemm.h"
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

// ---------------------------------------------------------------- backward
// Both backward ops work per (batch, head) on blocks of R query rows against every key, so the
// memory is R x S floats twice per thread (R from a fixed budget: bounded, never L x S for long
// sequences), and the products are SGEMMs:
//   S = scale Q_blk K^T, P = exp(S - lse) with each row's exact log-sum-exp (the full row is there),
//   dP = dO_blk V^T, dS = P (dP - D), D_i = dO_i . O_i;
//   dQ_blk = scale dS K;  dV += P^T dO_blk;  dK += scale dS^T Q_blk (row blocks in order).
// Each (batch, head) runs on one thread with single-threaded SGEMMs: deterministic, and independent
// of the thread count.
const int64_t BWD_BUDGET = 1 << 15;  // floats of each R x S buffer

int64_t bwd_rows(const Dims& D) { return std::max<int64_t>(1, std::min<int64_t>(D.L, BWD_BUDGET / std::max<int64_t>(D.S, 1))); }

size_t attention_bwd_scratch(const Tensor* t, BackendKind) {
  Dims D(t);
  return (size_t)cpu_threads() * (size_t)(2 * bwd_rows(D) * D.S) * sizeof(float);
}

// For rows [i0, i0 + R) of one (batch, head): p = P, ds = dS (both [R, S]).
void bwd_block(const Dims& D, const float* qb, const float* kb, const float* vb, const float* ob, const float* gob,
               int64_t i0, int64_t R, float* p, float* ds) {
  sgemm(false, true, R, D.S, D.d, D.scale, qb + i0 * D.d, D.d, kb, D.d, 0.0f, p, D.S, 1);
  sgemm(false, true, R, D.S, D.dv, 1.0f, gob + i0 * D.dv, D.dv, vb, D.dv, 0.0f, ds, D.S, 1);
  for (int64_t i = 0; i < R; i++) {
    float* pi = p + i * D.S;
    float* di = ds + i * D.S;
    float m = -INFINITY;
    for (int64_t j = 0; j < D.S; j++) m = std::max(m, pi[j]);
    float l = 0.0f;
    for (int64_t j = 0; j < D.S; j++) l += nsvq_expf(pi[j] - m);
    const float lse = m + logf(l), Di = dotf(gob + (i0 + i) * D.dv, ob + (i0 + i) * D.dv, D.dv);
    for (int64_t j = 0; j < D.S; j++) {
      pi[j] = nsvq_expf(pi[j] - lse);
      di[j] = pi[j] * (di[j] - Di);
    }
  }
}

void attention_bwd_q_cpu(Tensor* dq, const ExecCtx& c) {
  Dims D(dq);
  const float *q = tdata<float>(dq->src[0]), *k = tdata<float>(dq->src[1]), *v = tdata<float>(dq->src[2]);
  const float *o = tdata<float>(dq->src[3]), *go = tdata<float>(dq->src[4]);
  float* out = tdata<float>(dq);
  const int64_t R = bwd_rows(D);
  int nt = D.BH * D.L * D.S * D.d < 65536 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t bh = 0; bh < D.BH; bh++) {
    float* p = (float*)c.scratch + omp_get_thread_num() * 2 * R * D.S;
    float* ds = p + R * D.S;
    const float* kb = k + bh * D.S * D.d;
    for (int64_t i0 = 0; i0 < D.L; i0 += R) {
      int64_t nr = std::min(R, D.L - i0);
      bwd_block(D, q + bh * D.L * D.d, kb, v + bh * D.S * D.dv, o + bh * D.L * D.dv, go + bh * D.L * D.dv, i0, nr, p, ds);
      sgemm(false, false, nr, D.d, D.S, D.scale, ds, D.S, kb, D.d, 0.0f, out + (bh * D.L + i0) * D.d, D.d, 1);
    }
  }
}

// out [.., S, d + dv]: dK in the first d columns, dV in the last dv
void attention_bwd_kv_cpu(Tensor* dkv, const ExecCtx& c) {
  Dims D(dkv);
  const float *q = tdata<float>(dkv->src[0]), *k = tdata<float>(dkv->src[1]), *v = tdata<float>(dkv->src[2]);
  const float *o = tdata<float>(dkv->src[3]), *go = tdata<float>(dkv->src[4]);
  float* out = tdata<float>(dkv);
  const int64_t W = D.d + D.dv, R = bwd_rows(D);
  int nt = D.BH * D.L * D.S * D.d < 65536 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t bh = 0; bh < D.BH; bh++) {
    float* p = (float*)c.scratch + omp_get_thread_num() * 2 * R * D.S;
    float* ds = p + R * D.S;
    const float *qb = q + bh * D.L * D.d, *gob = go + bh * D.L * D.dv;
    float* ob = out + bh * D.S * W;
    if (D.L == 0)
      for (int64_t e = 0; e < D.S * W; e++) ob[e] = 0.0f;
    for (int64_t i0 = 0; i0 < D.L; i0 += R) {
      int64_t nr = std::min(R, D.L - i0);
      float beta = i0 == 0 ? 0.0f : 1.0f;
      bwd_block(D, qb, k + bh * D.S * D.d, v + bh * D.S * D.dv, o + bh * D.L * D.dv, gob, i0, nr, p, ds);
      sgemm(true, false, D.S, D.dv, nr, 1.0f, p, D.S, gob + i0 * D.dv, D.dv, beta, ob + D.d, W, 1);
      sgemm(true, false, D.S, D.d, nr, D.scale, ds, D.S, qb + i0 * D.d, D.d, beta, ob, W, 1);
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
  q.scratch = attention_bwd_scratch;
  op_register(OP_ATTENTION_BWD_Q, q);
  OpDef kv;
  kv.kernel[BK_CPU] = attention_bwd_kv_cpu;
  kv.scratch = attention_bwd_scratch;
  op_register(OP_ATTENTION_BWD_KV, kv);
}

}  // namespace nsvq
