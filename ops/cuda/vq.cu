// ops/cuda/vq.cu — CUDA kernels of the vq family (ops/vq.h). Deterministic: no float atomics
// (integer atomics only for histograms and counters, whose sums do not depend on order), every float
// sum taken in a fixed order.
//
// Distances come from a shared-memory tile of TR = 32 rows x TC = 64 codes: D is walked in chunks of
// DC = 32 staged in shared memory; each of the 256 threads holds a 2 x 4 block of dot products (rows
// ty*2, ty*2+1 with ty = t/16, codes tx + 16 j with tx = t%16); |z|^2 and |e|^2 are summed from the
// same staged chunks. d = max(|z|^2 + |e|^2 - 2 z.e, 0).
//   search (nearest, LSE refresh): block = (row tile, code chunk); each thread keeps
//     (min, argmin, max, sum exp) per row over its codes (in increasing index order), the 16 threads
//     of a row merge by xor shuffles (a symmetric, fixed tree), chunks are merged in chunk order by one
//     thread per row. The chunk count depends on N and K only.
//   dense stats: block = code tile; rows in tiles of 32 in order; weights into shared memory; S, Q by
//     one thread per code; W^T X into the block's own output rows (each element owned by one thread).
//   soft mix: block = row tile; code tiles in order; W E into the block's own output rows.
// Per-step flags and the Philox key live in the device-side control input: gated kernels read them
// and return at once when their flag is off.
#include <algorithm>
#include <cmath>
#include "engine/cuda/cuda_common.cuh"
#include "ops/ops_internal.h"
#include "ops/vq.h"

