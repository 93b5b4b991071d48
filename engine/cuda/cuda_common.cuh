// engine/cuda/cuda_common.cuh — private helpers of the CUDA backend and of the ops/cuda kernels:
// error checking (CUDA_CHECK / CUBLAS_CHECK throw nsvq::Error with file:line), the per-backend state
// handed to kernels in ExecCtx::backend_state (stream, cuBLAS handle, index-error slots), launch-size
// helpers, fixed-order (deterministic) warp/block reductions and CuNd, the device-side strided N-d
// offset helper that mirrors the CPU NdIter (ops/cpu/cpu_kernels.h).
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cmath>
#include <cstdint>
#include <vector>
#include "engine/op_table.h"

namespace nsvq {

// ---------------------------------------------------------------- errors

[[noreturn]] void cuda_fail(const char* file, int line, const char* expr, cudaError_t e);
[[noreturn]] void cublas_fail(const char* file, int line, const char* expr, cublasStatus_t s);

#define CUDA_CHECK(expr)                                                        \
  do {                                                                          \
    cudaError_t nsvq_e_ = (expr);                                               \
    if (nsvq_e_ != cudaSuccess) ::nsvq::cuda_fail(__FILE__, __LINE__, #expr, nsvq_e_); \
  } while (0)
#define CUBLAS_CHECK(expr)                                                      \
  do {                                                                          \
    cublasStatus_t nsvq_s_ = (expr);                                            \
    if (nsvq_s_ != CUBLAS_STATUS_SUCCESS) ::nsvq::cublas_fail(__FILE__, __LINE__, #expr, nsvq_s_); \
  } while (0)
// After every kernel launch: reports bad launch configurations at the launching line.
#define CUDA_LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

// ---------------------------------------------------------------- backend state

// Index/label range errors: a kernel that finds a bad index writes min(key) into its error slot,
// key = position << 32 | (uint32)value, so the slot ends up holding the FIRST bad position (as the
// CPU kernels report it) whatever the thread timing. Slots are checked at the next sync() (or
// copy_out), where the backend throws "op: index V at position P out of range [0, L)".
constexpr int CUDA_ERR_SLOTS = 64;
constexpr unsigned long long CUDA_NO_ERROR = ~0ull;

struct CudaErrCheck {
  const char* op;      // "get_rows", "cross_entropy", ...
  const char* value;   // "index" | "label"
  const char* where;   // "position" | "row"
  long long limit;     // valid range is [0, limit)
};

struct CudaState {
  int device = 0;
  int sm_count = 1;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  unsigned long long* err_dev = nullptr;   // device [CUDA_ERR_SLOTS], CUDA_NO_ERROR when clean
  unsigned long long* err_host = nullptr;  // pinned host mirror
  std::vector<CudaErrCheck> pending;      // slot i belongs to pending[i] (execution order)
  bool capturing = false;                 // launches are being recorded (no synchronisation allowed)
};
// Thrown while recording when a step needs more error slots than there are (recording gives up).
struct CudaCaptureOverflow {};

// Makes `device` current for this host thread (cached: cudaSetDevice only on a change).
void cuda_use_device(int device);
// The state of the backend executing this node; makes its device current.
inline CudaState* cuda_state(const ExecCtx& c) {
  CudaState* st = (CudaState*)c.backend_state;
  if (!st) fail("cuda kernel called without CUDA backend state");
  cuda_use_device(st->device);
  return st;
}
// Claims an error slot for one kernel launch (checks and recycles slots synchronously when all
// are in use). Returns the device pointer the kernel reports into.
unsigned long long* cuda_err_slot(CudaState* st, const char* op, const char* value, const char* where, long long limit);
// Reads the pending slots (synchronises the stream) and throws for the first kernel, in execution
// order, that reported a bad index. Clears all slots either way.
void cuda_check_errors(CudaState* st);

// Device side of the error slots.
__device__ __forceinline__ void cuda_report_bad_index(unsigned long long* slot, long long pos, int32_t value) {
  unsigned long long p = pos < 0 ? 0ull : (pos > 0xffffffffll ? 0xffffffffull : (unsigned long long)pos);
  atomicMin(slot, (p << 32) | (unsigned long long)(uint32_t)value);
}

// ---------------------------------------------------------------- launch helpers

constexpr int CU_THREADS = 256;
// Blocks for n work items of `per_block` each, capped (kernels use grid-stride loops).
inline unsigned int cu_blocks(int64_t n, int64_t per_block = CU_THREADS, int64_t cap = 1 << 16) {
  int64_t b = (n + per_block - 1) / per_block;
  if (b < 1) b = 1;
  if (b > cap) b = cap;
  return (unsigned int)b;
}

// ---------------------------------------------------------------- reductions (fixed order)

struct CuAdd {
  template <class T> __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct CuMax {  // NaN never wins (as the CPU's `b > a ? b : a`)
  template <class T> __device__ __forceinline__ T operator()(T a, T b) const { return b > a ? b : a; }
};
struct CuMin {
  template <class T> __device__ __forceinline__ T operator()(T a, T b) const { return b < a ? b : a; }
};

// Tree over the 32 lanes (offsets 16, 8, 4, 2, 1); the result is in lane 0. The shape of the tree
// depends on nothing but the lane numbers, so the result is bitwise reproducible.
template <class T, class Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, o));
  return v;
}
// Warp tree, then lane 0 broadcasts: every lane gets the result.
template <class T, class Op>
__device__ __forceinline__ T warp_allreduce(T v, Op op) {
  return __shfl_sync(0xffffffffu, warp_reduce(v, op), 0);
}
// Whole block (blockDim.x a multiple of 32, at most 1024): warp trees, then thread 0 combines the
// warp results in warp order. Every thread gets the result. Safe to call repeatedly.
template <class T, class Op>
__device__ __forceinline__ T block_allreduce(T v, Op op) {
  __shared__ T sh[33];
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_reduce(v, op);
  __syncthreads();  // an earlier call's readers of sh[32] are done
  if (lane == 0) sh[w] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    T r = sh[0];
    for (int k = 1; k < nw; k++) r = op(r, sh[k]);
    sh[32] = r;
  }
  __syncthreads();
  return sh[32];
}
// A "group" is either one warp (G == 32) or the whole block (G == blockDim.x).
template <int G, class T, class Op>
__device__ __forceinline__ T group_allreduce(T v, Op op) {
  if constexpr (G == 32) return warp_allreduce(v, op);
  else return block_allreduce(v, op);
}

