// ops/cuda/attention.cu — CUDA kernels of attention (q [BH, L, d], k [BH, S, d], v [BH, S, dv];
// builder in ops/attention.cpp): forward with an online softmax, and the two backward ops that
// recompute each row's log-sum-exp (as the CPU kernels do).
//
// Layout of every kernel: a block of 8 warps works on 8 consecutive rows of one (batch, head)
// pair, one warp per row; the other side (keys, or queries for dk|dv) streams through shared
// memory in tiles of 32 rows. Inside a tile lane j takes row j of the tile (its dot products run
// sequentially over the feature dim), the warp combines the 32 lanes with fixed shuffle trees, and
// the row's accumulators (in shared memory) are updated by lanes owning feature columns, adding
// the tile's rows in order. Nothing depends on timing: results are bitwise reproducible.
//   forward:  m, l, acc per query row; per tile m' = max(m, max_j s_j), acc = acc * e^{m-m'} +
//             sum_j e^{s_j-m'} v_j, l likewise; out = acc / l.
//   dq:       pass 1 over keys: lse; pass 2: dq = scale * sum_j p_ij (do_i . v_j - D_i) k_j,
//             D_i = do_i . o_i.
//   dk | dv:  per key row j over query tiles: dv_j = sum_i p_ij do_i, dk_j = scale * sum_i p_ij
//             (do_i . v_j - D_i) q_i, with lse_i and D_i precomputed per (batch, head) into
//             ExecCtx::scratch (the CPU's attention_kv_scratch gives at least 2*L floats; pairs are
//             processed in chunks that fit).
#include <cmath>
#include "engine/cuda/cuda_common.cuh"
#include "ops/elementwise_math.h"
#include "ops/ops_internal.h"