namespace nsvq {

namespace {

constexpr int TR = 32, TC = 64, DC = 32, NT = 256;
constexpr int64_t TARGET_BLOCKS = 1024;  // search blocks aimed for (row tiles x code chunks)

struct VqState {
  float best;
  int idx;
  float m;
  float s;
};

__host__ __device__ inline int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

int64_t cu_chunks(int64_t N, int64_t K) {
  return std::min(cdiv(K, TC), std::max<int64_t>(1, cdiv(TARGET_BLOCKS, cdiv(N, TR))));
}
size_t search_bytes(int64_t N, int64_t K) { return (size_t)(cu_chunks(N, K) * N) * sizeof(VqState); }

// ---------------------------------------------------------------- the distance tile

struct TileSmem {
  float zs[TR][DC + 1];
  float es[TC][DC + 1];
  float zn[TR];
  float en[TC];
};

// acc[i][j] = z[r0 + ty*2 + i] . E[k0 + tx + 16 j] (0 outside), and sm.zn / sm.en of the tile.
// Every thread of the block must call it (it synchronises).
__device__ void tile_dots(const float* __restrict__ z, int64_t N, const float* __restrict__ E, int64_t K, int64_t D,
                          int64_t r0, int64_t k0, TileSmem& sm, float acc[2][4]) {
  const int t = threadIdx.x, ty = t / 16, tx = t % 16;
#pragma unroll
  for (int i = 0; i < 2; i++)
#pragma unroll
    for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
  float nacc = 0.0f;
  for (int64_t d0 = 0; d0 < D; d0 += DC) {
    const int dc = (int)(D - d0 < DC ? D - d0 : DC);
    __syncthreads();  // the previous chunk (or tile) is no longer read
    for (int e = t; e < TR * DC; e += NT) {
      int r = e / DC, dd = e % DC;
      int64_t row = r0 + r;
      sm.zs[r][dd] = (row < N && dd < dc) ? z[row * D + d0 + dd] : 0.0f;
    }
    for (int e = t; e < TC * DC; e += NT) {
      int c = e / DC, dd = e % DC;
      int64_t code = k0 + c;
      sm.es[c][dd] = (code < K && dd < dc) ? E[code * D + d0 + dd] : 0.0f;
    }
    __syncthreads();
    if (t < TR)
      for (int dd = 0; dd < dc; dd++) nacc = fmaf(sm.zs[t][dd], sm.zs[t][dd], nacc);
    else if (t < TR + TC)
      for (int dd = 0; dd < dc; dd++) nacc = fmaf(sm.es[t - TR][dd], sm.es[t - TR][dd], nacc);
    for (int dd = 0; dd < dc; dd++) {
      const float a0 = sm.zs[ty * 2][dd], a1 = sm.zs[ty * 2 + 1][dd];
#pragma unroll
      for (int j = 0; j < 4; j++) {
        const float b = sm.es[tx + 16 * j][dd];
        acc[0][j] = fmaf(a0, b, acc[0][j]);
        acc[1][j] = fmaf(a1, b, acc[1][j]);
      }
    }
  }
  __syncthreads();
  if (t < TR) sm.zn[t] = nacc;
  else if (t < TR + TC) sm.en[t - TR] = nacc;
  __syncthreads();
}

__device__ __forceinline__ float tile_dist(const TileSmem& sm, int r, int c, float dot) {
  return fmaxf(sm.zn[r] + sm.en[c] - 2.0f * dot, 0.0f);
}

// Dense-loss weight of a pair (winner handled by the caller)
__device__ __forceinline__ float pair_weight(float d, float inv_tau, float lse, float lam_k) {
  const float x = -d * inv_tau - lse;
  return x < VQ_EXP_FLOOR ? 0.0f : fminf(lam_k * expf(x), 1.0f);
}

__device__ __forceinline__ void state_merge(VqState& a, const VqState& b, int lse) {
  if (b.best < a.best || (b.best == a.best && b.idx < a.idx)) {
    a.best = b.best;
    a.idx = b.idx;
  }
  if (lse) {
    const float mn = fmaxf(a.m, b.m);
    const float sa = a.s > 0.0f ? a.s * expf(a.m - mn) : 0.0f, sb = b.s > 0.0f ? b.s * expf(b.m - mn) : 0.0f;
    a.s = sa + sb;  // commutative: both lanes of an xor pair get the same bits
    a.m = mn;
  }
}

__device__ __forceinline__ bool gated_off(const int32_t* ctl, int flag) {
  return ctl && !(ctl[VQ_CTL_FLAGS] & flag);
}

// ---------------------------------------------------------------- search

__global__ void search_kernel(const float* __restrict__ z, const float* __restrict__ E, int64_t N, int64_t K, int64_t D,
                              const float* __restrict__ tau, int lse, int64_t chunks, VqState* __restrict__ part,
                              const int32_t* __restrict__ ctl, int flag) {
  if (gated_off(ctl, flag)) return;
  __shared__ TileSmem sm;
  const int t = threadIdx.x, ty = t / 16, tx = t % 16;
  const int64_t tiles = cdiv(K, TC), n_rb = cdiv(N, TR);
  const float inv_tau = lse ? 1.0f / fmaxf(tau[0], VQ_TAU_MIN) : 0.0f;
  for (int64_t b = blockIdx.x; b < n_rb * chunks; b += gridDim.x) {  // uniform per block
    const int64_t rb = b / chunks, ch = b % chunks, r0 = rb * TR;
    const int64_t t0 = tiles * ch / chunks, t1 = tiles * (ch + 1) / chunks;
    VqState st[2];
    for (int i = 0; i < 2; i++) st[i] = {INFINITY, 0, -INFINITY, 0.0f};
    for (int64_t kt = t0; kt < t1; kt++) {
      const int64_t k0 = kt * TC;
      float acc[2][4];
      tile_dots(z, N, E, K, D, r0, k0, sm, acc);
#pragma unroll
      for (int j = 0; j < 4; j++) {  // increasing code index within the thread
        const int c = tx + 16 * j;
        if (k0 + c >= K) continue;
#pragma unroll
        for (int i = 0; i < 2; i++) {
          const float d = tile_dist(sm, ty * 2 + i, c, acc[i][j]);
          if (d < st[i].best) {
            st[i].best = d;
            st[i].idx = (int)(k0 + c);
          }
          if (lse) {
            const float x = -d * inv_tau;
            if (x > st[i].m) {
              st[i].s = st[i].s * expf(st[i].m - x) + 1.0f;
              st[i].m = x;
            } else {
              st[i].s += expf(x - st[i].m);
            }
          }
        }
      }
    }
#pragma unroll
    for (int off = 8; off > 0; off >>= 1)
#pragma unroll
      for (int i = 0; i < 2; i++) {
        VqState o;
        o.best = __shfl_xor_sync(0xffffffffu, st[i].best, off);
        o.idx = __shfl_xor_sync(0xffffffffu, st[i].idx, off);
        o.m = __shfl_xor_sync(0xffffffffu, st[i].m, off);
        o.s = __shfl_xor_sync(0xffffffffu, st[i].s, off);
        state_merge(st[i], o, lse);
      }
    if (tx == 0)
      for (int i = 0; i < 2; i++) {
        const int64_t row = r0 + ty * 2 + i;
        if (row < N) part[ch * N + row] = st[i];
      }
  }
}

// mode 0: search [N, 3]; mode 1: only the LSE column
__global__ void search_merge_kernel(const VqState* __restrict__ part, int64_t N, int64_t chunks, int lse, int mode,
                                    float* __restrict__ out, const int32_t* __restrict__ ctl, int flag) {
  if (gated_off(ctl, flag)) return;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < N; i += (int64_t)gridDim.x * blockDim.x) {
    VqState r = part[i];
    for (int64_t ch = 1; ch < chunks; ch++) state_merge(r, part[ch * N + i], lse);
    const float l = lse ? r.m + logf(r.s) : 0.0f;
    if (mode == 0) {
      out[i * 3 + 0] = r.best;
      out[i * 3 + 1] = l;
      out[i * 3 + 2] = (float)r.idx;
    } else {
      out[i * 3 + 1] = l;
    }
  }
}

// Launches the search of z against E and the merge (mode as above).
void search_launch(CudaState* st, const ExecCtx& c, const char* op, const float* z, const float* E, int64_t N, int64_t K,
                   int64_t D, const float* tau, int lse, int mode, float* out, const int32_t* ctl, int flag) {
  if (N == 0) return;
  if (!c.scratch || c.scratch_bytes < search_bytes(N, K))
    fail("%s: needs %zu bytes of kernel scratch on cuda", op, search_bytes(N, K));
  const int64_t chunks = cu_chunks(N, K);
  VqState* part = (VqState*)c.scratch;
  search_kernel<<<cu_blocks(cdiv(N, TR) * chunks, 1), NT, 0, st->stream>>>(z, E, N, K, D, tau, lse, chunks, part, ctl, flag);
  CUDA_LAUNCH_CHECK();
  search_merge_kernel<<<cu_blocks(N), CU_THREADS, 0, st->stream>>>(part, N, chunks, lse, mode, out, ctl, flag);
  CUDA_LAUNCH_CHECK();
}

void vq_nearest_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const Tensor *z = y->src[0], *E = y->src[1];
  const bool lse = y->n_src > 2;
  search_launch(st, c, "vq_nearest", (const float*)z->data, (const float*)E->data, z->ne[0], E->ne[0], z->ne[1],
                lse ? (const float*)y->src[2]->data : nullptr, lse, 0, (float*)y->data, nullptr, 0);
}

