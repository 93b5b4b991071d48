// ops/cuda/matmul.cu — CUDA kernels of matmul (cuBLAS SGEMM, FP32 math mode) and softmax /
// log-softmax over contiguous rows.
//
// matmul: row-major C[M, N] = op(A) op(B). cuBLAS is column-major, and a row-major [R, C] matrix
// is the column-major [C, R] matrix of its transpose, so we ask cuBLAS for C^T = op(B)^T op(A)^T:
// m = N, n = M, k = K, first operand B (ld = tb ? K : N, op = tb ? T : N), second operand A
// (ld = ta ? M : K, op = ta ? T : N), C with ld = N. Batching as on the CPU: a batched with b shared
// and !ta is one tall GEMM [nb*M, K] x [K, N]; otherwise a strided-batched GEMM whose shared
// operand has stride 0. cuBLAS GEMM is run-to-run deterministic on one stream.
//
// softmax: one group per row (a warp for rows up to 1024, else a 256-thread block): the row max and
// the sum of exponentials are fixed-order trees, then the CPU's formulas (y = e * (1/s), log:
// y = x - (log s + max)).
#include <climits>
#include <cmath>
#include "engine/cuda/cuda_common.cuh"
#include "ops/ops_internal.h"

namespace nsvq {

static void matmul_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  bool ta = y->ip[0], tb = y->ip[1];
  int64_t M = y->ip[2], N = y->ip[3], K = y->ip[4], nb = y->ip[5];
  bool a_batched = y->ip[6], b_batched = y->ip[7];
  const float* A = (const float*)y->src[0]->data;
  const float* B = (const float*)y->src[1]->data;
  float* C = (float*)y->data;
  if (M == 0 || N == 0 || nb == 0) return;
  if (K == 0) {  // empty sum: C = 0 (without asking cuBLAS about k = 0)
    CUDA_CHECK(cudaMemsetAsync(C, 0, (size_t)(nb * M * N) * sizeof(float), st->stream));
    return;
  }
  const float one = 1.0f, zero = 0.0f;
  int64_t lda = ta ? M : K, ldb = tb ? K : N;
  cublasOperation_t opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;  // applied to B, cuBLAS's first operand
  cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N;  // applied to A, cuBLAS's second operand
  if (a_batched && !b_batched && !ta && nb * M <= INT_MAX) {  // one tall GEMM: [nb*M, K] x [K, N]
    CUBLAS_CHECK(cublasSgemm(st->cublas, opb, CUBLAS_OP_N, (int)N, (int)(nb * M), (int)K, &one, B, (int)ldb, A,
                             (int)lda, &zero, C, (int)N));
    return;
  }
  if (nb == 1) {
    CUBLAS_CHECK(cublasSgemm(st->cublas, opb, opa, (int)N, (int)M, (int)K, &one, B, (int)ldb, A, (int)lda, &zero, C,
                             (int)N));
    return;
  }
  long long sa = a_batched ? M * K : 0, sb = b_batched ? K * N : 0, sc = M * N;
  CUBLAS_CHECK(cublasSgemmStridedBatched(st->cublas, opb, opa, (int)N, (int)M, (int)K, &one, B, (int)ldb, sb, A,
                                         (int)lda, sa, &zero, C, (int)N, sc, (int)nb));
}

// ---------------------------------------------------------------- softmax

template <int G>
__global__ void softmax_kernel(float* __restrict__ y, const float* __restrict__ x, int64_t rows, int64_t n, int is_log) {
  constexpr int PER_BLOCK = G == 32 ? CU_THREADS / 32 : 1;
  int t = G == 32 ? (threadIdx.x & 31) : threadIdx.x;
  int64_t first = (int64_t)blockIdx.x * PER_BLOCK + (G == 32 ? threadIdx.x / 32 : 0);
  for (int64_t r = first; r < rows; r += (int64_t)gridDim.x * PER_BLOCK) {  // uniform per group
    const float* xr = x + r * n;
    float* yr = y + r * n;
    float mx = -INFINITY;
    for (int64_t i = t; i < n; i += G) mx = xr[i] > mx ? xr[i] : mx;
    mx = group_allreduce<G>(mx, CuMax());
    float s = 0.0f;
    for (int64_t i = t; i < n; i += G) s += expf(xr[i] - mx);
    s = group_allreduce<G>(s, CuAdd());
    if (is_log) {
      float ls = logf(s) + mx;
      for (int64_t i = t; i < n; i += G) yr[i] = xr[i] - ls;
    } else {
      float inv = 1.0f / s;
      for (int64_t i = t; i < n; i += G) yr[i] = expf(xr[i] - mx) * inv;
    }
  }
}

static void softmax_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  int64_t n = y->ndim ? y->ne[y->ndim - 1] : 1, rows = n ? y->numel() / n : 0;
  if (rows == 0) return;
  const float* x = (const float*)y->src[0]->data;
  float* o = (float*)y->data;
  if (n <= 1024)
    softmax_kernel<32><<<cu_blocks(rows, CU_THREADS / 32), CU_THREADS, 0, st->stream>>>(o, x, rows, n, y->ip[0]);
  else
    softmax_kernel<CU_THREADS><<<cu_blocks(rows, 1), CU_THREADS, 0, st->stream>>>(o, x, rows, n, y->ip[0]);
  CUDA_LAUNCH_CHECK();
}

void register_matmul_cuda() {
  OpDef d;
  d.kernel[BK_CUDA] = matmul_cuda; op_register(OP_MATMUL, d);
  d.kernel[BK_CUDA] = softmax_cuda; op_register(OP_SOFTMAX, d);
}

}  // namespace nsvq