namespace nsvq {

namespace {

constexpr int AT_ROWS = CU_THREADS / 32;  // rows (warps) per block
constexpr int AT_TILE = 32;               // rows of the streamed side per shared-memory tile

struct AttD {
  int64_t BH, L, S, d, dv;
  float scale;
};

AttD att_dims(const Tensor* t) {
  const Tensor *q = t->src[0], *v = t->src[2];
  AttD D;
  D.BH = q->ne[0] * q->ne[1];
  D.L = q->ne[2];
  D.S = t->src[1]->ne[2];
  D.d = q->ne[3];
  D.dv = v->ne[3];
  D.scale = t->fp[0];
  return D;
}

// padded row strides of shared tiles: odd, so lanes reading a column of a tile hit distinct banks
__host__ __device__ __forceinline__ int64_t att_pad(int64_t n) { return n % 2 ? n : n + 1; }

// tile[r][c] (row stride ld) = src[(r0 + r) * n + c] for r < nr, c < n; whole block
__device__ __forceinline__ void att_load_tile(float* tile, int64_t ld, const float* __restrict__ src, int64_t r0, int nr,
                                              int64_t n) {
  for (int64_t e = threadIdx.x; e < nr * n; e += blockDim.x) {
    int64_t r = e / n, c = e - r * n;
    tile[r * ld + c] = src[(r0 + r) * n + c];
  }
}

__device__ __forceinline__ float att_dot(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
  for (int64_t c = 0; c < n; c++) s += a[c] * b[c];
  return s;
}

// Online log-sum-exp of query row qw (in shared memory) against every key of kb, for one warp;
// Kt is a shared tile [AT_TILE][dp]. Every thread of the block must call it (it synchronises).
__device__ float att_row_lse(const float* qw, const float* __restrict__ kb, float* Kt, const AttD& D, bool active) {
  int lane = threadIdx.x & 31;
  int64_t dp = att_pad(D.d);
  float m = -INFINITY, l = 0.0f;
  for (int64_t j0 = 0; j0 < D.S; j0 += AT_TILE) {
    int nk = (int)(D.S - j0 < AT_TILE ? D.S - j0 : AT_TILE);
    __syncthreads();
    att_load_tile(Kt, dp, kb, j0, nk, D.d);
    __syncthreads();
    if (active) {
      float s = lane < nk ? D.scale * att_dot(qw, Kt + lane * dp, D.d) : -INFINITY;
      float mx = warp_allreduce(s, CuMax());
      mx = m > mx ? m : mx;
      float p = lane < nk ? nsvq_expf(s - mx) : 0.0f;
      l = l * nsvq_expf(m - mx) + warp_allreduce(p, CuAdd());
      m = mx;
    }
  }
  return m + logf(l);
}

__global__ void attn_fwd_kernel(float* __restrict__ out, const float* __restrict__ q, const float* __restrict__ k,
                                const float* __restrict__ v, AttD D) {
  extern __shared__ float att_smem[];
  int64_t dp = att_pad(D.d), vp = att_pad(D.dv);
  float* Kt = att_smem;                    // [AT_TILE][dp]
  float* Vt = Kt + AT_TILE * dp;           // [AT_TILE][vp]
  float* qs = Vt + AT_TILE * vp;           // [AT_ROWS][d]
  float* as = qs + AT_ROWS * D.d;          // [AT_ROWS][dv]
  float* ps = as + AT_ROWS * D.dv;         // [AT_ROWS][AT_TILE]
  int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float *qw = qs + w * D.d, *aw = as + w * D.dv, *pw = ps + w * AT_TILE;
  int64_t rblocks = (D.L + AT_ROWS - 1) / AT_ROWS;
  for (int64_t blk = blockIdx.x; blk < D.BH * rblocks; blk += gridDim.x) {  // uniform per block
    int64_t bh = blk / rblocks, i = (blk % rblocks) * AT_ROWS + w;
    bool active = i < D.L;  // uniform per warp
    const float* kb = k + bh * D.S * D.d;
    const float* vb = v + bh * D.S * D.dv;
    __syncthreads();  // the previous rows' shared data is no longer read
    if (active) {
      for (int64_t c = lane; c < D.d; c += 32) qw[c] = q[(bh * D.L + i) * D.d + c];
      for (int64_t c = lane; c < D.dv; c += 32) aw[c] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int64_t j0 = 0; j0 < D.S; j0 += AT_TILE) {
      int nk = (int)(D.S - j0 < AT_TILE ? D.S - j0 : AT_TILE);
      __syncthreads();
      att_load_tile(Kt, dp, kb, j0, nk, D.d);
      att_load_tile(Vt, vp, vb, j0, nk, D.dv);
      __syncthreads();
      if (active) {
        float s = lane < nk ? D.scale * att_dot(qw, Kt + lane * dp, D.d) : -INFINITY;
        float mx = warp_allreduce(s, CuMax());
        mx = m > mx ? m : mx;
        float corr = nsvq_expf(m - mx);
        float p = lane < nk ? nsvq_expf(s - mx) : 0.0f;
        pw[lane] = p;
        l = l * corr + warp_allreduce(p, CuAdd());
        m = mx;
        __syncwarp();
        for (int64_t c = lane; c < D.dv; c += 32) {
          float a = aw[c] * corr;
          for (int jj = 0; jj < nk; jj++) a += pw[jj] * Vt[jj * vp + c];
          aw[c] = a;
        }
      }
    }
    if (active) {
      float inv = 1.0f / l;
      for (int64_t c = lane; c < D.dv; c += 32) out[(bh * D.L + i) * D.dv + c] = aw[c] * inv;
    }
  }
}

// dq_i = scale * sum_j p_ij (do_i . v_j - D_i) k_j
__global__ void attn_bwd_q_kernel(float* __restrict__ dq, const float* __restrict__ q, const float* __restrict__ k,
                                  const float* __restrict__ v, const float* __restrict__ o,
                                  const float* __restrict__ go, AttD D) {
  extern __shared__ float att_smem[];
  int64_t dp = att_pad(D.d), vp = att_pad(D.dv);
  float* Kt = att_smem;                    // [AT_TILE][dp]
  float* Vt = Kt + AT_TILE * dp;           // [AT_TILE][vp]
  float* qs = Vt + AT_TILE * vp;           // [AT_ROWS][d]
  float* gs = qs + AT_ROWS * D.d;          // [AT_ROWS][dv]  do_i
  float* dqs = gs + AT_ROWS * D.dv;        // [AT_ROWS][d]
  float* ps = dqs + AT_ROWS * D.d;         // [AT_ROWS][AT_TILE]
  int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float *qw = qs + w * D.d, *gw = gs + w * D.dv, *dqw = dqs + w * D.d, *pw = ps + w * AT_TILE;
  int64_t rblocks = (D.L + AT_ROWS - 1) / AT_ROWS;
  for (int64_t blk = blockIdx.x; blk < D.BH * rblocks; blk += gridDim.x) {
    int64_t bh = blk / rblocks, i = (blk % rblocks) * AT_ROWS + w, r = bh * D.L + i;
    bool active = i < D.L;
    const float* kb = k + bh * D.S * D.d;
    const float* vb = v + bh * D.S * D.dv;
    __syncthreads();
    float Di = 0.0f;
    if (active) {
      for (int64_t c = lane; c < D.d; c += 32) {
        qw[c] = q[r * D.d + c];
        dqw[c] = 0.0f;
      }
      float t = 0.0f;
      for (int64_t c = lane; c < D.dv; c += 32) {
        gw[c] = go[r * D.dv + c];
        t += gw[c] * o[r * D.dv + c];
      }
      Di = warp_allreduce(t, CuAdd());
    }
    __syncthreads();
    float lse = att_row_lse(qw, kb, Kt, D, active);
    for (int64_t j0 = 0; j0 < D.S; j0 += AT_TILE) {
      int nk = (int)(D.S - j0 < AT_TILE ? D.S - j0 : AT_TILE);
      __syncthreads();
      att_load_tile(Kt, dp, kb, j0, nk, D.d);
      att_load_tile(Vt, vp, vb, j0, nk, D.dv);
      __syncthreads();
      if (active) {
        float wv = 0.0f;
        if (lane < nk) {
          float p = nsvq_expf(D.scale * att_dot(qw, Kt + lane * dp, D.d) - lse);
          float ds = p * (att_dot(gw, Vt + lane * vp, D.dv) - Di);
          wv = D.scale * ds;
        }
        pw[lane] = wv;
        __syncwarp();
        for (int64_t c = lane; c < D.d; c += 32) {
          float a = dqw[c];
          for (int jj = 0; jj < nk; jj++) a += pw[jj] * Kt[jj * dp + c];
          dqw[c] = a;
        }
        __syncwarp();
      }
    }
    if (active)
      for (int64_t c = lane; c < D.d; c += 32) dq[r * D.d + c] = dqw[c];
  }
}

// lse_i and D_i = do_i . o_i of the query rows of pairs [bh0, bh0 + nbh) -> st[(bh-bh0)*2L + i], +L
__global__ void attn_row_stats_kernel(float* __restrict__ st, const float* __restrict__ q, const float* __restrict__ k,
                                      const float* __restrict__ o, const float* __restrict__ go, AttD D, int64_t bh0,
                                      int64_t nbh) {
  extern __shared__ float att_smem[];
  int64_t dp = att_pad(D.d);
  float* Kt = att_smem;           // [AT_TILE][dp]
  float* qs = Kt + AT_TILE * dp;  // [AT_ROWS][d]
  int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float* qw = qs + w * D.d;
  int64_t rblocks = (D.L + AT_ROWS - 1) / AT_ROWS;
  for (int64_t blk = blockIdx.x; blk < nbh * rblocks; blk += gridDim.x) {
    int64_t bl = blk / rblocks, bh = bh0 + bl, i = (blk % rblocks) * AT_ROWS + w, r = bh * D.L + i;
    bool active = i < D.L;
    __syncthreads();
    float Di = 0.0f;
    if (active) {
      for (int64_t c = lane; c < D.d; c += 32) qw[c] = q[r * D.d + c];
      float t = 0.0f;
      for (int64_t c = lane; c < D.dv; c += 32) t += go[r * D.dv + c] * o[r * D.dv + c];
      Di = warp_allreduce(t, CuAdd());
    }
    __syncthreads();
    float lse = att_row_lse(qw, k + bh * D.S * D.d, Kt, D, active);
    if (active && lane == 0) {
      st[bl * 2 * D.L + i] = lse;
      st[bl * 2 * D.L + D.L + i] = Di;
    }
  }
}

// dv_j = sum_i p_ij do_i ; dk_j = scale * sum_i p_ij (do_i . v_j - D_i) q_i -> out [BH, S, d + dv]
__global__ void attn_bwd_kv_kernel(float* __restrict__ out, const float* __restrict__ q, const float* __restrict__ k,
                                   const float* __restrict__ v, const float* __restrict__ go,
                                   const float* __restrict__ st, AttD D, int64_t bh0, int64_t nbh) {
  extern __shared__ float att_smem[];
  int64_t dp = att_pad(D.d), vp = att_pad(D.dv), W = D.d + D.dv;
  float* Qt = att_smem;                    // [AT_TILE][dp]
  float* Gt = Qt + AT_TILE * dp;           // [AT_TILE][vp]  do rows
  float* lt = Gt + AT_TILE * vp;           // [AT_TILE]      lse
  float* Dt = lt + AT_TILE;                // [AT_TILE]      D
  float* ks = Dt + AT_TILE;                // [AT_ROWS][d]
  float* vs = ks + AT_ROWS * D.d;          // [AT_ROWS][dv]
  float* dks = vs + AT_ROWS * D.dv;        // [AT_ROWS][d]
  float* dvs = dks + AT_ROWS * D.d;        // [AT_ROWS][dv]
  float* ps = dvs + AT_ROWS * D.dv;        // [AT_ROWS][AT_TILE]  p_ij
  float* ws = ps + AT_ROWS * AT_TILE;      // [AT_ROWS][AT_TILE]  scale * ds_ij
  int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float *kw = ks + w * D.d, *vw = vs + w * D.dv, *dkw = dks + w * D.d, *dvw = dvs + w * D.dv;
  float *pw = ps + w * AT_TILE, *ww = ws + w * AT_TILE;
  int64_t jblocks = (D.S + AT_ROWS - 1) / AT_ROWS;
  for (int64_t blk = blockIdx.x; blk < nbh * jblocks; blk += gridDim.x) {
    int64_t bl = blk / jblocks, bh = bh0 + bl, j = (blk % jblocks) * AT_ROWS + w;
    bool active = j < D.S;
    const float* qb = q + bh * D.L * D.d;
    const float* gb = go + bh * D.L * D.dv;
    const float* sb = st + bl * 2 * D.L;
    __syncthreads();
    if (active) {
      for (int64_t c = lane; c < D.d; c += 32) {
        kw[c] = k[(bh * D.S + j) * D.d + c];
        dkw[c] = 0.0f;
      }
      for (int64_t c = lane; c < D.dv; c += 32) {
        vw[c] = v[(bh * D.S + j) * D.dv + c];
        dvw[c] = 0.0f;
      }
    }
    for (int64_t i0 = 0; i0 < D.L; i0 += AT_TILE) {
      int nq = (int)(D.L - i0 < AT_TILE ? D.L - i0 : AT_TILE);
      __syncthreads();
      att_load_tile(Qt, dp, qb, i0, nq, D.d);
      att_load_tile(Gt, vp, gb, i0, nq, D.dv);
      for (int e = threadIdx.x; e < nq; e += blockDim.x) {
        lt[e] = sb[i0 + e];
        Dt[e] = sb[D.L + i0 + e];
      }
      __syncthreads();
      if (active) {
        float p = 0.0f, wv = 0.0f;
        if (lane < nq) {
          p = nsvq_expf(D.scale * att_dot(kw, Qt + lane * dp, D.d) - lt[lane]);
          float ds = p * (att_dot(Gt + lane * vp, vw, D.dv) - Dt[lane]);
          wv = D.scale * ds;
        }
        pw[lane] = p;
        ww[lane] = wv;
        __syncwarp();
        for (int64_t c = lane; c < D.dv; c += 32) {
          float a = dvw[c];
          for (int ii = 0; ii < nq; ii++) a += pw[ii] * Gt[ii * vp + c];
          dvw[c] = a;
        }
        for (int64_t c = lane; c < D.d; c += 32) {
          float a = dkw[c];
          for (int ii = 0; ii < nq; ii++) a += ww[ii] * Qt[ii * dp + c];
          dkw[c] = a;
        }
        __syncwarp();
      }
    }
    if (active) {
      float* oj = out + (bh * D.S + j) * W;
      for (int64_t c = lane; c < D.d; c += 32) oj[c] = dkw[c];
      for (int64_t c = lane; c < D.dv; c += 32) oj[D.d + c] = dvw[c];
    }
  }
}

// Dynamic shared memory of `kernel`: opts in above the default 48 KiB where the device allows.
void att_smem_prepare(const void* kernel, size_t bytes, const CudaState* st, const char* op) {
  if (bytes <= 48 * 1024) return;
  int optin = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, st->device));
  if (bytes > (size_t)optin)
    fail("%s: head dims need %zu bytes of shared memory per block, the device allows %d", op, bytes, optin);
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

size_t fwd_smem(const AttD& D) {
  return (size_t)(AT_TILE * att_pad(D.d) + AT_TILE * att_pad(D.dv) + AT_ROWS * (D.d + D.dv) + AT_ROWS * AT_TILE) *
         sizeof(float);
}
size_t bwd_q_smem(const AttD& D) {
  return (size_t)(AT_TILE * att_pad(D.d) + AT_TILE * att_pad(D.dv) + AT_ROWS * (2 * D.d + D.dv) + AT_ROWS * AT_TILE) *
         sizeof(float);
}
size_t stats_smem(const AttD& D) { return (size_t)(AT_TILE * att_pad(D.d) + AT_ROWS * D.d) * sizeof(float); }
size_t bwd_kv_smem(const AttD& D) {
  return (size_t)(AT_TILE * att_pad(D.d) + AT_TILE * att_pad(D.dv) + 2 * AT_TILE + 2 * AT_ROWS * (D.d + D.dv) +
                  2 * AT_ROWS * AT_TILE) *
         sizeof(float);
}

void attention_cuda(Tensor* o, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  AttD D = att_dims(o);
  if (D.BH * D.L == 0 || D.dv == 0) return;
  size_t smem = fwd_smem(D);
  att_smem_prepare((const void*)attn_fwd_kernel, smem, st, "attention");
  int64_t blocks = D.BH * ((D.L + AT_ROWS - 1) / AT_ROWS);
  attn_fwd_kernel<<<cu_blocks(blocks, 1), CU_THREADS, smem, st->stream>>>(
      (float*)o->data, (const float*)o->src[0]->data, (const float*)o->src[1]->data, (const float*)o->src[2]->data, D);
  CUDA_LAUNCH_CHECK();
}

void attention_bwd_q_cuda(Tensor* dq, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  AttD D = att_dims(dq);
  if (D.BH * D.L == 0 || D.d == 0) return;
  size_t smem = bwd_q_smem(D);
  att_smem_prepare((const void*)attn_bwd_q_kernel, smem, st, "attention_bwd_q");
  int64_t blocks = D.BH * ((D.L + AT_ROWS - 1) / AT_ROWS);
  attn_bwd_q_kernel<<<cu_blocks(blocks, 1), CU_THREADS, smem, st->stream>>>(
      (float*)dq->data, (const float*)dq->src[0]->data, (const float*)dq->src[1]->data, (const float*)dq->src[2]->data,
      (const float*)dq->src[3]->data, (const float*)dq->src[4]->data, D);
  CUDA_LAUNCH_CHECK();
}

void attention_bwd_kv_cuda(Tensor* dkv, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  AttD D = att_dims(dkv);
  if (D.BH * D.S == 0 || D.d + D.dv == 0) return;
  float* out = (float*)dkv->data;
  if (D.L == 0) {  // no queries: no gradient
    CUDA_CHECK(cudaMemsetAsync(out, 0, (size_t)(D.BH * D.S * (D.d + D.dv)) * sizeof(float), st->stream));
    return;
  }
  const float *q = (const float*)dkv->src[0]->data, *k = (const float*)dkv->src[1]->data,
              *v = (const float*)dkv->src[2]->data, *o = (const float*)dkv->src[3]->data,
              *go = (const float*)dkv->src[4]->data;
  // (batch, head) pairs per chunk: as many as the scratch holds (2*L floats each)
  int64_t per = 2 * D.L * (int64_t)sizeof(float);
  int64_t chunk = c.scratch ? (int64_t)c.scratch_bytes / per : 0;
  if (chunk < 1) fail("attention_bwd_kv: %s needs %lld bytes of kernel scratch on cuda", dkv->desc().c_str(), (long long)per);
  if (chunk > D.BH) chunk = D.BH;
  float* stats = (float*)c.scratch;
  size_t smem_s = stats_smem(D), smem_kv = bwd_kv_smem(D);
  att_smem_prepare((const void*)attn_row_stats_kernel, smem_s, st, "attention_bwd_kv");
  att_smem_prepare((const void*)attn_bwd_kv_kernel, smem_kv, st, "attention_bwd_kv");
  for (int64_t bh0 = 0; bh0 < D.BH; bh0 += chunk) {
    int64_t nbh = D.BH - bh0 < chunk ? D.BH - bh0 : chunk;
    int64_t sblocks = nbh * ((D.L + AT_ROWS - 1) / AT_ROWS);
    attn_row_stats_kernel<<<cu_blocks(sblocks, 1), CU_THREADS, smem_s, st->stream>>>(stats, q, k, o, go, D, bh0, nbh);
    CUDA_LAUNCH_CHECK();
    int64_t kblocks = nbh * ((D.S + AT_ROWS - 1) / AT_ROWS);
    attn_bwd_kv_kernel<<<cu_blocks(kblocks, 1), CU_THREADS, smem_kv, st->stream>>>(out, q, k, v, go, stats, D, bh0, nbh);
    CUDA_LAUNCH_CHECK();
  }
}

}  // namespace

// Not yet called by ops_init(): needs `void register_attention_cuda();` in ops/ops_internal.h and a
// call next to the other register_*_cuda() in ops/ops.cpp.
void register_attention_cuda() {
  OpDef d;
  d.kernel[BK_CUDA] = attention_cuda; op_register(OP_ATTENTION, d);
  OpDef q;
  q.kernel[BK_CUDA] = attention_bwd_q_cuda; op_register(OP_ATTENTION_BWD_Q, q);
  OpDef kv;
  kv.kernel[BK_CUDA] = attention_bwd_kv_cuda; op_register(OP_ATTENTION_BWD_KV, kv);
}

}  // namespace nsvq