void vq_lse_refresh_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const Tensor *z = y->src[1], *E = y->src[2];
  search_launch(st, c, "vq_lse_refresh", (const float*)z->data, (const float*)E->data, z->ne[0], E->ne[0], z->ne[1],
                (const float*)y->src[3]->data, 1, 1, (float*)y->data, (const int32_t*)y->src[4]->data, VQ_FLAG_REFRESH);
}

// rank of each row's distance (search column 0; ties by position); ranks lo and hi go to slot[0], slot[1]
__global__ void median_rank_kernel(const float* __restrict__ s, int64_t N, float* __restrict__ slot,
                                   const int32_t* __restrict__ ctl) {
  if (gated_off(ctl, VQ_FLAG_CALIBRATE)) return;
  const int64_t lo = (N - 1) / 2, hi = N / 2;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < N; i += (int64_t)gridDim.x * blockDim.x) {
    const float v = s[i * 3];
    int64_t rank = 0;
    for (int64_t j = 0; j < N; j++) {
      const float u = s[j * 3];
      rank += (u < v) || (u == v && j < i);
    }
    if (rank == lo) slot[0] = v;
    if (rank == hi) slot[1] = v;
  }
}

__global__ void median_store_kernel(const float* __restrict__ slot, int64_t N, float rho, float* __restrict__ tau,
                                    const int32_t* __restrict__ ctl) {
  if (gated_off(ctl, VQ_FLAG_CALIBRATE)) return;
  const float med = N % 2 == 0 ? 0.5f * (slot[1] + slot[0]) : slot[1];
  tau[0] = fmaxf(rho * med, VQ_TAU_MIN);
}

