// ops/cpu/attention.cpp — CPU kernels of attention: forward with an online softmax over key
// blocks (memory O(block), not O(L*S)), and the two backward ops, which recompute each row's
// log-sum-exp. One (batch, head) pair per work item, rows and keys in a fixed order: results do not
// depend on the thread count.
#include <omp.h>
#include <cmath>
#include "ops/cpu/cpu_kernels.h"
#include "ops/elementwise_math.h"
#include "ops/ops_internal.h"

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

size_t attention_scratch(const Tensor* t, BackendKind) {
  Dims D(t);
  return (size_t)cpu_threads() * (size_t)(BQ * BK + BQ * D.dv + 2 * BQ) * sizeof(float);
}

void attention_cpu(Tensor* o, const ExecCtx& c) {
  Dims D(o);
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