// ---------------------------------------------------------------- strided N-d offsets

// N operands of one shape with their own element strides; size-1 dims dropped and dims merged
// where every operand is contiguous across them (exactly as nd_iter_make on the CPU).
template <int N>
struct CuNd {
  int ndim = 1;
  int64_t ne[MAX_DIMS];
  int64_t st[N][MAX_DIMS];
  int64_t n = 0;  // number of elements
};

template <int N>
inline CuNd<N> cu_nd_make(const Tensor* const* ts) {
  CuNd<N> it;
  const Tensor* t0 = ts[0];
  int nd = 0;
  for (int d = 0; d < t0->ndim; d++) {
    if (t0->ne[d] == 1) continue;
    it.ne[nd] = t0->ne[d];
    for (int k = 0; k < N; k++) it.st[k][nd] = ts[k]->nb[d];
    nd++;
  }
  if (nd == 0) {
    it.ne[0] = 1;
    for (int k = 0; k < N; k++) it.st[k][0] = 1;
    nd = 1;
  }
  int m = 0;
  for (int d = 1; d < nd; d++) {
    bool merge = true;
    for (int k = 0; k < N; k++)
      if (it.st[k][m] != it.st[k][d] * it.ne[d]) merge = false;
    if (merge) {
      it.ne[m] *= it.ne[d];
      for (int k = 0; k < N; k++) it.st[k][m] = it.st[k][d];
    } else {
      m++;
      it.ne[m] = it.ne[d];
      for (int k = 0; k < N; k++) it.st[k][m] = it.st[k][d];
    }
  }
  it.ndim = m + 1;
  it.n = 1;
  for (int d = 0; d < it.ndim; d++) it.n *= it.ne[d];
  if (t0->numel() == 0) it.n = 0;
  return it;
}

// True when element counts and every operand's largest |offset| fit in int32 (cheaper index maths).
template <int N>
inline bool cu_nd_fits32(const CuNd<N>& it) {
  if (it.n >= ((int64_t)1 << 30)) return false;  // leaves room for the grid-stride step
  for (int k = 0; k < N; k++) {
    int64_t span = 0;
    for (int d = 0; d < it.ndim; d++) span += (it.ne[d] - 1) * (it.st[k][d] < 0 ? -it.st[k][d] : it.st[k][d]);
    if (span >= ((int64_t)1 << 31)) return false;
  }
  return true;
}

// Element offsets of linear (row-major) element e for each operand. I: int32_t or int64_t.
template <int N, class I>
__device__ __forceinline__ void cu_nd_offsets(const CuNd<N>& it, I e, I* off) {
#pragma unroll
  for (int k = 0; k < N; k++) off[k] = 0;
#pragma unroll
  for (int d = MAX_DIMS - 1; d >= 0; d--) {
    if (d < it.ndim) {
      I ne = (I)it.ne[d];
      I i = e % ne;
      e /= ne;
#pragma unroll
      for (int k = 0; k < N; k++) off[k] += i * (I)it.st[k][d];
    }
  }
}

}  // namespace nsvq