// O(N^2) ranks, but only on the (one or two) steps that calibrate
void vq_tau_calibrate_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const Tensor* s = y->src[1];
  const int32_t* ctl = (const int32_t*)y->src[2]->data;
  const int64_t N = s->ne[0];
  if (N == 0) return;
  if (!c.scratch || c.scratch_bytes < 2 * sizeof(float)) fail("vq_tau_calibrate: needs kernel scratch on cuda");
  float* slot = (float*)c.scratch;
  median_rank_kernel<<<cu_blocks(N), CU_THREADS, 0, st->stream>>>((const float*)s->data, N, slot, ctl);
  CUDA_LAUNCH_CHECK();
  median_store_kernel<<<1, 1, 0, st->stream>>>(slot, N, y->fp[0], (float*)y->data, ctl);
  CUDA_LAUNCH_CHECK();
}

__global__ void indices_kernel(const float* __restrict__ s, int32_t* __restrict__ o, int64_t N) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < N; i += (int64_t)gridDim.x * blockDim.x)
    o[i] = (int32_t)s[i * 3 + 2];
}

void vq_indices_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const int64_t N = y->ne[0];
  if (N == 0) return;
  indices_kernel<<<cu_blocks(N), CU_THREADS, 0, st->stream>>>((const float*)y->src[0]->data, (int32_t*)y->data, N);
  CUDA_LAUNCH_CHECK();
}

// ---------------------------------------------------------------- dense loss

__global__ void dense_stats_kernel(const float* __restrict__ z, const float* __restrict__ E,
                                   const float* __restrict__ search, const float* __restrict__ tau,
                                   const float* __restrict__ X, int64_t N, int64_t K, int64_t D, int64_t Dx, float lam_k,
                                   float win, float* __restrict__ out) {
  __shared__ TileSmem sm;
  __shared__ float ws[TR][TC + 1];
  __shared__ float lse_s[TR];
  __shared__ int ks_s[TR];
  const int t = threadIdx.x, ty = t / 16, tx = t % 16;
  const int64_t tiles = cdiv(K, TC), W = Dx + 2;
  const float inv_tau = 1.0f / fmaxf(tau[0], VQ_TAU_MIN);
  for (int64_t kt = blockIdx.x; kt < tiles; kt += gridDim.x) {  // uniform per block
    const int64_t k0 = kt * TC;
    float S = 0.0f, Q = 0.0f;
    for (int64_t r0 = 0; r0 < N; r0 += TR) {
      __syncthreads();  // the previous row tile's weights are no longer read
      if (t < TR) {
        const int64_t row = r0 + t;
        lse_s[t] = row < N ? search[row * 3 + 1] : 0.0f;
        ks_s[t] = row < N ? (int)search[row * 3 + 2] : -1;
      }
      float acc[2][4];
      tile_dots(z, N, E, K, D, r0, k0, sm, acc);  // synchronises: lse_s, ks_s visible after it
#pragma unroll
      for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
          const int r = ty * 2 + i, cc = tx + 16 * j;
          float w = 0.0f;
          if (r0 + r < N && k0 + cc < K) {
            w = pair_weight(tile_dist(sm, r, cc, acc[i][j]), inv_tau, lse_s[r], lam_k);
            if (k0 + cc == ks_s[r]) w = win;
          }
          ws[r][cc] = w;
        }
      __syncthreads();
      const int rows = (int)(N - r0 < TR ? N - r0 : TR);
      if (t < TC)
        for (int r = 0; r < rows; r++) {
          S += ws[r][t];
          Q = fmaf(ws[r][t], sm.zn[r], Q);
        }
      for (int64_t e = t; e < (int64_t)TC * Dx; e += NT) {  // out[k0 + cc, d] += sum_r w[r, cc] X[r0 + r, d]
        const int cc = (int)(e / Dx);
        const int64_t d = e % Dx, code = k0 + cc;
        if (code >= K) continue;
        float a = r0 == 0 ? 0.0f : out[code * W + d];
        for (int r = 0; r < rows; r++) a = fmaf(ws[r][cc], X[(r0 + r) * Dx + d], a);
        out[code * W + d] = a;
      }
    }
    if (t < TC && k0 + t < K) {
      out[(k0 + t) * W + Dx] = S;
      out[(k0 + t) * W + Dx + 1] = Q;
    }
  }
}

