// ops/cuda/norm.cu — CUDA kernels of the normalisation family (group / layer / batch norm; layout in
// ops/norm.cpp): forward (+ optional SiLU), input gradient, gamma/beta gradient, running statistics.
//
// Group k holds R segments of Lseg contiguous elements (segment r at k*Lseg + r*Sseg); element l of
// a segment belongs to channel (k % G)*Cg + l/S. Every kernel gives each group to one thread group
// (a warp when the group has <= 1024 elements, else a 256-thread block) and recomputes the group's
// statistics as the CPU does: mean = sum / n, then the centred sum of squares, both accumulated in
// double with fixed-order trees; var is biased, rstd = 1 / sqrt(var + eps) in double. No atomics.
// gamma/beta gradient: per-(group, channel) partials in ExecCtx::scratch (the CPU's
// norm_affine_scratch: K*Cg*2 doubles), then one thread per channel sums its groups in order.
#include <cmath>
#include "engine/cuda/cuda_common.cuh"
#include "ops/elementwise_math.h"
#include "ops/ops_internal.h"

namespace nsvq {

namespace {

struct NormD {
  int64_t K, R, Lseg, Sseg, G, Cg, S, C;
  int silu;
  float eps;
};

NormD norm_desc(const Tensor* t) {
  NormD d;
  d.K = t->ip[0]; d.R = t->ip[1]; d.Lseg = t->ip[2]; d.Sseg = t->ip[3];
  d.G = t->ip[4]; d.Cg = t->ip[5]; d.S = t->ip[6]; d.C = t->ip[7];
  d.silu = t->ip[8];
  d.eps = t->fp[0];
  return d;
}

// offset of element e (in [0, R*Lseg)) of group k, and its channel
__device__ __forceinline__ int64_t norm_off(const NormD& d, int64_t k, int64_t e, int64_t& ch) {
  int64_t r = d.R == 1 ? 0 : e / d.Lseg, l = e - r * d.Lseg;
  ch = (k % d.G) * d.Cg + (d.S == 1 ? l : l / d.S);
  return k * d.Lseg + r * d.Sseg + l;
}

// Mean, rstd (with eps) and biased variance of group k, for a group of GT threads (t = 0..GT-1).
template <int GT>
__device__ void norm_group_stats(const NormD& d, const float* __restrict__ x, int64_t k, float eps, float& mean,
                                 float& rstd, double& var) {
  int t = GT == 32 ? (threadIdx.x & 31) : threadIdx.x;
  int64_t n = d.R * d.Lseg;
  double cnt = (double)d.R * (double)d.Lseg;
  double s = 0.0;
  int64_t ch;
  for (int64_t e = t; e < n; e += GT) s += (double)x[norm_off(d, k, e, ch)];
  s = group_allreduce<GT>(s, CuAdd());
  mean = (float)(s / cnt);
  double v = 0.0;
  for (int64_t e = t; e < n; e += GT) {
    double dd = (double)(x[norm_off(d, k, e, ch)] - mean);
    v += dd * dd;
  }
  v = group_allreduce<GT>(v, CuAdd());
  var = v / cnt;
  rstd = (float)(1.0 / ::sqrt(var + (double)eps));  // ::, not nsvq::sqrt (an op builder)
}

// the gradient reaching the normalised value xhat * gamma + beta (through the SiLU if fused)
__device__ __forceinline__ float norm_pre_grad(int silu, float gy, float xhat, float gam, float bet) {
  if (!silu) return gy;
  float v = xhat * gam + bet;
  float s = 1.0f / (1.0f + nsvq_expf(-v));
  return gy * s * (1.0f + v * (1.0f - s));
}

// loop over the groups of this thread group (a warp: 8 groups per block; a block: one)
#define NORM_GROUP_LOOP(GT, k, K)                                                              \
  constexpr int PER_BLOCK = GT == 32 ? CU_THREADS / 32 : 1;                                    \
  int t = GT == 32 ? (threadIdx.x & 31) : threadIdx.x;                                         \
  for (int64_t k = (int64_t)blockIdx.x * PER_BLOCK + (GT == 32 ? threadIdx.x / 32 : 0); k < (K); \
       k += (int64_t)gridDim.x * PER_BLOCK)

template <int GT>
__global__ void norm_fwd_kernel(float* __restrict__ y, const float* __restrict__ x, const float* __restrict__ ga,
                                const float* __restrict__ be, NormD d) {
  NORM_GROUP_LOOP(GT, k, d.K) {
    float mean, rstd;
    double var;
    norm_group_stats<GT>(d, x, k, d.eps, mean, rstd, var);
    int64_t n = d.R * d.Lseg, ch;
    for (int64_t e = t; e < n; e += GT) {
      int64_t o = norm_off(d, k, e, ch);
      if (d.S == 1 && !d.silu) {  // the CPU's affine_row form
        y[o] = (x[o] - mean) * rstd * ga[ch] + be[ch];
      } else {  // the CPU's affine_run form: x * a + b, a = rstd * gamma, b = beta - mean * a
        float a = rstd * ga[ch];
        float v = x[o] * a + (be[ch] - mean * a);
        y[o] = d.silu ? v / (1.0f + nsvq_expf(-v)) : v;
      }
    }
  }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dL/d(normalised) * gamma
template <int GT>
__global__ void norm_bwd_kernel(float* __restrict__ dx, const float* __restrict__ x, const float* __restrict__ ga,
                                const float* __restrict__ be, const float* __restrict__ gy, NormD d) {
  NORM_GROUP_LOOP(GT, k, d.K) {
    float mean, rstd;
    double var;
    norm_group_stats<GT>(d, x, k, d.eps, mean, rstd, var);
    int64_t n = d.R * d.Lseg, ch;
    double cnt = (double)d.R * (double)d.Lseg;
    double s1 = 0.0, s2 = 0.0;
    for (int64_t e = t; e < n; e += GT) {
      int64_t o = norm_off(d, k, e, ch);
      float xh = (x[o] - mean) * rstd;
      float gg = norm_pre_grad(d.silu, gy[o], xh, ga[ch], be[ch]) * ga[ch];
      s1 += (double)gg;
      s2 += (double)gg * (double)xh;
    }
    s1 = group_allreduce<GT>(s1, CuAdd());
    s2 = group_allreduce<GT>(s2, CuAdd());
    float m1 = (float)(s1 / cnt), m2 = (float)(s2 / cnt);
    for (int64_t e = t; e < n; e += GT) {
      int64_t o = norm_off(d, k, e, ch);
      float xh = (x[o] - mean) * rstd;
      float gg = norm_pre_grad(d.silu, gy[o], xh, ga[ch], be[ch]) * ga[ch];
      dx[o] = rstd * (gg - m1 - xh * m2);
    }
  }
}

// part[k][cl] = {sum g0 * xhat, sum g0} over channel cl's elements of group k (block per group).
__global__ void norm_affine_part_kernel(double* __restrict__ part, const float* __restrict__ x,
                                        const float* __restrict__ ga, const float* __restrict__ be,
                                        const float* __restrict__ gy, NormD d) {
  int t = threadIdx.x, warp = t >> 5, lane = t & 31, nwarps = blockDim.x >> 5;
  int64_t per = d.R * d.S;  // elements of one channel in one group
  for (int64_t k = blockIdx.x; k < d.K; k += gridDim.x) {  // uniform per block
    float mean, rstd;
    double var;
    norm_group_stats<CU_THREADS>(d, x, k, d.eps, mean, rstd, var);
    int64_t c0 = (k % d.G) * d.Cg;
    double* p = part + k * d.Cg * 2;
    // element j (in [0, per)) of channel cl: segment r = j / S, position s = j % S
    auto term = [&](int64_t cl, int64_t j, double& sg, double& sb) {
      int64_t r = j / d.S, s = j - r * d.S;
      int64_t o = k * d.Lseg + r * d.Sseg + cl * d.S + s, ch = c0 + cl;
      float xh = (x[o] - mean) * rstd;
      float g0 = norm_pre_grad(d.silu, gy[o], xh, ga[ch], be[ch]);
      sg += (double)g0 * (double)xh;
      sb += (double)g0;
    };
    if (d.Cg == 1) {  // one channel per group (batch norm): the whole block on it
      double sg = 0.0, sb = 0.0;
      for (int64_t j = t; j < per; j += blockDim.x) term(0, j, sg, sb);
      sg = block_allreduce(sg, CuAdd());
      sb = block_allreduce(sb, CuAdd());
      if (t == 0) {
        p[0] = sg;
        p[1] = sb;
      }
    } else if (per >= 32) {  // a warp per channel
      for (int64_t cl = warp; cl < d.Cg; cl += nwarps) {
        double sg = 0.0, sb = 0.0;
        for (int64_t j = lane; j < per; j += 32) term(cl, j, sg, sb);
        sg = warp_reduce(sg, CuAdd());
        sb = warp_reduce(sb, CuAdd());
        if (lane == 0) {
          p[cl * 2] = sg;
          p[cl * 2 + 1] = sb;
        }
      }
    } else {  // few elements per channel (layer norm: one): a thread per channel, in order
      for (int64_t cl = t; cl < d.Cg; cl += blockDim.x) {
        double sg = 0.0, sb = 0.0;
        for (int64_t j = 0; j < per; j++) term(cl, j, sg, sb);
        p[cl * 2] = sg;
        p[cl * 2 + 1] = sb;
      }
    }
    __syncthreads();  // the next group's statistics reuse the reduction buffers
  }
}

// o[ch] = dgamma, o[C + ch] = dbeta: the partials of the K/G groups sharing channel ch, in order
__global__ void norm_affine_sum_kernel(float* __restrict__ o, const double* __restrict__ part, NormD d) {
  int64_t A = d.K / d.G;
  for (int64_t ch = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; ch < d.C; ch += (int64_t)gridDim.x * blockDim.x) {
    int64_t gi = ch / d.Cg, cl = ch % d.Cg;
    double sg = 0.0, sb = 0.0;
    for (int64_t a = 0; a < A; a++) {
      const double* p = part + ((a * d.G + gi) * d.Cg + cl) * 2;
      sg += p[0];
      sb += p[1];
    }
    o[ch] = (float)sg;
    o[d.C + ch] = (float)sb;
  }
}

// running_mean/var <- (1 - m) * running + m * batch statistic (unbiased variance)
template <int GT>
__global__ void norm_running_kernel(float* __restrict__ rm, float* __restrict__ rv, const float* __restrict__ x, NormD d,
                                    float m) {
  NORM_GROUP_LOOP(GT, k, d.K) {
    float mean, rstd;
    double var;
    norm_group_stats<GT>(d, x, k, 0.0f, mean, rstd, var);
    if (t == 0) {
      double n = (double)d.R * (double)d.Lseg;
      rm[k] = (1.0f - m) * rm[k] + m * mean;
      rv[k] = (1.0f - m) * rv[k] + m * (float)(var * n / (n - 1.0));
    }
  }
}

bool norm_small(const NormD& d) { return d.R * d.Lseg <= 1024; }
unsigned int norm_grid(const NormD& d) { return norm_small(d) ? cu_blocks(d.K, CU_THREADS / 32) : cu_blocks(d.K, 1); }

void norm_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  NormD d = norm_desc(y);
  if (d.K == 0 || d.R * d.Lseg == 0) return;
  const float *x = (const float*)y->src[0]->data, *ga = (const float*)y->src[1]->data,
              *be = (const float*)y->src[2]->data;
  if (norm_small(d)) norm_fwd_kernel<32><<<norm_grid(d), CU_THREADS, 0, st->stream>>>((float*)y->data, x, ga, be, d);
  else norm_fwd_kernel<CU_THREADS><<<norm_grid(d), CU_THREADS, 0, st->stream>>>((float*)y->data, x, ga, be, d);
  CUDA_LAUNCH_CHECK();
}

void norm_bwd_cuda(Tensor* dx, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  NormD d = norm_desc(dx);
  if (d.K == 0 || d.R * d.Lseg == 0) return;
  const float *x = (const float*)dx->src[0]->data, *ga = (const float*)dx->src[1]->data,
              *be = (const float*)dx->src[2]->data, *gy = (const float*)dx->src[3]->data;
  if (norm_small(d))
    norm_bwd_kernel<32><<<norm_grid(d), CU_THREADS, 0, st->stream>>>((float*)dx->data, x, ga, be, gy, d);
  else
    norm_bwd_kernel<CU_THREADS><<<norm_grid(d), CU_THREADS, 0, st->stream>>>((float*)dx->data, x, ga, be, gy, d);
  CUDA_LAUNCH_CHECK();
}

void norm_bwd_affine_cuda(Tensor* da, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  NormD d = norm_desc(da);
  float* o = (float*)da->data;
  if (d.C == 0) return;
  if (d.K == 0 || d.R * d.Lseg == 0) {
    CUDA_CHECK(cudaMemsetAsync(o, 0, (size_t)(2 * d.C) * sizeof(float), st->stream));
    return;
  }
  size_t need = (size_t)d.K * (size_t)d.Cg * 2 * sizeof(double);
  if (!c.scratch || c.scratch_bytes < need)
    fail("norm_bwd_affine: %s needs %zu bytes of kernel scratch on cuda", da->desc().c_str(), need);
  const float *x = (const float*)da->src[0]->data, *ga = (const float*)da->src[1]->data,
              *be = (const float*)da->src[2]->data, *gy = (const float*)da->src[3]->data;
  double* part = (double*)c.scratch;
  norm_affine_part_kernel<<<cu_blocks(d.K, 1), CU_THREADS, 0, st->stream>>>(part, x, ga, be, gy, d);
  CUDA_LAUNCH_CHECK();
  norm_affine_sum_kernel<<<cu_blocks(d.C), CU_THREADS, 0, st->stream>>>(o, part, d);
  CUDA_LAUNCH_CHECK();
}

void norm_running_update_cuda(Tensor* up, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  NormD d = norm_desc(up);
  if (d.K == 0 || d.R * d.Lseg == 0) return;
  const float* x = (const float*)up->src[0]->data;
  float* rm = (float*)up->src[1]->data;
  float* rv = (float*)up->src[2]->data;
  if (norm_small(d)) norm_running_kernel<32><<<norm_grid(d), CU_THREADS, 0, st->stream>>>(rm, rv, x, d, up->fp[0]);
  else norm_running_kernel<CU_THREADS><<<norm_grid(d), CU_THREADS, 0, st->stream>>>(rm, rv, x, d, up->fp[0]);
  CUDA_LAUNCH_CHECK();
}

}  // namespace

// Not yet called by ops_init(): needs `void register_norm_cuda();` in ops/ops_internal.h and a call
// next to the other register_*_cuda() in ops/ops.cpp.
void register_norm_cuda() {
  OpDef d;
  d.kernel[BK_CUDA] = norm_cuda; op_register(OP_NORM, d);
  OpDef b;
  b.kernel[BK_CUDA] = norm_bwd_cuda; op_register(OP_NORM_BWD, b);
  OpDef a;
  a.kernel[BK_CUDA] = norm_bwd_affine_cuda; op_register(OP_NORM_BWD_AFFINE, a);
  OpDef r;
  r.kernel[BK_CUDA] = norm_running_update_cuda; op_register(OP_NORM_RUNNING_UPDATE, r);
}

}  // namespace nsvq
