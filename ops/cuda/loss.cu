// ops/cuda/loss.cu — CUDA kernels of the L1/MSE losses and their gradient, and of cross-entropy
// and its gradient. Deterministic, no atomics:
//   loss: pass 1 reduces each 4096-element chunk (the CPU's LCH) to a float partial with a fixed
//     block tree, stored as double in ExecCtx::scratch (the CPU's loss_scratch gives ceil(n/4096)+1
//     doubles); pass 2, one block, sums the partials in double in a fixed order: mean = tot / n.
//   cross_entropy: one group per row writes the row's loss (log-sum-exp - x[label]) into scratch
//     (ce_scratch: N floats), then one block sums them in double: mean = tot / N.
//   cross_entropy_bwd: one group per row, the CPU's formula: gs * exp(x - lse), minus gs at the label,
//     lse = log(sum exp(x - max)) + max.
// Products and sums are written with __fmul_rn/__fadd_rn where the CPU's scalar code does plain
// float maths, so nvcc's FMA contraction does not change the rounding.
// Bad labels: the row is skipped and the first bad row reported through an error slot; the backend
// throws "cross_entropy: label V at row R out of range [0, C)" at the next sync.
#include <cmath>
#include "engine/cuda/cuda_common.cuh"
#include "ops/ops_internal.h"

namespace nsvq {

static const int64_t LCH = 4096;  // the CPU's chunk length

// part[ch] = sum over chunk ch of |a-b| (L1) or (a-b)^2 (MSE), in float
__global__ void loss_chunks_kernel(const float* __restrict__ a, const float* __restrict__ b, double* __restrict__ part,
                                   int64_t n, int64_t chunk, int64_t nch, int l1) {
  for (int64_t ch = blockIdx.x; ch < nch; ch += gridDim.x) {  // uniform per block
    int64_t s = ch * chunk, e = n - s < chunk ? n : s + chunk;
    float acc = 0.0f;
    for (int64_t i = s + threadIdx.x; i < e; i += blockDim.x) {
      float d = __fsub_rn(a[i], b[i]);
      acc = __fadd_rn(acc, l1 ? fabsf(d) : __fmul_rn(d, d));
    }
    acc = block_allreduce(acc, CuAdd());
    if (threadIdx.x == 0) part[ch] = (double)acc;
  }
}

// One block: out[0] = (float)(sum(part) / n) (double accumulation, fixed order); n == 0 gives 0.
__global__ void mean_partials_kernel(const double* __restrict__ part, int64_t np, int64_t n, float* __restrict__ out) {
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < np; i += blockDim.x) acc += part[i];
  acc = block_allreduce(acc, CuAdd());
  if (threadIdx.x == 0) out[0] = n ? (float)(acc / (double)n) : 0.0f;
}

// same from float partials (cross-entropy row losses)
__global__ void mean_rows_kernel(const float* __restrict__ part, int64_t np, float* __restrict__ out) {
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < np; i += blockDim.x) acc += (double)part[i];
  acc = block_allreduce(acc, CuAdd());
  if (threadIdx.x == 0) out[0] = np ? (float)(acc / (double)np) : 0.0f;
}

static void loss_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const float* a = (const float*)y->src[0]->data;
  const float* b = (const float*)y->src[1]->data;
  float* out = (float*)y->data;
  int64_t n = y->src[0]->numel();
  if (n == 0) {
    CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(float), st->stream));
    return;
  }
  // chunks of LCH (larger only if the scratch were ever too small for that)
  int64_t cap = (int64_t)(c.scratch_bytes / sizeof(double));
  if (!c.scratch || cap < 1) fail("loss: %s needs kernel scratch on cuda", y->desc().c_str());
  int64_t chunk = LCH;
  while ((n + chunk - 1) / chunk > cap) chunk *= 2;
  int64_t nch = (n + chunk - 1) / chunk;
  double* part = (double*)c.scratch;
  loss_chunks_kernel<<<cu_blocks(nch, 1), CU_THREADS, 0, st->stream>>>(a, b, part, n, chunk, nch, y->ip[0] == LOSS_L1);
  CUDA_LAUNCH_CHECK();
  mean_partials_kernel<<<1, 1024, 0, st->stream>>>(part, nch, n, out);
  CUDA_LAUNCH_CHECK();
}

// o = gs * sign(a-b) (L1) or gs * 2 * (a-b) (MSE), gs = gy / n read on the device
__global__ void loss_bwd_kernel(float* __restrict__ o, const float* __restrict__ a, const float* __restrict__ b,
                                const float* __restrict__ gy, int64_t n, int l1) {
  float gs = __fdiv_rn(gy[0], (float)n);
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float d = __fsub_rn(a[i], b[i]);
    o[i] = l1 ? __fmul_rn(gs, (float)((d > 0.0f) - (d < 0.0f))) : __fmul_rn(__fmul_rn(gs, 2.0f), d);
  }
}

static void loss_bwd_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  int64_t n = y->numel();
  if (n == 0) return;
  loss_bwd_kernel<<<cu_blocks(n), CU_THREADS, 0, st->stream>>>((float*)y->data, (const float*)y->src[0]->data,
                                                               (const float*)y->src[1]->data,
                                                               (const float*)y->src[2]->data, n, y->ip[0] == LOSS_L1);
  CUDA_LAUNCH_CHECK();
}

// ---------------------------------------------------------------- cross-entropy