void vq_dense_stats_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const Tensor *z = y->src[0], *E = y->src[1], *X = y->src[4];
  const int64_t N = z->ne[0], K = E->ne[0], D = z->ne[1], Dx = X->ne[1];
  if (N == 0) {
    CUDA_CHECK(cudaMemsetAsync(y->data, 0, y->nbytes(), st->stream));
    return;
  }
  dense_stats_kernel<<<cu_blocks(cdiv(K, TC), 1), NT, 0, st->stream>>>(
      (const float*)z->data, (const float*)E->data, (const float*)y->src[2]->data, (const float*)y->src[3]->data,
      (const float*)X->data, N, K, D, Dx, y->fp[0] * (float)K, y->fp[1], (float*)y->data);
  CUDA_LAUNCH_CHECK();
}

__global__ void soft_mix_kernel(const float* __restrict__ z, const float* __restrict__ Ew,
                                const float* __restrict__ search, const float* __restrict__ tau,
                                const float* __restrict__ E, int64_t N, int64_t K, int64_t D, float lam_k,
                                float* __restrict__ out) {
  __shared__ TileSmem sm;
  __shared__ float ws[TR][TC + 1];
  __shared__ float lse_s[TR];
  __shared__ int ks_s[TR];
  const int t = threadIdx.x, ty = t / 16, tx = t % 16;
  const int64_t tiles = cdiv(K, TC), n_rb = cdiv(N, TR);
  const float inv_tau = 1.0f / fmaxf(tau[0], VQ_TAU_MIN);
  for (int64_t rb = blockIdx.x; rb < n_rb; rb += gridDim.x) {  // uniform per block
    const int64_t r0 = rb * TR;
    __syncthreads();
    if (t < TR) {
      const int64_t row = r0 + t;
      lse_s[t] = row < N ? search[row * 3 + 1] : 0.0f;
      ks_s[t] = row < N ? (int)search[row * 3 + 2] : -1;
    }
    for (int64_t kt = 0; kt < tiles; kt++) {
      const int64_t k0 = kt * TC;
      float acc[2][4];
      tile_dots(z, N, Ew, K, D, r0, k0, sm, acc);
#pragma unroll
      for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
          const int r = ty * 2 + i, cc = tx + 16 * j;
          float w = 0.0f;
          if (r0 + r < N && k0 + cc < K && k0 + cc != ks_s[r])
            w = pair_weight(tile_dist(sm, r, cc, acc[i][j]), inv_tau, lse_s[r], lam_k);
          ws[r][cc] = w;
        }
      __syncthreads();
      const int cols = (int)(K - k0 < TC ? K - k0 : TC);
      for (int64_t e = t; e < (int64_t)TR * D; e += NT) {  // out[r0 + r, d] += sum_c w[r, c] E[k0 + c, d]
        const int r = (int)(e / D);
        const int64_t d = e % D, row = r0 + r;
        if (row >= N) continue;
        float a = kt == 0 ? 0.0f : out[row * D + d];
        for (int cc = 0; cc < cols; cc++) a = fmaf(ws[r][cc], E[(k0 + cc) * D + d], a);
        out[row * D + d] = a;
      }
    }
  }
}

void vq_soft_mix_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const Tensor *z = y->src[0], *Ew = y->src[1];
  const int64_t N = z->ne[0], K = Ew->ne[0], D = z->ne[1];
  if (N == 0) return;
  soft_mix_kernel<<<cu_blocks(cdiv(N, TR), 1), NT, 0, st->stream>>>(
      (const float*)z->data, (const float*)Ew->data, (const float*)y->src[2]->data, (const float*)y->src[3]->data,
      (const float*)y->src[4]->data, N, K, D, y->fp[0] * (float)K, (float*)y->data);
  CUDA_LAUNCH_CHECK();
}

// One block: L = 1/(N D) sum_k (Q_k - 2 e_k.M_k + S_k |e_k|^2) in double, fixed order.
__global__ void dense_loss_kernel(const float* __restrict__ s, const float* __restrict__ E, int64_t K, int64_t D,
                                  int64_t N, float* __restrict__ out) {
  double acc = 0.0;
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
    const float* e = E + k * D;
    const float* r = s + k * (D + 2);
    double em = 0.0, ee = 0.0;
    for (int64_t d = 0; d < D; d++) {
      em += (double)e[d] * r[d];
      ee += (double)e[d] * e[d];
    }
    acc += (double)r[D + 1] - 2.0 * em + (double)r[D] * ee;
  }
  acc = block_allreduce(acc, CuAdd());
  if (threadIdx.x == 0) out[0] = (float)(acc / ((double)N * (double)D));
}

