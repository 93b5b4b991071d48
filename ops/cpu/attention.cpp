// ops/cpu/attention.cpp — CPU kernels of attention: forward with an online softmax over key
// blocks (memory O(block), not O(L*S)), and the two backward ops, which recompute the scores of
// blocks of query rows with SGEMMs (memory O(rows * S) with a fixed row budget). One (batch, head)
// pair per work item, rows and keys in a fixed order: results do not depend on the thread count.
// On AVX-512 CPUs the forward runs ops/cpu/attention_avx512.cpp instead (dv <= 64).
#include <omp.h>
#include <cmath>
#include "ops/cpu/cpu_kernels.h"
#include "ops/elementwise_math.h"
#include "ops/ops_internal.h"
#include "engine/cpu/gemm.h"
#include "ops/cpu/attention_simd.h"

namespace nsvq {

namespace {
using attention_detail::Dims;
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

size_t attention_scratch(const Tensor* t, BackendKind) {
  Dims D(t);
#if NSVQ_X86
  if (cpu_has_avx512() && D.dv <= 64)
    return (size_t)cpu_threads() * ((attention_fast_scratch_avx512(D) + 63) / 64 * 64);
#endif
  return (size_t)cpu_threads() * (size_t)(BQ * BK + BQ * D.dv + 2 * BQ) * sizeof(float);
}

void attention_cpu(Tensor* o, const ExecCtx& c) {
  Dims D(o);
#if NSVQ_X86
  if (cpu_has_avx512() && D.dv <= 64) {
    attention_fast_avx512(o, c, D);
    return;
  }
#endif
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
