// ops/cuda/optim.cu — CUDA kernels of the Adam/AdamW update (in place on p, m, v) and of the
// Philox random fill. One thread per element, no reductions. The update is written with explicit
// round-to-nearest intrinsics (no FMA contraction) and IEEE division/sqrt, so it repeats the CPU's
// float arithmetic step by step. random uses philox_block (engine/rng.h), the CPU's function:
// uniform values are bitwise equal to the CPU's; normals go through logf/sinf/cosf, whose CUDA and
// glibc versions can differ in the last bit.
#include "engine/cuda/cuda_common.cuh"
#include "engine/rng.h"
#include "ops/optim.h"
#include "ops/ops_internal.h"

namespace nsvq {

// hp: f32 [ADAM_HP_COUNT] on the device; gscale: nullptr or a device scalar
__global__ void adamw_kernel(float* __restrict__ p, const float* __restrict__ gr, float* __restrict__ m,
                             float* __restrict__ v, const float* __restrict__ hp, const float* __restrict__ gscale,
                             int64_t n) {
  float gs = gscale ? gscale[0] : 1.0f;
  if (!isfinite(gs)) return;  // a non-finite gradient norm: the step is skipped (p, m, v unchanged)
  float lr = hp[HP_LR], b1 = hp[HP_B1], b2 = hp[HP_B2], eps = hp[HP_EPS], wd = hp[HP_WD];
  float bc1 = hp[HP_BC1], bc2 = hp[HP_BC2];
  bool decoupled = hp[HP_DECOUPLED] != 0.0f;
  float omb1 = __fsub_rn(1.0f, b1), omb2 = __fsub_rn(1.0f, b2);
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float pi = p[i];
    float g = __fmul_rn(gs, gr[i]);
    if (!decoupled) g = __fadd_rn(g, __fmul_rn(wd, pi));
    float mi = __fadd_rn(__fmul_rn(b1, m[i]), __fmul_rn(omb1, g));
    float vi = __fadd_rn(__fmul_rn(b2, v[i]), __fmul_rn(__fmul_rn(omb2, g), g));
    m[i] = mi;
    v[i] = vi;
    float upd = __fdiv_rn(__fdiv_rn(mi, bc1), __fadd_rn(__fsqrt_rn(__fdiv_rn(vi, bc2)), eps));
    if (decoupled) upd = __fadd_rn(upd, __fmul_rn(wd, pi));
    p[i] = __fsub_rn(pi, __fmul_rn(lr, upd));
  }
}

static void adamw_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  int64_t n = y->numel();
  if (n == 0) return;
  const float* gscale = y->n_src > 5 ? (const float*)y->src[5]->data : nullptr;
  adamw_kernel<<<cu_blocks(n), CU_THREADS, 0, st->stream>>>(
      (float*)y->src[0]->data, (const float*)y->src[1]->data, (float*)y->src[2]->data, (float*)y->src[3]->data,
      (const float*)y->src[4]->data, gscale, n);
  CUDA_LAUNCH_CHECK();
}

// ctr: i32 [4] on the device = {seed_lo, seed_hi, step_lo, step_hi}. One thread per Philox block:
// elements 4b .. 4b+3 (as the CPU fills them).
__global__ void random_kernel(float* __restrict__ o, const int32_t* __restrict__ ctr, int64_t n, uint32_t stream,
                              int kind) {
  uint64_t seed = (uint32_t)ctr[0] | ((uint64_t)(uint32_t)ctr[1] << 32);
  uint64_t step = (uint32_t)ctr[2] | ((uint64_t)(uint32_t)ctr[3] << 32);
  int64_t nblk = (n + 3) / 4;
  for (int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; b < nblk; b += (int64_t)gridDim.x * blockDim.x) {
    float v[4];
    philox_block(seed, stream, step, (uint64_t)b, kind, v);
    for (int w = 0; w < 4 && b * 4 + w < n; w++) o[b * 4 + w] = v[w];
  }
}

static void random_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  int64_t n = y->numel();
  if (n == 0) return;
  random_kernel<<<cu_blocks((n + 3) / 4), CU_THREADS, 0, st->stream>>>((float*)y->data, (const int32_t*)y->src[0]->data,
                                                                       n, (uint32_t)y->ip[1], y->ip[0]);
  CUDA_LAUNCH_CHECK();
}

void register_optim_cuda() {
  OpDef d;
  d.kernel[BK_CUDA] = adamw_cuda; op_register(OP_ADAMW, d);
  d.kernel[BK_CUDA] = random_cuda; op_register(OP_RANDOM, d);
}

}  // namespace nsvq