void vq_dense_loss_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const Tensor* E = y->src[1];
  dense_loss_kernel<<<1, CU_THREADS, 0, st->stream>>>((const float*)y->src[0]->data, (const float*)E->data, E->ne[0],
                                                       E->ne[1], y->ip[0], (float*)y->data);
  CUDA_LAUNCH_CHECK();
}

__global__ void dense_loss_bwd_kernel(const float* __restrict__ s, const float* __restrict__ E,
                                      const float* __restrict__ gy, int64_t K, int64_t D, float scale,
                                      float* __restrict__ o) {
  const float f = gy[0] * scale;
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < K * D; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t k = e / D, d = e % D;
    const float* r = s + k * (D + 2);
    o[e] = f * (r[D] * E[e] - r[d]);
  }
}

void vq_dense_loss_bwd_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const Tensor* E = y->src[1];
  const int64_t K = E->ne[0], D = E->ne[1];
  if (K * D == 0) return;
  dense_loss_bwd_kernel<<<cu_blocks(K * D), CU_THREADS, 0, st->stream>>>(
      (const float*)y->src[0]->data, (const float*)E->data, (const float*)y->src[2]->data, K, D,
      (float)(2.0 / ((double)y->ip[0] * (double)D)), (float*)y->data);
  CUDA_LAUNCH_CHECK();
}

// ---------------------------------------------------------------- statistics and state

__global__ void histogram_kernel(const int32_t* __restrict__ idx, int64_t n, int64_t K, int32_t* __restrict__ h,
                                 unsigned long long* err) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int32_t v = idx[i];
    if (v < 0 || v >= K) {
      cuda_report_bad_index(err, i, v);
      continue;
    }
    atomicAdd(&h[v], 1);  // integer: the counts do not depend on the order
  }
}

void vq_histogram_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const int64_t K = y->ne[0], n = y->src[0]->numel();
  CUDA_CHECK(cudaMemsetAsync(y->data, 0, (size_t)K * sizeof(int32_t), st->stream));
  if (n == 0) return;
  unsigned long long* err = cuda_err_slot(st, "vq_histogram", "index", "position", K);
  histogram_kernel<<<cu_blocks(n), CU_THREADS, 0, st->stream>>>((const int32_t*)y->src[0]->data, n, K, (int32_t*)y->data, err);
  CUDA_LAUNCH_CHECK();
}

__global__ void code_stats_kernel(const int32_t* __restrict__ h, int64_t K, float* __restrict__ out) {
  double total = 0.0, used = 0.0;
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
    total += h[k];
    used += h[k] > 0 ? 1.0 : 0.0;
  }
  total = block_allreduce(total, CuAdd());
  used = block_allreduce(used, CuAdd());
  double ent = 0.0;
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x)
    if (h[k] > 0) {
      const double p = h[k] / total;
      ent -= p * ::log(p);
    }
  ent = block_allreduce(ent, CuAdd());
  if (threadIdx.x == 0) {
    out[0] = (float)::exp(ent);
    out[1] = (float)used;
  }
}

void vq_code_stats_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  code_stats_kernel<<<1, CU_THREADS, 0, st->stream>>>((const int32_t*)y->src[0]->data, y->src[0]->numel(), (float*)y->data);
  CUDA_LAUNCH_CHECK();
}

__global__ void counts_add_kernel(int32_t* __restrict__ cnt, const int32_t* __restrict__ h, int64_t K) {
  for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < K; k += (int64_t)gridDim.x * blockDim.x) cnt[k] += h[k];
}

void vq_counts_add_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const int64_t K = y->numel();
  if (K == 0) return;
  counts_add_kernel<<<cu_blocks(K), CU_THREADS, 0, st->stream>>>((int32_t*)y->data, (const int32_t*)y->src[1]->data, K);
  CUDA_LAUNCH_CHECK();
}

__global__ void reservoir_copy_kernel(float* __restrict__ R, const int32_t* __restrict__ rs, const float* __restrict__ z,
                                      const int32_t* __restrict__ pi, int64_t M, int64_t D, int64_t N, int64_t n,
                                      unsigned long long* err) {
  const int64_t ptr = rs[0];
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n * D; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t j = e / D, d = e % D;
    const int32_t p = pi[j];
    if (p < 0 || p >= N) {
      if (d == 0) cuda_report_bad_index(err, j, p);
      continue;
    }
    R[((ptr + j) % M) * D + d] = z[(int64_t)p * D + d];
  }
}