// rowloss[r] = log(sum_j exp(x[r,j] - max)) + max - x[r, label[r]]
template <int G>
__global__ void ce_rows_kernel(const float* __restrict__ x, const int32_t* __restrict__ lab, float* __restrict__ rowloss,
                               int64_t N, int64_t C, unsigned long long* err) {
  constexpr int PER_BLOCK = G == 32 ? CU_THREADS / 32 : 1;
  int t = G == 32 ? (threadIdx.x & 31) : threadIdx.x;
  int64_t first = (int64_t)blockIdx.x * PER_BLOCK + (G == 32 ? threadIdx.x / 32 : 0);
  for (int64_t r = first; r < N; r += (int64_t)gridDim.x * PER_BLOCK) {  // uniform per group
    int32_t l = lab[r];
    if (l < 0 || l >= C) {
      if (t == 0) {
        cuda_report_bad_index(err, r, l);
        rowloss[r] = 0.0f;
      }
      continue;
    }
    const float* row = x + r * C;
    float mx = -INFINITY;
    for (int64_t j = t; j < C; j += G) mx = row[j] > mx ? row[j] : mx;
    mx = group_allreduce<G>(mx, CuMax());
    float s = 0.0f;
    for (int64_t j = t; j < C; j += G) s = __fadd_rn(s, expf(__fsub_rn(row[j], mx)));
    s = group_allreduce<G>(s, CuAdd());
    if (t == 0) rowloss[r] = __fsub_rn(__fadd_rn(logf(s), mx), row[l]);
  }
}

static void cross_entropy_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const Tensor* lg = y->src[0];
  int64_t N = lg->ne[0], C = lg->ne[1];
  float* out = (float*)y->data;
  if (N == 0) {
    CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(float), st->stream));
    return;
  }
  if (!c.scratch || c.scratch_bytes < (size_t)N * sizeof(float))
    fail("cross_entropy: %s needs %lld bytes of kernel scratch on cuda", y->desc().c_str(), (long long)(N * sizeof(float)));
  const float* x = (const float*)lg->data;
  const int32_t* lab = (const int32_t*)y->src[1]->data;
  float* rowloss = (float*)c.scratch;
  unsigned long long* err = cuda_err_slot(st, "cross_entropy", "label", "row", C);
  if (C <= 1024)
    ce_rows_kernel<32><<<cu_blocks(N, CU_THREADS / 32), CU_THREADS, 0, st->stream>>>(x, lab, rowloss, N, C, err);
  else
    ce_rows_kernel<CU_THREADS><<<cu_blocks(N, 1), CU_THREADS, 0, st->stream>>>(x, lab, rowloss, N, C, err);
  CUDA_LAUNCH_CHECK();
  mean_rows_kernel<<<1, 1024, 0, st->stream>>>(rowloss, N, out);
  CUDA_LAUNCH_CHECK();
}

// o[r, j] = gs * exp(x[r,j] - lse) - (j == label ? gs : 0), gs = gy / N
template <int G>
__global__ void ce_bwd_kernel(float* __restrict__ o, const float* __restrict__ x, const int32_t* __restrict__ lab,
                              const float* __restrict__ gy, int64_t N, int64_t C, unsigned long long* err) {
  constexpr int PER_BLOCK = G == 32 ? CU_THREADS / 32 : 1;
  int t = G == 32 ? (threadIdx.x & 31) : threadIdx.x;
  int64_t first = (int64_t)blockIdx.x * PER_BLOCK + (G == 32 ? threadIdx.x / 32 : 0);
  float gs = __fdiv_rn(gy[0], (float)N);
  for (int64_t r = first; r < N; r += (int64_t)gridDim.x * PER_BLOCK) {
    int32_t l = lab[r];
    if (l < 0 || l >= C) {
      if (t == 0) cuda_report_bad_index(err, r, l);
      continue;
    }
    const float* row = x + r * C;
    float* orow = o + r * C;
    float mx = -INFINITY;
    for (int64_t j = t; j < C; j += G) mx = row[j] > mx ? row[j] : mx;
    mx = group_allreduce<G>(mx, CuMax());
    float s = 0.0f;
    for (int64_t j = t; j < C; j += G) s = __fadd_rn(s, expf(__fsub_rn(row[j], mx)));
    s = group_allreduce<G>(s, CuAdd());
    float lse = __fadd_rn(logf(s), mx);
    for (int64_t j = t; j < C; j += G) {
      float v = __fmul_rn(gs, expf(__fsub_rn(row[j], lse)));
      orow[j] = j == l ? __fsub_rn(v, gs) : v;
    }
  }
}

static void cross_entropy_bwd_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  int64_t N = y->ne[0], C = y->ne[1];
  if (N == 0) return;
  const float* x = (const float*)y->src[0]->data;
  const int32_t* lab = (const int32_t*)y->src[1]->data;
  const float* gy = (const float*)y->src[2]->data;
  float* o = (float*)y->data;
  unsigned long long* err = cuda_err_slot(st, "cross_entropy", "label", "row", C);
  if (C <= 1024)
    ce_bwd_kernel<32><<<cu_blocks(N, CU_THREADS / 32), CU_THREADS, 0, st->stream>>>(o, x, lab, gy, N, C, err);
  else
    ce_bwd_kernel<CU_THREADS><<<cu_blocks(N, 1), CU_THREADS, 0, st->stream>>>(o, x, lab, gy, N, C, err);
  CUDA_LAUNCH_CHECK();
}

void register_loss_cuda() {
  OpDef d;
  d.kernel[BK_CUDA] = loss_cuda; op_register(OP_LOSS, d);
  OpDef e;
  e.kernel[BK_CUDA] = loss_bwd_cuda; op_register(OP_LOSS_BWD, e);
  OpDef f;
  f.kernel[BK_CUDA] = cross_entropy_cuda; op_register(OP_CROSS_ENTROPY, f);
  OpDef h;
  h.kernel[BK_CUDA] = cross_entropy_bwd_cuda; op_register(OP_CROSS_ENTROPY_BWD, h);
}

}  // namespace nsvq