__global__ void reservoir_state_kernel(int32_t* rs, int64_t M, int64_t n) {
  const int64_t ptr = rs[0], fill = rs[1];
  rs[0] = (int32_t)((ptr + n) % M);
  rs[1] = (int32_t)(fill + n < M ? fill + n : M);
}

void vq_reservoir_push_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const Tensor *z = y->src[2], *pt = y->src[3];
  const int64_t M = y->ne[0], D = y->ne[1], N = z->ne[0], n = pt->numel();
  if (n == 0) return;
  unsigned long long* err = cuda_err_slot(st, "vq_reservoir_push", "index", "position", N);
  int32_t* rs = (int32_t*)y->src[1]->data;
  if (D > 0) {
    reservoir_copy_kernel<<<cu_blocks(n * D), CU_THREADS, 0, st->stream>>>((float*)y->data, rs, (const float*)z->data,
                                                                          (const int32_t*)pt->data, M, D, N, n, err);
    CUDA_LAUNCH_CHECK();
  }
  reservoir_state_kernel<<<1, 1, 0, st->stream>>>(rs, M, n);
  CUDA_LAUNCH_CHECK();
}

__global__ void zero_counter_kernel(int32_t* c, const int32_t* __restrict__ ctl, int flag) {
  if (gated_off(ctl, flag)) return;
  c[0] = 0;
}

// one thread per code
__global__ void replace_kernel(float* __restrict__ E, int32_t* __restrict__ cnt, const float* __restrict__ R,
                               const int32_t* __restrict__ rs, const int32_t* __restrict__ ctl, int32_t* replaced,
                               int64_t K, int64_t D, int thr) {
  if (gated_off(ctl, VQ_FLAG_REPLACE)) return;
  const uint32_t fill = (uint32_t)rs[1];
  const uint64_t seed = vq_ctl_seed(ctl), step = vq_ctl_step(ctl);
  for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < K; k += (int64_t)gridDim.x * blockDim.x) {
    if (cnt[k] < thr) {
      atomicAdd(replaced, 1);
      if (fill > 0) {
        const uint32_t u = vq_draw_below(seed, VQ_STREAM_REPLACE, step, (uint64_t)k, fill);
        for (int64_t d = 0; d < D; d++) E[k * D + d] = R[(int64_t)u * D + d];
      } else {
        for (int64_t d = 0; d < D; d++)
          E[k * D + d] = (2.0f * philox_element(seed, VQ_STREAM_REPLACE_INIT, step, (uint64_t)(k * D + d), 0) - 1.0f) / (float)K;
      }
    }
    cnt[k] = 0;
  }
}

void vq_replace_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const int64_t K = y->ne[0], D = y->ne[1];
  const int32_t* ctl = (const int32_t*)y->src[4]->data;
  int32_t* replaced = (int32_t*)y->src[5]->data;
  zero_counter_kernel<<<1, 1, 0, st->stream>>>(replaced, ctl, VQ_FLAG_REPLACE);
  CUDA_LAUNCH_CHECK();
  if (K == 0) return;
  replace_kernel<<<cu_blocks(K), CU_THREADS, 0, st->stream>>>((float*)y->data, (int32_t*)y->src[1]->data,
                                                               (const float*)y->src[2]->data, (const int32_t*)y->src[3]->data,
                                                               ctl, replaced, K, D, y->ip[0]);
  CUDA_LAUNCH_CHECK();
}

__global__ void ema_sizes_kernel(float* __restrict__ n, const int32_t* __restrict__ h, int64_t K, float gam) {
  for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < K; k += (int64_t)gridDim.x * blockDim.x)
    n[k] = gam * n[k] + (1.0f - gam) * (float)h[k];
}

__global__ void ema_total_kernel(const float* __restrict__ n, int64_t K, double* __restrict__ total) {
  double acc = 0.0;
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) acc += n[k];
  acc = block_allreduce(acc, CuAdd());
  if (threadIdx.x == 0) total[0] = acc;
}

// one thread per code
__global__ void ema_codes_kernel(float* __restrict__ E, float* __restrict__ n, float* __restrict__ m,
                                 const float* __restrict__ sums, const float* __restrict__ z,
                                 const double* __restrict__ total_p, const int32_t* __restrict__ ctl,
                                 int32_t* restarts, int64_t K, int64_t D, int64_t N, float gam, float eps, float thr) {
  const double total = total_p[0];
  const uint64_t seed = vq_ctl_seed(ctl), step = vq_ctl_step(ctl);
  for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < K; k += (int64_t)gridDim.x * blockDim.x) {
    const float nk = (float)(((double)n[k] + eps) / (total + (double)K * eps) * total);
    for (int64_t d = 0; d < D; d++) {
      const float mv = gam * m[k * D + d] + (1.0f - gam) * sums[k * D + d];
      m[k * D + d] = mv;
      E[k * D + d] = mv / nk;
    }
    if (n[k] < thr && N > 0) {
      atomicAdd(restarts, 1);
      const float* zr = z + (int64_t)vq_draw_below(seed, VQ_STREAM_EMA, step, (uint64_t)k, (uint32_t)N) * D;
      for (int64_t d = 0; d < D; d++) {
        E[k * D + d] = zr[d];
        m[k * D + d] = zr[d] * thr;
      }
      n[k] = thr;
    }
  }
}

void vq_ema_update_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const int64_t K = y->ne[0], D = y->ne[1], N = y->src[5]->ne[0];
  int32_t* restarts = (int32_t*)y->src[7]->data;
  CUDA_CHECK(cudaMemsetAsync(restarts, 0, sizeof(int32_t), st->stream));
  if (K == 0) return;
  if (!c.scratch || c.scratch_bytes < sizeof(double)) fail("vq_ema_update: needs kernel scratch on cuda");
  double* total = (double*)c.scratch;
  float* n = (float*)y->src[1]->data;
  ema_sizes_kernel<<<cu_blocks(K), CU_THREADS, 0, st->stream>>>(n, (const int32_t*)y->src[3]->data, K, y->fp[0]);
  CUDA_LAUNCH_CHECK();
  ema_total_kernel<<<1, CU_THREADS, 0, st->stream>>>(n, K, total);
  CUDA_LAUNCH_CHECK();
  ema_codes_kernel<<<cu_blocks(K), CU_THREADS, 0, st->stream>>>(
      (float*)y->data, n, (float*)y->src[2]->data, (const float*)y->src[4]->data, (const float*)y->src[5]->data, total,
      (const int32_t*)y->src[6]->data, restarts, K, D, N, y->fp[0], y->fp[1], y->fp[2]);
  CUDA_LAUNCH_CHECK();
}

}  // namespace

size_t vq_detail::cuda_scratch(const Tensor* y) {
  auto rows = [&](int i) { return y->src[i]->ne[0]; };
  switch (y->op) {
    case OP_VQ_NEAREST: return search_bytes(rows(0), rows(1));
    case OP_VQ_LSE_REFRESH: return search_bytes(rows(1), rows(2));
    case OP_VQ_TAU_CALIBRATE: return 2 * sizeof(float);
    case OP_VQ_EMA_UPDATE: return sizeof(double);
    default: return 0;
  }
}

void register_vq_cuda() {
  struct Row {
    int id;
    KernelFn k;
  };
  const Row rows[] = {
      {OP_VQ_NEAREST, vq_nearest_cuda},
      {OP_VQ_INDICES, vq_indices_cuda},
      {OP_VQ_LSE_REFRESH, vq_lse_refresh_cuda},
      {OP_VQ_DENSE_STATS, vq_dense_stats_cuda},
      {OP_VQ_DENSE_LOSS, vq_dense_loss_cuda},
      {OP_VQ_DENSE_LOSS_BWD, vq_dense_loss_bwd_cuda},
      {OP_VQ_SOFT_MIX, vq_soft_mix_cuda},
      {OP_VQ_HISTOGRAM, vq_histogram_cuda},
      {OP_VQ_CODE_STATS, vq_code_stats_cuda},
      {OP_VQ_COUNTS_ADD, vq_counts_add_cuda},
      {OP_VQ_RESERVOIR_PUSH, vq_reservoir_push_cuda},
      {OP_VQ_REPLACE, vq_replace_cuda},
      {OP_VQ_TAU_CALIBRATE, vq_tau_calibrate_cuda},
      {OP_VQ_EMA_UPDATE, vq_ema_update_cuda},
  };
  for (const Row& r : rows) {
    OpDef d;
    d.kernel[BK_CUDA] = r.k;
    op_register(r.id, d);
  }
}

}  // namespace nsvq
